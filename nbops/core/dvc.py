"""The project's pipeline as data: dvc.yaml stages, dvc.lock hashes, DVC status and git state.

Reading dvc.yaml and dvc.lock needs no DVC import; `start_status` asks DVC in a subprocess.

That status is read-only by construction: it is DVC's own (`Repo.status`, what `dvc status`
runs) with DVC's repository lock replaced by a no-op and the stage read-locks that `Stage.status`
takes kept in a private temporary folder instead of `.dvc/tmp/rwlock`. A promotion therefore
writes nothing under `.dvc/`: ten at once never contend for DVC's lock ("Unable to acquire
lock"), and one killed at any moment cannot leave `.dvc/tmp/rwlock` half-written, which made
every later `dvc status` fail. What it does share is DVC's hash cache in the site cache folder,
a SQLite database that survives a killed writer. Git is read with `--no-optional-locks`, so a
killed promotion leaves no `.git/index.lock` either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import project
from .exceptions import ProjectError
from .params import load_yaml


@dataclass
class Stage:
    name: str
    cmd: str
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)  # outs, metrics and plots alike
    params: list[str] = field(default_factory=list)

    @property
    def notebook(self) -> str | None:
        """The notebook an `nbops run` stage executes."""
        words = shlex.split(self.cmd) if self.cmd else []
        for i, word in enumerate(words[:-1]):
            if word == "run" and i > 0 and words[i - 1].endswith("nbops"):
                return words[i + 1]
        return None

    @property
    def stage_name(self) -> str:
        """The nbops stage name (the `--stage` given, else the notebook's stem)."""
        words = shlex.split(self.cmd) if self.cmd else []
        if "--stage" in words and words.index("--stage") + 1 < len(words):
            return words[words.index("--stage") + 1]
        return Path(self.notebook).stem if self.notebook else self.name

    @property
    def report(self) -> str | None:
        return project.report_path(self.stage_name) if self.notebook else None


def _paths(entries: Any) -> list[str]:
    """Paths of a dvc.yaml `deps`/`outs`/`metrics`/`plots` list (strings or {path: options})."""
    found = []
    for entry in entries or []:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict):
            found.extend(str(key) for key in entry)
    return found


def _param_names(entries: Any) -> list[str]:
    names = []
    for entry in entries or []:
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, dict):  # {params file: [names]}
            for value in entry.values():
                names.extend(str(v) for v in (value or []))
    return names


def load_stages(root: Path) -> dict[str, Stage]:
    dvc_file = root / project.DVC_FILE
    if not dvc_file.exists():
        raise ProjectError(f"{project.DVC_FILE}: not found in {root}; create the pipeline first (`nbops stage add`)")
    data = load_yaml(dvc_file, shown=project.DVC_FILE)
    stages = {}
    for name, spec in (data.get("stages") or {}).items():
        if not isinstance(spec, dict) or "foreach" in spec or "matrix" in spec:
            continue  # templated stages are DVC's business; nbops does not promote from them
        outs = _paths(spec.get("outs")) + _paths(spec.get("metrics")) + _paths(spec.get("plots"))
        stages[name] = Stage(name, str(spec.get("cmd", "")), _paths(spec.get("deps")), outs, _param_names(spec.get("params")))
    return stages


def load_lock(root: Path) -> dict[str, Any]:
    """dvc.lock's stages ({} when the pipeline never ran)."""
    return (load_yaml(root / "dvc.lock", shown="dvc.lock") or {}).get("stages") or {}


def producing_stage(stages: dict[str, Stage], path: str) -> Stage | None:
    """The stage with `path` among its outputs (or inside an output folder)."""
    for stage in stages.values():
        for out in stage.outs:
            if path == out or path.startswith(out.rstrip("/") + "/"):
                return stage
    return None


def upstream(stages: dict[str, Stage], names: list[str]) -> list[str]:
    """`names` and every stage they depend on, in pipeline order."""
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in wanted or name not in stages:
            continue
        wanted.add(name)
        for dep in stages[name].deps:
            producer = producing_stage(stages, dep)
            if producer is not None:
                todo.append(producer.name)
    return [name for name in stages if name in wanted]


