"""Start-up tweaks for nbops' own processes (stdlib only; imports nothing of nbops, so the CLI,
the git filter and the card renderer can all use it without importing one another)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, NoReturn

#: Optional extras that papermill and jupytext import when installed and that nbops' own processes
#: never use: papermill's remote notebook stores (nbops hands it local files; boto3 and pyarrow.fs
#: alone cost ~0.4 s of CPU), jupytext's Jupyter-server contents managers (nbops only reads text
#: notebooks; they import jupyter_server) and jsonschema's format checkers (nbformat's schema
#: uses no `format`). Hidden, they cost nothing: ~0.7 s of CPU less at every `nbops run`.
UNUSED_EXTRAS = (
    "papermill.s3", "papermill.adl", "papermill.abs", "gcsfs", "pyarrow.fs", "github",
    "jupytext.sync_contentsmanager", "jupytext.async_contentsmanager",
    "fqdn", "isoduration", "webcolors", "uri_template", "rfc3339_validator", "rfc3986_validator",
)
_own_process = False


def skip_slow_optional_imports() -> None:
    """Keep rfc3987-syntax from loading in this process, and let `without_unused_extras` work.

    JupyterLab installs jsonschema's format extra, whose rfc3987-syntax compiles its grammars
    on every `import jsonschema` (about 1.1 s), a cost nbformat — and so papermill — pays on
    each stage. nbformat's schema uses no IRI formats, so jsonschema loses nothing we use.
    Done only in nbops' own processes, never inside a user's kernel or program.
    """
    global _own_process
    _own_process = True
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


@contextlib.contextmanager
def without_unused_extras() -> Iterator[None]:
    """Import papermill or jupytext inside this block: they then see UNUSED_EXTRAS as not
    installed. Only in nbops' own processes (after `skip_slow_optional_imports`); a no-op in a
    user's kernel or program. Hidden only during the block, so the rest of the process still
    imports them (pyarrow.parquet needs pyarrow.fs)."""
    hidden = [name for name in UNUSED_EXTRAS if name not in sys.modules] if _own_process else []
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def yield_cpu() -> None:
    """Lower this helper's scheduling priority: a promotion's card and DVC status are not on its
    critical path, the parity check is; on a small machine they would otherwise take its core."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # no nice() (Windows), or not allowed: the usual priority
        pass


def exit_now(code: int = 0) -> NoReturn:
    """End a helper process whose whole answer is already written (the parity check, DVC's
    status, the card), skipping the interpreter's teardown: freeing every module and object
    costs 0.2–1 s after scikit-learn or DVC is imported, time a promotion would wait for."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
