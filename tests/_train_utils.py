"""Helpers for the trainer tests: a tiny in-memory video dataset and a training script.

``ToyVideos`` has a learnable class signal (a colour offset whose strength peaks at a
known apex clip) and per-epoch random noise seeded by ``(seed, epoch, index)``, like the
real datasets, so resumed and distributed runs can be checked sample for sample.

Run as a script (``python tests/_train_utils.py OUT [options]``, also under
``torchrun``) it trains ``ceflnet_tiny`` at 32 px, 2 clips x 2 frames, on ToyVideos:
the subprocess the resume and distributed tests start, signal and compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

CLASSES = ("happiness", "sadness", "anger")


class ToyVideos(Dataset):
    """``n`` videos ``(N, K, 3, S, S)``: class ``y`` brightens channel ``y``, most at the apex clip.

    Args:
        n: Number of videos.
        num_clips: N.
        frames: K.
        size: S.
        seed: Base seed; items differ by index, and by epoch after ``set_epoch``.
        delay: Seconds to sleep per item (to slow a run down for signal tests).
        classes: Class names (label order).
        signal: Strength of the class signal.
    """

    def __init__(
        self,
        n: int = 48,
        num_clips: int = 2,
        frames: int = 2,
        size: int = 32,
        seed: int = 0,
        delay: float = 0.0,
        classes: tuple[str, ...] = CLASSES,
        signal: float = 1.0,
    ) -> None:
        self.n, self.num_clips, self.frames, self.size = n, num_clips, frames, size
        self.seed, self.delay, self.classes, self.signal = seed, delay, tuple(classes), signal
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        fixed = torch.Generator().manual_seed(self.seed * 100003 + index)
        label = index % len(self.classes)
        apex = int(torch.randint(self.num_clips, (1,), generator=fixed))
        noise = torch.Generator().manual_seed((self.seed * 7919 + self.epoch) * 100003 + index)
        video = 0.5 * torch.randn(
            self.num_clips, self.frames, 3, self.size, self.size, generator=noise
        )
        strength = torch.full((self.num_clips,), 0.3)
        strength[apex] = 1.0
        video[:, :, label % 3] += self.signal * strength.view(-1, 1, 1, 1)
        return {
            "video": video,
            "label": label,
            "apex_clip": apex,
            "path": f"toy/{index}.mp4",
            "index": index,
        }


def toy_config(out: str | os.PathLike, **overrides):
    """A fast TrainConfig for ceflnet_tiny on ToyVideos."""
    from cefl_zoo.train import TrainConfig

    base = dict(
        model="ceflnet_tiny",
        epochs=2,
        batch_size=4,
        lr=2e-3,
        warmup_epochs=0.5,
        num_clips=2,
        frames_per_clip=2,
        img_size=32,
        num_workers=0,
        output_dir=str(out),
        progress=False,
        save_plots=False,
        checkpoint_every_steps=2,
        log_every_steps=1,
        seed=0,
    )
    base.update(overrides)
    return TrainConfig(**base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--val-videos", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--log-every", type=int, default=1)
    parser.add_argument("--checkpoint-every", type=int, default=2)
    parser.add_argument("--pid-dir", default=None, help="write PID_DIR/rank<R>.pid")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.pid_dir:
        rank = os.environ.get("RANK", "0")
        Path(args.pid_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.pid_dir) / f"rank{rank}.pid").write_text(str(os.getpid()))
    from cefl_zoo.train import train

    cfg = toy_config(
        args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        model_kwargs={"drop_rate": args.dropout},
        log_every_steps=args.log_every,
        checkpoint_every_steps=args.checkpoint_every,
    )
    val = ToyVideos(args.val_videos, seed=1) if args.val_videos else None
    summary = train(
        cfg,
        resume="auto" if args.resume else None,
        train_dataset=ToyVideos(args.videos, delay=args.delay),
        val_dataset=val,
    )
    if summary["status"] != "completed":
        return 143
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())


def make_dfew_fixture(
    root: str | os.PathLike, videos: int = 10, frames: int = 6, size: int = 32
) -> Path:
    """A tiny DFEW tree in the published layout: 5 folds of split CSVs + face frame folders.

    Video ``v`` (1-based) has label ``(v - 1) % 7 + 1`` (DFEW's 1-based labels) and is in
    the test set of fold ``(v - 1) % 5 + 1``.
    """
    from PIL import Image

    root = Path(root)
    ids = list(range(1, videos + 1))
    for fold in range(1, 6):
        test = [v for v in ids if (v - 1) % 5 == fold - 1]
        for split, members in (("train", [v for v in ids if v not in test]), ("test", test)):
            file = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(
                "video_name,label\n" + "".join(f"{v},{(v - 1) % 7 + 1}\n" for v in members)
            )
    g = torch.Generator().manual_seed(0)
    for v in ids:
        folder = root / "Clip" / "clip_224x224" / f"{v:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(frames):
            img = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=g)
            Image.fromarray(img.numpy()).save(folder / f"{t + 1:05d}.jpg", quality=90)
    return root
