"""Promotion end to end in a temporary copy of the example project: real git, DVC, kernels,
HTTP and a fresh virtual environment (marked slow)."""

from __future__ import annotations

import contextlib
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
from nbops.testing import command_env, copy_project, environment, fresh_venv, init_repo, run, set_params

from ..conftest import REPO
from ..func.malicious_models import HELPER, KINDS, Evidence

pytestmark = pytest.mark.slow
MODEL = "failure-predictor"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    home = tmp_path_factory.mktemp("promote")
    env = command_env(home)
    project = copy_project(REPO, home / "project")
    set_params(project, {"ingest": {"window_days": 9}, "train": {"max_iter": 50},
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
    """Every file of the registry and its content (lock files included: a finished promotion leaves none)."""
    root = Path(env["NBOPS_REGISTRY"])
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


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
         "profile.json", "python_env.yaml", "requirements.txt"])
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

    listed = json.loads(nbops(root, env, "models", "list", "--json").stdout)
    assert listed == [{"name": MODEL, "latest": "0.1.0", "versions": ["0.1.0"], "stages": {"staging": "0.1.0"}}]
    shown = nbops(root, env, "models", "show", f"{MODEL}@staging").stdout
    assert "0.1.0" in shown and "roc_auc" in shown


def test_dry_run_writes_nothing(project):
    root, env = project
    result = nbops(root, env, "promote", MODEL, "--dry-run")
    assert "dry run" in result.stdout and "✓ parity" in result.stdout
    assert not Path(env["NBOPS_REGISTRY"]).exists()  # not even a folder


def test_failing_threshold_is_refused_and_leaves_registry_unchanged(project):
    root, env = project
    nbops(root, env, "promote", MODEL)
    before = registry_state(env)
    set_params(root, {"promote": {"thresholds": {"roc_auc": ">= 0.9999", "recall": ">= 0.3"}}})
    result = nbops(root, env, "promote", MODEL, check=False)
    refused(result, "threshold roc_auc >= 0.9999: roc_auc is", "metrics/evaluate.json")
    assert registry_state(env) == before  # no .lock, no build folder


