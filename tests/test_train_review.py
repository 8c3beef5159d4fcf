"""Review fixes of the training / evaluation area, each checked by behaviour.

evaluate() over a user's DataLoader (shuffled, distributed), ``cefl-zoo eval`` keeping a
checkpoint's data options and fold and checking its outputs first, non-finite options
and validation values, the logged learning rate, ``kfold --folds`` repeats, and the
fine-tuning example with a saved model folder.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from _train_utils import ToyVideos, toy_config
from torch.utils.data import DataLoader, Dataset, DistributedSampler

import cefl_zoo
from cefl_zoo.cli import main as cli
from cefl_zoo.train import ConfigError, DataError, TrainConfig, Trainer, evaluate, run_folds
from cefl_zoo.train.schedule import warmup_cosine_factor

ROOT = Path(__file__).resolve().parents[1]


class NoIndexVideos(Dataset):
    """Videos without an ``"index"`` key: rows must be matched through the sampler."""

    classes = ("happiness", "sadness")

    def __init__(self, n: int = 7) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {"video": torch.randn(2, 2, 3, 32, 32, generator=g), "label": int(i >= 3)}


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return cefl_zoo.create_model("ceflnet_tiny", num_classes=2).eval()


# -- 1. evaluate() over a DataLoader -------------------------------------------------------


def test_evaluate_a_sequential_or_distributed_loader_without_index(tiny_model):
    ds = NoIndexVideos()
    ref = evaluate(tiny_model, ds, batch_size=2)
    # a DistributedSampler (one process), shuffled: its order, not 0, 1, 2, ...
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=3)
    for loader in (DataLoader(ds, batch_size=2), DataLoader(ds, batch_size=3, sampler=sampler)):
        r = evaluate(tiny_model, loader)
        assert r.indices.tolist() == list(range(7))
        assert r.labels.tolist() == ref.labels.tolist()
        assert torch.allclose(r.logits, ref.logits, atol=1e-5)


def test_evaluate_refuses_a_loader_whose_order_it_cannot_know(tiny_model):
    ds = NoIndexVideos()
    shuffled = DataLoader(
        ds, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(1)
    )
    with pytest.raises(DataError, match="RandomSampler.*'index'"):
        evaluate(tiny_model, shuffled)
    # a DistributedSampler of 2 processes read by one: half the videos
    half = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 2, 0, shuffle=False))
    with pytest.raises(DataError, match="2 processes but dist_info has 1"):
        evaluate(tiny_model, half)


_TWO_RANKS = """
import sys, torch, cefl_zoo
sys.path.insert(0, {tests!r})
from torch.utils.data import DataLoader, DistributedSampler
from test_train_review import NoIndexVideos
from cefl_zoo.train import evaluate
from cefl_zoo.train.distributed import cleanup_distributed, init_distributed
torch.set_num_threads(1)
info = init_distributed("cpu")
torch.manual_seed(0)
model = cefl_zoo.create_model("ceflnet_tiny", num_classes=2).eval()
ds = NoIndexVideos(7)  # odd: the sampler pads rank 1's share with a repeat
ref = evaluate(model, ds, batch_size=2, dist_info=info)
for shuffle in (False, True):
    sampler = DistributedSampler(ds, info.world_size, info.rank, shuffle=shuffle)
    r = evaluate(model, DataLoader(ds, batch_size=2, sampler=sampler), dist_info=info)
    assert r.indices.tolist() == list(range(7)), r.indices
    assert r.labels.tolist() == ref.labels.tolist()
    assert torch.allclose(r.logits, ref.logits, atol=1e-5)
if info.is_main:
    print("OK", ref.metrics["num_videos"])
