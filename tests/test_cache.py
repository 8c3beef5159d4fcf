"""The frame cache: round trip equals the direct path; JPEG, GPU-style decoding, CLI."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch
from _video_utils import tree_snapshot
from torch.utils.data import DataLoader

import cefl_zoo
from cefl_zoo.cli import main
from cefl_zoo.data import (
    CachedVideoDataset,
    EmptyCacheError,
    SyntheticVideoDataset,
    VideoDataset,
    VideoFolderDataset,
    VideoItem,
    build_dataset,
    build_frame_cache,
    collate_encoded,
    decode_jpeg_batch,
    encoded_frames,
    item_seed,
    prepare_batch,
    write_synthetic_dataset,
)
from cefl_zoo.video import ClipSampler, VideoReadError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / "synth"
    write_synthetic_dataset(
        root, num_videos=8, seed=1, size=32, min_frames=40, max_frames=130, progress=False
    )
    return root


def source(root, **kwargs):
    kwargs.setdefault(
        "transform", cefl_zoo.transforms_for("ceflnet_tiny", train=True, input_size=32)
    )
    kwargs.setdefault("train", True)
    return SyntheticVideoDataset(root, split=None, seed=4, **kwargs)


def test_uint8_cache_gives_exactly_the_direct_samples(synth, tmp_path):
    direct = source(synth)
    before = tree_snapshot(synth)
    out = build_frame_cache(direct, tmp_path / "u8", format="uint8", progress=False)
    assert tree_snapshot(synth) == before  # the dataset directory is only read
    cached = CachedVideoDataset(out, transform=direct.transform, train=True, seed=4)
    assert cached.classes == direct.classes and len(cached) == len(direct)
    assert cached.sampler == direct.sampler
    for epoch in (0, 3):
        direct.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(direct)):
            a, b = direct[i], cached[i]
            assert torch.equal(a["video"], b["video"]), (epoch, i)
            for key in ("frame_indices",):
                assert torch.equal(a[key], b[key])
            assert (a["label"], a["apex_clip"], a["path"], a["index"]) == (
                b["label"],
                b["apex_clip"],
                b["path"],
                b["index"],
            )


def test_cache_stores_only_reachable_frames(synth, tmp_path):
    direct = source(synth)
    out = build_frame_cache(direct, tmp_path / "u8", format="uint8", progress=False)
    index = json.loads((out / "index.json").read_text())
    for entry in index["items"]:
        reachable = ClipSampler().reachable_frames(entry["num_frames"]).tolist()
        assert entry["frames"] == reachable and len(reachable) <= 105
        assert entry["shape"] == [3, 32, 32]
    assert index["sampler"] == ClipSampler().config() and index["format"] == "uint8"
    shard_bytes = sum(p.stat().st_size for p in out.glob("shard_*.bin"))
    assert shard_bytes == sum(len(e["frames"]) for e in index["items"]) * 3 * 32 * 32


def test_jpeg_cache_resized_and_close_to_direct(synth, tmp_path):
    direct = source(synth, transform=None, train=False)
    out = build_frame_cache(
        direct,
        tmp_path / "jpg",
        format="jpeg",
        size=24,
        quality=95,
        shard_bytes=20_000,
        progress=False,
    )
    assert len(list(out.glob("shard_*.bin"))) > 1  # several shards
    cached = CachedVideoDataset(out)
    for i in (0, 7):
        a, b = direct[i], cached[i]
        assert b["video"].shape == (7, 5, 3, 24, 24)
        small = torch.nn.functional.interpolate(
            a["video"].flatten(0, 1), size=24, mode="bilinear", antialias=True
        ).reshape(b["video"].shape)
        assert (small - b["video"]).abs().mean() < 0.03
        assert torch.equal(a["frame_indices"], b["frame_indices"])


def test_undecoded_batches_decode_to_the_same_video(synth, tmp_path):
    tf = cefl_zoo.transforms_for("ceflnet_tiny", train=True, input_size=32)
    for fmt in ("jpeg", "uint8"):
        out = build_frame_cache(source(synth), tmp_path / fmt, format=fmt, progress=False)
        decoded = CachedVideoDataset(out, transform=tf, train=True, seed=2)
        raw = CachedVideoDataset(out, decode=False, train=True, seed=2)
        decoded.set_epoch(1)
        raw.set_epoch(1)
        batch = next(iter(DataLoader(raw, batch_size=4, collate_fn=collate_encoded, num_workers=2)))
        assert batch["shape"] == (4, 7, 5)
        if fmt == "jpeg":
            # one buffer per batch, not a tensor (shared-memory segment) per frame
            assert isinstance(batch["jpeg"], torch.Tensor) and batch["jpeg"].dtype == torch.uint8
            frames = encoded_frames(batch)
            assert len(frames) == 4 * 35 and frames[0][:2].tolist() == [0xFF, 0xD8]  # JPEG SOI
        video = prepare_batch(batch, "cpu", transform=tf)
        expected = torch.stack([decoded[i]["video"] for i in range(4)])
        assert torch.equal(video, expected)
        assert batch["label"].tolist() == [decoded[i]["label"] for i in range(4)]
        frames = prepare_batch(batch, "cpu")
        assert frames.dtype == torch.uint8 and frames.shape == (4, 7, 5, 3, 32, 32)


def test_batched_transform_tail_equals_the_per_video_transform(synth, tmp_path, monkeypatch):
    # prepare_batch runs the random steps per video and ToDtype + Normalize once on the
    # batch (no per-video host-to-device copies of mean and std); the result is the whole
    # transform per video, bit for bit, also in the channels-last layout.
    from cefl_zoo.data import cache as cache_mod

    monkeypatch.setattr(cache_mod, "_NORM_CONSTANTS", {})  # other tests' constants aside

    out = build_frame_cache(source(synth), tmp_path / "c", format="jpeg", progress=False)
    raw = CachedVideoDataset(out, decode=False, train=True, seed=5)
    raw.set_epoch(2)
    batch = collate_encoded([raw[i] for i in range(3)])
    frames = prepare_batch(batch, "cpu")
    for jitter in (0.0, 0.4):
        tf = cefl_zoo.transforms_for("ceflnet_tiny", train=True, input_size=24, color_jitter=jitter)
        head, tail = cache_mod._split_pointwise_tail(tf)
        assert tail is not None and "Normalize" not in repr(head) and "ToDtype" not in repr(head)
        expected = []
        for v, seed in zip(frames, batch["transform_seed"].tolist()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                expected.append(tf(v))
        expected = torch.stack(expected)
        for cl in (False, True):
            video = prepare_batch(batch, "cpu", transform=tf, channels_last=cl)
            assert video.dtype == torch.float32 and torch.equal(video, expected)
            folded = video.flatten(0, 2)  # what the backbone sees
            assert folded.is_contiguous(memory_format=torch.channels_last) == cl
            assert folded.data_ptr() == video.data_ptr()  # a view, no copy
    # the normalisation constants are made once per device, not per video or batch
    keys = [k for k in cache_mod._NORM_CONSTANTS if k[0] == "cpu"]
    assert len(keys) == 1
    cached = cache_mod._NORM_CONSTANTS[keys[0]]
    prepare_batch(batch, "cpu", transform=tf)
    assert cache_mod._NORM_CONSTANTS[keys[0]] is cached
    # other transforms are applied whole, per video
    eval_tf = cefl_zoo.transforms_for("ceflnet_tiny", input_size=24, normalize=False)
    assert cache_mod._split_pointwise_tail(eval_tf)[1] is None
    assert torch.equal(
        prepare_batch(batch, "cpu", transform=eval_tf), torch.stack([eval_tf(v) for v in frames])
    )
    double = prepare_batch(batch, "cpu", transform=lambda v: v.float() * 2, channels_last=True)
    assert torch.equal(double, frames.float() * 2)


def test_decode_jpeg_batch_shapes():
    from torchvision.io import encode_jpeg

    from cefl_zoo.video.io import quiet_image_io

    ramp = torch.arange(16).view(1, 1, 16) * 8 + torch.arange(16).view(1, 16, 1) * 4
    frames = torch.stack([(ramp + 20 * i).expand(3, 16, 16) % 256 for i in range(6)]).to(
        torch.uint8
    )
    with quiet_image_io():
        jpegs = encode_jpeg(list(frames), quality=100)
    out = decode_jpeg_batch(jpegs, (2, 3))
    assert out.shape == (2, 3, 3, 16, 16)
    assert (out.flatten(0, 1).float() - frames.float()).abs().mean() < 4


@pytest.mark.cuda
def test_gpu_decoding_matches_cpu(synth, tmp_path):
    out = build_frame_cache(source(synth), tmp_path / "gpu", format="jpeg", progress=False)
    raw = CachedVideoDataset(out, decode=False)
    batch = collate_encoded([raw[0], raw[1]])
    gpu = prepare_batch(batch, "cuda")
    cpu = prepare_batch(batch, "cpu")
    assert gpu.is_cuda and gpu.shape == cpu.shape
    assert (gpu.cpu().float() - cpu.float()).abs().mean() < 2


@pytest.mark.cuda
def test_gpu_decoding_never_overwrites_memory_queued_kernels_still_read():
    """pytorch/vision#9606: nvJPEG must not be handed blocks that queued kernels read."""
    from torchvision.io import encode_jpeg

    frames = torch.randint(0, 256, (32, 3, 128, 128), dtype=torch.uint8)
    jpegs = encode_jpeg(list(frames), quality=95)
    big = torch.randn(4096, 4096, device="cuda")
    wrong = 0
    for i in range(30):
        tensors = [torch.full((3, 128, 128), float(i + j), device="cuda") for j in range(32)]
        torch.cuda.synchronize()
        for _ in range(8):  # keep the stream busy so the reductions below are still queued
            big = big @ big / 4096
        sums = [t.sum() for t in tensors]
        del tensors  # freed while the reductions that read them are still queued
        decoded = decode_jpeg_batch(jpegs, device="cuda")
        torch.cuda.synchronize()
        expected = [float(i + j) * 3 * 128 * 128 for j in range(32)]
        wrong += sum(abs(s.item() - e) > 1e-3 * e + 1 for s, e in zip(sums, expected))
        assert decoded.shape == (32, 3, 128, 128)
    assert wrong == 0


