"""Test-wide settings: offline, deterministic, and light on the 2-core CI machine."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile

# Nothing may download at test time: the Hugging Face Hub (timm weights, our hub code)
# must fail at once instead of retrying for a minute. huggingface_hub reads these at
# import, so they are set before anything imports it. The cache starts empty, so no test
# depends on what the developer's own cache holds; tests that need a cache build one.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = _HF_HOME = tempfile.mkdtemp(prefix="cefl-zoo-test-hf-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.pop("HF_HUB_CACHE", None)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip where PyTorch sees no CUDA device (CI, this CPU)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _restore_cefl_zoo_logger():
    """A command run in-process sets the ``cefl_zoo`` logger up for the console (its own
    stderr handler, ``propagate`` off); put it back after each test, so that a later
    test's ``caplog`` sees its records (pytest before 9.1 attaches only to the root) and
    its stderr holds no lines from that handler."""
    logger = logging.getLogger("cefl_zoo")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate = propagate
    logger.setLevel(level)
