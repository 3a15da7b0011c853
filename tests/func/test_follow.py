"""Serving that follows a registry stage (runtime/follow.py) and shadow scoring (runtime/shadow.py),
in-process: real packages in a real registry (nbops.models.registry), real model loading and checks, the
real ASGI app called as uvicorn calls it. The real server under load is in tests/e2e/test_follow.py."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nbops import runtime
from nbops.models.registry import Registry
from nbops.runtime import Follower, PackagedModel, PackageError, Shadow, StageSource
from nbops.testing import register_model

NAME = "m"


def training(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, (X["a"] + X["b"] > 0).astype(int)


def fitted(flip: bool = False, C: float = 1.0):
    """A small classifier; `flip` learns the opposite labels, so its answers tell it apart."""
    X, y = training()
    return make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X, 1 - y if flip else y)


@pytest.fixture(scope="module")
def models():
    return {"plain": fitted(), "flipped": fitted(flip=True), "other": fitted(C=0.01)}


@pytest.fixture(scope="module")
def published(tmp_path_factory, models) -> Path:
    """0.1.0 (plain, in production), 0.2.0 (flipped), 0.3.0 (plain, another C)."""
    work = tmp_path_factory.mktemp("published")
    X = training()[0]
    for model, stage in ((models["plain"], "production"), (models["flipped"], None), (models["other"], None)):
        register_model(work, NAME, model, X, version=None, stage=stage, registry=work / "registry")
    return work / "registry"


@pytest.fixture
def registry(published, tmp_path) -> Registry:
    """A copy of `published` for one test to change."""
    shutil.copytree(published, tmp_path / "registry")
    return Registry(tmp_path / "registry")


def follower(reg: Registry, stage: str = "production", **kwargs) -> tuple[Follower, list[str]]:
    lines: list[str] = []
    return Follower(StageSource(reg.root, NAME, stage), interval=0.05, log=lines.append, **kwargs), lines


ROWS = [{"a": 1.0, "b": 0.5}, {"a": -1.0, "b": -0.5}]


async def call(app, method: str, path: str, body: bytes = b"") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
        return await client.request(method, path, content=body, headers={"content-type": "application/json"})


def predict(app, rows=ROWS) -> httpx.Response:
    return asyncio.run(call(app, "POST", "/predict", json.dumps(rows).encode()))


# --- following a stage --------------------------------------------------------------------------


def test_the_follower_switches_on_promotion_and_rollback(registry):
    follow, lines = follower(registry)
    model = follow.load_current()
    assert (model.name, model.version, follow.version) == (NAME, "0.1.0", "0.1.0")
    switched: list[PackagedModel] = []
    assert follow.poll(switched.append) is False  # nothing moved: nothing read, nothing loaded

    registry.assign(NAME, "0.2.0", "production")  # a promotion
    assert follow.poll(switched.append) is True
    assert [m.version for m in switched] == ["0.2.0"] and follow.version == "0.2.0"
    assert switched[-1].predict(ROWS).tolist() == [0, 1]  # the flipped model, warmed up and answering
    registry.assign(NAME, "0.1.0", "production", reason="rollback")  # `nbops models assign m@0.1.0 production`
    assert follow.poll(switched.append) is True and follow.version == "0.1.0"
    assert switched[-1].predict(ROWS).tolist() == [1, 0]

    status = follow.status()
    assert status["switches"] == 2 and status["assigned"] == status["serving"] == "0.1.0"
    assert status["last_switch"]["from"] == "0.2.0" and status["last_switch"]["to"] == "0.1.0"
    assert set(status["last_switch"]["seconds"]) == {"read", "fetch", "load_and_warmup", "total"}
    assert [line.split(" in ")[0] for line in lines] == ["m@production: switched 0.1.0 → 0.2.0", "m@production: switched 0.2.0 → 0.1.0"]


def tamper_model(reg: Registry, version: str) -> None:
    path = Path(reg.root) / NAME / version / "model.skops"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))


def wrong_parity(reg: Registry, version: str) -> None:
    path = Path(reg.root) / NAME / version / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sample_predictions"] = [1 - p for p in manifest["sample_predictions"]]
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("break_it, reason", [(tamper_model, "sha256"), (wrong_parity, "does not predict its recorded sample")])
def test_a_version_failing_its_checks_is_not_switched_to(registry, break_it, reason):
    follow, lines = follower(registry)
    app = runtime.create_app(follow.load_current(), follower=follow)
    break_it(registry, "0.2.0")
    registry.assign(NAME, "0.2.0", "production")
    assert follow.poll(app.switch) is False
    assert follow.poll(app.switch) is False  # not tried again while it stays assigned
    assert len(lines) == 1 and lines[0].startswith("m@production = 0.2.0: not switched to, it failed its checks:")
    assert reason in lines[0] and lines[0].endswith("still serving 0.1.0")

    answer = predict(app)
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "0.1.0" and answer.json()["version"] == "0.1.0"
    health = asyncio.run(call(app, "GET", "/health")).json()
    assert health["version"] == "0.1.0"
    assert health["follow"]["assigned"] == "0.2.0" and health["follow"]["serving"] == "0.1.0"
    assert health["follow"]["failed"]["version"] == "0.2.0" and reason in health["follow"]["failed"]["error"]

    registry.assign(NAME, "0.3.0", "production")  # the next promotion is fine
    assert follow.poll(app.switch) is True and predict(app).json()["version"] == "0.3.0"
    registry.assign(NAME, "0.2.0", "production")  # moved away and back: tried (and refused) again
    assert follow.poll(app.switch) is False and len(lines) == 3 and predict(app).json()["version"] == "0.3.0"


def test_a_registry_that_cannot_be_read_keeps_the_server_serving(registry):
    follow, lines = follower(registry)
    app = runtime.create_app(follow.load_current(), follower=follow)
    stages = Path(registry.root) / NAME / "stages.json"
    good = stages.read_text()
    stages.write_text("{half a file")
    assert follow.poll(app.switch) is False and follow.poll(app.switch) is False
    assert len(lines) == 1 and "cannot read the registry" in lines[0] and "not a stages file" in lines[0]
    assert asyncio.run(call(app, "GET", "/health")).json()["follow"]["poll_error"]
    assert predict(app).json()["version"] == "0.1.0"
    stages.write_text(good.replace('"version": "0.1.0"', '"version": "0.3.0"', 1))
    assert follow.poll(app.switch) is True and lines[1] == "m@production: the registry reads again"
    assert asyncio.run(call(app, "GET", "/health")).json()["follow"]["poll_error"] is None


def test_the_follower_thread_switches_by_itself(registry):
    follow, lines = follower(registry)
    app = runtime.create_app(follow.load_current(), follower=follow)
    follow.start(app.switch)
    try:
        registry.assign(NAME, "0.3.0", "production")
        for _ in range(200):
            if app.model.version == "0.3.0":
                break
            threading.Event().wait(0.02)
        assert predict(app).headers["x-model-version"] == "0.3.0"
    finally:
        follow.stop()
    assert follow._thread is None


def test_nothing_assigned_is_an_error_for_the_champion_not_for_a_shadow(registry):
    with pytest.raises(PackageError, match="m@canary: no version is assigned to stage 'canary'"):
        follower(registry, "canary")[0].load_current()
    waiting, _ = follower(registry, "canary", required=False)
    assert waiting.load_current() is None
    registry.assign(NAME, "0.2.0", "canary")
    got: list[PackagedModel] = []
    assert waiting.poll(got.append) is True and got[0].version == "0.2.0"


# --- answers and in-flight requests -------------------------------------------------------------


def test_every_answer_names_the_version_that_served_it(registry):
    follow, _ = follower(registry)
    app = runtime.create_app(follow.load_current(), follower=follow)
    answers = [predict(app), asyncio.run(call(app, "GET", "/health")), asyncio.run(call(app, "GET", "/metadata")),
               predict(app, [{"a": "x", "b": 1.0}]), asyncio.run(call(app, "GET", "/nope"))]
    assert [a.status_code for a in answers] == [200, 200, 200, 422, 404]
    assert {a.headers["x-model-version"] for a in answers} == {"0.1.0"}
    assert answers[0].json()["version"] == answers[1].json()["version"] == answers[2].json()["version"] == "0.1.0"


def test_a_request_in_flight_finishes_on_the_version_it_arrived_on(registry):
    """The request has arrived (headers read) when the switch happens; its body comes after."""
    follow, _ = follower(registry)
    app = runtime.create_app(follow.load_current(), follower=follow)
    registry.assign(NAME, "0.2.0", "production")

    async def scenario():
        body_may_come, sent = asyncio.Event(), []

        async def receive():
            await body_may_come.wait()
            return {"type": "http.request", "body": json.dumps(ROWS).encode(), "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-type", b"application/json")]}
        in_flight = asyncio.create_task(app(scope, receive, send))
        await asyncio.sleep(0)  # the request has arrived and waits for its body
        await asyncio.get_running_loop().run_in_executor(None, follow.poll, app.switch)  # the follower's thread
        after = await call(app, "POST", "/predict", json.dumps(ROWS).encode())
        body_may_come.set()
        await in_flight
        return sent, after

    sent, after = asyncio.run(scenario())
    start, body = sent
    assert start["status"] == 200 and (b"x-model-version", b"0.1.0") in start["headers"]
    assert json.loads(body["body"])["version"] == "0.1.0" and json.loads(body["body"])["predictions"] == [1, 0]
    assert after.headers["x-model-version"] == "0.2.0" and after.json()["predictions"] == [0, 1]


def test_a_replaced_model_is_released(registry):
    import gc
    import weakref

    follow, _ = follower(registry)
    app = runtime.create_app(follow.load_current(), follower=follow)
    old = weakref.ref(app.model)
    assert predict(app).status_code == 200
    registry.assign(NAME, "0.3.0", "production")
    assert follow.poll(app.switch) is True
    gc.collect()
    assert old() is None  # nothing (app, follower, caches) keeps the replaced version alive


# --- shadow scoring ------------------------------------------------------------------------------


def test_shadow_scores_off_the_request_path_and_counts_agreement(registry):
    registry.assign(NAME, "0.2.0", "staging")  # the flipped model: it disagrees on every row
    champion_follow, _ = follower(registry)
    challenger_follow, _ = follower(registry, "staging", required=False)
    shadow = Shadow(follower=challenger_follow, model=challenger_follow.load_current(), queue_size=100)
    app = runtime.create_app(champion_follow.load_current(), follower=champion_follow, shadow=shadow)
    shadow.start()
    try:
        for _ in range(5):
            answer = predict(app)
            assert answer.json()["predictions"] == [1, 0] and answer.headers["x-model-version"] == "0.1.0"
        assert shadow.drain()
        status = asyncio.run(call(app, "GET", "/health")).json()["shadow"]
        assert (status["ref"], status["version"], status["scored"], status["rows"]) == ("m@staging", "0.2.0", 5, 10)
        assert status["rows_agreeing"] == 0 and status["agreement"] == 0.0 and status["dropped"] == 0

        registry.assign(NAME, "0.3.0", "staging")  # the challenger follows its stage too
        # Its own thread (started by shadow.start) polls every 0.05 s and may switch first; after
        # this poll, one of the two has (polls take turns).
        challenger_follow.poll(shadow.switch)
        assert challenger_follow.version == "0.3.0" and challenger_follow.switches == 1
        predict(app)
        assert shadow.drain() and shadow.status()["rows_agreeing"] == 2 and shadow.status()["version"] == "0.3.0"
    finally:
        shadow.stop()


def test_a_full_shadow_queue_drops_and_counts_never_waits(registry):
    challenger = PackagedModel.load(Path(registry.root) / NAME / "0.2.0")
    shadow = Shadow(model=challenger, queue_size=2)  # its worker not started: nothing leaves the queue
    app = runtime.create_app(PackagedModel.load(Path(registry.root) / NAME / "0.1.0"), shadow=shadow)
    for _ in range(5):
        assert predict(app).status_code == 200
    assert shadow.status()["queued"] == 2 and shadow.dropped == 3
    shadow.start()
    assert shadow.drain()
    shadow.stop()
    assert (shadow.scored, shadow.dropped) == (2, 3)


def test_a_challenger_with_another_signature_validates_the_request_itself(registry, tmp_path, models):
    X, y = training()
    wider = X.assign(c=X["a"] * 2)
    reg = Registry(tmp_path / "other")
    register_model(tmp_path, "wide", make_pipeline(StandardScaler(), LogisticRegression()).fit(wider, y), wider,
                   stage=None, registry=reg.root)
    challenger = PackagedModel.load(Path(reg.root) / "wide" / "0.1.0")
    shadow = Shadow(model=challenger, queue_size=10, log=(lines := []).append)
    app = runtime.create_app(PackagedModel.load(Path(registry.root) / NAME / "0.1.0"), shadow=shadow)
    shadow.start()
    try:
        assert predict(app).status_code == 200  # the champion takes a and b; the challenger also needs c
        assert shadow.drain()
    finally:
        shadow.stop()
    assert (shadow.scored, shadow.failed) == (0, 1)
    assert "refused a request the champion took" in lines[0] and "missing column 'c'" in lines[0]
