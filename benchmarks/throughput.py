"""Inference and training videos/s: CEFLNet and torchvision's video models, one run.

Every model runs on the same device with the same batch, in each configuration:

* ``fp32``: float32, eager (PyTorch's defaults: cuDNN may use TF32 for convolutions);
* ``bf16_cl``: bf16 autocast + channels_last (``channels_last_3d`` for 3-D models);
* ``bf16_cl_compile``: the same under ``torch.compile``.

Inference is a forward pass under ``torch.inference_mode``. A training step is forward,
cross-entropy, backward and an Adam step (the paper's optimizer; fused on CUDA), on
random inputs already on the device: the data pipeline is ``benchmarks/data.py``'s job.
Timing: warm-up steps (compilation, cuDNN autotuning), device synchronisation around
every timed run, the median of ``--repeats`` runs of ``--iters`` steps.

Each entry reports videos/s, frames/s, peak memory, the speed-ups between
configurations, and the achieved TFLOP/s (``2 x MACs x videos/s`` for inference,
``6 x MACs x videos/s`` for training: backward costs about twice the forward) against
the compute roof: the datasheet dense bf16 peak of a known GPU and a matmul measured in
the same run. ``--profile`` adds a torch.profiler summary (top operators by self time)
so a result that falls short of the targets says where the time goes.

Usage::

    python benchmarks/throughput.py --device cuda            # H100/H200: the full run
    python benchmarks/throughput.py --device cpu --quick     # minutes on a laptop
    python benchmarks/throughput.py --models ceflnet_resnet18 --configs fp32 --profile

The result goes to ``benchmarks/results/throughput_<device-slug>.json``
(``throughput_cpu.json``, ``throughput_nvidia-h100-80gb-hbm3.json``, ...).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SCHEMA_VERSION,
    PeakMemory,
    device_slug,
    environment,
    matmul_roof,
    result_path,
    synchronize,
    time_fn,
    write_json,
)
from complexity import PEERS

import cefl_zoo
from cefl_zoo import count_macs
from cefl_zoo.train.trainer import build_optimizer

__all__ = [
    "CONFIGS",
    "MODES",
    "TARGETS",
    "ModelSpec",
    "add_ratios",
    "evaluate_targets",
    "main",
    "measure",
    "model_spec",
    "profile_step",
    "run",
]

#: Configuration name -> (autocast dtype or None, channels_last, torch.compile).
CONFIGS: dict[str, dict[str, Any]] = {
    "fp32": {"dtype": None, "channels_last": False, "compile": False},
    "bf16_cl": {"dtype": torch.bfloat16, "channels_last": True, "compile": False},
    "bf16_cl_compile": {"dtype": torch.bfloat16, "channels_last": True, "compile": True},
}
MODES = ("inference", "training")
#: Default model list: the paper's CEFLNet, then torchvision's peers.
DEFAULT_MODELS = ["ceflnet_resnet18", *(p["name"] for p in PEERS)]

#: The bar to beat (H100, a minimal CEFLNet-shaped ResNet-18 at 224 px, 7 x 5 frames).
TARGETS: list[dict[str, Any]] = [
    {
        "mode": "inference",
        "model": "ceflnet_resnet18",
        "config": "bf16_cl_compile",
        "batch": 64,
        "target_videos_per_s": 1400.0,
        "reference": "H100: fp32 eager batch 16 534 videos/s; bf16 + channels_last + "
        "compile batch 64 1544 videos/s (minimal CEFLNet-shaped ResNet-18)",
        "device_class": ["H100", "H200", "GH200"],
    },
    {
        "mode": "training",
        "model": "ceflnet_resnet18",
        "config": "bf16_cl_compile",
        "batch": 32,
        "target_videos_per_s": 390.0,
        "reference": "H100: fp32 eager batch 8 84 videos/s; bf16 compiled batch 32 437 "
        "videos/s (minimal CEFLNet-shaped ResNet-18)",
        "device_class": ["H100", "H200", "GH200"],
    },
]


@dataclass
class ModelSpec:
    """How to build one benchmarked model and feed it.

    Attributes:
        name: Registry name (zoo) or torchvision video model name.
        source: ``"cefl_zoo"`` or ``"torchvision"``.
        input_shape: One video, without the batch axis: ``(N, K, 3, H, W)`` for zoo
            models, ``(3, T, H, W)`` for torchvision's.
        frames_per_video: Frames one video feeds the model.
        macs_per_video: Forward MACs of one video (same counter as complexity.py).
        build: ``build(device) -> nn.Module`` (random weights, eval mode).
        num_classes: Size of the model's output (labels of the training step).
    """

    name: str
    source: str
    input_shape: tuple[int, ...]
    frames_per_video: int
    macs_per_video: int
    build: Callable[[torch.device], nn.Module]
    num_classes: int = 7

    @property
    def is_3d(self) -> bool:
        """Whether the model takes ``(B, 3, T, H, W)`` (3-D convolutions)."""
        return self.source == "torchvision"

    def make_input(self, batch: int, device: torch.device, channels_last: bool) -> torch.Tensor:
        """A random batch ``(batch, *input_shape)`` in the requested memory layout.

        For zoo models, channels_last means every frame is stored ``H, W, C``: the
        ``(B*N*K, 3, H, W)`` view the backbone sees is then channels_last without a copy.
        """
        shape = (batch, *self.input_shape)
        if not channels_last:
            return torch.randn(shape, device=device)
        if self.is_3d:
            return torch.randn(shape, device=device).contiguous(
                memory_format=torch.channels_last_3d
            )
        b, n, k, c, h, w = shape
        return torch.randn(b, n, k, h, w, c, device=device).permute(0, 1, 2, 5, 3, 4)


def model_spec(name: str, img_size: int | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of a zoo model or a torchvision peer.

    Args:
        name: A :func:`cefl_zoo.list_models` name (fed N x K frames at its
            ``pretrained_cfg`` size) or one of ``r3d_18, mc3_18, r2plus1d_18, s3d,
            mvit_v2_s, swin3d_t`` (fed the clip of :data:`complexity.PEERS`).
        img_size: Override the frame size (zoo models only).

    Raises:
        ValueError: For a name that is neither.
    """
    peers = {p["name"]: p for p in PEERS}
    if cefl_zoo.is_model(name):

        def build(device: torch.device) -> nn.Module:
            with torch.device(device):
                return cefl_zoo.create_model(name).eval()

        cfg = cefl_zoo.get_pretrained_cfg(name)
        size = img_size or cfg.input_size[-1]
        shape = (cfg.num_clips, cfg.frames_per_clip, cfg.input_size[0], size, size)
        source, frames = "cefl_zoo", cfg.num_clips * cfg.frames_per_clip
    elif name in peers:
        if img_size:
            raise ValueError(f"--img-size applies to cefl_zoo models only, not {name!r}")
        import torchvision.models.video as tvv

        def build(device: torch.device) -> nn.Module:
            with torch.device(device):
                return getattr(tvv, name)().eval()

        spec = peers[name]
        shape = (3, spec["frames"], spec["size"], spec["size"])
        source, frames = "torchvision", spec["frames"]
    else:
        raise ValueError(
            f"unknown model {name!r}: use a cefl_zoo model ({', '.join(cefl_zoo.list_models())}) "
            f"or a torchvision peer ({', '.join(peers)})"
        )
    meta_model = build(torch.device("meta"))
    x = torch.zeros(1, *shape, device="meta")
    macs = count_macs(meta_model, x)
    with torch.no_grad():
        num_classes = int(meta_model(x).shape[-1])
    return ModelSpec(name, source, shape, frames, macs, build, num_classes)


