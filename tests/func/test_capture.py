"""Request capture, request ids and /metrics on real servers over 127.0.0.1: `python -m <package>
serve --capture DIR` of a package folder (the runtime copied in, as a wheel holds it)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from nbops.runtime import read_records
from nbops.testing import command_env

from .test_runtime import Server, _installed_copy, _package, _save, _training_frame

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The example's kind of model: one-hot Type + numbers into gradient-boosted trees."""
    root = tmp_path_factory.mktemp("project")
    X, y = _training_frame(400)
    X = X.drop(columns="Running")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(categories=[["L", "M", "H"]], handle_unknown="ignore"), ["Type"]),
                                remainder="passthrough"),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    ).fit(X, y)
    return _package(root, _save(model, "failure-predictor", X.head(12), root), root / "package")


def sample_records(package, n=None):
    sample = json.loads((package / "manifest.json").read_text())["sample_input"]
    return [dict(zip(sample["columns"], row)) for row in sample["data"][:n]]


def serve(package, where, *args) -> Server:
    return Server(_installed_copy(package, where / "site"), where / "server.log", *args)


def metrics(server: Server) -> dict:
    """GET /metrics parsed by Prometheus' own text parser: {(sample name, labels): value}."""
    answer = server.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(parsed: dict, name: str, **labels) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0)


def stop_with_sigterm(server: Server) -> tuple[int, str]:
    server.client.close()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=60)
    return code, server.log.read_text()


@pytest.fixture(scope="module")
def served(package, tmp_path_factory):
    where = tmp_path_factory.mktemp("served")
    server = serve(package, where, "--capture", str(where / "captured"), "--capture-flush", "0.05")
    server.captured = where / "captured"
    yield server
    server.client.close()
    server.stop()


def test_the_server_says_it_captures(served):
    line = served.log.read_text().splitlines()[0]
    assert f"capturing 100% of scored requests under {served.captured}" in line and "GET /metrics" in line


def test_every_answer_carries_a_request_id(served, package):
    client, payload = served.client, sample_records(package, 2)
    given = {"X-Request-ID": "order-42:retry/1"}
    for answer in (client.post("/predict", json=payload, headers=given), client.post("/predict", json=[{}], headers=given),
                   client.get("/health", headers=given), client.get("/metrics", headers=given),
                   client.get("/nope", headers=given), client.get("/predict", headers=given)):
        assert answer.headers["x-request-id"] == "order-42:retry/1", (answer.status_code, answer.headers)
    made = [client.post("/predict", json=payload).headers["x-request-id"] for _ in range(3)]
    assert all(HEX_ID.fullmatch(rid) for rid in made) and len(set(made)) == 3
    for insane in ("x" * 129, "two words", "<script>", "ümlaut".encode()):
        echoed = client.post("/predict", json=payload, headers={"X-Request-ID": insane}).headers["x-request-id"]
        assert HEX_ID.fullmatch(echoed), insane
    assert client.get("/health", headers={"X-Request-ID": "y" * 128}).headers["x-request-id"] == "y" * 128


def test_metrics_count_what_was_served(served, package):
    client, payload = served.client, sample_records(package, 3)
    before = metrics(served)
    for _ in range(5):
        assert client.post("/predict", json=payload).status_code == 200
    assert client.post("/predict", json={"records": []}).status_code == 422
    assert client.get("/no/such/route").status_code == 404
    after = metrics(served)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("nbops_http_requests_total", route="/predict", status="200") == 5
    assert delta("nbops_http_requests_total", route="/predict", status="422") == 1
    assert delta("nbops_http_requests_total", route="other", status="404") == 1
    assert delta("nbops_http_request_duration_seconds_count", route="/predict") == 6
    assert delta("nbops_http_request_duration_seconds_bucket", route="/predict", le="+Inf") == 6
    assert delta("nbops_rows_scored_total", model="failure-predictor", version="0.1.0", role="champion") == 15
    assert delta("nbops_capture_captured_records_total") == 5
    assert value(after, "nbops_model_info", model="failure-predictor", version="0.1.0") == 1
    assert value(after, "nbops_capture_sample_ratio") == 1.0


def test_captured_records_are_what_was_answered(served, package):
    payload = sample_records(package)
    answers = {}
    for i in range(len(payload)):
        rid = f"join-me-{i}"
        answer = served.client.post("/predict", json=payload[: i + 1], headers={"X-Request-ID": rid})
        answers[rid] = answer.json()
    deadline = time.monotonic() + 30
    while True:
        found = {r["request_id"]: r for r in read_records(served.captured) if r["request_id"] in answers}
        if len(found) == len(answers) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(found) == set(answers)
    for rid, answer in answers.items():
        record, rows = found[rid], answer["predictions"]
        assert record["predictions"] == answer["predictions"] and record["probabilities"] == answer["probabilities"]
        assert record["rows"] == len(rows) and record["classes"] == answer["classes"] == [0, 1]
        sent = payload[: len(rows)]
        assert record["inputs"] == {c: [r[c] for r in sent] for c in sent[0]}
        assert (record["model"], record["version"], record["role"]) == ("failure-predictor", "0.1.0", "champion")
        assert 0 < record["latency_ms"] < 10_000 and record["ts"].endswith("Z")


