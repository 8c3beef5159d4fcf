"""The trainer: the paper's defaults, config layering, options, outputs and clear errors.

Fast tests on ``ToyVideos`` (in memory) and a tiny synthetic mp4 dataset; the learning
test (real accuracy) is in test_learning.py, resume in test_checkpoint_resume.py,
torchrun in test_distributed.py.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from _train_utils import CLASSES, ToyVideos, toy_config

import cefl_zoo
from cefl_zoo.cli import main as cli
from cefl_zoo.train import (
    ConfigError,
    DataError,
    TrainConfig,
    Trainer,
    evaluate,
    load_checkpoint,
    parse_data_spec,
)
from cefl_zoo.train.config import add_config_arguments, config_from_args
from cefl_zoo.train.schedule import build_scheduler

# -- configuration ---------------------------------------------------------------------


def test_defaults_are_the_papers_table_1():
    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay) == ("adam", 1e-4, 1e-4)
    assert (cfg.batch_size, cfg.epochs, cfg.num_clips, cfg.frames_per_clip) == (8, 120, 7, 5)
    assert cfg.scheduler == "cosine" and cfg.warmup_epochs > 0
    assert cfg.loss == "bce" and cfg.label_smoothing == 0.0
    assert cfg.model == "ceflnet_resnet18"
    assert not cfg.compile and cfg.amp == "none"  # opt-in speed options


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_config_file_then_flags_override_defaults(tmp_path):
    toml = tmp_path / "recipe.toml"
    toml.write_text(
        '[train]\nlr = 3e-4\nepochs = 30\namp = "bf16"\nmodel_kwargs = {backbone = "resnet34"}\n'
    )
    cfg = _parse(
        ["--config", str(toml), "--epochs", "5", "--no-progress", "--classes", "anger,fear"]
    )
    assert cfg.lr == 3e-4 and cfg.amp == "bf16" and cfg.model_kwargs == {"backbone": "resnet34"}
    assert cfg.epochs == 5  # the flag wins over the file
    assert cfg.progress is False and cfg.classes == ["anger", "fear"]
    assert cfg.batch_size == 8  # untouched default
    js = tmp_path / "recipe.json"
    js.write_text(json.dumps({"batch-size": 16, "val_split": None, "clip_grad_norm": 1.0}))
    cfg = _parse(["--config", str(js), "--model-kwargs", '{"drop_rate": 0.1}'])
    assert cfg.batch_size == 16 and cfg.val_split is None and cfg.clip_grad_norm == 1.0
    assert cfg.model_kwargs == {"drop_rate": 0.1}
    yml = tmp_path / "recipe.yaml"
    yml.write_text("loss: ce\nlabel_smoothing: 0.1\n")
    cfg = _parse(["--config", str(yml), "--val-split", "none"])
    assert (cfg.loss, cfg.label_smoothing, cfg.val_split) == ("ce", 0.1, None)


def test_config_errors_are_specific(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"learning_rate": 1e-3}))
    with pytest.raises(ConfigError, match=r"bad\.json: 'learning_rate'"):
        _parse(["--config", str(bad)])
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        TrainConfig().update({"lrr": 1})
    with pytest.raises(ConfigError, match="amp must be one of"):
        TrainConfig(amp="fp8")
    with pytest.raises(ConfigError, match="bad value for epochs"):
        TrainConfig().replace(epochs="ten")
    broken = tmp_path / "broken.toml"
    broken.write_text("lr = = 1")
    with pytest.raises(ConfigError, match="could not parse config file .*broken.toml"):
        TrainConfig.from_file(broken)
    with pytest.raises(ConfigError, match="NAME:ROOT"):
        parse_data_spec("/data/DFEW")
    assert parse_data_spec("csv:/data/my labels.csv").root == "/data/my labels.csv"


def test_saved_config_round_trips(tmp_path):
    cfg = TrainConfig(
        model="ceflnet_tiny", data="synthetic:/x", fold=2, classes=["anger", "fear"], amp="bf16"
    )
    path = cfg.save(tmp_path / "config.json")
    assert TrainConfig.from_file(path) == cfg


def test_warmup_then_cosine_per_step():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = build_scheduler(
        opt, "cosine", total_steps=20, warmup_steps=4, start_factor=0.1, min_lr=1e-5
    )
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4)  # warm-up starts at lr * start_factor
    assert lrs[4] == pytest.approx(1e-3)  # peak after warm-up
    assert all(a < b for a, b in itertools.pairwise(lrs[:5]))  # rising
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))  # annealing
    assert lrs[12] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)  # half-way through the cosine
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)  # ends at min_lr


# -- training ----------------------------------------------------------------------------


def test_fit_writes_every_output(tmp_path):
    out = tmp_path / "run"
    cfg = toy_config(out, epochs=2, save_plots=True, checkpoint_every_steps=0, log_every_steps=3)
    summary = Trainer(cfg, train_dataset=ToyVideos(24), val_dataset=ToyVideos(9, seed=1)).fit()
    assert summary["status"] == "completed" and summary["global_step"] == 12
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "last.pt",
        "best.pt",
        "history.json",
        "steps.jsonl",
        "metrics.json",
        "confusion_matrix.png",
        "training_curves.png",
        "train.log",
    } <= names
    assert (
        TrainConfig.from_file(out / "config.json") == cfg
    )  # the resolved config, next to the checkpoints
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    metrics = json.loads((out / "metrics.json").read_text())
    last = metrics["last"]
    assert last["num_videos"] == 9 and last["class_names"] == list(CLASSES)
    assert set(last["clip_locating"]) == {"gt_class", "pred_class", "num_videos", "chance"}
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["architecture"] == "ceflnet_tiny" and ckpt["label_names"] == list(CLASSES)
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]) == (2, 0, 12)
    for key in ("optimizer", "scheduler", "scaler", "rng", "config", "history"):
        assert key in ckpt
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [3, 6, 9, 12] and all(s["videos_per_s"] > 0 for s in steps)
    log = (out / "train.log").read_text()
    assert "training ceflnet_tiny" in log and "epoch 2/2" in log and "WAR" in log


def _final_weights(tmp_path, name, **overrides):
    cfg = toy_config(
        tmp_path / name, epochs=1, checkpoint_every_steps=0, warmup_epochs=0, **overrides
    )
    trainer = Trainer(cfg, train_dataset=ToyVideos(16))
    trainer.fit()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    # 2 micro-batches of 4 accumulate to the gradient of one batch of 8 (no batch-norm in
    # the tiny model): the same weights after the same number of optimizer steps.
    big = _final_weights(tmp_path, "big", batch_size=8)
    accum = _final_weights(tmp_path, "accum", batch_size=4, grad_accum_steps=2)
    for key in big:
        torch.testing.assert_close(accum[key], big[key], rtol=1e-4, atol=1e-5, msg=key)
    small = _final_weights(tmp_path, "small", batch_size=4)  # 4 optimizer steps instead of 2
    assert any(not torch.allclose(small[k], big[k], atol=1e-5) for k in big)


def test_persistent_workers_see_every_epoch(tmp_path):
    # ToyVideos draws new noise every epoch: with a persistent worker the samples must still
    # follow the epoch, giving exactly the weights of a run without workers.
    kwargs = dict(epochs=2, checkpoint_every_steps=0)
    a = Trainer(toy_config(tmp_path / "a", num_workers=0, **kwargs), train_dataset=ToyVideos(8))
    a.fit()
    assert a.train_dataset.epoch == 1  # the samples of epoch 2 were drawn for epoch 2
    b = Trainer(
        toy_config(tmp_path / "b", num_workers=1, persistent_workers=True, **kwargs),
        train_dataset=ToyVideos(8),
    )
    b.fit()
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_backbone_frozen_for_first_epochs(tmp_path):
    cfg = toy_config(tmp_path / "run", epochs=2, freeze_backbone_epochs=1, checkpoint_every_steps=0)
    trainer = Trainer(cfg, train_dataset=ToyVideos(8))
    backbone0 = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    head0 = trainer.model.head.temporal_conv.weight.clone()
    trainer.cfg = cfg.replace(epochs=1)  # stop after the frozen epoch
    trainer.fit()
    assert all(torch.equal(v, trainer.model.backbone.state_dict()[k]) for k, v in backbone0.items())
    assert not torch.equal(head0, trainer.model.head.temporal_conv.weight)
    trainer.cfg = cfg
    trainer.fit(resume="auto")  # epoch 2: the backbone trains
    assert trainer.epoch == 2
    assert any(
        not torch.equal(v, trainer.model.backbone.state_dict()[k]) for k, v in backbone0.items()
    )


@pytest.mark.parametrize(
    "options",
    [
        {"amp": "bf16", "channels_last": True},
        {"loss": "ce", "label_smoothing": 0.1, "optimizer": "adamw", "clip_grad_norm": 1.0},
        {"optimizer": "sgd", "scheduler": "constant"},
    ],
    ids=["bf16-channels-last", "ce-smoothing-adamw-clip", "sgd-constant"],
)
def test_options_train(tmp_path, options):
    cfg = toy_config(tmp_path / "run", epochs=1, checkpoint_every_steps=0, **options)
    trainer = Trainer(cfg, train_dataset=ToyVideos(16))
    summary = trainer.fit()
    loss = summary["history"][0]["train_loss"]
    assert summary["global_step"] == 4 and math.isfinite(loss) and loss < 10
    if options.get("channels_last"):
        conv = trainer.model.backbone.stem[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last)


def test_cuda_only_options_degrade_on_cpu(tmp_path, caplog):
    cfg = toy_config(tmp_path / "run", epochs=1, amp="fp16", pin_memory=True, device="cpu")
    with caplog.at_level(logging.WARNING, logger="cefl_zoo"):
        trainer = Trainer(cfg, train_dataset=ToyVideos(8))
    assert trainer.amp == "none" and "fp16 needs CUDA" in caplog.text
    assert trainer.train_loader.pin_memory is False
    assert trainer.fit()["status"] == "completed"


@pytest.mark.cuda
def test_cuda_bf16_compile(tmp_path):  # pragma: no cover - runs where a GPU is lent
    cfg = toy_config(
        tmp_path / "run", epochs=1, amp="bf16", compile=True, channels_last=True, device="cuda"
    )
    assert Trainer(cfg, train_dataset=ToyVideos(16)).fit()["status"] == "completed"


# -- classes and errors -------------------------------------------------------------------


def test_label_map_orders_outputs_and_remaps_labels(tmp_path):
    order = ["anger", "neutral", "happiness", "sadness"]
    cfg = toy_config(tmp_path / "run", epochs=1, classes=order)
    trainer = Trainer(cfg, train_dataset=ToyVideos(8), val_dataset=ToyVideos(6, seed=1))
    assert trainer.model.num_classes == 4 and trainer.model.label_names == tuple(order)
    assert trainer.train_lut.tolist() == [2, 3, 0]  # happiness, sadness, anger -> map indices
    summary = trainer.fit()
    assert summary["last"]["class_names"] == order
    assert summary["last"]["support"] == [2, 0, 2, 2]


def test_class_missing_from_label_map_is_named(tmp_path):
    cfg = toy_config(tmp_path / "run", classes=["happiness", "sadness"])
    with pytest.raises(DataError, match=r"'anger'.*not in the label map \(happiness, sadness\)"):
        Trainer(cfg, train_dataset=ToyVideos(8))
    # a validation set with a class the training set lacks fails before any training
    cfg = toy_config(tmp_path / "run2")
    val = ToyVideos(8, classes=("happiness", "sadness", "fear"))
    with pytest.raises(DataError, match=r"validation dataset.*'fear'"):
        Trainer(cfg, train_dataset=ToyVideos(8), val_dataset=val)


def test_empty_split_is_named(tmp_path):
    with pytest.raises(DataError, match="has no videos"):
        Trainer(toy_config(tmp_path / "run"), train_dataset=ToyVideos(0))
    with pytest.raises(ConfigError, match="no data given"):
        Trainer(toy_config(tmp_path / "run"))


def test_evaluate_maps_dataset_classes_onto_model_classes():
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=4)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        label_names=("fear", "anger", "sadness", "happiness")
    )
    result = evaluate(model, ToyVideos(6), batch_size=4)
    # ToyVideos labels 0, 1, 2 = happiness, sadness, anger -> model classes 3, 2, 1
    assert result.labels.tolist() == [3, 2, 1, 3, 2, 1]
    assert result.metrics["support"] == [0, 2, 2, 2]
    with pytest.raises(DataError, match="'contempt' that are not in the model's classes"):
        evaluate(model, ToyVideos(3, classes=("happiness", "contempt", "anger")))


def test_evaluate_refuses_a_model_with_other_outputs_before_it_runs(monkeypatch):
    # 2 unnamed outputs, 3 dataset classes: this used to run every batch and then die
    # in the metrics on "labels must lie in [0, 1]"
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=2)
    calls = []
    monkeypatch.setattr(model, "forward_explain", lambda x: calls.append(x))
    with pytest.raises(DataError, match=r"the model has 2 outputs but evaluation is over 3 "):
        evaluate(model, ToyVideos(6), batch_size=4)
    with pytest.raises(DataError, match="has 2 outputs but evaluation is over 1 classes"):
        evaluate(model, ToyVideos(6), class_names=["happiness"])
    assert calls == []


def test_evaluate_numbers_a_subset_of_any_dataset_by_its_own_positions():
    # ToyVideos puts its own item index in "index", as VideoDataset does
    from torch.utils.data import DataLoader, Subset

    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    for data in (
        Subset(ToyVideos(12), [9, 10, 11]),
        DataLoader(Subset(ToyVideos(12), [9, 9, 10]), batch_size=2),
    ):
        result = evaluate(model, data, batch_size=2)
        assert result.indices.tolist() == [0, 1, 2] and "skipped" not in result.metrics


def test_fine_tune_from_checkpoint_with_new_classes(tmp_path):
    first = tmp_path / "first"
    Trainer(toy_config(first, epochs=1), train_dataset=ToyVideos(8)).fit()
    new = ("neutral", "surprise")
    cfg = toy_config(tmp_path / "second", epochs=1, init_from=str(first / "last.pt"))
    trainer = Trainer(cfg, train_dataset=ToyVideos(8, classes=new))
    source = load_checkpoint(first / "last.pt")["model"]
    own = trainer.model.state_dict()
    assert torch.equal(own["backbone.stem.0.weight"], source["backbone.stem.0.weight"])  # copied
    assert own["head.fc.weight"].shape[0] == 2  # new head
    assert trainer.model.label_names == new
    with pytest.raises(
        Exception, match="ceflnet_tiny.*cnnlstm_resnet18|cnnlstm_resnet18.*ceflnet_tiny"
    ):
        Trainer(
            toy_config(
                tmp_path / "third",
                model="cnnlstm_resnet18",
                model_kwargs={"backbone": "test_convnext"},
                init_from=str(first / "last.pt"),
            ),
            train_dataset=ToyVideos(8),
        )


def test_pretrained_backbone_loads_timm_weights_from_the_hf_cache(tmp_path, monkeypatch, caplog):
    import huggingface_hub
    import timm
    from _hub_utils import build_hf_cache
    from safetensors.torch import save_file

    # timm's own weights for the backbone, served offline from a cache the test builds.
    torch.manual_seed(123)
    imagenet = timm.create_model("test_convnext").state_dict()
    (tmp_path / "w").mkdir()
    save_file(imagenet, tmp_path / "w" / "model.safetensors")
    cache = tmp_path / "hub"
    build_hf_cache(cache, "timm/test_convnext.r160_in1k", tmp_path / "w")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    trainer = Trainer(
        toy_config(tmp_path / "pre", pretrained_backbone=True), train_dataset=ToyVideos(8)
    )
    own = trainer.model.backbone.state_dict()
    assert torch.equal(own["stem.0.weight"], imagenet["stem.0.weight"])
    assert _parse(["--pretrained-backbone"]).pretrained_backbone is True
    assert _parse([]).pretrained_backbone is False
    scratch = Trainer(toy_config(tmp_path / "scratch"), train_dataset=ToyVideos(8))
    assert not torch.equal(
        scratch.model.backbone.state_dict()["stem.0.weight"], imagenet["stem.0.weight"]
    )

    # Offline without the weights: a clear error that names the way out.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="pretrained_backbone=False"):
        Trainer(toy_config(tmp_path / "off", pretrained_backbone=True), train_dataset=ToyVideos(8))


def test_a_new_run_does_not_silently_replace_an_earlier_one(tmp_path):
    out = tmp_path / "run"
    Trainer(toy_config(out, epochs=1), train_dataset=ToyVideos(8)).fit()
    before = (out / "last.pt").read_bytes()
    with pytest.raises(
        ConfigError, match=r"already holds a training run \(best.pt, last.pt.*--resume.*--overwrite"
    ):
        Trainer(toy_config(out, epochs=1, seed=1), train_dataset=ToyVideos(8)).fit()
    assert (out / "last.pt").read_bytes() == before  # untouched
    # --resume continues it; --overwrite replaces it
    Trainer(toy_config(out, epochs=2), train_dataset=ToyVideos(8)).fit(resume="auto")
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    Trainer(toy_config(out, epochs=1, seed=1, overwrite=True), train_dataset=ToyVideos(8)).fit()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Trainer(toy_config(tmp_path / "afile"), train_dataset=ToyVideos(8)).fit()
    with pytest.raises(ConfigError, match=r"lies under .*afile, which is a file, not a folder"):
        Trainer(toy_config(tmp_path / "afile" / "out"), train_dataset=ToyVideos(8)).fit()


def test_stale_temp_cleanup_spares_folders_and_live_writers(tmp_path):
    import os
    import subprocess
    import sys

    from cefl_zoo.train.checkpoint import remove_stale_temp_files

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = tmp_path / f".last.pt.tmp-{int(dead.stdout)}-0a1b2c3d"
    gone.write_bytes(b"half")
    live = tmp_path / f".best.pt.tmp-{os.getppid()}-0a1b2c3d"  # a process that exists
    live.write_bytes(b"being written")
    (tmp_path / ".cache.tmp-1").mkdir()  # someone's folder, e.g. a frame cache being built
    (tmp_path / ".notes.txt").write_text("not ours")
    assert remove_stale_temp_files(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, ".cache.tmp-1", ".notes.txt"]
    )


def test_bad_data_kwargs_are_config_errors(synth_dir):
    from cefl_zoo.train.loaders import build_split

    def build(data_kwargs):
        cfg = TrainConfig(
            data=f"synthetic:{synth_dir}", model="ceflnet_tiny", data_kwargs=data_kwargs
        )
        return build_split(cfg, "train", train=True)

    with pytest.raises(ConfigError, match="unexpected keyword argument 'bogus'.*--data-kwargs"):
        build({"bogus": 1})
    with pytest.raises(ConfigError, match="sampler_kwargs.*unexpected keyword argument 'x'"):
        build({"sampler_kwargs": {"x": 1}})
    assert len(build({"sampler_kwargs": {"min_frames": 1}})) > 0


def test_train_split_none_and_img_size_are_checked():
    assert _parse(["--train-split", "none"]).train_split is None
    with pytest.raises(ConfigError, match="img_size must be at least 8"):
        _parse(["--img-size", "0"])


def test_random_backbone_of_a_paper_model_is_warned_about(tmp_path, caplog):
    kwargs = {"backbone": "resnet10t"}  # a real ImageNet backbone, small enough for CPU
    with caplog.at_level(logging.WARNING, logger="cefl_zoo"):
        Trainer(
            toy_config(tmp_path / "a", model="ceflnet_resnet18", model_kwargs=kwargs),
            train_dataset=ToyVideos(8),
        )
    assert "randomly initialised resnet10t backbone" in caplog.text
    assert "--pretrained-backbone" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cefl_zoo"):
        Trainer(toy_config(tmp_path / "b"), train_dataset=ToyVideos(8))  # timm's test_convnext
    assert "randomly initialised" not in caplog.text


# -- the command line on real (tiny) synthetic mp4s ---------------------------------------


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    from cefl_zoo.data.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(
        out, num_videos=21, seed=0, size=32, min_frames=24, max_frames=32, progress=False
    )
    return out


TABLE_6 = [
    "frameavg_resnet18",
    "cnnlstm_resnet18",
    "ceflnet_resnet18_sal",
    "ceflnet_resnet18_sal_lrl",
    "ceflnet_resnet18",
]


@pytest.mark.parametrize("model", TABLE_6)
def test_table_6_models_train_with_the_same_command(tmp_path, synth_dir, model):
    out = tmp_path / model
    code = cli(
        [
            "train",
            "--model",
            model,
            "--model-kwargs",
            '{"backbone": "test_convnext"}',
            "--data",
            f"synthetic:{synth_dir}",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--num-clips",
            "7",
            "--frames-per-clip",
            "2",
            "--img-size",
            "32",
            "--num-workers",
            "0",
            "--limit-train-steps",
            "2",
            "--output-dir",
            str(out),
            "--no-progress",
            "--no-save-plots",
        ]
    )
    assert code == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["architecture"] == model and ckpt["model_config"]["backbone"] == "test_convnext"
    metrics = json.loads((out / "metrics.json").read_text())["last"]
    assert metrics["num_videos"] == 7  # 21 videos, one of the three of each class held out
    has_eian = model == "ceflnet_resnet18"
    assert ("clip_locating" in metrics) == has_eian


def _run_on_a_copy(tmp_path: Path, synth_dir: Path) -> tuple[TrainConfig, Path]:
    """A one-epoch ceflnet_tiny run (into ``tmp_path/run``) on a copy of the synthetic
    data, and the copy's first training video, for the test to spoil."""
    import csv
    import shutil

    data = tmp_path / "synth"
    shutil.copytree(synth_dir, data)
    rows = list(csv.DictReader((data / "labels.csv").open()))
    first = data / next(r["path"] for r in rows if r["split"] == "train")
    cfg = TrainConfig(
        model="ceflnet_tiny",
        data=f"synthetic:{data}",
        epochs=1,
        batch_size=7,
        num_clips=2,
        frames_per_clip=2,
        img_size=32,
        num_workers=0,
        val_split=None,
        output_dir=str(tmp_path / "run"),
        progress=False,
        save_plots=False,
    )
    return cfg, first