def _make_step(
    model: nn.Module,
    spec: ModelSpec,
    mode: str,
    batch: int,
    device: torch.device,
    config: dict[str, Any],
    compile_mode: str,
) -> Callable[[], Any]:
    if config["channels_last"]:
        fmt = torch.channels_last_3d if spec.is_3d else torch.channels_last
        model = model.to(memory_format=fmt)
    x = spec.make_input(batch, device, config["channels_last"])
    dtype = config["dtype"]
    fwd = torch.compile(model, mode=compile_mode) if config["compile"] else model

    if mode == "inference":
        model.eval()

        def step() -> torch.Tensor:
            with (
                torch.inference_mode(),
                torch.autocast(
                    device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
                ),
            ):
                return fwd(x)

        return step

    model.train()
    y = torch.randint(0, spec.num_classes, (batch,), device=device)
    # The trainer's optimizer factory: Adam, fused on CUDA, exactly as a training run has it.
    opt = build_optimizer(model.parameters(), "adam", lr=1e-4, device=device)

    def train_step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = fwd(x)
        loss = F.cross_entropy(out.float(), y)
        loss.backward()
        opt.step()
        return loss

    return train_step


def profile_step(
    step: Callable[[], Any], device: torch.device, steps: int = 3, top: int = 12
) -> dict[str, Any]:
    """Where the time of ``step`` goes: torch.profiler's top operators by self time.

    Args:
        step: A warmed-up step (already compiled, if compiled).
        device: Its device (CUDA adds kernel times).
        steps: Profiled steps.
        top: Operators to keep.

    Returns:
        :func:`summarize_profile` of the profiled steps.
    """
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    return summarize_profile(prof.key_averages(), device, steps, top)


