"""`nbops monitor` on a real package in a real registry, with capture files written as the
runtime writes them (INTERFACES.md §2; nbops.testing.write_capture), labels files and the CLI in
a subprocess (exit codes). The pipeline-built package is monitored in tests/e2e/test_promote.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import nbops
from nbops.testing import command_env, register_model, run, write_capture

pytestmark = pytest.mark.slow  # the CLI in subprocesses, parallel readers
MODEL = "churn"


def draw(rng: np.random.Generator, n: int, shift: float = 0.0, plans=(0.5, 0.3, 0.2)) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame({
        "tenure": rng.gamma(3.0, 8.0, n).round(1) + shift * 10,
        "spend": rng.normal(60 + shift * 25, 15, n).round(2),
        "plan": rng.choice(["basic", "plus", "pro"], n, p=list(plans)),
        "calls": rng.poisson(2 + shift * 3, n),
    })
    logit = -0.06 * frame["tenure"] + 0.03 * (frame["spend"] - 60) + 0.5 * frame["calls"] + (frame["plan"] == "basic") - 1
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return frame, labels


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project holding a registry with one packaged model (saved with reference=X_train)."""
    root = tmp_path_factory.mktemp("monitor")
    (root / "params.yaml").write_text("monitor:\n  tolerance: 0.05\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    X_train, y_train = draw(rng, 4000)
    X_test, y_test = draw(rng, 1500)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["plan"]), remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(X_train, y_train)
    scores = model.predict_proba(X_test)[:, 1]
    metrics = {"roc_auc": round(roc_auc_score(y_test, scores), 6), "recall": round(recall_score(y_test, model.predict(X_test)), 6),
               "f1": round(f1_score(y_test, model.predict(X_test)), 6)}
    register_model(root, MODEL, model, X_train, metrics=metrics)
    return {"root": root, "model": model, "env": command_env(root), "metrics": metrics}


def capture(project, folder: Path, frame: pd.DataFrame, **kwargs) -> list[str]:
    model = project["model"]
    return write_capture(
        folder, MODEL, frame, predictions=model.predict(frame).tolist(), probabilities=model.predict_proba(frame).tolist(),
        classes=[0, 1], **kwargs,
    )


def cli(project, *args, check=False):
    return run(["nbops", "monitor", MODEL, *args, "--registry", str(project["root"] / "registry")], project["root"], project["env"], check=check)


def test_profile_recorded_and_packaged(project):
    root = project["root"]
    manifest = json.loads((root / "registry" / MODEL / "0.1.0" / "manifest.json").read_text())
    assert manifest["profile"]["file"] == "profile.json"
    assert manifest["profile"]["columns"] == ["tenure", "spend", "plan", "calls"]
    assert manifest["profile"]["rows"] == 4000
    assert manifest["profile"]["holds"] == ["quantile bins", "categories", "scores", "sample"]
    packaged = root / "registry" / MODEL / "0.1.0" / "profile.json"
    assert packaged.read_bytes() == (root / "models" / f"{MODEL}.profile.json").read_bytes()
    assert packaged.stat().st_size < 120_000


def test_fresh_sample_is_ok_and_shifted_data_drifts(project, tmp_path):
    rng = np.random.default_rng(1)
    fresh, _ = draw(rng, 3000)
    capture(project, tmp_path / "fresh", fresh)
    ok = cli(project, "--capture", str(tmp_path / "fresh"), "--json", "--fail-on", "warn")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    result = json.loads(ok.stdout)
    assert result["status"] == "ok" and result["rows"] == 3000 and result["requests"] == 3000
    assert not result["dataset_drift"]["drifted"] and not result["prediction"]["drifted"]
    assert result["columns"]["spend"]["test"] == "Wasserstein distance (normed)"
    assert result["columns"]["plan"]["test"] == "Jensen-Shannon distance"

    shifted, _ = draw(rng, 3000, shift=1.0, plans=(0.2, 0.3, 0.5))
    capture(project, tmp_path / "shifted", shifted, rows_per_request=7)
    html, metrics = tmp_path / "report.html", tmp_path / "monitor.json"
    drifted = cli(project, "--capture", str(tmp_path / "shifted"), "--fail-on", "drift", "--html", str(html), "--metrics", str(metrics))
    assert drifted.returncode == 4, drifted.stdout + drifted.stderr
    assert "## Monitoring churn 0.1.0: ❌ drift" in drifted.stdout and "| spend | Wasserstein distance (normed) |" in drifted.stdout
    saved = json.loads(metrics.read_text())
    assert saved["dataset_drift"]["drifted"] and saved["columns"]["spend"]["drifted"] and saved["columns"]["plan"]["drifted"]
    assert saved["requests"] == 429 and saved["rows"] == 3000
    page = html.read_text()
    assert len(page.encode()) < 300_000 and page.count("<svg") == 5
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing fetched from a network
    # without --fail-on the run reports and succeeds
    assert cli(project, "--capture", str(tmp_path / "shifted")).returncode == 0


