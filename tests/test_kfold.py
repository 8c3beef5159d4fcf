"""The fold runner: DFEW-style official folds, mean +- std, resumable, on a fixture tree."""

from __future__ import annotations

import json
import statistics

import pytest
from _train_utils import make_dfew_fixture

from cefl_zoo.cli import main as cli
from cefl_zoo.train import TrainConfig, fold_protocol, run_folds
from cefl_zoo.train.config import ConfigError
from cefl_zoo.train.kfold import format_fold_table


def test_protocols_follow_the_paper():
    assert fold_protocol("DFEW").folds == (1, 2, 3, 4, 5)
    assert fold_protocol("BU-3DFE").folds == tuple(range(1, 11))
    assert fold_protocol("mmi").folds == tuple(range(1, 11))
    afew = fold_protocol("afew")
    assert afew.folds == (None,) and (afew.train_split, afew.val_split) == ("train", "val")
    with pytest.raises(ConfigError, match="no published fold protocol"):
        fold_protocol("folder")


def _tiny_config(dfew, out) -> TrainConfig:
    """One quick epoch of ceflnet_tiny at 32 px on the DFEW fixture, folds under ``out``."""
    return TrainConfig(
        model="ceflnet_tiny",
        data=f"dfew:{dfew}",
        epochs=1,
        batch_size=4,
        num_clips=2,
        frames_per_clip=2,
        img_size=32,
        num_workers=0,
        progress=False,
        save_plots=False,
        output_dir=str(out),
    )


@pytest.fixture(scope="module")
def dfew(tmp_path_factory):
    return make_dfew_fixture(tmp_path_factory.mktemp("data") / "DFEW")


