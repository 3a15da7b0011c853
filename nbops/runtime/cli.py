"""The command line of a package, `python -m <package>`: score a CSV, or serve the model.

    python -m <package> predict INPUT.csv [-o OUT.csv]
    python -m <package> serve [--host 127.0.0.1] [--port 8000] [--max-rows N] [--access-log]
                              [--capture DIR|URL [--sample RATE] [--capture-buffer N] [--capture-flush SECONDS]]

Errors are one line on stderr and exit status 1; nothing else of the runtime prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .capture import DEFAULT_BUFFER_RECORDS, Capture
from .errors import CaptureError, InputError, PackageError, say, short
from .http import DEFAULT_MAX_ROWS, serve
from .model import PackagedModel
from .trust import own_process

#: Environment variable holding the bearer token of `serve` (safer than --token, which `ps` shows).
TOKEN_ENV = "NBOPS_SERVE_TOKEN"


def predict_csv(model: PackagedModel, source: str | os.PathLike[str] | Any, output: str | os.PathLike[str] | Any | None = None) -> Any:
    """Score a CSV: its rows (validated like an HTTP request) plus a `prediction` column (the
    decision at the package's threshold when it has one, as the server answers) and, for
    classifiers, one `probability_<class>` column per class. Writes CSV to `output` (a path or a
    file object; stdout when None) and returns the scored DataFrame."""
    import pandas as pd

    text_columns = {spec.name: str for spec in model.signature.specs if spec.kind in ("str", "other")}
    try:
        # Only empty cells are nulls: "NA" may be a category (North America), not a missing value.
        data = pd.read_csv(source, dtype=text_columns, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise InputError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{source}: cannot read it as CSV ({short(exc, 160)})") from None
    try:
        frame = model.frame(data)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    predictions, probabilities = model.answer(frame)  # with a threshold, the prediction is the decision
    scored = frame.copy()
    scored["prediction"] = predictions
    if probabilities is not None:
        classes = model.classes or list(range(probabilities.shape[1]))
        for i, label in enumerate(classes):
            scored[f"probability_{label}"] = probabilities[:, i]
    scored.to_csv(sys.stdout if output is None else output, index=False)
    return scored


def main(argv: Sequence[str] | None = None, package_dir: str | os.PathLike[str] | None = None) -> int:
    """`python -m <package> predict INPUT.csv [-o OUT.csv]` and `python -m <package> serve`.
    Errors are one line on stderr and exit status 1."""
    own_process()  # always its own process (`python -m <package>`): no user code shares it
    # Without package_dir: the package this runtime was copied into (<package>/_runtime/cli.py).
    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(
        prog=f"python -m {folder.name if package_dir is not None else __package__}",
        description="Score a CSV with the packaged model, or serve it over HTTP.",
    )
    if package_dir is None:
        parser.add_argument("--package", metavar="DIR", help="the package folder (holding manifest.json)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{predict,serve}")
    predict = commands.add_parser("predict", help="score a CSV file; writes CSV with prediction columns")
    predict.add_argument("input", metavar="INPUT.csv", help="CSV with the model's input columns ('-' for stdin)")
    predict.add_argument("-o", "--output", metavar="OUT.csv", help="where to write the scored CSV (default: stdout)")
    server = commands.add_parser("serve", help="serve POST /predict, GET /health, GET /metadata")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    server.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    server.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' (better: set {TOKEN_ENV})")
    server.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="largest batch accepted (default: %(default)s)")
    server.add_argument("--access-log", action="store_true", help="log every request")
    add_capture_arguments(server)
    args = parser.parse_args(argv)
    if getattr(args, "package", None):
        folder = Path(args.package)
    try:
        if args.command == "predict":
            model = PackagedModel.load(folder)
            source = sys.stdin if args.input == "-" else args.input
            predict_csv(model, source, args.output)
            if args.output:
                say(f"{model.name} {model.version}: scored {args.input} → {args.output}")
            return 0
        token = args.token or os.environ.get(TOKEN_ENV) or None
        if args.max_rows < 1:
            raise InputError("--max-rows must be at least 1")
        capture = open_capture(args)  # before loading the model: a bad --capture fails fast
        try:
            model = PackagedModel.load(folder)
        except BaseException:
            if capture is not None:
                capture.close(quiet=True)
            raise
        serve(model, host=args.host, port=args.port, token=token, max_rows=args.max_rows,
              access_log=args.access_log, capture=capture)
        return 0
    except (PackageError, InputError, CaptureError) as exc:
        say(f"error: {exc}")
        return 1
    except OSError as exc:  # a port in use, an unwritable output file...
        say(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
        return 1
    except KeyboardInterrupt:
        return 130


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """--capture, --sample, --capture-buffer and --capture-flush, shared with `nbops serve`."""
    parser.add_argument("--capture", metavar="DIR", help=(
        "record sampled scored requests (inputs, predictions, request id) as JSON lines under DIR, "
        "a folder or an fsspec URL; off unless given, as inputs may be sensitive"))
    parser.add_argument("--sample", type=float, metavar="RATE",
                        help="share of scored requests captured, above 0 and at most 1 (default with --capture: 1)")
    parser.add_argument("--capture-buffer", type=int, default=DEFAULT_BUFFER_RECORDS, metavar="N",
                        help="requests waiting to be written at most; beyond, they are dropped and counted (default: %(default)s)")
    parser.add_argument("--capture-flush", type=float, metavar="SECONDS",
                        help="how often buffered requests are written (default: 1 s to a folder, 10 s to a URL: a part each time)")


def open_capture(args: argparse.Namespace) -> Capture | None:
    """The Capture the serve options ask for (None without --capture); CaptureError for bad ones."""
    check_capture_arguments(args)
    if not args.capture:
        return None
    return Capture.open(args.capture, sample=1.0 if args.sample is None else args.sample,
                        buffer_records=args.capture_buffer, flush_seconds=args.capture_flush)


def check_capture_arguments(args: argparse.Namespace) -> None:
    if args.sample is not None and not args.capture:
        raise CaptureError("--sample needs --capture DIR (where to write the captured requests)")
    if args.sample is not None and not 0 < args.sample <= 1:
        raise CaptureError(f"--sample {args.sample:g}: the share of requests captured must be above 0 and at most 1")
    if args.capture_buffer < 1:
        raise CaptureError("--capture-buffer must be at least 1")
    if args.capture_flush is not None and not args.capture_flush > 0:
        raise CaptureError(f"--capture-flush {args.capture_flush:g}: give a number of seconds above 0")
