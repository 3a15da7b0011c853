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


#: The test files that take longest (`--durations`, on 2 cores), longest first. With one worker
#: per core (pytest-xdist, each file on one worker, `--no-loadscope-reorder`), the files start in
#: this order and the many short files fill the gaps, so the workers finish close together.
LONGEST_FIRST = (
    "e2e/test_promote.py", "e2e/test_pipeline.py", "e2e/test_ci_workflow.py", "e2e/test_retrain.py",
    "e2e/test_loop_story.py", "e2e/test_clones.py", "e2e/test_ingestion.py", "e2e/test_fraud_story.py",
    "e2e/test_init.py", "e2e/test_s3.py", "e2e/test_fraud_example.py", "e2e/test_jupyterlab.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    tests = Path(__file__).resolve().parent

    def key(item: pytest.Item) -> int:
        try:
            return rank.get(Path(str(item.path)).relative_to(tests).as_posix(), len(rank))
        except ValueError:
            return len(rank)

    items.sort(key=key)  # stable: the order within a file, and of the other files, is kept
