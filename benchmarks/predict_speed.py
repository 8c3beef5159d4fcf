"""Predictor throughput end to end: video file -> decoded frames -> (faces) -> model.

For each configuration, :func:`cefl_zoo.predict.benchmark.benchmark_predictor` (the code
behind ``cefl-zoo benchmark``) predicts the same synthetic videos twice: once with no
decoding threads, where the time shares of decoding, face detection, preprocessing and
the model add up to the wall time, and once pipelined (decoding threads ahead of the
model), the videos/s a user sees.

Configurations (``--configs``):

* ``tiny``: ``ceflnet_tiny`` (the shipped synthetic weights when present) at 64 px,
  frames used as they are;
* ``tiny_faces``: the same with RetinaFace face cropping (``cefl-zoo[faces]``);
* ``resnet18``: the paper's ``ceflnet_resnet18`` at 224 px (random weights: speed does
  not depend on them), no face detection;
* ``resnet18_faces``: the paper's full pipeline, RetinaFace + ResNet-18 CEFLNet.

Videos: ``--videos`` synthetic face videos of ``--size`` px (h264, 60-140 frames, 25 fps),
written once to a temporary folder.

Usage::

    python benchmarks/predict_speed.py                      # CPU, all configurations
    python benchmarks/predict_speed.py --device cuda --videos 128 --batch-size 32

Writes ``benchmarks/results/predict_<device-slug>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SCHEMA_VERSION,
    device_slug,
    environment,
    result_path,
    write_json,
)

CONFIGS = {
    "tiny": {"model": None, "faces": None},
    "tiny_faces": {"model": None, "faces": "retinaface"},
    "resnet18": {"model": "ceflnet_resnet18", "faces": None},
    "resnet18_faces": {"model": "ceflnet_resnet18", "faces": "retinaface"},
}


def main(argv: list[str] | None = None) -> int:
    import torch

    from cefl_zoo.commands.benchmark import _default_model
    from cefl_zoo.data.synthetic import write_synthetic_dataset
    from cefl_zoo.predict import Predictor
    from cefl_zoo.predict.benchmark import benchmark_predictor, format_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed videos first (default: one batch of each timed size)",
    )
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")

    entries = []
    payload = {
        "benchmark": "predict_speed",
        "schema_version": SCHEMA_VERSION,
        "environment": environment(args.device),
        "settings": {
            "videos": args.videos,
            "size": args.size,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "warmup": args.warmup,
        },
        "entries": entries,
    }
    out = Path(args.output) if args.output else result_path(f"predict_{device_slug(args.device)}")
    with tempfile.TemporaryDirectory(prefix="cefl-zoo-predict-speed-") as tmp:
        print(f"writing {args.videos} synthetic {args.size} px videos ...", file=sys.stderr)
        write_synthetic_dataset(tmp, num_videos=args.videos, seed=0, size=args.size, progress=False)
        folder = os.path.join(tmp, "videos")
        videos = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        for name in configs:
            cfg = CONFIGS[name]
            model = cfg["model"] or _default_model()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    predictor = Predictor(
                        model,
                        device=args.device,
                        face_detector=cfg["faces"],
                        batch_size=args.batch_size,
                        num_workers=args.workers,
                    )
            except ImportError as err:
                print(f"{name}: skipped ({err})", file=sys.stderr)
                entries.append({"config": name, "skipped": str(err)})
                continue
            load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
            report = benchmark_predictor(predictor, videos, warmup=args.warmup)
            report["config"] = name
            # a shared machine's load changes the numbers: record it with them
            report["loadavg_1min"] = {
                "before": load_before[0] if load_before else None,
                "after": os.getloadavg()[0] if load_before else None,
            }
            print(f"[{name}] " + format_report(report), flush=True)
            entries.append(report)
            payload["tables"] = _tables(entries, args.device)
            write_json(out, payload)  # after every entry: a cut-short run keeps its numbers
    payload["tables"] = _tables(entries, args.device)
    write_json(out, payload)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _tables(entries: list[dict], device: str) -> dict:
    rows = []
    for e in entries:
        if "modes" not in e:
            continue
        seq, pipe = e["modes"].get("sequential"), e["modes"].get("pipelined")
        shares = seq["shares"] if seq else pipe["shares"]
        rows.append(
            [
                e["config"],
                e["model"],
                e["input_size"][-1],
                e["faces"] or "-",
                round(pipe["videos_per_s"], 2) if pipe else "-",
                round(seq["videos_per_s"], 2) if seq else "-",
                *(f"{100 * shares[k]:.0f} %" for k in ("decode", "faces", "preprocess", "model")),
            ]
        )
    return {
        f"predict-speed-{device_slug(device)}": {
            "columns": [
                "config",
                "model",
                "px",
                "faces",
                "videos/s (pipelined)",
                "videos/s (sequential)",
                "decode",
                "faces",
                "preprocess",
                "model",
            ],
            "rows": rows,
            "caption": "Predictor throughput, video file to prediction (synthetic h264 videos); "
            "time shares from the sequential run.",
        }
    }


if __name__ == "__main__":
    sys.exit(main())
