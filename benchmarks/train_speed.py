"""Training speed of the reference trainer: end to end (data included) vs compute only.

Every number is the real :class:`cefl_zoo.train.Trainer` loop (forward, eq. 11 loss,
backward, Adam step, scheduler; DDP and compile where asked) reading its batches from:

* ``memory`` - preprocessed float tensors already in memory (compute-only roof: no
  decoding, no augmentation, only the batch copy);
* ``mp4`` - the built-in synthetic dataset as h264 files, decoded by PyAV with seeks,
  sampled and augmented in DataLoader workers (``--data synthetic:DIR``);
* ``cache`` - D1's JPEG frame cache of the same videos, decoded in the workers
  (``--data cache:DIR``);
* ``cache_gpu`` - the same cache, bytes read in the workers and decoded on the GPU with
  nvJPEG in one call per batch (``--gpu-decode``; CUDA only).

Throughput is measured from the trainer's own per-step log (``steps.jsonl``) after
``--warmup`` steps, so start-up, worker spawn and compilation are excluded. The
end-to-end share of the compute roof is what the data pipeline costs.

Usage::

    python benchmarks/train_speed.py --device cpu --quick         # CPU: tiny + ResNet-18, few steps
    python benchmarks/train_speed.py --device cuda     # GPU: fp32 b8 eager vs bf16 b32 compiled

Writes ``benchmarks/results/train_speed_<device-slug>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_slug, environment, result_path, write_json

#: (model, frame size) of each benchmarked model.
MODELS = {"ceflnet_tiny": 64, "ceflnet_resnet18": 224}

#: Precision / compilation settings: (amp, channels_last, compile).
CONFIGS = {
    "fp32": ("none", False, False),
    "bf16_cl": ("bf16", True, False),
    "bf16_cl_compile": ("bf16", True, True),
}


class InMemory(Dataset):
    """``length`` items cycling over a few preprocessed samples (no decoding at all).

    On CUDA the samples live on the GPU (and the loader pins nothing), so a batch costs
    one device-side copy: the compute-only roof, not the host's collate and PCIe copy of
    a 0.7 GB float batch.
    """

    classes = None

    def __init__(
        self, source: Dataset, distinct: int, length: int, device: str | torch.device = "cpu"
    ) -> None:
        self.samples = [source[i % len(source)] for i in range(distinct)]
        for sample in self.samples:
            sample["video"] = sample["video"].to(device)
        self.classes = list(source.classes)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index % len(self.samples)]
        return {
            "video": s["video"],
            "label": s["label"],
            "apex_clip": s["apex_clip"],
            "index": index,
        }


def synthetic_data(
    root: Path, videos: int, size: int, distinct: int | None = None, workers: int = 0
) -> Path:
    """Write (once) a synthetic mp4 dataset of ``videos`` videos at ``size`` px.

    Only ``distinct`` of them are rendered and encoded (by ``workers`` processes; at
    224 px one video costs a few CPU seconds); the others are hard links to those files
    (copies where links fail), each its own row of ``labels.csv``. The loader opens, seeks
    and decodes each row's file as it would any other, so the cost per video is that of
    distinct videos; only the pictures repeat, which a speed measurement does not see.
    """
    import csv
    import shutil

    from cefl_zoo.data.synthetic import write_synthetic_dataset

    distinct = min(videos, distinct or videos)
    out = root / f"synth_{videos}_{size}_{distinct}"
    if (out / "labels.csv").is_file():
        return out
    base = root / f"synth_{distinct}_{size}_{distinct}"
    if not (base / "labels.csv").is_file():
        write_synthetic_dataset(
            base,
            num_videos=distinct,
            seed=0,
            size=size,
            test_fraction=0.0,
            progress=True,
            overwrite=True,  # a partial folder of an interrupted run
            num_workers=workers,
        )
    if distinct == videos:
        return base
    with open(base / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tmp = root / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "videos").mkdir(parents=True)
    table = []
    for i in range(videos):
        row = dict(rows[i % distinct])
        src, dst = base / row["path"], tmp / "videos" / f"{i:05d}.mp4"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        table.append({**row, "path": f"videos/{i:05d}.mp4"})
    with open(tmp / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(table)
    (tmp / LINKED).write_text(json.dumps({"base": base.name, "distinct": distinct}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


#: Marker file of a synthetic dataset whose rows are links to fewer distinct videos.
LINKED = "linked.json"


def frame_cache(
    root: Path, synth: Path, size: int, num_clips: int, frames: int, workers: int
) -> Path:
    """Build (once) a JPEG frame cache of the synthetic dataset.

    For a dataset of linked rows (:func:`synthetic_data`), only the distinct videos are
    decoded and encoded; every row gets its own index entry pointing at its video's
    bytes (shards hard-linked), so each row is still one read of its own entry.
    """
    import csv
    import shutil

    from cefl_zoo.data import build_dataset
    from cefl_zoo.data.cache import build_frame_cache
    from cefl_zoo.video import ClipSampler

    out = root / f"cache_{synth.name}_{num_clips}x{frames}"
    if (out / "index.json").is_file():
        return out
    linked = json.loads((synth / LINKED).read_text()) if (synth / LINKED).is_file() else None
    if linked is None:
        ds = build_dataset(
            "synthetic", synth, split="train", sampler=ClipSampler(num_clips, frames)
        )
        build_frame_cache(ds, out, size=size, format="jpeg", num_workers=workers, progress=True)
        return out
    base = synth.parent / linked["base"]
    base_cache = frame_cache(root, base, size, num_clips, frames, workers)
    index = json.loads((base_cache / "index.json").read_text())
    by_name = {Path(e["path"]).name: e for e in index["items"]}
    with open(base / "labels.csv", newline="") as f:
        base_rows = list(csv.DictReader(f))
    with open(synth / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    items = []
    for i, row in enumerate(rows):
        entry = by_name.get(Path(base_rows[i % linked["distinct"]]["path"]).name)
        if entry is not None:  # (a distinct video the base cache could not read: left out)
            items.append({**entry, "path": str((synth / row["path"]).resolve())})
    tmp = root / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for shard in base_cache.glob("shard_*.bin"):
        try:
            os.link(shard, tmp / shard.name)
        except OSError:
            shutil.copyfile(shard, tmp / shard.name)
    (tmp / "index.json").write_text(json.dumps({**index, "items": items}, default=str))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def schedule(warmup: int, steps: int, workers: int, prefetch_factor: int) -> tuple[int, int]:
    """``(warm-up steps, total steps)`` of a run whose log interval is ``warmup``.

    A loader with workers has ``workers x prefetch_factor`` batches ready when the first
    (compiled, slow) step ends; timing from there would measure the queue, not the
    pipeline. The warm-up therefore also covers those batches, rounded up to whole log
    intervals (``measure`` reads the step-``warm-up`` log line).
    """
    queued = workers * prefetch_factor
    warm = warmup * -(-(warmup + queued) // warmup)
    return warm, warm + steps


def measure(run_dir: Path, warmup: int) -> dict[str, Any]:
    """Videos/s from the end of step ``warmup`` to the last step, from ``steps.jsonl``.

    The run logs every ``warmup`` steps (:func:`run_one`), not every step: a log line
    reads the loss from the device, which waits for it, and a training run (50 steps
    between log lines by default) does not pay that every step either.
    """
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    start = next((s for s in steps if s["step"] == warmup), None)
    if start is None or steps[-1]["step"] <= warmup:
        raise RuntimeError(
            f"steps.jsonl has no line for step {warmup} and a later one; need more than "
            f"--warmup {warmup} steps"
        )
    a, b = start, steps[-1]
    seconds = b["elapsed_s"] - a["elapsed_s"]
    videos = b["videos"] - a["videos"]
    return {
        "videos_per_s": videos / seconds,
        "measured_steps": b["step"] - a["step"],
        "measured_videos": videos,
        "seconds": seconds,
    }


def run_one(
    model: str,
    size: int,
    source: str,
    config: str,
    batch: int,
    args,
    data: dict[str, Path],
    workdir: Path,
) -> dict[str, Any]:
    from cefl_zoo.train import TrainConfig, Trainer

    amp, channels_last, compile_ = CONFIGS[config]
    workers = args.workers if source != "memory" else 0
    warmup, steps = schedule(args.warmup, args.steps, workers, args.prefetch_factor)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:  # this run's own peak, not the highest of the runs before it
        import gc

        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(
        model=model,
        epochs=1,
        batch_size=batch,
        num_clips=args.num_clips,
        frames_per_clip=args.frames,
        img_size=size,
        amp=amp,
        channels_last=channels_last,
        compile=compile_,
        device=args.device,
        num_workers=workers,
        persistent_workers=True,
        prefetch_factor=args.prefetch_factor,
        pin_memory=source != "memory",  # in-memory samples are on the device already
        limit_train_steps=steps,
        log_every_steps=args.warmup,  # measure() needs step `warmup` and the last one
        checkpoint_every_steps=0,
        val_split=None,
        progress=False,
        save_plots=False,
        output_dir=str(workdir / f"{model}_{source}_{config}_b{batch}"),
        warmup_epochs=0.0,
        gpu_decode=source == "cache_gpu",
        data=None
        if source == "memory"
        else (f"synthetic:{data['mp4']}" if source == "mp4" else f"cache:{data['cache']}"),
    )
    train_dataset = None
    if source == "memory":
        from cefl_zoo.train.loaders import build_split

        src_cfg = cfg.replace(data=f"synthetic:{data['mp4']}")
        train_dataset = InMemory(
            build_split(src_cfg, "train", train=True),
            distinct=2 * batch,
            length=steps * batch,
            device=args.device,
        )
    t0 = time.perf_counter()
    trainer = Trainer(cfg, train_dataset=train_dataset)
    trainer.fit()
    wall = time.perf_counter() - t0
    result = measure(Path(cfg.output_dir), warmup)
    peak = torch.cuda.max_memory_allocated() / 2**30 if trainer.device.type == "cuda" else None
    trainer.close()
    return {
        "model": model,
        "img_size": size,
        "source": source,
        "config": config,
        "batch_size": batch,
        "num_clips": args.num_clips,
        "frames_per_clip": args.frames,
        "workers": cfg.num_workers,
        "warmup_steps": warmup,
        "wall_s": wall,
        "peak_gib": peak,
        **result,
    }


def write_results(
    path: Path,
    results: list[dict[str, Any]],
    args: argparse.Namespace,
    env: dict[str, Any],
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the result file: ``results`` (each with its share of the compute-only roof of
    the same model, config and batch, where measured) after those of ``old`` (``--merge``)
    that this run does not redo. Called after every measurement."""
    results = [dict(r) for r in results]
    for r in results:
        roof = next(
            (
                x
                for x in results
                if x["source"] == "memory"
                and x["model"] == r["model"]
                and x["config"] == r["config"]
                and x["batch_size"] == r["batch_size"]
            ),
            None,
        )
        r["share_of_compute_only"] = r["videos_per_s"] / roof["videos_per_s"] if roof else None
        r["settings"] = {
            "warmup_steps": args.warmup,
            "measured_steps": args.steps,
            "workers": args.workers,
            "prefetch_factor": args.prefetch_factor,
            "threads": torch.get_num_threads(),
            "num_clips": args.num_clips,
            "frames_per_clip": args.frames,
            "distinct_videos": args.distinct_videos,
        }
    runs = [{"environment": env}]
    if old is not None:
        key = ("model", "source", "config", "batch_size")
        new_keys = {tuple(r[k] for k in key) for r in results}
        results = [
            r for r in old.get("results", []) if tuple(r[k] for k in key) not in new_keys
        ] + results
        runs = (old.get("runs") or [{"environment": old["environment"]}]) + runs
    payload = {
        "benchmark": "train_speed",
        "schema_version": 1,
        "environment": env,
        "runs": runs,
        "results": results,
    }
    write_json(path, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    parser.add_argument(
        "--sources", default=None, help="memory,mp4,cache,cache_gpu (default: all that apply)"
    )
    parser.add_argument(
        "--configs", default=None, help="fp32,bf16_cl,bf16_cl_compile (default: per device)"
    )
    parser.add_argument(
        "--batch",
        default=None,
        help="batch size per config, e.g. fp32=8,bf16_cl_compile=32 (default: 8 / 32 on "
        "CUDA; on CPU 8 at 64 px, 2 at 224 px)",
    )
    parser.add_argument("--num-clips", type=int, default=7)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5, help="steps excluded from the measurement")
    parser.add_argument("--steps", type=int, default=30, help="measured steps")
    parser.add_argument("--workers", type=int, default=max(1, min(16, (os.cpu_count() or 2) - 1)))
    parser.add_argument(
        "--prefetch-factor", type=int, default=2, help="batches each loader worker prefetches"
    )
    parser.add_argument(
        "--videos", type=int, default=None, help="synthetic videos to write (default: enough)"
    )
    parser.add_argument(
        "--distinct-videos",
        type=int,
        default=64,
        help="videos rendered; the others are links to them (0: all distinct)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where the synthetic data and cache are kept"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--quick", action="store_true", help="few steps, small batches (CPU smoke run)"
    )
    parser.add_argument(
        "--out", default=None, help="result JSON (default: results/train_speed_<device>.json)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other results of an existing result file (same device)",
    )
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the measurement starts after that step)")
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.device(args.device).type == "cuda"
    if args.quick:
        args.warmup, args.steps = 2, 4
    configs = (
        args.configs.split(",")
        if args.configs
        else (["fp32", "bf16_cl_compile"] if cuda else ["fp32"])
    )
    override = (
        {k: int(v) for k, v in (kv.split("=") for kv in args.batch.split(","))}
        if args.batch
        else {}
    )
    sources = (
        args.sources.split(",")
        if args.sources
        else (["memory", "mp4", "cache", "cache_gpu"] if cuda else ["memory", "mp4", "cache"])
    )
    data_root = Path(args.data_dir or Path(tempfile.gettempdir()) / "cefl_train_speed")
    path = Path(args.out) if args.out else result_path(f"train_speed_{device_slug(args.device)}")
    env = environment(args.device)
    old = json.loads(path.read_text()) if args.merge and path.is_file() else None
    workdir = Path(tempfile.mkdtemp(prefix="cefl_train_speed_"))
    results = []
    for model in args.models.split(","):
        size = MODELS.get(model, 224)
        if cuda:  # the reference: fp32 eager batch 8 vs bf16 compiled batch 32
            batches = {"fp32": 8, "bf16_cl": 32, "bf16_cl_compile": 32}
        else:  # CPU: what fits a few seconds per step
            batches = {c: 8 if size <= 64 else 2 for c in CONFIGS}
        batches.update(override)
        longest = max(
            schedule(args.warmup, args.steps, args.workers, args.prefetch_factor)[1],
            schedule(args.warmup, args.steps, 0, args.prefetch_factor)[1],
        )
        need = longest * max(batches[c] for c in configs)
        videos = args.videos or min(max(need, 16), 4096)  # one epoch holds every step
        data = {
            "mp4": synthetic_data(
                data_root, videos, size, args.distinct_videos, workers=args.workers
            )
        }
        if any(s.startswith("cache") for s in sources):
            data["cache"] = frame_cache(
                data_root, data["mp4"], size, args.num_clips, args.frames, args.workers
            )
        for config in configs:
            for source in sources:
                r = run_one(model, size, source, config, batches[config], args, data, workdir)
                results.append(r)
                write_results(path, results, args, env, old)  # a cut-off run keeps these
                print(
                    f"{model:18s} {size:4d}px {config:16s} b{r['batch_size']:<3d} {source:9s} "
                    f"{r['videos_per_s']:8.2f} videos/s",
                    flush=True,
                )
    write_results(path, results, args, env, old)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
