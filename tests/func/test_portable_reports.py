"""Reports that do not depend on the checkout: `nbops run` and `nbops check` name a cell showing
the project's absolute path; notebooks older than nbformat 4.5 get stable cell ids (real kernels)."""

from __future__ import annotations

import json

from nbops.authoring.check import check_project
from nbops.pipeline.stages import add_stage
from nbops.testing import run, write_notebook


def test_a_cell_showing_the_project_path_is_named_by_run_and_by_check(tmp_path, env):
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text("")
    write_notebook(root / "notebooks/where.ipynb", ["x = 1"], body=[
        "from pathlib import Path\nPath.cwd() / 'plots'",  # shows /…/project/plots
        "print('relative', Path('plots'))",
        "import nbops\nnbops.log_plot('p', {'a': [1, 2], 'b': [3, 4]})",  # returns nothing to show
    ])
    add_stage(root / "notebooks/where.ipynb", root=root)
    result = run(["nbops", "run", "-q", "notebooks/where.ipynb"], root, env)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("nbops: warning:")]
    assert warnings == [
        f"nbops: warning: reports/where.ipynb: cell 2 (`from pathlib import Path`) shows the project's absolute path "
        f"{root}, so the report differs in every other checkout and dvc.lock changes with it; end the cell with `;` "
        "or show a path relative to the project"
    ], result.stderr

    findings = [f for f in check_project(root).findings if f.code == "absolute-path-in-report"]
    assert len(findings) == 1
    report_lines = (root / "reports/where.ipynb").read_text().splitlines()
    assert findings[0].path == "reports/where.ipynb" and str(root) in report_lines[findings[0].line - 1]
    assert "cell 2 (`from pathlib import Path`)" in findings[0].message and "`dvc repro` (stage 'where')" in findings[0].message

    # the fix the message suggests: the warning and the finding go away
    nb = json.loads((root / "notebooks/where.ipynb").read_text())
    nb["cells"][1]["source"] += ";"
    (root / "notebooks/where.ipynb").write_text(json.dumps(nb))
    assert "warning" not in run(["nbops", "run", "-q", "notebooks/where.ipynb"], root, env).stderr
    assert [f for f in check_project(root).findings if f.code == "absolute-path-in-report"] == []


def test_reports_of_notebooks_older_than_nbformat_4_5_are_byte_identical(tmp_path, env):
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text("")
    path = write_notebook(root / "old.ipynb", ["n = 2"], body=["print(n * 21)"])
    nb = json.loads(path.read_text())
    nb["nbformat_minor"] = 4
    for cell in nb["cells"]:
        del cell["id"]  # nbformat 4.4 has no cell ids
    path.write_text(json.dumps(nb))
    run(["nbops", "run", "-q", "old.ipynb"], root, env)
    first = (root / "reports/old.ipynb").read_bytes()
    run(["nbops", "run", "-q", "old.ipynb"], root, env)
    assert first == (root / "reports/old.ipynb").read_bytes()
    report = json.loads(first)
    assert [c["id"] for c in report["cells"]] == ["cell-0", "cell-1"]
    assert report["nbformat_minor"] >= 5 and "".join(report["cells"][1]["outputs"][0]["text"]) == "42\n"
