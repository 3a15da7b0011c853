"""Promotion end to end in a temporary copy of the example project: real git, DVC, kernels,
HTTP and a fresh virtual environment (marked slow)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from nbops.runtime import read_records
from nbops.testing import command_env, copy_project, init_repo, run, set_params

from ..conftest import REPO
from ..func.malicious_models import HELPER, KINDS, Evidence

pytestmark = pytest.mark.slow
MODEL = "failure-predictor"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    home = tmp_path_factory.mktemp("promote")
    env = command_env(home)
    project = copy_project(REPO, home / "project")
    set_params(project, {"ingest": {"n_rows": 3000}, "train": {"max_iter": 50},
                         "promote": {"thresholds": {"roc_auc": ">= 0.8", "recall": ">= 0.3"}, "tolerance": 0.0,
                                     "trusted_types": [HELPER]}})
    init_repo(project, env)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "reproduced"], project, env)
    return project, env


@pytest.fixture
def project(repo, tmp_path):
    """A per-test copy of the reproduced project (git, DVC cache and all), so tests stay independent."""
    source, env = repo
    dest = tmp_path / "project"
    shutil.copytree(source, dest, symlinks=True)
    return dest, {**env, "NBOPS_REGISTRY": str(tmp_path / "registry")}


def nbops(project, env, *args, check=True):
    return run(["nbops", *args], project, env, check=check)


def registry_state(env) -> dict[str, bytes]:
    """Every file of the registry and its content, lock files aside (they are the lock's, not data)."""
    root = Path(env["NBOPS_REGISTRY"])
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def refused(result, *fragments):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_promote_builds_a_self_describing_package(project):
    root, env = project
    result = nbops(root, env, "promote", MODEL, "--to", "staging", "--json")
    out = json.loads(result.stdout)
    assert out["ok"] and out["version"] == "0.1.0" and out["stage"] == "staging"
    package = Path(out["path"])
    assert sorted(p.name for p in package.iterdir()) == sorted(
        [".complete", "Dockerfile", "MLmodel", "card.html", "code", "dist", "manifest.json", "model.skops",
         "python_env.yaml", "requirements.txt"])
    manifest = json.loads((package / "manifest.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    assert manifest["lineage"]["git"] == {"commit": head, "dirty": False, "dirty_paths": []}
    assert set(manifest["metrics"]) >= {"roc_auc", "average_precision", "f1", "recall"}
    assert [n["stage"] for n in manifest["lineage"]["notebooks"]] == ["ingest", "featurize", "train", "evaluate"]
    assert manifest["lineage"]["stages"]["train"]["outs"]
    assert manifest["params"]["train.max_iter"] == 50
    assert manifest["trusted_types"] == [HELPER]  # params.yaml's promote.trusted_types, exactly
    requirements = (package / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "skops==" in requirements
    for heavy in ("jupyterlab", "dvc", "papermill", "nbops", "nbformat"):
        assert heavy not in requirements
    card = (package / "card.html").read_text()
    assert "roc_auc" in card and "Evaluation report" in card
    assert "python -m failure_predictor" not in (package / "Dockerfile").read_text() or "serve" in (package / "Dockerfile").read_text()

    listed = json.loads(nbops(root, env, "models", "list", "--json").stdout)
    assert listed == [{"name": MODEL, "latest": "0.1.0", "versions": ["0.1.0"], "stages": {"staging": "0.1.0"}}]
    shown = nbops(root, env, "models", "show", f"{MODEL}@staging").stdout
    assert "0.1.0" in shown and "roc_auc" in shown


def test_dry_run_writes_nothing(project):
    root, env = project
    result = nbops(root, env, "promote", MODEL, "--dry-run")
    assert "dry run" in result.stdout and "✓ parity" in result.stdout
    assert registry_state(env) == {}


def test_failing_threshold_is_refused_and_leaves_registry_unchanged(project):
    root, env = project
    nbops(root, env, "promote", MODEL)
    before = registry_state(env)
    set_params(root, {"promote": {"thresholds": {"roc_auc": ">= 0.9999", "recall": ">= 0.3"}}})
    result = nbops(root, env, "promote", MODEL, check=False)
    refused(result, "threshold roc_auc >= 0.9999: roc_auc is", "metrics/evaluate.json")
    assert registry_state(env) == before


def test_stale_pipeline_is_refused(project):
    root, env = project
    set_params(root, {"train": {"max_iter": 51}})
    result = nbops(root, env, "promote", MODEL, check=False)
    refused(result, "stage 'train' is not up to date", "run `dvc repro`")


def test_hand_saved_model_is_refused(project):
    root, env = project
    code = (
        "import numpy as np, pandas as pd\n"
        "from sklearn.dummy import DummyClassifier\n"
        "import nbops\n"
        "X = pd.read_csv('data/features/train.csv').drop(columns=['Machine failure'])\n"
        "m = DummyClassifier().fit(X, np.r_[np.zeros(len(X) - 1), 1])\n"
        f"nbops.save_model(m, '{MODEL}', sample_input=X.head(5))\n"
    )
    run([sys.executable, "-c", code], root, env)
    result = nbops(root, env, "promote", MODEL, check=False)
    refused(result, "models/failure-predictor.skops: not the file stage 'train' recorded", "outside the pipeline")
    assert registry_state(env) == {}


def test_production_needs_a_clean_tree_staging_marks_it_dirty(project):
    root, env = project
    with open(root / "params.yaml", "a") as handle:
        handle.write("# an uncommitted comment\n")
    result = nbops(root, env, "promote", MODEL, "--to", "production", check=False)
    refused(result, "production needs a clean git tree", "params.yaml")
    staged = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    manifest = json.loads((Path(staged["path"]) / "manifest.json").read_text())
    assert manifest["lineage"]["git"]["dirty"] is True and "params.yaml" in manifest["lineage"]["git"]["dirty_paths"]


def test_champion_challenger_and_force(project):
    root, env = project
    nbops(root, env, "promote", MODEL, "--to", "production")
    # weaker but above the thresholds: only champion/challenger stands in the way
    set_params(root, {"train": {"max_iter": 5, "max_leaf_nodes": 4},
                      "promote": {"thresholds": {"roc_auc": ">= 0.5"}, "tolerance": 0.0}})
    run(["dvc", "repro"], root, env)
    run(["git", "commit", "-qam", "a weaker model"], root, env)
    result = nbops(root, env, "promote", MODEL, "--to", "production", check=False)
    refused(result, "champion/challenger:", "worse than production's", "--force REASON")
    forced = json.loads(nbops(root, env, "promote", MODEL, "--to", "production", "--force", "recall matters more", "--json").stdout)
    manifest = json.loads((Path(forced["path"]) / "manifest.json").read_text())
    assert manifest["lineage"]["forced"] == "recall matters more"


def test_assign_and_rollback(project):
    root, env = project
    nbops(root, env, "promote", MODEL, "--to", "production")
    nbops(root, env, "promote", MODEL, "--to", "production")
    assert json.loads(nbops(root, env, "models", "list", "--json").stdout)[0]["stages"] == {"production": "0.2.0"}
    out = nbops(root, env, "models", "assign", f"{MODEL}@0.1.0", "production", "--reason", "rollback").stdout
    assert "production → 0.1.0" in out
    assert json.loads(nbops(root, env, "models", "show", f"{MODEL}@production", "--json").stdout)["version"] == "0.1.0"
    refused(nbops(root, env, "models", "assign", f"{MODEL}@7.0.0", "production", check=False), "has no version 7.0.0")
    refused(nbops(root, env, "promote", "../evil", check=False), "not allowed")


def test_tampered_package_is_refused_on_load(project):
    root, env = project
    out = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    model_file = Path(out["path"]) / "model.skops"
    model_file.chmod(0o644)
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    model_file.write_bytes(bytes(data))
    import pandas as pd

    pd.read_csv(root / "data/features/test.csv").drop(columns=["Machine failure"]).to_csv(root / "in.csv", index=False)
    refused(nbops(root, env, "predict", MODEL, "in.csv", check=False), "sha256")


def test_concurrent_promotions_get_distinct_versions(project):
    root, env = project
    procs = [subprocess.Popen(["nbops", "promote", MODEL, "--json"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    versions = sorted(json.loads(p.communicate()[0])["version"] for p in procs)
    assert versions == ["0.1.0", "0.2.0"]


def test_kill_mid_promotion_leaves_no_half_package(project):
    root, env = project
    nbops(root, env, "promote", MODEL)
    registry = Path(env["NBOPS_REGISTRY"]) / MODEL
    stages_before = (registry / "stages.json").read_text()
    proc = subprocess.Popen(["nbops", "promote", MODEL], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(registry.glob(".tmp-*/*")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (registry / "stages.json").read_text() == stages_before
    listed = json.loads(nbops(root, env, "models", "list", "--json").stdout)
    assert listed[0]["versions"] == ["0.1.0"]
    out = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)  # and the registry still works
    assert out["version"] == "0.2.0" and not list(registry.glob(".tmp-*"))


def test_git_tags_follow_gto_convention(project):
    root, env = project
    out = nbops(root, env, "promote", MODEL, "--git-tag").stdout
    tags = run(["git", "tag"], root, env).stdout.split()
    assert f"{MODEL}@v0.1.0" in tags and any(t.startswith(f"{MODEL}#staging") for t in tags), tags
    assert "git tag:" in out
    shown = run([str(Path(sys.executable).parent / "gto"), "show"], root, env).stdout
    assert MODEL in shown and "v0.1.0" in shown


def test_promote_from_a_notebook_cell_shows_the_card(project):
    root, env = project
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import nbops\nnbops.promote('{MODEL}')"),
        nbformat.v4.new_code_cell(f"%load_ext nbops\n%nbops promote {MODEL} --dry-run"),
        nbformat.v4.new_code_cell(f"%nbops promote {MODEL} --to production --dry-run --bump major"),
    ])
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(root)}}, timeout=300).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    first = nb.cells[0].outputs[0]["data"]
    assert "text/html" in first and "promoted</span> to <b>staging</b> as version <b>0.1.0</b>" in first["text/html"]
    assert "would be promoted" in nb.cells[1].outputs[-1]["data"]["text/html"]
    assert "1.0.0" in nb.cells[2].outputs[-1]["data"]["text/html"]
    assert json.loads(nbops(root, env, "models", "list", "--json").stdout)[0]["versions"] == ["0.1.0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def post(url: str, payload: object, request_id: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"X-Request-ID": request_id} if request_id else {})}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            if request_id:
                assert response.headers["X-Request-ID"] == request_id
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_nbops_serve_and_predict(project):
    root, env = project
    nbops(root, env, "promote", MODEL)
    manifest = json.loads(nbops(root, env, "models", "show", MODEL, "--json").stdout)
    sample = manifest["sample_input"]
    records = [dict(zip(sample["columns"], row)) for row in sample["data"]]

    port = free_port()
    captured = root / "captured"
    server = subprocess.Popen(["nbops", "serve", f"{MODEL}@staging", "--port", str(port), "--capture", str(captured)],
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server)
        status, body = post(f"http://127.0.0.1:{port}/predict", records, request_id="first-order")
        assert status == 200 and body["predictions"] == manifest["sample_predictions"]
        status, body = post(f"http://127.0.0.1:{port}/predict", [{k: v for k, v in records[0].items() if k != "Type"}])
        assert status == 422 and "Type" in body["error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata") as response:
            assert json.loads(response.read())["version"] == "0.1.0"
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0, server.stderr.read()
    [record] = read_records(captured)  # the refused request is not captured
    assert (record["request_id"], record["model"], record["version"]) == ("first-order", MODEL, "0.1.0")
    assert record["predictions"] == manifest["sample_predictions"]

    test_csv = root / "data/features/test.csv"
    out = root / "scored.csv"
    import pandas as pd

    features = pd.read_csv(test_csv).drop(columns=["Machine failure"])
    features.to_csv(root / "features.csv", index=False)
    nbops(root, env, "predict", f"{MODEL}@0.1.0", "features.csv", "-o", str(out))
    scored = pd.read_csv(out)
    assert len(scored) == len(features)
    refused(nbops(root, env, "predict", MODEL, str(test_csv), check=False), "unexpected column 'Machine failure'")


@pytest.fixture(scope="module")
def wheel_venv(repo, tmp_path_factory) -> SimpleNamespace:
    """One promotion's wheel installed in one fresh virtual environment, for the tests that use it."""
    source, env = repo
    home = tmp_path_factory.mktemp("wheel")
    root = home / "project"
    shutil.copytree(source, root, symlinks=True)
    env = {**env, "NBOPS_REGISTRY": str(home / "registry")}
    out = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    venv = home / "venv"
    run([sys.executable, "-m", "venv", str(venv)], home, env)
    python = str(venv / "bin/python")
    run([python, "-m", "pip", "install", "-q", out["wheel"]], home, env, timeout=900)
    manifest = json.loads((Path(out["path"]) / "manifest.json").read_text())
    return SimpleNamespace(python=python, out=out, manifest=manifest, env=env, project=root)


def write_input_csv(manifest: dict, path: Path) -> Path:
    sample = manifest["sample_input"]
    path.write_text(",".join(sample["columns"]) + "\n" + "\n".join(",".join(map(str, row)) for row in sample["data"]) + "\n")
    return path


def test_wheel_installs_in_a_fresh_venv_and_predicts_like_the_notebook(wheel_venv, tmp_path):
    python, out, manifest, env = wheel_venv.python, wheel_venv.out, wheel_venv.manifest, wheel_venv.env
    installed = run([python, "-m", "pip", "list", "--format=freeze"], tmp_path, env).stdout.lower()
    for heavy in ("jupyterlab", "dvc", "papermill", "nbops", "nbformat", "ipykernel"):
        assert f"{heavy}==" not in installed
    sample = manifest["sample_input"]
    write_input_csv(manifest, tmp_path / "input.csv")
    check = (
        "import json, pandas as pd, failure_predictor as pkg\n"
        "frame = pd.read_csv('input.csv')\n"
        "print(json.dumps({'version': pkg.__version__, 'predictions': pkg.load().predict(frame).tolist()}))\n"
    )
    got = json.loads(run([python, "-c", check], tmp_path, env).stdout)
    assert got == {"version": out["version"], "predictions": manifest["sample_predictions"]}
    run([python, "-m", "failure_predictor", "predict", "input.csv", "-o", "out.csv"], tmp_path, env)
    assert (tmp_path / "out.csv").read_text().count("\n") == len(sample["data"]) + 1

    port = free_port()
    captured = tmp_path / "captured"
    server = subprocess.Popen([python, "-m", "failure_predictor", "serve", "--port", str(port), "--capture", str(captured),
                               "--sample", "1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server)
        status, body = post(f"http://127.0.0.1:{port}/predict", {"dataframe_split": sample}, request_id="from-the-wheel")
        assert status == 200 and body["predictions"] == manifest["sample_predictions"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            assert f'nbops_model_info{{model="{MODEL}",version="{out["version"]}"}} 1' in response.read().decode()
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0, server.stderr.read()
    # written by the wheel's own runtime copy (no nbops installed there), read by nbops'
    [record] = read_records(captured)
    assert record["request_id"] == "from-the-wheel" and record["predictions"] == manifest["sample_predictions"]
    assert record["inputs"] == {c: [row[i] for row in sample["data"]] for i, c in enumerate(sample["columns"])}


def test_the_installed_wheel_refuses_malicious_model_files(wheel_venv, tmp_path):
    """The wheel's own runtime (in the venv, without nbops) given each malicious file as its
    model (sha256 and manifest made to match, the helper they need trusted): `python -m <pkg>
    predict` exits 1 with the one-line refusal and nothing happens. A legitimate model holding a
    NumPy-ufunc FunctionTransformer, swapped in the same way, predicts."""
    python, env = wheel_venv.python, wheel_venv.env
    folder = Path(run([python, "-c", "import failure_predictor as p, os; print(os.path.dirname(p.__file__))"], tmp_path, env).stdout.strip())
    original = {name: (folder / name).read_bytes() for name in ("model.skops", "manifest.json")}
    write_input_csv(wheel_venv.manifest, tmp_path / "input.csv")
    evidence = Evidence(tmp_path / "evidence")

    def install_model(data: bytes) -> None:
        manifest = {**json.loads(original["manifest.json"]), "sha256": hashlib.sha256(data).hexdigest(), "trusted_types": [HELPER]}
        (folder / "model.skops").write_bytes(data)
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    try:
        for kind, (_, attack) in KINDS.items():
            install_model(evidence.build(kind))
            result = run([python, "-m", "failure_predictor", "predict", "input.csv"], tmp_path, env, check=False)
            assert result.returncode == 1, (kind, result.stdout, result.stderr)
            error = result.stderr.strip()
            assert error.startswith(f"error: {folder / 'model.skops'}: refusing to load the model: it holds function {attack},"), error
            assert "promote.trusted_types in params.yaml" in error and "\n" not in error and not result.stdout
            assert evidence.harm() == []
        install_model(_ufunc_pipeline(wheel_venv))
        scored = run([python, "-m", "failure_predictor", "predict", "input.csv"], tmp_path, env)
        assert scored.stdout.count("\n") == len(wheel_venv.manifest["sample_input"]["data"]) + 1
    finally:
        for name, data in original.items():
            (folder / name).write_bytes(data)


def _ufunc_pipeline(wheel_venv: SimpleNamespace) -> bytes:
    """A legitimate model for the package's signature: log1p (a NumPy ufunc) on the numbers."""
    import numpy as np
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    columns = wheel_venv.manifest["signature"]["columns"]
    numbers = [c["name"] for c in columns if c["dtype"] != "str"]
    texts = [c["name"] for c in columns if c["dtype"] == "str"]
    train = pd.read_csv(wheel_venv.project / "data/features/train.csv")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), texts),
                                (FunctionTransformer(np.log1p), numbers)),
        LogisticRegression(max_iter=500),
    ).fit(train[texts + numbers], train["Machine failure"])
    return sio.dumps(model)


def test_package_is_an_mlflow_model(project):
    mlflow = pytest.importorskip("mlflow.pyfunc", reason="mlflow is an optional extra")
    root, env = project
    out = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    manifest = json.loads((Path(out["path"]) / "manifest.json").read_text())
    import pandas as pd

    frame = pd.DataFrame(manifest["sample_input"]["data"], columns=manifest["sample_input"]["columns"])
    loaded = mlflow.load_model(out["path"])
    assert list(loaded.predict(frame)) == manifest["sample_predictions"]
