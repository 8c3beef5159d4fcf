"""The generic adapters: a folder per class, and a CSV of path,label."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from _video_utils import (
    barcode_frames,
    read_barcode,
    tree_snapshot,
    write_frame_folder,
    write_video,
)

from cefl_zoo.data import CSVVideoDataset, VideoFolderDataset, build_dataset
from cefl_zoo.labels import DATASET_CLASSES


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/{train,test}/{Angry,Happy,Sad}/ with mp4 files and frame folders."""
    root = tmp_path_factory.mktemp("folder_ds")
    for split in ("train", "test"):
        for c, name in enumerate(["Happy", "Sad", "Angry"]):
            write_video(root / split / name / f"clip{c}.mp4", barcode_frames(20 + c, seed=c))
            write_frame_folder(root / split / name / f"frames{c}", barcode_frames(12, seed=c + 5))
            (root / split / name / "notes.txt").write_text("not a video")
    (root / "train" / "Happy" / "clip10.mp4").write_bytes(
        (root / "train" / "Happy" / "clip0.mp4").read_bytes()
    )
    return root


# -- folder per class ---------------------------------------------------------------------


def test_folder_classes_are_sorted_canonical_folder_names(tree):
    ds = VideoFolderDataset(tree, split="train")
    assert ds.classes == ("anger", "happiness", "sadness")  # Angry, Happy, Sad
    assert len(ds) == 7  # .txt files are not videos
    names = [(p.split("/")[-2], p.split("/")[-1]) for p in (i.path for i in ds.items)]
    assert names[:2] == [("Angry", "clip2.mp4"), ("Angry", "frames2")]
    assert [n for d, n in names if d == "Happy"] == ["clip0.mp4", "clip10.mp4", "frames0"]
    assert ds.targets == [0, 0, 1, 1, 1, 2, 2]
    sample = ds[0]
    assert sample["label"] == 0 and sample["video"].shape == (7, 5, 3, 48, 64)


def test_folder_with_a_given_class_order(tree):
    order = DATASET_CLASSES["dfew"]  # happiness, sadness, neutral, anger, ...
    ds = VideoFolderDataset(tree, split="test", classes=order)
    assert ds.classes == order
    by_folder = {i.meta["class_folder"]: i.label for i in ds.items}
    assert by_folder == {"Angry": 3, "Happy": 0, "Sad": 1}
    with pytest.raises(
        ValueError, match=r"class folder 'Angry'.*unknown label 'Angry'.*happiness, sadness"
    ):
        VideoFolderDataset(tree, split="test", classes=("happiness", "sadness"))


def test_folder_split_handling(tree, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"has no 'val' folder \(it holds: test, train\).*split=None"
    ):
        VideoFolderDataset(tree, split="val")
    flat = VideoFolderDataset(tree / "train", split=None)
    assert len(flat) == 7
    with pytest.raises(FileNotFoundError, match="dataset folder does not exist"):
        VideoFolderDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no class folders"):
        VideoFolderDataset(tmp_path)
    (tmp_path / "Happy").mkdir()
    with pytest.raises(ValueError, match="hold no videos"):
        VideoFolderDataset(tmp_path)
    with pytest.raises(ValueError, match="no folds"):
        VideoFolderDataset(tree, split="train", fold=1)


