"""From `nbops init demo` to a reproducible pipeline: real git, DVC, kernels and JupyterLab's
contents manager (marked slow)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nbops.testing import command_env, execute_as_jupyterlab, run, set_params, write_notebook

pytestmark = pytest.mark.slow

#: Save notebooks/train.ipynb as JupyterLab does after an interactive run: through jupytext's
#: contents manager (which writes the paired script too), with outputs, execution counts and the
#: metadata Lab adds (timings, collapsed state, the kernel's language_info, empty tag lists).
LAB_SAVE = textwrap.dedent("""
    import sys
    from jupytext import TextFileContentsManager

    manager = TextFileContentsManager(root_dir=".")
    model = manager.get("notebooks/train.ipynb")
    nb = model["content"]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.execution_count = index
            cell.outputs = [{"output_type": "stream", "name": "stdout", "text": f"OUTPUT-OF-CELL-{index}\\n"}]
            cell.metadata["execution"] = {"iopub.execute_input": "2025-01-01T00:00:00Z", "shell.execute_reply": "2025-01-01T00:00:01Z"}
            cell.metadata["jupyter"] = {"outputs_hidden": False}
            cell.metadata["scrolled"] = True
            cell.metadata.setdefault("tags", [])
        else:
            cell.metadata["jp-MarkdownHeadingCollapsed"] = True
    if len(sys.argv) > 1:  # a real code change
        nb.cells[-1].source += "\\n" + sys.argv[1]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9", "codemirror_mode": {"name": "ipython", "version": 3}}
    manager.save({"type": "notebook", "format": "json", "content": nb}, "notebooks/train.ipynb")
