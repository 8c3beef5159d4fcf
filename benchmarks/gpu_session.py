"""Every GPU measurement and check of the project in one call, inside a time budget.

A lent GPU comes for a few minutes at a time, so what needs one is prepared here and run
as one command, most important first. Each step is one of the other benchmark scripts
(or the ``cuda``-marked tests) in its own process, with a time limit of its own and the
time left; a step cut off at its limit keeps what it wrote (the throughput and training
speed scripts rewrite their JSON after every measurement), and the next step starts.

Steps, in order (``--steps`` picks some; ``--list`` prints the plan):

1. ``smoke``: CUDA is visible, ``cefl_zoo`` imports, a bf16 forward of the paper's
   model runs; PyAV present or not. The session stops here if this fails.
2. ``throughput_inference`` / 3. ``throughput_training``: ``throughput.py`` for
   ``ceflnet_resnet18`` (bf16 + channels_last + compile first, then bf16 + CL, fp32;
   batch 64 / 32) with ``--profile``: the H100/H200 targets and where the time goes.
4. ``throughput_peers``: torchvision's video models in bf16 + CL, same batches, merged
   into the throughput file (issue 8, point 2).
5. ``data``: ``data.py --device cuda``, the data pipeline (nvJPEG rows first) against
   the frames/s that the training speed measured in step 3 consumes (point 3). Needs
   PyAV.
6. ``cuda_tests``: ``pytest -m cuda`` (the tests that skip without a GPU, e.g. nvJPEG
   decoding next to queued kernels). Needs PyAV.
7. ``train_speed``: the trainer end to end (bf16 + CL + compile, batch 32; the eager and
   fp32 rows are step 3's) from memory on the GPU (the compute roof), from the JPEG frame
   cache decoded on the GPU (nvJPEG) and in CPU workers, and from mp4. Its warm-up
   covers the batches the loader workers queue, so the pipeline itself is timed. Needs
   PyAV.
8. ``throughput_peers_fp32``: the peers in fp32 (their bf16 speed-ups).

Each step has its own time limit and a minimum it needs to be started at all; the
default ``--budget`` (500 s) leaves a 600 s command room for start-up, and the order
means the targets are measured before anything else can run out of time. A failed
``--wheels`` install is logged and only skips the steps that need PyAV.

Results go to ``--out``: ``throughput_<slug>.json``, ``train_speed_<slug>.json``,
``data_<slug>.json`` (the names ``benchmarks/results/`` uses), ``session.log`` (every
step's output) and ``session.json`` (what ran, how long, how it ended).

On the machine this workplace lends through its ``device`` tool (PyAV is not installed
there; carry its wheel)::

    # here, once: python3 -m pip download --no-deps --only-binary=:all: \\
    #     --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \\
    #     -d .whl av==18.1.0
    # there, with carry [".whl"] and timeout_s 600:
    CEFL_ZOO_GIT_COMMIT=<commit> python3 benchmarks/gpu_session.py --out $OUT --wheels .whl

and back here::

    python benchmarks/gpu_session.py --collect <folder the files came back to>

which copies the result files into ``benchmarks/results/`` and regenerates the tables.
``--device cpu --quick`` runs the same plan with small settings (a test does).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, REPO_ROOT, device_slug, environment, write_json

__all__ = ["STEP_NAMES", "Step", "collect", "main", "plan", "run_session", "run_step"]

#: The steps in the order they run.
STEP_NAMES = (
    "smoke",
    "throughput_inference",
    "throughput_training",
    "throughput_peers",
    "data",
    "cuda_tests",
    "train_speed",
    "throughput_peers_fp32",
)

#: torchvision's video models, as ``throughput.py`` names them.
PEERS = "r3d_18,r2plus1d_18,mc3_18,s3d,mvit_v2_s,swin3d_t"

SMOKE = """
import sys, time, torch
t0 = time.perf_counter()
dev = sys.argv[1]
if dev.startswith("cuda") and not torch.cuda.is_available():
    raise SystemExit("no CUDA device is visible to PyTorch")
import cefl_zoo
model = cefl_zoo.create_model(sys.argv[2]).to(dev).eval()
size = model.pretrained_cfg.input_size[-1]
x = torch.randn(2, 7, 5, 3, size, size, device=dev)
with torch.inference_mode(), torch.autocast(torch.device(dev).type, dtype=torch.bfloat16):
    out = model.forward_explain(x)
assert out.logits.shape == (2, 7) and torch.isfinite(out.logits.float()).all()
try:
    import av
    have_av = av.__version__
except ImportError:
    have_av = None
name = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
print(f"device {name}; torch {torch.__version__}; cefl_zoo {cefl_zoo.__version__}; "
      f"PyAV {have_av}; forward ok in {time.perf_counter() - t0:.1f} s")
