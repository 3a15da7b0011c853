"""`nbops init [DIR]`: scaffold a project that works at once."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create a new project: git, DVC, a starter notebook stage, tests and a CI workflow",
        description=(
            "Create a project in DIR (default: the current folder): git and DVC initialised, a "
            "starter notebook paired with its code-only script, params.yaml, dvc.yaml, .gitignore, "
            "the nbstripout filter, a pre-commit config, tests and a GitHub Actions workflow. "
            "Right after it, `dvc repro` and `pytest` pass. Existing files are never overwritten "
            "unless --force."
        ),
    )
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR", help="the project folder (created if needed)")
    parser.add_argument("--force", action="store_true", help="overwrite files nbops init writes")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..authoring.scaffold import init_project

    print(init_project(args.directory, force=args.force))
    return 0