""")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo")
    env = command_env(home)
    run(["nbops", "init", "demo"], home, env)
    project = home / "demo"
    repro = run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "nbops init"], project, env)
    return project, env, repro


def test_repro_and_pytest_pass_right_after_init(demo):
    project, env, repro = demo
    assert "Running stage 'train'" in repro.stdout
    assert json.loads((project / "metrics/train.json").read_text())["roc_auc"] > 0.9
    result = run(["python", "-m", "pytest"], project, env)
    assert "7 passed" in result.stdout, result.stdout  # 2 tests + 5 notebook cells under nbval
    # nbval ran the notebook with its defaults, equal to params.yaml: the outputs did not change
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""


def test_saving_from_jupyterlab_keeps_the_stage_fresh_and_outputs_out_of_git(demo):
    project, env, _ = demo
    script = (project / "notebooks/train.py").read_bytes()
    run(["python", "-c", LAB_SAVE], project, env)
    assert "OUTPUT-OF-CELL-2" in (project / "notebooks/train.ipynb").read_text()  # the working copy has them
    assert (project / "notebooks/train.py").read_bytes() == script
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    diff = run(["git", "diff"], project, env).stdout
    assert "OUTPUT-OF-CELL" not in diff and '"execution_count": 2' not in diff and "language_info" not in diff
    run(["git", "add", "notebooks/train.ipynb"], project, env)
    stored = json.loads(run(["git", "show", ":notebooks/train.ipynb"], project, env).stdout)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in stored["cells"] if c["cell_type"] == "code")
    assert run(["nbops", "check"], project, env).returncode == 0

    # a change of code does reach the stage
    run(["python", "-c", LAB_SAVE, "print('changed')"], project, env)
    assert "print('changed')" in (project / "notebooks/train.py").read_text()
    assert "notebooks/train.py" in run(["dvc", "status"], project, env).stdout
    run(["git", "checkout", "--", "notebooks"], project, env)
    run(["git", "reset", "-q"], project, env)
    run(["git", "checkout", "--", "notebooks"], project, env)
    assert "up to date" in run(["dvc", "status"], project, env).stdout


def test_report_after_a_parameter_change(demo):
    project, env, _ = demo
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  C: 1.0\n", "  C: 0.01\n"))
    run(["dvc", "repro"], project, env)
    markdown = run(["nbops", "report"], project, env).stdout
    assert markdown.startswith("## nbops report\n")
    assert "**Pipeline: up to date**" in markdown
    assert "| `train.C` | 1.0 | 0.01 |" in markdown
    data = json.loads(run(["nbops", "report", "--json"], project, env).stdout)
    metrics = {m["name"]: m for m in data["metrics"]}
    assert set(metrics) == {"accuracy", "roc_auc"}
    for metric in metrics.values():
        assert metric["delta"] == pytest.approx(metric["new"] - metric["old"])
        expected = "0" if metric["delta"] == 0 else f"{metric['delta']:+.4g}"
        assert f"| `metrics/train.json` | `{metric['name']}` |" in markdown and f"| {expected} |" in markdown
    assert "`plots/train/pr_curve.json` (simple: recall → precision)" in markdown
    assert "| classifier: thresholds | pass |" in markdown and "| classifier: parity | pass |" in markdown
    run(["git", "commit", "-q", "-am", "C=0.01"], project, env)


def test_the_workflow_commands_pass_here(demo, tmp_path):
    """The generated CI job's own commands, as written (GitHub's expression resolved as on a push)."""
    from nbops.core.params import parse_yaml

    project, env, _ = demo
    workflow = parse_yaml((project / ".github/workflows/nbops.yml").read_text(), "nbops.yml")
    summary = tmp_path / "summary.md"
    step_env = {**env, "GITHUB_STEP_SUMMARY": str(summary)}
    ran = []
    for step in workflow["jobs"]["pipeline"]["steps"]:
        command = step.get("run", "")
        if not command or command.startswith(("pip install", "dvc repro", "pytest")) or "dvc push" in command:
            continue  # installing is the CI's business; repro and pytest ran above
        command = command.replace("${{ github.event.pull_request.base.sha || 'HEAD~1' }}", "HEAD~1")
        assert "${{" not in command, command
        run(["bash", "-euo", "pipefail", "-c", command], project, step_env)
        ran.append(command.split()[0:2])
    assert ran[1:] == [["nbops", "check"], ["nbops", "promote"], ["nbops", "report"]]
    assert summary.read_text().startswith("## nbops report\n")


def test_a_new_notebook_becomes_a_stage_without_writing_dvc_yaml(demo):
    project, env, _ = demo
    write_notebook(project / "notebooks/inspect.ipynb", ["top = 3"], body=[
        "import nbops\nmodel = nbops.load_model('classifier')\n"
        "weights = sorted(abs(model.coef_[0]), reverse=True)[:top]\n"
        "nbops.log_metric('top_weight_sum', round(float(sum(weights)), 6))",
    ])
    added = run(["nbops", "stage", "add", "notebooks/inspect.ipynb"], project, env)
    assert "added stage 'inspect' (runs notebooks/inspect.py)" in added.stdout
    stage = json.loads(run(["nbops", "stage", "add", "notebooks/inspect.ipynb", "--json"], project, env).stdout)
    assert stage["action"] == "unchanged"
    assert stage["stage"]["deps"] == ["notebooks/inspect.py", "models/classifier.skops", "models/classifier.json"]
    repro = run(["dvc", "repro"], project, env)
    assert "Running stage 'inspect'" in repro.stdout and "Running stage 'train'" not in repro.stdout
    assert json.loads((project / "metrics/inspect.json").read_text())["top_weight_sum"] > 0
    assert run(["nbops", "check"], project, env).returncode == 0
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    assert Path(project / "notebooks/inspect.py").exists()


def test_exploring_and_nbval_leave_the_generated_pipeline_alone(demo):
    """The issue's sequence in a new project: a non-default `train.C`, `dvc repro`, every stage
    notebook run as JupyterLab runs it, then `pytest` (nbval included): the pipeline's outputs
    are untouched, `dvc status` is clean and the generated workflow's `promote --dry-run` passes."""
    project, env, _ = demo
    set_params(project, {"train": {"C": 0.05}})
    run(["dvc", "repro"], project, env)
    outputs = {path: path.read_bytes() for path in (*project.glob("metrics/*.json"), *project.glob("models/*"))}
    for notebook in sorted(project.glob("notebooks/*.ipynb")):
        execute_as_jupyterlab(notebook, env)  # the notebook's defaults: C = 1.0
    assert (project / ".nbops/scratch/train/models/classifier.skops").exists()
    result = run(["python", "-m", "pytest"], project, env)
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout
    assert {path: path.read_bytes() for path in outputs} == outputs
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    # nbval ran train with params.yaml's C, so it computed exactly what the pipeline did
    assert (project / ".nbops/scratch/train/metrics/train.json").read_bytes() == (project / "metrics/train.json").read_bytes()
    run(["nbops", "promote", "classifier", "--dry-run"], project, env)
