"""The ``cefl-zoo`` command line: ``cefl-zoo <command> [options]``.

Every module in :mod:`cefl_zoo.commands` that defines ``NAME``, ``HELP``,
``add_arguments`` and ``run`` becomes a sub-command. A command reports bad input by
raising :class:`cefl_zoo.commands._common.CommandError`: one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import commands
from ._version import __version__

__all__ = ["build_parser", "main"]


def _command_modules() -> list:
    found = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in ("NAME", "HELP", "add_arguments", "run")):
            found.append(module)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cefl-zoo",
        description="Video facial expression recognition with CEFLNet.",
    )
    parser.add_argument("--version", action="version", version=f"cefl-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cefl-zoo`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    from .commands._common import CommandError, error

    try:
        return int(args._run(args) or 0)
    except CommandError as err:
        return error(args.command, str(err), err.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
