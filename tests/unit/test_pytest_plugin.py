"""nbops' pytest plugin under nbval: a stage notebook gets its stage's params.yaml values, as
`nbops run` injects them (the source appended to its `parameters` cell); other notebooks keep
their defaults."""

from __future__ import annotations

import pytest

from nbops.core.exceptions import ParamsError
from nbops.pytest_plugin import stage_parameters_source
from nbops.testing import write_notebook


@pytest.fixture
def project(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  n: 5\n  name: fast\nscore:\n  n: 7\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  train:\n    cmd: nbops run notebooks/train.py\n    deps: [notebooks/train.py]\n"
        "  scoring:\n    cmd: nbops run notebooks/shared.ipynb --stage score\n    deps: [notebooks/shared.ipynb]\n"
    )
    for name in ("train", "shared", "scratchpad"):
        write_notebook(tmp_path / f"notebooks/{name}.ipynb", ["n = 1\nname = 'slow'"], body=["print(n, name)"])
    return tmp_path


def test_a_stage_notebook_gets_its_sections_values_as_nbops_run_injects_them(project):
    source = stage_parameters_source(project / "notebooks/train.ipynb")  # the stage runs its paired .py
    assert "n = 5" in source.splitlines() and 'name = "fast"' in source.splitlines()
    assert source.startswith("# Parameters of stage 'train' from params.yaml")
    # a stage with --stage takes that section; a notebook no stage runs keeps its defaults
    assert "n = 7" in stage_parameters_source(project / "notebooks/shared.ipynb").splitlines()
    assert stage_parameters_source(project / "notebooks/scratchpad.ipynb") is None


def test_values_the_notebook_refuses_are_the_same_error_as_under_nbops_run(project):
    (project / "params.yaml").write_text("train:\n  n: many\n")
    with pytest.raises(ParamsError, match="n"):
        stage_parameters_source(project / "notebooks/train.ipynb")
