"""Lazy package attributes (PEP 562), so importing a package does not import torch.

A package lists its public names and the modules that define them; a name's module
loads the first time the name is read, and the value is then cached in the package.

A public name may equal a sub-module's name (``cefl_zoo.train.evaluate`` is a function
defined in the module ``cefl_zoo.train.evaluate``). An eager ``from .evaluate import
evaluate`` rebinds the function after the import; lazily, the import system would bind
the module over it whenever anything imports that sub-module. The package's module class
therefore keeps such a name for the public object, as the eager package did.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose public names are not overwritten by same-named sub-modules."""

    _shadowed: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            name in self._shadowed
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            return  # the import system binding the sub-module: keep the public name
        super().__setattr__(name, value)


def attach(
    package: str,
    names: Mapping[str, str],
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a package's ``__getattr__`` and ``__dir__``.

    Args:
        package: The package's ``__name__``.
        names: Public name -> absolute name of the module that defines it.
        submodules: Sub-module names readable as attributes without importing them
            first (``cefl_zoo.models`` after ``import cefl_zoo``).

    Returns:
        ``(__getattr__, __dir__)`` to assign in the package's namespace.
    """
    submodules = frozenset(submodules)
    module = sys.modules[package]
    namespace = module.__dict__
    module.__class__ = _LazyPackage
    # Public names that are also sub-module names: the public object wins.
    shadowed = frozenset(n for n, where in names.items() if where == f"{package}.{n}")
    object.__setattr__(module, "_shadowed", shadowed)
    for name in shadowed:  # a sub-module imported before attach() must not linger
        if isinstance(namespace.get(name), types.ModuleType):
            del namespace[name]

    def __getattr__(name: str) -> Any:
        public = name in names
        if not public and name not in submodules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = names[name] if public else f"{package}.{name}"
        try:
            loaded = importlib.import_module(module)
        except AttributeError as err:
            # An AttributeError escaping from here would read as "no such name" (and
            # hasattr() would hide it): say which import failed, keeping the cause.
            raise ImportError(f"importing {module} for {package}.{name} failed: {err}") from err
        value = getattr(loaded, name) if public else loaded
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names) | submodules)

    return __getattr__, __dir__
