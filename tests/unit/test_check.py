"""`nbops check`: one test per finding, on a small project broken on purpose (no kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbops.authoring.check import check_project
from nbops.pipeline.stages import add_stage
from nbops.testing import command_env, init_repo, run, write_notebook

from ..conftest import REPO

JUPYTEXT_TOML = (REPO / "jupytext.toml").read_text(encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A correct project: notebooks/train.ipynb paired with train.py, its stage, params.yaml."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "jupytext.toml").write_text(JUPYTEXT_TOML)
    (root / "params.yaml").write_text("")
    write_notebook(root / "notebooks/train.ipynb", ["n = 3\nrate = 0.5"],
                   body=["import nbops\nnbops.log_metric('score', n * rate)"])
    add_stage(root / "notebooks/train.ipynb", root=root)
    return root


def codes(root: Path) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in check_project(root).findings]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def test_a_correct_project_has_no_findings(project):
    result = check_project(project)
    assert result.findings == [] and result.stages == ["train"]
    assert result.summary() == "nbops check: 1 stage, no problems found"


def test_the_example_project_is_clean():
    assert [str(f) for f in check_project(REPO).findings] == []


def test_no_parameters_cell(project):
    edit(project / "notebooks/train.py", '# %% tags=["parameters"]', "# %%")
    unpaired, finding = check_project(project).findings
    assert unpaired.code == "pair-out-of-sync"  # the .ipynb still has the tag
    assert (finding.code, finding.severity, finding.path) == ("no-parameters-cell", "error", "notebooks/train.py")
    assert 'tags=["parameters"]' in finding.message


def test_unknown_param_in_params_yaml(project):
    edit(project / "params.yaml", "  rate: 0.5\n", "  rate: 0.5\n  rat: 0.1\n")
    [finding] = check_project(project).findings
    assert finding.code == "unknown-param" and finding.severity == "error"
    assert str(finding).startswith("params.yaml:4: error: train.rat (did you mean rate?) is not defined")


def test_param_the_stage_does_not_list(project):
    edit(project / "dvc.yaml", "      - train.rate\n", "")
    [finding] = check_project(project).findings
    assert finding.code == "param-not-tracked" and finding.path == "dvc.yaml" and finding.line == 6
    assert "does not list train.rate" in finding.message and "DVC will not re-run it" in finding.message


def test_listed_param_the_notebook_does_not_define(project):
    edit(project / "dvc.yaml", "      - train.rate\n", "      - train.rate\n      - train.old\n")
    edit(project / "params.yaml", "  rate: 0.5\n", "  rate: 0.5\n  old: 1\n")
    assert sorted(codes(project)) == [("listed-param-undefined", "error"), ("unknown-param", "error")]


def test_listed_param_missing_from_params_yaml(project):
    edit(project / "params.yaml", "  rate: 0.5\n", "")
    [finding] = check_project(project).findings
    assert finding.code == "param-missing" and "dvc repro` fails" in finding.message


def test_param_of_the_wrong_type(project):
    edit(project / "params.yaml", "  rate: 0.5\n", "  rate: fast\n")
    [finding] = check_project(project).findings
    assert finding.code == "param-type" and "train.rate is 'fast' (str) but notebooks/train.py expects float" in finding.message


def test_default_differs_is_a_warning(project):
    edit(project / "params.yaml", "  n: 3\n", "  n: 4\n")
    [finding] = check_project(project).findings
    assert (finding.code, finding.severity, finding.line) == ("default-differs", "warning", 2)
    assert "train.n is 4 but the parameters cell of notebooks/train.py sets n = 3" in finding.message


def test_notebook_committed_with_outputs(project, tmp_path):
    env = command_env(tmp_path)
    write_notebook(project / "notebooks/explore.ipynb", ["x = 1"], outputs=True)
    init_repo(project, env)
    [finding] = check_project(project).findings
    assert (finding.code, finding.path) == ("outputs-committed", "notebooks/explore.ipynb")
    assert "outputs of 1 cell" in finding.message and "nbops git-filter" in finding.message
    # what counts is what git holds: a stripped index entry is fine, even with outputs in the copy
    write_notebook(project / "notebooks/explore.ipynb", ["x = 1"])
    run(["git", "add", "notebooks/explore.ipynb"], project, env)
    write_notebook(project / "notebooks/explore.ipynb", ["x = 1"], outputs=True)
    assert codes(project) == []


def test_stage_running_papermill_directly(project):
    (project / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: papermill notebooks/train.ipynb out.ipynb -f params.yaml\n"
        "    deps:\n      - notebooks/train.ipynb\n"
    )
    [finding] = check_project(project).findings
    assert finding.code == "runs-notebook-directly" and finding.line == 3
    assert "runs notebooks/train.ipynb with papermill directly" in finding.message


def test_notebook_not_among_deps(project):
    edit(project / "dvc.yaml", "    deps:\n      - notebooks/train.py\n", "    deps:\n      - data.csv\n")
    [finding] = check_project(project).findings
    assert finding.code == "notebook-not-dep" and "it is not among its deps" in finding.message


def test_depending_on_the_ipynb_makes_saves_stale(project):
    edit(project / "dvc.yaml", "      - notebooks/train.py\n", "      - notebooks/train.ipynb\n")
    assert codes(project) == [("notebook-not-dep", "error"), ("stale-on-save", "warning")]
    finding = check_project(project).findings[1]
    assert "JupyterLab rewrites with new outputs on every save" in finding.message
    assert "depend on its paired script notebooks/train.py" in finding.message


def test_missing_notebook(project):
    edit(project / "dvc.yaml", "cmd: nbops run notebooks/train.py", "cmd: nbops run notebooks/trian.py")
    assert ("notebook-missing", "error") in codes(project)


def test_paired_files_out_of_sync(project):
    edit(project / "notebooks/train.py", "n * rate", "n * rate * 2")
    [finding] = check_project(project).findings
    assert finding.code == "pair-out-of-sync" and "jupytext --sync notebooks/train.ipynb" in finding.message


def test_recorded_metrics_not_declared(project):
    edit(project / "dvc.yaml", "    metrics:\n      - metrics/train.json\n", "")
    [finding] = check_project(project).findings
    assert finding.code == "undeclared-record" and "records metrics/train.json" in finding.message


def test_cli_exit_codes_text_and_json(project, tmp_path):
    env = command_env(tmp_path)
    assert run(["nbops", "check"], project, env).returncode == 0
    edit(project / "params.yaml", "  n: 3\n", "  n: 4\n")  # a warning only
    result = run(["nbops", "check"], project, env)
    assert result.stdout.startswith("params.yaml:2: warning: ")
    assert result.stderr.strip() == "nbops check: 0 errors, 1 warning (1 stage)"
    assert run(["nbops", "check", "--strict"], project, env, check=False).returncode == 1
    edit(project / "params.yaml", "  rate: 0.5\n", "  rate: 0.5\n  typo: 1\n")
    result = run(["nbops", "check", "--json"], project, env, check=False)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["errors"] == 1 and data["warnings"] == 1
    assert {f["code"] for f in data["findings"]} == {"unknown-param", "default-differs"}


# --- bad inputs --------------------------------------------------------------------------------


def test_a_stage_written_as_a_string_is_an_error(project):
    (project / "dvc.yaml").write_text("stages:\n  train: nbops run notebooks/train.py\n")
    [finding] = check_project(project).findings
    assert (finding.code, finding.severity, finding.line, finding.stage) == ("bad-stage", "error", 2, "train")
    assert "stage 'train' is a str, which DVC refuses: a stage is a mapping with `cmd:`" in finding.message
    (project / "dvc.yaml").write_text("stages:\n  - train\n")
    [finding] = check_project(project).findings
    assert finding.code == "bad-stage" and "'stages' must map stage names to stages" in finding.message


def test_two_parameters_cells_are_an_error(project):
    edit(project / "notebooks/train.py", "nbops.log_metric", '# %% tags=["parameters"]\nn = 10\n\n# %%\nnbops.log_metric')
    findings = check_project(project).findings
    assert ("several-parameters-cells", "error") in [(f.code, f.severity) for f in findings]
    finding = next(f for f in findings if f.code == "several-parameters-cells")
    assert "cells 1 and 3 are all tagged `parameters`" in finding.message and finding.path == "notebooks/train.py"


def test_an_empty_value_for_a_typed_default_is_an_error(project):
    edit(project / "params.yaml", "  n: 3\n", "  n:\n")
    [finding] = check_project(project).findings
    assert (finding.code, finding.line) == ("param-empty", 2)
    assert finding.message.startswith("train.n has no value but notebooks/train.py expects int (its default is 3)")


def test_unknown_keys_mixing_ints_and_strings(project):
    edit(project / "params.yaml", "  n: 3\n", "  n: 3\n  1: 2\n  b: 3\n")
    assert codes(project) == [("unknown-param", "error"), ("unknown-param", "error")]


def test_merge_keys_are_accepted(project):
    (project / "params.yaml").write_text("base: &base\n  n: 3\n  rate: 0.5\ntrain:\n  <<: *base\n")
    assert codes(project) == []


@pytest.mark.parametrize("settings, line, fragment", [
    ("nbops:\n  timeout: soon\n", 5, "nbops.timeout is 'soon'; write a positive number of seconds or a duration such as 90s"),
    ("nbops:\n  timout: 10\n", 5, "nbops.timout is not an nbops setting (settings: timeout, start_timeout, stages)"),
    ("nbops:\n  stages:\n    train:\n      timeout: -1\n", 7, "nbops.stages.train.timeout is -1"),
    ("nbops: 5\n", 4, "nbops must be a mapping"),
])
def test_bad_run_settings_are_named(project, settings, line, fragment):
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + settings)  # 3 lines before
    [finding] = check_project(project).findings
    assert (finding.code, finding.line) == ("bad-setting", line) and fragment in finding.message, str(finding)


def test_good_run_settings_pass(project):
    (project / "params.yaml").write_text((project / "params.yaml").read_text()
                                         + "nbops:\n  timeout: 1h\n  start_timeout: 90\n  stages:\n    train: {timeout: 15m}\n")
    assert codes(project) == []


def test_a_stage_named_like_the_settings_section(project):
    edit(project / "dvc.yaml", "  train:\n", "  nbops:\n")
    assert ("reserved-stage-name", "error") in codes(project)


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "params.yaml").write_bytes(b"train:\n  n: 3\n  rate: \xe9\n"),
     "nbops: error: params.yaml:3: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
    (lambda p: ((p / "params.yaml").unlink(), (p / "params.yaml").mkdir()),
     "nbops: error: params.yaml: is a folder, not a file; it must be a YAML file (remove or rename the folder)"),
    (lambda p: (p / "dvc.yaml").write_bytes(b"stages: \xff\n"),
     "nbops: error: dvc.yaml:1: not UTF-8 text (byte 0xff); save the file as UTF-8"),
])
def test_cli_unreadable_files_are_one_line(project, tmp_path, make, message):
    make(project)
    result = run(["nbops", "check"], project, command_env(tmp_path), check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")


@pytest.mark.parametrize("target, message", [
    ("/nonexistent", "nbops: error: /nonexistent: no such folder; give the project folder (the one holding dvc.yaml), "
                     "or no argument for the current one"),
    ("params.yaml", "nbops: error: params.yaml: is a file, not a folder; give the project folder (the one holding "
                    "dvc.yaml), or no argument for the current one"),
])
def test_cli_check_of_a_missing_folder(project, tmp_path, target, message):
    result = run(["nbops", "check", target], project, command_env(tmp_path), check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")
