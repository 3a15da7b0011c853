"""This project's tests. `pytest` runs them, and every notebook in notebooks/ through nbval."""

import json
from pathlib import Path

import pytest

from nbops.authoring.check import check_project

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_is_wired_to_the_notebooks():
    """What `nbops check` counts as errors: parameters DVC does not track, unknown parameters,
    a notebook without a `parameters` cell, notebooks committed with outputs..."""
    result = check_project(ROOT)
    assert not result.errors, "\n".join(str(finding) for finding in result.errors)


def test_classifier_beats_chance():
    metrics = ROOT / "metrics" / "train.json"
    if not metrics.exists():
        pytest.skip("no metrics yet: run `dvc repro`")
    assert json.loads(metrics.read_text())["roc_auc"] > 0.75
