"""Behaviour of the benchmark scripts: complexity vs the paper, throughput bookkeeping,
and the Markdown tables generated from the JSON (no timing assertions)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common
import complexity
import tables
import throughput

# ------------------------------------------------------------------------- complexity


@pytest.fixture(scope="module")
def quick_complexity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cx") / "complexity.json"
    assert complexity.main(["--quick", "--output", str(out)]) == 0
    return out, json.loads(out.read_text())


def test_complexity_quick_matches_paper_table8(quick_complexity: tuple[Path, dict]) -> None:
    _, data = quick_complexity
    assert data["benchmark"] == "complexity" and data["quick"] is True
    rows = {r["method"]: r for r in data["paper_table8"]}
    ours = rows["CEFLNet"]
    assert ours["source"] == "measured" and ours["model"] == "ceflnet_resnet18"
    assert abs(ours["params"] / 12.83e6 - 1) < 0.05
    assert abs(ours["macs"] / 63.80e9 - 1) < 0.05
    # The params split adds up, and counting ResNet-18's unused 1000-way fc closes the gap.
    assert ours["params_backbone"] + ours["params_cfe_eian"] == ours["params"]
    assert ours["params_imagenet_fc_unused"] == 512 * 1000 + 1000
    assert abs(ours["params_with_imagenet_fc"] / 12.83e6 - 1) < 0.007
    assert ours["params_rel_diff"] == pytest.approx(ours["params"] / 12.83e6 - 1)
    # The C3D rows are quoted from the paper, never presented as measured.
    for method in ("C3D", "C3D-LSTM"):
        assert rows[method]["source"] == "quoted"
        assert "macs" not in rows[method] and "params" not in rows[method]
    assert rows["C3D"]["paper_gmacs"] == 326.41 and rows["C3D-LSTM"]["paper_params_m"] == 110.24


def test_complexity_quick_records_table9(quick_complexity: tuple[Path, dict]) -> None:
    _, data = quick_complexity
    rows = data["paper_table9"]
    assert [r["frames_per_clip"] for r in rows] == [2, 5, 10, 15]
    assert [r["paper_gmacs"] for r in rows] == [25.52, 63.80, 127.59, 191.39]
    for r in rows:
        assert abs(r["macs"] / (r["paper_gmacs"] * 1e9) - 1) < 0.05
    # The backbone dominates: MACs grow linearly with the frames per clip.
    per_frame = [r["macs"] / r["frames_per_clip"] for r in rows]
    assert max(per_frame) / min(per_frame) < 1.001


def test_complexity_environment_is_recorded(quick_complexity: tuple[Path, dict]) -> None:
    _, data = quick_complexity
    env = data["environment"]
    assert env["versions"]["torch"] == torch.__version__
    assert env["versions"]["timm"] and env["versions"]["torchvision"]
    assert env["machine"]["cpu_model"] and env["date"][:2] == "20"
    assert "complexity.py" in env["command"] and "--quick" in env["command"]


def test_peer_count_agrees_with_torchvision_metadata() -> None:
    spec = next(p for p in complexity.PEERS if p["name"] == "r3d_18")
    (row,) = complexity.peer_rows([spec])
    assert row["input_shape"] == [1, 3, 16, 112, 112]
    assert row["params"] == 33_371_472
    # Same counter as torchvision's own published figure (3 decimals of GMACs).
    assert abs(row["macs"] / 1e9 - row["torchvision_ops_g"]) < 1e-3


def test_registry_rows_count_at_cfg_size_where_different() -> None:
    (row,) = complexity.registry_rows(["ceflnet_tiny"])
    assert row["input"] == {"num_clips": 7, "frames_per_clip": 5, "size": 224}
    assert row["cfg_input"]["size"] == 64
    # Convolution cost scales with the pixel count: 64 px is (64/224)^2 of 224 px.
    assert row["macs_at_cfg"] / row["macs"] == pytest.approx((64 / 224) ** 2, rel=0.05)


# ------------------------------------------------------------------------- throughput


@pytest.fixture(autouse=True)
def _one_thread():
    # One intra-op thread: on a busy 2-core CI machine two spinning OpenMP threads can make
    # a tiny training step 10x slower. Restored afterwards for the other test files.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_spec() -> throughput.ModelSpec:
    return throughput.model_spec("ceflnet_tiny", img_size=32)


def test_model_spec_shapes_and_errors(tiny_spec: throughput.ModelSpec) -> None:
    assert tiny_spec.input_shape == (7, 5, 3, 32, 32) and tiny_spec.frames_per_video == 35
    assert tiny_spec.macs_per_video > 0
    x = tiny_spec.make_input(2, torch.device("cpu"), channels_last=True)
    assert x.shape == (2, 7, 5, 3, 32, 32)
    # The folded batch the backbone sees is channels_last without a copy.
    assert x.flatten(0, 2).is_contiguous(memory_format=torch.channels_last)
    peer = throughput.model_spec("r3d_18")
    assert peer.is_3d and peer.input_shape == (3, 16, 112, 112)
    # Training labels follow the output size, also for a conv classifier (S3D's).
    assert tiny_spec.num_classes == 7 and peer.num_classes == 400
    assert throughput.model_spec("s3d").num_classes == 400
    with pytest.raises(ValueError, match="unknown model 'resnet3d'.*ceflnet_resnet18.*r3d_18"):
        throughput.model_spec("resnet3d")


@pytest.mark.parametrize("mode,factor", [("inference", 2), ("training", 6)])
def test_measure_reports_consistent_numbers(
    tiny_spec: throughput.ModelSpec, mode: str, factor: int
) -> None:
    roof = {"float32": {"tflops": 0.5}}
    e = throughput.measure(
        tiny_spec,
        mode,
        "fp32",
        1,
        "cpu",
        warmup=0,
        repeats=2,
        iters=1,
        roof=roof,
        bf16_peak_tflops=989.4,
    )
    assert e["status"] == "ok", e.get("error")
    assert e["input_shape"] == [1, 7, 5, 3, 32, 32]
    assert e["flops_factor"] == factor
    assert len(e["repeat_step_s"]) == 2
    assert e["videos_per_s"] == pytest.approx(1 / e["step_s"])
    assert e["frames_per_s"] == pytest.approx(35 * e["videos_per_s"])
    expected = factor * tiny_spec.macs_per_video * e["videos_per_s"] / 1e12
    assert e["achieved_tflops"] == pytest.approx(expected)
    assert e["fraction_of_measured_roof"] == pytest.approx(expected / 0.5)
    assert e["fraction_of_bf16_peak"] == pytest.approx(expected / 989.4)
    assert e["memory"]["kind"] == "cpu_rss" and e["memory"]["process_peak_rss_mib"] > 0
    assert e["host_load"]["usable_cpus"] >= 1


def test_measure_bf16_channels_last_and_profile(tiny_spec: throughput.ModelSpec) -> None:
    e = throughput.measure(
        tiny_spec, "inference", "bf16_cl", 1, "cpu", warmup=0, repeats=1, iters=1, profile=True
    )
    assert e["status"] == "ok", e.get("error")
    assert e["dtype"] == "bfloat16" and e["channels_last"] and not e["compile"]
    ops = e["profile"]["ops"]
    assert ops and all(o["self_ms_per_step"] > 0 for o in ops)
    assert [o["self_ms_per_step"] for o in ops] == sorted(
        (o["self_ms_per_step"] for o in ops), reverse=True
    )
    assert sum(o["share"] for o in ops) <= 1.0 + 1e-9
    assert any("conv" in o["op"] or "mm" in o["op"] for o in ops)


def _cuda_events() -> list:
    """key_averages() of two profiled CUDA steps, shaped as torch's kineto parser builds
    them: a CPU op carries the kernel it launched, the kernel is a device row of its own,
    and record_function regions are device rows marked as user annotations. The real
    GPU work is 10 ms of convolution + 2 ms of a Triton kernel per step."""
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import EventList, FunctionEvent

    def event(i, name, start_ms, end_ms, device=DeviceType.CPU, annotation=False):
        return FunctionEvent(
            id=i,
            name=name,
            thread=0,
            start_us=start_ms * 1000,
            end_us=end_ms * 1000,
            use_device="cuda",
            device_type=device,
            is_user_annotation=annotation,
            stack=[],
        )

    cuda = DeviceType.CUDA
    events = []
    for step in range(2):
        t = 20.0 * step
        conv = event(1, "aten::cudnn_convolution", t, t + 1)
        conv.append_kernel("implicit_gemm_fprop", 0, 10_000)
        relu = event(2, "triton_poi_fused_relu_0", t + 1, t + 1.5)
        relu.append_kernel("triton_poi_fused_relu_0", 0, 2_000)
        events += [
            event(3, "Torch-Compiled Region: 0/0", t, t + 2),
            conv,
            relu,
            event(4, "implicit_gemm_fprop", t + 2, t + 12, cuda),
            event(5, "triton_poi_fused_relu_0", t + 12, t + 14, cuda),
            event(6, "Torch-Compiled Region: 0/0", t + 2, t + 14, cuda, annotation=True),
            event(7, "## Call CompiledFxGraph f0a1b2 ##", t + 2, t + 14, cuda, annotation=True),
        ]
    listed = EventList(events, use_device="cuda")
    listed._tree_built = True
    return listed.key_averages()


def test_cuda_profile_counts_each_kernel_once_and_no_annotation() -> None:
    prof = throughput.summarize_profile(_cuda_events(), torch.device("cuda"), steps=2)
    assert prof["device_busy_ms_per_step"] == pytest.approx(12.0)
    assert prof["total_self_ms_per_step"] == pytest.approx(12.0)
    assert [(o["op"], round(o["share"], 3)) for o in prof["ops"]] == [
        ("implicit_gemm_fprop", 0.833),
        ("triton_poi_fused_relu_0", 0.167),
    ]
    assert prof["ops"][0]["calls_per_step"] == 1
    # The host side is listed apart, by self CPU time.
    assert {o["op"] for o in prof["cpu_ops"]} >= {"aten::cudnn_convolution"}


def test_a_failing_profiler_keeps_the_measurement(tiny_spec, monkeypatch) -> None:
    def broken(step, device):
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED")

    monkeypatch.setattr(throughput, "profile_step", broken)
    e = throughput.measure(
        tiny_spec, "inference", "fp32", 1, "cpu", warmup=0, repeats=1, iters=1, profile=True
    )
    assert e["status"] == "ok" and e["videos_per_s"] > 0
    assert e["profile_error"] == "RuntimeError: CUPTI_ERROR_NOT_INITIALIZED"
    target = {**e, "model": "ceflnet_resnet18", "config": "bf16_cl_compile", "batch": 64}
    row = throughput.evaluate_targets([target], "NVIDIA H200")[0]
    assert row["met"] is False  # still judged: the timing stands
    assert "profiling failed: RuntimeError: CUPTI" in row["where_the_time_goes"]


def test_where_the_time_goes_reads_gpu_idle_time() -> None:
    prof = throughput.summarize_profile(_cuda_events(), torch.device("cuda"), steps=2)
    launch_bound = {"step_s": 0.040, "profile": {**prof, "device_busy_share_of_step": 0.3}}
    where = throughput.where_the_time_goes(launch_bound)
    assert where["step_ms"] == pytest.approx(40.0)
    assert where["device_busy_ms_per_step"] == pytest.approx(12.0)
    assert "idles 70%" in where["reading"] and where["top_ops"][0]["op"] == "implicit_gemm_fprop"
    busy = {"step_s": 0.0125, "profile": {**prof, "device_busy_share_of_step": 0.96}}
    assert "kernel time bounds it" in throughput.where_the_time_goes(busy)["reading"]


def test_measure_reports_failures_instead_of_raising(tiny_spec: throughput.ModelSpec) -> None:
    broken = throughput.ModelSpec(
        "broken", "cefl_zoo", tiny_spec.input_shape, 35, 1, lambda d: torch.nn.Linear(3, 3)
    )
    e = throughput.measure(broken, "inference", "fp32", 1, "cpu", warmup=0, repeats=1, iters=1)
    assert e["status"] == "error" and "RuntimeError" in e["error"]
    with pytest.raises(ValueError, match="config must be one of"):
        throughput.measure(tiny_spec, "inference", "fp16", 1, "cpu")


def test_training_step_uses_the_trainers_optimizer(
    tiny_spec: throughput.ModelSpec, monkeypatch
) -> None:
    # The benchmarked training step builds its optimizer with the trainer's factory
    # (fused Adam on CUDA), so its numbers describe what a training run executes.
    from cefl_zoo.train import trainer

    built = []

    def spy(*args, **kwargs):
        opt = trainer.build_optimizer(*args, **kwargs)
        built.append((args, kwargs, opt))
        return opt

    monkeypatch.setattr(throughput, "build_optimizer", spy)
    model = tiny_spec.build(torch.device("cpu"))
    step = throughput._make_step(
        model, tiny_spec, "training", 1, torch.device("cpu"), throughput.CONFIGS["fp32"], "default"
    )
    step()
    ((args, kwargs, opt),) = built
    assert args[1] == "adam" and kwargs["device"] == torch.device("cpu")
    assert isinstance(opt, torch.optim.Adam) and not opt.defaults.get("fused")


def test_train_speed_measures_from_the_warmup_step(tmp_path: Path) -> None:
    import train_speed

    # The run logs every `warmup` steps (a log line waits for the device), not every step.
    lines = [{"step": s, "elapsed_s": 0.5 * s, "videos": 4 * s} for s in (3, 6, 9, 12, 14)]
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = train_speed.measure(tmp_path, warmup=3)
    assert r["measured_steps"] == 11 and r["measured_videos"] == 44
    assert r["videos_per_s"] == pytest.approx(44 / 5.5)
    with pytest.raises(RuntimeError, match="no line for step 4"):
        train_speed.measure(tmp_path, warmup=4)
    with pytest.raises(RuntimeError, match="no line for step 14"):
        train_speed.measure(tmp_path, warmup=14)


def _entry(model: str, mode: str, config: str, batch: int, vps: float) -> dict:
    return {
        "model": model,
        "mode": mode,
        "config": config,
        "batch": batch,
        "status": "ok",
        "videos_per_s": vps,
    }


def test_ratios_and_targets() -> None:
    entries = [
        _entry("ceflnet_resnet18", "inference", "fp32", 64, 500.0),
        _entry("ceflnet_resnet18", "inference", "bf16_cl", 64, 1000.0),
        _entry("ceflnet_resnet18", "inference", "bf16_cl_compile", 64, 1500.0),
        _entry("ceflnet_resnet18", "training", "bf16_cl_compile", 32, 300.0),
        {**_entry("r3d_18", "training", "fp32", 32, 0.0), "status": "oom"},
    ]
    throughput.add_ratios(entries)
    assert entries[2]["speedup_vs_fp32"] == pytest.approx(3.0)
    assert entries[2]["speedup_vs_bf16_cl"] == pytest.approx(1.5)
    assert entries[3]["speedup_vs_fp32"] is None  # fp32 training was not measured
    assert "speedup_vs_fp32" not in entries[4]

    on_h100 = {t["mode"]: t for t in throughput.evaluate_targets(entries, "NVIDIA H100 80GB HBM3")}
    assert on_h100["inference"]["met"] is True
    assert on_h100["inference"]["ratio_to_target"] == pytest.approx(1500 / 1400)
    assert on_h100["training"]["met"] is False
    assert "--profile" in on_h100["training"]["where_the_time_goes"]
    on_cpu = throughput.evaluate_targets(entries, "Intel(R) Xeon(R) Processor")
    assert all(t["met"] is None and "H100" in t["why_not_judged"] for t in on_cpu)
    assert on_h100["inference"]["judged_on"] == "NVIDIA H100 80GB HBM3"
    assert "note" not in on_h100["inference"]
    on_pcie = throughput.evaluate_targets(entries, "NVIDIA H100 PCIe")
    assert all("lower bf16 peak" in t["note"] for t in on_pcie)
    on_h200 = throughput.evaluate_targets(entries[:1], "NVIDIA H200")
    assert all(t["met"] is None and "not measured" in t["why_not_judged"] for t in on_h200)


def test_throughput_cli_writes_json_and_merges(tmp_path: Path) -> None:
    out = tmp_path / "throughput_test.json"
    common = [
        "--device",
        "cpu",
        "--models",
        "ceflnet_tiny",
        "--img-size",
        "32",
        "--quick",
        "--no-roof",
        "--modes",
        "inference",
        "--output",
        str(out),
    ]
    assert throughput.main([*common, "--configs", "fp32"]) == 0
    first = json.loads(out.read_text())
    assert first["benchmark"] == "throughput" and first["device_slug"] == "cpu"
    assert [(e["config"], e["batch"], e["run"]) for e in first["entries"]] == [("fp32", 1, 0)]
    assert {t["mode"] for t in first["targets"]} == {"inference", "training"}

    assert throughput.main([*common, "--configs", "bf16_cl", "--merge"]) == 0
    merged = json.loads(out.read_text())
    assert [(e["config"], e["run"]) for e in merged["entries"]] == [("fp32", 0), ("bf16_cl", 1)]
    assert len(merged["runs"]) == 2
    assert merged["entries"][1]["speedup_vs_fp32"] == pytest.approx(
        merged["entries"][1]["videos_per_s"] / merged["entries"][0]["videos_per_s"]
    )


def test_quick_mode_defaults_exclude_compile() -> None:
    args = throughput.parse_args(["--device", "cpu", "--quick"])
    assert args.configs == ["fp32", "bf16_cl"]
    assert args.infer_batch == [1] and args.train_batch == [1]
    assert args.models[0] == "ceflnet_resnet18" and "swin3d_t" in args.models
    with pytest.raises(SystemExit):
        throughput.parse_args(["--configs", "fp16"])


# ---------------------------------------------------------------------------- common


def test_gpu_peaks_and_slug() -> None:
    assert _common.peak_bf16_tflops("NVIDIA H100 80GB HBM3")["tflops"] == 989.4
    assert _common.peak_bf16_tflops("NVIDIA H100 PCIe")["tflops"] == 756.0
    assert _common.peak_bf16_tflops("NVIDIA H200")["label"].startswith("H200")
    assert _common.peak_bf16_tflops("NVIDIA L4")["tflops"] == 121.0
    assert _common.peak_bf16_tflops("Intel(R) Xeon(R) Processor") is None
    assert _common.device_slug("cpu") == "cpu"


def test_environment_names_the_cpu_features_and_gpu_driver(monkeypatch) -> None:
    """bf16 on a CPU is 5-10x faster with AMX: the result says which CPU it had."""
    machine = _common.environment("cpu")["machine"]
    assert set(machine["cpu_flags"]) <= set(_common.CPU_FLAGS_OF_INTEREST)
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()

    class Done:
        stdout = "580.65.06, 1980, 1755, 700.00\n"

    seen = []
    monkeypatch.setattr(_common.subprocess, "run", lambda argv, **kw: seen.append(argv) or Done)
    assert _common.gpu_driver_info(1) == {
        "driver": "580.65.06",
        "sm_clock_max_mhz": "1980",
        "sm_clock_mhz": "1755",
        "power_limit_w": "700.00",
    }
    assert "--id=1" in seen[0]

    def missing(argv, **kw):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(_common.subprocess, "run", missing)
    assert _common.gpu_driver_info(0) == {}


def test_matmul_roof_reports_its_math() -> None:
    roof = _common.matmul_roof("cpu", torch.float32, n=64, repeats=1, iters=1)
    assert roof["tf32"] is False and roof["n"] == 64 and roof["tflops"] > 0
    assert torch.backends.cuda.matmul.allow_tf32 is False  # left as it was


def test_time_fn_counts_calls_and_write_json_cleans(tmp_path: Path) -> None:
    calls = []
    t = _common.time_fn(lambda: calls.append(1), "cpu", warmup=2, repeats=3, iters=4)
    assert len(calls) == 2 + 3 * 4 and len(t["repeat_s"]) == 3
    assert t["median_s"] == sorted(t["repeat_s"])[1]
    with pytest.raises(ValueError):
        _common.time_fn(lambda: None, "cpu", repeats=0)
    path = _common.write_json(tmp_path / "r.json", {"a": math.nan, "b": (1, 2)})
    assert json.loads(path.read_text()) == {"a": None, "b": [1, 2]}


# ------------------------------------------------------------------------------ tables


def _throughput_json() -> dict:
    entries = [
        {
            **_entry("ceflnet_resnet18", "inference", "fp32", 64, 534.0),
            "achieved_tflops": 68.0,
            "memory": {"kind": "cuda_max_memory_allocated", "peak_mib": 1000.0},
        },
        {
            **_entry("ceflnet_resnet18", "inference", "bf16_cl_compile", 64, 1602.0),
            "achieved_tflops": 204.0,
            "fraction_of_measured_roof": 0.258,
            "memory": {"kind": "cuda_max_memory_allocated", "peak_mib": 2048.0},
            "profile": {
                "sort_by": "self_cuda_time",
                "ops": [
                    {"op": "aten::cudnn_convolution", "self_ms_per_step": 25.0, "share": 0.62},
                    {"op": "aten::native_batch_norm", "self_ms_per_step": 4.5, "share": 0.11},
                ],
            },
        },
        {**_entry("swin3d_t", "training", "fp32", 64, 0.0), "status": "oom"},
        {
            **_entry("ceflnet_resnet18", "training", "bf16_cl_compile", 32, 312.0),
            "step_s": 32 / 312.0,
            "achieved_tflops": 120.0,
            "memory": {"kind": "cuda_max_memory_allocated", "peak_mib": 9000.0},
            "profile": {
                "sort_by": "self_cuda_time",
                "device_busy_ms_per_step": 46.2,
                "device_busy_share_of_step": 0.45,
                "ops": [
                    {
                        "op": "sm90_xmma_dgrad_implicit_gemm",
                        "self_ms_per_step": 20.0,
                        "share": 0.43,
                    },
                    {
                        "op": "triton_red_fused_native_batch_norm",
                        "self_ms_per_step": 9.0,
                        "share": 0.19,
                    },
                ],
                "cpu_ops": [],
            },
        },
    ]
    throughput.add_ratios(entries)
    return {
        "benchmark": "throughput",
        "device_slug": "nvidia-h100-80gb-hbm3",
        "environment": {
            "device": {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"},
            "date": "2026-01-02T03:04:05+00:00",
            "versions": {"torch": "2.14.1"},
            "machine": {"cpu_model": "Xeon", "usable_cpus": 16},
            "command": "python benchmarks/throughput.py --device cuda",
        },
        "matmul_roof": {"bfloat16": {"dtype": "bfloat16", "n": 8192, "tflops": 790.0}},
        "bf16_peak": {"label": "H100 SXM", "tflops": 989.4},
        "entries": entries,
        "targets": throughput.evaluate_targets(entries, "NVIDIA H100 80GB HBM3"),
    }


@pytest.fixture()
def results_dir(tmp_path: Path, quick_complexity: tuple[Path, dict]) -> Path:
    d = tmp_path / "results"
    d.mkdir()
    (d / "complexity.json").write_text(quick_complexity[0].read_text())
    (d / "throughput_nvidia-h100-80gb-hbm3.json").write_text(json.dumps(_throughput_json()))
    return d


def test_tables_render_the_json_numbers(results_dir: Path, quick_complexity) -> None:
    blocks = tables.render_blocks(results_dir)
    assert {
        "complexity-paper",
        "complexity-table9",
        "throughput-nvidia-h100-80gb-hbm3",
        "throughput-targets",
        "results-index",
    } <= set(blocks)
    data = quick_complexity[1]
    ours = data["paper_table8"][-1]
    paper = blocks["complexity-paper"]
    row = next(line for line in paper.splitlines() if line.startswith("| CEFLNet"))
    assert f"| {ours['params'] / 1e6:.2f} |" in row and f"| {ours['macs'] / 1e9:.2f} |" in row
    assert f"{ours['params_rel_diff'] * 100:+.1f} %" in row
    assert "| C3D (quoted) | C3D | 79.99 | - |" in paper
    t9 = blocks["complexity-table9"].splitlines()
    assert t9[2].startswith("| 2 | 25.52 | " + f"{data['paper_table9'][0]['macs'] / 1e9:.2f}")
    tp = blocks["throughput-nvidia-h100-80gb-hbm3"]
    cefl = next(line for line in tp.splitlines() if line.startswith("| `ceflnet_resnet18`"))
    assert "| 534 |" in cefl and "| 1,602 |" in cefl and "| 3.00x |" in cefl
    assert "| 25.8 % |" in cefl and "| 2,048 |" in cefl
    assert "| oom |" in tp and "790" in tp and "989.4" in tp
    prof = blocks["throughput-profile-nvidia-h100-80gb-hbm3"]
    assert "| `aten::cudnn_convolution` | 25.0 | 62.0 % |" in prof
    assert "| `aten::native_batch_norm` | 4.50 | 11.0 % |" in prof and "self_cuda_time" in prof
    assert "training, bf16 + CL + compile, batch 32 (GPU busy 45.0 % of the step)" in prof
    assert "Share: of the GPU's kernel time" in prof
    targets = blocks["throughput-targets"]
    assert "| 1,400 | 1,602 | 1.14x | met | - |" in targets
    # A missed target says where the time goes: GPU idle share and the top kernels.
    missed = next(line for line in targets.splitlines() if "| 390 |" in line)
    assert "| 390 | 312 | 0.80x | not met | GPU busy 45.0 % of the 103 ms step; top: " in missed
    assert "`sm90_xmma_dgrad_implicit_gemm` 43.0 %" in missed


def test_gpu_status_says_what_ran_on_a_gpu(results_dir: Path, tmp_path: Path) -> None:
    status = tables.render_blocks(results_dir)["gpu-status"]
    assert status.startswith(
        "GPU results from NVIDIA H100 80GB HBM3 (2026-01-02): "
        "`throughput_nvidia-h100-80gb-hbm3.json`."
    )
    session = {
        "benchmark": "gpu_session",
        "device_slug": "nvidia-h100-80gb-hbm3",
        "environment": {"device": {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"}},
        "steps": [
            {"name": "throughput_inference", "status": "ok"},
            {"name": "data", "status": "skipped"},
        ],
    }
    (results_dir / "gpu_session_nvidia-h100-80gb-hbm3.json").write_text(json.dumps(session))
    # A CPU rehearsal of the session (gpu_session.py --device cpu --quick) is not listed.
    rehearsal = {**session, "device_slug": "cpu", "environment": {"device": {"type": "cpu"}}}
    (results_dir / "gpu_session_cpu.json").write_text(json.dumps(rehearsal))
    status = tables.render_blocks(results_dir)["gpu-status"]
    assert "throughput_inference ok, data skipped" in status and "gpu_session_cpu" not in status
    assert "gpu_session_nvidia-h100-80gb-hbm3.json" in status
    cpu_only = tmp_path / "cpu_only"
    cpu_only.mkdir()
    (cpu_only / "complexity.json").write_text((results_dir / "complexity.json").read_text())
    assert tables.render_blocks(cpu_only)["gpu-status"].startswith("No GPU result is committed")


def test_data_table_judges_each_path_and_treats_gpu_rows_apart(tmp_path: Path) -> None:
    data = {
        "benchmark": "data",
        "environment": {"device": {"type": "cuda", "name": "NVIDIA H200"}, "date": "2026-12-01"},
        "config": {"threads": 1, "videos": 12, "frames": 120, "size": 224},
        "target_frames_per_s": 11_000,
        "target_source": "throughput_nvidia-h200.json",
        "results": [
            {"path": "pyav_seek", "frames_per_s": 400.0, "workers_for_target": 27.5},
            {"path": "cache_jpeg_gpu", "frames_per_s": 52_000.0, "workers_for_target": 0.4},
        ],
    }
    path = tmp_path / "data_nvidia-h200.json"
    path.write_text(json.dumps(data))
    block = tables._data(path, data)["data-pipeline-nvidia-h200"]
    lines = block.splitlines()
    assert lines[2].startswith("| video file, PyAV seek") and lines[2].endswith("| 27.5 | no |")
    assert lines[3].startswith("| frame cache, JPEG decoded on the GPU")
    assert lines[3].endswith("| - | yes |")  # one batched process: no worker count
    assert "otherwise idle GPU" in block


def test_update_and_check_blocks(results_dir: Path, tmp_path: Path, capsys) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(
        "# Title\n\nintro\n\n<!-- bench:complexity-table9 -->\nold table\n"
        "<!-- /bench:complexity-table9 -->\n\noutro\n"
    )
    args = ["--results", str(results_dir)]
    assert tables.main([*args, "--check", str(doc)]) == 1
    assert "stale block(s) complexity-table9" in capsys.readouterr().err
    assert tables.main([*args, "--update", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nintro\n\n<!-- bench:complexity-table9 -->\n| Frames")
    assert text.endswith("<!-- /bench:complexity-table9 -->\n\noutro\n") and "old table" not in text
    assert tables.main([*args, "--check", str(doc)]) == 0
    # Editing a generated number by hand makes the block stale again.
    doc.write_text(text.replace("| 25.52 |", "| 25.50 |"))
    assert tables.main([*args, "--check", str(doc)]) == 1


def test_markers_in_code_are_examples_not_blocks(results_dir: Path) -> None:
    blocks = tables.render_blocks(results_dir)
    text = (
        "Use `<!-- bench:NAME -->` markers:\n\n```markdown\n<!-- bench:complexity-paper -->\n"
        "<!-- /bench:complexity-paper -->\n```\n\n<!-- bench:complexity-table9 -->\n"
        "<!-- /bench:complexity-table9 -->\n"
    )
    new, changed = tables.update_text(text, blocks)
    assert changed == ["complexity-table9"]
    assert new.startswith(text.split("<!-- bench:complexity-table9 -->")[0])
    assert new.count("| Frames per clip |") == 1 and "| Method |" not in new


def test_block_errors_are_specific(results_dir: Path, tmp_path: Path, capsys) -> None:
    blocks = tables.render_blocks(results_dir)
    with pytest.raises(ValueError, match="unknown block 'nope'.*complexity-paper"):
        tables.update_text("<!-- bench:nope -->x<!-- /bench:nope -->", blocks, "doc.md")
    with pytest.raises(ValueError, match="doc.md: <!-- bench:complexity-paper --> has no closing"):
        tables.update_text("<!-- bench:complexity-paper -->\nx\n", blocks, "doc.md")
    assert (
        tables.main(["--results", str(results_dir), "--check", str(tmp_path / "missing.md")]) == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_generic_tables_from_other_benchmarks(results_dir: Path) -> None:
    (results_dir / "data.json").write_text(
        json.dumps(
            {
                "benchmark": "data",
                "environment": {"date": "2026-01-01"},
                "tables": {
                    "data-pipeline": {
                        "columns": ["Path", "frames/s"],
                        "rows": [["PyAV seek", 2900], ["frame folder", 1665.5]],
                        "caption": "decoded frames per second",
                    }
                },
            }
        )
    )
    block = tables.render_blocks(results_dir)["data-pipeline"]
    assert "| PyAV seek | 2,900 |" in block and "| frame folder | 1,666 |" in block
    assert "decoded frames per second" in block
    (results_dir / "dup.json").write_text(
        json.dumps({"benchmark": "x", "tables": {"data-pipeline": {"columns": ["a"], "rows": []}}})
    )
    with pytest.raises(ValueError, match="block 'data-pipeline' is produced by both"):
        tables.render_blocks(results_dir)


def test_committed_readme_tables_match_committed_results() -> None:
    readme = BENCH / "README.md"
    stale = tables.check_file(readme, tables.render_blocks(BENCH / "results"))
    assert stale == [], (
        f"benchmarks/README.md blocks {stale} do not match benchmarks/results/*.json; run "
        "`python benchmarks/tables.py --update benchmarks/README.md`"
    )


def test_results_index_names_the_command_behind_every_committed_file() -> None:
    index = tables.render_blocks(BENCH / "results")["results-index"]
    for path in sorted((BENCH / "results").glob("*.json")):
        data = json.loads(path.read_text())
        row = next(line for line in index.splitlines() if line.startswith(f"| `{path.name}`"))
        assert "`?`" not in row, row
        assert f"`{data['environment']['command']}`" in row or any(
            f"`{r['environment']['command']}`" in row
            for r in data.get("runs", [])
            if "environment" in r
        ), row


# -- accuracy.py ----------------------------------------------------------------------------


def test_accuracy_peer_takes_zoo_videos_and_matches_the_tiny_cost():
    import accuracy

    from cefl_zoo.complexity import count_macs, count_parameters

    peer, tiny = (
        accuracy.build_model("r3d_tiny").eval(),
        accuracy.build_model("ceflnet_tiny").eval(),
    )
    x = torch.randn(2, 7, 2, 3, 32, 32)  # (B, N, K, 3, H, W), as the trainer feeds every model
    assert peer(x).shape == (2, 7) and peer.forward_explain(x).clip_scores is None
    ratio = count_parameters(peer) / count_parameters(tiny)
    assert 0.8 < ratio < 1.25, (
        f"the 3-D CNN peer should match ceflnet_tiny's size, ratio {ratio:.2f}"
    )
    assert count_macs(peer, x[:1]) < 3 * count_macs(tiny, x[:1])
    peer.reset_classifier(3)
    assert peer(x).shape == (2, 3)
    # The ablation rows differ from ceflnet_tiny only in what Table 6 varies: same backbone.
    sal = accuracy.build_model("sal")
    assert type(sal.backbone) is type(tiny.backbone)


def test_accuracy_summary_averages_seeds_and_renders(tmp_path):
    import accuracy

    runs = [
        {
            "model": m,
            "seed": s,
            "params": 1000,
            "macs": 2e6,
            "war": w,
            "uar": w - 0.1,
            "clip_locating_gt_class": loc,
            "clip_locating_pred_class": loc,
            "train_seconds": 10.0,
        }
        for m, s, w, loc in [
            ("ceflnet_tiny", 0, 0.9, 0.7),
            ("ceflnet_tiny", 1, 0.8, 0.5),
            ("frame_average", 0, 0.6, None),
        ]
    ]
    args = accuracy.parse_args(["--seeds", "0,1", "--models", "ceflnet_tiny,frame_average"])
    rows = accuracy.summarise(runs, args.models)
    assert rows[0]["war"] == pytest.approx(0.85) and rows[0]["war_std"] == pytest.approx(
        0.0707, abs=1e-4
    )
    assert rows[1]["clip_locating_gt_class"] is None
    block = accuracy.table(rows, args)
    assert block["rows"][0][3] == "85.0 ± 7.1" and block["rows"][1][5] == "-"
    assert "2 seeds" in block["caption"]
    path = tmp_path / "acc.json"
    cfg = {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")}
    path.write_text(json.dumps({"benchmark": "accuracy", "config": cfg, "runs": runs}))
    again = accuracy.rerender(path)
    assert again["tables"]["accuracy-synthetic"]["rows"] == block["rows"]


def test_train_speed_renders_few_videos_and_links_the_rest(tmp_path: Path) -> None:
    import csv

    import train_speed

    from cefl_zoo.data import build_dataset

    root = train_speed.synthetic_data(tmp_path, videos=5, size=16, distinct=2)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [f"videos/{i:05d}.mp4" for i in range(5)]
    base = tmp_path / "synth_2_16_2"
    with open(base / "labels.csv", newline="") as f:
        originals = list(csv.DictReader(f))
    for i, row in enumerate(rows):  # row i is original i % 2: same label, same file
        src = originals[i % 2]
        assert (row["label"], row["apex_frame"]) == (src["label"], src["apex_frame"])
        assert (root / row["path"]).read_bytes() == (base / src["path"]).read_bytes()
    assert len(build_dataset("synthetic", root, split="train")) == 5
    # a second call finds the folder and writes nothing
    mtime = (root / "labels.csv").stat().st_mtime_ns
    assert train_speed.synthetic_data(tmp_path, videos=5, size=16, distinct=2) == root
    assert (root / "labels.csv").stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".*partial"))
    # The frame cache decodes the 2 distinct videos once and gives all 5 rows an entry.
    from cefl_zoo.data import CachedVideoDataset

    cache = train_speed.frame_cache(tmp_path, root, size=16, num_clips=2, frames=2, workers=0)
    cached = CachedVideoDataset(cache, split=None)
    base_cache = CachedVideoDataset(tmp_path / "cache_synth_2_16_2_2x2", split=None)
    assert len(cached) == 5 and len(base_cache) == 2
    assert sorted(item.path.rsplit("/", 1)[-1] for item in cached.items) == [
        f"{i:05d}.mp4" for i in range(5)
    ]
    for i in range(5):
        a, b = cached[i], base_cache[i % 2]
        assert torch.equal(a["video"], b["video"]) and a["label"] == b["label"]
    assert not list(tmp_path.glob(".*partial"))


def test_train_speed_warmup_covers_the_prefetched_batches() -> None:
    import train_speed

    assert train_speed.schedule(5, 30, workers=0, prefetch_factor=2) == (5, 35)
    # 15 workers x 2 batches queued by the end of step 1: timing starts after them.
    warm, total = train_speed.schedule(5, 30, workers=15, prefetch_factor=2)
    assert warm >= 5 + 30 and warm % 5 == 0 and total == warm + 30


def test_data_need_follows_the_measured_training_speed(tmp_path: Path) -> None:
    import data as data_bench

    tp = tmp_path / "throughput_x.json"
    tp.write_text(
        json.dumps(
            {
                "benchmark": "throughput",
                "entries": [
                    {
                        "model": "ceflnet_resnet18",
                        "source": "cefl_zoo",
                        "mode": "training",
                        "config": "fp32",
                        "batch": 32,
                        "videos_per_s": 100.0,
                        "status": "ok",
                    },
                    {
                        "model": "ceflnet_resnet18",
                        "source": "cefl_zoo",
                        "mode": "training",
                        "config": "bf16_cl_compile",
                        "batch": 32,
                        "videos_per_s": 420.0,
                        "status": "ok",
                    },
                    {
                        "model": "ceflnet_resnet18",
                        "source": "cefl_zoo",
                        "mode": "training",
                        "config": "bf16_cl_compile",
                        "batch": 64,
                        "videos_per_s": 9e9,
                        "status": "error",
                    },
                    {
                        "model": "ceflnet_resnet18",
                        "mode": "inference",
                        "config": "bf16_cl_compile",
                        "batch": 64,
                        "videos_per_s": 1500.0,
                    },
                    {
                        "model": "r3d_18",
                        "mode": "training",
                        "config": "fp32",
                        "batch": 32,
                        "videos_per_s": 900.0,
                    },
                ],
            }
        )
    )
    need = data_bench.needed_frames_per_s(tp, 35)
    assert need["frames_per_s"] == 420 * 35
    assert "bf16_cl_compile batch 32" in need["source"] and "throughput_x.json" in need["source"]
    ts = tmp_path / "train_speed_x.json"
    ts.write_text(
        json.dumps(
            {
                "benchmark": "train_speed",
                "results": [
                    {
                        "model": "ceflnet_resnet18",
                        "source": "cache",
                        "config": "bf16_cl_compile",
                        "batch_size": 32,
                        "videos_per_s": 50.0,
                    },
                    {
                        "model": "ceflnet_resnet18",
                        "source": "memory",
                        "config": "bf16_cl_compile",
                        "batch_size": 32,
                        "videos_per_s": 400.0,
                    },
                ],
            }
        )
    )
    assert data_bench.needed_frames_per_s(ts, 35)["frames_per_s"] == 400 * 35  # compute only
    for missing in (None, tmp_path / "nothing.json"):
        fallback = data_bench.needed_frames_per_s(missing, 35)
        assert fallback["frames_per_s"] == data_bench.TARGET_FRAMES_PER_S
    assert (
        "nothing.json: no ceflnet_resnet18"
        in data_bench.needed_frames_per_s(tmp_path / "nothing.json", 35)["source"]
    )
    # The committed throughput result, as throughput.py writes it, has such a number.
    committed = data_bench.needed_frames_per_s(BENCH / "results" / "throughput_cpu.json", 35)
    assert "ceflnet_resnet18 training" in committed["source"]


def test_data_batched_decode_rows_run_on_the_cpu(tmp_path: Path) -> None:
    # The --gpu-decode path of data.py, on the CPU here: same code, libjpeg instead of nvJPEG.
    import data as data_bench

    from cefl_zoo.data import SyntheticVideoDataset, build_frame_cache, write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "s", num_videos=2, size=32, progress=False)
    cache = build_frame_cache(
        SyntheticVideoDataset(tmp_path / "s", split=None),
        tmp_path / "c",
        format="jpeg",
        progress=False,
    )
    rows = data_bench.batched_decode_rows(cache, "cpu", batch_videos=3, size=24, repeats=1)
    assert [r["path"] for r in rows] == ["cache_jpeg_gpu", "cache_jpeg_gpu_transform"]
    for r in rows:
        assert (r["batch_videos"], r["batches"], r["videos"]) == (3, 4, 12)  # 4 timed batches
        assert r["frames"] == 4 * 3 * 35 and r["videos_per_s"] > 0
        assert r["videos_per_s"] == pytest.approx(r["frames_per_s"] / 35, rel=1e-3)


def test_update_places_the_blocks_of_a_new_device_after_the_cpu_ones(tmp_path: Path) -> None:
    import shutil

    results = tmp_path / "results"
    shutil.copytree(BENCH / "results", results)
    gpu = json.loads((results / "throughput_cpu.json").read_text())
    gpu["device_slug"] = "nvidia-h200"
    (results / "throughput_nvidia-h200.json").write_text(json.dumps(gpu))
    doc = tmp_path / "README.md"
    shutil.copyfile(BENCH / "README.md", doc)
    blocks = tables.render_blocks(results)
    assert "throughput-nvidia-h200" in blocks
    changed = tables.update_file(doc, blocks)
    assert {"throughput-nvidia-h200", "throughput-profile-nvidia-h200"} <= set(changed)
    text = doc.read_text()
    cpu_end = text.index("<!-- /bench:throughput-cpu -->")
    gpu_start = text.index("<!-- bench:throughput-nvidia-h200 -->")
    assert cpu_end < gpu_start < text.index("<!-- bench:throughput-profile-cpu -->")
    assert blocks["throughput-nvidia-h200"].strip() in text
    assert tables.check_file(doc, blocks) == []  # placed once, then up to date
    assert tables.update_file(doc, blocks) == []


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
@pytest.mark.parametrize(
    "script, argv",
    [
        ("data", ["--quick", "--device", "cuda"]),
        ("train_speed", ["--quick", "--device", "cuda"]),
        ("predict_speed", ["--device", "cuda"]),
    ],
)
def test_cuda_scripts_on_a_machine_without_cuda_say_so_in_one_line(script, argv, tmp_path):
    import importlib

    module = importlib.import_module(script)
    out = ["--out" if script == "train_speed" else "--output", str(tmp_path / "x.json")]
    with pytest.raises(SystemExit, match="--device cuda: no CUDA device is visible to PyTorch"):
        module.main([*argv, *out])
    assert not (tmp_path / "x.json").exists()