def test_bad_capture_options_are_one_line(package, tmp_path):
    pkg = _installed_copy(package, tmp_path / "site")
    (tmp_path / "file").write_text("")
    for args, message in [
        (["--capture", str(tmp_path / "file" / "cap")], "--capture " + str(tmp_path / "file" / "cap") + ": cannot write there"),
        (["--sample", "0.5"], "--sample needs --capture DIR"),
        (["--capture", str(tmp_path / "cap"), "--sample", "1.5"], "--sample 1.5: the share of requests captured must be above 0"),
    ]:
        result = subprocess.run([__import__("sys").executable, "-m", pkg.name, "serve", "--port", "0", *args],
                                cwd=pkg.parent, env=_env(pkg), capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and result.stderr.startswith(f"error: {message}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def _env(pkg):
    from .test_runtime import _isolated_env

    return _isolated_env(pkg.parent)


@pytest.mark.slow
def test_under_load_drops_are_counted_and_sigterm_writes_the_buffer(package, tmp_path):
    """8 concurrent clients against a 20-request buffer that is never flushed before the stop:
    20 captured, the rest dropped and counted (in /metrics and the shutdown line), all 20 on disk
    after SIGTERM, the process exiting 0."""
    captured = tmp_path / "captured"
    server = serve(package, tmp_path, "--capture", str(captured), "--capture-buffer", "20", "--capture-flush", "3600")
    payload = sample_records(package, 4)

    def client(worker: int) -> dict[str, dict]:
        answers = {}
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(15):
                rid = f"w{worker}-{i}"
                answer = http.post("/predict", json=payload, headers={"X-Request-ID": rid})
                assert answer.status_code == 200 and answer.headers["x-request-id"] == rid
                answers[rid] = answer.json()
        return answers

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = {rid: a for part in pool.map(client, range(8)) for rid, a in part.items()}
        assert len(answers) == 120
        parsed = metrics(server)
        assert value(parsed, "nbops_capture_captured_records_total") == 20
        assert value(parsed, "nbops_capture_dropped_records_total", reason="buffer_full") == 100
        assert value(parsed, "nbops_capture_written_records_total") == 0  # all still in memory
        assert value(parsed, "nbops_capture_buffered_records") == 20
        assert not list(captured.rglob("*.jsonl"))
    except BaseException:
        server.stop()
        raise
    code, log = stop_with_sigterm(server)
    assert code == 0, log
    assert f"capture: 20 records written under {captured}; 100 dropped because the buffer was full" in log
    records = list(read_records(captured))
    assert len(records) == 20 and len({r["request_id"] for r in records}) == 20
    for record in records:
        assert record["predictions"] == answers[record["request_id"]]["predictions"]


@pytest.mark.slow
def test_a_kill_loses_at_most_the_buffer(package, tmp_path):
    captured = tmp_path / "captured"
    server = serve(package, tmp_path, "--capture", str(captured), "--capture-flush", "0.05")
    payload = sample_records(package, 2)
    try:
        for i in range(40):
            assert server.client.post("/predict", json=payload, headers={"X-Request-ID": f"r{i}"}).status_code == 200
        deadline = time.monotonic() + 30
        while value(metrics(server), "nbops_capture_written_records_total") < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(40, 60):
            server.client.post("/predict", json=payload, headers={"X-Request-ID": f"r{i}"})
    finally:
        server.client.close()
        server.process.kill()
        server.process.wait(timeout=30)
    ids = [r["request_id"] for r in read_records(captured)]  # every line complete, or a torn last one skipped
    assert ids[:40] == [f"r{i}" for i in range(40)]
    assert set(ids) <= {f"r{i}" for i in range(60)} and len(ids) == len(set(ids))


def test_a_sigterm_as_soon_as_the_server_says_it_serves_stops_it_cleanly(package, tmp_path):
    """The start-up line is the signal a supervisor waits for; a SIGTERM sent the moment it is
    written (here: by the line's own logger, before uvicorn listens for signals) stops the server
    gracefully — capture flushed, exit status 0 — instead of being lost and the server running on."""
    captured = tmp_path / "captured"
    script = f"""
import os, signal, sys
from nbops import runtime
def log(line):
    print(line, file=sys.stderr, flush=True)
    if "serving on" in line:
        os.kill(os.getpid(), signal.SIGTERM)
runtime.serve({str(package)!r}, port=0, capture={str(captured)!r}, log=log)
print("returned", file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=command_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "serving on" in done.stderr and "capture: 0 records written" in done.stderr and "returned" in done.stderr
