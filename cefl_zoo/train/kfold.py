"""k-fold and official-split protocols, reported as mean +- std across folds like the paper.

The paper evaluates DFEW with its 5 official folds, MMI and BU-3DFE with 10-fold
subject-independent splits and AFEW on its train/val split (section 4.1). The dataset
adapters own the fold logic (``build_dataset(..., fold=k)``, subject-independent where
the dataset has subjects); this module runs one training per fold and summarises.

A run directory holds one sub-directory per fold (``fold_1/``, ...), each a complete
training run, plus ``folds.json`` (per-fold and mean +- std metrics). Re-running the
same command skips finished folds and resumes an interrupted one. A fold is reused only
when it was trained with the same options (model, model arguments, recipe, data...;
not where it writes, the loader, logging or device settings): a run with other options
in the same directory stops with an error naming them, and with ``overwrite`` retrains
those folds instead of mixing results of two recipes.

Example:
    >>> from cefl_zoo.train.kfold import fold_protocol, summarize_folds
    >>> fold_protocol("dfew").folds, fold_protocol("mmi").folds[-1], fold_protocol("afew").folds
    ((1, 2, 3, 4, 5), 10, (None,))
    >>> folds = [{"fold": 1, "war": 0.6, "uar": 0.5}, {"fold": 2, "war": 0.7, "uar": 0.4}]
    >>> s = summarize_folds(folds)
    >>> round(s["war"]["mean"], 3), round(s["war"]["std"], 4)
    (0.65, 0.0707)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig, config_differences

__all__ = [
    "FOLD_PROTOCOLS",
    "FoldInterrupted",
    "FoldProtocol",
    "fold_protocol",
    "format_fold_table",
    "run_folds",
    "summarize_folds",
]

log = logging.getLogger("cefl_zoo.train")


class FoldInterrupted(RuntimeError):
    """A fold's training was stopped (SIGTERM, Ctrl-C) after writing its ``last.pt``;
    running the same folds again resumes it."""


@dataclass(frozen=True)
class FoldProtocol:
    """How a dataset is evaluated.

    Attributes:
        folds: Fold numbers to run (``(None,)`` for a single official split).
        train_split: Split trained on.
        val_split: Split evaluated.
        description: What the protocol is, for reports.
    """

    folds: tuple[int | None, ...]
    train_split: str = "train"
    val_split: str = "test"
    description: str = ""


#: The evaluation protocol of each dataset (paper section 4.1 for the first four).
FOLD_PROTOCOLS: dict[str, FoldProtocol] = {
    "dfew": FoldProtocol(
        tuple(range(1, 6)), "train", "test", "DFEW: 5 official folds (set_1..set_5)"
    ),
    "mmi": FoldProtocol(tuple(range(1, 11)), "train", "test", "MMI: 10-fold subject-independent"),
    "bu3dfe": FoldProtocol(
        tuple(range(1, 11)), "train", "test", "BU-3DFE: 10-fold subject-independent"
    ),
    "afew": FoldProtocol((None,), "train", "val", "AFEW: train / val (test labels are not public)"),
    "mafw": FoldProtocol(tuple(range(1, 6)), "train", "test", "MAFW: 5 official folds"),
    "ferv39k": FoldProtocol((None,), "train", "test", "FERV39k: official train / test"),
}


def fold_protocol(dataset: str) -> FoldProtocol:
    """The protocol of a dataset adapter name (``"dfew"``, ``"BU-3DFE"``, ...).

    Raises:
        ConfigError: For a dataset without a published protocol (pass folds explicitly).
    """
    key = dataset.strip().lower().replace("-", "").replace("_", "")
    if key not in FOLD_PROTOCOLS:
        raise ConfigError(
            f"dataset {dataset!r} has no published fold protocol; pass the folds explicitly "
            f"(--folds 1,2,...). Known protocols: {', '.join(sorted(FOLD_PROTOCOLS))}"
        )
    return FOLD_PROTOCOLS[key]


def _fold_record(fold: int | None, summary: dict[str, Any], which: str) -> dict[str, Any]:
    m = summary.get(which) or {}
    loc = m.get("clip_locating") or {}
    return {
        "fold": fold,
        "war": m.get("war"),
        "uar": m.get("uar"),
        "clip_locating_gt": loc.get("gt_class"),
        "clip_locating_pred": loc.get("pred_class"),
        "num_videos": m.get("num_videos"),
        "epoch": summary.get("best_epoch") if which == "best" else summary.get("epoch"),
    }


def _best_epoch_note(split: str | None) -> str:
    """Why the "best" results of :func:`run_folds` are optimistic (for reports)."""
    return (
        f"each fold's best epoch is picked on the same {split or 'evaluated'} split it is "
        "scored on: optimistic; compare the last-epoch numbers with the paper"
    )


def summarize_folds(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof = 1) of every numeric metric over folds.

    Args:
        records: One dict per fold, e.g. ``{"fold": 1, "war": 0.61, "uar": 0.5}``.

    Returns:
        ``{metric: {"mean", "std", "n"}}`` for every metric with a value in some fold
        (``std`` is 0 for a single fold).
    """
    keys = [k for k in (records[0] if records else {}) if k not in ("fold", "epoch", "num_videos")]
    out: dict[str, Any] = {}
    for key in keys:
        values = [float(r[key]) for r in records if r.get(key) is not None]
        if not values:
            continue
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out[key] = {"mean": mean, "std": math.sqrt(var), "n": len(values)}
    return out