def _grouped(rows: list[tuple[str, int, float]], top: int, steps: int) -> list[dict[str, Any]]:
    """Merge rows of one name, sort by time, keep ``top``: shares of all rows' time."""
    merged: dict[str, list[float]] = {}
    for key, count, t in rows:
        m = merged.setdefault(key, [0, 0.0])
        m[0] += count
        m[1] += t
    total = sum(t for _, t in merged.values()) or 1.0
    ranked = sorted(merged.items(), key=lambda kv: kv[1][1], reverse=True)
    return [
        {
            "op": key,
            "calls_per_step": count / steps,
            "self_ms_per_step": t / 1000.0 / steps,
            "share": t / total,
        }
        for key, (count, t) in ranked[:top]
        if t > 0
    ]


def summarize_profile(
    events: Iterable[Any], device: torch.device, steps: int, top: int = 12
) -> dict[str, Any]:
    """Summarise ``prof.key_averages()`` of ``steps`` steps.

    On the CPU every row is an operator with its self CPU time. On CUDA the rows mix
    three kinds: CPU operators (whose self device time repeats the kernels they
    launched), the kernels themselves (device rows) and ``record_function`` regions
    (``Torch-Compiled Region``, ``## Call CompiledFxGraph ##``: device rows marked as
    user annotations, spanning the kernels inside). Only the kernels are summed, as
    torch's own table does, so each GPU microsecond counts once; the CPU operators are
    listed apart by their self CPU time, for the host side of a launch-bound step.

    Returns:
        ``{"sort_by", "steps", "total_self_ms_per_step", "ops": [{"op",
        "calls_per_step", "self_ms_per_step", "share"}, ...]}``; on CUDA also
        ``"device_busy_ms_per_step"`` (= the total) and ``"cpu_ops"``, the top CPU
        operators by self CPU time. Compiled-graph hashes are dropped from the names.
    """
    from torch.autograd import DeviceType

    def name(e: Any) -> str:
        return re.sub(r"CompiledFxGraph \w+", "CompiledFxGraph", e.key)

    events = list(events)
    cpu_rows = [
        (name(e), e.count, float(e.self_cpu_time_total))
        for e in events
        if getattr(e, "device_type", DeviceType.CPU) == DeviceType.CPU
    ]
    if device.type != "cuda":
        ops = _grouped(cpu_rows, top, steps)
        total = sum(t for _, _, t in cpu_rows)
        return {
            "sort_by": "self_cpu_time",
            "steps": steps,
            "total_self_ms_per_step": total / 1000.0 / steps,
            "ops": ops,
        }
    attr = (
        "self_device_time_total"
        if events and hasattr(events[0], "self_device_time_total")
        else "self_cuda_time_total"
    )
    kernel_rows = [
        (name(e), e.count, float(getattr(e, attr, 0.0)))
        for e in events
        if getattr(e, "device_type", None) == DeviceType.CUDA
        and not getattr(e, "is_user_annotation", False)
    ]
    busy = sum(t for _, _, t in kernel_rows) / 1000.0 / steps
    return {
        "sort_by": "self_cuda_time",
        "steps": steps,
        "total_self_ms_per_step": busy,
        "device_busy_ms_per_step": busy,
        "ops": _grouped(kernel_rows, top, steps),
        "cpu_ops": _grouped(cpu_rows, 5, steps),
    }


