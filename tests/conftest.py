from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nbops.testing import command_env

REPO = Path(__file__).resolve().parents[1]
TEST_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def real_data_csv() -> Path | None:
    """The real AI4I 2020 data beside the repository (../shared/data), if present."""
    candidates = [os.environ.get("NBOPS_AI4I_CSV"), REPO.parent / "shared" / "data" / "ai4i2020.csv"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return command_env(tmp_path)


@pytest.fixture
def nb_project(tmp_path: Path) -> Path:
    """A project folder holding the behaviour-named test notebooks and an empty params.yaml."""
    project = tmp_path / "project"
    shutil.copytree(TEST_NOTEBOOKS, project / "notebooks")
    (project / "params.yaml").write_text("", encoding="utf-8")
    return project
