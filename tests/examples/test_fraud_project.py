"""The fraud example as a project: stages exactly as `nbops stage add` writes them, notebooks
without outputs and paired with their scripts, parameters that fit the notebooks."""

from __future__ import annotations

import json

from nbops.authoring.check import check_project
from nbops.core.params import load_yaml
from nbops.pipeline.stages import add_stage
from nbops.testing import copy_project

from .conftest import FRAUD_EXAMPLE

STAGES = ("generate", "validate", "featurize", "train", "evaluate")


def test_stages_are_exactly_what_stage_add_writes(tmp_path):
    project = copy_project(FRAUD_EXAMPLE, tmp_path / "fraud", files=("notebooks", "params.yaml", "dvc.yaml", "jupytext.toml", "fraudkit"))
    original = load_yaml(project / "dvc.yaml")["stages"]
    (project / "dvc.yaml").write_text("stages:\n")
    given = {
        "generate": (["fraudkit/simulate.py"], ["data/raw"]),
        "validate": (["fraudkit/checks.py", "data/raw"], ["data/validated"]),
        "featurize": (["fraudkit/features.py", "data/validated"], ["data/features"]),
        "train": (["fraudkit/features.py", "data/features/train.parquet"], []),
        "evaluate": (["fraudkit/features.py", "fraudkit/protocol.py", "data/features/test.parquet", "data/features/all.parquet"], []),
    }
    for stage, (deps, outs) in given.items():
        add_stage(project / f"notebooks/{stage}.ipynb", deps=[str(project / d) for d in deps],
                  outs=[str(project / o) for o in outs], root=project)
    assert load_yaml(project / "dvc.yaml")["stages"] == original


def test_notebooks_carry_no_outputs_and_the_project_checks_clean():
    for stage in STAGES:
        notebook = json.loads((FRAUD_EXAMPLE / f"notebooks/{stage}.ipynb").read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, stage
    result = check_project(FRAUD_EXAMPLE)
    assert result.stages == list(STAGES) and result.findings == []
