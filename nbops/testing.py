"""Helpers for testing nbops projects with real git, DVC and kernels (ours and our users').

    from nbops.testing import command_env, copy_project, init_repo, run, execute_as_jupyterlab, fresh_venv
    from nbops.testing import check_project  # `nbops check`'s findings, for a project's own tests

They build throwaway projects in a temporary folder: a real git repository with DVC
initialised, an environment in which `nbops` and `dvc` resolve to this interpreter's, a git
identity (a CI machine may have none) and DVC's site cache inside the folder (DVC otherwise
writes under /var/tmp).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

#: What makes up the example project beside the library (copied by `copy_project`).
PROJECT_FILES = ("notebooks", "plantsim", "params.yaml", "dvc.yaml", "jupytext.toml")


def check_project(root: str | os.PathLike[str] | None = None) -> Any:
    """`nbops check`'s findings for the project at `root` (a `CheckResult`: `.errors`, `.findings`),
    for a project's own tests: the one `nbops init` writes asserts there are no errors."""
    from .authoring.check import check_project as check

    return check(root)


def command_env(home: str | os.PathLike[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for subprocesses: this interpreter's bin first on PATH, git identity,
    DVC's site cache under `home`, and no NBOPS_* variables leaking in from the caller."""
    home = Path(home)
    env = {key: value for key, value in os.environ.items() if not key.startswith("NBOPS_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({
        "GIT_AUTHOR_NAME": "nbops tests", "GIT_AUTHOR_EMAIL": "tests@nbops.invalid",
        "GIT_COMMITTER_NAME": "nbops tests", "GIT_COMMITTER_EMAIL": "tests@nbops.invalid",
        "DVC_SITE_CACHE_DIR": str(home / ".dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "PYTHONWARNINGS": "ignore",
    })
    env.pop("JPY_SESSION_NAME", None)
    if extra:
        env.update(extra)
    return env


def run(
    args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str], *, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on unexpected failure show what it printed."""
    result = subprocess.run(
        list(args), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def copy_project(source: str | os.PathLike[str], dest: str | os.PathLike[str], files: Sequence[str] = PROJECT_FILES) -> Path:
    """Copy the project files of `source` (notebooks, params.yaml, dvc.yaml) into `dest`."""
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def init_repo(path: str | os.PathLike[str], env: Mapping[str, str], *, dvc: bool = True, commit: bool = True) -> Path:
    """Make `path` a git repository (with DVC unless `dvc=False`) and commit what is in it."""
    path = Path(path)
    run(["git", "init", "-q", "-b", "main"], path, env)
    if dvc:
        run(["dvc", "init", "-q"], path, env)
        run(["dvc", "config", "core.autostage", "true"], path, env)
    gitignore = path / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".nbops/\nregistry/\n__pycache__/\n.ipynb_checkpoints/\n", encoding="utf-8")
    if commit:
        run(["git", "add", "-A"], path, env)
        run(["git", "commit", "-q", "-m", "initial project"], path, env)
    return path


def set_params(project: str | os.PathLike[str], values: Mapping[str, Mapping[str, Any]]) -> None:
    """Update sections of params.yaml (`{"train": {"n_estimators": 20}}`)."""
    path = Path(project) / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    params = params or {}
    for section, entries in values.items():
        params.setdefault(section, {}).update(entries)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def write_notebook(
    path: str | os.PathLike[str],
    parameters: Sequence[str] = (),
    body: Sequence[str] = (),
    *,
    outputs: bool = False,
) -> Path:
    """Write a small .ipynb: a code cell tagged `parameters` per source in `parameters`, then a
    code cell per source in `body`; with `outputs`, each code cell carries an output as if run."""
    import json

    cells = []
    for index, source in enumerate([*parameters, *body]):
        cell: dict[str, Any] = {
            "cell_type": "code", "execution_count": None, "id": f"cell-{index}",
            "metadata": {"tags": ["parameters"]} if index < len(parameters) else {},
            "outputs": [], "source": source,
        }
        if outputs:
            cell["execution_count"] = index + 1
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": f"ran cell {index}\n"}]
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    return path


def write_capture(
    root: str | os.PathLike[str],
    model: str,
    frame: Any,
    *,
    version: str = "0.1.0",
    role: str = "champion",
    predictions: Sequence[Any] | None = None,
    probabilities: Sequence[Sequence[float]] | None = None,
    classes: Sequence[Any] | None = None,
    rows_per_request: int = 1,
    start: str = "2026-11-27T13:00:00",
    seconds_apart: float = 1.0,
    request_ids: Sequence[str] | None = None,
    part: str = "part-130000-1-0.jsonl",
    format: int = 2,
    requests_per_line: int = 100,
) -> list[str]:
    """Write captured requests for `frame`'s rows as the runtime's capture does (INTERFACES.md §2,
    §2b): `<root>/<model>/<YYYY-MM-DD>/<part>`, requests of `rows_per_request` rows, columnar
    inputs, UTC timestamps `seconds_apart` apart; in format 2 (the runtime's), one line per
    `requests_per_line` requests of a day, or in format 1, one line per request. Returns the request ids written."""
    import datetime as dt
    import json

    if format not in (1, 2):
        raise ValueError(f"format {format!r}: capture formats are 1 and 2")
    columns = [str(c) for c in frame.columns]
    moment = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc)
    ids: list[str] = []
    lines: dict[Path, list[dict[str, Any]]] = {}  # part → its requests, in format 1's fields
    for number, first in enumerate(range(0, len(frame), rows_per_request)):
        chunk = frame.iloc[first : first + rows_per_request]
        when = moment + dt.timedelta(seconds=number * seconds_apart)
        rid = request_ids[number] if request_ids is not None else f"{role[:1]}{number:08d}"
        ids.append(rid)
        record: dict[str, Any] = {
            "v": 1, "ts": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "request_id": rid, "model": model,
            "version": version, "role": role, "latency_ms": 1.0, "rows": len(chunk),
            "inputs": {c: [_plain(v) for v in chunk[c].tolist()] for c in columns},
            "predictions": [_plain(v) for v in (predictions[first : first + len(chunk)] if predictions is not None else [0] * len(chunk))],
        }
        if probabilities is not None:
            record["classes"] = list(classes if classes is not None else [0, 1])
            record["probabilities"] = [[float(p) for p in row] for row in probabilities[first : first + len(chunk)]]
        lines.setdefault(Path(root) / model / when.strftime("%Y-%m-%d") / part, []).append(record)
    for path, records in lines.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if format == 2:
            records = [_columnar(records[i : i + requests_per_line]) for i in range(0, len(records), requests_per_line)]
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    return ids


def _columnar(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Format-1 records of one model, version and role as one format-2 line."""
    first = records[0]
    line: dict[str, Any] = {
        "v": 2, "model": first["model"], "version": first["version"], "role": first["role"], "requests": len(records),
        **{key: [r[key] for r in records] for key in ("request_id", "ts", "latency_ms", "rows")},
        "inputs": {c: [v for r in records for v in r["inputs"][c]] for c in first["inputs"]},
        "predictions": [v for r in records for v in r["predictions"]],
    }
    if "probabilities" in first:
        rows = [row for r in records for row in r["probabilities"]]
        line["classes"] = first["classes"]
        line["probabilities"] = {str(c): [row[i] for row in rows] for i, c in enumerate(first["classes"])}
    return line


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


@contextlib.contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """This process's environment variables set (None: unset) for the block, then restored: for
    library calls that read them in-process (nbops.promote as in a cell, save_model's stage)."""
    def apply(settings: Mapping[str, str | None]) -> None:
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    saved = {key: os.environ.get(key) for key in values}
    try:
        apply(values)
        yield
    finally:
        apply(saved)


def stop_process(process: subprocess.Popen[Any], grace: float = 15) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds; the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def register_model(
    project: str | os.PathLike[str],
    name: str,
    model: Any,
    X_train: Any,
    *,
    metrics: Mapping[str, float] | None = None,
    version: str | None = "0.1.0",
    stage: str | None = "production",
    registry: str | os.PathLike[str] | None = None,
    decision: Any = None,
    calibration: Any = None,
) -> Path:
    """Save `model` with its reference profile into `project`/models (as nbops.save_model in a
    stage would) and publish it as a package version in a real registry (default
    `project`/registry; a folder or an fsspec URL), without a pipeline: for tests and benchmarks
    of what reads packages. `version=None` publishes the next version. `decision` and
    `calibration` go to save_model as they are. Returns the package folder (its URL for a
    remote registry)."""
    from .promotion import package
    from .pipeline import record
    from .models.registry import Registry

    project = Path(project)
    with environment({record.ENV_ROOT: str(project), record.ENV_STAGE: "train", record.ENV_JOURNAL: None}):
        saved = record.save_model(model, name, sample_input=X_train.head(10), reference=X_train, decision=decision,
                                  calibration=calibration)
    reg = Registry(registry or project / "registry")
    keep = ("description", "estimator", "task", "classes", "signature", "sample_input", "sample_predictions",
            "sample_probabilities", "versions", "decision", "sample_decisions")
    with reg.lock(name):
        version = version or reg.next_version(name)
        build = reg.build_dir(name)
        manifest = {**{k: saved[k] for k in keep if k in saved}, "name": name, "version": version, "metrics": dict(metrics or {})}
        models = project / "models"
        package.build_core(build, manifest, models / f"{name}.skops", models / f"{name}.profile.json")
        path = reg.publish(name, version, build)
    if stage:
        reg.assign(name, version, stage)
    return Path(path) if reg.local else path  # type: ignore[return-value]


class S3Server:
    """A real S3-API server (moto's standalone server, `pip install 'moto[server]'`) on 127.0.0.1
    and a port the OS picks, for tests of object storage. `env` points S3 clients (s3fs, DVC,
    boto3) at it with throwaway credentials; `make_bucket(name)` creates a bucket.

        with S3Server(tmp_path) as s3:
            run(["nbops", "promote", ...], cwd, {**env, **s3.env, "NBOPS_REGISTRY": "s3://models/registry"})
    """

    def __init__(self, home: str | os.PathLike[str], *, timeout: float = 60) -> None:
        import secrets
        import time

        self.log = Path(home) / "moto-server.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while "Running on http://127.0.0.1:" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto's S3 server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        port = self.log.read_text().split("Running on http://127.0.0.1:", 1)[1].split()[0].strip("/")
        self.endpoint = f"http://127.0.0.1:{int(port)}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "nbops-test-" + secrets.token_hex(4),
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),  # tests check it is printed nowhere
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def make_bucket(self, name: str) -> str:
        import s3fs

        fs = s3fs.S3FileSystem(key=self.env["AWS_ACCESS_KEY_ID"], secret=self.env["AWS_SECRET_ACCESS_KEY"],
                               client_kwargs={"endpoint_url": self.endpoint})
        fs.mkdir(name)
        return f"s3://{name}"

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


class Load:
    """`clients` threads, each on its own keep-alive connection, POSTing `body` to `url` in a loop
    until `stop()`: continuous load on a server, every answer recorded as an `Answer`. For tests
    and benchmarks of a server switching versions under load; sends only to the URL given (use
    127.0.0.1)."""

    def __init__(self, url: str, body: bytes, *, clients: int = 8, path: str = "/predict", timeout: float = 30) -> None:
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port, self.path, self.body, self.timeout = parts.hostname, parts.port, path, body, timeout
        self._stop = threading.Event()
        self._answers: list[list[Answer]] = [[] for _ in range(clients)]
        self._threads = [threading.Thread(target=self._client, args=(answers,), daemon=True, name=f"load-{i}")
                         for i, answers in enumerate(self._answers)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Answer]:
        """Stop every client (each finishes its request in flight); all answers, by send time."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return sorted(self.answers(), key=lambda a: a.sent)

    def answers(self) -> list[Answer]:
        return [answer for answers in self._answers for answer in list(answers)]

    def per_client(self) -> list[list[Answer]]:
        return [list(answers) for answers in self._answers]

    def _client(self, answers: list[Answer]) -> None:
        import http.client
        import json
        import time

        headers = {"Content-Type": "application/json"}
        connection = None
        while not self._stop.is_set():
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            sent = time.monotonic()
            try:
                connection.request("POST", self.path, body=self.body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                done = time.monotonic()
                version = None
                if response.status == 200:
                    answer = json.loads(data)
                    version = answer.get("version")
                answers.append(Answer(sent, done - sent, response.status, response.getheader("x-model-version"),
                                      version, data if response.status != 200 else answer.get("predictions")))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                answers.append(Answer(sent, time.monotonic() - sent, None, None, None, f"{type(exc).__name__}: {exc}"))
                connection.close()
                connection = None
        if connection is not None:
            connection.close()


class Answer:
    """One answer under `Load`: when it was sent (time.monotonic), its latency (s), HTTP status
    (None: the connection failed), the X-Model-Version header, the body's "version", and the
    predictions (or the error)."""

    __slots__ = ("sent", "latency", "status", "header_version", "version", "detail")

    def __init__(self, sent: float, latency: float, status: int | None, header_version: str | None,
                 version: str | None, detail: Any) -> None:
        self.sent, self.latency, self.status = sent, latency, status
        self.header_version, self.version, self.detail = header_version, version, detail

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.version is not None and self.version == self.header_version

    def __repr__(self) -> str:
        return f"Answer(status={self.status}, version={self.version}, header={self.header_version}, latency={self.latency:.4f}, detail={self.detail!r:.80})"


class ServerProcess:
    """A server started as a subprocess (`nbops serve …`, `python -m <package> serve …`) with its
    stderr in `log`, once it has logged its "serving on http://…" line; `url` is what it printed.
    `stop()` sends SIGTERM (and SIGKILL after `grace` seconds)."""

    def __init__(self, args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str], log: str | os.PathLike[str],
                 *, timeout: float = 120) -> None:
        import time

        self.log = Path(log)
        self.process = subprocess.Popen(list(args), cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL,
                                        stderr=self.log.open("w"), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while "serving on http://" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the server did not start: {' '.join(args)}\n{self.log.read_text()}")
            time.sleep(0.05)
        line = next(line for line in self.log.read_text().splitlines() if "serving on http://" in line)
        self.url = line.split("serving on ", 1)[1].split(" ", 1)[0]

    def get(self, path: str, timeout: float = 10) -> Any:
        """GET a JSON route (e.g. /health)."""
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def stop(self, grace: float = 15) -> int:
        return stop_process(self.process, grace)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def assert_same_answers(manifest: Mapping[str, Any], *, predictions: Any = None, probabilities: Any = None,
                        decisions: Any = None) -> None:
    """Answers to a manifest's sample computed here (a server's, a CLI's, a wheel's) are those
    the notebook recorded in its kernel: floats up to the order of their sums, labels and
    decisions exactly but for recorded ties and scores on the threshold (runtime/parity.py).
    Bit-for-bit comparison is only for one computation done twice in one process."""
    from .runtime.model import Decision
    from .runtime.parity import differences

    decision = None
    if decisions is not None:
        decision = Decision(manifest["decision"], list(manifest["classes"]), "manifest")
    if predictions is not None:
        predictions = list(predictions.tolist() if hasattr(predictions, "tolist") else predictions)
    failures = differences(predictions, dict(manifest), probabilities, decisions, decision)
    assert not failures, "; ".join(failures)


def fresh_venv(folder: str | os.PathLike[str], env: Mapping[str, str], *pip_args: str, timeout: float = 900) -> Path:
    """A new virtual environment in `folder` with `pip install *pip_args` done in it (pip's cache
    is used as usual); returns its python. The one way tests build an environment from scratch."""
    folder = Path(folder)
    run([sys.executable, "-m", "venv", str(folder)], folder.parent, env)
    python = folder / "bin" / "python"
    if pip_args:
        run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pip_args], folder.parent, env, timeout=timeout)
    return python


def execute_as_jupyterlab(
    notebook: str | os.PathLike[str], env: Mapping[str, str], *, timeout: float = 600, allow_errors: bool = False,
) -> dict[str, Any]:
    """Run every cell of `notebook` in a real kernel the way JupyterLab does — the kernel started in
    the notebook's folder and told its notebook (JPY_SESSION_NAME) — without `nbops run` and
    without writing the notebook. Returns the executed notebook (outputs included)."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(notebook).resolve()
    nb = nbformat.read(str(path), as_version=4)
    kernel = ((nb.metadata.get("kernelspec") or {}).get("name")) or "python3"
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=timeout, allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env={**env, "JPY_SESSION_NAME": str(path)})
    return nb
