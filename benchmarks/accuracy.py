"""Accuracy side by side on the built-in synthetic data (issue 8, point 4).

CEFLNet, the ablation rows of the paper's Table 6 and a torchvision 3-D CNN of the same
cost are trained with one recipe (same data, epochs, batch, optimiser, schedule, seed) and
evaluated on the held-out split. The table reports WAR, UAR and, for the models that score
clips, the paper's emotion-rich clip-locating accuracy (Table 7): the share of videos
whose emotion-rich clip is the clip holding the synthetic expression's apex (chance: 1/N).

All models share a tiny backbone so the whole comparison fits on a CPU:

* the CEFLNet family uses timm's ``test_convnext`` (``ceflnet_tiny`` is
  ``ceflnet_resnet18`` with that backbone), so the rows differ only in what the paper's
  Table 6 varies (frame average, CNN-LSTM, +SAL, +SAL+LRL, full CEFLNet with EIAN);
* the 3-D CNN peer is torchvision's R3D (``torchvision.models.video.resnet`` building
  blocks: ``BasicStem``-shaped stem, ``BasicBlock`` with ``Conv3DSimple``, one block per
  stage) at 1/8 of ``r3d_18``'s width: ``ceflnet_tiny``'s parameter count (0.23 M) at
  about twice its MACs (3-D convolutions cost more per parameter). torchvision's
  full-width ``r3d_18`` costs ~170x more at this input and does not train in a CPU budget;
  ``complexity.py`` and ``throughput.py`` cover it at full size.

Re-run (about 25 minutes on 2 CPU cores with ``--jobs 2``)::

    python benchmarks/accuracy.py                       # writes results/accuracy_synthetic.json
    python benchmarks/accuracy.py --seeds 0,1,2 --jobs 2
    python benchmarks/accuracy.py --models ceflnet_tiny,r3d_tiny --epochs 5   # quick look

The synthetic set is written first when ``--data`` does not exist (``cefl-zoo synth``
with ``--videos`` and ``--data-seed``). Numbers are on synthetic videos, a check that the
architectures learn what they are meant to learn; they say nothing about accuracy on
real faces (the paper's datasets cannot be downloaded on the machines this ran on).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, result_path, write_json

#: name -> (description, registry model, model kwargs); ``None``: :class:`R3DPeer`.
MODELS: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "frame_average": (
        "Frame average (Table 6 row 1)",
        "frameavg_resnet18",
        {"backbone": "test_convnext"},
    ),
    "cnn_lstm": ("CNN-LSTM (Table 6 row 2)", "cnnlstm_resnet18", {"backbone": "test_convnext"}),
    "sal": (
        "+SAL, clips averaged (Table 6)",
        "ceflnet_resnet18_sal",
        {"backbone": "test_convnext"},
    ),
    "sal_lrl": (
        "+SAL+LRL, clips averaged (Table 6)",
        "ceflnet_resnet18_sal_lrl",
        {"backbone": "test_convnext"},
    ),
    "ceflnet_tiny": ("CEFLNet: SAL+LRL+EIAN (ceflnet_tiny)", "ceflnet_tiny", {}),
    "r3d_tiny": ("torchvision R3D, 1/8 width, 1 block/stage", None, {"width": 8}),
}


class R3DPeer(nn.Module):
    """torchvision's R3D built from its own blocks, at a chosen width.

    Takes the zoo's video layout ``(B, N, K, 3, H, W)`` and runs the N*K frames as one
    ``(B, 3, N*K, H, W)`` clip, as a 3-D CNN would see the same frames.

    Args:
        num_classes: Output classes.
        width: Channels of the first stage (``r3d_18``: 64); stage i has ``width * 2**i``.
        blocks: Residual blocks per stage (``r3d_18``: 2).
    """

    def __init__(self, num_classes: int = 7, width: int = 8, blocks: int = 1) -> None:
        super().__init__()
        from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        stages, inplanes = [], width
        for i in range(4):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            layer = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or inplanes != planes:
                    down = nn.Sequential(
                        nn.Conv3d(
                            inplanes,
                            planes,
                            1,
                            stride=Conv3DSimple.get_downsample_stride(s),
                            bias=False,
                        ),
                        nn.BatchNorm3d(planes),
                    )
                layer.append(BasicBlock(inplanes, planes, Conv3DSimple, s, down))
                inplanes = planes
            stages.append(nn.Sequential(*layer))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        # Same preprocessing (input size, mean, std) as the zoo's tiny models.
        import cefl_zoo

        self.pretrained_cfg = cefl_zoo.create_model("ceflnet_tiny").pretrained_cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, K, 3, H, W)`` -> logits ``(B, C)``."""
        x = x.flatten(1, 2).transpose(1, 2)  # (B, 3, N*K, H, W)
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    def forward_explain(self, x: torch.Tensor):
        """Logits only: a 3-D CNN has no per-clip scores."""
        from cefl_zoo.models.base import ExplainOutput

        return ExplainOutput(logits=self.forward(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new, untrained linear head for ``num_classes`` classes."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.fc.in_features, num_classes)


def build_model(key: str, num_classes: int = 7) -> nn.Module:
    """The model of :data:`MODELS` entry ``key``, untrained."""
    import cefl_zoo

    _, name, kwargs = MODELS[key]
    if name is None:
        return R3DPeer(num_classes=num_classes, **kwargs)
    return cefl_zoo.create_model(name, num_classes=num_classes, **kwargs)


def _train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (model, seed); runs in its own process."""
    torch.set_num_threads(job["threads"])
    from cefl_zoo.complexity import count_macs, count_parameters
    from cefl_zoo.train import TrainConfig, Trainer

    a = job["args"]
    model = build_model(job["model"])
    x = torch.zeros(1, a["num_clips"], a["frames_per_clip"], 3, a["img_size"], a["img_size"])
    params, macs = count_parameters(model), count_macs(model.eval(), x)
    cfg = TrainConfig(
        model=MODELS[job["model"]][1] or job["model"],
        data=f"synthetic:{a['data']}",
        num_clips=a["num_clips"],
        frames_per_clip=a["frames_per_clip"],
        img_size=a["img_size"],
        epochs=a["epochs"],
        batch_size=a["batch_size"],
        lr=a["lr"],
        optimizer="adamw",
        warmup_epochs=1,
        num_workers=0,
        device="cpu",
        seed=job["seed"],
        output_dir=str(Path(a["work_dir"]) / f"{job['model']}-seed{job['seed']}"),
        progress=False,
        save_plots=False,
        checkpoint_every_steps=0,
        log_every_steps=10_000,
    )
    start = time.perf_counter()
    summary = Trainer(cfg, model=model).fit()
    seconds = time.perf_counter() - start
    last = summary["last"] or {}
    loc = last.get("clip_locating") or {}
    return {
        "model": job["model"],
        "seed": job["seed"],
        "params": params,
        "macs": macs,
        "war": last.get("war"),
        "uar": last.get("uar"),
        "clip_locating_gt_class": loc.get("gt_class"),
        "clip_locating_pred_class": loc.get("pred_class"),
        "clip_locating_chance": loc.get("chance"),
        "num_test_videos": last.get("num_videos", loc.get("num_videos")),
        "train_seconds": round(seconds, 1),
        "epochs": a["epochs"],
    }


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def summarise(runs: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Mean (and std over seeds) per model, in ``order``."""
    rows = []
    for key in order:
        mine = [r for r in runs if r["model"] == key]
        if not mine:
            continue
        row: dict[str, Any] = {
            "model": key,
            "description": MODELS[key][0],
            "seeds": [r["seed"] for r in mine],
        }
        row["params"], row["macs"] = mine[0]["params"], mine[0]["macs"]
        for metric in ("war", "uar", "clip_locating_gt_class", "clip_locating_pred_class"):
            row[metric], row[metric + "_std"] = _mean_std([r[metric] for r in mine])
        row["train_seconds"] = statistics.fmean(r["train_seconds"] for r in mine)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The ``accuracy-synthetic`` block for ``tables.py``."""
    seeds = len(args.seeds)
    caption = (
        f"Synthetic data ({args.videos} videos written with seed {args.data_seed}, held-out "
        f"test split), {args.num_clips} clips x {args.frames_per_clip} frames at "
        f"{args.img_size} px; every model trained {args.epochs} epochs, batch "
        f"{args.batch_size}, AdamW lr {args.lr:g} with 1 warm-up epoch and cosine decay, "
        f"paper loss (eq. 11), on CPU; last-epoch numbers (no model selection on the test "
        f"split), {'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}. "
        "Clip locating: share of test videos whose emotion-rich clip (for the true / the "
        f"predicted class) holds the apex; chance {100 / args.num_clips:.1f} %; '-' for "
        "models that do not score clips. The recipe (lr, epochs) is the one the shipped "
        "ceflnet_tiny.synthetic weights were trained with, not tuned per model; train time "
        "is wall-clock with two runs sharing the machine."
    )
    return {
        "columns": [
            "model",
            "params (M)",
            "MMACs/video",
            "WAR %",
            "UAR %",
            "clip locating, true class %",
            "clip locating, predicted class %",
            "train time (s)",
        ],
        "align": "lrrrrrrr",
        "rows": [
            [
                r["description"],
                f"{r['params'] / 1e6:.3f}",
                f"{r['macs'] / 1e6:.1f}",
                _fmt(r["war"], r["war_std"]),
                _fmt(r["uar"], r["uar_std"]),
                _fmt(r["clip_locating_gt_class"], r["clip_locating_gt_class_std"]),
                _fmt(r["clip_locating_pred_class"], r["clip_locating_pred_class_std"]),
                f"{r['train_seconds']:.0f}",
            ]
            for r in rows
        ],
        "caption": caption,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--data",
        default="/tmp/cefl-zoo-synthetic-560",
        help="synthetic dataset dir (written if missing)",
    )
    p.add_argument("--videos", type=int, default=560, help="videos to write when --data is missing")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the written dataset")
    p.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}"
    )
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--num-clips", type=int, default=7)
    p.add_argument("--frames-per-clip", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2, help="runs trained at the same time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--work-dir", default="/tmp/cefl-zoo-accuracy", help="training output dirs")
    p.add_argument("--output", default=str(result_path("accuracy_synthetic")))
    p.add_argument(
        "--render-only",
        action="store_true",
        help="rebuild the summary and table of --output from its runs, training nothing",
    )
    p.add_argument(
        "--recount",
        action="store_true",
        help="with --render-only: count every run's parameters and MACs again with this "
        "cefl_zoo (recorded in the file's 'recounted'), training nothing",
    )
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def count_complexity(key: str, args: argparse.Namespace) -> tuple[int, int]:
    """``(parameters, MACs per video)`` of :data:`MODELS` entry ``key`` at the run's input."""
    from cefl_zoo.complexity import count_macs, count_parameters

    model = build_model(key)
    x = torch.zeros(1, args.num_clips, args.frames_per_clip, 3, args.img_size, args.img_size)
    return count_parameters(model), count_macs(model.eval(), x)


def rerender(path: str | Path, recount: bool = False) -> dict[str, Any]:
    """Recompute ``summary`` and ``tables`` of a result file from its ``runs``.

    With ``recount``, the parameters and MACs of every run are counted again first (the
    counting is deterministic; the accuracies stay as trained), and the file records
    when, with which commit and what changed under ``recounted``.
    """
    import json

    payload = json.loads(Path(path).read_text())
    args = argparse.Namespace(**payload["config"])
    if recount:
        changed = {}
        for key in sorted({r["model"] for r in payload["runs"]}):
            params, macs = count_complexity(key, args)
            for run in payload["runs"]:
                if run["model"] == key and (run["params"], run["macs"]) != (params, macs):
                    changed[key] = {"params": [run["params"], params], "macs": [run["macs"], macs]}
                    run["params"], run["macs"] = params, macs
        env = environment("cpu")
        payload.setdefault("recounted", []).append(
            {"date": env["date"], "git": env["git"], "changed": changed}
        )
    payload["summary"] = summarise(payload["runs"], args.models)
    block = table(payload["summary"], args)
    for event in payload.get("recounted", []):
        for key, change in event["changed"].items():
            old_macs, new_macs = change["macs"]
            block["caption"] += (
                f" {MODELS[key][0]}: parameters and MACs counted again on "
                f"{event['date'][:10]} (commit {str(event['git'].get('commit', '?'))[:7]}), "
                f"MACs {old_macs / 1e6:.1f} M before (a counter that missed fused LSTM "
                f"kernels), {new_macs / 1e6:.1f} M now; accuracies as trained."
            )
    payload["tables"] = {"accuracy-synthetic": block}
    write_json(path, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.recount and not args.render_only:
        raise SystemExit("--recount goes with --render-only")
    if args.render_only:
        rerender(args.output, recount=args.recount)
        print(f"rewrote the tables of {args.output}")
        return 0
    data = Path(args.data)
    if not (data / "videos").is_dir():
        from cefl_zoo.data import write_synthetic_dataset

        print(f"writing {args.videos} synthetic videos to {data} ...", flush=True)
        write_synthetic_dataset(data, num_videos=args.videos, seed=args.data_seed)
    jobs = [
        {"model": m, "seed": s, "threads": args.threads, "args": vars(args)}
        for s in args.seeds
        for m in args.models
    ]
    torch.set_num_threads(args.threads)  # recorded in the environment: threads per run
    runs: list[dict[str, Any]] = []
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for run in pool.imap_unordered(_train_one, jobs):
            runs.append(run)
            print(
                f"{run['model']:>14} seed {run['seed']}: WAR {100 * run['war']:.1f} %  "
                f"clip locating {run['clip_locating_gt_class']}  ({run['train_seconds']:.0f} s)",
                flush=True,
            )
    rows = summarise(runs, args.models)
    payload = {
        "benchmark": "accuracy",
        "schema_version": 1,
        "environment": environment("cpu"),
        "config": {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")},
        "host_load_1_5_15": list(os.getloadavg()),
        "runs": sorted(runs, key=lambda r: (args.models.index(r["model"]), r["seed"])),
        "summary": rows,
        "tables": {"accuracy-synthetic": table(rows, args)},
    }
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
