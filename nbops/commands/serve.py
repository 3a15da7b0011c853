"""`nbops serve NAME[@VERSION|@STAGE]`: serve a registered package over HTTP."""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a registered model over HTTP (POST /predict, GET /health, GET /metadata)"
    )
    parser.add_argument("ref", metavar="NAME[@VERSION|@STAGE]")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", default=os.environ.get("NBOPS_SERVE_TOKEN"),
                        help="require `Authorization: Bearer TOKEN` (default: $NBOPS_SERVE_TOKEN)")
    parser.add_argument("--registry", help="registry root (path or fsspec URL)")
    from ..runtime.cli import add_capture_arguments

    add_capture_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..exceptions import ServeError
    from ..runtime import CaptureError
    from ..runtime.cli import check_capture_arguments
    from ..serving import serve

    try:
        check_capture_arguments(args)
    except CaptureError as exc:
        raise ServeError(str(exc)) from None
    serve(args.ref, host=args.host, port=args.port, token=args.token, registry=args.registry,
          capture=args.capture, sample=1.0 if args.sample is None else args.sample,
          capture_buffer=args.capture_buffer, capture_flush=args.capture_flush)
    return 0
