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
    parser.add_argument("--no-follow", dest="follow", action="store_false",
                        help="serve the version NAME@STAGE names now, and keep it (default: follow the stage, switching as it moves)")
    parser.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                        help="how often a followed stage is read (default: %(default)s s)")
    parser.add_argument("--shadow", metavar="NAME@STAGE",
                        help="also score each request with this challenger, off the request path (e.g. NAME@staging)")
    parser.add_argument("--shadow-queue", type=int, default=1000, metavar="N",
                        help="requests waiting for the challenger at most; beyond, they are dropped and counted (default: %(default)s)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..core.exceptions import ServeError
    from ..runtime import CaptureError
    from ..runtime.cli import check_capture_arguments
    from ..serving.serve import serve

    try:
        check_capture_arguments(args)
    except CaptureError as exc:
        raise ServeError(str(exc)) from None
    serve(args.ref, host=args.host, port=args.port, token=args.token, registry=args.registry,
          capture=args.capture, sample=1.0 if args.sample is None else args.sample,
          capture_buffer=args.capture_buffer, capture_flush=args.capture_flush,
          follow=args.follow, poll=args.poll, shadow=args.shadow, shadow_queue=args.shadow_queue)
    return 0