def measure(
    spec: ModelSpec,
    mode: str,
    config_name: str,
    batch: int,
    device: str | torch.device,
    warmup: int = 3,
    repeats: int = 5,
    iters: int = 10,
    compile_mode: str = "default",
    profile: bool = False,
    roof: dict[str, Any] | None = None,
    bf16_peak_tflops: float | None = None,
) -> dict[str, Any]:
    """Time one (model, mode, configuration, batch) on ``device``.

    Args:
        spec: What to run (:func:`model_spec`).
        mode: ``"inference"`` or ``"training"``.
        config_name: A key of :data:`CONFIGS`.
        batch: Videos per step.
        device: Where to run.
        warmup: Untimed steps first (the first compiles, when compiling).
        repeats: Timed runs; the median is reported.
        iters: Steps per timed run.
        compile_mode: ``torch.compile`` mode.
        profile: Add :func:`profile_step`'s summary.
        roof: Measured matmul roofs ``{"bfloat16": {...}, "float32": {...}}``.
        bf16_peak_tflops: Datasheet dense bf16 peak of the device, if known.

    Returns:
        The entry: ``status`` is ``"ok"``, ``"oom"`` or ``"error"`` (with ``error``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if config_name not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)}, got {config_name!r}")
    dev = torch.device(device)
    config = CONFIGS[config_name]
    flops_factor = 2 if mode == "inference" else 6
    entry: dict[str, Any] = {
        "model": spec.name,
        "source": spec.source,
        "mode": mode,
        "config": config_name,
        "batch": batch,
        "dtype": "bfloat16" if config["dtype"] is not None else "float32",
        "channels_last": config["channels_last"],
        "compile": config["compile"],
        "input_shape": [batch, *spec.input_shape],
        "frames_per_video": spec.frames_per_video,
        "macs_per_video": spec.macs_per_video,
        "flops_per_video": flops_factor * spec.macs_per_video,
        "flops_factor": flops_factor,
        "status": "ok",
    }
    load_before = _loadavg()
    model = step = None
    try:
        try:
            with PeakMemory(dev) as mem:  # weights, activations, gradients, optimizer state
                model = spec.build(dev)
                step = _make_step(model, spec, mode, batch, dev, config, compile_mode)
                timing = time_fn(step, dev, warmup=warmup, repeats=repeats, iters=iters)
            videos_per_s = batch / timing["median_s"]
            tflops = entry["flops_per_video"] * videos_per_s / 1e12
            entry.update(
                videos_per_s=videos_per_s,
                frames_per_s=videos_per_s * spec.frames_per_video,
                step_s=timing["median_s"],
                repeat_step_s=timing["repeat_s"],
                warmup_s=timing["warmup_s"],
                warmup_steps=warmup,
                iters=iters,
                achieved_tflops=tflops,
                memory=mem.result(),
            )
            entry["fraction_of_bf16_peak"] = tflops / bf16_peak_tflops if bf16_peak_tflops else None
            if roof and entry["dtype"] in roof:
                entry["fraction_of_measured_roof"] = tflops / roof[entry["dtype"]]["tflops"]
        except torch.OutOfMemoryError as err:
            entry.update(status="oom", error=str(err).splitlines()[0][:300])
        except Exception as err:  # noqa: BLE001 (a compile failure or unsupported op must not end the run)
            entry.update(status="error", error=f"{type(err).__name__}: {str(err)[:300]}")
        if profile and entry["status"] == "ok":
            # Apart from the timing: a profiler that fails (CUPTI unavailable, too little
            # memory for its buffers) must not throw away the measurement.
            try:
                entry["profile"] = profile_step(step, dev)
                busy = entry["profile"].get("device_busy_ms_per_step")
                if busy is not None:
                    entry["profile"]["device_busy_share_of_step"] = busy / 1000.0 / entry["step_s"]
            except Exception as err:  # noqa: BLE001 (see above)
                entry["profile_error"] = f"{type(err).__name__}: {str(err)[:300]}"
    finally:
        entry["host_load"] = {
            "loadavg_1m_before": load_before,
            "loadavg_1m_after": _loadavg(),
            "usable_cpus": _usable_cpus(),
            "means": "1-minute load average of the host: above usable_cpus, other processes "
            "competed for the CPU and the numbers are lower bounds",
        }
        del model, step
        gc.collect()
        if config["compile"]:
            torch._dynamo.reset()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return entry


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _usable_cpus() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def add_ratios(entries: list[dict[str, Any]]) -> None:
    """Add ``speedup_vs_fp32`` and ``speedup_vs_bf16_cl`` to every successful entry.

    The ratio compares videos/s of the same model, mode and batch; ``None`` where the
    reference configuration was not measured (or failed).
    """
    ok = {
        (e["model"], e["mode"], e["batch"], e["config"]): e["videos_per_s"]
        for e in entries
        if e.get("status") == "ok"
    }
    for e in entries:
        if e.get("status") != "ok":
            continue
        for ref in ("fp32", "bf16_cl"):
            base = ok.get((e["model"], e["mode"], e["batch"], ref))
            e[f"speedup_vs_{ref}"] = e["videos_per_s"] / base if base else None


def where_the_time_goes(entry: dict[str, Any]) -> dict[str, Any] | str:
    """What a missed target's profile says: GPU busy time against the step, top ops.

    Returns a hint string when the entry was not profiled (or its profiling failed).
    """
    prof = entry.get("profile")
    if not prof:
        failed = entry.get("profile_error")
        return "re-run with --profile for an operator breakdown" + (
            f" (profiling failed: {failed})" if failed else ""
        )
    out: dict[str, Any] = {"step_ms": entry["step_s"] * 1000.0, "top_ops": prof["ops"][:8]}
    share = prof.get("device_busy_share_of_step")
    if share is not None:
        out["device_busy_ms_per_step"] = prof["device_busy_ms_per_step"]
        out["device_busy_share_of_step"] = share
        out["top_cpu_ops"] = prof.get("cpu_ops", [])[:5]
        out["reading"] = (
            f"the GPU runs kernels {share:.0%} of the step: kernel time bounds it, the top "
            "kernels are where to look"
            if share >= 0.8
            else f"the GPU idles {1 - share:.0%} of the step: host-side work (kernel "
            "launches, Python, synchronisation) bounds it, see top_cpu_ops"
        )
    return out


def evaluate_targets(entries: list[dict[str, Any]], device_name: str) -> list[dict[str, Any]]:
    """Compare the measured entries with :data:`TARGETS`.

    A target is judged (``met`` true/false) only on the device class it was set on
    (H100/H200) and only when the matching model, mode, configuration and batch were
    measured; otherwise ``met`` is ``None`` and ``why_not_judged`` says why. A missed
    target points at the profile (``--profile``) of the entry when there is one.
    """
    out = []
    for target in TARGETS:
        row = {k: v for k, v in target.items() if k != "device_class"}
        row["device_class"] = "/".join(target["device_class"])
        match = next(
            (
                e
                for e in entries
                if e.get("status") == "ok"
                and all(e[k] == target[k] for k in ("model", "mode", "config", "batch"))
            ),
            None,
        )
        row["measured_videos_per_s"] = match["videos_per_s"] if match else None
        on_class = any(c in device_name for c in target["device_class"])
        if not on_class:
            row["met"] = None
            row["why_not_judged"] = (
                f"measured on {device_name!r}; the target is for {row['device_class']}"
            )
        elif match is None:
            row["met"] = None
            row["why_not_judged"] = "the target's model/mode/config/batch was not measured"
        else:
            row["met"] = match["videos_per_s"] >= target["target_videos_per_s"]
            row["ratio_to_target"] = match["videos_per_s"] / target["target_videos_per_s"]
            row["judged_on"] = device_name
            if re.search(r"PCIe|NVL", device_name, re.IGNORECASE):
                row["note"] = (
                    "the target was set on an H100 SXM; this PCIe/NVL part has a lower bf16 "
                    "peak and memory bandwidth"
                )
            if not row["met"]:
                row["where_the_time_goes"] = where_the_time_goes(match)
        out.append(row)
    return out


def _parse_list(text: str, cast: Callable[[str], Any] = str) -> list[Any]:
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def _entry_key(e: dict[str, Any]) -> tuple:
    return (e["model"], e["mode"], e["config"], e["batch"])


def run(args: argparse.Namespace, argv: list[str] | None = None) -> dict[str, Any]:
    """Measure everything ``args`` asks for and write the JSON after every entry."""
    dev = torch.device(args.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to PyTorch")
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    if args.threads:
        torch.set_num_threads(args.threads)
    out_path = args.output or result_path(f"throughput_{device_slug(dev)}")
    env = environment(dev, argv)
    device_name = env["device"]["name"]

    roof: dict[str, Any] = {}
    roof_runs: list[dict[str, Any]] = []

    def measure_roof(when: str) -> None:
        # The roof is the best of a measurement before and one after the models: a busy
        # or throttled machine must not make the models look closer to it than they are.
        if args.no_roof:
            return
        for dtype in (torch.bfloat16, torch.float32):
            r = {**matmul_roof(dev, dtype), "when": when}
            roof_runs.append(r)
            if r["dtype"] not in roof or r["tflops"] > roof[r["dtype"]]["tflops"]:
                roof[r["dtype"]] = r
            print(
                f"  roof ({when}) {r['dtype']} {r['n']}^3 matmul: {r['tflops']:.3f} TFLOP/s",
                flush=True,
            )

    measure_roof("start")

    entries: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    if args.merge and Path(out_path).exists():
        old = json.loads(Path(out_path).read_text())
        runs = old.get("runs", [])
        entries = old.get("entries", [])
    run_index = len(runs)
    runs.append({"environment": env, "matmul_roof": roof, "matmul_roof_runs": roof_runs})

    plan = []
    for name in args.models:
        spec = model_spec(name, args.img_size)
        for mode in args.modes:
            batches = args.infer_batch if mode == "inference" else args.train_batch
            for config in args.configs:
                if (
                    CONFIGS[config]["compile"]
                    and args.compile_models not in (["all"], None)
                    and name not in args.compile_models
                ):
                    continue
                for batch in batches:
                    plan.append((spec, mode, config, batch))
    planned = {(s.name, m, c, b) for s, m, c, b in plan}
    entries = [e for e in entries if _entry_key(e) not in planned]

    payload: dict[str, Any] = {
        "benchmark": "throughput",
        "schema_version": SCHEMA_VERSION,
        "device_slug": device_slug(dev),
        "environment": env,
        "bf16_peak": env["device"].get("bf16_peak"),
        "matmul_roof": roof,
        "runs": runs,
        "entries": entries,
        "targets": [],
        "notes": NOTES + ([CPU_NOTE] if dev.type == "cpu" else []),
    }
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    bar = tqdm(plan, desc="throughput", unit="cfg") if tqdm else plan
    for spec, mode, config, batch in bar:
        if tqdm:
            bar.set_postfix_str(f"{spec.name} {mode} {config} b{batch}")
        profile = args.profile and (
            spec.name in args.profile_models or "all" in args.profile_models
        )
        entry = measure(
            spec,
            mode,
            config,
            batch,
            dev,
            warmup=args.warmup,
            repeats=args.repeats,
            iters=args.iters,
            compile_mode=args.compile_mode,
            profile=profile,
            roof=roof,
            bf16_peak_tflops=(env["device"].get("bf16_peak") or {}).get("tflops"),
        )
        entry["run"] = run_index
        entries.append(entry)
        msg = f"{spec.name:18s} {mode:9s} {config:16s} b{batch:<3d} " + (
            f"{entry['videos_per_s']:9.2f} videos/s  {entry['achieved_tflops']:7.3f} TFLOP/s"
            if entry["status"] == "ok"
            else f"{entry['status']}: {entry.get('error')}"
        )
        (tqdm.write if tqdm else print)(msg)
        add_ratios(entries)
        payload["targets"] = evaluate_targets(entries, device_name)
        write_json(out_path, payload)
    measure_roof("end")
    for e in entries:  # the roof may have risen at the end
        if e.get("run") == run_index and e.get("status") == "ok" and e["dtype"] in roof:
            e["fraction_of_measured_roof"] = e["achieved_tflops"] / roof[e["dtype"]]["tflops"]
    add_ratios(entries)
    payload["targets"] = evaluate_targets(entries, device_name)
    write_json(out_path, payload)
    print(f"wrote {out_path}")
    return payload


NOTES = [
    (
        "videos/s = batch / median step time; inputs are random tensors already on the device "
        "(no decoding); a training step is forward + cross-entropy + backward + Adam step."
    ),
    (
        "achieved_tflops = flops_factor x MACs per video x videos/s / 1e12, flops_factor 2 for "
        "inference and 6 for training (backward ~ 2 x forward); MACs from the same counter as "
        "complexity.json (convolutions and matmuls only)."
    ),
    (
        "Peers see their own clip (frames x size in input_shape), CEFLNet 7 x 5 frames at 224 px: "
        "videos/s compares per-video cost, achieved TFLOP/s compares hardware use."
    ),
    (
        "fraction_of_measured_roof divides by a square matmul of the entry's dtype measured in "
        "the same run; fraction_of_bf16_peak by the GPU's datasheet dense bf16 peak."
    ),
    (
        "Peak memory covers building the model, inputs, activations, gradients and optimizer "
        "state. CPU: memory.peak_mib is the sampled RSS growth during the entry (after gc and "
        "malloc_trim on entry); memory.process_peak_rss_mib is ru_maxrss, the process "
        "high-water mark (monotonic, includes earlier entries). CUDA: "
        "torch.cuda.max_memory_allocated (tensors; the caching allocator may reserve more)."
    ),
]
CPU_NOTE = (
    "CPU run: full-size models on few cores, so few iterations and a small batch; the "
    "machine may have been shared with other work, so treat small differences as noise. "
    "The H100 targets are not judged on a CPU."
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (``--help`` lists every option)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated zoo or torchvision model names",
    )
    p.add_argument(
        "--configs",
        default=None,
        help=f"subset of {list(CONFIGS)} (default: all; --quick: no compile)",
    )
    p.add_argument("--modes", default=",".join(MODES), help="inference,training")
    p.add_argument(
        "--infer-batch",
        default=None,
        help="inference batch size(s), comma-separated (default 64 on CUDA, 2 on CPU)",
    )
    p.add_argument(
        "--train-batch",
        default=None,
        help="training batch size(s), comma-separated (default 32 on CUDA, 2 on CPU)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5 CUDA, 1 CPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 5 CUDA, 3 CPU)")
    p.add_argument("--iters", type=int, default=None, help="steps per run (default 10 CUDA, 2 CPU)")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode")
    p.add_argument(
        "--compile-models",
        default="all",
        help="models to run the compiled config for (comma-separated, or 'all')",
    )
    p.add_argument("--img-size", type=int, default=None, help="frame size for zoo models")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument(
        "--quick",
        action="store_true",
        help="CPU smoke run: batch 1, 1 warm-up step, 2 runs of 1 step, no compile",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="record torch.profiler's top operators by self time per entry",
    )
    p.add_argument(
        "--profile-models",
        default="ceflnet_resnet18",
        help="models to profile with --profile (comma-separated, or 'all')",
    )
    p.add_argument("--no-roof", action="store_true", help="skip the matmul roof measurement")
    p.add_argument("--no-cudnn-benchmark", action="store_true")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep entries of an existing output file that this run does not redo",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path (default results/throughput_<device-slug>.json)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and resolve the per-device defaults."""
    args = build_parser().parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    args.models = list(dict.fromkeys(_parse_list(args.models)))
    default_configs = [c for c in CONFIGS if not (args.quick and CONFIGS[c]["compile"])]
    args.configs = _parse_list(args.configs) if args.configs else default_configs
    args.modes = _parse_list(args.modes)
    for c in args.configs:
        if c not in CONFIGS:
            raise SystemExit(f"--configs: unknown configuration {c!r}; choose from {list(CONFIGS)}")
    for m in args.modes:
        if m not in MODES:
            raise SystemExit(f"--modes: unknown mode {m!r}; choose from {list(MODES)}")
    if args.quick:
        args.infer_batch = args.infer_batch or "1"
        args.train_batch = args.train_batch or "1"
        args.warmup = 1 if args.warmup is None else args.warmup
        args.repeats = args.repeats or 2
        args.iters = args.iters or 1
    args.infer_batch = _parse_list(args.infer_batch or ("64" if cuda else "2"), int)
    args.train_batch = _parse_list(args.train_batch or ("32" if cuda else "2"), int)
    args.warmup = (5 if cuda else 1) if args.warmup is None else args.warmup
    args.repeats = args.repeats or (5 if cuda else 3)
    args.iters = args.iters or (10 if cuda else 2)
    args.compile_models = _parse_list(args.compile_models)
    args.profile_models = _parse_list(args.profile_models)
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    full_argv = [__file__, *(sys.argv[1:] if argv is None else argv)]
    run(args, full_argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
