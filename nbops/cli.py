"""The `nbops` command. Each subcommand lives in nbops/commands/<name>.py: it parses its
arguments, makes one library call and prints the result. Only `main` turns errors into exit
codes; known errors (NbopsError) print one line without a traceback (NBOPS_DEBUG=1 shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from typing import Sequence

from . import __version__
from .core._startup import skip_slow_optional_imports

#: Subcommands listed first by `nbops --help`; any other module in nbops/commands follows.
FIRST = ("init", "stage", "run", "check", "report", "promote", "models", "serve", "predict", "monitor")


def command_names() -> list[str]:
    import pkgutil

    from . import commands

    found = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return [n for n in FIRST if n in found] + [n for n in found if n not in FIRST]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of `only` (what `main` runs: importing every command's
    module, such as `serve`'s model runtime, would cost `nbops run` ~0.25 s of CPU per stage)."""
    parser = argparse.ArgumentParser(
        prog="nbops",
        description="Jupyter notebooks as reproducible DVC pipeline stages and promotable model packages.",
    )
    parser.add_argument("--version", action="version", version=f"nbops {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in command_names():
        if only is not None and name != only:
            continue
        importlib.import_module(f"nbops.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .core.exceptions import NbopsError

    skip_slow_optional_imports()
    argv = list(sys.argv[1:] if argv is None else argv)
    named = argv[0] if argv and argv[0] in command_names() else None
    args = build_parser(named).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except NbopsError as exc:
        if os.environ.get("NBOPS_DEBUG"):
            raise
        print(f"nbops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nbops: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`nbops predict ... | head`): stop quietly, as a
        # shell tool killed by SIGPIPE does, and keep Python from failing to flush stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        if os.environ.get("NBOPS_DEBUG"):
            raise
        # A file or socket error no command foresaw: still one line, naming what it concerns.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nbops: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
