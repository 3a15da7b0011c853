"""A run's limits: params.yaml's `nbops:` section and the command line (no kernel here; the
real-kernel tests are in tests/func/test_run_errors.py)."""

from __future__ import annotations

import pytest

from nbops.pipeline.supervise import (
    DEFAULT_START_TIMEOUT,
    SettingsError,
    parse_duration,
    read_limits,
    settings_problems,
)


@pytest.mark.parametrize("value, seconds", [(90, 90.0), (2.5, 2.5), ("90", 90.0), ("90s", 90.0), ("15m", 900.0),
                                            ("2h", 7200.0), (None, None), ("none", None)])
def test_durations(value, seconds):
    assert parse_duration(value, "x") == seconds


@pytest.mark.parametrize("value", [0, -1, True, "soon", "5 minutes", [1]])
def test_bad_durations_name_where(value):
    with pytest.raises(SettingsError, match=r"^params.yaml: nbops.timeout is .*; write a positive number of seconds"):
        parse_duration(value, "params.yaml: nbops.timeout")


PARAMS = {"nbops": {"timeout": "1h", "start_timeout": 90, "stages": {"train": {"timeout": "2h"}, "open": {"timeout": None}}}}


def test_the_command_line_then_the_stage_then_the_section():
    assert read_limits(PARAMS, "train", timeout="30s").timeout == 30
    train = read_limits(PARAMS, "train")
    assert (train.timeout, train.timeout_origin) == (7200, "params.yaml: nbops.stages.train.timeout")
    other = read_limits(PARAMS, "evaluate")
    assert (other.timeout, other.start_timeout, other.timeout_origin) == (3600, 90, "params.yaml: nbops.timeout")
    assert read_limits(PARAMS, "open").timeout is None  # a stage's own null lifts the section's limit
    bare = read_limits({}, "train")
    assert (bare.timeout, bare.start_timeout) == (None, DEFAULT_START_TIMEOUT)


def test_every_problem_of_the_section_is_found():
    problems = settings_problems({"nbops": {"timout": 1, "stages": {"train": {"timeout": "x"}, "bad": 3}}})
    assert [path for path, _ in problems] == [("nbops", "timout"), ("nbops", "stages", "train", "timeout"), ("nbops", "stages", "bad")]
    with pytest.raises(SettingsError, match="nbops.timout is not an nbops setting"):
        read_limits({"nbops": {"timout": 1}}, "train")