def md5_file(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security measure
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locked_out(lock: dict[str, Any], stage: str, path: str) -> dict[str, Any] | None:
    for entry in (lock.get(stage) or {}).get("outs") or []:
        if entry.get("path") == path:
            return entry
    return None


def start_status(root: Path, names: list[str]) -> subprocess.Popen[str]:
    """Start DVC's status of `names` and their upstream in a subprocess (`read_only_status`);
    DVC's import and status (about a second) then overlap the caller's own work. Collect with
    `stale_stages`."""
    return subprocess.Popen(
        [sys.executable, "-m", "nbops.core.dvc", "status", *names],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )


def read_only_status(root: str | os.PathLike[str], names: list[str]) -> dict[str, Any]:
    """What `dvc status --json --with-deps NAMES` reports, computed without writing under `.dvc/`:
    no repository lock, and the stage read-locks in a private folder (see the module docstring)."""
    import tempfile

    from dvc.lock import LockNoop
    from dvc.repo import Repo

    repo = Repo(str(root))
    try:
        with tempfile.TemporaryDirectory(prefix="nbops-dvc-status-") as private:
            repo.lock = LockNoop()  # status only reads; `dvc repro` and other readers are not blocked
            repo.tmp_dir = private  # where Stage.status writes its rwlock (a cached property: set per instance)
            return repo.status(targets=names or None, with_deps=True)
    finally:
        repo.close()


def stale_stages(process: subprocess.Popen[str]) -> dict[str, list[str]]:
    """What `dvc status` reported: {stage: [changes]} ({} when everything is up to date)."""
    out, err = process.communicate()
    if process.returncode != 0:
        message = (err.strip().splitlines() or ["no output"])[-1]
        raise ProjectError(f"dvc status failed: {message}")
    return describe_status(json.loads(out or "{}"))


def describe_status(status: dict[str, Any]) -> dict[str, list[str]]:
    """DVC's status as {stage: ["changed deps: notebooks/train.py modified", …]}."""
    stale: dict[str, list[str]] = {}
    for target, changes in status.items():
        described: list[str] = []
        for change in changes:
            if isinstance(change, str):
                described.append(change)
            elif isinstance(change, dict):  # {"changed deps": {path: state, "params.yaml": {key: state}}}
                for kind, entries in change.items():
                    if not isinstance(entries, dict) or not entries:
                        described.append(str(kind))
                        continue
                    for path, state in entries.items():
                        if isinstance(state, dict):
                            described += [f"{kind}: {key} {value}" for key, value in state.items()]
                        else:
                            described.append(f"{kind}: {path} {state}")
        stale[target.split(":")[-1]] = list(dict.fromkeys(described)) or ["changed"]
    return stale


# --- git ---------------------------------------------------------------------------------------


@dataclass
class GitState:
    commit: str | None
    dirty: bool  # any change to the paths asked about (tracked changes or untracked files)
    dirty_paths: list[str]


def git(root: Path, *args: str, input: bytes | None = None, text: bool = True) -> subprocess.CompletedProcess[Any]:
    """Run `git ARGS` in `root`, capturing its output (bytes with `text=False`)."""
    return subprocess.run(["git", *args], cwd=root, input=input, capture_output=True, text=text)


def git_state(root: Path, paths: list[str]) -> GitState:
    """The HEAD commit and whether `paths` (files or folders) differ from it."""
    def git_(*args: str) -> subprocess.CompletedProcess[str]:
        # no optional locks: `git status` would otherwise refresh the index under .git/index.lock,
        # which a promotion killed at that moment would leave behind
        return git(root, "--no-optional-locks", *args)

    head = git_("rev-parse", "HEAD")
    commit = head.stdout.strip() if head.returncode == 0 else None
    existing = [p for p in paths if (root / p).exists() or git_("ls-files", "--error-unmatch", p).returncode == 0]
    if commit is None:
        return GitState(None, True, existing or ["(no commit yet)"])
    status = git_("status", "--porcelain", "--untracked-files=all", "--", *existing) if existing else None
    dirty_paths = [line[3:] for line in status.stdout.splitlines()] if status and status.returncode == 0 else []
    return GitState(commit, bool(dirty_paths), dirty_paths)


def is_git_repo(root: Path) -> bool:
    return (root / ".git").exists() or git(root, "rev-parse", "--git-dir").returncode == 0


if __name__ == "__main__":  # `python -m nbops.core.dvc status STAGE…`: DVC's status as JSON, read-only
    if len(sys.argv) < 2 or sys.argv[1] != "status":
        sys.exit("usage: python -m nbops.core.dvc status STAGE...")
    from ._startup import exit_now, yield_cpu

    yield_cpu()  # a promotion waits on its parity check first (gates.start_parity)
    try:
        print(json.dumps(read_only_status(Path.cwd(), sys.argv[2:])))
    except Exception as exc:  # noqa: BLE001 - DVC's errors vary; stale_stages shows the last line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        exit_now(1)
    exit_now()
