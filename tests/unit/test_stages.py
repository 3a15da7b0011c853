"""`nbops stage add` (nbops.pipeline.stages): stages built from notebooks, written without disturbing dvc.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nbops.core.exceptions import NotebookError, StageError
from nbops.core.params import load_yaml, parse_yaml
from nbops.pipeline.stages import add_stage, merge_report_records, parse_run_cmd, plan_stage, scan_recording
from nbops.testing import copy_project, write_notebook

from ..conftest import REPO

JUPYTEXT_TOML = (REPO / "jupytext.toml").read_text(encoding="utf-8")

TYPED = [
    "an_int = 3",
    "a_float = 0.25",
    'a_str = "text"',
    "a_bool = True",
    "a_list = [1, 2.5, 'x']",
    "a_dict = {'depth': 2, 'kind': 'gini'}",
    "a_none = None",
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with jupytext pairing, an empty params.yaml and no dvc.yaml."""
    (tmp_path / "jupytext.toml").write_text(JUPYTEXT_TOML, encoding="utf-8")
    (tmp_path / "params.yaml").write_text("", encoding="utf-8")
    return tmp_path


def test_many_parameter_types_become_params_and_defaults(project):
    write_notebook(project / "notebooks/typed.ipynb", ["\n".join(TYPED)], body=["import nbops\nnbops.log_metric('n', an_int)"])
    result = add_stage(project / "notebooks/typed.ipynb", root=project)
    assert result.action == "added" and result.runs == "notebooks/typed.py"
    assert (project / "notebooks/typed.py").exists()  # the paired script, written by jupytext
    stage = load_yaml(project / "dvc.yaml")["stages"]["typed"]
    assert stage == {
        "cmd": "nbops run notebooks/typed.py",
        "deps": ["notebooks/typed.py"],
        "params": [f"typed.{n}" for n in ("an_int", "a_float", "a_str", "a_bool", "a_list", "a_dict", "a_none")],
        "outs": ["reports/typed.ipynb"],
        "metrics": ["metrics/typed.json"],
    }
    # params.yaml holds the defaults with their types, as nbops run (YAML 1.2) reads them back
    assert load_yaml(project / "params.yaml")["typed"] == {
        "an_int": 3, "a_float": 0.25, "a_str": "text", "a_bool": True, "a_list": [1, 2.5, "x"],
        "a_dict": {"depth": 2, "kind": "gini"}, "a_none": None,
    }
    assert "a_list: [1, 2.5, x]" in (project / "params.yaml").read_text()


def test_rerun_is_idempotent_and_keeps_comments_and_other_stages(project):
    write_notebook(project / "notebooks/train.ipynb", ["n_estimators = 10\nseed = 0"], body=["import nbops"])
    dvc = (
        "# top comment\n"
        "stages:\n"
        "  prepare:   # hand-written stage\n"
        "    cmd: python prepare.py   # not a notebook\n"
        "    outs:\n"
        "    - data/clean.csv\n"
        "\n"
        "  # the training stage\n"
        "  train:\n"
        "    cmd: nbops run notebooks/train.ipynb\n"
        "    deps:\n"
        "    - notebooks/train.ipynb\n"
        "    - data/clean.csv  # from prepare\n"
        "    params:\n"
        "    - train.n_estimators\n"
        "    outs:\n"
        "    - reports/train.ipynb\n"
        "\n"
        "# trailing comment\n"
    )
    (project / "dvc.yaml").write_text(dvc)
    (project / "params.yaml").write_text("# params\ntrain:\n  n_estimators: 10  # trees\n")

    first = add_stage(project / "notebooks/train.ipynb", root=project)
    assert first.action == "updated" and first.params_added == {"seed": 0}
    text = (project / "dvc.yaml").read_text()
    assert text == dvc.replace("notebooks/train.ipynb\n", "notebooks/train.py\n").replace(
        "    - train.n_estimators\n", "    - train.n_estimators\n    - train.seed\n"
    )
    assert (project / "params.yaml").read_text() == "# params\ntrain:\n  n_estimators: 10  # trees\n  seed: 0\n"

    second = add_stage(project / "notebooks/train.ipynb", root=project)
    assert second.action == "unchanged" and second.params_added == {}
    assert (project / "dvc.yaml").read_text() == text

    # a parameter removed from the cell leaves the stage's params; user entries stay
    write_notebook(project / "notebooks/train.ipynb", ["seed = 0"], body=["import nbops"])
    (project / "notebooks/train.py").unlink()
    third = add_stage(project / "notebooks/train.ipynb", root=project)
    assert third.action == "updated"
    after = (project / "dvc.yaml").read_text()
    assert "    - train.seed\n" in after and "train.n_estimators" not in after
    assert "# top comment\n" in after and "  # the training stage\n" in after and "# trailing comment\n" in after
    assert "    - data/clean.csv  # from prepare\n" in after
    assert after.split("  # the training stage")[0] == dvc.split("  # the training stage")[0]  # prepare untouched
    # params.yaml still sets the removed parameter: said, not silently deleted
    assert any("sets n_estimators, which notebooks/train.py does not define" in w for w in third.warnings)


