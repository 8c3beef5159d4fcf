"""The lower bounds in pyproject.toml are the versions ``.ci/floor`` installs and tests."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomli is a dependency below 3.11
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
FLOOR_PINS = REPO / ".ci" / "floor-constraints.txt"


def _extras_installed_by(script: str) -> set[str]:
    text = (REPO / ".ci" / script).read_text()
    match = re.search(r'-e "\.\[([\w,]+)\]"', text)
    assert match, f".ci/{script} no longer installs the package with extras"
    return set(match.group(1).split(","))


def _requirements(extras: set[str]) -> dict[str, list[str]]:
    """``{name: [specifier, ...]}`` of the build system, the dependencies and the extras."""
    project = PYPROJECT["project"]
    lines = [*PYPROJECT["build-system"]["requires"], *project["dependencies"]]
    for extra in sorted(extras):
        lines += [r for r in project["optional-dependencies"][extra] if "cefl-zoo" not in r]
    out: dict[str, list[str]] = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*([^;]*?)\s*(;.*)?", line)
        assert m, line
        out.setdefault(_norm(m.group(1)), []).append(m.group(2))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in FLOOR_PINS.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip())
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.match(r"\d+(\.\d+)*", version).group(0).split("."))


def test_floor_job_installs_what_ci_installs():
    assert _extras_installed_by("floor") == _extras_installed_by("run")


def test_every_requirement_is_pinned_at_its_lower_bound():
    requirements = _requirements(_extras_installed_by("floor"))
    pins = _pins()
    assert set(pins) == set(requirements), (
        f"not pinned: {sorted(set(requirements) - set(pins))}; "
        f"pinned but not required: {sorted(set(pins) - set(requirements))}"
    )
    for name, specs in requirements.items():
        bounds = set()
        for spec in specs:
            lower = re.search(r">=\s*([\w.]+)", spec)
            assert lower, f"{name}{spec}: give it a lower bound that .ci/floor can test"
            bounds.add(_release(lower.group(1)))
            upper = re.search(r"<\s*([\w.]+)", spec)
            assert not upper or _release(pins[name]) < _release(upper.group(1)), (
                f"{name}: {pins[name]} vs {spec}"
            )
        # One floor per package (an extra with an older one would go untested) ...
        assert len(bounds) == 1, f"{name} has several lower bounds: {specs}"
        bound, pin = bounds.pop(), _release(pins[name])
        # ... and the pin is its first release: 2.5 -> 2.5.0, 4.11 -> 4.11.0.86.
        assert pin[: len(bound)] == bound, f"{name}: floor pin {pins[name]}, bounds {specs}"


def test_floor_python_is_requires_python():
    floor = re.fullmatch(r">=\s*(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    assert f"Python {floor}" in FLOOR_PINS.read_text()
    assert f"(3, {floor.split('.')[1]})" in (REPO / ".ci" / "floor").read_text()
