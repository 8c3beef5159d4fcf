"""Regression tests for the export review: whose metrics an export records, where it
writes, what a failed export leaves, and what the card and ``push`` print.

Each test pins one finding: an ``epoch_XXX.pt`` or renamed checkpoint, or a resumed and
stopped run, getting another epoch's metrics; exporting into the run directory; a run
without validation; a failed ``--onnx`` / ``--torch-export`` replacing the folder; the
card's channels and centre crop; the card of ``save_pretrained(push_to_hub=True)``; the
registry snippet of an untagged folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from _hub_utils import (
    mock_hub,
    tiny_model,
    train_toy_run,
    two_saved_models,
    use_fake_exporters,
)

import cefl_zoo
import cefl_zoo.commands.export as export_module
from cefl_zoo.commands.export import ExportError, export, load_source, write_artifacts
from cefl_zoo.hub_mixin import check_folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def _recorded_metrics(out: Path) -> dict[str, float]:
    return json.loads((out / "config.json").read_text())["pretrained_cfg"]["metrics"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A 3-epoch run of the real trainer that keeps ``epoch_XXX.pt``."""
    run = tmp_path_factory.mktemp("export_review") / "run"
    return train_toy_run(
        run,
        seed=3,
        epochs=3,
        model_kwargs={"backbone": "test_convnext"},
        keep_epoch_checkpoints=True,
    )


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def _val_loss(run: Path, epoch: int) -> float:
    history = json.loads((run / "history.json").read_text())
    return next(r["val_loss"] for r in history if r["epoch"] == epoch)


# -- 1. an epoch_XXX.pt or renamed checkpoint gets its own epoch's metrics ----------------
def test_epoch_and_renamed_checkpoints_get_their_own_epochs_metrics(run_copy, tmp_path):
    best_epoch = json.loads((run_copy / "metrics.json").read_text())["best_epoch"]
    for epoch in (1, 2, 3):
        out = export(run_copy / f"epoch_{epoch:03d}.pt", tmp_path / f"ep{epoch}")
        assert _recorded_metrics(out)["loss"] == pytest.approx(_val_loss(run_copy, epoch))
    other = next(e for e in (1, 2, 3) if e != best_epoch)  # not metrics.json's "best"
    shutil.copy(run_copy / f"epoch_{other:03d}.pt", run_copy / "final_weights.pt")
    out = export(run_copy / "final_weights.pt", tmp_path / "renamed")
    assert _recorded_metrics(out)["loss"] == pytest.approx(_val_loss(run_copy, other))


# -- 2. a metrics.json left behind by a resumed, stopped run is not the checkpoint's ------
def test_stale_metrics_json_is_not_recorded_for_a_later_checkpoint(run_copy, tmp_path, caplog):
    metrics_json = run_copy / "metrics.json"
    stale = json.loads(metrics_json.read_text())
    stale.update(epochs=2, best_epoch=1, last={"war": 0.123, "loss": 9.9})  # an earlier run's
    metrics_json.write_text(json.dumps(stale))

    out = export(run_copy, tmp_path / "last", checkpoint="last")  # last.pt is epoch 3
    assert _recorded_metrics(out)["loss"] == pytest.approx(_val_loss(run_copy, 3))

    history = json.loads((run_copy / "history.json").read_text())
    (run_copy / "history.json").write_text(json.dumps([r for r in history if r["epoch"] != 3]))
    with caplog.at_level(logging.WARNING, logger="cefl_zoo.commands.export"):
        out = export(run_copy, tmp_path / "none", checkpoint="last")
    assert _recorded_metrics(out) == {}
    assert "recording no metrics" in caplog.text and "epoch 3" in caplog.text
    with pytest.raises(ExportError, match=r"epoch 3.*--eval-json FILE"):
        export(run_copy, tmp_path / "explicit", checkpoint="last", eval_json=metrics_json)


# -- 3. exporting into the run directory is refused ---------------------------------------
def test_export_into_the_run_directory_is_refused(run_copy, capsys):
    from cefl_zoo.cli import main

    before = _snapshot(run_copy)
    assert main(["export", str(run_copy), str(run_copy), "--checkpoint", "last"]) == 1
    assert "training run directory" in capsys.readouterr().err
    assert _snapshot(run_copy) == before