def format_fold_table(result: dict[str, Any], which: str = "last") -> str:
    """A printable table of :func:`run_folds` output (percentages)."""

    def pct(v: Any) -> str:
        return "   -  " if v is None else f"{100 * v:6.2f}"

    rows = result[which]["folds"]
    lines = [f"{result.get('protocol', '')} ({which} epoch)"]
    if result[which].get("note"):
        lines.append(f"note: {result[which]['note']}")
    lines.append(f"{'fold':>6} {'WAR':>7} {'UAR':>7} {'apex(gt)':>9} {'apex(pred)':>10}")
    for r in rows:
        lines.append(
            f"{r['fold']!s:>6} {pct(r['war']):>7} {pct(r['uar']):>7} "
            f"{pct(r['clip_locating_gt']):>9} {pct(r['clip_locating_pred']):>10}"
        )
    s = result[which]["summary"]

    def ms(k: str) -> str:
        return f"{100 * s[k]['mean']:.2f} +- {100 * s[k]['std']:.2f}" if k in s else "-"

    n = s["war"]["n"] if "war" in s else len(rows)
    lines.append(
        f"{'mean':>6} WAR {ms('war')}   UAR {ms('uar')}   apex(gt) {ms('clip_locating_gt')}"
        f"   (over {n} fold{'s' if n != 1 else ''})"
    )
    return "\n".join(lines)


def _earlier_run(fold_dir: Path, config: TrainConfig) -> tuple[str, str | None]:
    """What ``fold_dir`` holds and how its options differ from ``config``.

    Returns:
        ``(state, difference)``: ``state`` is ``"finished"`` (a ``metrics.json`` of
        ``config.epochs`` epochs), ``"started"`` (checkpoints, no result yet) or
        ``"new"``; ``difference`` describes the options that differ (``None`` when they
        agree or there is nothing to compare).
    """
    metrics_file, config_file = fold_dir / "metrics.json", fold_dir / "config.json"
    done: dict[str, Any] | None = None
    if metrics_file.is_file():
        try:
            done = json.loads(metrics_file.read_text())
        except ValueError:
            done = None
    has_checkpoints = any(
        p.is_file()
        for pattern in ("last.pt", "best.pt", "epoch_*.pt")
        for p in fold_dir.glob(pattern)
    )
    if done is None and not has_checkpoints:
        return "new", None
    saved = done.get("config") if done is not None else None  # the options of the result
    if saved is None and config_file.is_file():
        try:
            saved = json.loads(config_file.read_text())
        except ValueError:
            saved = None
    state = "finished" if done is not None and done.get("epochs") == config.epochs else "started"
    if not isinstance(saved, dict):
        return state, "its options are unknown (no readable config.json)"
    changed = config_differences(saved, config)
    if not changed:
        return state, None
    parts = [f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()]
    return state, ", ".join(parts[:6]) + (f", and {len(parts) - 6} more" if len(parts) > 6 else "")


