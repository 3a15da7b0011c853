"""An nbops error raised in a notebook cell, in a real kernel: one line, as the command prints it,
whether from `nbops.promote()` or `%nbops promote` (the magic raises the library's own error, not
a UsageError); NBOPS_DEBUG=1 shows the traceback. Seen in JupyterLab (issue 18): a duplicate key
in params.yaml showed a three-frame traceback through promotion and params."""

from __future__ import annotations

import re

from nbops.testing import execute_as_jupyterlab, write_notebook

PARAMS = "promote:\n  thresholds:\n    roc_auc: '>= 0.9'\n  thresholds:\n    recall: '>= 0.3'\n"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_an_nbops_error_in_a_cell_is_one_line_from_the_function_and_the_magic(tmp_path, env):
    (tmp_path / "params.yaml").write_text(PARAMS)
    notebook = write_notebook(tmp_path / "promote.ipynb", body=[
        "import nbops\nnbops.promote('failure-predictor')",
        "%load_ext nbops",
        "%nbops promote failure-predictor",
        "import os\nos.environ['NBOPS_DEBUG'] = '1'\nnbops.promote('failure-predictor')",
    ])
    executed = execute_as_jupyterlab(notebook, env, allow_errors=True, timeout=120)
    errors = {index: output for index, cell in enumerate(executed.cells)
              for output in cell.get("outputs", []) if output["output_type"] == "error"}
    assert sorted(errors) == [0, 2, 3], errors
    function, magic, debug = errors[0], errors[2], errors[3]
    for shown in (function, magic):
        assert shown["ename"] == "ParamsError", shown  # the magic does not relabel it a UsageError
        [line] = [ANSI.sub("", text) for text in shown["traceback"]]
        assert line.startswith("ParamsError: params.yaml:4") and "duplicate key 'thresholds'" in line, line
    assert function["traceback"] == magic["traceback"]  # the magic shows what the function shows
    frames = ANSI.sub("", "\n".join(debug["traceback"]))
    assert len(debug["traceback"]) > 2 and "promote.py" in frames and "params.py" in frames, frames