def test_folder_root_that_is_a_file_says_so(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\n")
    with pytest.raises(FileNotFoundError, match=r"labels.csv: is a file, not a folder.*csv:FILE"):
        VideoFolderDataset(tmp_path / "labels.csv", split=None)
    with pytest.raises(FileNotFoundError, match=r"is a file, not a folder"):
        build_dataset("folder", tmp_path / "labels.csv", split="train")


def test_folder_split_none_or_empty_reads_class_folders(tree):
    for split in (None, ""):
        ds = build_dataset("folder", tree / "test", split=split)
        assert ds.split is None and ds.classes == ("anger", "happiness", "sadness")
        assert len(ds) == 6


def test_empty_class_folder_is_left_out_with_a_warning(tree, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(tree / "train", root)
    (root / "Fear").mkdir()  # no videos at all
    (root / "Disgust").mkdir()
    (root / "Disgust" / "notes.txt").write_text("no video here")
    with pytest.warns(
        RuntimeWarning, match=r"ds: leaving out the class folder\(s\) 'Disgust', 'Fear'"
    ):
        ds = VideoFolderDataset(root)
    assert ds.classes == ("anger", "happiness", "sadness") and len(ds) == 7
    assert 0 not in ds.class_counts().values()
    # Explicit classes keep their label order, an empty class included, without a warning.
    order = ("anger", "disgust", "fear", "happiness", "sadness")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = VideoFolderDataset(root, classes=order)
    assert kept.classes == order and kept.class_counts()["fear"] == 0


def test_folder_reads_camcorder_transport_stream_files(tmp_path):
    # .MTS / .m2ts (AVCHD camcorders) and .ts are MPEG transport streams FFmpeg reads.
    for name, folder in (("a.MTS", "Happy"), ("b.m2ts", "Happy"), ("c.ts", "Sad")):
        write_video(tmp_path / "src" / f"{name}.ts", barcode_frames(12))
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / "src" / f"{name}.ts").rename(tmp_path / folder / name)
    (tmp_path / "src").rmdir()
    ds = VideoFolderDataset(tmp_path, split=None)
    found = sorted(
        (it.path.replace("\\", "/").rsplit("/", 1)[-1], ds.classes[it.label]) for it in ds.items
    )
    assert found == [
        ("a.MTS", "happiness"),
        ("b.m2ts", "happiness"),
        ("c.ts", "sadness"),
    ]
    assert read_barcode(ds.open(ds.items[0]).read([0, 11])) == [0, 11]


def test_folder_through_the_registry(tree):
    ds = build_dataset("folder", tree, split="train")
    assert isinstance(ds, VideoFolderDataset) and ds.train
    assert not build_dataset("folder", tree, split="test").train


def test_folder_dataset_writes_nothing(tree):
    before = tree_snapshot(tree)
    ds = VideoFolderDataset(tree, split="train", train=True)
    for i in range(len(ds)):
        ds[i]
    assert tree_snapshot(tree) == before


# -- CSV ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv_ds")
    for i in range(4):
        write_video(root / "videos" / f"{i}.mp4", barcode_frames(105, seed=i), gop=15)
    return root


def write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_with_label_names_split_and_meta(csv_root):
    csv_path = write_csv(
        csv_root / "labels.csv",
        (
            "path,label,split,apex_frame,subject\n"
            "videos/0.mp4,Happy,train,50,s01\n"
            "videos/1.mp4,sad,train,,s02\n"
            "\n"
            "videos/2.mp4,Surprised,test,100,s03\n"
            "videos/3.mp4,happiness,train,20,s04\n"
        ),
    )
    ds = CSVVideoDataset(csv_path, split="train")
    assert ds.classes == ("happiness", "sadness")  # sorted canonical names of this split
    assert [i.label for i in ds.items] == [0, 1, 0]
    assert ds.items[0].path == str(csv_root / "videos" / "0.mp4")
    meta = ds.items[0].meta
    assert meta["apex_frame"] == 50 and meta["subject"] == "s01" and meta["label_name"] == "Happy"
    assert ds.items[1].meta["apex_frame"] is None
    assert [ds[i]["apex_clip"] for i in range(3)] == [3, -1, 0]
    assert len(CSVVideoDataset(csv_path, split=None)) == 4
    with pytest.raises(ValueError, match=r"no rows with split 'val' \(splits found: test, train\)"):
        CSVVideoDataset(csv_path, split="val")


def test_csv_with_label_indices_needs_classes(csv_root):
    csv_path = write_csv(csv_root / "idx.csv", "path,label\nvideos/0.mp4,0\nvideos/1.mp4,3\n")
    ds = CSVVideoDataset(csv_path, classes=DATASET_CLASSES["dfew"])
    assert [i.label for i in ds.items] == [0, 3]
    with pytest.raises(ValueError, match=r"idx.csv: line 2: labels are class indices.*classes="):
        CSVVideoDataset(csv_path)
    with pytest.raises(ValueError, match=r"idx.csv: line 3: label index 3 is outside 0..1"):
        CSVVideoDataset(csv_path, classes=("happiness", "sadness"))


def test_csv_unknown_label_names_file_and_line(csv_root):
    csv_path = write_csv(
        csv_root / "typo.csv", "path,label\nvideos/0.mp4,Happy\nvideos/1.mp4,Hapy\n"
    )
    with pytest.raises(ValueError, match=r"typo.csv: line 3: unknown label 'Hapy'"):
        CSVVideoDataset(csv_path)
    with pytest.raises(
        ValueError, match=r"typo.csv: line 3: unknown label 'Hapy'; known classes: happiness"
    ):
        CSVVideoDataset(csv_path, classes=("happiness", "sadness"))


def test_csv_custom_class_names(csv_root):
    csv_path = write_csv(
        csv_root / "custom.csv", "path,label\nvideos/0.mp4,pain\nvideos/1.mp4,no_pain\n"
    )
    ds = CSVVideoDataset(csv_path, classes=("no_pain", "pain"))
    assert [i.label for i in ds.items] == [1, 0]
    with pytest.raises(ValueError, match="not an emotion name.*classes="):
        CSVVideoDataset(csv_path)


def test_csv_structure_errors(csv_root, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", "file,emotion\nvideos/0.mp4,happy\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 1: missing column\(s\) path, label"):
        CSVVideoDataset(bad)
    nosplit = write_csv(tmp_path / "nosplit.csv", "path,label\nx.mp4,happy\n")
    with pytest.raises(ValueError, match="has no 'split' column.*split=None"):
        CSVVideoDataset(nosplit, split="train")
    with pytest.raises(FileNotFoundError, match="missing.csv: CSV file does not exist"):
        CSVVideoDataset(tmp_path / "missing.csv")


def test_csv_paths_relative_to_root_and_missing_files(csv_root, tmp_path):
    csv_path = write_csv(
        tmp_path / "elsewhere.csv",
        "path,label\nvideos/2.mp4,fear\ngone.mp4,fear\nvideos/3.mp4,fear\nlost.mp4,fear\n",
    )
    # Missing files are found when the dataset is built, naming the CSV file and line.
    with pytest.raises(
        FileNotFoundError, match=r"elsewhere.csv: line 3: no video file or frame folder at .*gone"
    ):
        CSVVideoDataset(csv_path, root=csv_root, on_error="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CSVVideoDataset(csv_path, root=csv_root)
    (w,) = caught  # one warning for all the missing rows
    assert issubclass(w.category, RuntimeWarning) and w.filename == __file__
    assert re.search(
        r"elsewhere.csv: leaving out 2 of 4 .*line 3: .*gone.mp4; line 5", str(w.message)
    )
    assert [m["where"] for m in ds.missing] == ["line 3", "line 5"]
    assert [i.meta["csv_line"] for i in ds.items] == [2, 4]
    assert ds.items[0].path == str(csv_root / "videos" / "2.mp4")
    frames = (ds[0]["video"] * 255).round().to(torch.uint8).flatten(0, 1)
    assert read_barcode(frames) == ds[0]["frame_indices"].flatten().tolist()
    none = write_csv(tmp_path / "none.csv", "path,label\ngone.mp4,fear\n")
    with pytest.raises(FileNotFoundError, match=r"none.csv: none of the 1 videos.*line 2"):
        CSVVideoDataset(none, root=csv_root)


def test_csv_split_empty_means_every_row(csv_root):
    csv_path = write_csv(
        csv_root / "splits.csv",
        "path,label,split\nvideos/0.mp4,happy,train\nvideos/1.mp4,sad,test\n",
    )
    assert len(CSVVideoDataset(csv_path, split="")) == 2
    assert len(build_dataset("csv", csv_path, split=None)) == 2


def test_class_advice_has_a_working_cli_spelling(csv_root):
    import json

    from cefl_zoo.data.generic import CLASSES_CLI
    from cefl_zoo.train import TrainConfig
    from cefl_zoo.train.loaders import build_split

    csv_path = write_csv(
        csv_root / "own.csv", "path,label,split\nvideos/0.mp4,calm,train\nvideos/1.mp4,0,train\n"
    )
    with pytest.raises(ValueError, match="line 3: labels are class indices") as info:
        CSVVideoDataset(csv_path, split="train")
    assert CLASSES_CLI in str(info.value)
    named = write_csv(csv_root / "named.csv", "path,label\nvideos/0.mp4,calm\n")
    with pytest.raises(ValueError, match="line 2: unknown label 'calm'") as info:
        CSVVideoDataset(named)
    assert CLASSES_CLI in str(info.value)
    # --data-kwargs '{"classes": [...]}' reaches the dataset of cefl-zoo train / eval.
    data_kwargs = json.loads(CLASSES_CLI.split(" ", 1)[1].strip("'").replace(", ...", ""))
    assert data_kwargs == {"classes": ["name0", "name1"]}
    data_kwargs["classes"] = ["neutral", "calm"]
    cfg = TrainConfig(data=f"csv:{csv_path}", model="ceflnet_tiny", data_kwargs=data_kwargs)
    ds = build_split(cfg, "train", train=True)
    assert ds.classes == ("neutral", "calm") and ds.targets == [1, 0]


def test_csv_through_the_registry(csv_root):
    csv_path = write_csv(csv_root / "reg.csv", "path,label,split\nvideos/0.mp4,anger,test\n")
    ds = build_dataset("csv", csv_path, split="test")
    assert isinstance(ds, CSVVideoDataset) and ds.classes == ("anger",) and not ds.train
