"""Test-wide settings: offline, deterministic, and light on the 2-core CI machine."""

from __future__ import annotations

import os

# Nothing may download at test time: the Hugging Face Hub (timm weights, our hub code)
# must fail at once instead of retrying for a minute.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Hugging Face cache at an empty directory unless a test sets its own."""
    cache = tmp_path_factory.getbasetemp() / "hf-cache-empty"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
