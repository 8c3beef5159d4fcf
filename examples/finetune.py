"""Fine-tune CEFLNet on your own labelled videos.

Put one folder per class (any names; emotion names such as ``Happy`` are recognised):

    my_videos/
        happy/    clip001.mp4  clip002.mp4 ...
        sad/      ...
        bored/    ...

then run

    python examples/finetune.py my_videos --model ceflnet_resnet18 --pretrained-backbone
    python examples/finetune.py my_videos --model runs/dfew/model         # start from saved weights
    python examples/finetune.py my_videos --model ceflnet_resnet18.dfew --pretrained
    python examples/finetune.py my_videos --init-from runs/dfew/best.pt  # a training checkpoint

The classification head is replaced when your classes differ from the weights'. A
stratified share of each class (``--val-fraction``) is held out for evaluation. The
run directory gets checkpoints, metrics and plots; ``OUTPUT/model`` is a
``save_pretrained`` folder that ``cefl_zoo.create_model("OUTPUT/model")`` loads.
Only the public API is used.

Run it again into the same ``--output`` with ``--resume`` (continue a stopped run from
its ``last.pt``) or ``--overwrite`` (start again). On several GPUs:

    torchrun --nproc_per_node 4 examples/finetune.py my_videos --batch-size 2

(``--batch-size`` is per process; rank 0 prints, writes the run and saves the model.)
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cefl_zoo
from cefl_zoo.data import VideoDataset, VideoFolderDataset
from cefl_zoo.train import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    Trainer,
    format_metrics,
    seed_everything,
)
from cefl_zoo.train.distributed import launch_rank
from cefl_zoo.video import ClipSampler


def split_per_class(items, val_fraction, seed):
    """Hold out ``val_fraction`` of each class's videos (at least one if it has two)."""
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({item.label for item in items}):
        members = [item for item in items if item.label == label]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction) if len(members) > 1 else 0
        n_val = max(n_val, 1) if val_fraction > 0 and len(members) > 1 else n_val
        val += members[:n_val]
        train += members[n_val:]
    return train, val


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", help="folder with one sub-folder of videos per class")
    parser.add_argument(
        "--model", default="ceflnet_resnet18", help="registry name, saved folder or hf-hub:org/repo"
    )
    parser.add_argument(
        "--pretrained", action="store_true", help="load the registry weights of --model"
    )
    parser.add_argument(
        "--pretrained-backbone",
        action="store_true",
        help="start the backbone from timm's ImageNet weights (downloads them once)",
    )
    parser.add_argument("--init-from", default=None, help="start from a training checkpoint (.pt)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-clips", type=int, default=7)
    parser.add_argument("--frames-per-clip", type=int, default=5)
    parser.add_argument(
        "--img-size", type=int, default=None, help="frame size (default: the model's)"
    )
    parser.add_argument("--freeze-backbone-epochs", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--output", "--output-dir", dest="output", default="runs/finetune")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --output from its last.pt"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start again, replacing the run in --output"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.val_fraction < 1:
        parser.error(f"--val-fraction must lie in [0, 1), got {args.val_fraction}")
    try:
        trainer = build_trainer(args)
    except (FileNotFoundError, ValueError, CheckpointError) as err:  # a wrong path or name
        parser.error(" ".join(str(err).split()))
    try:
        summary = trainer.fit(resume="auto" if args.resume else None)  # a new head: your classes
    except ConfigError as err:  # e.g. --output holds a run: --resume or --overwrite
        trainer.close()
        parser.error(str(err))

    return finish(args, trainer, summary)


def build_trainer(args):
    """Model, data and recipe from the command line: the :class:`Trainer` to run."""
    # 1. The model, and the preprocessing that matches it (seeded: a new head's initial
    #    weights are part of what --seed makes repeatable).
    seed_everything(args.seed)
    # (a saved folder or hf-hub: repo brings its own backbone weights: no ImageNet download)
    imagenet = args.pretrained_backbone and not args.pretrained and cefl_zoo.is_model(args.model)
    extra = {"pretrained_backbone": True} if imagenet else {}
    model = cefl_zoo.create_model(args.model, pretrained=args.pretrained, **extra)
    size = {"input_size": args.img_size} if args.img_size else {}
    train_tf = cefl_zoo.transforms_for(model, train=True, **size)
    eval_tf = cefl_zoo.transforms_for(model, train=False, **size)

    # 2. The videos: class folders -> labelled items -> train / validation datasets.
    videos = VideoFolderDataset(args.root)
    train_items, val_items = split_per_class(videos.items, args.val_fraction, args.seed)
    sampler = ClipSampler(args.num_clips, args.frames_per_clip)
    train_set = VideoDataset(
        train_items, videos.classes, sampler=sampler, transform=train_tf, train=True, seed=args.seed
    )
    val_set = (
        VideoDataset(val_items, videos.classes, sampler=sampler, transform=eval_tf)
        if val_items
        else None
    )
    is_main = launch_rank() == 0  # under torchrun only rank 0 prints
    if is_main:
        print(
            f"{len(videos.classes)} classes {videos.classes}: "
            f"{len(train_items)} train / {len(val_items)} val videos"
        )

    # 3. The recipe (the paper's, with your numbers) and the run.
    config = TrainConfig(
        model=args.model,
        init_from=args.init_from,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        num_clips=args.num_clips,
        frames_per_clip=args.frames_per_clip,
        img_size=args.img_size,
        freeze_backbone_epochs=args.freeze_backbone_epochs,
        num_workers=args.num_workers,
        amp=args.amp,
        output_dir=args.output,
        overwrite=args.overwrite,
        seed=args.seed,
        warmup_epochs=min(2.0, args.epochs / 4),
    )
    return Trainer(config, model=model, train_dataset=train_set, val_dataset=val_set)


def finish(args, trainer, summary):
    """Report the run and save the fine-tuned model; returns the exit code."""
    is_main = trainer.info.is_main
    if summary["status"] != "completed":  # stopped by SIGTERM / Ctrl-C after saving last.pt
        trainer.close()
        if is_main:
            print("stopped; run the same command with --resume to continue")
        return 143
    if is_main and summary["last"] is not None:
        print(format_metrics(summary["last"]))

    # 4. Save the fine-tuned model as a folder anyone can load with create_model(folder).
    if trainer.info.is_main:
        folder = trainer.model.save_pretrained(Path(args.output) / "model")
        print(f"saved {folder}; load it with cefl_zoo.create_model({str(folder)!r})")
    trainer.close()  # leaves the torchrun process group
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
