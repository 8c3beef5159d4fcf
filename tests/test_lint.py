"""The code base passes ``ruff check`` and ``ruff format --check`` (pyproject's settings).

ruff's default rule set grows between releases, so the version is pinned with the other
test requirements (``.ci/constraints.txt``); without ruff installed these tests skip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ruff", reason="ruff is part of the [test] extra")

REPO = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ruff_check_is_clean():
    proc = _ruff("check", "--no-cache", "--output-format", "concise", ".")
    assert proc.returncode == 0, f"ruff check found:\n{proc.stdout}{proc.stderr}"


def test_ruff_format_is_clean():
    proc = _ruff("format", "--no-cache", "--check", ".")
    assert proc.returncode == 0, f"not formatted (run `ruff format .`):\n{proc.stdout}{proc.stderr}"