"""


@dataclass
class Step:
    """One command of the session.

    Attributes:
        name: Step name (``STEP_NAMES``).
        argv: The command.
        cap_s: Its own time limit; it also gets no more than the session has left.
        output: The result file it writes in ``--out`` (``None``: none).
        needs_av: Skipped (with the reason) where PyAV does not import.
        required: The session stops if this step fails.
        min_s: Not started with less than this left of the budget (it could not finish
            anything useful); ``None``: ``--min-step-s``.
    """

    name: str
    argv: list[str]
    cap_s: float
    output: str | None = None
    needs_av: bool = False
    required: bool = False
    min_s: float | None = None

    def least_s(self, default: float) -> float:
        """The budget this step needs left to be started (``default``: ``--min-step-s``)."""
        return self.min_s if self.min_s is not None else default

    def command(self) -> str:
        """The command as a shell line (the smoke test's script as ``<SMOKE>``)."""
        argv = [a if a != SMOKE else "<SMOKE>" for a in self.argv]
        return shlex.join(argv)


def plan(args: argparse.Namespace, slug: str) -> list[Step]:
    """The session's steps for ``args.device`` (smaller settings with ``args.quick``)."""
    py, dev, out = sys.executable, args.device, Path(args.out)
    bench = lambda name: f"benchmarks/{name}"
    quick = args.quick
    model = "ceflnet_tiny" if quick else "ceflnet_resnet18"
    tp_out = str(out / f"throughput_{slug}.json")
    timing = ["--warmup", "1", "--repeats", "2", "--iters", "1"] if quick else []
    small = ["--infer-batch", "2", "--train-batch", "2", "--img-size", "64"] if quick else []
    tp = [py, bench("throughput.py"), "--device", dev, "--models", model, *timing, *small]
    configs = "bf16_cl,fp32" if quick else "bf16_cl_compile,bf16_cl,fp32"

    def target_step(mode: str, cap_s: float, min_s: float) -> Step:
        """``ceflnet_resnet18`` in every configuration, profiled; training merges."""
        argv = [*tp, "--modes", mode, "--configs", configs, "--profile"]
        argv += ["--profile-models", model, *(["--merge"] if mode == "training" else [])]
        argv += ["--output", tp_out]
        return Step(f"throughput_{mode}", argv, cap_s, output=tp_out, min_s=20 if quick else min_s)

    def peers_step(name: str, config: str, cap_s: float, min_s: float) -> Step:
        """torchvision's video models in one configuration, merged into the file."""
        argv = [py, bench("throughput.py"), "--device", dev, "--models", PEERS]
        argv += ["--configs", config, "--warmup", "1" if quick else "2"]
        argv += ["--repeats", "3", "--iters", "5"]
        argv += ["--infer-batch", "1", "--train-batch", "1"] if quick else []
        argv += ["--merge", "--output", tp_out]
        return Step(name, argv, cap_s, output=tp_out, min_s=20 if quick else min_s)

    steps = [
        Step("smoke", [py, "-c", SMOKE, dev, model], 120, required=True),
        target_step("inference", 150, 60),
        target_step("training", 180, 90),
        peers_step("throughput_peers", "bf16_cl", 120, 45),
        Step(
            "data",
            [
                py,
                bench("data.py"),
                "--device",
                dev,
                *(["--quick"] if quick else []),
                "--training-speed",
                tp_out,  # the training speed just measured sets the need
                "--output",
                str(out / f"data_{slug}.json"),
            ],
            90,
            output=str(out / f"data_{slug}.json"),
            needs_av=True,
            min_s=20 if quick else 45,
        ),
        Step(
            "cuda_tests",
            [
                py,
                "-m",
                "pytest",
                "-q",
                "-m",
                "cuda",
                "-p",
                "no:cacheprovider",
                str(REPO_ROOT / "tests"),
            ],
            120,
            needs_av=True,
            min_s=20 if quick else 45,
        ),
        Step(
            "train_speed",
            [
                py,
                bench("train_speed.py"),
                "--device",
                dev,
                "--models",
                model,
                # The target configuration only: fp32 / eager are throughput.py's rows.
                "--configs",
                "fp32" if quick else "bf16_cl_compile",
                "--sources",
                "memory,cache,mp4" if quick else "memory,cache_gpu,cache,mp4",
                *(["--quick", "--workers", "1", "--distinct-videos", "4"] if quick else []),
                "--data-dir",
                str(Path(tempfile.gettempdir()) / "cefl_gpu_session_data"),
                "--out",
                str(out / f"train_speed_{slug}.json"),
            ],
            180,
            output=str(out / f"train_speed_{slug}.json"),
            needs_av=True,
            min_s=20 if quick else 90,
        ),
        peers_step("throughput_peers_fp32", "fp32", 120, 30),
    ]
    assert [s.name for s in steps] == list(STEP_NAMES)
    return [s for s in steps if s.name in args.steps]


def run_step(step: Step, timeout_s: float, log, env: dict[str, str]) -> dict[str, Any]:
    """Run one step in its own process group; stop the whole group at ``timeout_s``.

    ``log`` is a file opened for appending: the step's output goes there, between a
    header and a footer line.

    Returns ``name``, ``command``, ``status`` (``"ok"``, ``"failed"``, ``"timed_out"``),
    ``returncode``, ``seconds``, ``limit_s``, ``output`` (the name of the result file,
    where it exists) and ``tail`` (the step's last output lines).
    """
    log.write(f"\n===== {step.name}: {step.command()}\n")
    log.flush()
    begin = os.path.getsize(log.name)
    start = time.perf_counter()
    proc = subprocess.Popen(
        step.argv,
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    status = "ok"
    try:
        rc = proc.wait(timeout=max(1.0, timeout_s))
    except subprocess.TimeoutExpired:
        status = "timed_out"
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue
        rc = proc.returncode
    else:
        if rc != 0:
            status = "failed"
    try:  # whatever the step left running (loader workers, compile workers) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    seconds = time.perf_counter() - start
    tail = _tail(Path(log.name), begin)
    log.write(f"===== {step.name}: {status} (rc {rc}) after {seconds:.1f} s\n")
    log.flush()
    out = step.output if step.output and Path(step.output).is_file() else None
    return {
        "name": step.name,
        "command": step.command(),
        "status": status,
        "returncode": rc,
        "seconds": round(seconds, 1),
        "limit_s": round(timeout_s, 1),
        "output": Path(out).name if out else None,
        "tail": tail,
    }


def _tail(path: Path, start: int, lines: int = 12) -> list[str]:
    """The last ``lines`` non-empty lines written to ``path`` after byte ``start``."""
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    # tqdm redraws a line with carriage returns: keep the last state of each
    rows = [r.rstrip("\r").rsplit("\r", 1)[-1] for r in text.split("\n")]
    return [r for r in rows if r.strip()][-lines:]


def _install_wheels(wheels: Path, log) -> str:
    """pip-install every wheel in ``wheels`` into a temporary folder; return that folder."""
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    if not files:
        raise SystemExit(f"--wheels {wheels}: no .whl files there")
    site = tempfile.mkdtemp(prefix="cefl_wheels_")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        site,
        *files,
    ]
    log.write(f"===== wheels: {shlex.join(cmd)}\n")
    log.flush()
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return site


def run_session(args: argparse.Namespace) -> dict[str, Any]:
    """Run the planned steps within ``args.budget`` seconds; write ``session.json``."""
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "session.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    paths = [str(REPO_ROOT)]
    wheels_error = None
    with open(log_path, "a") as log:
        if args.wheels:
            try:  # without PyAV the steps that need it are skipped, the others still run
                paths.insert(0, _install_wheels(Path(args.wheels), log))
            except (SystemExit, subprocess.CalledProcessError, OSError) as err:
                wheels_error = f"{type(err).__name__}: {err}"
                log.write(f"===== wheels failed: {wheels_error}\n")
                print(f"gpu_session: --wheels {args.wheels}: {wheels_error}", flush=True)
        env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
        sys.path[:0] = paths
        have_av = (
            subprocess.run(
                [sys.executable, "-c", "import av"], check=False, env=env, capture_output=True
            ).returncode
            == 0
        )
        cuda = torch.device(args.device).type == "cuda"
        if cuda and not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to PyTorch")
        slug = device_slug(args.device)
        steps = plan(args, slug)
        summary: dict[str, Any] = {
            "benchmark": "gpu_session",
            "device": args.device,
            "device_slug": slug,
            "budget_s": args.budget,
            "pyav": have_av,
            "wheels_error": wheels_error,
            "environment": environment(args.device),
            "steps": [],
        }
        print(
            f"gpu_session: {slug}, budget {args.budget:.0f} s, PyAV "
            f"{'yes' if have_av else 'no'}; log {log_path}",
            flush=True,
        )
        stop = False
        for step in steps:
            left = args.budget - (time.perf_counter() - t0)
            record: dict[str, Any] = {"name": step.name}
            if stop:
                record.update(status="skipped", reason="an earlier required step failed")
            elif step.needs_av and not have_av:
                record.update(status="skipped", reason="PyAV does not import (carry its wheel)")
            elif left < step.least_s(args.min_step_s):
                record.update(status="skipped", reason=f"only {left:.0f} s of the budget left")
            else:
                record = run_step(step, min(step.cap_s * args.cap_scale, left), log, env)
                if step.required and record["status"] != "ok":
                    stop = True
            summary["steps"].append(record)
            write_json(out / "session.json", summary)
            line = f"  {step.name:22s} {record['status']:9s}"
            if "seconds" in record:
                line += f" {record['seconds']:6.1f} s of {record['limit_s']:.0f}"
            print(line + (f"  ({record['reason']})" if "reason" in record else ""), flush=True)
            if record["status"] in ("failed", "timed_out") or step.name == "smoke":
                for row in record.get("tail", [])[-(12 if record["status"] != "ok" else 1) :]:
                    print(f"      | {row[:160]}", flush=True)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        write_json(out / "session.json", summary)
    _print_headline(out, slug)
    return summary


def _print_headline(out: Path, slug: str) -> None:
    """The numbers that matter, last in the output (what a device reply shows)."""
    tp = out / f"throughput_{slug}.json"
    if tp.is_file():
        data = json.loads(tp.read_text())
        for t in data.get("targets", []):
            print(
                f"  target {t['mode']:9s} {t['config']} b{t['batch']}: measured "
                f"{t.get('measured_videos_per_s')} vs {t['target_videos_per_s']} videos/s, "
                f"met {t.get('met')}",
                flush=True,
            )
        for e in data.get("entries", []):
            if e.get("videos_per_s"):
                print(
                    f"  {e['model']:18s} {e['mode']:9s} {e['config']:16s} b{e['batch']:<3d} "
                    f"{e['videos_per_s']:9.1f} videos/s",
                    flush=True,
                )
    ts = out / f"train_speed_{slug}.json"
    if ts.is_file():
        for r in json.loads(ts.read_text()).get("results", []):
            print(
                f"  train_speed {r['model']} {r['config']} b{r['batch_size']} {r['source']:9s}"
                f" {r['videos_per_s']:8.1f} videos/s",
                flush=True,
            )


def collect(folder: str | Path, results_dir: str | Path | None = None) -> list[Path]:
    """Copy the result files a session wrote (``folder``) into ``benchmarks/results/``
    and regenerate the tables of ``README.md`` and ``benchmarks/README.md``.

    Only files whose ``benchmark`` is one the tables know are copied; ``session.json``
    (which steps ran, how each ended) becomes ``gpu_session_<slug>.json``, so the tables
    can say which steps were cut. Returns the copied paths.
    """
    folder = Path(folder)
    dest = Path(results_dir) if results_dir else BENCH_DIR / "results"
    planned = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        kind = data.get("benchmark")
        if kind in ("throughput", "train_speed", "data"):
            planned.append((path, dest / path.name, True))
        elif kind == "gpu_session" and data.get("device_slug"):
            planned.append((path, dest / f"gpu_session_{data['device_slug']}.json", False))
    if not any(is_result for _, _, is_result in planned):
        raise SystemExit(f"{folder}: no throughput/train_speed/data result files there")
    copied = []
    for path, target, _ in planned:
        shutil.copyfile(path, target)
        copied.append(target)
    if results_dir is None:
        subprocess.run(
            [
                sys.executable,
                str(BENCH_DIR / "tables.py"),
                "--update",
                str(REPO_ROOT / "README.md"),
                str(BENCH_DIR / "README.md"),
            ],
            check=True,
        )
    return copied


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for the results")
    p.add_argument("--budget", type=float, default=500.0, help="seconds for all steps")
    p.add_argument(
        "--cap-scale", type=float, default=1.0, help="multiply every step's own time limit"
    )
    p.add_argument(
        "--min-step-s", type=float, default=30.0, help="skip a step with less than this left"
    )
    p.add_argument("--steps", default=",".join(STEP_NAMES), help="comma-separated subset")
    p.add_argument("--wheels", default=None, help="folder of wheels to install first (PyAV)")
    p.add_argument("--quick", action="store_true", help="tiny settings (a CPU run of the plan)")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    p.add_argument("--collect", default=None, help="copy a session's results into results/")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.collect:
        for path in collect(args.collect):
            print(f"copied {path}")
        return 0
    args.steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(args.steps) - set(STEP_NAMES))
    if unknown:
        raise SystemExit(f"--steps: unknown step(s) {unknown}; choose from {list(STEP_NAMES)}")
    if args.list:
        args.out = args.out or "OUT"
        for step in plan(args, "<slug>"):
            print(
                f"{step.name} (limit {step.cap_s * args.cap_scale:.0f} s, started with "
                f">= {step.least_s(args.min_step_s):.0f} s left): {step.command()}"
            )
        return 0
    if not args.out:
        raise SystemExit("--out is required (or set $OUT)")
    summary = run_session(args)
    # A step cut off at its limit kept what it measured: that is the budget at work, not
    # a failure. A step that failed is.
    return 1 if any(s["status"] == "failed" for s in summary["steps"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