def test_skipped_training_videos_are_in_train_log(tmp_path, synth_dir):
    import warnings

    cfg, broken = _run_on_a_copy(tmp_path, synth_dir)
    broken.write_bytes(b"not a video")
    out = tmp_path / "run"
    with warnings.catch_warnings():  # let warnings reach showwarning (pytest records them)
        warnings.simplefilter("always")
        Trainer(cfg).fit()
    log_text = (out / "train.log").read_text()
    assert "WARNING RuntimeWarning: skipping unreadable item" in log_text, log_text
    assert str(broken) in log_text


def test_what_setting_up_says_is_in_train_log(tmp_path, synth_dir):
    """Videos the dataset lists but lacks are left out while the Trainer is built, before
    train.log exists: the warning is written there when fit() opens it, once."""
    import warnings

    cfg, gone = _run_on_a_copy(tmp_path, synth_dir)
    gone.unlink()
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        trainer = Trainer(cfg)
        assert not (out / "train.log").exists()
        trainer.fit()
        cfg.epochs = 2
        trainer.fit(resume="auto")  # a second session: the warning is not repeated
    log_text = (out / "train.log").read_text()
    lines = [line for line in log_text.splitlines() if gone.name in line]
    assert len(lines) == 1 and "WARNING RuntimeWarning" in lines[0], log_text
    # it comes before the run's first line, as it happened, which counts it
    assert log_text.index(gone.name) < log_text.index("training ceflnet_tiny")
    assert log_text.count("13 train videos (1 listed but missing), no val videos") == 2


