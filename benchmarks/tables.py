"""Markdown tables from ``benchmarks/results/*.json``, and the blocks that show them.

Every table the project shows is generated here from the committed JSON, so a number in
a README cannot drift from the measurement. A Markdown file marks where a table goes::

    <!-- bench:complexity-paper -->
    (generated; do not edit by hand)
    <!-- /bench:complexity-paper -->

``--update FILE`` rewrites every such block in place; ``--check FILE`` exits with status
1 and names each block that is stale, so CI can catch a table that no longer matches its
JSON.

Blocks come from renderers, one per kind of result (the JSON's ``"benchmark"`` field):

* ``complexity`` (``complexity.json``): ``complexity-paper`` (Table 8),
  ``complexity-table9``, ``complexity-models`` (the registry), ``complexity-peers``
  (torchvision's video models);
* ``throughput`` (``throughput_<device>.json``, one per device):
  ``throughput-<device-slug>`` (every model and configuration),
  ``throughput-profile-<device-slug>`` (top operators of the entries run with
  ``--profile``) and, across all devices, ``throughput-targets`` (the targets and
  whether they are met);
* every file: ``results-index`` (which machine, device, date and command made it).

A new kind of result gets its tables either by registering a renderer here
(``@renderer("kind")``, a function ``(path, data) -> {block name: markdown}``) or,
without touching this file, by carrying ready rows in its JSON::

    "tables": {"data-pipeline": {"columns": ["path", "frames/s"],
                                 "rows": [["PyAV seek", 2900]], "caption": "..."}}

Usage::

    python benchmarks/tables.py --list
    python benchmarks/tables.py --print complexity-paper throughput-cpu
    python benchmarks/tables.py --update README.md benchmarks/README.md
    python benchmarks/tables.py --check README.md benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "BLOCK_RE",
    "StaleBlock",
    "check_file",
    "load_results",
    "main",
    "markdown_table",
    "render_blocks",
    "renderer",
    "update_file",
    "update_text",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

#: An opening marker, the generated content, and the matching closing marker.
BLOCK_RE = re.compile(
    r"(?P<open><!--\s*bench:(?P<name>[A-Za-z0-9_.-]+)\s*-->)(?P<body>.*?)"
    r"(?P<close><!--\s*/bench:(?P=name)\s*-->)",
    re.DOTALL,
)
_OPEN_RE = re.compile(r"<!--\s*bench:([A-Za-z0-9_.-]+)\s*-->")

Renderer = Callable[[Path, dict[str, Any]], dict[str, str]]
_RENDERERS: dict[str, Renderer] = {}


class StaleBlock(Exception):
    """A block whose content differs from what its JSON renders to."""


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register ``fn(path, data) -> {block name: markdown}`` for results of ``kind``."""

    def register(fn: Renderer) -> Renderer:
        _RENDERERS[kind] = fn
        return fn

    return register


# ----------------------------------------------------------------------------- formatting


