"""Where things live in an nbops project: the root and the per-stage file layout.

Stdlib only: the recording API imports this inside every notebook kernel.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Files that mark a project root, searched upwards from a notebook or the working directory.
ROOT_MARKERS = ("dvc.yaml", "params.yaml", ".dvc")

PARAMS_FILE = "params.yaml"
DVC_FILE = "dvc.yaml"
REPORTS_DIR = "reports"
METRICS_DIR = "metrics"
PLOTS_DIR = "plots"
MODELS_DIR = "models"
#: Where exploring (JupyterLab, nbval, a plain script) records: git and DVC ignore `.nbops/`,
#: and only `nbops run` writes a stage's real outputs.
SCRATCH_DIR = ".nbops/scratch"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole (fullmatch): `$` would accept "name\n"
#: Longer names would not fit a file name once suffixed (`.skops`, a wheel's `-0.1.0-py3-none-any.whl`).
MAX_NAME_LENGTH = 100


def find_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest directory at or above `start` (default: cwd) holding a root marker."""
    here = Path(start or os.getcwd()).resolve()
    if here.is_file():
        here = here.parent
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return None


def relpath(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """`path` relative to `root`, in POSIX form, both resolved; a path outside `root` as it is."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    resolved, base = Path(path).resolve(), Path(root).resolve()
    return resolved == base or base in resolved.parents


def is_valid_name(name: str) -> bool:
    """A stage, metric-file or model name usable as one path component (no separators, no `..`)."""
    return (
        isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None and ".." not in name
    )


def report_path(stage: str) -> str:
    return f"{REPORTS_DIR}/{stage}.ipynb"


def metrics_path(stage: str) -> str:
    return f"{METRICS_DIR}/{stage}.json"


def plot_path(stage: str, name: str) -> str:
    return f"{PLOTS_DIR}/{stage}/{name}.json"


def model_path(name: str) -> str:
    return f"{MODELS_DIR}/{name}.skops"


def model_manifest_path(name: str) -> str:
    return f"{MODELS_DIR}/{name}.json"


def model_profile_path(name: str) -> str:
    """The reference profile `save_model(..., reference=X_train)` records (nbops monitor reads it)."""
    return f"{MODELS_DIR}/{name}.profile.json"


def scratch_path(stage: str, relative: str = "") -> str:
    """Where an exploratory run of `stage` keeps `relative` (the path the pipeline would write)."""
    return f"{SCRATCH_DIR}/{stage}/{relative}".rstrip("/")