def test_warnings_unseen_categories_and_out_of_range(project, tmp_path):
    rng = np.random.default_rng(2)
    frame, _ = draw(rng, 2000)
    frame.loc[:19, "plan"] = "enterprise"
    profile = json.loads((project["root"] / "models" / f"{MODEL}.profile.json").read_text())
    frame.loc[20:59, "spend"] = profile["columns"][1]["max"] + 1.0  # just above the training range
    capture(project, tmp_path / "odd", frame)
    warned = cli(project, "--capture", str(tmp_path / "odd"), "--fail-on", "warn", "--json")
    assert warned.returncode == 3, warned.stdout + warned.stderr
    result = json.loads(warned.stdout)
    assert result["status"] == "warn" and not result["columns"]["plan"]["drifted"]
    assert result["columns"]["plan"]["unseen"] == 20 and "enterprise (20)" in result["columns"]["plan"]["unseen_values"]
    assert result["columns"]["spend"]["above_range"] == 40
    assert any("never seen in training" in w for w in result["warnings"].values())
    assert cli(project, "--capture", str(tmp_path / "odd"), "--fail-on", "drift").returncode == 0


def test_live_performance_by_request_id(project, tmp_path):
    rng = np.random.default_rng(3)
    frame, labels = draw(rng, 2000)
    ids = capture(project, tmp_path / "cap", frame, rows_per_request=2)
    rows = [{"request_id": rid, "row": r, "label": int(labels[2 * i + r])} for i, rid in enumerate(ids) for r in range(2)]
    good = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(good, index=False)
    result = nbops.monitor(MODEL, capture=str(tmp_path / "cap"), labels=str(good), root=project["root"], registry=str(project["root"] / "registry"))
    perf = result.performance
    assert perf["labelled_rows"] == 2000 and perf["joined_by"] == "request id"
    expected = roc_auc_score(labels, project["model"].predict_proba(frame)[:, 1])
    assert perf["metrics"]["roc_auc"]["live"] == pytest.approx(expected, abs=1e-6)
    assert perf["metrics"]["roc_auc"]["recorded"] == project["metrics"]["roc_auc"]
    assert not any(m["dropped"] for m in perf["metrics"].values()) and result.status == "ok"
    assert "<svg" in result._repr_html_() and "Live performance" in result._repr_html_()

    flipped = tmp_path / "flipped.jsonl"
    flipped.write_text("".join(json.dumps({**r, "label": 1 - r["label"]}) + "\n" for r in rows))
    dropped = cli(project, "--capture", str(tmp_path / "cap"), "--labels", str(flipped), "--fail-on", "drift", "--json")
    assert dropped.returncode == 4
    metrics = json.loads(dropped.stdout)["performance"]["metrics"]
    assert metrics["roc_auc"]["dropped"] and metrics["roc_auc"]["live"] < 0.5


def test_data_file_scored_and_labels_joined_by_key(project, tmp_path):
    rng = np.random.default_rng(4)
    frame, labels = draw(rng, 1200)
    frame.insert(0, "customer", [f"c{i}" for i in range(len(frame))])
    frame.to_csv(tmp_path / "current.csv", index=False)
    pd.DataFrame({"customer": frame["customer"], "label": labels}).to_csv(tmp_path / "labels.csv", index=False)
    result = nbops.monitor(f"{MODEL}@production", data=str(tmp_path / "current.csv"), labels=str(tmp_path / "labels.csv"),
                           key="customer", root=project["root"], registry=str(project["root"] / "registry"))
    assert result.rows == 1200 and result.prediction is not None and not result.prediction["drifted"]
    expected = roc_auc_score(labels, project["model"].predict_proba(frame.drop(columns="customer"))[:, 1])
    assert result.performance["metrics"]["roc_auc"]["live"] == pytest.approx(expected, abs=1e-6)


