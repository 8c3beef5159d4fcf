"""What every benchmark script shares: where results go, what machine made them, timing.

A result file is one JSON object with at least::

    {"benchmark": "<kind>", "schema_version": 1, "environment": {...}, ...}

``environment`` (from :func:`environment`) says which machine, CPU, device, library
versions, date, git commit and command line produced the numbers, so any JSON in
``benchmarks/results/`` can be traced and re-run. ``benchmarks/tables.py`` turns the
files into Markdown tables.

Other benchmark scripts use the helpers here too:

* :func:`environment`, :func:`write_json`, :func:`result_path`, :func:`device_slug`;
* :func:`time_fn` (warm-up, device synchronisation, median of repeats);
* :class:`PeakMemory` (CUDA ``max_memory_allocated``; on CPU the process's peak RSS);
* :func:`peak_bf16_tflops` (datasheet compute roof of known GPUs) and
  :func:`matmul_roof` (the roof measured with one large matmul).

Example:
    >>> import torch
    >>> t = time_fn(lambda: torch.ones(8).sum(), device="cpu", warmup=1, repeats=3, iters=2)
    >>> sorted(t) == ["iters", "median_s", "repeat_s", "warmup_s"]
    True
    >>> device_slug("cpu")
    'cpu'
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BENCH_DIR",
    "GPU_PEAKS",
    "REPO_ROOT",
    "RESULTS_DIR",
    "SCHEMA_VERSION",
    "PeakMemory",
    "command_line",
    "cpu_model",
    "device_info",
    "device_slug",
    "environment",
    "matmul_roof",
    "peak_bf16_tflops",
    "result_path",
    "synchronize",
    "time_fn",
    "write_json",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SCHEMA_VERSION = 1

#: Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s.
#: Matched against ``torch.cuda.get_device_name()`` in order: the first pattern that
#: occurs in the name wins, so the more specific names come first.
GPU_PEAKS: list[tuple[str, str, float]] = [
    # (regex on the device name, label, dense bf16 TFLOP/s)
    (r"GH200", "GH200 (H100 SXM class)", 989.4),
    (r"H200.*NVL", "H200 NVL", 835.0),
    (r"H200", "H200 SXM (same GH100 chip as H100 SXM)", 989.4),
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H100.*NVL", "H100 NVL", 835.0),
    (r"H100", "H100 SXM", 989.4),
    (r"H800.*PCIe", "H800 PCIe", 756.0),
    (r"H800", "H800 SXM", 989.4),
    (r"B200", "B200", 2250.0),
    (r"A100", "A100", 312.0),
    (r"A800", "A800", 312.0),
    (r"L40S", "L40S", 362.1),
    (r"L40", "L40", 181.0),
    (r"L4\b", "L4", 121.0),
    (r"A10G", "A10G", 70.0),
    (r"A10\b", "A10", 125.0),
    (r"RTX 4090", "GeForce RTX 4090", 165.2),
]


def peak_bf16_tflops(device_name: str) -> dict[str, Any] | None:
    """Datasheet dense bf16 peak of a known GPU.

    Args:
        device_name: What ``torch.cuda.get_device_name()`` returns, e.g.
            ``"NVIDIA H100 80GB HBM3"``.

    Returns:
        ``{"label", "tflops", "source"}``, or ``None`` for an unknown device (CPUs too).

    Example:
        >>> peak_bf16_tflops("NVIDIA H100 80GB HBM3")["tflops"]
        989.4
        >>> peak_bf16_tflops("cpu") is None
        True
    """
    for pattern, label, tflops in GPU_PEAKS:
        if re.search(pattern, device_name):
            return {
                "label": label,
                "tflops": tflops,
                "source": "NVIDIA datasheet, dense bf16 tensor core (no sparsity)",
            }
    return None


def synchronize(device: str | torch.device) -> None:
    """Wait for queued device work (CUDA); a no-op on CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_fn(
    fn: Callable[[], Any],
    device: str | torch.device,
    warmup: int = 3,
    repeats: int = 5,
    iters: int = 10,
) -> dict[str, Any]:
    """Time ``fn``: warm-up calls, then ``repeats`` timed runs of ``iters`` calls each.

    The device is synchronised before and after every timed run, so queued CUDA work
    is counted. Use the median (``median_s``, seconds per call): it ignores the odd
    slow run caused by other processes.

    Args:
        fn: The work to time, called without arguments.
        device: Device whose queue to synchronise.
        warmup: Untimed calls first (compilation, cuDNN autotuning, allocator growth).
        repeats: Timed runs.
        iters: Calls per timed run.

    Returns:
        ``{"warmup_s": total warm-up seconds, "repeat_s": [seconds per call of each
        run], "median_s": median of those, "iters": iters}``.
    """
    if repeats < 1 or iters < 1:
        raise ValueError(f"repeats and iters must be >= 1, got {repeats} and {iters}")
    synchronize(device)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    synchronize(device)
    warmup_s = time.perf_counter() - start
    per_call = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        synchronize(device)
        per_call.append((time.perf_counter() - start) / iters)
    return {
        "warmup_s": warmup_s,
        "repeat_s": per_call,
        "median_s": statistics.median(per_call),
        "iters": iters,
    }


