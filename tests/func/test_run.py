"""`nbops run` with a real kernel: parameters, failures, reports (tests/notebooks/*.ipynb)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbops.testing import run


def nbops_run(project: Path, env, *args: str, check: bool = False):
    return run(["nbops", "run", "-q", *args], project, env, check=check)


def write_params(project: Path, text: str) -> None:
    (project / "params.yaml").write_text(text, encoding="utf-8")


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("nbops: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def output_text(report: Path, cell: int) -> str:
    nb = json.loads(report.read_text())
    texts = [out.get("text", "") for out in nb["cells"][cell]["outputs"]]
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


def test_params_yaml_values_are_injected_with_their_types(nb_project, env):
    write_params(nb_project, "typed_parameters:\n  an_int: 5\n  a_float: 2\n  a_bool: false\n"
                             "  a_date: 2024-05-01\n  a_list: [3, 4]\n  a_dict: {x: 1}\n  a_none: on\n")
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", check=True)
    assert result.stderr == ""
    printed = output_text(nb_project / "reports/typed_parameters.ipynb", 2).splitlines()
    assert json.loads(printed[0]) == {
        "a_bool": False, "a_date": "2024-05-01", "a_dict": {"x": 1}, "a_float": 2, "a_list": [3, 4],
        "a_none": "on", "a_str": "text", "an_int": 5,
    }
    assert printed[1] == "bool False str"  # a real False, not the truthy string 'false'


def test_cli_overrides_and_stage_sections(nb_project, env):
    write_params(nb_project, "fast:\n  an_int: 1\nslow:\n  an_int: 2\n")
    for stage in ("fast", "slow"):
        nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", "--stage", stage, "-p", "a_str=cli", check=True)
    assert '"an_int": 1' in output_text(nb_project / "reports/fast.ipynb", 2)
    assert '"an_int": 2' in output_text(nb_project / "reports/slow.ipynb", 2)
    assert '"a_str": "cli"' in output_text(nb_project / "reports/slow.ipynb", 2)


def test_unknown_parameter_is_an_error_listing_accepted_names(nb_project, env):
    write_params(nb_project, "typed_parameters:\n  an_itn: 5\n")
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb")
    assert_one_line_error(result, "params.yaml section 'typed_parameters'", "an_itn (did you mean an_int?)",
                          "it accepts: a_bool, a_date, a_dict, a_float, a_list, a_none, a_str, an_int")
    assert not (nb_project / "reports").exists()


def test_wrong_type_names_the_parameter(nb_project, env):
    write_params(nb_project, "typed_parameters:\n  a_float: fast\n")
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb")
    assert_one_line_error(result, "parameter 'a_float' is 'fast' (str)", "expects float")
    write_params(nb_project, "")
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", "-p", "an_int=[1]")
    assert_one_line_error(result, "-p: parameter 'an_int' is [1] (list)", "expects int")


def test_malformed_params_yaml_names_file_and_line(nb_project, env):
    write_params(nb_project, "typed_parameters:\n  an_int: 5\n   a_float: 1\n")
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb")
    assert_one_line_error(result, "params.yaml:3:")


def test_notebook_without_parameters_cell_says_how_to_tag(nb_project, env):
    result = nbops_run(nb_project, env, "notebooks/no_parameters.ipynb")
    assert_one_line_error(result, "notebooks/no_parameters.ipynb", "no cell is tagged `parameters`", "property inspector")


def test_missing_notebook(nb_project, env):
    assert_one_line_error(nbops_run(nb_project, env, "notebooks/nope.ipynb"), "notebooks/nope.ipynb: notebook not found")


def test_failing_cell_is_named_and_leaves_no_successful_looking_outputs(nb_project, env):
    (nb_project / "metrics").mkdir()
    (nb_project / "metrics/fails_in_fourth_cell.json").write_text('{"stale": 1}')  # from an earlier run
    result = nbops_run(nb_project, env, "notebooks/fails_in_fourth_cell.ipynb")
    assert_one_line_error(result, "notebooks/fails_in_fourth_cell.ipynb failed in cell 4", '`values = {"a": 1}`',
                          "KeyError: 'missing_key'", "partial report: reports/fails_in_fourth_cell.ipynb")
    report = json.loads((nb_project / "reports/fails_in_fourth_cell.ipynb").read_text())
    assert report["metadata"]["papermill"]["exception"] is True
    assert not (nb_project / "metrics/fails_in_fourth_cell.json").exists()


def test_kernel_death_is_reported_with_the_running_cell(nb_project, env):
    result = nbops_run(nb_project, env, "notebooks/kernel_dies.ipynb")
    assert_one_line_error(result, "the kernel died while running cell 3 (`import os`)", "partial report: reports/kernel_dies.ipynb")
    assert (nb_project / "reports/kernel_dies.ipynb").exists()
    assert not (nb_project / "metrics/kernel_dies.json").exists()


def test_missing_kernel_is_a_clear_error(nb_project, env):
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", "--kernel", "no-such-kernel")
    assert_one_line_error(result, "no Jupyter kernel named 'no-such-kernel'")


def test_records_land_in_files_and_in_the_report_deterministically(nb_project, env):
    sub = nb_project / "notebooks"
    result = run(["nbops", "run", "records.ipynb", "-o", "out/records.ipynb"], sub, env)  # run from elsewhere
    assert "Executing" in result.stderr  # progress is shown unless --quiet
    report = sub / "out/records.ipynb"
    assert f"cwd {nb_project}\n" in output_text(report, 1)  # the kernel works in the project root
    first = report.read_bytes()
    model = (nb_project / "models/tiny.skops").read_bytes()
    metrics = json.loads((nb_project / "metrics/records.json").read_text())
    assert metrics == {"accuracy": metrics["accuracy"], "n": 40, "ok": True}
    run(["nbops", "run", "-q", "records.ipynb", "-o", "out/records.ipynb"], sub, env)
    assert report.read_bytes() == first  # no timestamps: byte-identical on unchanged inputs
    assert (nb_project / "models/tiny.skops").read_bytes() == model

    from nbops.pipeline.record import read_records

    kinds = [(r["kind"], r["name"]) for r in read_records(report)]
    assert kinds == [("metric", "accuracy"), ("metric", "n"), ("metric", "ok"), ("plot", "points"), ("model", "tiny")]
    text = report.read_text()
    assert "start_time" not in text and "end_time" not in text and str(nb_project) not in text.replace(f"cwd {nb_project}", "")


@pytest.mark.parametrize("args", [["-p", "novalue"], ["-p", "=3"]])
def test_bad_override_syntax(nb_project, env, args):
    assert_one_line_error(nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", *args), "expected KEY=VALUE")


def test_notebooks_that_name_no_language_run_in_the_default_kernel(nb_project, env):
    (nb_project / "notebooks/bare.py").write_text('# %% tags=["parameters"]\nx = 1\n# %%\nprint(x + 1)\n')
    nb = json.loads((nb_project / "notebooks/typed_parameters.ipynb").read_text())
    nb["metadata"] = {}
    (nb_project / "notebooks/no_metadata.ipynb").write_text(json.dumps(nb))
    nbops_run(nb_project, env, "notebooks/bare.py", check=True)
    assert output_text(nb_project / "reports/bare.ipynb", 1) == "2\n"
    nbops_run(nb_project, env, "notebooks/no_metadata.ipynb", check=True)
    assert json.loads((nb_project / "reports/no_metadata.ipynb").read_text())["metadata"]["kernelspec"]["language"] == "python"


def test_failed_data_checks_stop_the_run_and_keep_their_findings(nb_project, env):
    """nbops.log_checks raising ChecksFailed: one line naming the checks, and — unlike any other
    failure — the checks' metrics and plot stay, as the evidence `nbops report` shows."""
    from nbops.testing import write_notebook

    write_notebook(nb_project / "notebooks/checks.ipynb", ["limit = 0"], body=[
        "import pandas as pd\nimport nbops\n"
        "batch = pd.DataFrame({'amount': [3.0, -1.0, 5.0, -2.0]})\n"
        "bad = batch[batch['amount'] < limit]\n"
        "findings = pd.DataFrame({'check': 'amount_not_negative', 'column': 'amount', 'row': bad.index, 'value': bad['amount']})",
        "nbops.log_checks(findings, rows=len(batch), checks=['amount_not_negative', 'unique'])",
        "open('after.txt', 'w').write('ran on')",
    ])
    result = nbops_run(nb_project, env, "notebooks/checks.ipynb")
    assert_one_line_error(result, "notebooks/checks.ipynb: data checks failed — 1 data check failed on 4 rows: "
                          "amount_not_negative on amount: 2 rows (e.g. row 1: -1.0, row 3: -2.0)",
                          "metrics/checks.json", "plots/checks/checks.json", "partial report: reports/checks.ipynb")
    assert json.loads((nb_project / "metrics/checks.json").read_text()) == {"rows_checked": 4, "checks_failed": 1, "rows_failing": 2}
    assert json.loads((nb_project / "plots/checks/checks.json").read_text())[0] == {"check": "amount_not_negative (amount)", "failing_rows": 2}
    assert not (nb_project / "after.txt").exists()
    # a clean batch passes, and the run goes on
    write_params(nb_project, "checks:\n  limit: -5\n")
    nbops_run(nb_project, env, "notebooks/checks.ipynb", check=True)
    assert json.loads((nb_project / "metrics/checks.json").read_text())["checks_failed"] == 0
    assert (nb_project / "after.txt").exists()