def test_window_parallel_parts_and_a_torn_line(project, tmp_path, monkeypatch):
    from nbops.monitoring import sources

    rng = np.random.default_rng(5)
    day1, _ = draw(rng, 1500)
    day2, _ = draw(rng, 1500, shift=1.0)
    folder = tmp_path / "cap"
    capture(project, folder, day1, start="2026-11-26T10:00:00", part="part-100000-7-0.jsonl")
    capture(project, folder, day2, start="2026-11-27T10:00:00", part="part-100000-7-0.jsonl")
    capture(project, folder, day2.iloc[:300], start="2026-11-27T12:00:00", part="part-120000-7-1.jsonl")
    with open(folder / MODEL / "2026-11-27" / "part-120000-7-1.jsonl", "a") as handle:
        handle.write('{"v":1,"ts":"2026-11-27T12:59:59.000000Z","inputs":{"tenure":[1')  # killed mid-write
    kwargs = dict(root=project["root"], registry=str(project["root"] / "registry"))
    whole = nbops.monitor(MODEL, capture=str(folder), jobs=1, **kwargs)
    assert whole.rows == 3300 and any("unreadable" in w for w in whole.warnings)
    later = nbops.monitor(MODEL, capture=str(folder), since="2026-11-27", until="2026-11-27T11:00", jobs=1, **kwargs)
    assert later.rows == 1500 and later.window["first"].startswith("2026-11-27T10:00")
    earlier = nbops.monitor(MODEL, capture=str(folder), until="2026-11-27", **kwargs)
    assert earlier.rows == 1500 and not earlier.dataset_drift["drifted"] and later.dataset_drift["drifted"]
    # small units and chunks: many byte ranges read in two processes give the same answer
    monkeypatch.setattr(sources, "UNIT_BYTES", 50_000)
    monkeypatch.setattr(sources, "CHUNK_BYTES", 7_000)
    parallel = nbops.monitor(MODEL, capture=str(folder), jobs=2, **kwargs)
    assert parallel.to_dict() == whole.to_dict()


def test_errors_are_one_line_with_distinct_exit_codes(project, tmp_path):
    missing = cli(project, "--capture", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "no folder 'churn' there" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    usage = cli(project)
    assert usage.returncode == 2 and "--capture" in usage.stderr
    bad_time = cli(project, "--capture", str(tmp_path), "--since", "yesterday-ish")
    assert bad_time.returncode == 1 and "--since 'yesterday-ish': not a time" in bad_time.stderr
    (tmp_path / "labels.csv").write_text("id,label\n1,0\n")
    (tmp_path / "data.csv").write_text("tenure,spend,plan,calls\n1,2,basic,3\n")
    labels = cli(project, "--data", str(tmp_path / "data.csv"), "--labels", str(tmp_path / "labels.csv"))
    assert labels.returncode == 1 and "needs a 'request_id' column" in labels.stderr
    params = project["root"] / "params.yaml"
    saved = params.read_text()
    try:
        params.write_text("monitor:\n  wassertein: 0.2\n")
        typo = cli(project, "--data", str(tmp_path / "data.csv"))
        assert typo.returncode == 1 and "monitor.wassertein: unknown threshold; valid keys:" in typo.stderr
    finally:
        params.write_text(saved)


def test_shadow_rows_are_paired_and_scored_beside_the_champion(project, tmp_path):
    from sklearn.dummy import DummyClassifier

    rng = np.random.default_rng(6)
    frame, labels = draw(rng, 800)
    ids = capture(project, tmp_path / "cap", frame)
    challenger = DummyClassifier(strategy="constant", constant=1).fit(frame, labels)
    write_capture(tmp_path / "cap", MODEL, frame, role="shadow", request_ids=ids, predictions=challenger.predict(frame).tolist(),
                  probabilities=challenger.predict_proba(frame).tolist())
    pd.DataFrame({"request_id": ids, "label": labels}).to_csv(tmp_path / "labels.csv", index=False)
    result = nbops.monitor(MODEL, capture=str(tmp_path / "cap"), labels=str(tmp_path / "labels.csv"),
                           root=project["root"], registry=str(project["root"] / "registry"))
    assert result.rows == 800 and result.roles == {"champion": 800, "shadow": 800}  # shadows are not in the drift
    shadow = result.shadow
    champion_says_one = (project["model"].predict(frame) == 1).mean()
    assert shadow["paired"] == 800 and shadow["agreement"] == pytest.approx(champion_says_one, abs=1e-9)
    assert shadow["labelled_rows"] == 800
    assert shadow["metrics"]["recall"]["shadow"] == 1.0 and shadow["metrics"]["roc_auc"]["shadow"] == 0.5
    assert shadow["metrics"]["roc_auc"]["delta"] < 0 and "Shadow" in result.to_markdown()


def test_capture_root_may_be_an_fsspec_url(project, tmp_path):
    import fsspec

    rng = np.random.default_rng(7)
    frame, _ = draw(rng, 500)
    capture(project, tmp_path / "cap", frame)
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path / "cap"), "/monitor-test-capture", recursive=True)
    try:
        result = nbops.monitor(MODEL, capture="memory://monitor-test-capture", root=project["root"], registry=str(project["root"] / "registry"))
    finally:
        memory.rm("/monitor-test-capture", recursive=True)
    assert result.rows == 500 and result.source == "memory://monitor-test-capture"


