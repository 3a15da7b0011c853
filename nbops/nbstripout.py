"""`python -m nbops.nbstripout`: nbstripout, started five times faster — the git filter that
`nbops init` sets up runs this on every `git status`, `git diff` or `git add` touching a notebook.

nbstripout imports nbformat, whose jsonschema, with the format extra JupyterLab installs,
compiles the rfc3987-syntax grammars on import (about 2 s here, against 0.5 s for the whole
filter without it). nbformat's schema uses no IRI formats, so nothing is lost (the same trick as
`_startup.skip_slow_optional_imports`). Arguments are nbstripout's.
"""

from __future__ import annotations


def main() -> None:
    from ._startup import skip_slow_optional_imports

    skip_slow_optional_imports()
    from nbstripout._nbstripout import main as nbstripout_main

    nbstripout_main()


if __name__ == "__main__":
    main()
