"""Sub-commands of the ``cefl-zoo`` CLI, one module each.

A command module defines ``NAME`` (the sub-command), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (the exit code). Modules should import
heavy dependencies inside ``run`` so that ``cefl-zoo --help`` stays fast.
"""