def _report(result) -> dict:
    """A monitor result without what names the folder it read."""
    return {k: v for k, v in result.to_dict().items() if k not in ("source", "generated")}


def test_format_1_and_format_2_captures_give_the_same_report(project, tmp_path):
    """The same requests (3 rows each, shadows beside, labels by (request_id, row)) written one line
    per request (format 1) and one line per 37 requests (format 2), cut by a window mid-line."""
    rng = np.random.default_rng(8)
    frame, labels = draw(rng, 1200, shift=0.5)
    challenger = project["model"].predict_proba(frame)[:, ::-1]  # a challenger that disagrees everywhere
    kwargs = dict(root=project["root"], registry=str(project["root"] / "registry"), jobs=1)
    reports = {}
    for fmt in (1, 2):
        folder = tmp_path / f"v{fmt}"
        ids = capture(project, folder, frame, rows_per_request=3, format=fmt, requests_per_line=37)
        write_capture(folder, MODEL, frame, role="shadow", request_ids=ids, rows_per_request=3, format=fmt,
                      requests_per_line=37, predictions=challenger.argmax(axis=1).tolist(), probabilities=challenger.tolist())
        rows = [{"request_id": rid, "row": r, "label": int(labels[3 * i + r])} for i, rid in enumerate(ids) for r in range(3)]
        pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
        result = nbops.monitor(MODEL, capture=str(folder), labels=str(tmp_path / "labels.csv"), until="2026-11-27T13:05", **kwargs)
        reports[fmt] = _report(result)
        # 13:00:00 to 13:04:59, a request a second: 300 requests, 900 rows (the window cuts the 9th line)
        assert result.rows == 900 and result.requests == 600 and result.roles == {"champion": 900, "shadow": 900}
        assert result.shadow["paired"] == 900 and result.performance["labelled_rows"] == 900
    assert reports[1] == reports[2]