def test_gpu_decoding_without_cuda_says_so():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        decode_jpeg_batch([torch.zeros(4, dtype=torch.uint8)], device="cuda")


def test_build_is_atomic_and_refuses_to_clobber(synth, tmp_path):
    out = tmp_path / "c"
    build_frame_cache(source(synth), out, format="uint8", progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_frame_cache(source(synth), out, progress=False)
    build_frame_cache(source(synth), out, format="jpeg", progress=False, overwrite=True)
    assert json.loads((out / "index.json").read_text())["format"] == "jpeg"
    # A failing build leaves neither the cache nor its temporary directory behind.
    broken = VideoDataset(
        [VideoItem(str(tmp_path / "missing.mp4"), 0)], classes=("anger",), on_error="raise"
    )
    with pytest.raises(VideoReadError, match="missing.mp4"):
        build_frame_cache(broken, tmp_path / "never", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["c"]


def test_failed_items_are_listed_and_skipped(synth, tmp_path):
    good = source(synth)
    gone = str(tmp_path / "gone.mp4")
    items = good.items[:2] + [VideoItem(gone, 0)]
    ds = VideoDataset(items, classes=good.classes)
    with pytest.warns(RuntimeWarning, match="frame cache: skipping .*gone.mp4") as caught:
        out = build_frame_cache(ds, tmp_path / "c", progress=False)
    (message,) = [str(w.message) for w in caught if "gone.mp4" in str(w.message)]
    assert message.count(gone) == 1  # not "gone.mp4: VideoReadError: gone.mp4: ..."
    assert message.startswith(f"frame cache: skipping {gone}: file does not exist")
    index = json.loads((out / "index.json").read_text())
    assert len(index["items"]) == 2
    assert index["failures"][0]["path"].endswith("gone.mp4")
    assert (
        index["failures"][0]["error"]
        == f"VideoReadError: {gone}: file does not exist. Check the path"
    )
    assert index["failures"][0]["reason"] == "file does not exist. Check the path"
    strict = VideoDataset(items, classes=good.classes, on_error="raise")
    with pytest.raises(VideoReadError) as info:
        build_frame_cache(strict, tmp_path / "strict", progress=False)
    assert str(info.value) == f"{gone}: file does not exist. Check the path"


def test_nothing_cached_is_an_error_and_writes_nothing(synth, tmp_path):
    items = [VideoItem(str(tmp_path / f"gone{i}.mp4"), 0) for i in range(2)]
    ds = VideoDataset(items, classes=("anger",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(
            EmptyCacheError, match=r"not one of the 2 videos .*gone0.mp4: file does"
        ):
            build_frame_cache(ds, tmp_path / "c", progress=False)
    with pytest.raises(EmptyCacheError, match="has no videos"):
        build_frame_cache(VideoDataset([], classes=("anger",)), tmp_path / "c", progress=False)
    assert issubclass(EmptyCacheError, ValueError)
    assert sorted(os.listdir(tmp_path)) == []  # neither the cache nor a temporary folder
    with pytest.raises(ValueError, match="size must be a positive"):
        build_frame_cache(source(synth), tmp_path / "c", size=0, progress=False)


def test_overwrite_only_ever_replaces_a_frame_cache(synth, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth, data)
    before = tree_snapshot(data)
    # The audit's `cefl-zoo cache synthetic:d1 d1 --overwrite` deleted the dataset.
    with pytest.raises(FileExistsError, match=r"data: holds .*labels.csv.*not a frame cache"):
        build_frame_cache(source(data), data, progress=False, overwrite=True)
    assert tree_snapshot(data) == before
    plain = tmp_path / "plain.txt"
    plain.write_text("keep me")
    with pytest.raises(FileExistsError, match=r"plain.txt: is a file, so it is not a frame cache"):
        build_frame_cache(source(synth), plain, progress=False, overwrite=True)
    assert plain.read_text() == "keep me"
    link = tmp_path / "link"
    link.symlink_to(data)
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        build_frame_cache(source(synth), link, progress=False, overwrite=True)
    # A cache (even one with a damaged index) and an empty folder are replaced.
    cache = build_frame_cache(source(synth), tmp_path / "cache", progress=False)
    (cache / "index.json").write_text('{"version": 1, "items": [')
    build_frame_cache(source(synth), cache, format="uint8", progress=False, overwrite=True)
    assert CachedVideoDataset(cache).format == "uint8"
    (cache / "README").write_text("my notes")
    with pytest.raises(FileExistsError, match="holds README, which a frame cache does not"):
        build_frame_cache(source(synth), cache, progress=False, overwrite=True)
    (tmp_path / "empty").mkdir()
    build_frame_cache(source(synth), tmp_path / "empty", progress=False, overwrite=True)
    assert (tmp_path / "empty" / "index.json").is_file()


def test_stale_temporary_folders_of_killed_builds_are_removed(synth, tmp_path):
    import subprocess
    import sys

    dead, dead2 = (subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(2))
    dead.wait()
    dead2.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [
            f".c.tmp-{dead.pid}",  # a killed build of c: removed
            f".c.tmp-{alive.pid}",  # a build of c under way: kept
            f".cc.tmp-{dead.pid}",  # another cache's
            f".c.tmp-{dead.pid}x",  # not the cache's naming
            f"c.tmp-{dead.pid}",
        ]
        for name in names:
            (tmp_path / name).mkdir()
            (tmp_path / name / "shard_00000.bin").write_bytes(b"x")
        (tmp_path / f".c.tmp-{dead2.pid}").write_text("a file, not a build folder")
        build_frame_cache(source(synth), tmp_path / "c", progress=False)
    finally:
        alive.kill()
        alive.wait()
    left = sorted(os.listdir(tmp_path))
    assert f".c.tmp-{dead.pid}" not in left
    assert left == sorted(["c", f".c.tmp-{dead2.pid}", *names[1:]])


def test_split_selection(synth, tmp_path):
    out = build_frame_cache(source(synth), tmp_path / "c", progress=False)
    test = CachedVideoDataset(out, split="test")
    assert len(test) == 1 and len(CachedVideoDataset(out, split="train")) == 7
    assert isinstance(build_dataset("cache", out, split="test"), CachedVideoDataset)
    with pytest.raises(ValueError, match=r"no cached videos of split 'val' \(found: test, train\)"):
        CachedVideoDataset(out, split="val")
    plain = VideoDataset(source(synth).items[:2], classes=source(synth).classes)
    for item in plain.items:
        item.meta.pop("split", None)
    bare = build_frame_cache(plain, tmp_path / "bare", progress=False)
    with pytest.raises(ValueError, match="does not say which split"):
        CachedVideoDataset(bare, split="train")
    labelled = build_frame_cache(plain, tmp_path / "lab", progress=False, split="val")
    assert len(CachedVideoDataset(labelled, split="val")) == 2
    # A cache built without splits is used whole with split None or "" (--train-split "").
    assert len(CachedVideoDataset(bare, split=None)) == len(CachedVideoDataset(bare, split="")) == 2
    assert len(build_dataset("cache", bare, split="")) == 2


def test_cache_of_a_folder_per_class_dataset_is_trainable(synth, tmp_path):
    from cefl_zoo.train import TrainConfig
    from cefl_zoo.train.loaders import build_split

    ds = source(synth)
    root = tmp_path / "folders"
    for item in ds.items[:4]:
        target = root / ds.classes[item.label] / os.path.basename(item.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(item.path)
    folder = VideoFolderDataset(root, split=None)
    out = build_frame_cache(folder, tmp_path / "fc", size=32, progress=False)
    cfg = TrainConfig(data=f"cache:{out}", model="ceflnet_tiny", img_size=32)
    for split in (None, ""):
        train = build_split(cfg, split, train=True)
        assert len(train) == 4 and train[0]["video"].shape[-1] == 32
    with pytest.raises(ValueError, match="--train-split none"):
        CachedVideoDataset(out, split="train")


def test_damaged_index_names_the_file_and_the_fix(synth, tmp_path):
    out = build_frame_cache(source(synth), tmp_path / "c", progress=False)
    (out / "index.json").write_text('{"version": 1, "items": [\n')
    with pytest.raises(
        ValueError, match=r"c/index.json: the frame cache's index is damaged"
    ) as info:
        CachedVideoDataset(out)
    assert f"cefl-zoo cache SPEC {out} --overwrite" in str(info.value)
    (out / "index.json").write_text('{"version": 1}')
    with pytest.raises(ValueError, match="index is damaged .no format, sampler, classes, items"):
        CachedVideoDataset(out)
    (out / "index.json").write_text("[]")
    with pytest.raises(ValueError, match="not a frame cache index"):
        CachedVideoDataset(out)
    with pytest.raises(FileNotFoundError, match="is a file, not a frame cache folder"):
        CachedVideoDataset(out / "index.json")


def test_sampler_needing_uncached_frames_is_an_error(synth, tmp_path):
    out = build_frame_cache(source(synth), tmp_path / "c", progress=False)
    # Refused up front, not item by item (skipping would replace items by their neighbours).
    with pytest.raises(ValueError, match=r"ClipSampler\(.*can pick frames this cache does not"):
        CachedVideoDataset(out, sampler=ClipSampler(10, 5))
    with pytest.raises(ValueError, match="can pick frames this cache does not"):
        CachedVideoDataset(out, sampler=ClipSampler(4, 3))
    # Samplers that need only frames the cache holds are fine.
    same = CachedVideoDataset(out, sampler=ClipSampler(min_frames=1))
    assert len(same) == 8
    greedy = CachedVideoDataset(out, on_error="raise")
    reader = greedy.open(greedy.items[0])
    missing = next(i for i in range(len(reader)) if i not in set(reader.entry["frames"]))
    with pytest.raises(VideoReadError, match="not in the cache.*rebuild the cache"):
        reader.read([missing])


def test_changed_source_video_is_reported(tmp_path):
    root = tmp_path / "synth"
    write_synthetic_dataset(root, num_videos=3, seed=1, size=32, progress=False)
    ds = SyntheticVideoDataset(root, split=None)
    out = build_frame_cache(ds, tmp_path / "c", format="uint8", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CachedVideoDataset(out)  # unchanged: no warning
    victim = ds.items[1].path
    other = ds.items[2].path
    os.replace(other, victim)  # another video in its place
    with pytest.warns(RuntimeWarning, match=r"1 of 3 cached videos changed.*--overwrite"):
        CachedVideoDataset(out)
    os.remove(victim)  # sources that are gone are fine: a cache stands alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(CachedVideoDataset(out)) == 3


def _frame_folders(root, value, classes=("happy", "sad")):
    """``root/<class>/vid0`` folders of 12 PNG frames of one grey level."""
    from _video_utils import write_frame_folder

    for cls in classes:
        frames = torch.full((12, 3, 16, 16), value, dtype=torch.uint8)
        write_frame_folder(root / cls / "vid0", frames, ext="png")


def test_changed_frame_folder_is_reported(tmp_path):
    root = tmp_path / "frames"
    _frame_folders(root, 10)
    ds = VideoFolderDataset(root, split=None)
    out = build_frame_cache(ds, tmp_path / "c", format="uint8", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CachedVideoDataset(out)  # unchanged: no warning
    sad = root / "sad" / "vid0"
    (sad / "13.png").write_bytes((sad / "1.png").read_bytes())  # a frame more
    with pytest.warns(RuntimeWarning, match=r"1 of 2 cached videos.*sad/vid0: 12 frames then"):
        CachedVideoDataset(out)
    happy = root / "happy" / "vid0"
    mtime = (happy / "5.png").stat().st_mtime_ns
    _frame_folders(root, 200, ["happy"])  # re-extracted: as many frames, same sizes
    for frame in happy.iterdir():  # (later than the build even on coarse file systems)
        os.utime(frame, ns=(mtime + 10**9, mtime + 10**9))
    with pytest.warns(
        RuntimeWarning,
        match=r"2 of 2 cached videos changed.*happy/vid0: modification time differs.*--overwrite",
    ):
        CachedVideoDataset(out)


def test_frame_folder_stamp_follows_the_readers_frame_order_and_ignores_other_files(tmp_path):
    root = tmp_path / "frames"
    _frame_folders(root, 10)
    ds = VideoFolderDataset(root, split=None)
    out = build_frame_cache(ds, tmp_path / "c", format="uint8", progress=False)
    sad = root / "sad" / "vid0"
    (sad / "Thumbs.db").write_bytes(b"x")  # not a frame: no change
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CachedVideoDataset(out)
    last = sad / "12.png"  # the last frame in natural order (plain sorting says 9.png)
    later = last.stat().st_mtime_ns + 10**9
    os.utime(last, ns=(later, later))
    with pytest.warns(RuntimeWarning, match=r"sad/vid0: modification time differs"):
        CachedVideoDataset(out)
    for frame in (root / "happy" / "vid0").glob("*.png"):  # frames deleted after caching
        frame.unlink()
    with pytest.warns(RuntimeWarning, match=r"happy/vid0: 12 frames then, 0 now"):
        assert len(CachedVideoDataset(out)) == 2  # the cache still serves them


def test_video_rewritten_with_the_same_size_is_reported(tmp_path):
    root = tmp_path / "synth"
    write_synthetic_dataset(root, num_videos=2, seed=1, size=32, progress=False)
    ds = SyntheticVideoDataset(root, split=None)
    out = build_frame_cache(ds, tmp_path / "c", format="uint8", progress=False)
    victim = ds.items[0].path
    stat = os.stat(victim)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten in place
    with pytest.warns(RuntimeWarning, match=r"1 of 2 cached videos changed.*modification time"):
        CachedVideoDataset(out)


def test_cache_of_an_older_version_without_source_stamps_still_reads(tmp_path):
    root = tmp_path / "frames"
    _frame_folders(root, 10)
    ds = VideoFolderDataset(root, split=None, train=True)
    out = build_frame_cache(ds, tmp_path / "c", format="uint8", progress=False)
    index = json.loads((out / "index.json").read_text())
    for entry in index["items"]:  # what older builds wrote: a size, None for folders
        for key in ("source_index", "source_frames", "source_mtime_ns"):
            del entry[key]
        entry["source_size"] = None
    (out / "index.json").write_text(json.dumps(index))
    _frame_folders(root, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to compare with, so no warning
        cached = CachedVideoDataset(out, train=True)
    assert torch.equal(cached[1]["frame_indices"], ds[1]["frame_indices"])


def test_samples_match_the_source_after_a_video_failed_to_cache(synth, tmp_path):
    good = source(synth, transform=None)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    items = [VideoItem(str(broken), 0), *good.items[:3]]
    ds = VideoDataset(items, classes=good.classes, train=True, seed=4)
    with pytest.warns(RuntimeWarning, match="frame cache: skipping"):
        out = build_frame_cache(ds, tmp_path / "c", format="uint8", progress=False)
    cached = CachedVideoDataset(out, train=True, seed=4)
    assert [it.path for it in cached.items] == [it.path for it in items[1:]]
    for i in range(3):  # cache item i is source item i + 1
        a, b = ds[i + 1], cached[i]
        assert torch.equal(a["frame_indices"], b["frame_indices"]), i
        assert torch.equal(a["video"], b["video"]), i
    cached.decode = False
    assert cached.load_sample(0)["transform_seed"] == item_seed(4, 0, 1, "transform")


def test_out_of_memory_while_caching_is_raised_not_skipped(synth, tmp_path):
    def cropper(frames, path):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    ds = source(synth, face_cropper=cropper)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipping" warning
        with pytest.raises(torch.OutOfMemoryError, match="CUDA out of memory"):
            build_frame_cache(ds, tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


def test_missing_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a frame cache.*cefl-zoo cache"):
        CachedVideoDataset(tmp_path)


def test_cli_builds_a_cache(synth, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "cache",
                f"synthetic:{synth}",
                str(out),
                "--model",
                "ceflnet_tiny",
                "--format",
                "uint8",
                "--quiet",
            ]
        )
        == 0
    )
    assert "cached 8 videos (0 failed)" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert index["size"] == 64 and index["items"][0]["shape"] == [3, 64, 64]
    assert (
        main(
            [
                "cache",
                str(synth),
                str(tmp_path / "bare_path"),
                "--size",
                "16",
                "--quiet",
                "--num-clips",
                "4",
                "--frames-per-clip",
                "2",
            ]
        )
        == 0
    )
    index = json.loads((tmp_path / "bare_path" / "index.json").read_text())
    assert index["sampler"]["num_clips"] == 4 and index["format"] == "jpeg"
    assert main(["cache", str(tmp_path / "nothing_here"), str(tmp_path / "x"), "--quiet"]) == 2
    assert "cannot tell which dataset" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["cache", f"synthetic:{synth}", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_split_and_defaults_are_explained(tmp_path, capsys):
    (tmp_path / "DFEW").mkdir()
    assert main(["cache", f"dfew:{tmp_path / 'DFEW'}", str(tmp_path / "c"), "--quiet"]) == 2
    assert (
        "DFEW: no split given; pass split='train' or split='test' (cefl-zoo: --split train "
        "or --split test)" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "required for a benchmark dataset (e.g. --split train)" in text
    assert "~10x larger) (default: jpeg)" in text
    assert "clips per video, N (default: --model's)" in text
    assert "frames per clip, K (default: --model's)" in text


def test_cli_caches_short_videos_with_min_frames(tmp_path, capsys):
    short = tmp_path / "short"
    write_synthetic_dataset(
        short, num_videos=2, seed=2, size=32, min_frames=3, max_frames=4, progress=False
    )
    args = ["cache", str(short), str(tmp_path / "c"), "--size", "16", "--quiet"]
    with pytest.warns(RuntimeWarning, match="fewer than one clip.*cefl-zoo cache: --min-frames 1"):
        assert main(args) == 2
    assert "not one of the 2 videos" in capsys.readouterr().err
    assert main([*args, "--min-frames", "1"]) == 0
    assert "cached 2 videos (0 failed)" in capsys.readouterr().out
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["sampler"]["min_frames"] == 1


def test_truncated_shard_is_reported(synth, tmp_path):
    for fmt in ("uint8", "jpeg"):
        out = build_frame_cache(source(synth), tmp_path / fmt, format=fmt, progress=False)
        shard = out / "shard_00000.bin"
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
        cached = CachedVideoDataset(out, on_error="raise")
        with pytest.raises(VideoReadError, match="shard_00000.bin: truncated cache shard"):
            cached[len(cached) - 1]
