"""Across machines through S3-compatible storage: a real S3-API server (moto's standalone server)
on 127.0.0.1 holds both the DVC remote and the model registry. A training project promotes into
the bucket; a server in another process, in another clone, follows `@production` from the bucket,
switches on the next promotion and switches back on a rollback. Credentials come from environment
variables only and are printed nowhere (marked slow)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from nbops.testing import S3Server, ServerProcess, command_env, copy_project, init_repo, run, set_params

from ..conftest import REPO

pytestmark = pytest.mark.slow
MODEL = "failure-predictor"

for module, package in (("moto.server", "moto[server]"), ("s3fs", "s3fs"), ("dvc_s3", "dvc-s3")):
    pytest.importorskip(module, reason=f"S3 tests need {package}: pip install -e '.[dev]'")


def post(url: str, payload: object) -> tuple[dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers), json.loads(response.read())


def wait_for_version(server: ServerProcess, version: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = server.get("/health")
        if health["version"] == version:
            return health
        time.sleep(0.1)
    raise AssertionError(f"the server still serves {health['version']}, not {version}: {health}\n{server.log.read_text()}")


def test_train_on_one_machine_serve_from_the_bucket_on_another(tmp_path):
    outputs: list[str] = []

    def sh(args, cwd, env):
        result = run(args, cwd, env)
        outputs.append(result.stdout + result.stderr)
        return result

    with S3Server(tmp_path) as s3:
        bucket = s3.make_bucket("nbops-shared")
        registry = f"{bucket}/registry"
        env = command_env(tmp_path, s3.env)

        # The training machine: the example project, its DVC remote and its registry in the bucket.
        trainer = copy_project(REPO, tmp_path / "training-machine")
        set_params(trainer, {"ingest": {"window_days": 9}, "train": {"max_iter": 50},
                             "promote": {"thresholds": {"roc_auc": ">= 0.8"}, "tolerance": 1.0, "registry": registry}})
        init_repo(trainer, env)
        sh(["dvc", "remote", "add", "-d", "shared", f"{bucket}/dvc"], trainer, env)
        sh(["dvc", "remote", "modify", "shared", "endpointurl", s3.endpoint], trainer, env)
        sh(["dvc", "repro"], trainer, env)
        sh(["git", "add", "-A"], trainer, env)
        sh(["git", "commit", "-q", "-m", "reproduced"], trainer, env)
        first = json.loads(sh(["nbops", "promote", MODEL, "--to", "production", "--json"], trainer, env).stdout)
        assert first["ok"] and first["version"] == "0.1.0" and first["path"].startswith(registry)
        sh(["dvc", "push"], trainer, env)

        # The serving machine: a clone that pulls the pipeline's outputs from the bucket, and a
        # server following production from the bucket.
        server_machine = tmp_path / "serving-machine"
        sh(["git", "clone", "-q", str(trainer), str(server_machine)], tmp_path, env)
        sh(["dvc", "pull"], server_machine, env)
        model_file = Path("models") / f"{MODEL}.skops"
        assert (server_machine / model_file).read_bytes() == (trainer / model_file).read_bytes()
        sample = json.loads((trainer / "models" / f"{MODEL}.json").read_text())["sample_input"]
        rows = [dict(zip(sample["columns"], row)) for row in sample["data"][:3]]

        server = ServerProcess(["nbops", "serve", f"{MODEL}@production", "--registry", registry, "--port", "0",
                                "--poll", "0.3"], server_machine, env, tmp_path / "server.log")
        try:
            headers, answer = post(server.url + "/predict", rows)
            assert headers["x-model-version"] == answer["version"] == "0.1.0"

            # Retrain on the training machine and promote: the server switches.
            set_params(trainer, {"train": {"max_iter": 60}})
            sh(["dvc", "repro"], trainer, env)
            sh(["git", "commit", "-q", "-am", "retrained"], trainer, env)
            second = json.loads(sh(["nbops", "promote", MODEL, "--to", "production", "--json"], trainer, env).stdout)
            assert second["ok"] and second["version"] == "0.2.0"
            health = wait_for_version(server, "0.2.0")
            assert health["follow"]["registry"] == registry and health["follow"]["last_switch"]["from"] == "0.1.0"
            headers, answer = post(server.url + "/predict", rows)
            assert headers["x-model-version"] == answer["version"] == "0.2.0"

            # A rollback from the training machine: the server switches back.
            sh(["nbops", "models", "assign", f"{MODEL}@0.1.0", "production", "--reason", "rollback"], trainer, env)
            health = wait_for_version(server, "0.1.0")
            assert health["follow"]["switches"] == 2 and health["follow"]["poll_error"] is None
            outputs.append(json.dumps(health))
        finally:
            server.stop()
        outputs.append(server.log.read_text())

    assert "switched 0.2.0 → 0.1.0" in outputs[-1]
    secret = s3.env["AWS_SECRET_ACCESS_KEY"]
    assert not [out for out in outputs if secret in out]
