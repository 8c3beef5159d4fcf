"""Learning is real: ceflnet_tiny learns the built-in synthetic expressions on CPU.

The synthetic videos (:mod:`cefl_zoo.data.synthetic`) show a drawn face whose expression
rises to an apex at a known frame and falls back; pose, identity, lighting and noise vary.
The paper's recipe (Adam, linear warm-up + cosine, weight decay 1e-4, batch 8, 7 clips, the
eq. 11 loss) trains ``ceflnet_tiny`` on the training split; on the held-out videos it must
classify >= 90 % correctly (it reaches about 95 %), and its emotion-rich clip (paper eq. 6,
Table 7) must be the apex clip far more often than the 1/7 of chance - without ever having
been told where the apex is.
"""

from __future__ import annotations

import pytest
import torch

import cefl_zoo
from cefl_zoo.data.synthetic import SyntheticTensorDataset
from cefl_zoo.train import TrainConfig, Trainer, format_metrics
from cefl_zoo.video import ClipSampler

# Sized for about 1.5 minutes on two CPU cores (one trains, one renders the frames).
NUM_VIDEOS = 1400  # 1050 training, 350 held-out videos (25 % of each class)
SIZE = 32  # half of ceflnet_tiny's 64 px: the drawn faces stay legible, 4x less compute
NUM_CLIPS, FRAMES = 7, 3
EPOCHS = 6
LR = 1e-3


@pytest.fixture
def one_thread():
    """One core trains, the other renders frames in the loader worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_ceflnet_tiny_learns_synthetic_expressions_and_finds_the_apex(tmp_path, one_thread):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=7)

    def split(name: str, train: bool) -> SyntheticTensorDataset:
        return SyntheticTensorDataset(
            NUM_VIDEOS,
            seed=0,
            split=name,
            size=SIZE,
            train=train,
            sampler=ClipSampler(NUM_CLIPS, FRAMES),
            transform=cefl_zoo.transforms_for(model, train=train, input_size=SIZE),
        )

    cfg = TrainConfig(
        model="ceflnet_tiny",
        epochs=EPOCHS,
        lr=LR,
        batch_size=8,
        warmup_epochs=1,
        num_clips=NUM_CLIPS,
        frames_per_clip=FRAMES,
        img_size=SIZE,
        num_workers=1,
        output_dir=str(tmp_path),
        eval_every_epochs=EPOCHS,
        checkpoint_every_steps=0,
        progress=False,
        save_plots=False,
        seed=0,
    )
    summary = Trainer(
        cfg, model=model, train_dataset=split("train", True), val_dataset=split("test", False)
    ).fit()
    metrics = summary["last"]
    history = summary["history"]
    print(format_metrics(metrics))  # shown on failure (or with pytest -s)
    assert metrics["num_videos"] == NUM_VIDEOS // 4
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert metrics["war"] >= 0.90, metrics
    assert min(r for r in metrics["per_class_recall"]) >= 0.6, metrics["per_class"]
    located = metrics["clip_locating"]
    assert located["chance"] == pytest.approx(1 / 7)
    assert located["gt_class"] >= 3 * located["chance"], located  # far above chance
    assert located["pred_class"] >= 3 * located["chance"], located
