"""`nbops run NOTEBOOK`: execute a notebook as a pipeline stage."""

from __future__ import annotations

import argparse
import sys

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="execute a notebook with its parameters from params.yaml",
        description=(
            "Execute NOTEBOOK with papermill, injecting the params.yaml section of its stage, "
            "and write the executed notebook to reports/<stage>.ipynb. The kernel runs in the "
            "project root (the folder holding dvc.yaml / params.yaml)."
        ),
    )
    parser.add_argument("notebook", help="the notebook to execute")
    parser.add_argument("--stage", help="params.yaml section and report name (default: the notebook's file name)")
    parser.add_argument(
        "-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
        help="override one parameter; VALUE is read as YAML (3 is an int, true a bool)",
    )
    parser.add_argument("-o", "--output", help="where to write the executed notebook (default: reports/<stage>.ipynb)")
    parser.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's kernelspec)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--timeout", metavar="DURATION",
        help="stop the run when its cells take longer (seconds, or 90s / 15m / 2h; default: params.yaml nbops.timeout, else none)",
    )
    parser.add_argument(
        "--start-timeout", metavar="DURATION",
        help="how long the kernel may take to start (default: params.yaml nbops.start_timeout, else 60 s)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..pipeline.execute import run_notebook
    from ..core.params import parse_overrides

    result = run_notebook(
        args.notebook,
        stage=args.stage,
        parameters=parse_overrides(args.params),
        output=args.output,
        quiet=args.quiet,
        kernel_name=args.kernel,
        timeout=args.timeout,
        start_timeout=args.start_timeout,
    )
    for warning in result.warnings:
        print(f"nbops: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        recorded = ", ".join(f"{r['kind']} {r['name']}" for r in result.records) or "nothing recorded"
        print(f"nbops: {result.stage}: report {result.report} ({recorded})", file=sys.stderr)
    return 0
