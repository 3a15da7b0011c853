import json
from pathlib import Path

import pytest

from nbops.core.exceptions import NotebookError, ParamsError
from nbops.core.params import (
    EMPTY,
    UNKNOWN,
    check_values,
    empty_values,
    find_parameters_cell,
    fits,
    load_yaml,
    parse_overrides,
    parse_parameters,
    parse_value,
    parse_yaml,
    read_notebook_json,
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
    with pytest.raises(NotebookError, match=r"nb \(cell 1\).*not valid Python"):
        parse_parameters("x = = 1", "nb (cell 1)")


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


# --- bad inputs: each gets one line naming the file, the parameter or the cell -----------------


def test_yaml_merge_keys_are_read_as_dvc_reads_them():
    text = "base: &base\n  seed: 0\n  n: 3\ntrain:\n  <<: *base\n  n: 5\n"
    assert parse_yaml(text, "params.yaml")["train"] == {"seed": 0, "n": 5}  # an own key overrides a merged one
    with pytest.raises(ParamsError, match=r"params.yaml:7:3: duplicate key 'n'"):
        parse_yaml(text + "  n: 6\n", "params.yaml")


def test_empty_values_are_found_and_refused_where_the_default_is_a_value():
    text = "train:\n  n:\n  m: null\n  s: ''\n  opt:\n"
    assert empty_values(text) == {("train", "n"), ("train", "opt")}
    params = parse_parameters("n = 3\nm = 4\ns = 'x'\nopt = None\n", "nb")
    values = parse_yaml(text, "params.yaml")["train"]
    with pytest.raises(ParamsError) as info:
        check_values(values, params, notebook="nb.ipynb", origin="params.yaml section 'train'", empty=["n", "opt"])
    assert str(info.value) == (
        "params.yaml section 'train': parameter 'n' has no value but nb.ipynb expects int (its default is 3); "
        "write the value, or `null` if you mean None"
    )  # `m: null` is an explicit None, `opt:` has a None default: both accepted
    with pytest.raises(ParamsError, match=r"^-p: parameter 'n' has no value"):
        check_values(parse_overrides(["n="]), params, notebook="nb.ipynb", origin="-p")
    assert parse_overrides(["n=null", "s="]) == {"n": None, "s": EMPTY}


def test_unknown_keys_mixing_ints_and_strings_are_listed():
    params = parse_parameters("n = 3\n", "nb")
    with pytest.raises(ParamsError, match=r"sets 1, b, which nb.ipynb does not define"):
        check_values({1: 2, "b": 3}, params, notebook="nb.ipynb", origin="params.yaml section 'train'")


def test_tuple_assignments_define_each_name():
    found = parse_parameters("a, b = 1, 2\n(c, d) = [0.5, 'x']\ne, f = make()\n", "nb")
    assert {k: p.default for k, p in found.items()} == {"a": 1, "b": 2, "c": 0.5, "d": "x", "e": UNKNOWN, "f": UNKNOWN}
    assert found["b"].source == "2"


def _nb(*cells: dict) -> dict:
    return {"cells": list(cells), "nbformat": 4, "nbformat_minor": 5, "metadata": {}}


def _code(source: str, tags=()) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}, "outputs": [], "execution_count": None}


def test_a_second_parameters_cell_is_an_error_naming_both_cells():
    nb = _nb(_code("import x"), _code("n = 5", ["parameters"]), _code("print(n)"), _code("n = 10\nonly_here = 1", ["parameters"]))
    with pytest.raises(NotebookError) as info:
        find_parameters_cell(nb, "nb.ipynb")
    assert str(info.value) == (
        "nb.ipynb: cells 2 and 4 are all tagged `parameters`, but params.yaml's values are injected after cell 2 only, "
        "so cell 4 would override them; move its assignments into cell 2 and remove its `parameters` tag"
    )


def test_parameters_cell_errors_count_cells_from_1():
    nb = _nb(_code("import x"), _code("x = = 1", ["parameters"]))
    with pytest.raises(NotebookError, match=r"^nb.ipynb \(cell 2\): the parameters cell is not valid Python"):
        find_parameters_cell(nb, "nb.ipynb")


@pytest.mark.parametrize("content, message", [
    ({"nbformat": 3, "nbformat_minor": 0, "worksheets": [{"cells": []}], "metadata": {}},
     "nb.ipynb: an nbformat 3 notebook, which nbops does not run; convert it to nbformat 4 with "
     "`jupyter nbconvert --to notebook --nbformat 4 --inplace nb.ipynb` (or open and save it in JupyterLab)"),
    (_nb(_code("n = 1", ["parameters"]), {"cell_type": "code", "metadata": {}, "outputs": []}),
     'nb.ipynb: cell 2 has no `source` (every cell needs one, even empty); add "source": "" to it'),
    (_nb({"source": "x"}), "nb.ipynb: cell 1 is not a notebook cell (no `cell_type`); fix or delete it"),
])
def test_malformed_notebooks_are_named(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    Path("nb.ipynb").write_text(json.dumps(content))
    with pytest.raises(NotebookError) as info:
        read_notebook_json("nb.ipynb")
    assert str(info.value) == message


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"train:\n  n: \xff\n"), "params.yaml:2: not UTF-8 text (byte 0xff); save the file as UTF-8"),
    (lambda p: p.mkdir(), "params.yaml: is a folder, not a file; it must be a YAML file (remove or rename the folder)"),
])
def test_unreadable_params_yaml_is_named(tmp_path, make, message):
    make(tmp_path / "params.yaml")
    with pytest.raises(ParamsError) as info:
        load_yaml(tmp_path / "params.yaml", shown="params.yaml")
    assert str(info.value) == message