def test_a_folder_with_a_saved_model_and_checkpoints_is_ambiguous(run_copy):
    model, _, _ = load_source(run_copy, "last")
    model.save_pretrained(run_copy)  # what an export into the run directory used to leave
    with pytest.raises(ExportError, match=r"both a saved model.*checkpoints \(best\.pt"):
        load_source(run_copy, "best")


# -- 4. a run without a validation split exports with no metrics --------------------------
def test_run_without_validation_exports_without_metrics(run_copy, tmp_path):
    from cefl_zoo.commands.export import metrics_from_json

    metrics_json = run_copy / "metrics.json"
    data = json.loads(metrics_json.read_text())
    data.update(best=None, last=None, best_epoch=3)  # as --val-split none writes it
    metrics_json.write_text(json.dumps(data))
    assert metrics_from_json(metrics_json) == {}
    out = export(run_copy, tmp_path / "out")
    assert _recorded_metrics(out) == {}
    assert "No evaluation results were recorded" in (out / "README.md").read_text()


# -- 5. / 6. a failed export leaves the folder as it was ----------------------------------
_REAL_ONNX_CHECK = export_module._check_onnx_installed  # the one use_fake_exporters replaces


@pytest.fixture
def fake_exporters(monkeypatch):
    """Fast stand-ins for torch.export / ONNX: files derived from the weights."""
    return use_fake_exporters(monkeypatch)


def test_missing_onnx_dependency_writes_nothing(tmp_path, fake_exporters, monkeypatch):
    src1, src2 = two_saved_models(tmp_path)
    out = export(src1, tmp_path / "out", onnx=True, torch_export=True)
    before = _snapshot(out)
    monkeypatch.setattr(fake_exporters, "_check_onnx_installed", _REAL_ONNX_CHECK)
    real = importlib.util.find_spec
    monkeypatch.setattr(  # onnx there (installed or not), onnxscript missing
        importlib.util,
        "find_spec",
        lambda n, *a: None if n == "onnxscript" else real(n, *a) or object(),
    )
    with pytest.raises(ExportError, match="--onnx needs onnxscript"):
        export(src2, out, onnx=True)
    assert _snapshot(out) == before


