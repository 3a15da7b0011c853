"""Fixtures shared by the unit tests."""

import pytest

from nbops.pipeline import record


@pytest.fixture
def stage_root(tmp_path, monkeypatch):
    monkeypatch.setenv(record.ENV_ROOT, str(tmp_path))
    monkeypatch.setenv(record.ENV_STAGE, "unit")
    monkeypatch.delenv(record.ENV_JOURNAL, raising=False)
    record._metrics.clear()
    yield tmp_path
    record._metrics.clear()
