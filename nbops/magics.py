"""IPython extension: `%load_ext nbops`, then `%nbops promote NAME [--to production] ...`.

The magic parses its line with the `nbops` command's own parser and makes the same library
call; the result is returned, so JupyterLab shows it (a promotion shows its HTML card).
"""

from __future__ import annotations

import shlex
from typing import Any


def nbops_magic(line: str) -> Any:
    from IPython.core.error import UsageError

    from .cli import build_parser
    from .core.exceptions import NbopsError

    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(line))
    except SystemExit:  # argparse printed the usage or --help
        return None
    call = getattr(args, "call", None)
    try:
        if call is not None:
            return call(args)
        args.handler(args)
        return None
    except NbopsError as exc:
        raise UsageError(f"nbops: {exc}") from None


def register(ipython: Any) -> None:
    ipython.register_magic_function(nbops_magic, magic_kind="line", magic_name="nbops")
