"""benchmarks/gpu_session.py: the one-call GPU plan, its time budget and its bookkeeping,
run on the CPU with small settings (CI has no GPU)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_session


def _args(*argv: str):
    args = gpu_session.build_parser().parse_args(list(argv))
    args.steps = [s for s in args.steps.split(",") if s]
    return args


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_cuda_plan_runs_the_targets_first_and_writes_results_under_out(tmp_path):
    steps = gpu_session.plan(_args("--out", str(tmp_path)), "nvidia-h200")
    assert [s.name for s in steps] == list(gpu_session.STEP_NAMES)
    assert steps[0].required and not any(s.required for s in steps[1:])
    by = {s.name: s for s in steps}
    for name in ("throughput_inference", "throughput_training"):
        argv = by[name].argv
        assert _value(argv, "--models") == "ceflnet_resnet18"
        # the compiled bf16 configuration is the target: measured before anything else
        assert _value(argv, "--configs").split(",")[0] == "bf16_cl_compile"
        assert "--profile" in argv and _value(argv, "--device") == "cuda"
    assert "--merge" not in by["throughput_inference"].argv
    assert "--merge" in by["throughput_training"].argv
    for name, config in (("throughput_peers", "bf16_cl"), ("throughput_peers_fp32", "fp32")):
        argv = by[name].argv
        assert "--merge" in argv and _value(argv, "--configs") == config
        assert _value(argv, "--warmup") == "2"  # cuDNN autotunes in the first step
        assert set(_value(argv, "--models").split(",")) == {
            "r3d_18",
            "r2plus1d_18",
            "mc3_18",
            "s3d",
            "mvit_v2_s",
            "swin3d_t",
        }
    assert "cache_gpu" in _value(by["train_speed"].argv, "--sources")
    assert _value(by["train_speed"].argv, "--configs") == "bf16_cl_compile"  # the target's
    # Issue 8's deliverables first: the targets, the peers in bf16 (point 2), the data
    # pipeline against the training speed just measured (point 3); the GPU-only tests,
    # the trainer end to end and the fp32 peers take what time is left, in that order.
    assert [s.name for s in steps] == [
        "smoke",
        "throughput_inference",
        "throughput_training",
        "throughput_peers",
        "data",
        "cuda_tests",
        "train_speed",
        "throughput_peers_fp32",
    ]
    # No step is started where it cannot measure anything.
    assert by["throughput_training"].min_s >= 60 and by["train_speed"].min_s >= 60
    assert "pytest -q -m cuda" in by["cuda_tests"].command()
    outputs = {Path(s.output).name for s in steps if s.output}
    assert outputs == {
        "throughput_nvidia-h200.json",
        "train_speed_nvidia-h200.json",
        "data_nvidia-h200.json",
    }
    assert all(Path(s.output).parent == tmp_path for s in steps if s.output)
    # what needs PyAV says so (the lent machine has none unless its wheel is carried)
    assert {s.name for s in steps if s.needs_av} == {"train_speed", "cuda_tests", "data"}
    # the device tool returns at most 8 files: results + session.log + session.json
    assert len(outputs) + 2 <= 8


def test_steps_subset_and_unknown_step(tmp_path, capsys):
    steps = gpu_session.plan(_args("--out", str(tmp_path), "--steps", "data,smoke"), "x")
    assert [s.name for s in steps] == ["smoke", "data"]  # the plan's order, not the flag's
    with pytest.raises(SystemExit, match="unknown step"):
        gpu_session.main(["--out", str(tmp_path), "--steps", "smoke,warp"])
    assert gpu_session.main(["--list", "--steps", "smoke"]) == 0
    assert "smoke (limit 120 s, started with >= 30 s left)" in capsys.readouterr().out


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_a_step_past_its_limit_is_stopped_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    argv = _script(
        tmp_path,
        "slow.py",
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    log_path = tmp_path / "log"
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        rec = gpu_session.run_step(gpu_session.Step("slow", argv, 60), 2.0, log, dict(os.environ))
    assert rec["status"] == "timed_out" and rec["limit_s"] == 2.0
    assert time.perf_counter() - t0 < 30
    assert "started" in log_path.read_text()
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild went with the group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the step's child process survived the time limit")

    failing = _script(tmp_path, "fail.py", "raise SystemExit(3)")
    with open(log_path, "a") as log:
        rec = gpu_session.run_step(gpu_session.Step("f", failing, 60), 30, log, dict(os.environ))
    assert (rec["status"], rec["returncode"], rec["output"]) == ("failed", 3, None)


def test_cpu_session_runs_the_real_scripts_and_records_them(tmp_path, capsys):
    out = tmp_path / "out"
    rc = gpu_session.main(
        ["--device", "cpu", "--quick", "--out", str(out), "--steps", "smoke,throughput_inference"]
    )
    assert rc == 0
    summary = json.loads((out / "session.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [
        ("smoke", "ok"),
        ("throughput_inference", "ok"),
    ]
    smoke, tp = summary["steps"]
    assert "forward ok" in smoke["tail"][-1] and "<SMOKE>" in smoke["command"]
    assert tp["output"] == "throughput_cpu.json"
    assert summary["device_slug"] == "cpu" and summary["environment"]["device"]["type"] == "cpu"
    data = json.loads((out / "throughput_cpu.json").read_text())
    assert {(e["model"], e["mode"], e["config"]) for e in data["entries"]} == {
        ("ceflnet_tiny", "inference", "bf16_cl"),
        ("ceflnet_tiny", "inference", "fp32"),
    }
    assert all(e["videos_per_s"] > 0 for e in data["entries"])
    log = (out / "session.log").read_text()
    assert "===== throughput_inference: ok" in log
    # the headline, printed last, is read from the result file
    assert "ceflnet_tiny       inference" in capsys.readouterr().out.splitlines()[-1]


def test_budget_caps_each_step_and_skips_what_no_longer_fits(tmp_path, monkeypatch):
    def fake_plan(args, slug):
        sleep = lambda s: [sys.executable, "-c", f"import time; time.sleep({s})"]
        return [
            gpu_session.Step("smoke", sleep(0), 60, required=True),
            gpu_session.Step("capped", sleep(30), 1.0),  # its own limit: 1 s
            gpu_session.Step("fits", sleep(5), 60),  # gets the budget left, ~7 s
            gpu_session.Step("late", sleep(0), 60),  # ~2 s left, under --min-step-s: skipped
        ]

    monkeypatch.setattr(gpu_session, "plan", fake_plan)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc = gpu_session.main(
        ["--device", "cpu", "--out", str(out), "--budget", "8", "--min-step-s", "2.5"]
    )
    assert rc == 0  # a step cut off at its limit is the budget at work, not a failure
    assert time.perf_counter() - t0 < 20
    steps = {s["name"]: s for s in json.loads((out / "session.json").read_text())["steps"]}
    assert steps["capped"]["status"] == "timed_out" and steps["capped"]["limit_s"] == 1.0
    assert steps["fits"]["status"] == "ok" and 5 < steps["fits"]["limit_s"] < 8
    assert steps["late"]["status"] == "skipped" and "budget left" in steps["late"]["reason"]


def test_a_failed_required_step_stops_the_session(tmp_path, monkeypatch):
    real_plan = gpu_session.plan

    def broken(args, slug):
        steps = real_plan(args, slug)
        steps[0].argv = [sys.executable, "-c", "raise SystemExit('no CUDA here')"]
        return steps

    monkeypatch.setattr(gpu_session, "plan", broken)
    out = tmp_path / "out"
    rc = gpu_session.main(
        ["--device", "cpu", "--quick", "--out", str(out), "--steps", "smoke,data"]
    )
    assert rc == 1
    steps = json.loads((out / "session.json").read_text())["steps"]
    assert steps[0]["status"] == "failed" and steps[0]["tail"][-1] == "no CUDA here"
    assert steps[1] == {
        "name": "data",
        "status": "skipped",
        "reason": "an earlier required step failed",
    }


def test_a_failed_wheel_install_skips_only_what_needs_pyav(tmp_path, monkeypatch):
    real_plan = gpu_session.plan
    monkeypatch.setattr(gpu_session, "plan", lambda args, slug: [s for s in real_plan(args, slug)])
    monkeypatch.setattr(
        gpu_session.subprocess,
        "run",
        _no_av_run(gpu_session.subprocess.run),
    )
    empty = tmp_path / "no_wheels_here"
    empty.mkdir()
    out = tmp_path / "out"
    rc = gpu_session.main(
        [
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
            "--wheels",
            str(empty),
            "--steps",
            "smoke,data",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "session.json").read_text())
    assert "no .whl files" in summary["wheels_error"]
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["smoke"]["status"] == "ok"  # ran although the wheels failed
    assert steps["data"]["status"] == "skipped" and "PyAV" in steps["data"]["reason"]


def _no_av_run(real_run):
    """``subprocess.run`` as on a machine without PyAV: ``import av`` fails."""

    def run(cmd, *args, **kwargs):
        if list(cmd[-2:]) == ["-c", "import av"]:
            return real_run([sys.executable, "-c", "raise ImportError('no av')"], *args, **kwargs)
        return real_run(cmd, *args, **kwargs)

    return run


def test_collect_copies_result_files_only(tmp_path):
    src, dest = tmp_path / "back", tmp_path / "results"
    src.mkdir()
    dest.mkdir()
    for name, kind in (
        ("throughput_nvidia-h200.json", "throughput"),
        ("train_speed_nvidia-h200.json", "train_speed"),
        ("session.json", "gpu_session"),
    ):
        (src / name).write_text(json.dumps({"benchmark": kind, "device_slug": "nvidia-h200"}))
    copied = gpu_session.collect(src, dest)
    # session.json travels under its device's name, so the tables can say what was cut.
    assert sorted(p.name for p in copied) == [
        "gpu_session_nvidia-h200.json",
        "throughput_nvidia-h200.json",
        "train_speed_nvidia-h200.json",
    ]
    assert not (dest / "session.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no throughput/train_speed/data result files"):
        gpu_session.collect(empty, dest)
    # A session that measured nothing copies nothing, not even its session.json.
    (empty / "session.json").write_text(
        json.dumps({"benchmark": "gpu_session", "device_slug": "x"})
    )
    with pytest.raises(SystemExit, match="no throughput/train_speed/data result files"):
        gpu_session.collect(empty, dest)
    assert not (dest / "gpu_session_x.json").exists()
