"""`nbops run` on a jupytext percent script (the code-only form a stage depends on), real kernel."""

from __future__ import annotations

import json
from pathlib import Path

from nbops.pipeline.stages import add_stage
from nbops.testing import run, write_notebook

from ..conftest import REPO
from .test_run import assert_one_line_error, output_text

TYPED = (
    "an_int = 3\na_float = 0.25\na_str = 'text'\na_bool = True\na_list = [1, 2]\n"
    "a_dict = {'k': 'v'}\na_none = None"
)
PRINT = "import json\nprint(json.dumps({k: globals()[k] for k in sorted(%r)}, sort_keys=True))" % (
    ["an_int", "a_float", "a_str", "a_bool", "a_list", "a_dict", "a_none"],
)


def test_stage_add_then_run_the_paired_script(tmp_path, env):
    """Defaults written by stage add (YAML 1.2, flow lists) come back with their types, and the
    report of a script is byte-identical run after run."""
    (tmp_path / "jupytext.toml").write_text((REPO / "jupytext.toml").read_text())
    (tmp_path / "params.yaml").write_text("")
    write_notebook(tmp_path / "notebooks/typed.ipynb", [TYPED], body=[PRINT])
    add_stage(tmp_path / "notebooks/typed.ipynb", root=tmp_path)
    params = (tmp_path / "params.yaml").read_text().replace("an_int: 3", "an_int: 5").replace("a_none: null", "a_none: off")
    (tmp_path / "params.yaml").write_text(params)

    run(["nbops", "run", "-q", "notebooks/typed.py"], tmp_path, env)
    report = tmp_path / "reports/typed.ipynb"
    assert json.loads(output_text(report, 2)) == {
        "a_bool": True, "a_dict": {"k": "v"}, "a_float": 0.25, "a_list": [1, 2], "a_none": "off",
        "a_str": "text", "an_int": 5,
    }
    nb = json.loads(report.read_text())
    assert nb["metadata"]["papermill"]["input_path"] == "notebooks/typed.py"
    assert [c["id"] for c in nb["cells"]] == ["cell-0", "injected-parameters", "cell-1"]
    assert "jupytext" not in nb["metadata"]
    first = report.read_bytes()
    run(["nbops", "run", "-q", "notebooks/typed.py"], tmp_path, env)
    assert report.read_bytes() == first


def test_failure_in_a_script_names_the_cell(tmp_path, env):
    (tmp_path / "params.yaml").write_text("")
    script = tmp_path / "broken.py"
    script.write_text(
        '# %% [markdown]\n# A script that fails\n\n# %% tags=["parameters"]\nn = 1\n\n'
        "# %%\nx = n + 1\n\n# %%\nraise RuntimeError('in the fourth cell')\n"
    )
    result = run(["nbops", "run", "-q", "broken.py"], tmp_path, env, check=False)
    assert_one_line_error(result, "broken.py failed in cell 4 (`raise RuntimeError('in the fourth cell')`)",
                          "RuntimeError: in the fourth cell", "partial report: reports/broken.ipynb")


def test_script_without_parameters_cell_says_how_to_mark_it(tmp_path, env):
    (tmp_path / "params.yaml").write_text("")
    (tmp_path / "plain.py").write_text("# %%\nx = 1\n")
    result = run(["nbops", "run", "plain.py"], tmp_path, env, check=False)
    assert_one_line_error(result, "plain.py: no cell is tagged `parameters`", '# %% tags=["parameters"]')


def test_jupytext_is_not_imported_for_ipynb(tmp_path):
    """`nbops run x.ipynb` pays nothing for text notebooks."""
    import subprocess
    import sys

    nb = write_notebook(tmp_path / "n.ipynb", ["x = 1"])
    code = (
        "import sys\nfrom nbops.core.params import load_notebook\n"
        f"load_notebook({str(nb)!r})\nprint('jupytext' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert Path(nb).exists()


def test_nbops_run_skips_extras_it_never_uses(tmp_path, env):
    """`nbops run` (a real kernel) imports neither the serving runtime nor papermill's remote
    stores, jupytext's server contents managers or jsonschema's format checkers (~1 s of CPU a
    stage); the process can still import them afterwards, and a user's process is left alone."""
    import importlib.util
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text("plain:\n  n: 2\n")
    (tmp_path / "plain.py").write_text('# %% tags=["parameters"]\nn = 1\n\n# %%\nprint(n + 1)\n')
    heavy = [name for name in ("boto3", "pyarrow", "jupyter_server", "isoduration") if importlib.util.find_spec(name)]
    heavy += ["pyarrow.fs"] if "pyarrow" in heavy else []
    code = (
        "import sys\nfrom nbops.cli import main\n"
        "assert main(['run', '-q', 'plain.py']) == 0\n"
        f"print(sorted(name for name in {heavy + ['nbops.runtime']!r} if name in sys.modules))\n"
        f"for name in {heavy!r}: __import__(name)\n"
        "print('jupytext.sync_contentsmanager' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "False"]
    assert "3" in output_text(tmp_path / "reports/plain.ipynb", 2)

    user = "import sys\nfrom nbops.core.params import load_notebook\nload_notebook('plain.py')\nprint('jupytext.sync_contentsmanager' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", user], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(importlib.util.find_spec("jupyter_server") is not None)
