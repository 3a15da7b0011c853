"""`nbops serve NAME@production` follows the stage under continuous load: a real server process,
8 concurrent clients over 127.0.0.1, promotions, a version that fails its checks and a rollback
(marked slow; ~30 s)."""

from __future__ import annotations

import json
import time
from itertools import groupby
from pathlib import Path

import pytest

from nbops.models.registry import Registry
from nbops.testing import Load, ServerProcess, command_env, register_model

from ..func.test_follow import NAME, ROWS, fitted, training

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path) -> Registry:
    reg = Registry(tmp_path / "registry")
    X = training()[0]
    for model in (fitted(), fitted(flip=True), fitted(C=0.01), fitted(C=0.02)):
        register_model(tmp_path, NAME, model, X, version=None, stage=None, registry=reg.root)
    reg.assign(NAME, "0.1.0", "production")
    manifest = Path(reg.root) / NAME / "0.4.0" / "manifest.json"  # 0.4.0 will fail its parity check
    broken = json.loads(manifest.read_text())
    broken["sample_predictions"] = [1 - p for p in broken["sample_predictions"]]
    manifest.write_text(json.dumps(broken))
    return reg


def wait_for(server: ServerProcess, check, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = server.get("/health")
        if check(health):
            return health
        time.sleep(0.05)
    raise AssertionError(f"the server did not get there in {timeout} s: {health}")


def test_switches_under_load_fail_no_request_and_roll_back(registry, tmp_path):
    env = command_env(tmp_path)
    server = ServerProcess(["nbops", "serve", f"{NAME}@production", "--registry", str(registry.root), "--port", "0",
                            "--poll", "0.2"], tmp_path, env, tmp_path / "server.log")
    load = None
    try:
        load = Load(server.url, json.dumps(ROWS).encode(), clients=8).start()
        time.sleep(1.0)
        for version in ("0.2.0", "0.3.0"):  # two promotions
            registry.assign(NAME, version, "production")
            wait_for(server, lambda h: h["version"] == version)
            time.sleep(0.5)
        registry.assign(NAME, "0.4.0", "production")  # fails its checks: not switched to
        health = wait_for(server, lambda h: (h["follow"]["failed"] or {}).get("version") == "0.4.0")
        assert health["version"] == "0.3.0" and "recorded sample predictions" in health["follow"]["failed"]["error"]
        time.sleep(0.5)
        registry.assign(NAME, "0.1.0", "production", reason="rollback")
        switched_back = wait_for(server, lambda h: h["version"] == "0.1.0")
        time.sleep(0.5)
        clients = load.per_client()
        answers = load.stop()
    finally:
        if load is not None:
            load.stop()
        server.stop()
    log = server.log.read_text()

    failures = [a for a in answers if not a.ok]
    assert not failures, failures[:5]
    assert len(answers) > 200
    # Each version answered as itself: the flipped 0.2.0 predicts the opposite of the others.
    expected = {"0.1.0": [1, 0], "0.2.0": [0, 1], "0.3.0": [1, 0]}
    assert {a.version for a in answers} == set(expected)
    assert all(a.detail == expected[a.version] for a in answers)
    # One atomic switch at a time: no client ever went back to a version it had left, but for the rollback.
    for seen in clients:
        steps = [version for version, _ in groupby(a.version for a in seen)]
        assert _is_subsequence(steps, ["0.1.0", "0.2.0", "0.3.0", "0.1.0"]), steps
    assert switched_back["follow"]["switches"] == 3
    assert "Traceback" not in log
    assert log.count("m@production: switched ") == 3 and "m@production = 0.4.0: not switched to" in log


def _is_subsequence(steps: list[str], order: list[str]) -> bool:
    position = 0
    for step in steps:
        while position < len(order) and order[position] != step:
            position += 1
        if position == len(order):
            return False
        position += 1
    return True
