"""`nbops stage add NOTEBOOK`: write the dvc.yaml stage that runs a notebook."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stage",
        help="write dvc.yaml stages for notebooks",
        description="Manage the dvc.yaml stages that run notebooks with `nbops run`.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser(
        "add",
        help="write (or update) the stage that runs NOTEBOOK",
        description=(
            "Write (or update) the dvc.yaml stage that runs NOTEBOOK with `nbops run`: its params "
            "are exactly the names of the notebook's `parameters` cell (their defaults are added to "
            "params.yaml where missing), it depends on the notebook's code-only form (the paired "
            "percent script when jupytext pairing is configured), and it declares the report and the "
            "metrics, plots and models the notebook records. Other stages and comments are kept."
        ),
    )
    add.add_argument("notebook", help="the notebook (.ipynb, or its paired .py)")
    add.add_argument("--name", help="stage name and params.yaml section (default: the notebook's file name)")
    add.add_argument("--deps", nargs="+", default=[], metavar="PATH", help="data the notebook reads")
    add.add_argument("--outs", nargs="+", default=[], metavar="PATH", help="files or folders the notebook writes")
    add.add_argument("--json", action="store_true", help="print the stage written as JSON")
    add.set_defaults(handler=handle_add)


def handle_add(args: argparse.Namespace) -> int:
    from ..pipeline.stages import add_stage

    result = add_stage(args.notebook, name=args.name, deps=args.deps, outs=args.outs)
    for warning in result.warnings:
        print(f"nbops: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "name": result.name, "action": result.action, "stage": result.stage,
            "params_added": result.params_added, "warnings": result.warnings,
        }, indent=2))
    else:
        print(result)
    return 0
