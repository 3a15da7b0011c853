"""`nbops git-filter`: set up, in this clone, the git filter that stores notebooks without outputs."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "git-filter",
        help="set up in this clone the git filter that stores notebooks without outputs (as nbops init does)",
        description=(
            "Configure, in this clone's .git/config, the nbstripout filter `nbops init` sets up: git stores "
            "notebooks without outputs, execution counts, volatile metadata or the Python version, and a "
            "checkout writes this environment's kernel language info, so JupyterLab does not mark an opened "
            "notebook modified. Git never takes such settings from a clone, so run this once per clone. "
            "Adds the filter to .gitattributes if no line names it; checks unmodified notebooks out again."
        ),
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..authoring.nbstripout import install

    print(install("."))
    return 0
