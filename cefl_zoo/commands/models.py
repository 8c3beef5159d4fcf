"""``cefl-zoo models [PATTERN]``: list architectures and weight sets."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "list registered architectures and pretrained weight sets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="", help="fnmatch filter, e.g. 'ceflnet*'")
    parser.add_argument(
        "--pretrained", action="store_true", help="list weight sets with their status instead"
    )


def run(args: argparse.Namespace) -> int:
    from ..registry import list_models, list_pretrained

    if args.pretrained:
        cfgs = list_pretrained(args.pattern)
        width = max([len(c.name) for c in cfgs] + [4])
        print(f"{'name':<{width}}  {'status':<12} {'dataset':<10} classes")
        for cfg in cfgs:
            n = len(cfg.label_names) if cfg.label_names else "-"
            print(f"{cfg.name:<{width}}  {cfg.status:<12} {cfg.dataset or '-':<10} {n}")
        return 0
    for name in list_models(args.pattern):
        print(name)
    return 0