def test_a_name_taken_by_a_different_stage_is_refused(project):
    write_notebook(project / "notebooks/train.ipynb", ["n = 1"])
    (project / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n")
    with pytest.raises(StageError, match=r"stage 'train' already exists and runs `python train.py`.*--name"):
        add_stage(project / "notebooks/train.ipynb", root=project)
    result = add_stage(project / "notebooks/train.ipynb", name="train_nb", root=project)
    assert result.stage["cmd"] == "nbops run notebooks/train.py --stage train_nb"
    assert load_yaml(project / "params.yaml") == {"train_nb": {"n": 1}}
    # the same notebook and section under another name: that stage is the one to update
    (project / "dvc.yaml").write_text("stages:\n  training:\n    cmd: nbops run notebooks/train.py\n")
    with pytest.raises(StageError, match=r"stage 'training' already runs notebooks/train.py.*--name training"):
        add_stage(project / "notebooks/train.ipynb", root=project)


def test_recording_calls_are_found_in_the_source():
    nb = {"cells": [
        {"cell_type": "code", "source": "import nbops as nb\nfrom nbops import save_model as keep, load_model\nimport mlflow"},
        {"cell_type": "code", "source": "%matplotlib inline\nnb.log_metrics({'a': 1})\nmlflow.log_metric('x', 1)"},
        {"cell_type": "code", "source": "nb.log_plot('loss', rows, x='epoch', y='loss')\nnb.log_plot(name, rows)\n"
                                        "nb.log_roc_curve(y, s)\nnb.log_confusion_matrix(y, p, name='cm')"},
        {"cell_type": "code", "source": "keep(model, 'clf', sample_input=X)\nm = load_model('base')\nnb.log_plot('raw', rows)"},
        {"cell_type": "markdown", "source": "nb.save_model(x, 'not-code')"},
    ]}
    found = scan_recording(nb)
    assert found.metrics is True
    assert found.plots == {
        "loss": {"template": "linear", "x": "epoch", "y": "loss"},
        "roc_curve": {"template": "simple", "x": "fpr", "y": "tpr"},
        "cm": {"template": "confusion", "x": "actual", "y": "predicted"},
        "raw": {"template": "linear"},
    }
    assert found.saved_models == ["clf"] and found.loaded_models == ["base"]
    assert found.unresolved == ["log_plot"]
    # the last report tells what the source cannot: the expression's plot, default axes
    merge_report_records(found, [
        {"kind": "plot", "name": "by_name", "template": "scatter", "x": "a", "y": "b"},
        {"kind": "plot", "name": "raw", "template": "linear", "x": "step", "y": "value"},
    ])
    assert found.plots["by_name"] == {"template": "scatter", "x": "a", "y": "b"}
    assert found.plots["raw"] == {"template": "linear", "x": "step", "y": "value"}


def test_example_project_stages_are_exactly_what_stage_add_writes(tmp_path):
    """Rebuild the example's dvc.yaml from its notebooks: only data and code deps/outs are given
    (the `batches` landing stage runs no notebook: it is kept as written)."""
    project = copy_project(REPO, tmp_path / "example")
    original = load_yaml(project / "dvc.yaml")["stages"]
    (project / "dvc.yaml").write_text(
        "stages:\n  batches:\n    cmd: python -m plantsim seed\n    outs:\n      - data/batches:\n          persist: true\n"
    )
    given = {
        "ingest": (["data/batches", "plantsim/ai4i.py", "plantsim/batches.py"], ["data/raw.csv"]),
        "featurize": (["data/raw.csv"], ["data/features"]),
        "train": (["data/features/train.csv"], []),
        "evaluate": (["data/features/test.csv"], []),
    }
    for stage, (deps, outs) in given.items():
        add_stage(project / f"notebooks/{stage}.ipynb", deps=[str(project / d) for d in deps],
                  outs=[str(project / o) for o in outs], root=project)
    assert load_yaml(project / "dvc.yaml")["stages"] == original


def test_without_pairing_the_stage_runs_the_ipynb(tmp_path):
    (tmp_path / "params.yaml").write_text("")
    write_notebook(tmp_path / "nb.ipynb", ["x = 1"])
    plan = plan_stage(tmp_path / "nb.ipynb", root=tmp_path)
    assert plan.stage["cmd"] == "nbops run nb.ipynb" and plan.stage["deps"] == ["nb.ipynb"]


def test_errors_name_the_problem(project):
    write_notebook(project / "nb.ipynb", ["from pathlib import Path\nout = Path('data')"])
    with pytest.raises(StageError, match=r"parameter 'out' defaults to the expression Path\('data'\).*literal default"):
        add_stage(project / "nb.ipynb", root=project)
    write_notebook(project / "plain.ipynb", [], body=["x = 1"])
    with pytest.raises(NotebookError, match=r"plain.py: no cell is tagged `parameters`; mark the cell"):
        add_stage(project / "plain.ipynb", root=project)
    with pytest.raises(NotebookError, match="nope.ipynb: notebook not found"):
        add_stage(project / "nope.ipynb", root=project)


@pytest.mark.parametrize("cmd, expected", [
    ("nbops run notebooks/train.py", ("notebooks/train.py", "train")),
    ("nbops run -q notebooks/train.py --stage big -p n=3", ("notebooks/train.py", "big")),
    ("python -m nbops run nb.ipynb --stage=x", ("nb.ipynb", "x")),
    ("papermill nb.ipynb out.ipynb", None),
    (["nbops run a.py", "echo done"], ("a.py", "a")),
])
def test_parse_run_cmd(cmd, expected):
    assert parse_run_cmd(cmd) == expected


def test_cli_prints_what_it_did(project, capsys):
    from nbops.cli import main

    write_notebook(project / "notebooks/a.ipynb", ["k = 1"])
    notebook = str(project / "notebooks/a.ipynb")
    assert main(["stage", "add", notebook, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["name"], printed["action"], printed["params_added"], printed["warnings"]) == ("a", "added", {"k": 1}, [])
    assert printed["stage"] == {"cmd": "nbops run notebooks/a.py", "deps": ["notebooks/a.py"], "params": ["a.k"],
                                "outs": ["reports/a.ipynb"]}
    assert main(["stage", "add", notebook]) == 0
    assert capsys.readouterr().out == "dvc.yaml: unchanged stage 'a' (runs notebooks/a.py)\n"
    (project / "dvc.yaml").write_text("stages:\n  a:\n    cmd: python a.py\n")
    assert main(["stage", "add", notebook]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "nbops: error: dvc.yaml: stage 'a' already exists and runs `python a.py`, not notebooks/a.py; "
        "choose another name with --name NAME\n"
    )


def test_dvc_yaml_written_as_dvc_reads_it(project):
    """A block-style file with unindented sequences keeps its style; the result parses."""
    write_notebook(project / "nb.ipynb", ["k = 1"])
    (project / "dvc.yaml").write_text("stages:\n  other:\n    cmd: echo\n    deps:\n    - x\n")
    add_stage(project / "nb.ipynb", root=project)
    text = (project / "dvc.yaml").read_text()
    assert "\n  nb:\n    cmd: nbops run nb.py\n    deps:\n    - nb.py\n" in text
    assert parse_yaml(text, "dvc.yaml")["stages"]["other"] == {"cmd": "echo", "deps": ["x"]}
    shutil.rmtree(project / "notebooks", ignore_errors=True)
    assert json.loads(json.dumps(load_yaml(project / "params.yaml"))) == {"nb": {"k": 1}}


def test_save_model_with_reference_declares_the_profile(project):
    write_notebook(project / "nb.ipynb", ["k = 1"], body=[
        "import nbops\n"
        "nbops.save_model(m, 'with-profile', sample_input=X[:5], reference=X)\n"
        "nbops.save_model(m, 'without', sample_input=X[:5], reference=None)\n"
        "nbops.save_model(m, 'plain', sample_input=X[:5])"
    ])
    outs = plan_stage(project / "nb.ipynb", root=project).stage["outs"]
    assert outs == ["models/with-profile.skops", "models/with-profile.json", "models/with-profile.profile.json",
                    "models/without.skops", "models/without.json", "models/plain.skops", "models/plain.json", "reports/nb.ipynb"]


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "params.yaml").write_bytes(b"a:\n  k: \xff\n"),
     "nbops: error: params.yaml:2: not UTF-8 text (byte 0xff); save the file as UTF-8\n"),
    (lambda p: ((p / "params.yaml").unlink(), (p / "params.yaml").mkdir()),
     "nbops: error: params.yaml: is a folder, not a file; it must be a YAML file (remove or rename the folder)\n"),
])
def test_cli_unreadable_params_yaml_is_one_line(project, tmp_path, make, message):
    from nbops.testing import command_env, run

    write_notebook(project / "notebooks/a.ipynb", ["k = 1"])
    make(project)
    result = run(["nbops", "stage", "add", "notebooks/a.ipynb"], project, command_env(tmp_path / "home"), check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)
    assert not (project / "dvc.yaml").exists()


def test_the_settings_section_is_no_stage_name(project):
    write_notebook(project / "notebooks/nbops.ipynb", ["k = 1"])
    with pytest.raises(StageError, match=r"stage name 'nbops' is reserved: params.yaml's `nbops:` section holds nbops' own settings; pass --name"):
        add_stage(project / "notebooks/nbops.ipynb", root=project)