def run_folds(
    config: TrainConfig,
    folds: Sequence[int | None] | None = None,
    output_dir: str | os.PathLike | None = None,
    resume: bool = True,
    user_splits: Collection[str] = (),
) -> dict[str, Any]:
    """Train and evaluate one run per fold; summarise as mean +- std.

    Args:
        config: The recipe; ``data`` names the dataset. ``fold``, ``train_split``,
            ``val_split`` and ``output_dir`` are set per fold.
        folds: Fold numbers; default: the dataset's protocol (:data:`FOLD_PROTOCOLS`).
        output_dir: Parent directory of the per-fold runs (default
            ``config.output_dir``).
        resume: Reuse folds that finished with the same options and resume an
            interrupted one. ``False`` trains every fold again from its start,
            replacing what its directory holds (as ``config.overwrite``).
        user_splits: The split fields (``"train_split"``, ``"val_split"``) the user set:
            these come from ``config`` instead of the dataset's protocol.

    Returns:
        ``{"protocol", "folds", "last": {"folds": [...], "summary": {...}},
        "best": {..., "note"}}``; also written to ``output_dir/folds.json`` (rank 0).
        ``last`` is each fold's final epoch, as the paper reports; ``best`` is each
        fold's best epoch, picked on the split it is scored on (optimistic, ``note``
        says so).

    Raises:
        ConfigError: A fold directory holds a run made with other options (they are
            named) and neither ``config.overwrite`` nor ``resume=False`` allows
            replacing it.
        FoldInterrupted: A fold was stopped by SIGTERM / Ctrl-C (after its checkpoint),
            or the stop came after a fold had finished (before the next one started).
    """
    from .distributed import cleanup_distributed, init_distributed
    from .trainer import Trainer

    if not config.data:
        raise ConfigError("run_folds needs config.data (e.g. dfew:/data/DFEW)")
    unknown = set(user_splits) - {"train_split", "val_split"}
    if unknown:
        raise ConfigError(f"user_splits takes train_split and val_split, not {sorted(unknown)}")
    spec = config.data_spec
    assert spec is not None
    try:
        protocol: FoldProtocol | None = fold_protocol(spec.name)
    except ConfigError:
        if folds is None:
            raise
        protocol = None
    fold_list = tuple(folds) if folds is not None else protocol.folds  # type: ignore[union-attr]
    if not fold_list:
        raise ConfigError("no folds to run")
    repeated = sorted({str(f) for f in fold_list if fold_list.count(f) > 1})
    if repeated:
        raise ConfigError(
            f"folds (--folds) names fold {', '.join(repeated)} more than once: each fold "
            "would count again in the mean; list every fold once"
        )
    own = protocol is None or "train_split" in user_splits
    train_split = config.train_split if own else protocol.train_split  # type: ignore[union-attr]
    own = protocol is None or "val_split" in user_splits
    val_split = config.val_split if own else protocol.val_split  # type: ignore[union-attr]
    root = Path(output_dir or config.output_dir)
    replace = config.overwrite or not resume
    info = init_distributed(config.device)  # one process group for every fold
    if (
        protocol
        and (train_split, val_split) != (protocol.train_split, protocol.val_split)
        and info.is_main
    ):
        log.warning(
            "training on split %r and evaluating on split %r as asked, not on the "
            "protocol's %r / %r (%s)",
            train_split,
            val_split,
            protocol.train_split,
            protocol.val_split,
            protocol.description,
        )
    plans = []
    for fold in fold_list:
        name = "split" if fold is None else f"fold_{fold}"
        fold_cfg = config.replace(
            fold=fold,
            train_split=train_split,
            val_split=val_split,
            output_dir=str(root / name),
            overwrite=replace,
        )
        state, difference = _earlier_run(root / name, fold_cfg)
        plans.append((fold, name, fold_cfg, state, difference))
    conflicts = [f"{name} ({diff})" for _, name, _, _, diff in plans if diff and not replace]
    if conflicts:
        raise ConfigError(
            f"{root} holds fold runs made with other options (earlier -> now): "
            f"{'; '.join(conflicts)}. Reusing them would mix two recipes' results: pass "
            "--overwrite to retrain those folds with these options, or choose another "
            "--output-dir."
        )
    per_fold: dict[str, list[dict[str, Any]]] = {"last": [], "best": []}
    try:
        for fold, name, fold_cfg, state, difference in plans:
            if resume and state == "finished" and difference is None:
                done_file = root / name / "metrics.json"
                done = json.loads(done_file.read_text())
                summary = {
                    "epoch": done["epochs"],
                    "best_epoch": done.get("best_epoch"),
                    "last": done.get("last"),
                    "best": done.get("best"),
                }
                if info.is_main:
                    log.info("%s: already finished with these options, using %s", name, done_file)
                for which, records in per_fold.items():
                    records.append(_fold_record(fold, summary, which))
                continue
            if info.is_main:
                if difference is not None:
                    log.warning(
                        "%s: its earlier run used other options (%s): training it again",
                        name,
                        difference,
                    )
                elif not resume and state != "new":
                    log.info("%s: training it again (no resume)", name)
                log.info("=== %s: %s ===", name, protocol.description if protocol else spec)
            trainer = Trainer(fold_cfg)
            try:
                summary = trainer.fit(resume="auto" if resume and difference is None else None)
            finally:
                trainer.close()
            if summary["status"] != "completed":
                raise FoldInterrupted(
                    f"{name} was interrupted (its last.pt is saved); run the same command "
                    "again to resume it"
                )
            for which, records in per_fold.items():
                records.append(_fold_record(fold, summary, which))
            if summary.get("stop_requested") and fold != fold_list[-1]:
                raise FoldInterrupted(
                    f"stopped after {name}, which finished; run the same command again to "
                    "go on with the next fold"
                )
        if protocol is None:
            described = f"{spec.name}: folds {list(fold_list)}"
        elif list(fold_list) == list(protocol.folds):
            described = protocol.description
        else:  # --folds chose some: say which, not the whole protocol
            described = (
                f"{protocol.description}; ran folds {', '.join(map(str, fold_list))} "
                f"({len(fold_list)} of {len(protocol.folds)})"
            )
        result: dict[str, Any] = {
            "protocol": described,
            "data": config.data,
            "model": config.model,
            "folds": list(fold_list),
        }
        for which, records in per_fold.items():
            result[which] = {"folds": records, "summary": summarize_folds(records)}
        result["best"]["note"] = _best_epoch_note(val_split)
        if info.is_main:
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".folds.json.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            os.replace(tmp, root / "folds.json")
    finally:
        cleanup_distributed(info)
    return result