def _num(value: Any, digits: int | None = None) -> str:
    """Numbers for people: ``None`` -> ``-``; magnitude-dependent decimals by default."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if digits is not None:
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    mag = abs(value)
    if mag >= 100:
        return f"{value:,.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:+.{digits}f} %"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def markdown_table(columns: list[str], rows: Iterable[Iterable[Any]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table.

    Args:
        columns: Header cells.
        rows: Body rows; cells are formatted with :func:`str` (numbers by ``_num``).
        align: One character per column, ``l`` or ``r`` (default: first left, rest right).

    Example:
        >>> print(markdown_table(["model", "GMACs"], [["a", 1.5]]))
        | model | GMACs |
        | :-- | --: |
        | a | 1.50 |
    """
    align = align or "l" + "r" * (len(columns) - 1)
    rule = [":--" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        cells = [c if isinstance(c, str) else _num(c) for c in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _rel_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def _source(path: Path, data: dict[str, Any]) -> str:
    env = data.get("environment", {})
    dev = env.get("device", {})
    machine = env.get("machine", {})
    versions = env.get("versions", {})
    where = dev.get("name") or machine.get("cpu_model") or "?"
    if dev.get("type") == "cpu":
        threads = dev.get("threads", machine.get("usable_cpus", "?"))
        where = f"{where}, {threads} thread{'' if threads == 1 else 's'}"
    date = (env.get("date") or "?")[:10]
    return (
        f"<sub>Generated by `benchmarks/tables.py` from `{_rel_path(path)}` "
        f"({date}, {where}, torch {versions.get('torch', '?')}).</sub>"
    )


# ---------------------------------------------------------------------------- complexity


@renderer("complexity")
def _complexity(path: Path, data: dict[str, Any]) -> dict[str, str]:
    src = _source(path, data)
    blocks: dict[str, str] = {}

    rows = []
    for r in data.get("paper_table8", []):
        measured = r.get("source") == "measured"
        rows.append(
            [
                r["method"] + ("" if measured else " (quoted)"),
                r.get("backbone", "-"),
                _num(r.get("paper_params_m"), 2),
                _num(r["params"] / 1e6, 2) if measured else "-",
                _pct(r.get("params_rel_diff")) if measured else "-",
                _num(r["params_with_imagenet_fc"] / 1e6, 2) if measured else "-",
                _pct(r.get("params_with_imagenet_fc_rel_diff")) if measured else "-",
                _num(r.get("paper_gmacs"), 2),
                _num(r["macs"] / 1e9, 2) if measured else "-",
                _pct(r.get("macs_rel_diff")) if measured else "-",
                _num(r["macs_ptflops"] / 1e9, 2) if measured and r.get("macs_ptflops") else "-",
                _pct(r.get("macs_ptflops_rel_diff")) if measured else "-",
            ]
        )
    blocks["complexity-paper"] = "\n\n".join(
        [
            markdown_table(
                [
                    "Method",
                    "Backbone",
                    "Params (M), paper",
                    "Params (M), ours",
                    "diff",
                    "+ unused ImageNet fc",
                    "diff",
                    "GMACs, paper",
                    "GMACs, ours",
                    "diff",
                    "GMACs, ptflops",
                    "diff",
                ],
                rows,
                "ll" + "r" * 10,
            ),
            (
                'Per video: 7 clips x 5 frames x 224 px. "Ours": `torch.utils.flop_counter` '
                '(convolutions and matmuls); "ptflops": the paper\'s counter (also counts '
                'BatchNorm, ReLU, pooling). "+ unused ImageNet fc" adds ResNet-18\'s 1000-way '
                "classifier (0.51 M) that ptflops counts when the layer stays in the model. "
                "C3D rows are the paper's figures, not measured here."
            ),
            src,
        ]
    )

    rows = [
        [
            r["frames_per_clip"],
            _num(r.get("paper_gmacs"), 2),
            _num(r["macs"] / 1e9, 2),
            _pct(r.get("macs_rel_diff")),
            _num(r["macs_ptflops"] / 1e9, 2) if r.get("macs_ptflops") else "-",
            _pct(r.get("macs_ptflops_rel_diff")),
            _num(r.get("paper_acc"), 2),
        ]
        for r in data.get("paper_table9", [])
    ]
    blocks["complexity-table9"] = "\n\n".join(
        [
            markdown_table(
                [
                    "Frames per clip",
                    "GMACs, paper",
                    "GMACs, ours",
                    "diff",
                    "GMACs, ptflops",
                    "diff",
                    "Acc. (%), paper",
                ],
                rows,
            ),
            src,
        ]
    )

    models = data.get("models", [])
    if models:
        rows = []
        for r in models:
            cfg = r.get("cfg_input", {})
            at_cfg = r.get("macs_at_cfg")
            rows.append(
                [
                    f"`{r['model']}`",
                    _num(r["params"] / 1e6, 2),
                    _num(r["macs"] / 1e9, 2),
                    (
                        f"{_num(at_cfg / 1e9, 2)} ({cfg.get('num_clips')} x "
                        f"{cfg.get('frames_per_clip')} x {cfg.get('size')} px)"
                        if at_cfg is not None
                        else "same"
                    ),
                ]
            )
        blocks["complexity-models"] = "\n\n".join(
            [
                markdown_table(
                    ["Model", "Params (M)", "GMACs / video (7 x 5 x 224)", "GMACs at its cfg size"],
                    rows,
                ),
                src,
            ]
        )
        ours = next((r for r in models if r["model"] == "ceflnet_resnet18"), None)
    else:
        ours = None
        blocks["complexity-models"] = "Not measured (`complexity.py --quick`).\n\n" + src

    peers = data.get("peers", [])
    if peers:
        rows = []
        if ours is not None:
            rows.append(
                [
                    "`ceflnet_resnet18` (cefl-zoo)",
                    "7 x 5 frames, 224 px",
                    _num(ours["params"] / 1e6, 2),
                    _num(ours["macs"] / 1e9, 2),
                    _num(ours["macs"] / 1e9 / ours["frames"], 2),
                    "-",
                ]
            )
        for r in peers:
            rows.append(
                [
                    f"`{r['model']}` (torchvision)",
                    f"{r['input']['frames']} frames, {r['input']['size']} px",
                    _num(r["params"] / 1e6, 2),
                    _num(r["macs"] / 1e9, 2),
                    _num(r["macs"] / 1e9 / r["frames"], 2),
                    _pct(r.get("torchvision_ops_rel_diff"), 3),
                ]
            )
        blocks["complexity-peers"] = "\n\n".join(
            [
                markdown_table(
                    [
                        "Model",
                        "Input per video",
                        "Params (M)",
                        "GMACs / video",
                        "GMACs / frame",
                        "vs torchvision's figure",
                    ],
                    rows,
                    "llrrrr",
                ),
                (
                    "Same counter, same run. Peers at their usual Kinetics-400 clip (S3D's weights "
                    "were evaluated on 128-frame clips; counted on 16). \"vs torchvision's "
                    "figure\": this counter against the `_ops` in torchvision's weight metadata, "
                    "both at 16 frames."
                ),
                src,
            ]
        )
    else:
        blocks["complexity-peers"] = "Not measured (`complexity.py --quick`).\n\n" + src
    return blocks


# ---------------------------------------------------------------------------- throughput

_CONFIG_LABELS = {
    "fp32": "fp32 eager",
    "bf16_cl": "bf16 + CL",
    "bf16_cl_compile": "bf16 + CL + compile",
}


def _memory(e: dict[str, Any]) -> str:
    mem = e.get("memory") or {}
    if mem.get("peak_mib") is None:
        return "-"
    return _num(mem["peak_mib"], 0)


@renderer("throughput")
def _throughput(path: Path, data: dict[str, Any]) -> dict[str, str]:
    entries = data.get("entries", [])
    slug = data.get("device_slug") or path.stem.removeprefix("throughput_")
    configs = [c for c in _CONFIG_LABELS if any(e["config"] == c for e in entries)]
    configs += sorted({e["config"] for e in entries} - set(configs))
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault((e["model"], e["mode"], e["batch"]), {})[e["config"]] = e
    mem_kind = next((e["memory"]["kind"] for e in entries if e.get("memory")), None)
    rows = []
    for (model, mode, batch), by_cfg in groups.items():
        ok = {c: e for c, e in by_cfg.items() if e.get("status") == "ok"}
        best_cfg = max(ok, key=lambda c: ok[c]["videos_per_s"]) if ok else None
        best = ok.get(best_cfg) if best_cfg else None
        cells = [f"`{model}`", mode, batch]
        for c in configs:
            e = by_cfg.get(c)
            if e is None:
                cells.append("-")
            elif e.get("status") != "ok":
                cells.append(e.get("status", "error"))
            else:
                cells.append(_num(e["videos_per_s"]))
        cells += [
            (
                f"{_num(best.get('speedup_vs_fp32'), 2)}x"
                if best and best.get("speedup_vs_fp32")
                else "-"
            ),
            _CONFIG_LABELS.get(best_cfg, best_cfg) if best_cfg else "-",
            _num(best["achieved_tflops"], None) if best else "-",
            _share(best.get("fraction_of_measured_roof")) if best else "-",
        ]
        if data.get("bf16_peak"):
            cells.append(_share(best.get("fraction_of_bf16_peak")) if best else "-")
        cells.append(_memory(best) if best else "-")
        rows.append(cells)
    peak = data.get("bf16_peak")

    def roofs(roof: dict[str, Any]) -> str:
        return ", ".join(
            f"{r['dtype']}{' (TF32)' if r.get('tf32') else ''} {r['n']}^3 matmul "
            f"{_num(r['tflops'])} TFLOP/s"
            for r in roof.values()
        )

    run_roofs = [roofs(r["matmul_roof"]) for r in data.get("runs", []) if r.get("matmul_roof")]
    if len(set(run_roofs)) > 1:  # merged runs: each entry is over its own run's roof
        roof_text = "per run, each entry over its own run's: " + "; ".join(
            f"run {i} {text}" for i, text in enumerate(run_roofs, 1)
        )
    else:
        roof_text = roofs(data.get("matmul_roof") or {})
    peak_text = (
        f"; datasheet dense bf16 peak {peak['label']} {peak['tflops']} TFLOP/s" if peak else ""
    )
    mem_text = {
        "cuda_max_memory_allocated": "torch.cuda.max_memory_allocated",
        "cpu_rss": "RSS growth during the run, sampled",
    }.get(mem_kind or "", "-")
    table = markdown_table(
        [
            "Model",
            "Mode",
            "Batch",
            *(f"{_CONFIG_LABELS.get(c, c)} (videos/s)" for c in configs),
            "Best vs fp32",
            "Best config",
            "TFLOP/s (best)",
            "of roof",
            *(["of bf16 peak"] if peak else []),
            "Peak mem (MiB)",
        ],
        rows,
        "llr" + "r" * len(configs) + "rlrr" + ("r" if peak else "") + "r",
    )
    text = [
        table,
        (
            f'Measured roof: {roof_text or "not measured"}{peak_text}. "of roof": achieved '
            "TFLOP/s (2 x MACs per inference, 6 x per training step) over the same-dtype matmul"
            + ('; "of bf16 peak": over the datasheet peak' if peak else "")
            + ". "
            f"CL: channels_last (3-D: channels_last_3d). Peak memory: {mem_text}. "
            "Each model sees its own clip (see complexity-peers)."
        ),
    ]
    if data.get("environment", {}).get("device", {}).get("type") == "cpu":
        loads = [
            v
            for e in entries
            for k in ("loadavg_1m_before", "loadavg_1m_after")
            if (v := (e.get("host_load") or {}).get(k)) is not None
        ]
        cpus = next(
            (e["host_load"].get("usable_cpus") for e in entries if e.get("host_load")), None
        )
        load_text = (
            f" Host load average during the entries: {min(loads):.1f}-{max(loads):.1f} on "
            f"{cpus} CPUs"
            + (
                " (other processes competed for the CPU: lower bounds)."
                if cpus and max(loads) > cpus
                else "."
            )
            if loads
            else ""
        )
        text.append(
            "CPU run on few cores: few iterations, small batch; indicative only." + load_text
        )
    text.append(_source(path, data))
    out = {f"throughput-{slug}": "\n\n".join(text)}
    profiled = [e for e in entries if e.get("status") == "ok" and e.get("profile")]
    if profiled:
        out[f"throughput-profile-{slug}"] = _profile_block(path, data, profiled)
    return out


def _profile_block(path: Path, data: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """Where the time goes: the top operators of every profiled entry."""
    rows = []
    for e in entries:
        prof = e["profile"]
        busy = prof.get("device_busy_share_of_step")
        label = (
            f"{e['mode']}, {_CONFIG_LABELS.get(e['config'], e['config'])}, batch {e['batch']}"
            + (f" (GPU busy {_share(busy)} of the step)" if busy is not None else "")
        )
        for rank, op in enumerate(prof["ops"][:5], 1):
            rows.append(
                [
                    f"`{e['model']}`" if rank == 1 else "",
                    label if rank == 1 else "",
                    f"`{op['op'][:60]}`",
                    _num(op["self_ms_per_step"]),
                    _share(op["share"]),
                ]
            )
    sort_by = entries[0]["profile"].get("sort_by", "self time")
    return "\n\n".join(
        [
            markdown_table(
                ["Model", "Entry", "Operator", "Self ms / step", "Share"],
                rows,
                "lllrr",
            ),
            f"torch.profiler, top 5 operators by {sort_by} (`throughput.py --profile`). "
            + (
                "Share: of the GPU's kernel time (each kernel once; annotations such as "
                "Torch-Compiled Region left out); GPU busy: kernel time over the timed step."
                if sort_by == "self_cuda_time"
                else "Share: of the summed self CPU time of all operators."
            ),
            _source(path, data),
        ]
    )


def _where_text(where: Any) -> str:
    """One cell for a missed target: GPU busy share of the step and the top kernels."""
    if not where:
        return "-"
    if isinstance(where, str):
        return where
    tops = ", ".join(f"`{o['op'][:40]}` {_share(o['share'])}" for o in where.get("top_ops", [])[:3])
    share = where.get("device_busy_share_of_step")
    busy = (
        f"GPU busy {_share(share)} of the {_num(where['step_ms'])} ms step; "
        if share is not None
        else ""
    )
    return f"{busy}top: {tops}" if tops else busy.rstrip("; ") or "-"


def _targets_block(items: list[tuple[Path, dict[str, Any]]]) -> str:
    rows = []
    for _path, data in items:
        device = data.get("environment", {}).get("device", {}).get("name", "?")
        for t in data.get("targets", []):
            met = t.get("met")
            verdict = "met" if met else ("not met" if met is False else "not judged")
            rows.append(
                [
                    device,
                    t["mode"],
                    (
                        f"`{t['model']}` {_CONFIG_LABELS.get(t['config'], t['config'])}, "
                        f"batch {t['batch']}"
                    ),
                    _num(t["target_videos_per_s"]),
                    _num(t.get("measured_videos_per_s")),
                    f"{t['ratio_to_target']:.2f}x" if t.get("ratio_to_target") else "-",
                    verdict
                    + (
                        f" ({t['why_not_judged']})"
                        if met is None and t.get("why_not_judged")
                        else ""
                    )
                    + (f" ({t['note']})" if t.get("note") else ""),
                    _where_text(t.get("where_the_time_goes")) if met is False else "-",
                ]
            )
    sources = " ".join(_source(p, d) for p, d in items)
    return "\n\n".join(
        [
            markdown_table(
                [
                    "Device",
                    "Mode",
                    "Configuration",
                    "Target (videos/s)",
                    "Measured",
                    "of target",
                    "Verdict",
                    "Where the time goes (missed targets)",
                ],
                rows,
                "lllrrrll",
            ),
            (
                "Targets: an H100 measurement of a minimal CEFLNet-shaped ResNet-18 at 224 px, "
                "7 x 5 frames (fp32 eager: 534 videos/s inference at batch 16, 84 training at "
                "batch 8)."
            ),
            sources,
        ]
    )


# ------------------------------------------------------------------------- data / training

_DATA_PATHS = {
    "pyav_seek": "video file, PyAV seek to each sampled frame",
    "pyav_decode_all": "video file, PyAV decode every frame",
    "frame_folder": "folder of JPEG frames",
    "cache_uint8": "frame cache, raw uint8",
    "cache_jpeg_cpu": "frame cache, JPEG decoded on the CPU",
    "train_transform": "training transform only (resize, flip, normalise)",
    "cache_jpeg_gpu": "frame cache, JPEG decoded on the GPU (nvJPEG, one call per batch)",
    "cache_jpeg_gpu_transform": "frame cache, nvJPEG + training transform on the GPU (--gpu-decode)",
}


def _slug(path: Path, prefix: str) -> str:
    return path.stem[len(prefix) :].lstrip("_").replace("_", "-") or "cpu"


@renderer("data")
def _data(path: Path, data: dict[str, Any]) -> dict[str, str]:
    cfg = data.get("config", {})
    target = data.get("target_frames_per_s")
    results = data.get("results", [])
    on_gpu = [r for r in results if r["path"].startswith("cache_jpeg_gpu")]

    def keeps_up(r: dict[str, Any]) -> str:
        if not target or r.get("frames_per_s") is None:
            return "-"
        return "yes" if r["frames_per_s"] >= target else "no"

    rows = [
        [
            _DATA_PATHS.get(r["path"], r["path"]),
            _num(r.get("frames_per_s"), 0),
            _num(r.get("videos_per_s"), 1),
            _num(r.get("frames_per_cpu_s"), 0),
            # One process decodes batches on the GPU: more CPU workers would not add to it.
            "-" if r in on_gpu else _num(r.get("workers_for_target"), 1),
            keeps_up(r),
        ]
        for r in results
    ]
    table = markdown_table(
        [
            "path",
            "frames/s",
            "videos/s",
            "frames per CPU-second",
            "workers for the target",
            "one alone keeps up",
        ],
        rows,
        "lrrrrl",
    )
    gpu_text = (
        " The nvJPEG rows are one process decoding whole batches on an otherwise idle GPU: "
        "during training the GPU also runs the model, so their spare capacity is smaller."
        if on_gpu
        else ""
    )
    caption = (
        f"CPU rows: one worker, {cfg.get('threads', '?')} thread; {cfg.get('videos', '?')} videos of "
        f"{cfg.get('frames', '?')} frames at {cfg.get('size', '?')} px "
        f"({cfg.get('codec', '?')}), {cfg.get('frames_per_video', '?')} frames sampled per "
        f"video (7 clips x 5). Target: {_num(target, 0)} frames/s, "
        + (
            f"what training consumes ({data['target_source']})"
            if data.get("target_source")
            else "what the H100 training target (390 videos/s x 35 frames, rounded up) consumes"
        )
        + '; "workers for the target" is target / frames per CPU-second; "one alone keeps '
        "up\": the path's frames/s reach the target by itself." + gpu_text
    )
    return {
        f"data-pipeline-{_slug(path, 'data')}": "\n\n".join([table, caption, _source(path, data)])
    }


@renderer("train_speed")
def _train_speed(path: Path, data: dict[str, Any]) -> dict[str, str]:
    rows = [
        [
            f"`{r['model']}`",
            r.get("img_size"),
            r.get("source"),
            r.get("config"),
            r.get("batch_size"),
            r.get("workers"),
            _num(r.get("videos_per_s"), 2),
            _share(r.get("share_of_compute_only")),
        ]
        for r in data.get("results", [])
    ]
    table = markdown_table(
        ["model", "px", "data", "config", "batch", "workers", "videos/s", "of compute-only"],
        rows,
        "lrllrrrr",
    )
    caption = (
        "Training steps end to end through the trainer's data path (`memory`: tensors already "
        "in memory, the compute-only roof; `mp4`: video files decoded by PyAV; `cache`: the "
        "frame cache); 7 clips x 5 frames."
    )
    return {
        f"train-speed-{_slug(path, 'train_speed')}": "\n\n".join(
            [table, caption, _source(path, data)]
        )
    }


# ------------------------------------------------------------------------------- generic


def _generic(path: Path, data: dict[str, Any]) -> dict[str, str]:
    blocks = {}
    for name, table in (data.get("tables") or {}).items():
        parts = [markdown_table(list(table["columns"]), table["rows"], table.get("align", ""))]
        if table.get("caption"):
            parts.append(str(table["caption"]))
        parts.append(_source(path, data))
        blocks[name] = "\n\n".join(parts)
    return blocks


# ------------------------------------------------------------------------------ assembly


def load_results(results_dir: str | Path = RESULTS_DIR) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``*.json`` result in ``results_dir``, sorted by file name.

    Raises:
        ValueError: For a file that is not valid JSON (names the file).
    """
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); re-run the benchmark") from err
    return out


def render_blocks(results_dir: str | Path = RESULTS_DIR) -> dict[str, str]:
    """All blocks the results render to: ``{block name: markdown}``.

    Raises:
        ValueError: When two result files produce the same block name.
    """
    blocks: dict[str, str] = {}
    origin: dict[str, Path] = {}
    results = load_results(results_dir)

    def add(name: str, text: str, path: Path) -> None:
        if name in blocks:
            raise ValueError(
                f"block {name!r} is produced by both {origin[name].name} and {path.name}; "
                "give one of them another name"
            )
        blocks[name], origin[name] = text, path

    for path, data in results:
        kind = data.get("benchmark")
        fn = _RENDERERS.get(kind)
        produced = fn(path, data) if fn else {}
        produced.update({k: v for k, v in _generic(path, data).items() if k not in produced})
        for name, text in produced.items():
            add(name, text, path)
    throughput = [(p, d) for p, d in results if d.get("benchmark") == "throughput"]
    if throughput:
        add("throughput-targets", _targets_block(throughput), throughput[0][0])
    if results:
        add("results-index", _index_block(results), results[0][0])
        add("gpu-status", _gpu_status_block(results), results[0][0])
    return blocks


def _gpu_status_block(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """Whether any GPU result is committed, and how the GPU sessions went.

    Only what ran on CUDA counts: a CPU rehearsal of the session
    (``gpu_session.py --device cpu --quick``) says nothing about a GPU.
    """
    on_gpu = [
        (p, d)
        for p, d in results
        if d.get("environment", {}).get("device", {}).get("type") == "cuda"
    ]
    gpu = [(p, d) for p, d in on_gpu if d.get("benchmark") != "gpu_session"]
    sessions = [(p, d) for p, d in on_gpu if d.get("benchmark") == "gpu_session"]
    if not gpu:
        return (
            "No GPU result is committed yet: every number here was measured on a CPU, so "
            "the H100/H200 targets are not judged and the GPU-only paths (nvJPEG decoding, "
            "training speed on a GPU) are not measured. `benchmarks/gpu_session.py` "
            "measures all of it on an H100/H200 in one command."
        )
    devices: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for p, d in gpu:
        devices.setdefault(d["environment"]["device"].get("name", "?"), []).append((p, d))
    lines = []
    for name, items in devices.items():
        dates = sorted(str(d["environment"].get("date", ""))[:10] for _, d in items)
        files = ", ".join(f"`{p.name}`" for p, _ in items)
        when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        lines.append(f"GPU results from {name} ({when}): {files}.")
    for p, d in sessions:
        steps = ", ".join(f"{s['name']} {s['status']}" for s in d.get("steps", []))
        env = d["environment"]
        lines.append(
            f"The session on {env['device'].get('name', '?')} ({str(env.get('date', ''))[:10]}, "
            f"`{p.name}`): {steps}; a step not ok measured nothing or part of its rows."
        )
    lines.append("The targets are judged in the targets table.")
    return " ".join(lines)


def _index_block(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """Which machine, device, date and command produced each result file."""
    rows = []
    for path, data in results:
        env = data.get("environment", {})
        machine = env.get("machine", {})
        dev = env.get("device", {})
        cpus = machine.get("usable_cpus") or machine.get("logical_cpus")
        # "runs" lists the invocations merged into one file (each with its environment);
        # some benchmarks use "runs" for other rows (accuracy: one per model), so only
        # entries that carry an environment count as invocations.
        invocations = [
            r["environment"]
            for r in data.get("runs") or []
            if isinstance(r, dict) and "environment" in r
        ]
        commands = "<br>".join(f"`{e.get('command', '?')}`" for e in invocations or [env])
        rows.append(
            [
                f"`{path.name}`",
                str(data.get("benchmark", "?")),
                f"{machine.get('cpu_model', '?')} ({cpus} CPUs)",
                dev.get("name", "?") if dev.get("type") != "cpu" else "CPU",
                (env.get("date") or "?")[:10],
                f"torch {env.get('versions', {}).get('torch', '?')}",
                commands,
            ]
        )
    return markdown_table(
        ["File", "Benchmark", "Machine", "Device", "Date", "Versions", "Command"], rows, "lllllll"
    )


def update_text(text: str, blocks: dict[str, str], where: str = "<text>") -> tuple[str, list[str]]:
    """Fill every ``bench:`` block of ``text``.

    Args:
        text: Markdown with ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->`` blocks.
        blocks: What each block should hold (:func:`render_blocks`).
        where: File name for error messages.

    Returns:
        ``(new_text, names_of_blocks_that_changed)``.

    Markers inside fenced code blocks or inline code are examples, not blocks.

    Raises:
        ValueError: For an unknown block name or an opening marker without its closing
            marker.

    Example:
        >>> new, changed = update_text("<!-- bench:t -->old<!-- /bench:t -->", {"t": "new"})
        >>> new, changed
        ('<!-- bench:t -->\\nnew\\n<!-- /bench:t -->', ['t'])
    """
    masked = _mask_code(text)
    found = list(BLOCK_RE.finditer(masked))
    inside = [(m.start(), m.end()) for m in found]
    for m in _OPEN_RE.finditer(masked):
        if not any(start <= m.start() < end for start, end in inside):
            raise ValueError(
                f"{where}: <!-- bench:{m.group(1)} --> has no closing <!-- /bench:{m.group(1)} -->"
            )
    changed: list[str] = []
    out, pos = [], 0
    for m in found:
        name = m.group("name")
        if name not in blocks:
            raise ValueError(
                f"{where}: unknown block {name!r}; known blocks: {', '.join(sorted(blocks))} "
                "(run the benchmark that produces it, or fix the name)"
            )
        body = "\n" + blocks[name].strip("\n") + "\n"
        if text[m.start("body") : m.end("body")] != body:
            changed.append(name)
        out += [text[pos : m.start("body")], body]
        pos = m.end("body")
    out.append(text[pos:])
    return "".join(out), changed


_CODE_RE = re.compile(r"^(```|~~~).*?^\1[^\n]*$|`[^`\n]+`", re.DOTALL | re.MULTILINE)


def _mask_code(text: str) -> str:
    """``text`` with fenced code blocks and inline code blanked out (same length), so
    markers shown as examples in code are left alone."""
    return _CODE_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


_DEVICE_BLOCK_RE = re.compile(
    r"^(?P<kind>throughput-profile|data-pipeline|train-speed|throughput)-(?P<slug>[a-z0-9-]+)$"
)


def place_device_blocks(text: str, blocks: dict[str, str]) -> tuple[str, list[str]]:
    """Add empty markers for per-device blocks that ``text`` does not show yet.

    A block of a new device (``throughput-nvidia-h200``, ``train-speed-...``,
    ``data-pipeline-...``, ``throughput-profile-...``) goes right after the block of the
    same kind for the CPU, where ``text`` has that one; :func:`update_text` then fills
    it. Returns ``(new_text, names_placed)``.

    Example:
        >>> text = "<!-- bench:throughput-cpu -->\\nx\\n<!-- /bench:throughput-cpu -->"
        >>> blocks = {"throughput-cpu": "x", "throughput-h200": "y"}
        >>> new, placed = place_device_blocks(text, blocks)
        >>> placed, new.count("<!-- bench:throughput-h200 -->")
        (['throughput-h200'], 1)
    """
    masked = _mask_code(text)
    placed = []
    for name in sorted(blocks):
        m = _DEVICE_BLOCK_RE.match(name)
        if m is None or m.group("slug") == "cpu" or f"<!-- bench:{name} -->" in masked:
            continue
        anchor = f"<!-- /bench:{m.group('kind')}-cpu -->"
        at = masked.find(anchor)
        if at < 0:
            continue
        end = at + len(anchor)
        insert = f"\n\n<!-- bench:{name} -->\n<!-- /bench:{name} -->"
        text = text[:end] + insert + text[end:]
        masked = masked[:end] + insert + masked[end:]
        placed.append(name)
    return text, placed


def update_file(path: str | Path, blocks: dict[str, str]) -> list[str]:
    """Rewrite the blocks of ``path`` in place; returns the names that changed.

    Per-device blocks the file does not show yet are placed after their CPU
    counterparts first (:func:`place_device_blocks`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file to update")
    text, placed = place_device_blocks(path.read_text(), blocks)
    new, changed = update_text(text, blocks, str(path))
    changed = sorted(set(changed) | set(placed))
    if changed:
        path.write_text(new)
    return changed


def check_file(path: str | Path, blocks: dict[str, str]) -> list[str]:
    """Names of the blocks of ``path`` that are stale (empty list: up to date)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file to check")
    return update_text(path.read_text(), blocks, str(path))[1]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1: stale blocks found)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="directory of result JSON")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="list the block names")
    g.add_argument("--print", nargs="*", metavar="NAME", help="print blocks (all if no name)")
    g.add_argument("--update", nargs="+", type=Path, metavar="FILE", help="rewrite blocks in FILEs")
    g.add_argument(
        "--check", nargs="+", type=Path, metavar="FILE", help="exit 1 if a block in FILEs is stale"
    )
    args = p.parse_args(argv)
    try:
        blocks = render_blocks(args.results)
        if args.list:
            for name in sorted(blocks):
                print(name)
        elif args.update:
            for path in args.update:
                changed = update_file(path, blocks)
                print(f"{path}: {'updated ' + ', '.join(changed) if changed else 'up to date'}")
        elif args.check:
            stale = {str(path): check_file(path, blocks) for path in args.check}
            bad = {k: v for k, v in stale.items() if v}
            for path, names in bad.items():
                print(
                    f"{path}: stale block(s) {', '.join(names)}; run "
                    f"`python benchmarks/tables.py --update {path}`",
                    file=sys.stderr,
                )
            if bad:
                return 1
            print("all blocks up to date: " + ", ".join(stale))
        else:
            names = args.print or sorted(blocks)
            unknown = [n for n in names if n not in blocks]
            if unknown:
                raise ValueError(
                    f"unknown block(s) {', '.join(unknown)}; known: {', '.join(sorted(blocks))}"
                )
            for name in names:
                print(f"<!-- bench:{name} -->\n{blocks[name]}\n<!-- /bench:{name} -->\n")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
