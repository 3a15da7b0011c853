"""`nbops monitor NAME[@VERSION|@STAGE]`: current data against the package's training profile.

Prints the Markdown summary (or, with --json, the JSON), writes the JSON file DVC reads as
metrics (--metrics), the HTML report (--html) and the Markdown (--markdown) when asked.
Exit codes: 0 ok (or below --fail-on), 1 error, 2 usage, 3 warn (--fail-on warn), 4 drift
(--fail-on drift or warn). With --dispatch OWNER/REPO, drift fires a repository_dispatch
`drift-detected` event (commands/dispatch.py) so CI retrains.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="compare captured traffic (or a data file) with the model's training profile: drift, data quality, live performance",
        description=(
            "Per-column drift with Evidently's default tests, PSI, dataset and prediction drift, data quality, and live "
            "performance from labels, against the reference profile the package carries. Exit codes: 0 ok, 1 error, "
            "2 usage, 3 warn (with --fail-on warn), 4 drift (with --fail-on drift or warn)."
        ),
    )
    parser.add_argument("ref", metavar="NAME[@VERSION|@STAGE]")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--capture", metavar="DIR", help="capture root (path or fsspec URL) holding NAME/<YYYY-MM-DD>/part-*.jsonl")
    source.add_argument("--data", metavar="FILE", help="a CSV (or parquet) file of current inputs, scored with the packaged model")
    parser.add_argument("--since", metavar="T", help="only requests at or after T: ISO date/time (UTC) or a span back from now (7d, 12h)")
    parser.add_argument("--until", metavar="T", help="only requests before T")
    parser.add_argument("--labels", metavar="FILE", help="labels (CSV or JSON lines): request_id [, row], label — or KEY, label with --key")
    parser.add_argument("--key", metavar="COLUMN", help="join labels on this input column instead of the request id")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the Markdown summary")
    parser.add_argument("--metrics", metavar="PATH", help="write the JSON result here (a file for DVC's metrics)")
    parser.add_argument("--html", metavar="PATH", help="write the self-contained HTML report here")
    parser.add_argument("--markdown", metavar="PATH", help="write the Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--fail-on", choices=("drift", "warn"), help="exit non-zero (4 drift, 3 warn) when the status reaches this")
    parser.add_argument("--registry", help="registry root (path or fsspec URL)")
    parser.add_argument("--jobs", type=int, help="processes reading capture parts (default: up to 2)")
    from .dispatch import add_dispatch_options

    add_dispatch_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..core._io import atomic_write_text
    from ..monitoring import monitor

    result = monitor(
        args.ref, capture=args.capture, data=args.data, since=args.since, until=args.until, labels=args.labels,
        key=args.key, registry=args.registry, jobs=args.jobs,
    )
    if args.metrics:
        atomic_write_text(args.metrics, result.to_json())
    if args.html:
        atomic_write_text(args.html, result.to_html())
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as handle:  # appends, as a CI job summary expects
            handle.write(result.to_markdown())
    sys.stdout.write(result.to_json() if args.json else result.to_markdown())
    if result.status == "drift":
        from .dispatch import dispatch_from_args

        fired = dispatch_from_args(args, drift_payload(result))
        if fired:
            print(f"nbops: drift: {fired}", file=sys.stderr)  # stdout stays the report (--json)
    return result.exit_code(args.fail_on)


def drift_payload(result) -> dict:
    """The event's client_payload (GitHub allows at most 10 top-level keys)."""
    return {
        "model": result.model, "version": result.version, "status": result.status,
        "drift_share": result.dataset_drift.get("share"), "columns": result.drifted_columns[:20],
        "prediction_drift": bool((result.prediction or {}).get("drifted")), "rows": result.rows,
        "window": result.window,
    }
