"""The ``cefl-zoo`` command line: ``cefl-zoo <command> [options]``.

Every module in :mod:`cefl_zoo.commands` that defines ``NAME``, ``HELP``,
``add_arguments`` and ``run`` becomes a sub-command. A command reports bad input by
raising ``CommandError`` (``cefl_zoo.commands._common``): one line on stderr, no traceback.

A command module may also define ``prepare_argv(parser, argv) -> argv``, which rewrites
its arguments before they are parsed (``predict`` uses it so that ``--faces clip.mp4``
does not take the video for a detector name).

Exit status: 0 everything done, 1 some inputs failed (the others have results), 2 bad
usage or input, 141 stdout's reader went away (``cefl-zoo ... | head``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import commands
from ._version import __version__

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose arguments a command can rewrite before parsing."""

    argv_hook: Callable[[argparse.ArgumentParser, list[str]], list[str]] | None = None

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self.argv_hook is not None:
            args = self.argv_hook(self, list(sys.argv[1:] if args is None else args))
        return super().parse_known_args(args, namespace)


def _command_modules() -> list:
    found = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in ("NAME", "HELP", "add_arguments", "run")):
            found.append(module)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    from .commands._common import EXIT_CODES_HELP, HelpFormatter

    parser = _Parser(
        prog="cefl-zoo",
        description="Video facial expression recognition with CEFLNet.",
        epilog=f"{EXIT_CODES_HELP}\n\n`cefl-zoo COMMAND --help` describes a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cefl-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        cmd = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter
        )
        module.add_arguments(cmd)
        cmd.argv_hook = getattr(module, "prepare_argv", None)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cefl-zoo`` command; returns the exit code."""
    try:
        return _main(argv)
    except BrokenPipeError:
        if not _stdout_is_broken():
            raise  # some other pipe: a real error
        # The reader of stdout went away (`cefl-zoo predict ... --json - | head`): stop
        # quietly, as other command-line tools do, instead of a traceback. Python's own
        # flush of stdout at exit then writes to /dev/null instead of the closed pipe.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


def _stdout_is_broken() -> bool:
    """Whether writing to stdout fails because its reader has gone."""
    if sys.stdout is None:  # no stdout at all (started with it closed)
        return False
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        return True
    except OSError:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return False
    try:  # (a zero-byte write says nothing on a Linux pipe: poll for its error instead)
        import select

        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, AttributeError):  # AttributeError: no select.poll (Windows)
        return False


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:  # no need to import every command for this
        print(f"cefl-zoo {__version__}")
        return 0
    parser = build_parser()
    args = parser.parse_args(args_list)
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
