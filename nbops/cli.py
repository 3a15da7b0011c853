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

#: Subcommands listed first by `nbops --help`; any other module in nbops/commands follows.
FIRST = ("init", "stage", "run", "check", "report", "promote", "models", "serve", "predict")


def command_names() -> list[str]:
    import pkgutil

    from . import commands

    found = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return [n for n in FIRST if n in found] + [n for n in found if n not in FIRST]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbops",
        description="Jupyter notebooks as reproducible DVC pipeline stages and promotable model packages.",
    )
    parser.add_argument("--version", action="version", version=f"nbops {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in command_names():
        importlib.import_module(f"nbops.commands.{name}").add_parser(subparsers)
    return parser


def skip_slow_optional_imports() -> None:
    """Keep rfc3987-syntax from loading in this process.

    JupyterLab installs jsonschema's format extra, whose rfc3987-syntax compiles its grammars
    on every `import jsonschema` (about 1.1 s), a cost nbformat — and so papermill — pays on
    each stage. nbformat's schema uses no IRI formats, so jsonschema loses nothing we use.
    Done only in the CLI process, never inside a user's kernel or program.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    from .exceptions import NbopsError

    skip_slow_optional_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
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
