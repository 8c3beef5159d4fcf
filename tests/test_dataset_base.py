"""VideoDataset: samples, reproducible randomness, apex clip, broken items, the registry."""

from __future__ import annotations

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
from torch.utils.data import DataLoader

import cefl_zoo
from cefl_zoo.data import (
    SampleTransformError,
    VideoDataset,
    VideoItem,
    build_dataset,
    get_dataset_builder,
    item_seed,
    list_datasets,
    register_dataset,
)
from cefl_zoo.video import ClipSampler, VideoReadError, apex_clip_index

CLASSES = ("happiness", "sadness", "anger")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Six short videos: mp4s and frame folders of different lengths, plus a corrupt file."""
    root = tmp_path_factory.mktemp("videos")
    items = []
    for i, n in enumerate([105, 40, 150, 60]):
        path = write_video(root / f"v{i}.mp4", barcode_frames(n, seed=i), gop=12)
        items.append(VideoItem(str(path), i % 3, {"apex_frame": 50} if i == 0 else {}))
    for i, n in enumerate([30, 75]):
        folder = write_frame_folder(root / f"f{i}", barcode_frames(n, seed=10 + i), ext="png")
        items.append(VideoItem(str(folder), (i + 1) % 3))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing useful")
    return root, items


def make(items, **kwargs):
    kwargs.setdefault("classes", CLASSES)
    return VideoDataset(items, **kwargs)


def test_sample_dict_shapes_and_types(videos):
    _, items = videos
    ds = make(items, transform=cefl_zoo.transforms_for("ceflnet_tiny"))
    sample = ds[2]
    assert set(sample) == {"video", "label", "path", "apex_clip", "frame_indices", "index"}
    assert sample["video"].shape == (7, 5, 3, 64, 64) and sample["video"].dtype == torch.float32
    assert sample["frame_indices"].shape == (7, 5) and sample["frame_indices"].dtype == torch.long
    assert (sample["label"], sample["path"], sample["index"], sample["apex_clip"]) == (
        2,
        items[2].path,
        2,
        -1,
    )
    batch = next(iter(DataLoader(ds, batch_size=3)))  # the default collate works
    assert batch["video"].shape == (3, 7, 5, 3, 64, 64)
    assert batch["label"].tolist() == [0, 1, 2] and batch["apex_clip"].tolist() == [3, -1, -1]


def test_frames_are_the_sampled_frames(videos):
    _, items = videos
    for index in (1, 4):  # an mp4 and a frame folder
        ds = make(items, train=True, seed=3)
        sample = ds[index]
        assert sample["video"].shape == (7, 5, 3, 48, 64)  # no transform: float in [0, 1]
        assert float(sample["video"].min()) >= 0 and float(sample["video"].max()) <= 1
        frames = (sample["video"] * 255).round().to(torch.uint8).flatten(0, 1)
        assert read_barcode(frames) == sample["frame_indices"].flatten().tolist()


def test_eval_sampling_is_the_samplers(videos):
    _, items = videos
    ds = make(items, sampler=ClipSampler(4, 3))
    assert torch.equal(ds[2]["frame_indices"], ClipSampler(4, 3)(150))
    assert ds[2]["video"].shape[:2] == (4, 3)


def test_randomness_depends_on_seed_epoch_and_index_only(videos):
    _, items = videos
    tf = cefl_zoo.transforms_for("ceflnet_tiny", train=True)
    ds = make(items, train=True, transform=tf, seed=11)
    first = ds[0]
    ds[3], ds[1]  # other items in between change nothing
    again = ds[0]
    assert torch.equal(first["video"], again["video"])
    assert torch.equal(first["frame_indices"], again["frame_indices"])
    fresh = make(items, train=True, transform=tf, seed=11)
    torch.manual_seed(1234)  # the global RNG state does not matter either
    assert torch.equal(fresh[0]["video"], first["video"])
    ds.set_epoch(1)
    other_epoch = ds[0]
    assert not torch.equal(other_epoch["frame_indices"], first["frame_indices"])
    assert not torch.equal(other_epoch["video"], first["video"])
    other_seed = make(items, train=True, transform=tf, seed=12)[0]
    assert not torch.equal(other_seed["frame_indices"], first["frame_indices"])
    assert item_seed(11, 1, 0) != item_seed(11, 0, 1)


def test_samples_do_not_depend_on_workers(videos):
    _, items = videos
    tf = cefl_zoo.transforms_for("ceflnet_tiny", train=True)
    ds = make(items, train=True, transform=tf, seed=5)
    ds.set_epoch(2)
    serial = next(iter(DataLoader(ds, batch_size=6, num_workers=0)))
    parallel = next(iter(DataLoader(ds, batch_size=6, num_workers=2)))
    assert torch.equal(serial["video"], parallel["video"])
    assert torch.equal(serial["frame_indices"], parallel["frame_indices"])


def test_eval_samples_repeat_across_epochs(videos):
    _, items = videos
    ds = make(items, transform=cefl_zoo.transforms_for("ceflnet_tiny"))
    a = ds[2]
    ds.set_epoch(7)
    assert torch.equal(a["video"], ds[2]["video"])


def test_apex_clip_is_the_clip_nearest_to_the_apex_frame(videos):
    _, items = videos
    path = items[0].path  # 105 frames: eval windows are [15 + 10 n, 29 + 10 n]
    for apex, clip in [(50, 3), (57, 3), (58, 4), (0, 0), (104, 6), (None, -1)]:
        ds = make([VideoItem(path, 0, {"apex_frame": apex})])
        assert ds[0]["apex_clip"] == clip, apex
    # Training windows move with the random start; the apex clip follows them.
    ds = make([VideoItem(path, 0, {"apex_frame": 60})], train=True)
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        clip = ds.sampler.sample(105, True, ds.generator(0))
        expected = apex_clip_index(clip.windows, 60)
        assert ds[0]["apex_clip"] == expected
        lo, hi = clip.windows[expected].tolist()
        assert lo <= 60 <= hi  # the apex lies in the window of its clip
        seen.add(expected)
    assert len(seen) >= 2


def test_face_cropper_gets_decoded_frames_and_path(videos):
    _, items = videos
    calls = []

    def cropper(frames, path):
        calls.append((tuple(frames.shape), path, frames.dtype))
        return frames[:, :, 8:40, 16:48]  # a 32 x 32 "face"

    ds = make(items, face_cropper=cropper)
    sample = ds[0]
    shape, path, dtype = calls[0]
    assert path == items[0].path and dtype == torch.uint8
    assert shape[1:] == (3, 48, 64) and shape[0] == 35  # each distinct frame once
    assert sample["video"].shape == (7, 5, 3, 32, 32)


def test_broken_item_is_skipped_with_a_warning_and_a_record(videos):
    root, items = videos
    broken = VideoItem(str(root / "broken.mp4"), 1)
    ds = make([items[1], broken, items[3]])
    with pytest.warns(RuntimeWarning, match=r"skipping unreadable item 1 \(.*broken\.mp4"):
        sample = ds[1]
    assert sample["index"] == 2 and sample["path"] == items[3].path  # the next item
    assert len(ds.failures) == 1
    failure = ds.failures[0]
    assert failure["path"] == broken.path and failure["index"] == 1 and failure["epoch"] == 0
    assert "broken.mp4" in failure["message"] and failure["error"] == "VideoReadError"


def test_evaluation_names_the_videos_it_could_not_read(videos, caplog):
    from cefl_zoo.train import evaluate

    root, items = videos
    broken = VideoItem(str(root / "broken.mp4"), 1)
    ds = make(
        [items[0], broken, items[3]],
        transform=cefl_zoo.transforms_for("ceflnet_tiny", input_size=32),
    )
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=len(CLASSES))
    with pytest.warns(RuntimeWarning, match="broken.mp4"), caplog.at_level("WARNING"):
        result = evaluate(model, ds, batch_size=3, class_names=CLASSES)
    assert result.metrics["num_videos"] == 2 and result.indices.tolist() == [0, 2]
    assert result.metrics["skipped"] == [{"index": 1, "path": broken.path}]
    assert "1 of 3 videos could not be read" in caplog.text and "broken.mp4" in caplog.text
    assert "not evaluated, unreadable: 1 video (" in str(result) and broken.path in str(result)


def test_evaluation_of_a_subset_counts_only_its_own_videos(videos, caplog):
    # The dataset replaces a broken item by its own next item, which need not be in the
    # subset; the metrics must count the subset's videos, each once, and name the broken one.
    from torch.utils.data import Subset

    from cefl_zoo.train import evaluate

    root, items = videos
    broken = VideoItem(str(root / "broken.mp4"), 1)
    ds = make(
        [items[0], items[1], broken, items[3], items[2]],
        transform=cefl_zoo.transforms_for("ceflnet_tiny", input_size=32),
    )
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=len(CLASSES))
    sub = Subset(ds, [1, 2, 4])  # the broken item's replacement, item 3, is not in it
    with pytest.warns(RuntimeWarning, match="broken.mp4"), caplog.at_level("WARNING"):
        result = evaluate(model, sub, batch_size=2, class_names=CLASSES)
    assert result.metrics["num_videos"] == 2 and result.indices.tolist() == [0, 2]
    assert result.paths == [items[1].path, items[2].path]
    assert result.metrics["skipped"] == [{"index": 1, "path": broken.path}]
    assert "1 of 3 videos could not be read" in caplog.text
    # A nested subset, and a plain DataLoader over one: nothing of the parent leaks in.
    nested = Subset(Subset(ds, [4, 3, 1, 0]), [2, 0])  # items 1 and 2 of ds
    result = evaluate(model, DataLoader(nested, batch_size=2), class_names=CLASSES)
    assert result.metrics["num_videos"] == 2 and "skipped" not in result.metrics
    assert result.paths == [items[1].path, items[2].path]


def test_subsets_with_negative_or_repeated_indices_count_every_item(videos):
    from torch.utils.data import Dataset, Subset

    from cefl_zoo.train import evaluate
    from cefl_zoo.train.loaders import EpochAwareDataset

    _, items = videos
    ds = make(
        [items[0], items[1], items[3]],
        transform=cefl_zoo.transforms_for("ceflnet_tiny", input_size=32),
    )
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=len(CLASSES))
    for sub, paths in (
        (Subset(ds, [-1, 0]), [items[3].path, items[0].path]),
        (Subset(ds, [0, 0, 1]), [items[0].path, items[0].path, items[1].path]),
    ):
        for data in (sub, DataLoader(sub, batch_size=2)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # nothing is "unreadable"
                result = evaluate(model, data, batch_size=2, class_names=CLASSES)
            assert result.paths == paths and "skipped" not in result.metrics

    class OwnIds(Dataset):  # "index" is an id of its own, not a position: left alone
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"video": torch.zeros(1), "label": 0, "index": 100 + i}

    assert EpochAwareDataset(Subset(OwnIds(), [1, 3]))[(0, 0)]["index"] == 101


def test_a_training_loader_over_a_subset_stays_inside_it_and_resamples_per_epoch(videos):
    from torch.utils.data import Subset

    from cefl_zoo.train.loaders import EpochAwareDataset

    root, items = videos
    broken = VideoItem(str(root / "broken.mp4"), 1)
    ds = make([items[0], broken, items[3], items[2]], train=True)
    wrapped = EpochAwareDataset(Subset(ds, [1, 3]))  # item 2 (the replacement) is held out
    with pytest.warns(RuntimeWarning, match="broken.mp4"):
        sample = wrapped[(0, 0)]
    assert sample["path"] == items[2].path and sample["index"] == 1
    first = wrapped[(0, 1)]["frame_indices"]
    assert ds.epoch == 0
    later = wrapped[(1, 1)]["frame_indices"]
    assert ds.epoch == 1 and not torch.equal(first, later)  # the epoch reached the dataset


def test_broken_item_raises_with_its_path(videos):
    root, _ = videos
    ds = make([VideoItem(str(root / "broken.mp4"), 1)], on_error="raise")
    with pytest.raises(VideoReadError, match="broken.mp4: not a readable video"):
        ds[0]
    assert len(ds.failures) == 1


def test_short_and_missing_videos_name_their_files(videos):
    root, _ = videos
    short = write_video(root / "short.mp4", barcode_frames(3))
    ds = make([VideoItem(str(short), 0)], on_error="raise")
    with pytest.raises(VideoReadError, match=r"short\.mp4: video has 3 frames.*min_frames=1"):
        ds[0]
    ok = make([VideoItem(str(short), 0)], sampler=ClipSampler(min_frames=1))
    assert ok[0]["frame_indices"].max() < 3
    missing = make([VideoItem(str(root / "gone.mp4"), 0)], on_error="raise")
    with pytest.raises(VideoReadError, match="gone.mp4: file does not exist"):
        missing[0]


def test_transform_errors_are_not_item_errors(videos):
    """A failing transform (here: resize to 0 px) is no broken video: it raises at once."""
    _, items = videos
    ds = make(items[:3], transform=cefl_zoo.transforms_for("ceflnet_tiny", input_size=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipping unreadable item" warning
        with pytest.raises(SampleTransformError, match="not a problem of the video file") as info:
            ds[0]
    assert items[0].path in str(info.value) and "Input and output sizes" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert ds.failures == []  # nothing was recorded as an unreadable item

    def out_of_memory(video):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    loader = DataLoader(make(items[:3], transform=out_of_memory), batch_size=3)
    with pytest.raises(SampleTransformError, match="can't allocate memory.*not a problem"):
        next(iter(loader))


def test_out_of_memory_in_the_face_cropper_is_raised_not_skipped(videos):
    """Running out of GPU memory is no broken video: it raises at once, nothing skipped."""
    _, items = videos
    calls = []

    def cropper(frames, path):
        calls.append(path)
        if path == items[1].path:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return frames

    ds = make(items[:4], face_cropper=cropper)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipping unreadable item" warning
        with pytest.raises(torch.OutOfMemoryError, match="CUDA out of memory"):
            ds[1]
    assert calls == [items[1].path] and ds.failures == []
    assert ds[0]["path"] == items[0].path  # other items load as before


def test_skip_warning_is_self_contained(videos):
    root, items = videos
    broken = VideoItem(str(root / "broken.mp4"), 1)
    ds = make([broken, items[1]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ds[0]["index"] == 1
    (w,) = caught
    message = str(w.message)
    assert issubclass(w.category, RuntimeWarning)
    assert message.startswith(f"skipping unreadable item 0 ({broken.path}): not a readable video")
    assert message.count(broken.path) == 1  # the path once, not "x.mp4: ... x.mp4: ..."
    assert message.endswith("returning the next item that loads in its place")
    # Attributed to the dataset, not to a source line of whoever asked for the item.
    assert w.filename == "<VideoDataset>" and not w.filename.endswith(".py")
    formatted = warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
    assert formatted.count("\n") == 1  # no misleading source line below the message
    assert ds.failures[0]["message"].startswith(f"{broken.path}: not a readable video")


def test_too_short_video_advice_has_the_cli_spelling(videos):
    import json

    from cefl_zoo.data.base import MIN_FRAMES_CLI
    from cefl_zoo.train import TrainConfig
    from cefl_zoo.train.loaders import build_split

    root, _ = videos
    short = write_video(root / "short_cli" / "happiness" / "s.mp4", barcode_frames(3))
    write_video(root / "short_cli" / "sadness" / "ok.mp4", barcode_frames(40))
    ds = make([VideoItem(str(short), 0)], on_error="raise")
    with pytest.raises(VideoReadError) as info:
        ds[0]
    assert "ClipSampler(min_frames=1)" in str(info.value) and MIN_FRAMES_CLI in str(info.value)
    # The spelling works: --data-kwargs JSON reaches the sampler of cefl-zoo train / eval.
    data_kwargs = json.loads(MIN_FRAMES_CLI.split(" ", 1)[1].strip("'"))
    cfg = TrainConfig(
        data=f"folder:{root / 'short_cli'}", model="ceflnet_tiny", data_kwargs=data_kwargs
    )
    train = build_split(cfg, None, train=False)
    assert train.sampler.min_frames == 1 and train[0]["path"] == str(short)


def test_all_items_broken_is_an_error(videos):
    root, _ = videos
    ds = make([VideoItem(str(root / "broken.mp4"), 0), VideoItem(str(root / "nothing.mp4"), 0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="every one of its 2 items failed.*broken.mp4"):
            ds[0]


def test_nothing_in_the_dataset_directory_is_written(videos):
    root, items = videos
    before = tree_snapshot(root)
    ds = make(
        items + [VideoItem(str(root / "broken.mp4"), 0)],
        train=True,
        transform=cefl_zoo.transforms_for("ceflnet_tiny", train=True),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(ds)):
            ds[i]
    assert tree_snapshot(root) == before


def test_subclass_only_builds_the_items(videos):
    _, items = videos

    class Listed(VideoDataset):
        classes = ("happiness", "sadness")

        def __init__(self, paths, **kwargs):
            self.paths = paths
            super().__init__(**kwargs)

        def _load_items(self):
            return [VideoItem(p, i % 2) for i, p in enumerate(self.paths)]

    ds = Listed([items[0].path, items[1].path])
    assert len(ds) == 2 and ds.classes == ("happiness", "sadness") and ds.num_classes == 2
    assert ds.targets == [0, 1] and ds.class_counts() == {"happiness": 1, "sadness": 1}
    assert ds[1]["video"].shape[:2] == (7, 5)
    with pytest.raises(NotImplementedError, match="must override _load_items"):
        VideoDataset(classes=CLASSES)


def test_bad_construction():
    with pytest.raises(ValueError, match="label 3 is outside 0..2"):
        make([VideoItem("a.mp4", 3)])
    with pytest.raises(ValueError, match="no class names"):
        VideoDataset([VideoItem("a.mp4", 0)])
    with pytest.raises(ValueError, match="on_error must be"):
        make([], on_error="ignore")
    with pytest.raises(IndexError):
        make([VideoItem("a.mp4", 0)])[1]


# -- the registry -------------------------------------------------------------------------


def test_registry_lists_and_builds(tmp_path, monkeypatch):
    from cefl_zoo.data import factory

    # Register into a copy so the name does not leak into other tests (or the doctests).
    monkeypatch.setattr(factory, "_BUILDERS", dict(factory._BUILDERS))
    assert {"folder", "csv", "synthetic", "cache"} <= set(list_datasets())

    @register_dataset("My_Videos")
    class MyVideos(VideoDataset):
        classes = CLASSES

        def __init__(self, root, split="train", fold=None, **kwargs):
            self.root, self.split, self.fold = root, split, fold
            super().__init__(**kwargs)

        def _load_items(self):
            return []

    ds = build_dataset("my-videos", tmp_path, split="test", fold=2)
    assert isinstance(ds, MyVideos) and (ds.split, ds.fold, ds.train) == ("test", 2, False)
    assert build_dataset("MYVIDEOS", tmp_path).train is True  # split "train"
    assert get_dataset_builder("my_videos") is MyVideos
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("myvideos")(type("Other", (VideoDataset,), {}))


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'dfw'.*Did you mean 'dfew'.*folder"):
        build_dataset("dfw", tmp_path)