def test_two_dfew_folds_mean_and_std(tmp_path, dfew, capsys):
    out = tmp_path / "runs"
    cfg = _tiny_config(dfew, out)
    result = run_folds(cfg, folds=[1, 2])
    assert result["folds"] == [1, 2] and "DFEW: 5 official folds" in result["protocol"]
    assert result["protocol"].endswith("; ran folds 1, 2 (2 of 5)")
    assert format_fold_table(result).splitlines()[-1].endswith("(over 2 folds)")
    for which in ("last", "best"):
        records = result[which]["folds"]
        assert [r["fold"] for r in records] == [1, 2]
        for r in records:
            fold_metrics = json.loads((out / f"fold_{r['fold']}" / "metrics.json").read_text())[
                which
            ]
            assert (
                r["war"] == fold_metrics["war"] and r["num_videos"] == 2
            )  # 2 test videos per fold
            cfg_saved = json.loads((out / f"fold_{r['fold']}" / "config.json").read_text())
            assert (cfg_saved["fold"], cfg_saved["train_split"], cfg_saved["val_split"]) == (
                r["fold"],
                "train",
                "test",
            )
        wars = [r["war"] for r in records]
        summary = result[which]["summary"]["war"]
        assert summary["mean"] == pytest.approx(statistics.mean(wars))
        assert summary["std"] == pytest.approx(statistics.stdev(wars))
        assert summary["n"] == 2
    assert json.loads((out / "folds.json").read_text()) == result

    # the same command again reuses the finished folds instead of retraining them
    stamp = (out / "fold_1" / "last.pt").stat().st_mtime_ns
    capsys.readouterr()
    code = cli(
        [
            "kfold",
            "--model",
            "ceflnet_tiny",
            "--data",
            f"dfew:{dfew}",
            "--folds",
            "1,2",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--num-clips",
            "2",
            "--frames-per-clip",
            "2",
            "--img-size",
            "32",
            "--num-workers",
            "0",
            "--no-progress",
            "--no-save-plots",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    assert (out / "fold_1" / "last.pt").stat().st_mtime_ns == stamp
    printed = capsys.readouterr().out
    assert (
        "DFEW: 5 official folds" in printed
        and "(last epoch)" in printed
        and "(best epoch)" in printed
    )
    assert "mean WAR" in printed
    # the best epoch is picked on the test split it reports: said so, after the last epoch
    assert printed.index("(last epoch)") < printed.index("(best epoch)")
    best_table = printed[printed.index("(best epoch)") :]
    note = "note: each fold's best epoch is picked on the same test split it is scored on"
    assert best_table.splitlines()[1].startswith(note) and "optimistic" in best_table
    assert "note:" not in printed[: printed.index("(best epoch)")]
    assert "optimistic" in json.loads(printed.strip().splitlines()[-1])["best_note"]
    assert "optimistic" in result["best"]["note"] and "note" not in result["last"]
    mean = 100 * result["last"]["summary"]["war"]["mean"]
    assert f"{mean:.2f} +- " in printed


def test_kfold_command_errors(tmp_path, capsys):
    assert cli(["kfold", "--data", f"folder:{tmp_path}", "--output-dir", str(tmp_path / "o")]) == 2
    assert "no published fold protocol" in capsys.readouterr().err
    assert cli(["kfold", "--data", f"dfew:{tmp_path}", "--folds", "one"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


def _kfold(dfew, out, *extra: str) -> int:
    return cli(
        ["kfold", "--model", "ceflnet_tiny", "--data", f"dfew:{dfew}", "--folds", "1"]
        + ["--epochs", "1", "--batch-size", "4", "--num-clips", "2", "--frames-per-clip", "2"]
        + ["--img-size", "32", "--num-workers", "0", "--no-progress", "--no-save-plots"]
        + ["--output-dir", str(out), *extra]
    )


def test_finished_folds_are_reused_only_with_the_same_options(tmp_path, dfew, capsys):
    out = tmp_path / "runs"
    fold = out / "fold_1"
    assert _kfold(dfew, out) == 0
    stamp = (fold / "last.pt").stat().st_mtime_ns
    # options that do not change the results: reused
    assert _kfold(dfew, out, "--log-every-steps", "7", "--checkpoint-every-steps", "0") == 0
    assert (fold / "last.pt").stat().st_mtime_ns == stamp
    # another recipe in the same folder: refused, naming what differs; nothing is touched
    capsys.readouterr()
    assert _kfold(dfew, out, "--lr", "0.5") == 2
    err = capsys.readouterr().err
    assert "fold_1 (lr 0.0001 -> 0.5)" in err and "--overwrite" in err
    assert (fold / "last.pt").stat().st_mtime_ns == stamp
    # --overwrite retrains it with the new options
    assert _kfold(dfew, out, "--lr", "0.5", "--overwrite") == 0
    assert json.loads((fold / "metrics.json").read_text())["config"]["lr"] == 0.5
    assert json.loads((out / "folds.json").read_text())["folds"] == [1]
    stamp = (fold / "last.pt").stat().st_mtime_ns
    # --no-resume trains again without --overwrite (its help: it implies it)
    assert _kfold(dfew, out, "--lr", "0.5", "--no-resume") == 0
    assert (fold / "last.pt").stat().st_mtime_ns != stamp


def test_interrupted_overwrite_is_not_taken_for_the_earlier_result(tmp_path, dfew):
    out = tmp_path / "runs"
    base = _tiny_config(dfew, out)
    run_folds(base, folds=[1])
    # a replacement run of fold 1 with another lr is stopped after its first step
    from cefl_zoo.train import Trainer

    fold_cfg = base.replace(fold=1, output_dir=str(out / "fold_1"), lr=0.5, overwrite=True)
    trainer = Trainer(fold_cfg)
    trainer.request_stop()
    assert trainer.fit()["status"] == "interrupted"
    assert not (out / "fold_1" / "metrics.json").exists()
    # the next run with lr 0.5 resumes that run; it does not report the lr 1e-4 result
    result = run_folds(base.replace(lr=0.5), folds=[1])
    assert json.loads((out / "fold_1" / "metrics.json").read_text())["config"]["lr"] == 0.5
    assert result["last"]["folds"][0]["epoch"] == 1


def test_kfold_honours_the_splits_the_user_gives(tmp_path, dfew):
    out = tmp_path / "runs"
    assert _kfold(dfew, out, "--val-split", "train") == 0
    saved = json.loads((out / "fold_1" / "config.json").read_text())
    assert (saved["train_split"], saved["val_split"]) == ("train", "train")
    metrics = json.loads((out / "fold_1" / "metrics.json").read_text())["last"]
    assert metrics["num_videos"] == 8  # fold 1's training videos, not its 2 test videos


@pytest.mark.parametrize("rank", ["0", "1"])
def test_an_interrupted_kfold_under_torchrun_says_so_once(tmp_path, monkeypatch, capsys, rank):
    """Every rank stops with 143; only rank 0 prints how to resume."""
    import cefl_zoo.train.distributed
    import cefl_zoo.train.kfold
    from cefl_zoo.train.kfold import FoldInterrupted

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(cefl_zoo.train.distributed, "setup_logging", lambda verbose=False: None)

    def stopped(cfg, **kwargs):
        raise FoldInterrupted("fold 2 was interrupted; run the same command again to resume it")

    monkeypatch.setattr(cefl_zoo.train.kfold, "run_folds", stopped)
    argv = ["kfold", "--data", f"synthetic:{tmp_path}", "--output-dir", str(tmp_path / "o")]
    assert cli(argv) == 143
    said = capsys.readouterr().err.count("run the same command again to resume it")
    assert said == (1 if rank == "0" else 0)


def test_a_stop_after_a_folds_last_step_stops_before_the_next_fold(tmp_path, dfew, monkeypatch):
    """SIGTERM / Ctrl-C during fold 1's final evaluation: fold 1 finishes, fold 2 does not
    start (it used to: each fold has a fresh Trainer); the same command then goes on."""
    from cefl_zoo.train import Trainer
    from cefl_zoo.train.kfold import FoldInterrupted

    evaluate = Trainer.evaluate
    asked: list[str] = []

    def evaluate_then_stop(self, *args, **kwargs):
        result = evaluate(self, *args, **kwargs)
        if not asked:
            asked.append(str(self.output_dir))
            self.request_stop()
        return result

    monkeypatch.setattr(Trainer, "evaluate", evaluate_then_stop)
    out = tmp_path / "runs"
    cfg = _tiny_config(dfew, out)
    with pytest.raises(FoldInterrupted, match="stopped after fold_1, which finished"):
        run_folds(cfg, folds=[1, 2])
    assert asked == [str(out / "fold_1")]
    assert (out / "fold_1" / "metrics.json").is_file() and not (out / "fold_2").exists()
    result = run_folds(cfg, folds=[1, 2])  # goes on: fold 1 reused, fold 2 trained
    assert [r["fold"] for r in result["last"]["folds"]] == [1, 2]
