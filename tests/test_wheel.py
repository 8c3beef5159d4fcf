"""The wheel ships the packaged weights, and a non-editable install loads them.

A wheel is built from a clean copy of the checkout, installed with
``pip install --no-deps --target``, and used from a fresh interpreter whose
``PYTHONPATH`` puts the install first and whose working directory is outside the repo.
Both the installed copy and this process run the model on one thread, so their logits
are comparable bit for bit (a different thread count may change float summation order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from _hub_utils import REPO_ROOT, copy_checkout, run_result_script

import cefl_zoo
from cefl_zoo.hub import sha256sum
from cefl_zoo.labels import DATASET_CLASSES

WEIGHTS_REL = Path("cefl_zoo/weights/ceflnet_tiny.synthetic")
REAL_WEIGHTS = REPO_ROOT / WEIGHTS_REL / "model.safetensors"

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import cefl_zoo
    from cefl_zoo.models.weights import SYNTHETIC_WEIGHTS as cfg

    out = {"file": cefl_zoo.__file__, "status": cfg.status, "notes": cfg.notes}
    if cfg.status == "available":
        model = cefl_zoo.create_model("ceflnet_tiny.synthetic", pretrained=True).eval()
        x = torch.load(sys.argv[1])
        with torch.no_grad():
            out["logits"] = model(x).tolist()
        out["labels"] = list(model.label_names)
        # A package-relative folder: resolve it against the imported package.
        out["weights_dir"] = str((Path(cefl_zoo.__file__).parent / model.pretrained_cfg.file).resolve())
    print("RESULT " + json.dumps(out))
    """
)


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args], check=False, cwd=cwd, capture_output=True, text=True
    )
    assert proc.returncode == 0, (
        f"pip {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build, install and run; returns a dict of what the installed copy reported."""
    root = tmp_path_factory.mktemp("wheel")
    src = copy_checkout(root / "src")
    _pip(
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(root / "dist"),
        str(src),
        cwd=root,
    )
    wheel = next((root / "dist").glob("cefl_zoo-*.whl"))
    site = root / "site"
    _pip("install", "--no-deps", "--no-compile", "-q", "--target", str(site), str(wheel), cwd=root)

    cfg = json.loads((src / WEIGHTS_REL / "config.json").read_text())["pretrained_cfg"]
    c, h, w = cfg["input_size"]
    x = torch.randn(
        2,
        cfg["num_clips"],
        cfg["frames_per_clip"],
        c,
        h,
        w,
        generator=torch.Generator().manual_seed(0),
    )
    torch.save(x, root / "x.pt")
    script = root / "run.py"
    script.write_text(_SCRIPT)
    outside = root / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = run_result_script(script, [str(root / "x.pt")], cwd=outside, env=env, timeout=300)
    return {"src": src, "wheel": wheel, "site": site, "x": x, "result": result}


def test_wheel_contains_every_packaged_weight_file(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    packaged = sorted(
        p.relative_to(installed["src"]).as_posix()
        for p in (installed["src"] / "cefl_zoo" / "weights").rglob("*")
        if p.is_file()
    )
    assert f"{WEIGHTS_REL.as_posix()}/model.safetensors" in packaged
    assert set(packaged) <= names
    assert {"cefl_zoo/hub.py", "cefl_zoo/models/weights.py"} <= names


def test_wheel_ships_the_py_typed_marker(installed):
    """PEP 561: without cefl_zoo/py.typed, type checkers treat the package as untyped."""
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert "cefl_zoo/py.typed" in names
    assert (installed["site"] / "cefl_zoo" / "py.typed").is_file()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(installed["wheel"]).read(metadata).decode()
    assert "Classifier: Typing :: Typed" in text


def test_sdist_ships_what_its_own_tests_read(installed, tmp_path):
    """An unpacked sdist runs its tests: tests/test_readme.py and test_dependency_floors.py
    read .ci/'s constraints and scripts, so the sdist carries .ci/ (and py.typed)."""
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(dist)],
        check=False,
        cwd=installed["src"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    sdist = next(dist.glob("cefl_zoo-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    shipped = (".ci/constraints.txt", ".ci/run", ".ci/floor", ".ci/floor-constraints.txt")
    for rel in (*shipped, "cefl_zoo/py.typed", "tests/test_readme.py"):
        assert rel in names, f"{rel} is missing from {sdist.name}"


def test_the_installed_copy_is_imported_not_the_repo(installed):
    file = Path(installed["result"]["file"]).resolve()
    assert file.is_relative_to(installed["site"].resolve()), file
    assert not file.is_relative_to(REPO_ROOT)


def test_installed_wheel_loads_the_packaged_weights_and_predicts(installed):
    result = installed["result"]
    assert result["status"] == "available", result["notes"]
    assert Path(result["weights_dir"]) == (installed["site"] / WEIGHTS_REL).resolve()
    assert result["labels"] == list(DATASET_CLASSES["synthetic"])
    expected = cefl_zoo.create_model("ceflnet_tiny.synthetic", pretrained=True).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            assert torch.equal(torch.tensor(result["logits"]), expected(installed["x"]))
    finally:
        torch.set_num_threads(threads)


def test_the_real_shipped_weights_are_in_the_wheel(installed):
    assert REAL_WEIGHTS.is_file(), f"{WEIGHTS_REL}/model.safetensors is missing from the checkout"
    installed_file = installed["site"] / WEIGHTS_REL / "model.safetensors"
    assert sha256sum(installed_file) == sha256sum(REAL_WEIGHTS)
    assert cefl_zoo.get_pretrained_cfg("ceflnet_tiny.synthetic").status == "available"
