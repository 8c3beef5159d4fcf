"""Face detection and cropping speed: RetinaFace frames/s, cropper and precompute videos/s.

Measures, on CPU (onnxruntime's CPU provider; the ``faces`` extra ships no GPU build):

* ``detect``: :class:`cefl_zoo.faces.RetinaFaceDetector` frames/s on the astronaut photo
  (scikit-image) resized to several sizes, for 1 and all onnxruntime threads. Frames
  above ``max_size`` (640) are downscaled before detection, so 1280 px costs about what
  640 px does plus the resize.
* ``cropper``: :class:`cefl_zoo.faces.FaceCropper` on a 105-frame 320 px clip (the
  paper's normalised length) with detection stride 1 and 5: videos/s and frames/s,
  everything included (detection, tracking, smoothing, crops to 224 px).
* ``crop_only``: the crop step alone (``crop_boxes``, 105 frames to 224 px).
* ``precompute``: :func:`cefl_zoo.faces.precompute_face_crops` of the same clip as an
  mp4 (decode, detect with stride 5, crop, JPEG-encode, write): videos/s.

Usage::

    python benchmarks/faces.py                 # writes results/faces_cpu.json
    python benchmarks/faces.py --repeats 5 --output /tmp/faces.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import SCHEMA_VERSION, environment, result_path, write_json

__all__ = ["main", "run"]


def _best_of(fn: Any, repeats: int) -> float:
    fn()  # warm-up (session creation, allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _clip(image: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    out = []
    for t in range(frames):
        side = 380 - t
        x0, y0 = 10 + t // 2, 5 + t // 3
        out.append(F.resize(image[:, y0 : y0 + side, x0 : x0 + side], [size, size], antialias=True))
    return torch.stack(out)


def run(repeats: int = 3) -> dict[str, Any]:
    from skimage import data
    from torchvision.transforms.v2 import functional as F

    from cefl_zoo.faces import FaceCropper, RetinaFaceDetector, crop_boxes, precompute_face_crops

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).contiguous()
    result: dict[str, Any] = {"detect": [], "cropper": [], "crop_only": [], "precompute": []}
    batch = 8
    for threads in (1, 0):
        for size in (160, 320, 640, 1280):
            frames = F.resize(image, [size, size], antialias=True)[None].repeat(batch, 1, 1, 1)
            det = RetinaFaceDetector(num_threads=threads, batch_size=batch)
            found = det.detect(frames[:1])[0]
            sec = _best_of(lambda det=det, frames=frames: det.detect(frames), repeats)
            result["detect"].append(
                {
                    "size": size,
                    "threads": threads or os.cpu_count(),
                    "batch": batch,
                    "frames_per_s": batch / sec,
                    "ms_per_frame": 1000 * sec / batch,
                    "faces_found": len(found),
                }
            )
            print(result["detect"][-1], flush=True)
    clip = _clip(image, 105, 320)
    det = RetinaFaceDetector(num_threads=0)
    for stride in (1, 5):
        cropper = FaceCropper(det, size=224, stride=stride)
        sec = _best_of(lambda cropper=cropper: cropper(clip, "bench"), repeats)
        result["cropper"].append(
            {
                "frames": 105,
                "frame_size": 320,
                "crop_size": 224,
                "stride": stride,
                "videos_per_s": 1 / sec,
                "frames_per_s": 105 / sec,
            }
        )
        print(result["cropper"][-1], flush=True)
    boxes = FaceCropper(det, size=224).track(clip).crop_boxes
    sec = _best_of(lambda: crop_boxes(clip, boxes, 224), repeats)
    result["crop_only"].append({"frames": 105, "crop_size": 224, "frames_per_s": 105 / sec})
    print(result["crop_only"][-1], flush=True)
    from _video_utils import write_video

    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "clip.mp4", clip)
        cropper = FaceCropper(det, size=224, stride=5)
        sec = _best_of(
            lambda: precompute_face_crops(video, Path(tmp) / "out", cropper, overwrite=True),
            repeats,
        )
        result["precompute"].append(
            {
                "frames": 105,
                "frame_size": 320,
                "crop_size": 224,
                "stride": 5,
                "videos_per_s": 1 / sec,
                "frames_per_s": 105 / sec,
            }
        )
        print(result["precompute"][-1], flush=True)
    return result


def tables(result: dict[str, Any]) -> dict[str, Any]:
    """The ``faces-cpu`` table of a :func:`run` result (rendered by ``tables.py``)."""
    rows: list[list[Any]] = []
    for e in result["detect"]:
        rows.append(
            [
                "RetinaFace detect",
                (
                    f"{e['size']} px frames, {e['threads']} "
                    f"thread{'s' if e['threads'] != 1 else ''}, batch {e['batch']}"
                ),
                round(e["frames_per_s"], 1),
                "-",
            ]
        )
    for e in result["cropper"]:
        rows.append(
            [
                "FaceCropper (detect + track + crop)",
                (
                    f"{e['frames']} frames of {e['frame_size']} px -> {e['crop_size']} px, "
                    f"detection stride {e['stride']}"
                ),
                round(e["frames_per_s"], 1),
                round(e["videos_per_s"], 3),
            ]
        )
    for e in result["crop_only"]:
        rows.append(
            [
                "crop only (crop_boxes)",
                f"{e['frames']} frames -> {e['crop_size']} px",
                round(e["frames_per_s"], 1),
                "-",
            ]
        )
    for e in result["precompute"]:
        rows.append(
            [
                "precompute_face_crops (mp4 -> JPEG folder)",
                f"{e['frames']} frames of {e['frame_size']} px, stride {e['stride']}",
                round(e["frames_per_s"], 1),
                round(e["videos_per_s"], 3),
            ]
        )
    return {
        "faces-cpu": {
            "columns": ["step", "setting", "frames/s", "videos/s"],
            "align": "llrr",
            "rows": rows,
            "caption": "Face detection and cropping on the CPU (onnxruntime CPU provider), "
            "best of the repeats; frames above 640 px are downscaled before detection. "
            "Crops are computed once per video (`cefl-zoo faces`), not per epoch.",
        }
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    payload = {
        "benchmark": "faces",
        "schema_version": SCHEMA_VERSION,
        "environment": environment("cpu", argv),
        # other processes share the CPU: the 1-minute load average before and after
        "load_average_before": os.getloadavg()[0],
        **run(args.repeats),
        "load_average_after": os.getloadavg()[0],
    }
    payload["tables"] = tables(payload)
    out = write_json(args.output or result_path("faces_cpu"), payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
