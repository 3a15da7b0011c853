"""Start-up tweaks for nbops' own processes (stdlib only; imports nothing of nbops, so the CLI,
the git filter and the card renderer can all use it without importing one another)."""

from __future__ import annotations

import sys


def skip_slow_optional_imports() -> None:
    """Keep rfc3987-syntax from loading in this process.

    JupyterLab installs jsonschema's format extra, whose rfc3987-syntax compiles its grammars
    on every `import jsonschema` (about 1.1 s), a cost nbformat — and so papermill — pays on
    each stage. nbformat's schema uses no IRI formats, so jsonschema loses nothing we use.
    Done only in nbops' own processes, never inside a user's kernel or program.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