def _current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _ru_maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _release_freed_memory() -> None:
    """Collect garbage and return freed heap pages to the OS (glibc only)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of the work done inside a ``with`` block.

    * CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak on entry
      (tensors allocated by PyTorch; the caching allocator may reserve more).
    * CPU: two honestly different numbers, because PyTorch's CPU allocations are not
      tracked by ``tracemalloc``: ``ru_maxrss`` (``resource.getrusage``, the process's
      high-water mark since it started: it never goes down, so it includes whatever
      ran earlier in the process), and the peak resident set size sampled from
      ``/proc/self/statm`` every ``interval`` seconds minus the RSS on entry (the
      growth this block caused; a short spike between samples can be missed). On
      entry, garbage is collected and glibc's ``malloc_trim`` hands freed heap pages
      back to the OS, so memory freed by earlier work is not silently reused.

    Example:
        >>> import torch
        >>> with PeakMemory("cpu") as mem:
        ...     x = torch.ones(1 << 20)
        >>> mem.result()["kind"]
        'cpu_rss'
    """

    def __init__(self, device: str | torch.device, interval: float = 0.005) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_rss = 0
        self._peak_rss = 0
        self._cuda_peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _current_rss_bytes()
            if rss is not None and rss > self._peak_rss:
                self._peak_rss = rss
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:  # noqa: PYI034 (typing.Self needs Python 3.11)
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _release_freed_memory()
            self._start_rss = self._peak_rss = _current_rss_bytes() or 0
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self._cuda_peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = _current_rss_bytes()
            if rss is not None:
                self._peak_rss = max(self._peak_rss, rss)

    def result(self) -> dict[str, Any]:
        """The numbers, in MiB, with a ``kind`` that says what was measured."""
        mib = 1024.0**2
        if self.device.type == "cuda":
            return {"kind": "cuda_max_memory_allocated", "peak_mib": self._cuda_peak / mib}
        return {
            "kind": "cpu_rss",
            "peak_mib": (self._peak_rss - self._start_rss) / mib,
            "peak_mib_means": "sampled peak RSS during the block minus RSS on entry "
            "(after gc and malloc_trim)",
            "process_peak_rss_mib": _ru_maxrss_bytes() / mib,
            "process_peak_rss_means": "ru_maxrss: process high-water mark since start",
        }


def matmul_roof(
    device: str | torch.device,
    dtype: torch.dtype = torch.bfloat16,
    n: int | None = None,
    repeats: int = 5,
    iters: int | None = None,
    allow_tf32: bool | None = None,
) -> dict[str, Any]:
    """Measure the compute roof with one square matmul: ``2 n^3`` FLOPs per call.

    A float32 roof on CUDA uses TF32 tensor cores when ``allow_tf32`` (default: as
    ``torch.backends.cudnn.allow_tf32``, which PyTorch turns on for convolutions): an
    fp32 model whose time is in cuDNN convolutions runs TF32 math, so that is its roof.

    Args:
        device: Where to measure.
        dtype: Operand dtype (bf16 for the tensor-core roof).
        n: Matrix side; 8192 on CUDA, 2048 on CPU by default.
        repeats: Timed runs (median is reported).
        iters: Matmuls per timed run; 20 on CUDA, 2 on CPU by default.
        allow_tf32: For a float32 roof on CUDA (see above).

    Returns:
        ``{"dtype", "n", "tflops", "median_s", "tf32"}`` (``tf32``: whether a float32
        CUDA matmul ran as TF32; ``False`` elsewhere).
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n = n or (8192 if cuda else 2048)
    iters = iters or (20 if cuda else 2)
    tf32 = bool(
        cuda
        and dtype == torch.float32
        and (torch.backends.cudnn.allow_tf32 if allow_tf32 is None else allow_tf32)
    )
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 if cuda else before
    try:
        t = time_fn(lambda: torch.mm(a, b), dev, warmup=2, repeats=repeats, iters=iters)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "n": n,
        "tflops": 2 * n**3 / t["median_s"] / 1e12,
        "median_s": t["median_s"],
        "tf32": tf32,
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU features that change what bf16 and fp32 cost on a CPU (``/proc/cpuinfo`` flags).
CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str] | None:
    """Which of :data:`CPU_FLAGS_OF_INTEREST` the CPU has (AMX: fast bf16 matmuls)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS_OF_INTEREST if flag in have]
    except OSError:
        pass
    return None


