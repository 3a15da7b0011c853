import pytest

from nbops.exceptions import NotebookError, ParamsError
from nbops.params import (
    UNKNOWN, check_values, find_parameters_cell, fits, parse_parameters, parse_value, parse_yaml,
    require_parameters_cell,
)


def test_parameters_cell_literals_annotations_and_expressions():
    source = "%matplotlib inline\nn: int = 3\nrate = 0.5\nname = 'x'\nflags = [1, 2]\npath = Path('data')\nx = y = 1\n"
    found = parse_parameters(source, "nb")
    assert {k: p.default for k, p in found.items()} == {
        "n": 3, "rate": 0.5, "name": "x", "flags": [1, 2], "path": UNKNOWN, "x": 1, "y": 1,
    }
    assert found["path"].source == "Path('data')"


def test_parameters_cell_syntax_error_names_the_cell():
    with pytest.raises(NotebookError, match=r"nb \(cell 0\).*not valid Python"):
        parse_parameters("x = = 1", "nb (cell 0)")


@pytest.mark.parametrize(
    "default, value, ok",
    [
        (1, 2, True), (1, 2.5, False), (1, True, False), (0.5, 2, True), (0.5, "x", False),
        (False, True, True), (False, "false", False), (False, 0, False), ("s", "t", True), ("s", 1, False),
        ([1], [2, 3], True), ([1], 3, False), ({"a": 1}, {"b": 2}, True), ({"a": 1}, [1], False),
        (None, "anything", True), (UNKNOWN, 3, True), (5, None, True),
    ],
)
def test_fits(default, value, ok):
    assert fits(default, value) is ok


def test_yaml_keeps_dates_as_written_and_types_scalars():
    data = parse_yaml("s:\n  day: 2024-01-01\n  on: true\n  n: 3\n  r: 0.5\n  e: ''\n", "params.yaml")
    assert data == {"s": {"day": "2024-01-01", "on": True, "n": 3, "r": 0.5, "e": ""}}


def test_yaml_error_names_file_line_and_column():
    with pytest.raises(ParamsError, match=r"^params.yaml:3:5: "):
        parse_yaml("train:\n  a: 1\n   b: 2\n", "params.yaml")


def test_yaml_duplicate_keys_are_an_error():
    with pytest.raises(ParamsError, match=r"params.yaml:3:3: duplicate key 'a'"):
        parse_yaml("train:\n  a: 1\n  a: 2\n", "params.yaml")


def test_top_level_must_be_a_mapping():
    with pytest.raises(ParamsError, match="expected a mapping"):
        parse_yaml("- 1\n- 2\n", "params.yaml")


def test_unknown_names_list_what_the_notebook_accepts_and_suggest():
    params = parse_parameters("n_estimators = 100\nseed = 0\n", "nb")
    with pytest.raises(ParamsError) as info:
        check_values({"n_estimator": 5}, params, notebook="nb.ipynb", origin="params.yaml section 'train'")
    message = str(info.value)
    assert "n_estimator (did you mean n_estimators?)" in message
    assert "it accepts: n_estimators, seed" in message


def test_type_mismatch_names_the_parameter_and_the_default():
    params = parse_parameters("rate = 0.5\n", "nb")
    with pytest.raises(ParamsError, match=r"parameter 'rate' is 'fast' \(str\) but nb.ipynb expects float \(its default is 0.5\)"):
        check_values({"rate": "fast"}, params, notebook="nb.ipynb", origin="-p")


def test_parse_value_types_cli_values_like_yaml():
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("x y") == "x y"
    assert parse_value("2024-01-01") == "2024-01-01"


def test_missing_parameters_cell_says_how_to_tag_one():
    nb = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}}]}
    assert find_parameters_cell(nb, "nb.ipynb") is None
    with pytest.raises(NotebookError, match="property inspector"):
        require_parameters_cell(nb, "nb.ipynb")


def test_yaml_12_scalars_match_dvc():
    # DVC reads params.yaml as YAML 1.2 (ruamel): `yes` is a string and `1e-3` a float there too
    assert parse_yaml("s:\n  a: yes\n  b: 1e-3\n  c: 0755\n", "p") == {"s": {"a": "yes", "b": 0.001, "c": 755}}
