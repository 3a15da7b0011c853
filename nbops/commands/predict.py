"""`nbops predict NAME[@VERSION|@STAGE] INPUT.csv`: batch scoring with a registered package."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="score a CSV file with a registered model")
    parser.add_argument("ref", metavar="NAME[@VERSION|@STAGE]")
    parser.add_argument("input", metavar="INPUT.csv")
    parser.add_argument("-o", "--output", metavar="OUT.csv", help="where to write predictions (default: stdout)")
    parser.add_argument("--registry", help="registry root (path or fsspec URL)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..serving.serve import predict_csv

    predict_csv(args.ref, args.input, args.output, registry=args.registry)
    return 0