def _helpers_of_this_process() -> list[str]:
    """The command lines of this process's children that are nbops helpers (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if "nbops." in command:
                    found.append(command)
    return found


def test_a_promotion_ended_before_its_package_leaves_no_helper_behind(project):
    """The parity check's interpreter starts first and imports scikit-learn while the package is
    built; a promotion that ends before there is a package (here: no such model) kills it."""
    from nbops.promotion.promote import promote
    from nbops.core.exceptions import NbopsError

    root, env = project
    before = _helpers_of_this_process()
    with environment(env), pytest.raises(NbopsError, match="no-such-model"):
        promote("no-such-model", root=root)
    assert _helpers_of_this_process() == before
    assert not Path(env["NBOPS_REGISTRY"]).exists()


def test_stale_pipeline_is_refused(project):
    root, env = project
    set_params(root, {"train": {"max_iter": 51}})
    result = nbops(root, env, "promote", MODEL, check=False)
    refused(result, "stage 'train' is not up to date", "run `dvc repro`")
    # refused by a package gate, so under the registry lock: yet no lock file, no folder stays
    assert not Path(env["NBOPS_REGISTRY"]).exists()


def test_hand_saved_model_is_refused(project):
    root, env = project
    model_file = root / "models" / f"{MODEL}.skops"
    recorded = model_file.read_bytes()
    code = (
        "import numpy as np, pandas as pd, skops.io as sio\n"
        "from sklearn.dummy import DummyClassifier\n"
        "import nbops\n"
        "X = pd.read_csv('data/features/train.csv').drop(columns=['Machine failure'])\n"
        "m = DummyClassifier().fit(X, np.r_[np.zeros(len(X) - 1), 1])\n"
        f"nbops.save_model(m, '{MODEL}', sample_input=X.head(5))\n"
        f"sio.dump(m, 'models/{MODEL}.skops')\n"
    )
    # save_model outside `nbops run` writes to the scratch folder; only the plain dump replaces the file
    run([sys.executable, "-c", code], root, env)
    assert model_file.read_bytes() != recorded
    result = nbops(root, env, "promote", MODEL, check=False)
    refused(result, f"models/{MODEL}.skops: not the file stage 'train' recorded", "outside the pipeline")
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


@pytest.mark.timeout(1800)  # minutes on an idle machine; a shared one can be ten times slower
def test_ten_promotions_at_once_publish_ten_versions_and_say_they_wait(project):
    root, env = project
    procs = [subprocess.Popen(["nbops", "promote", MODEL, "--json"], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(10)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "Unable to acquire lock" not in err and "Traceback" not in err
    versions = sorted((json.loads(out)["version"] for out, _ in outputs), key=lambda v: tuple(map(int, v.split("."))))
    assert versions == [f"0.{i}.0" for i in range(1, 11)]
    # those that waited said for whom, as it happened: another of these promotions, by pid
    waits = [line for _, err in outputs for line in err.splitlines() if line.startswith("nbops: waiting for ")]
    assert waits, "nobody said they were waiting"
    pids = {str(p.pid) for p in procs}
    for line in waits:
        held_by = line.split("): pid ", 1)[1].split()[0]
        assert held_by in pids and "promote failure-predictor → staging" in line and " UTC (" in line, line
    assert not list((Path(env["NBOPS_REGISTRY"]) / MODEL).glob(".*"))  # no lock, no build folder left


@pytest.mark.timeout(1800)  # minutes on an idle machine; a shared one can be ten times slower
def test_promotions_killed_at_random_moments_never_stop_the_next_one(project):
    """SIGKILL a promotion's whole process group at a random moment, 20 times; after each kill a
    promotion succeeds. The moments are spread over one promotion's duration (stratified random),
    so kills land in start-up and DVC's status, in the build and the gates under the registry
    lock, and (rarely: it is brief) in publishing."""
    import random

    from nbops.promotion.promote import promote
    from nbops.models.registry import Registry

    root, env = project
    registry = Registry(env["NBOPS_REGISTRY"])
    folder = Path(env["NBOPS_REGISTRY"]) / MODEL
    dvc_tmp_before = {p.name: p.read_bytes() for p in (root / ".dvc/tmp").iterdir() if p.is_file()}
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    started = time.monotonic()
    nbops(root, env, "promote", MODEL)
    duration = time.monotonic() - started
    landed = {"before the registry lock": 0, "under the lock (build, gates)": 0, "after publishing": 0}
    kills = finished_first = 0
    with environment(env):  # the promotions after each kill run in this process: nbops.promote, as in a cell
        while kills < 20:
            versions_before = registry.versions(MODEL)
            delay = (kills + rng.random()) / 20 * duration * 0.95
            proc = subprocess.Popen(["nbops", "promote", MODEL], cwd=root, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.wait() != -signal.SIGKILL:  # it finished before the kill: not a kill, try again
                finished_first += 1
                assert finished_first <= 10, f"promotions kept finishing before the kill (seed {seed})"
                duration *= 0.8
                continue
            kills += 1
            if any(folder.glob(".tmp-*")):  # the build folder is made as soon as the lock is taken
                landed["under the lock (build, gates)"] += 1
            elif registry.versions(MODEL) != versions_before:
                landed["after publishing"] += 1
            else:
                landed["before the registry lock"] += 1
            result = promote(MODEL, root=root)
            assert result.ok and registry.stages(MODEL)["staging"] == result.version == registry.versions(MODEL)[-1]
    print(f"20 kills (seed {seed}): {landed}; {time.monotonic() - started:.0f} s")
    assert landed["before the registry lock"] >= 1 and landed["under the lock (build, gates)"] >= 1, (landed, seed)
    assert not list(folder.glob(".tmp-*")) and not list(folder.glob(".stages.json.*")) and not (folder / ".lock").exists()
    # DVC's own files were never touched (no lock taken, no rwlock written), nor git's index lock
    assert {p.name: p.read_bytes() for p in (root / ".dvc/tmp").iterdir() if p.is_file()} == dvc_tmp_before
    assert not (root / ".git/index.lock").exists()


def test_production_assigns_the_staging_version_holding_the_same_model(project):
    root, env = project
    staged = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    before = registry_state(env)
    dry = nbops(root, env, "promote", MODEL, "--to", "production", "--dry-run")
    assert f"dry run: {MODEL} 0.1.0, which holds the same model, would be assigned to production (no new version)" in dry.stdout
    dry_json = json.loads(nbops(root, env, "promote", MODEL, "--to", "production", "--dry-run", "--json").stdout)
    assert dry_json["action"] == "assign" and dry_json["version"] == "0.1.0" and dry_json["ok"]
    assert registry_state(env) == before
    out = json.loads(nbops(root, env, "promote", MODEL, "--to", "production", "--git-tag", "--json").stdout)
    assert out["action"] == "assign" and out["version"] == "0.1.0" and out["path"] == staged["path"]
    assert f"{MODEL}@v0.1.0" in out["tags"] and any(t.startswith(f"{MODEL}#production") for t in out["tags"])
    listed = json.loads(nbops(root, env, "models", "list", "--json").stdout)
    assert listed == [{"name": MODEL, "latest": "0.1.0", "versions": ["0.1.0"], "stages": {"staging": "0.1.0", "production": "0.1.0"}}]
    history = json.loads((Path(env["NBOPS_REGISTRY"]) / MODEL / "stages.json").read_text())["history"]
    assert [(h["stage"], h["version"]) for h in history] == [("staging", "0.1.0"), ("production", "0.1.0")]


def test_production_does_not_take_a_staging_version_with_a_dirty_lineage(project):
    root, env = project
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params + "# an uncommitted comment\n")
    nbops(root, env, "promote", MODEL)
    (root / "params.yaml").write_text(params)
    out = json.loads(nbops(root, env, "promote", MODEL, "--to", "production", "--json").stdout)
    assert out["action"] == "publish" and out["version"] == "0.2.0"
    assert any("promoted from uncommitted changes" in note for note in out["notes"])


def test_registry_versions_respect_the_umask(project):
    root, env = project
    out = run(["sh", "-c", f"umask 002 && exec nbops promote {MODEL} --json"], root, env).stdout
    package = Path(json.loads(out)["path"])
    for path in [package, *package.rglob("*")]:
        expected = 0o775 if path.is_dir() else 0o664
        assert path.stat().st_mode & 0o777 == expected, f"{path}: {oct(path.stat().st_mode & 0o777)}"


def test_an_unwritable_registry_is_a_one_line_error(project):
    root, env = project
    result = nbops(root, {**env, "NBOPS_REGISTRY": "/proc/nbops-registry"}, "promote", MODEL, check=False)
    refused(result, "registry /proc/nbops-registry: cannot write", "point NBOPS_REGISTRY")
    assert result.stderr.count("\n") == 1


def test_kill_mid_promotion_leaves_no_half_package(project):
    root, env = project
    nbops(root, env, "promote", MODEL)
    registry = Path(env["NBOPS_REGISTRY"]) / MODEL
    stages_before = (registry / "stages.json").read_text()
    proc = subprocess.Popen(["nbops", "promote", MODEL], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(registry.glob(".tmp-*/*")) and proc.poll() is None:
        time.sleep(0.01)
    building = sorted(p.name for p in registry.glob(".tmp-*/*"))
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # the kill landed: the promotion had not finished on its own
    assert building, "the package build never started"
    assert list(registry.glob(".tmp-*")), "the half-built package was there when the kill landed"
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
        nbformat.v4.new_code_cell(f"%nbops promote {MODEL} --dry-run --bump major"),
        nbformat.v4.new_code_cell(f"%nbops promote {MODEL} --to production --dry-run"),
    ])
    with environment(env):
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(root)}}, timeout=300).execute()
    first = nb.cells[0].outputs[0]["data"]
    assert "text/html" in first and "promoted</span> to <b>staging</b> as version <b>0.1.0</b>" in first["text/html"]
    assert "would be promoted" in nb.cells[1].outputs[-1]["data"]["text/html"]
    assert "1.0.0" in nb.cells[2].outputs[-1]["data"]["text/html"]
    # production would take staging's version, which holds the same model
    assert "would be assigned</span> to <b>production</b> as version <b>0.1.0</b>" in nb.cells[3].outputs[-1]["data"]["text/html"]
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
    python = str(fresh_venv(home / "venv", env, out["wheel"]))
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


def test_package_carries_the_training_profile_and_monitor_reads_it(project):
    """save_model(reference=X_train) → models/<name>.profile.json (a DVC out) → profile.json in
    the package → `nbops monitor` on the project's own data: ok on held-out rows, drift on shifted."""
    import zipfile

    import pandas as pd

    root, env = project
    out = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    package = Path(out["path"])
    manifest = json.loads((package / "manifest.json").read_text())
    train_rows = len(pd.read_csv(root / "data/features/train.csv"))
    assert manifest["profile"]["file"] == "profile.json" and manifest["profile"]["rows"] == train_rows
    assert manifest["profile"]["columns"] == [c["name"] for c in manifest["signature"]["columns"]]
    assert (package / "profile.json").read_bytes() == (root / "models" / f"{MODEL}.profile.json").read_bytes()
    lock = (root / "dvc.lock").read_text()
    assert f"models/{MODEL}.profile.json" in lock
    with zipfile.ZipFile(package / manifest["wheel"]) as wheel:  # serving does not need it: not in the wheel
        assert not [n for n in wheel.namelist() if n.endswith("profile.json")]
    assert not [n for n in out["notes"] if "reference profile" in n]

    held_out = nbops(root, env, "monitor", MODEL, "--data", "data/features/test.csv", "--json", "--fail-on", "drift", check=False)
    assert held_out.returncode == 0, held_out.stdout + held_out.stderr
    assert not json.loads(held_out.stdout)["dataset_drift"]["drifted"]
    shifted = pd.read_csv(root / "data/features/test.csv")
    for column in ("Air temperature [K]", "Process temperature [K]", "Torque [Nm]"):
        shifted[column] = shifted[column] * 1.08
    for column in ("Rotational speed [rpm]", "Tool wear [min]"):
        shifted[column] = (shifted[column] * 1.08).round().astype(int)
    shifted.to_csv(root / "shifted.csv", index=False)
    drifted = nbops(root, env, "monitor", MODEL, "--data", "shifted.csv", "--fail-on", "drift", check=False)
    assert drifted.returncode == 4 and "❌ drift" in drifted.stdout


def test_promotion_without_reference_says_what_monitoring_lacks(project):
    root, env = project
    train = root / "notebooks" / "train.py"
    train.write_text(train.read_text().replace(", reference=X_train)", ")"))
    dvc_yaml = root / "dvc.yaml"  # a project that never recorded a profile (stage add keeps outs it finds)
    dvc_yaml.write_text(dvc_yaml.read_text().replace(f"      - models/{MODEL}.profile.json\n", ""))
    nbops(root, env, "stage", "add", "notebooks/train.py", "--deps", "data/features/train.csv")
    assert "profile.json" not in dvc_yaml.read_text()
    run(["dvc", "repro"], root, env)
    out = json.loads(nbops(root, env, "promote", MODEL, "--json").stdout)
    assert out["ok"] and not (Path(out["path"]) / "profile.json").exists()
    assert any("no reference profile" in n and "reference=X_train" in n and "drift" in n for n in out["notes"])
    monitored = nbops(root, env, "monitor", MODEL, "--data", "data/features/test.csv", check=False)
    assert monitored.returncode == 1 and "has no reference profile" in monitored.stderr and "Traceback" not in monitored.stderr

