"""nbops: Jupyter notebooks as reproducible DVC pipeline stages and promotable model packages.

In a notebook::

    import nbops
    nbops.log_metric("roc_auc", 0.97)
    nbops.save_model(model, "failure-predictor", sample_input=X_test[:20])

`import nbops` is cheap: every name below is imported on first use. Inside a Jupyter kernel
it also makes the project root (the nearest folder above the notebook holding dvc.yaml or
params.yaml) the working directory, as `nbops run` does, so relative paths in a notebook mean
the same interactively, under nbval and in the pipeline (set NBOPS_NO_CHDIR=1 to opt out).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "log_metric": "nbops.pipeline.record",
    "log_metrics": "nbops.pipeline.record",
    "log_plot": "nbops.pipeline.record",
    "log_pr_curve": "nbops.pipeline.record",
    "log_roc_curve": "nbops.pipeline.record",
    "log_confusion_matrix": "nbops.pipeline.record",
    "log_checks": "nbops.pipeline.record",
    "save_model": "nbops.pipeline.record",
    "load_model": "nbops.pipeline.record",
    "compare_champion": "nbops.pipeline.record",
    "output_path": "nbops.pipeline.record",
    "input_path": "nbops.pipeline.record",
    "read_records": "nbops.pipeline.record",
    "current_stage": "nbops.pipeline.record",
    "run_notebook": "nbops.pipeline.execute",
    "promote": "nbops.promotion.promote",
    "PromotionResult": "nbops.promotion.promote",
    "monitor": "nbops.monitoring",
    "MonitorResult": "nbops.monitoring",
    "RunResult": "nbops.pipeline.execute",
    "NbopsError": "nbops.core.exceptions",
    "ChecksFailed": "nbops.core.exceptions",
    "choose_threshold": "nbops.models.decisions",
    "cost_curve": "nbops.models.decisions",
    "precision_at_k": "nbops.models.decisions",
}

__all__ = sorted([*_LAZY, "__version__", "load_ipython_extension"])


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'nbops' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbops` registers the `%nbops` line magic."""
    from .magics import register

    register(ipython)


def _enter_project_root() -> None:
    if "ipykernel" not in sys.modules or os.environ.get("NBOPS_ROOT") or os.environ.get("NBOPS_NO_CHDIR"):
        return
    from .core.project import find_root

    root = find_root()
    if root is not None and str(root) != os.getcwd():
        os.chdir(root)


_enter_project_root()
