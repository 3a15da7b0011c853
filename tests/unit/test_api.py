import subprocess
import sys

import nbops

HEAVY = ("papermill", "dvc", "sklearn", "pandas", "nbformat", "nbclient", "skops", "fastapi", "uvicorn", "yaml")


def test_import_nbops_and_record_load_nothing_heavy():
    code = (
        "import sys, nbops, nbops.pipeline.record; "
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_public_names_resolve():
    for name in nbops.__all__:
        assert getattr(nbops, name) is not None


def test_example_notebooks_are_committed_without_outputs():
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 4
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
