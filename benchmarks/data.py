"""Data-loading speed: frames/s and videos/s of every way cefl-zoo can feed the model.

Paths measured (one process, ``--threads`` torch threads, as one DataLoader worker runs):

* ``pyav_seek`` - :class:`~cefl_zoo.video.PyAVReader` reading the 35 sampled frames of a
  video file (seek to the keyframe before each needed frame, decode forward);
* ``pyav_decode_all`` - the same file decoded from start to end, then indexed (what a
  reader without seeking does);
* ``frame_folder`` - the 35 frames as JPEG files of a frame folder (DFEW's layout);
* ``cache_uint8`` - :class:`~cefl_zoo.data.CachedVideoDataset`, raw ``uint8`` shards;
* ``cache_jpeg_cpu`` - JPEG shards decoded on the CPU (libjpeg-turbo);
* ``cache_jpeg_gpu`` - JPEG shards, bytes read by the loader, a batch of videos decoded
  in one nvJPEG call (:func:`~cefl_zoo.data.decode_jpeg_batch`); only when CUDA exists;
* ``cache_jpeg_gpu_transform`` - the same, then the training transform and the
  channels-last layout on the GPU: the model's input, as ``--gpu-decode`` training makes it;
* ``train_transform`` - the training transform (random resized crop, flip, normalise)
  on already decoded ``uint8`` frames, for scale.

Each path reports wall-clock ``frames_per_s`` and ``videos_per_s`` (35 frames per video)
and ``frames_per_cpu_s`` (frames per second of this process's CPU time, which a busy
shared machine distorts much less than wall time), plus how many such workers would feed
the frames/s that training consumes: ``--training-speed`` names a ``throughput.py`` or
``train_speed.py`` result whose fastest CEFLNet-ResNet-18 training speed sets it (x 35
frames); without one, 15,000 frames/s (the H100 training target of 390 videos/s x 35,
rounded up).

The videos are the built-in synthetic faces rendered at ``--size`` (224 by default, the
paper's face crops), ``--frames`` frames long, h264 with a keyframe every ``--gop``
frames, written to a temporary directory.

Usage::

    python benchmarks/data.py                      # 224 px, writes results/data_cpu.json
    python benchmarks/data.py --quick              # small and fast (a smoke run)
    python benchmarks/data.py --device cuda        # adds nvJPEG; results/data_<gpu>.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import device_slug, environment, result_path, synchronize, write_json

#: Frames/s that training consumes when no measured GPU training speed is given: the H100
#: training target (390 videos/s x 35 frames = 13,650), rounded up.
TARGET_FRAMES_PER_S = 15_000


def needed_frames_per_s(path: str | Path | None, frames_per_video: int) -> dict[str, Any]:
    """Frames/s the data pipeline must deliver to keep up with training.

    ``path`` is a ``throughput.py`` or ``train_speed.py`` result: the fastest training
    speed of ``ceflnet_resnet18`` in it (videos/s) x ``frames_per_video``. Without one (or
    where it holds no such number), :data:`TARGET_FRAMES_PER_S`.

    Returns ``frames_per_s`` and ``source`` (what the number comes from).
    """
    if path is not None and Path(path).is_file():
        data = json.loads(Path(path).read_text())
        # throughput.py "entries" (mode training, source "cefl_zoo": the zoo's model, not
        # a peer) and train_speed.py "results" (the compute-only "memory" source).
        entries = [
            e
            for e in data.get("entries", [])
            if e.get("mode") == "training" and e.get("source", "cefl_zoo") == "cefl_zoo"
        ]
        entries += [e for e in data.get("results", []) if e.get("source", "memory") == "memory"]
        rows = [
            (e["videos_per_s"], f"{e.get('config')} batch {e.get('batch', e.get('batch_size'))}")
            for e in entries
            if e.get("model") == "ceflnet_resnet18"
            and e.get("status", "ok") == "ok"
            and e.get("videos_per_s")
        ]
        if rows:
            vps, what = max(rows)
            return {
                "frames_per_s": round(vps * frames_per_video),
                "source": (
                    f"ceflnet_resnet18 training {what}: {vps:.1f} videos/s x "
                    f"{frames_per_video} frames ({Path(path).name})"
                ),
            }
    why = f"{path}: no ceflnet_resnet18 training speed there; " if path is not None else ""
    return {
        "frames_per_s": TARGET_FRAMES_PER_S,
        "source": why + "the H100 training target, 390 videos/s x 35 frames, rounded up",
    }


def _prepare(root: Path, videos: int, size: int, frames: int, gop: int) -> dict[str, Any]:
    """Write the synthetic videos, their frame folders and both caches."""
    import av

    from cefl_zoo.data import SyntheticVideoDataset, build_frame_cache
    from cefl_zoo.data.synthetic import make_video_spec, render_frames, synthetic_labels
    from cefl_zoo.video.io import quiet_image_io

    labels = synthetic_labels(videos, 0)
    video_dir, folder_dir = root / "data" / "videos", root / "folders"
    video_dir.mkdir(parents=True)
    rows = ["path,label,split,apex_frame,num_frames"]
    from torchvision.io import write_jpeg

    for i in range(videos):
        spec = make_video_spec(0, i, int(labels[i]), min_frames=frames, max_frames=frames)
        clip = render_frames(spec, range(frames), size)
        path = video_dir / f"{i:05d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"g": str(gop), "crf": "18", "threads": "1"}
            for img in clip.permute(0, 2, 3, 1).numpy():
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        folder = folder_dir / f"{i:05d}"
        folder.mkdir(parents=True)
        with quiet_image_io():
            for t, img in enumerate(clip):
                write_jpeg(img.contiguous(), str(folder / f"{t + 1}.jpg"), quality=90)
        rows.append(f"videos/{i:05d}.mp4,{spec.label_name},train,{spec.apex_frame},{frames}")
    (root / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset = SyntheticVideoDataset(root / "data", split=None)
    for fmt in ("uint8", "jpeg"):
        build_frame_cache(
            dataset, root / f"cache_{fmt}", size=size, format=fmt, quality=90, progress=False
        )
    return {"dataset": dataset, "folders": sorted(folder_dir.iterdir())}


def _measure(
    fn, items: list[Any], repeats: int, frames_per_item: int, target: float = TARGET_FRAMES_PER_S
) -> dict[str, float]:
    """Run ``fn(item)`` over every item ``repeats`` times (after one warm-up item)."""
    fn(items[0])
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for _ in range(repeats):
        for item in items:
            fn(item)
            n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = n * frames_per_item
    fps = frames / wall
    per_cpu = frames / cpu if cpu > 0 else float("nan")
    return {
        "videos": n,
        "frames": frames,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "frames_per_s": round(fps, 1),
        "videos_per_s": round(fps / frames_per_item, 2),
        "frames_per_cpu_s": round(per_cpu, 1),
        "workers_for_target": round(target / per_cpu, 1) if per_cpu else None,
    }


def batched_decode_rows(
    cache_dir: Path,
    device: str,
    batch_videos: int,
    size: int,
    repeats: int,
    target: float = TARGET_FRAMES_PER_S,
) -> list[dict[str, Any]]:
    """The frame cache's batched path (``cefl-zoo train --gpu-decode``) on ``device``.

    Two rows: ``cache_jpeg_gpu`` (the JPEG bytes of ``batch_videos`` videos decoded in
    one call: nvJPEG on CUDA) and ``cache_jpeg_gpu_transform`` (that plus the training
    transform and the channels-last layout: the model's input tensor, as the trainer
    makes it). The device is synchronised after every batch.
    """
    import cefl_zoo
    from cefl_zoo.data import CachedVideoDataset, collate_encoded, decode_jpeg_batch, encoded_frames
    from cefl_zoo.data.cache import prepare_batch

    raw = CachedVideoDataset(cache_dir, decode=False, train=True)
    batch = collate_encoded([raw[i % len(raw)] for i in range(batch_videos)])
    transform = cefl_zoo.transforms_for("ceflnet_resnet18", train=True, input_size=size)

    def decode(_):
        out = decode_jpeg_batch(encoded_frames(batch), batch["shape"], device=device)
        synchronize(device)
        return out

    def to_model_input(_):
        out = prepare_batch(batch, device, transform, channels_last=True)
        synchronize(device)
        return out

    _, n, k = batch["shape"]  # (B, N, K)
    per_video = n * k
    rows = []
    for name, fn in (("cache_jpeg_gpu", decode), ("cache_jpeg_gpu_transform", to_model_input)):
        row = {
            "path": name,
            "batch_videos": batch_videos,
            **_measure(fn, list(range(4)), repeats, batch_videos * per_video, target),
        }
        row["batches"], row["videos"] = row["videos"], row["videos"] * batch_videos
        row["videos_per_s"] = round(row["frames_per_s"] / per_video, 2)
        rows.append(row)
    return rows


def run(args: argparse.Namespace, out: Path | None = None) -> dict[str, Any]:
    import cefl_zoo
    from cefl_zoo.data import CachedVideoDataset
    from cefl_zoo.video import ClipSampler, open_video

    torch.set_num_threads(args.threads)
    sampler = ClipSampler()
    per_video = sampler.num_clips * sampler.frames_per_clip
    needed = needed_frames_per_s(args.training_speed, per_video)
    target = needed["frames_per_s"]
    print(f"needed: {target} frames/s ({needed['source']})", flush=True)
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    import av

    env = environment(args.device)
    env["versions"]["av"] = av.__version__
    env["versions"]["ffmpeg_libavcodec"] = ".".join(map(str, av.library_versions["libavcodec"]))

    with tempfile.TemporaryDirectory(prefix="cefl-data-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        prep = _prepare(root, args.videos, args.size, args.frames, args.gop)
        prepare_s = time.perf_counter() - t0
        dataset, folders = prep["dataset"], prep["folders"]
        paths = [item.path for item in dataset.items]
        cache_bytes = {
            fmt: sum(p.stat().st_size for p in (root / f"cache_{fmt}").glob("shard_*.bin"))
            for fmt in ("uint8", "jpeg")
        }
        video_bytes = sum(os.path.getsize(p) for p in paths)
        fixed = _fixed_fields(args, env, sampler, needed, prepare_s, cache_bytes, video_bytes)

        def payload() -> dict[str, Any]:
            load = {"before": list(load_before), "after": list(os.getloadavg())}
            return {
                **fixed,
                "host_load_1_5_15": load,
                "quick": bool(args.quick),
                "results": list(results),
            }

        def add(row: dict[str, Any]) -> None:
            """Keep a row and write the file so far (a step cut off keeps its rows)."""
            results.append(row)
            if out is not None:
                write_json(out, payload())

        gen = torch.Generator().manual_seed(0)
        plans = [sampler(args.frames, train=True, generator=gen).flatten().tolist() for _ in paths]
        jobs = list(zip(paths, folders, plans))

        def pyav_seek(job):
            with open_video(job[0]) as video:
                return video.read(job[2])

        def pyav_all(job):
            with open_video(job[0]) as video:
                return video.read_all()[job[2]]

        def folder(job):
            with open_video(job[1]) as video:
                return video.read(job[2])

        caches = {fmt: CachedVideoDataset(root / f"cache_{fmt}") for fmt in ("uint8", "jpeg")}

        def cached(fmt):
            ds = caches[fmt]

            def read(job):
                index = paths.index(job[0])
                with ds.open(ds.items[index]) as video:
                    return video.read(job[2])

            return read

        measures = {
            "pyav_seek": pyav_seek,
            "pyav_decode_all": pyav_all,
            "frame_folder": folder,
            "cache_uint8": cached("uint8"),
            "cache_jpeg_cpu": cached("jpeg"),
        }
        if args.device.startswith("cuda"):  # the GPU's own rows first
            if not torch.cuda.is_available():
                raise SystemExit("--device cuda given but CUDA is not available")
            for row in batched_decode_rows(
                root / "cache_jpeg", args.device, args.gpu_batch, args.size, args.repeats, target
            ):
                add(row)
                print(f"{row['path']:24s} {row['frames_per_s']:>9.1f} frames/s", flush=True)
        for name, fn in measures.items():
            row = {"path": name, **_measure(fn, jobs, args.repeats, per_video, target)}
            add(row)
            print(
                f"{name:16s} {row['frames_per_s']:>9.1f} frames/s  {row['videos_per_s']:>7.2f} "
                f"videos/s  {row['frames_per_cpu_s']:>9.1f} frames/cpu-s",
                flush=True,
            )

        frames = cached("uint8")(jobs[0]).reshape(
            sampler.num_clips, sampler.frames_per_clip, 3, args.size, args.size
        )
        train_tf = cefl_zoo.transforms_for("ceflnet_resnet18", train=True, input_size=args.size)
        row = {
            "path": "train_transform",
            **_measure(lambda _: train_tf(frames), jobs, args.repeats, per_video, target),
        }
        add(row)
        print(f"train_transform  {row['frames_per_s']:>9.1f} frames/s", flush=True)
    return payload()


def _fixed_fields(
    args: argparse.Namespace,
    env: dict[str, Any],
    sampler: Any,  # a ClipSampler
    needed: dict[str, Any],
    prepare_s: float,
    cache_bytes: dict[str, int],
    video_bytes: int,
) -> dict[str, Any]:
    """The fields of the result file that do not change as rows are measured."""
    per_video = sampler.num_clips * sampler.frames_per_clip
    return {
        "benchmark": "data",
        "schema_version": 1,
        "environment": env,
        "config": {
            "videos": args.videos,
            "size": args.size,
            "frames": args.frames,
            "gop": args.gop,
            "repeats": args.repeats,
            "threads": args.threads,
            "frames_per_video": per_video,
            "sampler": sampler.config(),
            "codec": "libx264 crf 18 yuv420p",
            "jpeg_quality": 90,
            "prepare_s": round(prepare_s, 1),
        },
        "storage_bytes_per_video": {
            "mp4": video_bytes // args.videos,
            "cache_uint8": cache_bytes["uint8"] // args.videos,
            "cache_jpeg": cache_bytes["jpeg"] // args.videos,
        },
        "target_frames_per_s": needed["frames_per_s"],
        "target_source": needed["source"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--gop", type=int, default=25, help="keyframe interval of the mp4s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="'cuda' adds the nvJPEG path")
    parser.add_argument("--gpu-batch", type=int, default=32, help="videos per nvJPEG call")
    parser.add_argument("--quick", action="store_true", help="4 videos at 64 px, 1 repeat")
    parser.add_argument(
        "--training-speed",
        default=None,
        help="throughput.py / train_speed.py JSON: the frames/s training needs is its "
        "fastest ceflnet_resnet18 training speed x 35 (default: the H100 roof, 15,000)",
    )
    parser.add_argument(
        "--output", default=None, help="JSON path (default results/data_<device>.json)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.size, args.frames, args.repeats = 4, 64, 60, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output) if args.output else result_path(f"data_{device_slug(args.device)}")
    payload = run(args, out)
    write_json(out, payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
