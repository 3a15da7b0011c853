"""`nbops init`: a new project that works at once.

Right after `nbops init demo && cd demo`, `dvc repro` runs the starter stage and `pytest` passes.
The project holds: git and DVC initialised; `notebooks/train.ipynb` paired with its code-only
script `notebooks/train.py` (jupytext.toml), with a tagged `parameters` cell and recording calls;
`params.yaml` and `dvc.yaml` written by `nbops stage add`; `.gitignore`, `.dvcignore`; the
nbstripout git filter (`.gitattributes`) so git stores notebooks without outputs; a pre-commit
config; `tests/`, `pytest.ini` and `requirements.txt`; and a GitHub Actions workflow
(`.github/workflows/nbops.yml`) that reproduces, tests, lints, dry-runs the promotion and
reports. The files come from `nbops/authoring/templates/init/`.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..core.exceptions import ProjectError

#: Template file (under templates/init) -> where it goes in the project.
TEMPLATES = {
    "gitignore": ".gitignore",
    "dvcignore": ".dvcignore",
    "gitattributes": ".gitattributes",
    "jupytext.toml": "jupytext.toml",
    "pre-commit-config.yaml": ".pre-commit-config.yaml",
    "nbops.yml": ".github/workflows/nbops.yml",
    "requirements.txt": "requirements.txt",
    "pytest.ini": "pytest.ini",
    "README.md": "README.md",
    "tests/test_project.py": "tests/test_project.py",
}
STARTER = "notebooks/train"  # .ipynb and its paired .py
WORKFLOW = ".github/workflows/nbops.yml"
#: The branch the workflow's `push` trigger names; `nbops init` starts the repository on it.
WORKFLOW_BRANCH = "main"

PARAMS_HEADER = """\
# Parameters: one section per stage (the notebook's name). `nbops run` injects a stage's section
# into the notebook's `parameters` cell, and DVC re-runs the stage when one of its values changes.
# `dvc exp run -S train.C=0.1` tries another value without editing this file.
"""
DVC_HEADER = """\
# The pipeline: one stage per notebook, written by `nbops stage add notebooks/NAME.ipynb`.
# A stage runs, and depends on, the notebook's code-only script notebooks/NAME.py (jupytext
# pairing), so saving the notebook with new outputs does not make it stale.
stages:
"""
PROMOTE_SECTION = """
# Promotion gates (`nbops promote classifier`): the metrics a model must reach.
promote:
  thresholds:
    roc_auc: ">= 0.8"

# nbops' own settings, not notebook parameters: a stage whose cells run longer than `timeout`
# fails like a failed cell (named, its outputs removed) instead of hanging `dvc repro` and CI.
nbops:
  timeout: 1h
"""


@dataclass
class InitResult:
    root: Path
    created: list[str]
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = os.path.relpath(self.root) if self.root != Path.cwd() else "."
        lines = [f"nbops init: created the project in {shown}/"]
        lines += [f"  {path}" for path in self.created]
        lines += [f"note: {note}" for note in self.notes]
        lines.append("next:")
        if shown != ".":
            lines.append(f"  cd {shown}")
        lines += [
            "  dvc repro                                  # run the pipeline",
            "  pytest                                     # the tests, and the notebooks through nbval",
            "  git add -A && git commit -m 'nbops init'",
            "  jupyter lab notebooks/train.ipynb",
        ]
        return "\n".join(lines)


def write_text(path: Path, text: str) -> None:
    from ..pipeline.stages import write_text as write

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, text)


def _template(name: str) -> str:
    return (resources.files("nbops.authoring") / "templates" / "init" / name).read_text(encoding="utf-8")


def planned_files() -> list[str]:
    return sorted([*TEMPLATES.values(), f"{STARTER}.ipynb", f"{STARTER}.py", "dvc.yaml", "params.yaml"])


def init_project(directory: str | os.PathLike[str] = ".", *, force: bool = False) -> InitResult:
    """Scaffold a project in `directory` (created if needed). Refuses to overwrite existing
    files unless `force`, naming them."""
    root = Path(directory).resolve()
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{directory}: exists and is not a folder")
    existing = [p for p in planned_files() if (root / p).exists()]
    if existing and not force:
        raise ProjectError(
            f"{directory}: would overwrite {', '.join(existing)}; pass --force to overwrite them, or pick another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    _init_git_and_dvc(root, notes)

    name = root.name
    for template, target in TEMPLATES.items():
        text = _template(template).replace("__PROJECT__", name)
        write_text(root / target, text)
    write_text(root / "params.yaml", PARAMS_HEADER)
    write_text(root / "dvc.yaml", DVC_HEADER)
    _write_starter_notebook(root)

    from ..pipeline.stages import add_stage

    result = add_stage(root / f"{STARTER}.ipynb", root=root)
    notes += result.warnings
    with open(root / "params.yaml", "a", encoding="utf-8") as handle:
        handle.write(PROMOTE_SECTION)
    _install_output_filter(root, notes)
    return InitResult(root, planned_files(), notes)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True)


def _init_git_and_dvc(root: Path, notes: list[str]) -> None:
    top = _run(["git", "rev-parse", "--show-toplevel"], root)
    inside_other = top.returncode == 0 and Path(top.stdout.strip()).resolve() != root
    if top.returncode != 0:
        made = _run(["git", "init", "-q", "-b", WORKFLOW_BRANCH], root)  # the branch the workflow runs on
        if made.returncode != 0:
            raise ProjectError(f"{root}: `git init` failed: {made.stderr.strip() or made.stdout.strip()}")
    if not (root / ".dvc").exists():
        import contextlib
        import io

        from dvc.repo import Repo

        with contextlib.redirect_stdout(io.StringIO()):  # DVC's "Initialized DVC repository" banner
            Repo.init(str(root), subdir=inside_other, no_scm=False)
        if inside_other:
            notes.append(f"DVC initialised with --subdir: {root.name} is inside the git repository {top.stdout.strip()}")
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        with repo.config.edit() as config:  # `dvc config core.autostage true`: DVC stages its own files
            config["core"]["autostage"] = "true"


def _write_starter_notebook(root: Path) -> None:
    """notebooks/train.ipynb from the template, then its paired script written by jupytext
    itself, exactly as JupyterLab's jupytext will save it."""
    import jupytext
    import nbformat

    from .nbstripout import smudge
    from ..pipeline.stages import sync_pair

    notebook = jupytext.reads(_template(f"{STARTER}.py"), fmt="py:percent")
    data = json.loads(json.dumps(notebook))
    data.get("metadata", {}).pop("jupytext", None)
    for index, cell in enumerate(data["cells"]):
        cell["id"] = str(index)  # as the filter renumbers them: what git stores is what is written
        if cell["cell_type"] == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
    ipynb = root / f"{STARTER}.ipynb"
    ipynb.parent.mkdir(parents=True, exist_ok=True)
    (root / f"{STARTER}.py").unlink(missing_ok=True)
    # the working-copy form a checkout through the filter writes (this kernel's language_info)
    write_text(ipynb, smudge(nbformat.writes(nbformat.from_dict(data)).encode("utf-8") + b"\n").decode("utf-8"))
    sync_pair(ipynb)


def _install_output_filter(root: Path, notes: list[str]) -> None:
    """The nbstripout git filter (nbops.authoring.nbstripout, as `nbops git-filter` sets it up): git stores
    notebooks without outputs, the working copy keeps them."""
    from .nbstripout import install

    try:
        install(root)
    except ProjectError as exc:
        notes.append(f"git would store notebook outputs: {exc} (`nbops git-filter`)")