def test_a_failed_torch_export_names_the_format_and_keeps_the_folder(
    tmp_path, fake_exporters, monkeypatch
):
    src1, src2 = two_saved_models(tmp_path)
    out = export(src1, tmp_path / "out", onnx=True, torch_export=True)
    before = _snapshot(out)

    def fail(model, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("unsupported op (simulated)")

    monkeypatch.setattr(fake_exporters, "export_torch_program", fail)
    with pytest.raises(ExportError, match=r"torch\.export .*--torch-export.*unsupported op"):
        export(src2, out, onnx=True, torch_export=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src1", "src2"]  # no staging
    with pytest.raises(ExportError):
        export(src2, tmp_path / "new", onnx=True, torch_export=True)
    assert not (tmp_path / "new").exists()

    folder = tiny_model(num_classes=3).save_pretrained(tmp_path / "direct")
    with pytest.raises(ExportError, match="torch.export"):
        write_artifacts(cefl_zoo.create_model(str(folder)), folder, onnx=True, torch_export=True)
    assert not (folder / "model.pt2").exists()  # the partial program is removed
    assert check_folder(folder)["artifacts"].keys() == {"model.onnx"}  # what was written


# -- 7. / 8. the card describes the weights' input -----------------------------------------
def test_card_usage_has_the_models_channels_and_the_crop_is_described(tmp_path):
    model = tiny_model(in_chans=1)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        input_size=(1, 32, 32), num_clips=2, frames_per_clip=2, crop_pct=0.875
    )
    folder = model.save_pretrained(tmp_path / "gray")
    card = (folder / "README.md").read_text()
    usage = next(line for line in card.splitlines() if line.startswith("video = torch.randn"))
    shape = [int(v) for v in re.search(r"randn\(([\d, ]+)\)", usage)[1].split(",")]
    assert shape == [1, 2, 2, 1, 32, 32]
    with torch.no_grad():
        assert cefl_zoo.create_model(str(folder))(torch.randn(*shape)).shape[0] == 1
    assert "cover 37 x 37 (crop_pct 0.875), then a centre crop to 32 x 32" in card
    plain = tiny_model().save_pretrained(tmp_path / "plain")  # crop_pct 1: still a crop
    h, w = cefl_zoo.create_model(str(plain)).pretrained_cfg.input_size[1:]
    assert f"cover {h} x {w}, then a centre crop to {h} x {w}" in (plain / "README.md").read_text()


# -- 9. save_pretrained(push_to_hub=True, model_card_kwargs=...) names the repository ------
def test_save_pretrained_push_with_card_kwargs_names_the_repo(tmp_path):
    sent, patches = mock_hub()
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        tiny_model().save_pretrained(
            tmp_path / "w",
            push_to_hub=True,
            repo_id="org/tiny",
            model_card_kwargs={"intended_use": "Benchmarking only."},
        )
    card = sent["files"]["README.md"].decode()
    assert 'create_model("hf-hub:org/tiny")' in card and "Benchmarking only." in card


# -- 10. push of an untagged folder asks for a tag -----------------------------------------
def test_push_of_an_untagged_folder_asks_for_a_tag(tmp_path, capsys):
    from cefl_zoo.cli import main
    from cefl_zoo.commands.push import registry_snippet

    folder = tiny_model().save_pretrained(tmp_path / "plain")
    config = json.loads((folder / "config.json").read_text())
    assert not config["pretrained_cfg"]["tag"]
    _, patches = mock_hub()
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        assert main(["push", str(folder), "org/tiny"]) == 0
    printed = capsys.readouterr().out
    assert "ceflnet_tiny.:" not in printed and "--tag NAME" in printed
    with pytest.raises(ValueError, match="without a tag"):
        registry_snippet(config, "org/tiny", "c" * 40)


# -- review of the fixes --------------------------------------------------------------------
def test_export_stages_inside_out_dir_and_removes_a_new_out_dir_on_failure(
    run_copy, tmp_path, monkeypatch
):
    import tempfile

    from cefl_zoo.commands import export as export_module

    seen = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: seen.append(kw["dir"]) or real(**kw))
    out = export(run_copy, tmp_path / "shared" / "alice", checkpoint="last")
    # inside OUT_DIR: same file system (a mount point or a link to one) and writable
    # wherever OUT_DIR is, whatever its parent allows
    assert [Path(d) for d in seen] == [out] and not any(
        p.name.startswith(".") for p in out.iterdir()
    )

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "_move_into", fail)
    with pytest.raises(OSError, match="disk full"):
        export(run_copy, tmp_path / "new", checkpoint="last")
    assert not (tmp_path / "new").exists()  # created by the failed export: gone again
    before = _snapshot(out)
    with pytest.raises(OSError, match="disk full"):
        export(run_copy, out, checkpoint="last")
    assert _snapshot(out) == before  # an existing folder: as it was


def test_a_failed_move_keeps_the_earlier_extras_until_the_new_config_is_in(tmp_path, monkeypatch):
    import os

    from cefl_zoo.commands import export as export_module

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.pt2").write_bytes(b"earlier program")
    staging = tmp_path / "staging"
    staging.mkdir()
    for name in ("config.json", "model.safetensors", "README.md"):
        (staging / name).write_text(name)
    moved = []
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "config.json":
            raise OSError("interrupted")
        moved.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="interrupted"):
        export_module._move_into(staging, folder)
    assert (folder / "model.pt2").read_bytes() == b"earlier program"
    monkeypatch.setattr(os, "replace", real_replace)
    export_module._move_into(staging, folder)
    assert not (folder / "model.pt2").exists()  # stale once the new config.json is in


def test_a_mid_epoch_checkpoint_records_no_metrics(run_copy, tmp_path, caplog):
    ckpt = torch.load(run_copy / "last.pt", map_location="cpu", weights_only=False)
    ckpt["step_in_epoch"] = 1  # a stop in the middle of the next epoch
    torch.save(ckpt, run_copy / "last.pt")
    with caplog.at_level(logging.WARNING, logger="cefl_zoo.commands.export"):
        out = export(run_copy, tmp_path / "mid", checkpoint="last")
    assert _recorded_metrics(out) == {}
    assert "in the middle of epoch" in caplog.text


def test_a_stopped_run_without_metrics_json_takes_the_epoch_from_history(run_copy, tmp_path):
    (run_copy / "metrics.json").unlink()
    out = export(run_copy / "epoch_002.pt", tmp_path / "e2")
    assert _recorded_metrics(out)["loss"] == pytest.approx(_val_loss(run_copy, 2))


def test_a_run_directory_spelt_with_dot_dot_is_refused(run_copy):
    with pytest.raises(ExportError, match="training run directory"):
        export(run_copy, run_copy / "sub" / "..", checkpoint="last")
    assert not (run_copy / "sub").exists()
