"""Benchmark dataset adapters, each on a tiny tree in its publisher's real layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from _video_utils import tree_snapshot, write_frame_folder, write_video

from cefl_zoo.data import build_dataset, list_datasets
from cefl_zoo.data.datasets import AFEW, BU3DFE, DFEW, MAFW, MMI, FERV39k
from cefl_zoo.labels import DATASET_CLASSES
from cefl_zoo.video import VideoReadError


def _frames(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)


def _write_frames(folder: Path, n: int = 6) -> Path:
    return write_frame_folder(folder, _frames(n))


# -- registry ----------------------------------------------------------------------------------


def test_every_benchmark_is_registered_with_its_published_class_order():
    names = {
        "dfew": DFEW,
        "ferv39k": FERV39k,
        "mafw": MAFW,
        "afew": AFEW,
        "mmi": MMI,
        "bu3dfe": BU3DFE,
    }
    assert set(names) <= set(list_datasets())
    for name, cls in names.items():
        assert cls.name == name and DATASET_CLASSES[name]


# -- DFEW --------------------------------------------------------------------------------------

DFEW_IDS = list(range(1, 11))


def _dfew_label(vid: int) -> int:
    return (vid - 1) % 7 + 1  # 1-based, every class present


def make_dfew(root: Path, zero_based: bool = False, sources=("clip_224x224",)) -> Path:
    """DFEW/EmoLabel_DataSplit/{train,test}(single-labeled)/set_N.csv + Clip/<source>/."""
    for fold in range(1, 6):
        test = [v for v in DFEW_IDS if (v - 1) % 5 == fold - 1]
        train = [v for v in DFEW_IDS if v not in test]
        for split, ids in (("train", train), ("test", test)):
            file = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
            file.parent.mkdir(parents=True, exist_ok=True)
            rows = [f"{v},{_dfew_label(v) - int(zero_based)}" for v in ids]
            file.write_text("video_name,label\n" + "\n".join(rows) + "\n")
    for source in sources:
        for v in DFEW_IDS:
            if source == "original":
                write_video(root / "Clip" / "original" / f"{v:05d}.mp4", _frames(8))
            else:
                _write_frames(root / "Clip" / source / f"{v:05d}", 16 if "16f" in source else 6)
    return root


@pytest.fixture
def dfew(tmp_path):
    return make_dfew(tmp_path / "DFEW")


def test_dfew_reads_official_folds_with_zero_based_labels_in_dfew_order(dfew):
    ds = build_dataset("dfew", dfew, split="test", fold=2)
    assert (
        ds.classes
        == DATASET_CLASSES["dfew"]
        == ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
    )
    assert [it.meta["video_id"] for it in ds.items] == ["00002", "00007"]
    assert [it.path for it in ds.items] == [
        str(dfew / "Clip" / "clip_224x224" / "00002"),
        str(dfew / "Clip" / "clip_224x224" / "00007"),
    ]
    assert ds.targets == [_dfew_label(2) - 1, _dfew_label(7) - 1] == [1, 6]  # Sad, Fear
    assert ds.items[1].meta["listed_at"] == "line 3"
    assert not ds.train and build_dataset("dfew", dfew, split="train", fold=2).train
    snap = tree_snapshot(dfew)
    sample = ds[0]
    assert sample["video"].shape == (7, 5, 3, 16, 16) and sample["label"] == 1
    assert tree_snapshot(dfew) == snap  # reading never writes into the dataset


def test_dfew_folds_partition_the_videos(dfew):
    tested = []
    for fold in range(1, 6):
        train = {it.meta["video_id"] for it in DFEW(dfew, "train", fold).items}
        test = {it.meta["video_id"] for it in DFEW(dfew, "test", fold).items}
        assert not train & test and len(train | test) == len(DFEW_IDS)
        tested += sorted(test)
    assert sorted(tested) == [f"{v:05d}" for v in DFEW_IDS]


def test_dfew_other_sources(tmp_path):
    root = make_dfew(tmp_path / "DFEW", sources=("clip_224x224_16f", "original"))
    ds16 = DFEW(root, "test", 1, source="clip_224x224_16f")
    assert ds16.items[0].path.endswith("clip_224x224_16f/00001")
    raw = DFEW(root, "test", 1, source="original")
    assert raw.items[0].path == str(root / "Clip" / "original" / "00001.mp4")
    assert raw[0]["video"].shape == (7, 5, 3, 16, 16)
    with pytest.raises(
        FileNotFoundError,
        match=r"clip_224x224 folder does not exist.*holds: "
        r"clip_224x224_16f, original",
    ):
        DFEW(root, "test", 1)
    with pytest.raises(ValueError, match="source must be one of"):
        DFEW(root, "test", 1, source="faces")


def test_dfew_finds_frames_nested_once_more(tmp_path):
    root = make_dfew(tmp_path / "DFEW", sources=())
    for v in DFEW_IDS:
        _write_frames(root / "Clip" / "clip_224x224" / "clip_224x224" / f"{v:05d}")
    ds = DFEW(root, "test", 1)
    assert ds.items[0].path == str(root / "Clip" / "clip_224x224" / "clip_224x224" / "00001")


def test_dfew_zero_based_copy_is_detected(tmp_path):
    root = make_dfew(tmp_path / "DFEW", zero_based=True)
    with pytest.raises(ValueError, match=r"set_1\.csv: line \d+: label 0.*0-based re-distribution"):
        DFEW(root, "train", 1)
    assert DFEW(root, "test", 1, label_base=0).targets == [0, 5]
    with pytest.warns(UserWarning, match="0-based labels detected"):
        auto = DFEW(root, "train", 1, label_base="auto")
    assert auto.targets == DFEW(make_dfew(tmp_path / "official"), "train", 1).targets


def _rewrite_split(root: Path, split: str, fold: int, text: str) -> Path:
    file = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
    file.write_text(text)
    return file


@pytest.mark.parametrize(
    "text, message",
    [
        ("video_name,label\n1,1\n2,9\n", r"line 3: label 9 is outside 1\.\.7"),
        ("video_name,label\n1,1\n2,Happy\n", r"line 3: label 'Happy' is not a number"),
        ("video_name,label\n1,1\nabc,2\n", r"line 3: video_name 'abc' is not a DFEW clip number"),
        ("video_name,label\n1\n", r"line 2: expected video_name,label"),
        ("clip,emotion\n1,1\n", r"line 1: header .* lacks video_name and label"),
        ("video_name,label\n", r"set_3\.csv: the DFEW test split of fold 3 lists no videos"),
    ],
)
def test_dfew_bad_split_files_name_file_and_line(dfew, text, message):
    file = _rewrite_split(dfew, "test", 3, text)
    with pytest.raises(ValueError, match=message) as info:
        DFEW(dfew, "test", 3)
    assert str(file) in str(info.value)


def test_dfew_missing_split_file_fold_or_root(dfew, tmp_path):
    (dfew / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_4.csv").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"test\(single-labeled\)/set_4\.csv: DFEW split file "
        "does not exist",
    ):
        DFEW(dfew, "test", 4)
    with pytest.raises(ValueError, match=r"DFEW has 5 folds: pass fold=1\.\.5"):
        build_dataset("dfew", dfew, split="test")
    with pytest.raises(ValueError, match=r"fold must be in 1\.\.5"):
        DFEW(dfew, "test", 6)
    with pytest.raises(ValueError, match="no split 'val'"):
        DFEW(dfew, "val", 1)
    (tmp_path / "DFEW.zip").write_bytes(b"PK")
    with pytest.raises(FileNotFoundError, match=r"DFEW.zip: is a file, not a folder.*DFEW"):
        build_dataset("dfew", tmp_path / "DFEW.zip", split="test", fold=1)
    with pytest.raises(FileNotFoundError, match="DFEW root folder does not exist"):
        DFEW(tmp_path / "nowhere", "test", 1)
    with pytest.raises(ValueError, match="fixed class order"):
        DFEW(dfew, "test", 1, classes=DATASET_CLASSES["afew"])


def test_dfew_listed_clip_without_frames_is_raised_or_reported(dfew):
    import shutil

    shutil.rmtree(dfew / "Clip" / "clip_224x224" / "00007")
    with pytest.raises(
        FileNotFoundError,
        match=r"set_2\.csv: line 3: 00007 has no frames or video "
        r"at .*00007 \(1 of 2",
    ):
        DFEW(dfew, "test", 2, on_error="raise")
    with pytest.warns(RuntimeWarning, match=r"leaving out 1 of 2 listed videos .*line 3"):
        ds = DFEW(dfew, "test", 2)
    assert [it.meta["video_id"] for it in ds.items] == ["00002"]
    assert ds.missing == [
        {
            "where": "line 3",
            "source": str(dfew / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv"),
            "path": str(dfew / "Clip" / "clip_224x224" / "00007"),
        }
    ]
    shutil.rmtree(dfew / "Clip" / "clip_224x224" / "00002")
    with pytest.raises(FileNotFoundError, match="none of the 2 videos it lists exist"):
        DFEW(dfew, "test", 2)


def test_benchmark_missing_file_warning_points_at_the_caller(dfew):
    import shutil

    shutil.rmtree(dfew / "Clip" / "clip_224x224" / "00007")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_dataset("dfew", dfew, split="test", fold=2)
    (w,) = caught
    assert "leaving out 1 of 2" in str(w.message) and w.filename == __file__


def test_corrupt_frame_follows_the_skip_or_raise_flag(dfew):
    bad = dfew / "Clip" / "clip_224x224" / "00002" / "1.jpg"
    bad.write_bytes(b"not a jpeg")
    strict = DFEW(dfew, "test", 2, on_error="raise")
    with pytest.raises(VideoReadError, match=str(bad.parent)):
        strict[0]
    lenient = DFEW(dfew, "test", 2)
    with pytest.warns(RuntimeWarning, match="skipping unreadable item 0"):
        sample = lenient[0]
    assert sample["index"] == 1 and lenient.failures[0]["path"] == str(bad.parent)


# -- FERV39k -------------------------------------------------------------------------------------

FERV_ROWS = [
    ("Action/Happy/0001", "Happy"),
    ("Action/Sad/0002", "Sad"),
    ("Daily/Fear/0003", "Fear"),
    ("Daily/Neutral/0004", "Neutral"),
]


def make_ferv39k(root: Path) -> Path:
    setups = root / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    (setups / "train_All.csv").write_text("".join(f"{p} {n}\n" for p, n in FERV_ROWS[:3]))
    (setups / "test_All.csv").write_text("".join(f"{p} {n}\n" for p, n in FERV_ROWS[3:]))
    for path, _ in FERV_ROWS:
        _write_frames(root / "2_ClipsforFaceCrop" / path)
    return root


def test_ferv39k_reads_named_labels_and_nested_frame_folders(tmp_path):
    root = make_ferv39k(tmp_path / "FERV39k")
    ds = build_dataset("ferv39k", root, split="train")
    order = DATASET_CLASSES["ferv39k"]
    assert ds.targets == [order.index("happiness"), order.index("sadness"), order.index("fear")]
    assert ds.items[2].path == str(root / "2_ClipsforFaceCrop" / "Daily" / "Fear" / "0003")
    assert FERV39k(root, "test").targets == [order.index("neutral")]
    assert ds[1]["video"].shape == (7, 5, 3, 16, 16)


def test_ferv39k_finds_frames_nested_once_more(tmp_path):
    root = make_ferv39k(tmp_path / "FERV39k")
    frames = root / "2_ClipsforFaceCrop"
    (frames / "2_ClipsforFaceCrop").mkdir()
    for scene in ("Action", "Daily"):
        (frames / scene).rename(frames / "2_ClipsforFaceCrop" / scene)
    ds = FERV39k(root, "train")
    assert ds.items[2].path == str(frames / "2_ClipsforFaceCrop" / "Daily" / "Fear" / "0003")
    assert ds[2]["video"].shape == (7, 5, 3, 16, 16)
    # Beside other entries the inner folder is just one more scene: paths stay as listed.
    (frames / "Action").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        FERV39k(root, "train")
    assert str(frames / "Action" / "Happy" / "0001") in str(err.value)


def test_ferv39k_bad_input(tmp_path):
    root = make_ferv39k(tmp_path / "FERV39k")
    file = root / "4_setups" / "All_scenes" / "train_All.csv"
    file.write_text("Action/Happy/0001 Happy\nAction/Sad/0002 Joyful\n")
    with pytest.raises(
        ValueError, match=r"train_All\.csv: line 2: unknown label 'Joyful' for FERV39k"
    ):
        FERV39k(root, "train")
    file.write_text("Action/Happy/0001\n")
    with pytest.raises(ValueError, match=r"line 1: expected '<Scene>/<Emotion>/<NNNN> <Emotion>'"):
        FERV39k(root, "train")
    file.unlink()
    with pytest.raises(
        FileNotFoundError, match=r"train_All\.csv: FERV39k split file does not exist"
    ):
        FERV39k(root, "train")
    with pytest.raises(ValueError, match="one fixed train/test split, no folds"):
        FERV39k(root, "test", fold=1)


# -- MAFW ----------------------------------------------------------------------------------------

MAFW_ROWS = [
    ("00001.mp4", "anger"),
    ("00002.mp4", "helplessness"),
    ("00003.mp4", "happiness"),
    ("00004.mp4", "disappointment"),
    ("00005.mp4", "contempt"),
]


def make_mafw(root: Path, clips: bool = False, splits: str = "split") -> Path:
    for fold in range(1, 6):
        folder = root / splits / "single" / "no_caption" / f"set_{fold}"
        folder.mkdir(parents=True)
        test = [MAFW_ROWS[fold - 1]]
        train = [r for r in MAFW_ROWS if r not in test]
        (folder / "test.txt").write_text("".join(f"{c} {n}\n" for c, n in test))
        (folder / "train.txt").write_text("".join(f"{c} {n}\n" for c, n in train))
    for clip, _ in MAFW_ROWS:
        vid = clip.split(".")[0]
        _write_frames(root / "data" / "frames" / vid)
        if clips:
            write_video(root / "data" / "clips" / clip, _frames(8))
    return root


def test_mafw_reads_eleven_classes_from_its_split_files(tmp_path):
    root = make_mafw(tmp_path / "MAFW")
    classes = DATASET_CLASSES["mafw"]
    assert len(classes) == 11
    ds = build_dataset("mafw", root, split="train", fold=2)
    assert [it.meta["video_id"] for it in ds.items] == ["00001", "00003", "00004", "00005"]
    assert (
        ds.targets
        == [classes.index(n) for n in ("anger", "happiness", "disappointment", "contempt")]
        == [0, 3, 10, 7]
    )
    test = MAFW(root, "test", 2)
    assert test.targets == [9] and test.items[0].path == str(root / "data" / "frames" / "00002")
    assert test[0]["video"].shape == (7, 5, 3, 16, 16)


@pytest.mark.parametrize("splits", ["Train & Test Set", "Train_Test_Set"])
def test_mafw_reads_the_split_folder_as_the_release_names_it(tmp_path, splits):
    root = make_mafw(tmp_path / "MAFW", splits=splits)
    ds = MAFW(root, "test", 4)
    assert ds.split_file == root / splits / "single" / "no_caption" / "set_4" / "test.txt"
    assert [it.meta["video_id"] for it in ds.items] == ["00004"] and ds.targets == [10]


def test_mafw_without_a_split_folder_names_every_accepted_one(tmp_path):
    root = tmp_path / "MAFW"
    (root / "data" / "frames").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError,
        match=r"split/single/no_caption/set_1/train\.txt: MAFW "
        r"split file does not exist.*'split' or 'Train & Test Set'",
    ):
        MAFW(root, "train", 1)


def test_mafw_clips_source_and_bad_lines(tmp_path):
    root = make_mafw(tmp_path / "MAFW", clips=True)
    assert MAFW(root, "test", 1, source="clips").items[0].path == str(
        root / "data" / "clips" / "00001.mp4"
    )
    file = root / "split" / "single" / "no_caption" / "set_1" / "train.txt"
    file.write_text("00002.mp4 helplessness\n00003.mp4 boredom\n")
    with pytest.raises(
        ValueError, match=r"set_1/train\.txt: line 2: unknown label 'boredom' for MAFW"
    ):
        MAFW(root, "train", 1)
    file.write_text("00002.mp4\n")
    with pytest.raises(ValueError, match=r"line 1: expected '<clip> <label>'"):
        MAFW(root, "train", 1)
    file.write_text("\n\n")
    with pytest.raises(ValueError, match="the MAFW train split of fold 1 lists no videos"):
        MAFW(root, "train", 1)
    with pytest.raises(
        ValueError, match="MAFW has no split 'validation'; choose one of train, test"
    ):
        MAFW(root, "validation", 5)
    with pytest.raises(
        ValueError,
        match=r"MAFW: no split given; pass split='train' or split='test' "
        r"\(cefl-zoo: --split train or --split test\)",
    ):
        MAFW(root, None, 5)


# -- AFEW ----------------------------------------------------------------------------------------

AFEW_FOLDERS = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


def make_afew(root: Path, train_name: str = "Train", real_videos: bool = False) -> Path:
    for split in (train_name, "Val"):
        for k, emotion in enumerate(AFEW_FOLDERS):
            folder = root / split / emotion
            folder.mkdir(parents=True)
            for j in range(2):
                name = f"{k:03d}{j}.avi"
                if real_videos:
                    write_video(folder / name, _frames(8), codec="mpeg4")
                else:
                    (folder / name).write_bytes(b"placeholder")
    (root / train_name / "AlignedFaces_LBPTOP_Points").mkdir()
    return root


def test_afew_reads_emotion_folders_in_sorted_order(tmp_path):
    root = make_afew(tmp_path / "AFEW")
    ds = build_dataset("afew", root, split="train")
    assert ds.classes == ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    assert ds.targets == [k for k in range(7) for _ in range(2)]
    assert ds.items[-1].path == str(root / "Train" / "Surprise" / "0061.avi")
    val = AFEW(root, "validation")
    assert val.split == "val" and len(val) == 14


def test_afew_archive_folder_names_and_test_split(tmp_path):
    root = make_afew(tmp_path / "AFEW", train_name="Train_AFEW")
    assert len(AFEW(root, "train")) == 14
    with pytest.raises(ValueError, match="test labels are not public.*split='val'"):
        build_dataset("afew", root, split="test")
    import shutil

    shutil.rmtree(root / "Val" / "Disgust")
    with pytest.warns(RuntimeWarning, match="no folder for disgust"):
        assert len(AFEW(root, "val")) == 12
    shutil.rmtree(root / "Val")
    with pytest.raises(FileNotFoundError, match=r"AFEW val folder does not exist.*Train_AFEW"):
        AFEW(root, "val")


@pytest.mark.filterwarnings("ignore:.*no folder for")
def test_afew_corrupt_video_is_skipped_or_raised_with_its_path(tmp_path):
    root = tmp_path / "AFEW"
    write_video(root / "Val" / "Happy" / "good.avi", _frames(8), codec="mpeg4")
    (root / "Val" / "Angry").mkdir(parents=True)
    bad = root / "Val" / "Angry" / "broken.avi"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(VideoReadError, match=str(bad)):
        AFEW(root, "val", on_error="raise")[0]
    ds = AFEW(root, "val")
    with pytest.warns(RuntimeWarning, match=r"broken\.avi"):
        sample = ds[0]
    assert sample["path"].endswith("good.avi") and sample["label"] == 3


# -- MMI -----------------------------------------------------------------------------------------


def _mmi_session(
    sessions: Path,
    number: int,
    stem: str,
    code: str | None,
    subject_xml: str | None = None,
    view: str = "0",
    real: bool = False,
) -> Path:
    folder = sessions / str(number)
    folder.mkdir(parents=True)
    video = folder / f"{stem}.avi"
    if real:
        write_video(video, _frames(8), codec="mpeg4")
    else:
        video.write_bytes(b"placeholder")
    tags = '<Metatag Name="Gender" Value="Male"/>'
    if code is not None:
        tags += f'<Metatag Name="Emotion" Value="{code}"/>'
    (folder / f"{stem}.xml").write_text(f'<?xml version="1.0"?>\n<Session>{tags}</Session>\n')
    subject = f'<subject id="{subject_xml}"/>' if subject_xml is not None else ""
    (folder / "session.xml").write_text(
        f'<?xml version="1.0"?>\n<session sessionId="{number}">{subject}'
        f'<track id="0" type="Video" view="{view}" filename="{stem}.avi"/></session>\n'
    )
    (folder / f"{stem}-oao_aucs.xml").write_text("<ActionUnits/>")
    return folder


def make_mmi(root: Path, subjects: int = 12) -> Path:
    sessions = root / "Sessions"
    n = 0
    for s in range(1, subjects + 1):
        for j in range(2):
            n += 1
            # odd subjects are named in session.xml; even ones only by the S### prefix
            _mmi_session(
                sessions,
                n,
                f"S{s:03d}-{j + 1:03d}",
                str((n - 1) % 6 + 1),
                subject_xml=f"S{s:03d}" if s % 2 else None,
            )
    _mmi_session(sessions, n + 1, "S001-099", None)  # AU-only session: not in the protocol
    _mmi_session(sessions, n + 2, "S002-098", "7")  # not a basic expression
    return root


def test_mmi_reads_sessions_labels_and_subjects(tmp_path):
    root = make_mmi(tmp_path / "mmi")
    ds = build_dataset("mmi", root, split="all")
    assert len(ds) == 24 and ds.classes == DATASET_CLASSES["mmi"]
    assert ds.targets == [(n - 1) % 6 for n in range(1, 25)]
    assert {it.meta["subject"] for it in ds.items} == set(range(1, 13))
    assert [e["reason"] for e in ds.excluded] == [
        "no Emotion metatag",
        "Emotion code 7 is not a basic expression",
    ]


def test_mmi_subject_id_and_name_prefix_are_one_subject(tmp_path):
    # session.xml says "1" where it is there; one session of each subject lacks it, so
    # only its S<nnn> name prefix tells the subject.
    sessions = tmp_path / "mmi" / "Sessions"
    n = 0
    for s in range(1, 5):
        for k in range(1, 4):
            n += 1
            xml_id = str(s) if k != 3 else None
            _mmi_session(sessions, n, f"S{s:03d}-{k:03d}", str(k), subject_xml=xml_id)
    ds = MMI(tmp_path / "mmi", "all")
    assert sorted({it.meta["subject"] for it in ds.items}) == [1, 2, 3, 4]
    for fold in (1, 2):
        train = MMI(tmp_path / "mmi", "train", fold, n_folds=2)
        test = MMI(tmp_path / "mmi", "test", fold, n_folds=2)
        people = [{Path(it.path).name[:4] for it in part.items} for part in (train, test)]
        assert people[0] and people[1] and not people[0] & people[1]


def test_mmi_subject_id_that_disagrees_with_the_name_is_warned_about(tmp_path):
    sessions = tmp_path / "mmi" / "Sessions"
    _mmi_session(sessions, 1, "S001-001", "1", subject_xml="S001")
    _mmi_session(sessions, 2, "S002-001", "2", subject_xml="7")
    with pytest.warns(UserWarning, match=r"2/session.xml: subject id '7' is not the subject "):
        ds = MMI(tmp_path / "mmi", "all")
    assert [it.meta["subject"] for it in ds.items] == [1, 7]


def test_mmi_folds_are_subject_independent(tmp_path):
    root = make_mmi(tmp_path / "mmi")
    tested = []
    for fold in range(1, 11):
        train = MMI(root, "train", fold)
        test = build_dataset("mmi", root, split="test", fold=fold)
        train_subjects = {it.meta["subject"] for it in train.items}
        test_subjects = {it.meta["subject"] for it in test.items}
        assert test_subjects and not train_subjects & test_subjects
        assert len(train) + len(test) == 24
        tested += [it.path for it in test.items]
    assert len(tested) == len(set(tested)) == 24
    assert MMI(root, "test", 3, fold_seed=0).items == MMI(root, "test", 3, fold_seed=0).items


def test_mmi_loads_a_video(tmp_path):
    root = tmp_path / "mmi"
    _mmi_session(root / "Sessions", 1, "S001-001", "4", real=True)
    ds = MMI(root, "all")
    sample = ds[0]
    assert sample["label"] == 3 and sample["video"].shape == (7, 5, 3, 16, 16)


def test_mmi_bad_input(tmp_path):
    root = make_mmi(tmp_path / "mmi", subjects=6)
    with pytest.raises(ValueError, match="6 subjects cannot make 10 subject-independent folds"):
        MMI(root, "test", 1)
    assert len(MMI(root, "test", 1, n_folds=3)) > 0
    _mmi_session(root / "Sessions", 50, "S003-050", "2", view="2")  # a profile-view session
    assert len(MMI(root, "all")) == 13
    frontal = MMI(root, "all", views=("0",))
    assert len(frontal) == 12 and frontal.excluded[-1]["reason"] == "view 2"
    bad = root / "Sessions" / "3" / "S002-001.xml"
    bad.write_text("<Session><Metatag Name='Emotion' Value='x'/></Session>")
    with pytest.raises(ValueError, match=r"S002-001\.xml: Emotion value 'x' is not a number"):
        MMI(root, "all")
    bad.write_text("<Session><oops></Session>")
    with pytest.raises(ValueError, match=r"S002-001\.xml: not valid XML"):
        MMI(root, "all")
    empty = tmp_path / "empty"
    (empty / "Sessions").mkdir(parents=True)
    with pytest.raises(ValueError, match="no MMI session with a basic-expression Emotion label"):
        MMI(empty, "all")


def test_mmi_session_without_any_subject_id_is_an_error(tmp_path):
    root = tmp_path / "mmi"
    _mmi_session(root / "Sessions", 1, "clip-a", "1")
    with pytest.raises(ValueError, match=r"cannot tell the subject of clip-a\.avi"):
        MMI(root, "all")


# -- BU-3DFE -------------------------------------------------------------------------------------

BU_FOLDERS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise")
BU_SUBJECTS = [f"F{k:03d}" for k in range(1, 7)] + [f"M{k:03d}" for k in range(1, 6)]


def make_bu(root: Path) -> Path:
    for subject in BU_SUBJECTS:
        for expr in BU_FOLDERS:
            folder = _write_frames(root / subject / expr, 5)
            (folder / "000.wrl").write_text("#VRML V2.0 utf8\n")  # meshes sit beside frames
    (root / "docs").mkdir()
    return root


@pytest.fixture(scope="module")
def bu_root(tmp_path_factory):
    return make_bu(tmp_path_factory.mktemp("bu") / "BU4DFE")


def test_bu3dfe_reads_subject_expression_folders_in_paper_order(bu_root):
    ds = build_dataset("bu3dfe", bu_root, split="all")
    assert ds.classes == ("anger", "disgust", "happiness", "fear", "sadness", "surprise")
    assert len(ds) == 66
    first = [(it.meta["subject"], it.label) for it in ds.items[:6]]
    assert first == [("F001", 0), ("F001", 1), ("F001", 3), ("F001", 2), ("F001", 4), ("F001", 5)]
    assert ds[2]["video"].shape == (7, 5, 3, 16, 16)


def test_bu3dfe_folds_are_subject_independent_and_balanced(bu_root):
    sizes = []
    for fold in range(1, 11):
        train, test = BU3DFE(bu_root, "train", fold), BU3DFE(bu_root, "test", fold)
        assert not {i.meta["subject"] for i in train.items} & {
            i.meta["subject"] for i in test.items
        }
        assert len(train) + len(test) == 66
        sizes.append(len(test))
    assert sorted(sizes) == [6] * 9 + [12]  # 11 subjects in 10 folds


def test_bu3dfe_bad_input(tmp_path):
    root = tmp_path / "BU"
    for subject in BU_SUBJECTS:
        for expr in BU_FOLDERS:
            _write_frames(root / subject / expr, 5)
    (root / "F001" / "Neutral").mkdir()
    with pytest.raises(ValueError, match=r"F001/Neutral: 'Neutral' is not one of BU-3DFE's six"):
        BU3DFE(root, "all")
    (root / "F001" / "Neutral").rmdir()
    import shutil

    shutil.rmtree(root / "M005" / "Sad")
    (root / "M005" / "Sad").mkdir()
    with pytest.raises(FileNotFoundError, match=r"M005/Sad: .* has no frames or video"):
        BU3DFE(root, "all", on_error="raise")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert len(BU3DFE(root, "all")) == 65
    with pytest.raises(ValueError, match="no BU-3DFE subject folders"):
        BU3DFE(root / "F001", "all")
    with pytest.raises(ValueError, match=r"BU-3DFE has 10 folds: pass fold=1\.\.10"):
        BU3DFE(root, "test")
