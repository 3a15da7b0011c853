"""`nbops check`: lint the project's notebooks, params.yaml and dvc.yaml (no kernel started)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="find pipeline mistakes: untracked or unknown params, missing parameters cells, committed outputs",
        description=(
            "Check every notebook stage of dvc.yaml against its notebook and params.yaml, and the "
            "notebooks git holds, without starting a kernel. Exits 1 when there are errors "
            "(with --strict, warnings too)."
        ),
    )
    parser.add_argument("root", nargs="?", help="the project (default: the one around the working directory)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..authoring.check import check_project

    result = check_project(args.root)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for finding in result.findings:
            print(finding)
        print(result.summary(), file=sys.stderr)
    failed = result.errors or (args.strict and result.warnings)
    return 1 if failed else 0
