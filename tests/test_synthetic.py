"""Synthetic data: determinism, apex ground truth, files, the in-memory twin, the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from cefl_zoo.cli import main
from cefl_zoo.data import SyntheticTensorDataset, SyntheticVideoDataset, build_dataset
from cefl_zoo.data.synthetic import (
    EXPRESSIONS,
    SYNTHETIC_CLASSES,
    make_video_spec,
    render_frames,
    render_synthetic_video,
    synthetic_labels,
    synthetic_splits,
    write_synthetic_dataset,
)
from cefl_zoo.labels import DATASET_CLASSES
from cefl_zoo.video import ClipSampler, apex_clip_index, open_video

SMALL = {"size": 32, "min_frames": 30, "max_frames": 45}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic_dataset(root, num_videos=14, seed=3, progress=False, **SMALL)
    return root


def read_rows(root):
    with open(root / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_classes_are_the_synthetic_label_set():
    assert SYNTHETIC_CLASSES == DATASET_CLASSES["synthetic"]
    assert set(EXPRESSIONS) == set(SYNTHETIC_CLASSES)


def test_same_seed_gives_identical_files(written, tmp_path):
    again = tmp_path / "again"
    write_synthetic_dataset(again, num_videos=14, seed=3, progress=False, num_workers=2, **SMALL)
    files = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len(files) == 15 and not any(p.name.startswith(".") for p in files)
    for rel in files:
        assert (written / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    write_synthetic_dataset(other, num_videos=14, seed=4, progress=False, **SMALL)
    assert (other / "videos/00000.mp4").read_bytes() != (written / "videos/00000.mp4").read_bytes()


def test_labels_csv_describes_every_video(written):
    rows = read_rows(written)
    assert list(rows[0]) == [
        "path",
        "label",
        "split",
        "apex_frame",
        "num_frames",
        "fps",
        "expressive_start",
        "expressive_end",
        "peak",
        "index",
        "seed",
    ]
    assert sorted(r["label"] for r in rows) == sorted(SYNTHETIC_CLASSES * 2)  # balanced
    assert [r["split"] for r in rows].count("test") == 7  # one per class (25 % of 2, rounded up)
    assert {r["label"] for r in rows if r["split"] == "test"} == set(SYNTHETIC_CLASSES)
    for r in rows:
        n, apex = int(r["num_frames"]), int(r["apex_frame"])
        assert 30 <= n <= 45
        assert 0.28 * (n - 1) - 1 <= apex <= 0.72 * (n - 1) + 1
        assert int(r["expressive_start"]) <= apex <= int(r["expressive_end"])
        with open_video(written / r["path"]) as video:
            assert (len(video), video.info.width, video.info.fps) == (n, 32, 25.0)


def test_expression_peaks_at_the_apex_and_is_neutral_far_from_it():
    for label in range(6):  # the six expressions (neutral is index 6)
        spec = make_video_spec(0, label, label, min_frames=120, max_frames=120)
        intensity = spec.intensity()
        assert int(np.argmax(intensity)) == spec.apex_frame
        assert intensity[spec.apex_frame] == pytest.approx(spec.peak)
        neutral = make_video_spec(0, label, 6, min_frames=120, max_frames=120)
        assert neutral.identity == spec.identity  # same face, same pose, only the label differs
        far = 0 if spec.apex_frame > 60 else 119
        assert intensity[far] < 0.05  # several rise / fall widths away
        frames = [far, spec.apex_frame]
        diff = render_frames(spec, frames, 64).float() - render_frames(neutral, frames, 64).float()
        changed = (diff.abs().amax(1) > 40).float().mean(dim=(1, 2))  # share of pixels
        assert diff[0].abs().mean() < 0.1 and changed[0] == 0  # far: the neutral face
        assert changed[1] > 0.02  # at the apex: mouth, brows, eyes have moved


def test_expressions_differ_from_each_other_at_apex():
    specs = [make_video_spec(1, 5, c, min_frames=100, max_frames=100) for c in range(7)]
    apex = [render_frames(s, [s.apex_frame], 64)[0].float() for s in specs]
    for a in range(7):
        for b in range(a + 1, 7):
            assert (apex[a] - apex[b]).abs().mean() > 2.0, (
                SYNTHETIC_CLASSES[a],
                SYNTHETIC_CLASSES[b],
            )


def test_apex_and_length_move_around():
    ds = SyntheticTensorDataset(num_videos=70, seed=0, split=None, size=32)
    clips = [
        apex_clip_index(ClipSampler().sample(s.num_frames).windows, s.apex_frame) for s in ds.specs
    ]
    assert len(set(clips)) >= 4  # the emotion-rich clip is not always the same one
    lengths = [s.num_frames for s in ds.specs]
    assert min(lengths) < 80 and max(lengths) > 120


def test_rendering_some_frames_equals_rendering_all():
    frames, spec = render_synthetic_video(seed=2, index=9, size=32, num_videos=20)
    assert frames.shape == (spec.num_frames, 3, 32, 32) and frames.dtype == torch.uint8
    assert torch.equal(render_frames(spec, [17, 3, 3], 32), frames[[17, 3, 3]])
    assert spec.label == synthetic_labels(20, 2)[9]
    _, spec2 = render_synthetic_video(seed=2, index=9, label="Happy", size=32)
    assert spec2.label_name == "happiness"
    with pytest.raises(IndexError):
        render_frames(spec, [spec.num_frames], 32)


def test_a_disgust_frame_renders_the_same_alone_as_with_the_whole_video():
    label = SYNTHETIC_CLASSES.index("disgust")
    frames, spec = render_synthetic_video(seed=0, index=3, label=label, size=32)
    alone = torch.stack([render_frames(spec, [t], 32)[0] for t in range(spec.num_frames)])
    assert torch.equal(alone, frames)  # also far from the apex, where wrinkles are faint
    with pytest.raises(ValueError, match="no class of the synthetic data.*disgust"):
        render_synthetic_video(seed=0, index=0, label="contempt")


def test_bad_encoder_options_fail_before_anything_is_written(tmp_path, capsys):
    base = ["synth", str(tmp_path / "d"), "--videos", "1", "--size", "16", "--quiet"]
    assert main([*base, "--min-frames", "8", "--max-frames", "8"]) == 0
    before = (tmp_path / "d" / "labels.csv").read_bytes()
    for extra, problem in (
        (["--fps", "3e9"], "--fps: fps 3e+09 is too high"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ):
        assert main([*base, "--overwrite", *extra]) == 2
        assert problem in capsys.readouterr().err
        assert (tmp_path / "d" / "labels.csv").read_bytes() == before  # the dataset is intact
    with pytest.raises(ValueError, match="crf must be an integer"):
        write_synthetic_dataset(tmp_path / "e", num_videos=1, crf=-5, progress=False, **SMALL)
    assert not (tmp_path / "e").exists()


def test_files_that_are_no_synthetic_dataset_are_not_overwritten(tmp_path, capsys):
    videos = tmp_path / "mine" / "videos"
    videos.mkdir(parents=True)
    for name in ("00000.mp4", "00003.mp4"):
        (videos / name).write_text("my own video")
    argv = ["synth", str(tmp_path / "mine"), "--videos", "1", "--size", "16", "--quiet"]
    assert main(argv) == 2
    assert "has no labels.csv" in capsys.readouterr().err
    assert sorted(p.read_text() for p in videos.iterdir()) == ["my own video"] * 2
    assert main([*argv, "--overwrite", "--min-frames", "8", "--max-frames", "8"]) == 0
    assert sorted(p.name for p in videos.iterdir()) == ["00000.mp4"]


def test_splits_are_class_balanced():
    labels = synthetic_labels(280, 0)
    splits = synthetic_splits(labels, 0.25)
    for c in range(7):
        members = [s for s, lab in zip(splits, labels) if lab == c]
        assert len(members) == 40 and members.count("test") == 10
    with pytest.raises(ValueError, match="test_fraction"):
        synthetic_splits(labels, 1.0)


def test_video_dataset_reads_the_files_with_apex_ground_truth(written):
    ds = SyntheticVideoDataset(written, split="test", on_error="raise")
    assert ds.classes == SYNTHETIC_CLASSES and len(ds) == 7
    rows = {r["path"]: r for r in read_rows(written)}
    for i in range(len(ds)):
        sample = ds[i]
        row = rows[sample["path"].split("data/")[-1]]
        windows = ds.sampler.sample(int(row["num_frames"])).windows
        assert sample["apex_clip"] == apex_clip_index(windows, int(row["apex_frame"]))
        assert SYNTHETIC_CLASSES[sample["label"]] == row["label"]
    assert isinstance(build_dataset("synthetic", written, split="train"), SyntheticVideoDataset)


def test_tensor_dataset_matches_the_files(written):
    files = SyntheticVideoDataset(written, split=None)
    memory = SyntheticTensorDataset(num_videos=14, seed=3, split=None, **SMALL)
    assert len(files) == len(memory) == 14
    for i in (0, 5, 13):
        a, b = files[i], memory[i]
        assert a["label"] == b["label"] and a["apex_clip"] == b["apex_clip"]
        assert torch.equal(a["frame_indices"], b["frame_indices"])
        psnr = 10 * torch.log10(1 / ((a["video"] - b["video"]) ** 2).mean())
        other = 10 * torch.log10(1 / ((a["video"] - memory[(i + 1) % 14]["video"]) ** 2).mean())
        assert psnr > 25 and other < 18  # the same pictures up to h264 (crf 18) and noise
    test_split = SyntheticTensorDataset(num_videos=14, seed=3, split="test", **SMALL)
    assert [it.meta["index"] for it in test_split.items] == [
        int(r["index"]) for r in read_rows(written) if r["split"] == "test"
    ]
    assert not test_split.train and SyntheticTensorDataset(14, 3, split="train", **SMALL).train


def test_missing_directory_and_overwrite(written, tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.csv: not found.*cefl-zoo synth"):
        SyntheticVideoDataset(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_synthetic_dataset(written, num_videos=2, progress=False, **SMALL)
    with pytest.raises(ValueError, match="split must be"):
        SyntheticTensorDataset(7, split="val")


def test_cli_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "synth",
                str(out),
                "--videos",
                "7",
                "--seed",
                "1",
                "--size",
                "32",
                "--min-frames",
                "30",
                "--max-frames",
                "35",
                "--quiet",
            ]
        )
        == 0
    )
    assert "wrote 7 videos" in capsys.readouterr().out
    assert len(read_rows(out)) == 7 and len(list((out / "videos").glob("*.mp4"))) == 7
    assert main(["synth", str(out), "--videos", "7", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_videos_folder_with_only_hidden_files_is_written_into(tmp_path):
    videos = tmp_path / "d" / "videos"
    videos.mkdir(parents=True)
    (videos / ".DS_Store").write_bytes(b"x")
    write_synthetic_dataset(tmp_path / "d", num_videos=1, progress=False, **SMALL)
    assert (videos / "00000.mp4").is_file() and (videos / ".DS_Store").is_file()
