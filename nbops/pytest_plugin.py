"""pytest plugin: stage notebooks under nbval run as their pipeline stage would.

* It tells the kernels nbval starts which notebook they run. JupyterLab tells a kernel its
  notebook (JPY_SESSION_NAME), which is how the recording API names the stage of an interactive
  run; nbval does not, so without this a notebook validated with `pytest --nbval-lax` would
  record under the stage name "notebook".
* It injects the stage's params.yaml values right after the notebook's `parameters` cell, as
  `nbops run` does (papermill's translation, checked against the cell the same way), so what CI
  tests is what the pipeline runs, not the cell's defaults. A notebook that no `nbops run` stage
  of dvc.yaml runs keeps its defaults. What the notebook records goes to the scratch folder, as
  for any exploratory run: only `nbops run` writes a stage's outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

PARAMETERS_TAG = "parameters"
_ERROR_KEY = "nbops_params_error"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    path = str(getattr(item, "path", ""))
    if path.endswith(".ipynb"):  # runs before nbval's file-level setup starts the kernel
        os.environ["JPY_SESSION_NAME"] = path
    error = getattr(item, _ERROR_KEY, None)
    if error:
        pytest.fail(error, pytrace=False)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Append the stage's values to the source nbval runs for each `parameters` cell."""
    for item in items:
        cell = getattr(item, "cell", None)
        path = getattr(item, "path", None)
        if cell is None or path is None or Path(path).suffix != ".ipynb":
            continue
        if PARAMETERS_TAG not in ((cell.get("metadata") or {}).get("tags") or []):
            continue
        try:
            injected = stage_parameters_source(Path(path))
        except Exception as exc:  # noqa: BLE001 - shown as the cell's failure, naming file and value
            setattr(item, _ERROR_KEY, f"{path}: {exc}")
            continue
        if injected:
            cell.source = f"{cell.source.rstrip()}\n\n{injected}"


def stage_parameters_source(notebook: Path) -> str | None:
    """The assignments `nbops run` would inject into `notebook` (an .ipynb, or the .ipynb paired
    with the script a stage runs), as Python source; None when no stage runs it."""
    from .pipeline import execute
    from .core import dvc, project

    root = project.find_root(notebook)
    if root is None or not (root / project.DVC_FILE).exists():
        return None
    try:
        relative = notebook.resolve().relative_to(root.resolve()).with_suffix("")
    except ValueError:
        return None
    sections = [
        stage.stage_name for stage in dvc.load_stages(root).values()
        if stage.notebook and Path(stage.notebook).with_suffix("") == relative
    ]
    if not sections:
        return None
    section = relative.name if relative.name in sections else sections[0]
    values = execute.resolve_parameters(notebook.resolve(), section, root, {}, shown=relative.with_suffix(".ipynb").as_posix())
    if not values:
        return None
    from papermill.translators import translate_parameters

    from .core.params import load_notebook

    kernelspec = (load_notebook(notebook).get("metadata") or {}).get("kernelspec") or {}
    comment = f"Parameters of stage '{section}' from params.yaml, injected by nbops as `nbops run` does"
    return translate_parameters(
        kernelspec.get("name") or "python3", kernelspec.get("language") or "python", values, comment
    ).strip()
