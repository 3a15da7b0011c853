"""`nbops promote NAME`: gate, package and register a model the pipeline recorded."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "promote",
        help="turn a recorded model into a versioned, installable, servable package",
        description=(
            "Check the promotion gates (metric thresholds, clean reports, a fresh pipeline, "
            "prediction parity, a clean git tree for production, no regression against the "
            "stage's current version), then build the package and register it as the next version."
        ),
    )
    parser.add_argument("name", help="the model name given to nbops.save_model")
    parser.add_argument("--to", default="staging", choices=("staging", "production"), help="target stage (default: staging)")
    parser.add_argument("--dry-run", action="store_true", help="run every gate, write nothing")
    parser.add_argument("--force", metavar="REASON", help="promote despite a worse champion/challenger comparison; REASON goes into the lineage")
    parser.add_argument("--git-tag", action="store_true", help="also write GTO's git tags (NAME@vX.Y.Z and the stage tag)")
    parser.add_argument("--bump", default="minor", choices=("major", "minor", "patch"), help="which part of the version to increase")
    parser.add_argument("--registry", help="registry root (path or fsspec URL); default: NBOPS_REGISTRY, params.yaml promote.registry, ./registry")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=handle, call=call)


def call(args: argparse.Namespace) -> Any:
    from ..promotion.promote import promote

    return promote(
        args.name, to=args.to, dry_run=args.dry_run, force=args.force, git_tag=args.git_tag,
        bump=args.bump, registry=args.registry,
    )


def handle(args: argparse.Namespace) -> int:
    from ..core.exceptions import PromotionError

    try:
        result = call(args)
    except PromotionError as exc:
        if args.json and exc.result is not None:
            print(json.dumps(exc.result.to_dict(), indent=2))
        raise
    print(json.dumps(result.to_dict(), indent=2) if args.json else str(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `nbops promote`")
