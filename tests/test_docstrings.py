"""Docstring coverage: every public module, class, function, method and constant is documented.

Public means: a module of the ``cefl_zoo`` package whose dotted name has no component
starting with ``_``, and the names in its ``__all__``. Classes and functions are checked
where they are defined (``obj.__module__``), methods and properties where the class
defines them; a method may take its docstring from the ``cefl_zoo`` base class it
overrides. Constants need a ``#:`` comment (or a docstring after the assignment) in a
module that exports them, which is where Sphinx reads their documentation from.

The sub-command modules of ``cefl_zoo.commands`` are plugins of the ``cefl-zoo``
command line: their interface is the command's ``--help`` (rendered in the API reference
from the parser), so they need a module docstring and ``HELP``, not an ``__all__``.

Each test collects every gap and fails naming all of them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from functools import cache
from pathlib import Path

import pytest

import cefl_zoo

COMMANDS = "cefl_zoo.commands."


def _public_modules() -> list[str]:
    names = ["cefl_zoo"]
    for info in pkgutil.walk_packages(cefl_zoo.__path__, "cefl_zoo."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


@cache
def _attr_docs(module: str) -> frozenset[str]:
    """Module-level names documented by a ``#:`` comment above or a string below them."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return frozenset()
    source = Path(spec.origin).read_text(encoding="utf-8")
    lines = source.splitlines()
    body = ast.parse(source).body
    found = set()
    for i, node in enumerate(body):
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
        below = body[i + 1] if i + 1 < len(body) else None
        string_below = (
            isinstance(below, ast.Expr)
            and isinstance(below.value, ast.Constant)
            and isinstance(below.value.value, str)
        )
        if above.startswith("#:") or string_below:
            found.update(targets)
    return frozenset(found)


def _exported(module: str) -> dict[str, object]:
    mod = importlib.import_module(module)
    return {name: getattr(mod, name) for name in getattr(mod, "__all__", ())}


def _has_doc(obj: object) -> bool:
    return bool((getattr(obj, "__doc__", None) or "").strip())


def _is_api(obj: object) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj)


def _method_gaps(cls: type, where: str) -> list[str]:
    """Public methods and properties the class defines without a docstring."""
    gaps = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        func = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        if not (inspect.isfunction(func) or isinstance(attr, property)):
            continue
        if _has_doc(func):
            continue
        inherited = any(
            _has_doc(getattr(base, name, None))
            for base in cls.__mro__[1:]
            if base.__module__.startswith("cefl_zoo") and name in vars(base)
        )
        if not inherited:
            gaps.append(f"{where}.{name}")
    return gaps


def test_every_public_module_has_a_docstring_and_an_all():
    gaps = []
    for module in PUBLIC_MODULES:
        mod = importlib.import_module(module)
        if not _has_doc(mod):
            gaps.append(f"{module}: no module docstring")
        if module == COMMANDS.rstrip("."):
            continue  # the plugin folder itself
        if module.startswith(COMMANDS):
            if not str(getattr(mod, "HELP", "")).strip():
                gaps.append(f"{module}: a cefl-zoo sub-command without HELP")
            continue
        if not hasattr(mod, "__all__"):
            gaps.append(f"{module}: no __all__ (say which names are public)")
        else:
            missing = [n for n in mod.__all__ if not hasattr(mod, n)]
            if missing:
                gaps.append(f"{module}: __all__ names missing from the module: {missing}")
    assert not gaps, "modules:\n  " + "\n  ".join(gaps)


def test_every_public_class_function_and_method_has_a_docstring():
    gaps = []
    for module in PUBLIC_MODULES:
        for name, obj in _exported(module).items():
            if not _is_api(obj) or obj.__module__ != module:
                continue  # checked where it is defined
            where = f"{module}.{name}"
            if not _has_doc(obj):
                gaps.append(where)
            if inspect.isclass(obj):
                gaps += _method_gaps(obj, where)
    assert not gaps, f"{len(gaps)} public names without a docstring:\n  " + "\n  ".join(
        sorted(gaps)
    )


def test_every_public_constant_is_documented():
    exporters: dict[tuple[int, str], list[str]] = {}
    for module in PUBLIC_MODULES:
        for name, obj in _exported(module).items():
            if not (_is_api(obj) or inspect.ismodule(obj) or inspect.isroutine(obj)):
                exporters.setdefault((id(obj), name), []).append(module)
    gaps = []
    for (_, name), modules in sorted(exporters.items(), key=lambda kv: kv[1][0]):
        if name == "__version__":
            continue
        if not any(name in _attr_docs(m) for m in modules):
            gaps.append(f"{modules[0]}.{name} (exported by {', '.join(modules)})")
    assert not gaps, (
        "constants without a '#:' doc comment in a module that exports them:\n  "
        + "\n  ".join(gaps)
    )


@pytest.mark.parametrize("name", sorted(cefl_zoo.__all__))
def test_top_level_names_resolve_and_are_documented(name):
    obj = getattr(cefl_zoo, name)  # the lazy ones import their module here
    if name == "__version__":
        assert isinstance(obj, str) and obj
    elif _is_api(obj):
        assert _has_doc(obj), f"cefl_zoo.{name} has no docstring"
    else:
        homes = [m for m in PUBLIC_MODULES if name in _exported(m) and _exported(m)[name] is obj]
        assert any(name in _attr_docs(m) for m in homes), f"cefl_zoo.{name} is not documented"


def test_the_checks_catch_a_gap():
    """The coverage rules flag an undocumented method (so the tests above can fail)."""

    class Documented:
        """A class."""

        def fine(self) -> None:
            """Documented."""

        def bare(self) -> None:
            pass

        @property
        def prop(self) -> int:
            return 1

    assert _method_gaps(Documented, "x.Documented") == ["x.Documented.bare", "x.Documented.prop"]