def gpu_driver_info(index: int) -> dict[str, Any]:
    """Driver version, SM clock limit and power limit from ``nvidia-smi`` (``{}`` without)."""
    fields = ("driver_version", "clocks.max.sm", "clocks.sm", "power.limit")
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                f"--id={index}",
                f"--query-gpu={','.join(fields)}",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in out.split(",")]
    if len(values) != len(fields):
        return {}
    keys = ("driver", "sm_clock_max_mhz", "sm_clock_mhz", "power_limit_w")
    return dict(zip(keys, values))


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError):
        pass
    return None


def device_info(device: str | torch.device) -> dict[str, Any]:
    """Name and properties of ``device`` (and of the GPU's bf16 roof where known)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():  # every script asks here first: one clear line
            raise SystemExit(
                f"--device {device}: no CUDA device is visible to PyTorch; run on a GPU "
                "machine or pass --device cpu"
            )
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        name = torch.cuda.get_device_name(index)
        return {
            "type": "cuda",
            "name": name,
            "capability": list(torch.cuda.get_device_capability(index)),
            "memory_gib": round(props.total_memory / 1024**3, 1),
            "multiprocessors": props.multi_processor_count,
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "count": torch.cuda.device_count(),
            "bf16_peak": peak_bf16_tflops(name),
            **gpu_driver_info(index),
        }
    return {
        "type": dev.type,
        "name": cpu_model() if dev.type == "cpu" else str(dev),
        "threads": torch.get_num_threads(),
        "bf16_peak": None,
    }


def device_slug(device: str | torch.device) -> str:
    """Short file-name-safe name of a device: ``"cpu"``, ``"nvidia-h100-80gb-hbm3"``."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return dev.type
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "cuda"


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 (a version lookup must never end a benchmark)
        return None


def _module_version(module: str) -> str | None:
    """``module.__version__`` (a source tree on ``sys.path`` has no installed metadata)."""
    try:
        import importlib

        return getattr(importlib.import_module(module), "__version__", None)
    except Exception:  # noqa: BLE001 (a version lookup must never end a benchmark)
        return None


def _git() -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None and os.environ.get("CEFL_ZOO_GIT_COMMIT"):
        # A copy of the working tree without .git (a lent GPU machine): the commit the
        # caller says it is (benchmarks/gpu_session.py passes it on).
        return {"commit": os.environ["CEFL_ZOO_GIT_COMMIT"], "dirty": None, "source": "env"}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a shell line with paths relative to the repo."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        try:
            argv[0] = str(Path(argv[0]).resolve().relative_to(REPO_ROOT))
        except ValueError:
            pass
    return "python " + shlex.join(argv)


def environment(
    device: str | torch.device = "cpu", argv: list[str] | None = None
) -> dict[str, Any]:
    """Where and how a result was produced.

    Args:
        device: The device the benchmark ran on.
        argv: The command line (defaults to ``sys.argv``).

    Returns:
        ``machine`` (host platform, CPU model, cores, memory), ``device``
        (:func:`device_info`), ``versions`` (python, torch, torchvision, timm,
        cefl-zoo, ...), ``torch_settings``, ``date`` (UTC, ISO 8601), ``git`` and
        ``command``.
    """
    return {
        "machine": {
            "platform": platform.platform(),
            "arch": platform.machine(),
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "memory_gib": _mem_total_gib(),
            "cpu_flags": cpu_flags(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "device": device_info(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": _version("torchvision"),
            "timm": _version("timm"),
            "cefl_zoo": _version("cefl-zoo") or _module_version("cefl_zoo"),
            "numpy": _version("numpy"),
            "ptflops": _version("ptflops"),
        },
        "torch_settings": {
            "num_threads": torch.get_num_threads(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "git": _git(),
        "command": command_line(argv),
    }


def result_path(name: str, directory: str | Path | None = None) -> Path:
    """``benchmarks/results/<name>.json`` (or ``<directory>/<name>.json``)."""
    return Path(directory or RESULTS_DIR) / f"{name}.json"


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (atomically: a temp file, then a rename).

    Non-finite floats are written as ``null`` so the file stays valid JSON.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(payload), indent=2) + "\n")
    tmp.replace(path)
    return path