def test_a_capture_written_by_a_real_server_reads_like_the_requests_sent(project, tmp_path):
    """`nbops serve --capture` (format 2, the real writer) and the same requests written one line each
    (format 1) give the same report; the server's lines each hold many requests."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    rng = np.random.default_rng(9)
    frame, labels = draw(rng, 600)
    served = tmp_path / "served"
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "nbops", "serve", f"{MODEL}@production", "--registry", str(project["root"] / "registry"),
         "--port", "0", "--capture", str(served), "--capture-flush", "0.2"],
        cwd=project["root"], env=project["env"], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    sizes = [1 + i % 4 for i in range(240)]  # 1-4 rows a request: 600 rows
    ids = [f"req-{i:04d}" for i in range(len(sizes))]
    try:
        deadline = time.monotonic() + 120
        while "serving on http://" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = log.read_text().split("serving on ", 1)[1].split()[0]
        records = frame.to_dict(orient="records")
        with httpx.Client(base_url=url, timeout=30) as client:
            start = 0
            for rid, size in zip(ids, sizes):
                answer = client.post("/predict", json=records[start : start + size], headers={"X-Request-ID": rid})
                assert answer.status_code == 200, answer.text
                start += size
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()
    lines = [json.loads(line) for part in sorted(served.rglob("part-*.jsonl")) for line in part.read_text().splitlines()]
    assert {line["v"] for line in lines} == {2} and sum(line["requests"] for line in lines) == len(sizes) > len(lines)
    assert [rid for line in lines for rid in line["request_id"]] == ids
    by_id = {rid: i for i, rid in enumerate(ids)}
    ends = np.cumsum(sizes)
    rows = [{"request_id": rid, "row": r, "label": int(labels[ends[by_id[rid]] - sizes[by_id[rid]] + r])}
            for rid in ids for r in range(sizes[by_id[rid]])]
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    # the same requests, one format-1 line each (the model's own answers)
    model, one_line_each = project["model"], tmp_path / "v1"
    start = 0
    for rid, size in zip(ids, sizes):
        part = frame.iloc[start : start + size]
        write_capture(one_line_each, MODEL, part, rows_per_request=size, request_ids=[rid], format=1,
                      predictions=model.predict(part).tolist(), probabilities=model.predict_proba(part).tolist(), classes=[0, 1])
        start += size
    kwargs = dict(root=project["root"], registry=str(project["root"] / "registry"), labels=str(tmp_path / "labels.csv"), jobs=1)
    from_server = nbops.monitor(MODEL, capture=str(served), **kwargs)
    from_v1 = nbops.monitor(MODEL, capture=str(one_line_each), **kwargs)
    assert from_server.rows == 600 and from_server.requests == 240 and from_server.performance["labelled_rows"] == 600
    ours, theirs = _report(from_server), _report(from_v1)
    ours.pop("window"), theirs.pop("window")  # real arrival times against the written ones
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def test_drift_fires_the_retraining_event_and_no_drift_fires_nothing(project, tmp_path):
    """`--dispatch OWNER/REPO` against a real HTTP server on 127.0.0.1 standing in for GitHub's
    API: drift sends one repository_dispatch carrying the token in its header only; a fresh
    sample sends nothing."""
    from .test_dispatch import TOKEN, FakeGitHub

    github = FakeGitHub()
    try:
        env = {**project["env"], "NBOPS_DISPATCH_TOKEN": TOKEN}
        rng = np.random.default_rng(7)
        fresh, _ = draw(rng, 2000)
        shifted, _ = draw(rng, 2000, shift=1.0, plans=(0.2, 0.3, 0.5))
        capture(project, tmp_path / "fresh", fresh)
        capture(project, tmp_path / "shifted", shifted)

        def monitor(folder: str):
            return run(["nbops", "monitor", MODEL, "--capture", str(tmp_path / folder), "--json", "--registry",
                        str(project["root"] / "registry"), "--dispatch", "acme/plant", "--dispatch-api-url", github.url],
                       project["root"], env, check=False)

        quiet = monitor("fresh")
        assert quiet.returncode == 0 and json.loads(quiet.stdout)["status"] == "ok", quiet.stderr
        assert github.requests == []

        fired = monitor("shifted")
        assert fired.returncode == 0, fired.stderr
        assert json.loads(fired.stdout)["status"] == "drift"  # stdout is still the report alone
        [request] = github.requests
        assert request["path"] == "/repos/acme/plant/dispatches"
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
        body = json.loads(request["body"])
        assert body["event_type"] == "drift-detected"
        assert body["client_payload"]["model"] == MODEL and "spend" in body["client_payload"]["columns"]
        assert len(body["client_payload"]) <= 10
        assert "drift-detected" in fired.stderr and "acme/plant" in fired.stderr
        assert TOKEN not in fired.stdout + fired.stderr + quiet.stdout + quiet.stderr
    finally:
        github.close()