def test_eval_command_on_a_checkpoint(tmp_path, synth_dir, capsys):
    out = tmp_path / "run"
    assert (
        cli(
            [
                "train",
                "--model",
                "ceflnet_tiny",
                "--data",
                f"synthetic:{synth_dir}",
                "--epochs",
                "1",
                "--batch-size",
                "5",
                "--num-clips",
                "7",
                "--frames-per-clip",
                "2",
                "--img-size",
                "32",
                "--num-workers",
                "0",
                "--output-dir",
                str(out),
                "--no-progress",
                "--val-split",
                "none",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["last"] is None  # no validation split
    capsys.readouterr()
    report = tmp_path / "eval.json"
    png = tmp_path / "cm.png"
    assert (
        cli(
            [
                "eval",
                "--checkpoint",
                str(out / "last.pt"),
                "--data",
                f"synthetic:{synth_dir}",
                "--split",
                "test",
                "--num-workers",
                "0",
                "--no-progress",
                "--output",
                str(report),
                "--confusion-png",
                str(png),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "WAR" in printed and "emotion-rich clip = apex clip" in printed
    data = json.loads(report.read_text())
    assert data["metrics"]["num_videos"] == 7 and len(data["predictions"]) == 7
    assert {"index", "label", "pred", "probs", "apex_clip", "emotion_rich_clip", "path"} <= set(
        data["predictions"][0]
    )
    assert data["predictions"][0]["path"].endswith(".mp4")
    assert png.read_bytes()[:4] == b"\x89PNG"
    # --model RUN_DIR loads the run's checkpoint (its config.json is the TrainConfig)
    assert (out / "config.json").is_file() and (out / "best.pt").is_file()
    again = tmp_path / "eval_dir.json"
    argv = ["eval", "--model", str(out), "--data", f"synthetic:{synth_dir}", "--split", "test"]
    assert cli([*argv, "--num-workers", "0", "--no-progress", "--output", str(again)]) == 0, (
        capsys.readouterr().err
    )
    assert json.loads(again.read_text())["metrics"] == data["metrics"]


def test_cli_errors_are_messages_not_tracebacks(tmp_path, synth_dir, capsys):
    assert (
        cli(
            [
                "train",
                "--model",
                "ceflnet_tiny",
                "--data",
                f"synthetic:{tmp_path / 'nothing'}",
                "--output-dir",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "labels.csv" in err and "cefl-zoo synth" in err
    assert (
        cli(
            [
                "train",
                "--model",
                "ceflnet_tiny",
                "--data",
                f"synthetic:{synth_dir}",
                "--train-split",
                "val",
                "--output-dir",
                str(tmp_path / "o"),
                "--no-progress",
                "--num-workers",
                "0",
            ]
        )
        == 2
    )
    assert "no rows with split 'val'" in capsys.readouterr().err
    assert (
        cli(
            [
                "eval",
                "--checkpoint",
                str(tmp_path / "missing.pt"),
                "--data",
                f"synthetic:{synth_dir}",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


# -- the GPU hot path, checked on the CPU -------------------------------------------------


@contextlib.contextmanager
def _host_reads():
    """Record where the training loop reads a tensor value on the host
    (``aten._local_scalar_dense``: ``.item()``, ``int()``, ``float()``, ``bool()`` of a
    tensor; on a GPU each one waits for the device).

    Reads by the data loader (sampler, dataset items: host tensors) and by the optimizer
    (its step counters live on the host unless the kernel is fused) are not counted.
    """
    import traceback

    from torch.utils._python_dispatch import TorchDispatchMode

    sites: list[str] = []

    def record() -> None:
        stack = traceback.extract_stack()
        if not any(f.name == "_train_epoch" for f in stack):
            return
        if any("torch/utils/data" in f.filename or "torch/optim" in f.filename for f in stack):
            return
        own = [f for f in stack if "cefl_zoo" in f.filename]
        sites.append(f"{Path(own[-1].filename).name}:{own[-1].lineno}")

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default:
                record()
            return func(*args, **(kwargs or {}))

    with Mode():
        yield sites


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_training_steps_wait_for_the_device_only_at_log_steps(tmp_path, loss):
    # A read of a device value per step (the loss checking its labels, the progress bar's
    # loss) makes the host wait for the GPU every step; only log steps may read.
    reads = {}
    for steps, log_every in ((3, 1000), (9, 1000), (8, 2)):
        cfg = toy_config(
            tmp_path / f"{steps}_{log_every}",
            epochs=1,
            batch_size=2,
            loss=loss,
            label_smoothing=0.1,
            log_every_steps=log_every,
            checkpoint_every_steps=0,
            limit_train_steps=steps,
        )
        trainer = Trainer(cfg, train_dataset=ToyVideos(40))
        with _host_reads() as sites:
            trainer.fit()
        reads[(steps, log_every)] = sites
    assert len(reads[(3, 1000)]) == len(reads[(9, 1000)]) == 1  # the epoch's last step logs
    assert len(reads[(8, 2)]) == 4, reads[(8, 2)]


@pytest.mark.cuda
def test_cuda_training_steps_do_not_synchronize(tmp_path):  # pragma: no cover - GPU only
    import warnings

    counts = {}
    for steps in (3, 9):
        cfg = toy_config(
            tmp_path / str(steps),
            epochs=1,
            batch_size=2,
            device="cuda",
            amp="bf16",
            log_every_steps=1000,
            checkpoint_every_steps=0,
            limit_train_steps=steps,
        )
        trainer = Trainer(cfg, train_dataset=ToyVideos(40))
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trainer.fit()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        counts[steps] = sum("synchroniz" in str(w.message) for w in caught)
    assert counts[3] == counts[9], counts  # none per step


def test_loss_targets_are_the_one_hot_rows_of_the_label_map(tmp_path):
    cfg = toy_config(tmp_path / "run", classes=["anger", "neutral", "happiness", "sadness"])
    trainer = Trainer(cfg, train_dataset=ToyVideos(8))
    lut = trainer.train_lut
    assert torch.equal(trainer.train_targets, torch.nn.functional.one_hot(lut, 4).float())
    logits = torch.randn(3, 4)
    labels = torch.tensor([0, 2, 1])
    for kind, smoothing in (("bce", 0.0), ("bce", 0.1), ("ce", 0.2)):
        loss_fn = cefl_zoo.CEFLNetLoss(kind, label_smoothing=smoothing)
        assert torch.equal(
            loss_fn(logits, trainer.train_targets[labels]), loss_fn(logits, lut[labels])
        )


def test_optimizer_is_fused_on_cuda_and_resumes_across_kernels(tmp_path, monkeypatch):
    from cefl_zoo.train.trainer import build_optimizer

    p = [torch.nn.Parameter(torch.zeros(3))]
    for name in ("adam", "adamw", "sgd"):
        assert build_optimizer(p, name, device="cuda").defaults["fused"] is True
        assert not build_optimizer(p, name, device="cpu").defaults.get("fused")
    with pytest.raises(ValueError, match="optimizer must be"):
        build_optimizer(p, "lamb")

    # A checkpoint of a fused run resumes in an unfused one and the other way round: the
    # resuming run keeps its own kernel (and its step counters where that kernel wants them).
    first = toy_config(tmp_path / "a", epochs=1)
    monkeypatch.setattr(Trainer, "_fused_optimizer_devices", ("cpu",))
    fused = Trainer(first, train_dataset=ToyVideos(8))
    assert fused.optimizer.param_groups[0]["fused"] is True
    fused.fit()
    monkeypatch.setattr(Trainer, "_fused_optimizer_devices", ("cuda",))
    plain = Trainer(first.replace(epochs=2), train_dataset=ToyVideos(8))
    assert plain.fit(resume="auto")["status"] == "completed"
    assert not plain.optimizer.param_groups[0]["fused"]
    monkeypatch.setattr(Trainer, "_fused_optimizer_devices", ("cpu",))
    again = Trainer(first.replace(epochs=3), train_dataset=ToyVideos(8))
    assert again.fit(resume="auto")["global_step"] == 6
    assert again.optimizer.param_groups[0]["fused"] is True


def test_evaluate_reads_the_outputs_once_not_per_batch(monkeypatch):
    # Copying logits to the host batch by batch (or video by video) waits for the device
    # each time; evaluate copies all outputs once after the loop.
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    calls = []
    original = torch.Tensor.cpu

    def counting_cpu(self, *args, **kwargs):
        calls.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    results = {}
    for n in (2, 10):
        calls.clear()
        results[n] = evaluate(model, ToyVideos(n), batch_size=2)
        assert len(calls) == 2, calls  # logits and clip scores, whatever the batch count
    monkeypatch.setattr(torch.Tensor, "cpu", original)
    ref = evaluate(model, ToyVideos(10), batch_size=5)
    assert torch.equal(ref.logits, results[10].logits)
    assert torch.equal(ref.clip_scores, results[10].clip_scores)
    assert ref.labels.tolist() == results[10].labels.tolist()


# -- review fixes: validation, --init-from, overwrite, resume warnings --------------------
def test_config_rejects_values_that_would_train_wrong():
    for bad, flag in (
        ({"clip_grad_norm": -1.0}, "clip_grad_norm"),  # would flip the gradients
        ({"warmup_start_factor": 5.0}, "warmup_start_factor"),  # would start at 5x the lr
        ({"warmup_start_factor": 0.0}, "warmup_start_factor"),
        ({"momentum": -1.0}, "momentum"),  # torch.optim.SGD raises at build time
        ({"lr": 1e-4, "min_lr": 1e-3}, "min_lr"),  # the "annealing" would climb
    ):
        with pytest.raises(ConfigError, match=rf"{flag} \(--{flag.replace('_', '-')}\) must"):
            TrainConfig(**bad)
    for good in (
        {"clip_grad_norm": 0.0},
        {"clip_grad_norm": 2.0},
        {"warmup_start_factor": 1.0},
        {"lr": 1e-3, "min_lr": 1e-3},
        {"lr": 1e-4, "min_lr": 1e-3, "scheduler": "constant"},  # min_lr unused there
    ):
        TrainConfig(**good)


def test_scheduler_refuses_a_min_lr_above_a_groups_lr():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": params[:1], "lr": 1e-2}, {"params": params[1:], "lr": 1e-4}])
    with pytest.raises(ValueError, match=r"min_lr=0.001 exceeds the lr=0.0001"):
        build_scheduler(opt, "cosine", total_steps=100, warmup_steps=10, min_lr=1e-3)
    build_scheduler(opt, "constant", total_steps=100, min_lr=1e-3)  # min_lr unused
    frozen = torch.optim.SGD([{"params": params[:1], "lr": 0.0}])
    build_scheduler(frozen, "cosine", total_steps=100, min_lr=1e-3)  # lr 0 stays 0
    sched = build_scheduler(opt, "cosine", total_steps=100, warmup_steps=0, min_lr=1e-4)
    for _ in range(100):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-4], rel=1e-6)


def test_fine_tuning_drops_the_scores_and_tag_of_the_starting_weights(tmp_path):
    # The synthetic weights' classes hold happiness, sadness and anger: the head is kept,
    # but the trained weights are new ones, so their WAR 0.99 must not travel on.
    cfg = toy_config(tmp_path / "run", model="ceflnet_tiny.synthetic", pretrained=True)
    trainer = Trainer(cfg, train_dataset=ToyVideos(8, num_clips=7))
    trainer.request_stop()
    trainer.fit()
    got = trainer.model.pretrained_cfg
    assert (got.name, got.metrics, got.notes) == (
        "ceflnet_tiny",
        {},
        "trained with cefl-zoo's Trainer, starting from ceflnet_tiny.synthetic",
    )
    assert got.train_command and got.sha256 is None and got.file is None
    card = (trainer.model.save_pretrained(tmp_path / "m") / "README.md").read_text()
    assert "0.99" not in card and "synthetic data" not in card
    trainer.close()
    scratch = Trainer(toy_config(tmp_path / "scratch"), train_dataset=ToyVideos(8))
    assert scratch.model.pretrained_cfg.notes == (
        "trained with cefl-zoo's Trainer, starting from random weights"
    )  # not the untrained architecture's "untrained architecture; ..." note
    scratch.close()
    given = Trainer(
        toy_config(tmp_path / "given"),
        model=cefl_zoo.create_model("ceflnet_tiny"),
        train_dataset=ToyVideos(8),
    )
    assert given.model.pretrained_cfg.notes.endswith(
        "starting from the ceflnet_tiny model it was given"
    )
    given.close()


def test_clip_grad_norm_zero_means_no_clipping(tmp_path):
    # 0 used to clip every gradient to zero (the run then learns nothing)
    off = _final_weights(tmp_path, "none", clip_grad_norm=None, limit_train_steps=2)
    zero = _final_weights(tmp_path, "zero", clip_grad_norm=0.0, limit_train_steps=2)
    assert all(torch.equal(off[k], zero[k]) for k in off)


@pytest.mark.parametrize("source", ["nothere.pt", "runs/nothere/model"])
def test_init_from_a_missing_path_says_it_does_not_exist(tmp_path, capsys, source):
    from cefl_zoo.train import CheckpointError

    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(toy_config(tmp_path / "run", init_from=source), train_dataset=ToyVideos(8))
    code = cli(
        ["train", "--model", "ceflnet_tiny", "--data", "synthetic:nowhere", "--init-from", source]
        + ["--output-dir", str(tmp_path / "o"), "--no-progress", "--num-workers", "0"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"'{source}' does not exist" in err and "unknown model" not in err


def test_overwrite_removes_the_earlier_run_when_the_new_one_starts(tmp_path):
    out = tmp_path / "run"
    Trainer(toy_config(out, epochs=1), train_dataset=ToyVideos(8), val_dataset=ToyVideos(3)).fit()
    assert {"metrics.json", "best.pt", "history.json"} <= {p.name for p in out.iterdir()}
    new = Trainer(toy_config(out, epochs=1, seed=1, overwrite=True), train_dataset=ToyVideos(8))
    new.request_stop()  # interrupted after its first step
    assert new.fit()["status"] == "interrupted"
    names = {p.name for p in out.iterdir()}
    # nothing of the earlier run may pass for the new one's result or be resumed
    assert not names & {"metrics.json", "best.pt", "history.json"}
    assert load_checkpoint(out / "last.pt")["global_step"] == 1
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_resume_warns_only_about_options_that_change_the_run(tmp_path, caplog):
    out = tmp_path / "run"
    Trainer(toy_config(out, epochs=1, overwrite=True), train_dataset=ToyVideos(8)).fit()
    with caplog.at_level(logging.WARNING, logger="cefl_zoo"):
        cfg = toy_config(out, epochs=2, log_every_steps=3, checkpoint_every_steps=0)
        Trainer(cfg, train_dataset=ToyVideos(8)).fit(resume="auto")
    changed = [r.getMessage() for r in caplog.records if "changed options" in r.getMessage()]
    assert changed == ["resuming with changed options (they apply from here on): epochs 1 -> 2"]


def test_a_resumed_run_applies_a_changed_lr_and_weight_decay(tmp_path):
    # The saved optimizer and scheduler state used to bring the old values back while
    # config.json recorded the new ones.
    out = tmp_path / "run"
    first = Trainer(
        toy_config(out, epochs=2, lr=1e-3, weight_decay=0.0), train_dataset=ToyVideos(8)
    )
    first.request_stop()
    first.fit()
    first.close()
    same = Trainer(toy_config(out, epochs=2, lr=1e-3, weight_decay=0.0), train_dataset=ToyVideos(8))
    same.load_state(out / "last.pt")
    changed = Trainer(
        toy_config(out, epochs=2, lr=1e-2, weight_decay=0.05), train_dataset=ToyVideos(8)
    )
    changed.load_state(out / "last.pt")
    a, b = same.optimizer.param_groups[0], changed.optimizer.param_groups[0]
    assert b["lr"] == pytest.approx(10 * a["lr"]) and a["lr"] > 0
    assert b["weight_decay"] == 0.05 and a["weight_decay"] == 0.0
    assert changed.scheduler.base_lrs == pytest.approx([10 * x for x in same.scheduler.base_lrs])
    changed.optimizer.step()
    changed.scheduler.step()
    same.optimizer.step()
    same.scheduler.step()
    assert b["lr"] == pytest.approx(10 * a["lr"])  # the schedule goes on from the new peak
    same.close()
    changed.close()


def test_resuming_with_another_number_of_processes_keeps_the_epoch_statistics(tmp_path):
    # A checkpoint of 2 processes, resumed in 1: the epoch's sums so far used to be dropped
    out = tmp_path / "run"
    first = Trainer(toy_config(out, epochs=2), train_dataset=ToyVideos(8))
    first.request_stop()
    first.fit()
    first.close()
    ckpt = load_checkpoint(out / "last.pt")
    ckpt.update(
        world_size=2, rng=[ckpt["rng"][0]] * 2, epoch_stats=[[3.0, 2.0, 1.0], [5.0, 2.0, 0.0]]
    )
    torch.save(ckpt, out / "two.pt")
    resumed = Trainer(toy_config(out, epochs=2), train_dataset=ToyVideos(8))
    resumed.load_state(out / "two.pt")
    assert resumed._epoch_stats.tolist() == [8.0, 4.0, 1.0]
    resumed.close()


def test_resuming_with_another_number_of_processes_keeps_the_log_window(tmp_path):
    # The loss since the last steps.jsonl line (sum, videos, steps) of each of 2 processes,
    # resumed in 1: rank 0 carries the sums, so the next line averages them all.
    out = tmp_path / "run"
    first = Trainer(toy_config(out, epochs=2, log_every_steps=3), train_dataset=ToyVideos(8))
    first.request_stop()
    first.fit()
    first.close()
    ckpt = load_checkpoint(out / "last.pt")
    window = [[1.5, 2.0, 1.0], [2.5, 2.0, 1.0]]
    ckpt.update(world_size=2, rng=[ckpt["rng"][0]] * 2, log_window=window)
    torch.save(ckpt, out / "two.pt")
    resumed = Trainer(toy_config(out, epochs=2, log_every_steps=3), train_dataset=ToyVideos(8))
    resumed.load_state(out / "two.pt")
    assert resumed._log_window.tolist() == [4.0, 4.0, 1.0]
    resumed.close()


# -- the per-step log of a resumed run -----------------------------------------------------

#: 24 videos in batches of 4: 6 steps an epoch, a steps.jsonl line every 3 steps.
RESUMED = dict(epochs=2, log_every_steps=3, checkpoint_every_steps=0, model_kwargs={"drop_rate": 0})


def _steps(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]


def _stop_after(out: Path, global_step: int) -> None:
    """Train in ``out`` and stop after optimizer step ``global_step``, as SIGTERM would."""
    trainer = Trainer(toy_config(out, **RESUMED), train_dataset=ToyVideos(24))
    trainer._should_stop = lambda: trainer.global_step == global_step  # type: ignore[method-assign]
    assert trainer.fit()["status"] == "interrupted"
    trainer.close()


def test_a_resumed_runs_steps_log_matches_an_uninterrupted_runs(tmp_path):
    # Stopped after step 4, resumed: the line of step 6 averages the loss of steps 4-6
    # (it used to average steps 5 and 6 only) and counts the epoch's videos (not 8).
    Trainer(toy_config(tmp_path / "a", **RESUMED), train_dataset=ToyVideos(24)).fit()
    out = tmp_path / "b"
    _stop_after(out, 4)
    Trainer(toy_config(out, **RESUMED), train_dataset=ToyVideos(24)).fit(resume="auto")
    a, b = _steps(tmp_path / "a"), _steps(out)
    assert [s["step"] for s in b] == [s["step"] for s in a] == [3, 6, 9, 12]
    assert [s["loss"] for s in b] == pytest.approx([s["loss"] for s in a], rel=1e-6)
    assert [s["videos"] for s in b] == [s["videos"] for s in a] == [12, 24, 12, 24]
    assert [set(s) for s in b] == [set(s) for s in a]  # (no "loss_steps": the usual windows)
    assert b[1]["elapsed_s"] > b[0]["elapsed_s"]  # the epoch's training time, across the stop
    # the rate is the epoch's videos over the epoch's time
    assert b[1]["videos_per_s"] * b[1]["elapsed_s"] == pytest.approx(24)


def test_a_resume_from_a_checkpoint_without_the_window_says_what_the_loss_averages(tmp_path):
    out = tmp_path / "run"
    _stop_after(out, 4)
    ckpt = load_checkpoint(out / "last.pt")
    ckpt.pop("log_window", None)  # as written before checkpoints kept them
    ckpt.pop("epoch_seconds", None)
    torch.save(ckpt, out / "last.pt")
    Trainer(toy_config(out, **RESUMED), train_dataset=ToyVideos(24)).fit(resume="auto")
    steps = _steps(out)
    assert [s["step"] for s in steps] == [3, 6, 9, 12]
    assert [s.get("loss_steps") for s in steps] == [None, 2, None, None]
    # the epoch's time before the stop is unknown: the clock (and the rate) count from
    # the resumed step 4, i.e. the last 8 of the epoch's 24 videos
    assert [s.get("clock_from_step") for s in steps] == [None, 4, None, None]
    assert steps[1]["videos"] == 24
    assert steps[1]["videos_per_s"] * steps[1]["elapsed_s"] == pytest.approx(8)
    assert steps[3]["videos_per_s"] * steps[3]["elapsed_s"] == pytest.approx(24)
    history = json.loads((out / "history.json").read_text())
    assert history[0]["time_s"] is None and history[1]["time_s"] > 0
    assert history[0]["videos_per_s"] > 0


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_stopped_torchrun_prints_the_resume_hint_once(tmp_path, monkeypatch, capsys, rank):
    import cefl_zoo.train
    import cefl_zoo.train.distributed

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(cefl_zoo.train.distributed, "setup_logging", lambda verbose=False: None)
    stopped = {"status": "interrupted", "epoch": 0, "global_step": 3}
    monkeypatch.setattr(cefl_zoo.train, "train", lambda cfg, resume=None: stopped)
    argv = ["train", "--data", f"synthetic:{tmp_path}", "--output-dir", str(tmp_path / "o")]
    assert cli(argv) == 143  # every rank stops, with the exit code of a stopped run
    hints = capsys.readouterr().err.count("resume with the same command plus --resume")
    assert hints == (1 if rank == "0" else 0)


def test_fit_again_after_a_stop_trains_to_the_end(tmp_path):
    """A stop asked for during one fit() does not stop the next fit() of the trainer."""
    out = tmp_path / "run"
    trainer = Trainer(toy_config(out, **RESUMED), train_dataset=ToyVideos(24))
    should_stop = trainer._should_stop

    def stop_at_step_1() -> bool:  # as a SIGTERM during step 1 does
        if trainer.global_step == 1:
            trainer.request_stop()
        return should_stop()

    trainer._should_stop = stop_at_step_1  # type: ignore[method-assign]
    assert trainer.fit()["status"] == "interrupted" and trainer.global_step == 1
    summary = trainer.fit(resume="auto")
    trainer.close()
    assert summary["status"] == "completed" and summary["global_step"] == 12


def test_a_stop_during_the_last_evaluation_does_not_stop_the_next_fit(tmp_path):
    out = tmp_path / "run"
    cfg = toy_config(out, **RESUMED)
    trainer = Trainer(cfg, val_dataset=ToyVideos(4), train_dataset=ToyVideos(24))
    evaluate = trainer.evaluate

    def evaluate_then_stop(*args, **kwargs):  # SIGTERM while the last epoch is evaluated
        result = evaluate(*args, **kwargs)
        if trainer.epoch + 1 == cfg.epochs:
            trainer.request_stop()
        return result

    trainer.evaluate = evaluate_then_stop  # type: ignore[method-assign]
    assert trainer.fit()["status"] == "completed"
    cfg.epochs = 3
    trainer.evaluate = evaluate  # type: ignore[method-assign]
    summary = trainer.fit(resume="auto")
    trainer.close()
    assert summary["status"] == "completed" and summary["global_step"] == 18


def test_train_log_has_the_info_lines_of_setting_up_and_resuming(tmp_path):
    """Used from Python (no CLI logging set up), the warm-up clamp said while building
    the Trainer and the resume lines said before the log opens still reach train.log."""
    import logging

    logger = logging.getLogger("cefl_zoo")  # conftest restores its level afterwards
    logger.setLevel(logging.WARNING)
    out = tmp_path / "run"
    _stop_after(out, 4)
    logger.setLevel(logging.WARNING)
    cfg = toy_config(out, **{**RESUMED, "warmup_epochs": 5.0, "lr": 0.02})
    Trainer(cfg, train_dataset=ToyVideos(24)).fit(resume="auto")
    assert logger.level == logging.WARNING  # the caller's level again afterwards
    text = (out / "train.log").read_text()
    assert "warm-up of 5 epochs is longer than half the run" in text
    assert "resuming with changed options" in text and "resumed from" in text


def test_resume_survives_a_half_written_steps_log_line(tmp_path):
    """A process killed while writing steps.jsonl leaves half a line: the resume drops it
    (it used to stop with a JSONDecodeError, leaving its log handler installed)."""
    import logging

    out = tmp_path / "run"
    _stop_after(out, 4)
    with open(out / "steps.jsonl", "a") as fh:
        fh.write('{"step": 5, "epo')
    handlers = list(logging.getLogger("cefl_zoo").handlers)
    Trainer(toy_config(out, **RESUMED), train_dataset=ToyVideos(24)).fit(resume="auto")
    assert [s["step"] for s in _steps(out)] == [3, 6, 9, 12]
    assert logging.getLogger("cefl_zoo").handlers == handlers


def test_warning_tees_undone_out_of_order_pass_warnings_on():
    """Two tees (two Trainers in two threads) undone in the order they were made: the
    first one's wrapper stays in the chain but only passes warnings on."""
    import warnings

    from cefl_zoo.train.trainer import _RecordBuffer, _tee_warnings_to

    original = warnings.showwarning
    shown: list[str] = []
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        a, b = _RecordBuffer(), _RecordBuffer()
        undo_a = _tee_warnings_to(a)
        undo_b = _tee_warnings_to(b)
        warnings.showwarning("while both", RuntimeWarning, __file__, 1)
        assert len(a.records) == len(b.records) == 1
        undo_a()
        undo_b()
        warnings.showwarning("after both", RuntimeWarning, __file__, 1)
        assert len(a.records) == len(b.records) == 1  # (nothing more)
        assert shown == ["while both", "after both"]  # shown as usual all along
        # many such pairs (a long-lived process): the chain does not grow
        for _ in range(3000):
            undo_a = _tee_warnings_to(_RecordBuffer())
            undo_b = _tee_warnings_to(_RecordBuffer())
            undo_a()
            undo_b()
        warnings.showwarning("still shown", RuntimeWarning, __file__, 1)
        assert shown[-1] == "still shown"
        assert getattr(warnings.showwarning, "_cefl_tee", None) is None
    finally:
        warnings.showwarning = original


def test_what_a_failed_fit_said_stays_out_of_the_next_runs_log(tmp_path):
    """fit(resume="auto") finds no last.pt, says "starting a new run", then refuses to
    replace the run's best.pt: that line belongs to the failed attempt, not to the run
    that fit(resume=best.pt) then starts."""
    import logging

    from cefl_zoo.train import ConfigError

    out = tmp_path / "run"
    Trainer(toy_config(out, epochs=1), train_dataset=ToyVideos(8)).fit()
    (out / "last.pt").unlink()
    trainer = Trainer(toy_config(out, epochs=2), train_dataset=ToyVideos(8))
    with pytest.raises(ConfigError, match="already holds a training run"):
        trainer.fit(resume="auto")
    trainer.fit(resume=out / "best.pt")
    text = (out / "train.log").read_text()
    assert "starting a new run" not in text and "resumed from" in text
    # the setting-up lines are still there, and records are kept with logThreads off
    threads = logging.logThreads
    logging.logThreads = False
    try:
        again = tmp_path / "again"
        cfg = toy_config(again, **{**RESUMED, "warmup_epochs": 5.0})
        Trainer(cfg, train_dataset=ToyVideos(24)).fit()
    finally:
        logging.logThreads = threads
    assert "warm-up of 5 epochs" in (again / "train.log").read_text()


def test_a_half_failed_resume_does_not_let_a_new_run_start_from_its_weights(tmp_path):
    """load_state fails after the weights are in (a broken optimizer state): fit() of a
    new run on that Trainer refuses, where it would have trained from the checkpoint's
    weights without a word; resuming from a checkpoint that loads works."""
    from cefl_zoo.train import CheckpointError

    out = tmp_path / "run"
    Trainer(toy_config(out, epochs=1), train_dataset=ToyVideos(8)).fit()
    ckpt = load_checkpoint(out / "last.pt")
    ckpt["optimizer"] = {"state": {}, "param_groups": []}
    torch.save(ckpt, tmp_path / "broken.pt")
    trainer = Trainer(toy_config(out, epochs=2, overwrite=True), train_dataset=ToyVideos(8))
    with pytest.raises(ValueError):
        trainer.fit(resume=tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="half-restored by a failed load of .*broken.pt"):
        trainer.fit()
    assert trainer.fit(resume=out / "last.pt")["status"] == "completed"
    trainer.close()
