"""`nbops report [--rev REV]`: Markdown summary of parameter and metric changes."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="Markdown summary of params changed and metric deltas, for a pull request or CI job summary",
        description=(
            "Compare the workspace with REV (default: the last commit) using DVC's params and "
            "metrics diffs, and print a Markdown summary: parameters changed, metrics with deltas, "
            "pipeline status, promotion gates and the plots. In CI: "
            "`nbops report --rev origin/main >> \"$GITHUB_STEP_SUMMARY\"`."
        ),
    )
    parser.add_argument("--rev", default="HEAD", help="the git revision to compare with (default: HEAD)")
    parser.add_argument("--json", action="store_true", help="print the data as JSON instead of Markdown")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..authoring.report import build_report

    report = build_report(rev=args.rev)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.markdown(), end="" if not args.json else "\n")
    return 0