cleanup_distributed(info)
"""


def test_evaluate_a_distributed_loader_without_index_under_torchrun(tmp_path):
    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS.format(tests=str(ROOT / "tests")))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, str(script)],
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK 7" in proc.stdout


# -- 2, 3, 10, 11. cefl-zoo eval -------------------------------------------------------------


@pytest.fixture(scope="module")
def dfew_run(tmp_path_factory) -> Path:
    """A run trained on fold 3 of a DFEW-named dataset, with its own data options."""
    out = tmp_path_factory.mktemp("eval_review") / "run"
    cfg = toy_config(
        out,
        epochs=1,
        limit_train_steps=1,
        data="dfew:/nowhere",
        fold=3,
        val_split=None,
        data_kwargs={"sampler_kwargs": {"clip_stride": 5, "max_start": 60}, "fold_seed": 7},
    )
    trainer = Trainer(cfg, train_dataset=ToyVideos(4))
    trainer.fit()
    trainer.close()
    return out


@pytest.fixture
def eval_data(monkeypatch):
    """Replaces the dataset ``cefl-zoo eval`` builds; records the config it asks with."""
    from cefl_zoo.train import loaders

    asked: list[TrainConfig] = []

    def build_split(cfg, split, train, model):
        asked.append(cfg)
        return ToyVideos(3, num_clips=cfg.num_clips, frames=cfg.frames_per_clip)

    monkeypatch.setattr(loaders, "build_split", build_split)
    return asked


def _eval(run: Path, *extra: str) -> int:
    argv = ["eval", "--checkpoint", str(run / "last.pt"), "--data", "dfew:/nowhere"]
    return cli([*argv, "--num-workers", "0", "--no-progress", *extra])


def test_eval_merges_data_kwargs_into_the_checkpoints(dfew_run, eval_data):
    kwargs = '{"on_error": "raise", "sampler_kwargs": {"clip_stride": 2}}'
    assert _eval(dfew_run, "--data-kwargs", kwargs) == 0
    assert eval_data[-1].data_kwargs == {
        "sampler_kwargs": {"clip_stride": 2, "max_start": 60},
        "fold_seed": 7,
        "on_error": "raise",
    }


def test_eval_data_kwargs_null_drops_a_key_and_another_dataset_keeps_only_the_models(
    dfew_run, eval_data
):
    kwargs = '{"fold_seed": null, "sampler_kwargs": {"max_start": null}}'
    assert _eval(dfew_run, "--data-kwargs", kwargs) == 0
    assert eval_data[-1].data_kwargs == {"sampler_kwargs": {"clip_stride": 5}}
    argv = ["eval", "--checkpoint", str(dfew_run / "last.pt"), "--data", "synthetic:/nowhere"]
    assert cli([*argv, "--num-workers", "0", "--no-progress"]) == 0
    # the sampler describes the model's input; DFEW's split seed does not fit another dataset
    assert eval_data[-1].data_kwargs == {"sampler_kwargs": {"clip_stride": 5, "max_start": 60}}
    nested = '{"transform_kwargs": {"crop_pct": null}}'  # null drops a key the checkpoint lacks
    assert cli([*argv, "--num-workers", "0", "--no-progress", "--data-kwargs", nested]) == 0
    assert (
        "transform_kwargs" not in eval_data[-1].data_kwargs
        or not eval_data[-1].data_kwargs["transform_kwargs"]
    )


@pytest.mark.parametrize(
    ("text", "fold"),
    [
        ("3", 3),
        ("fold 2, evaluated on the 'test' split", 2),
        ("fold 1 of 5 (EmoLabel_DataSplit set_1)", 1),
        ("10-fold cross-validation, fold 4", None),  # a leading number that is no fold
        ("5 folds", None),
        ("1.5", None),
        ("built-in synthetic validation split", None),
    ],
)
def test_trained_fold_reads_only_fold_numbers(text, fold):
    from cefl_zoo.commands.eval import _trained_fold

    cfg = cefl_zoo.create_model("ceflnet_tiny").pretrained_cfg.replace(dataset="dfew", fold=text)
    assert _trained_fold({}, cfg) == ("dfew", fold)


def test_eval_reads_the_fold_of_an_exported_folder(dfew_run, eval_data, tmp_path, capsys):
    from cefl_zoo.commands.export import export

    scores = tmp_path / "eval.json"  # (the run had no validation split to score)
    scores.write_text(json.dumps({"metrics": {"war": 0.5, "uar": 0.5}}))
    folder = export(dfew_run, tmp_path / "exported", checkpoint="last", eval_json=scores)
    assert "fold 3" in json.loads((folder / "config.json").read_text())["pretrained_cfg"]["fold"]
    argv = ["eval", "--model", str(folder), "--data", "dfew:/nowhere", "--num-workers", "0"]
    assert cli([*argv, "--no-progress"]) == 0
    assert eval_data[-1].fold == 3
    assert cli([*argv, "--no-progress", "--fold", "1"]) == 0
    assert "trained on fold 3 of dfew" in capsys.readouterr().err


def test_eval_expands_the_home_folder_once(dfew_run, eval_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _eval(dfew_run, "--output", "~/results/eval.json") == 0
    assert json.loads((tmp_path / "results" / "eval.json").read_text())["metrics"]["war"] >= 0


def test_evaluate_an_iterable_dataset_in_one_process(tiny_model):
    from torch.utils.data import IterableDataset

    class Stream(IterableDataset):
        classes = NoIndexVideos.classes

        def __iter__(self):
            return (NoIndexVideos()[i] for i in range(5))

    r = evaluate(tiny_model, DataLoader(Stream(), batch_size=2))
    assert r.indices.tolist() == list(range(5))
    assert torch.allclose(r.logits, evaluate(tiny_model, NoIndexVideos(5)).logits, atol=1e-5)
    with pytest.raises(DataError, match="IterableDataset read by 2 loader workers"):
        evaluate(tiny_model, DataLoader(Stream(), batch_size=2, num_workers=2))


def test_eval_defaults_to_the_trained_fold_and_warns_about_another(dfew_run, eval_data, capsys):
    assert _eval(dfew_run) == 0
    assert eval_data[-1].fold == 3
    assert "warning" not in capsys.readouterr().err
    assert _eval(dfew_run, "--fold", "2") == 0
    assert eval_data[-1].fold == 2
    err = capsys.readouterr().err
    assert "trained on fold 3 of dfew" in err and "fold 2 overlap its training set" in err


@pytest.mark.parametrize("option", ["--output", "--confusion-png"])
def test_eval_checks_its_outputs_before_evaluating(dfew_run, eval_data, tmp_path, capsys, option):
    (tmp_path / "a_file").write_text("x")
    for target, problem in ((tmp_path, "is a folder"), (tmp_path / "a_file" / "m", "a file")):
        assert _eval(dfew_run, option, str(target)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and option in err and problem in err
    assert eval_data == []  # nothing was evaluated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_eval_result_save_leaves_no_temp_file(tiny_model, tmp_path):
    result = evaluate(tiny_model, NoIndexVideos(3))
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        result.save(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_eval_help_example_run_folder_works(dfew_run, eval_data, capsys):
    from cefl_zoo.commands import eval as eval_command

    assert "cefl-zoo eval --model runs/synth --data" in eval_command.__doc__
    argv = ["eval", "--model", str(dfew_run), "--data", "dfew:/nowhere", "--num-workers", "0"]
    assert cli([*argv, "--no-progress"]) == 0, capsys.readouterr().err
    assert eval_data[-1].fold == 3  # the run's checkpoint, with its fold


# -- 4, 5. non-finite options and validation values ---------------------------------------


@pytest.mark.parametrize(
    "name",
    ["lr", "weight_decay", "min_lr", "warmup_epochs", "momentum", "clip_grad_norm"],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_options_are_config_errors(name, value):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=f"{name} \\({flag}\\) must be a finite number") as err:
        TrainConfig().update({name: value})
    assert "not accepted" in str(err.value)
    assert ("no clipping" in str(err.value)) == (name == "clip_grad_norm")


def test_train_command_refuses_a_nan_option(tmp_path, capsys):
    argv = ["train", "--model", "ceflnet_tiny", "--data", f"synthetic:{tmp_path}"]
    assert cli([*argv, "--output-dir", str(tmp_path / "o"), "--min-lr", "nan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--min-lr" in err and "finite" in err


def test_best_checkpoint_after_a_nan_first_value(tmp_path):
    cfg = toy_config(tmp_path / "run", epochs=3, limit_train_steps=1, best_metric="loss")
    trainer = Trainer(cfg, train_dataset=ToyVideos(8), val_dataset=ToyVideos(4, seed=1))
    evaluate_once, calls = trainer.evaluate, []

    def nan_first(*args, **kwargs):
        result = evaluate_once(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            result.metrics["loss"] = float("nan")  # an overflowed validation loss
        return result

    trainer.evaluate = nan_first
    summary = trainer.fit()
    trainer.close()
    losses = [h["val_loss"] for h in summary["history"]]
    assert math.isnan(losses[0])
    assert summary["best_epoch"] == 1 + min((1, 2), key=lambda e: losses[e])


# -- 9. the logged learning rate ---------------------------------------------------------------


def test_logged_lr_is_the_rate_the_step_used(tmp_path):
    out = tmp_path / "run"
    cfg = toy_config(out, epochs=2, lr=1e-3, warmup_epochs=1.0, val_split=None)
    trainer = Trainer(cfg, train_dataset=ToyVideos(12))  # 3 steps an epoch, 6 in all
    trainer.fit()
    trainer.close()
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    used = [1e-3 * warmup_cosine_factor(s - 1, 6, 3) for s in range(1, 7)]
    assert [r["step"] for r in steps] == list(range(1, 7))
    assert [r["lr"] for r in steps] == pytest.approx(used)
    assert steps[0]["lr"] == pytest.approx(1e-3 * cfg.warmup_start_factor)
    history = json.loads((out / "history.json").read_text())
    assert [h["lr"] for h in history] == pytest.approx([used[2], used[5]])

    # resumed after the first epoch: the second epoch's lr is the same
    again = tmp_path / "again"
    first = Trainer(cfg.replace(output_dir=str(again), epochs=1), train_dataset=ToyVideos(12))
    first.fit()
    first.close()
    resumed = Trainer(cfg.replace(output_dir=str(again)), train_dataset=ToyVideos(12))
    resumed.fit(resume="auto")
    resumed.close()
    history = json.loads((again / "history.json").read_text())
    assert [h["lr"] for h in history][-1] == pytest.approx(used[5])


# -- 6, 8. kfold ---------------------------------------------------------------------------------


def test_kfold_refuses_a_repeated_fold(tmp_path, capsys):
    cfg = toy_config(tmp_path / "runs", data=f"dfew:{tmp_path}")
    with pytest.raises(ConfigError, match="fold 1 more than once"):
        run_folds(cfg, folds=[1, 2, 1])
    argv = ["kfold", "--data", f"synthetic:{tmp_path}", "--output-dir", str(tmp_path / "runs")]
    assert cli([*argv, "--folds", "none,none"]) == 2
    assert "--folds" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# -- 7. examples/finetune.py ---------------------------------------------------------------------


def test_finetune_example_keeps_a_saved_folders_backbone(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("finetune", ROOT / "examples" / "finetune.py")
    finetune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(finetune)
    folder = cefl_zoo.create_model("ceflnet_tiny").save_pretrained(tmp_path / "model")
    asked = []

    class Stop(Exception):
        pass

    def create_model(name, **kwargs):  # records what the example asks for, builds nothing
        asked.append((name, kwargs))
        raise Stop

    monkeypatch.setattr(finetune.cefl_zoo, "create_model", create_model)
    for model in (str(folder), "ceflnet_tiny"):
        args = Namespace(model=model, pretrained=False, pretrained_backbone=True, seed=0)
        with pytest.raises(Stop):
            finetune.build_trainer(args)
    # the folder's weights replace the backbone: no ImageNet download for it
    assert asked == [
        (str(folder), {"pretrained": False}),
        ("ceflnet_tiny", {"pretrained": False, "pretrained_backbone": True}),
    ]


# -- 12. the torchrun examples keep the paper's batch ------------------------------------------


def test_torchrun_examples_keep_the_papers_batch_of_8():
    from cefl_zoo.commands import train as train_command
    from cefl_zoo.train import distributed

    for doc in (train_command.__doc__, distributed.__doc__):
        text = textwrap.dedent(doc).replace("\\\\\n", " ").replace("\\\n", " ")
        line = next(x for x in text.splitlines() if "torchrun --nproc_per_node 8" in x)
        assert "--batch-size 1" in line
        assert "per process" in doc
