"""Request capture (nbops/runtime/capture.py) and the /metrics text (metrics.py), in-process: the
files it writes, its buffer bound, rotation, a torn last line, write failures, fsspec URLs."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from nbops.models import modelio
from nbops.runtime import Capture, CaptureError, PackagedModel, read_records
from nbops.runtime.capture import parse_part, part_paths
from nbops.runtime.metrics import ServerMetrics

DAY = datetime(2026, 11, 27, 13, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def model() -> PackagedModel:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"Type": rng.choice(["L", "M"], 80), "Torque [Nm]": rng.normal(40, 10, 80),
                      "Tool wear [min]": rng.integers(0, 250, 80)})
    X.loc[3, "Torque [Nm]"] = np.nan  # the sample has a null: the column is nullable
    y = (X["Tool wear [min]"] > 120).to_numpy()
    fitted = LogisticRegression().fit(X[["Tool wear [min]"]].assign(t=X["Torque [Nm]"].fillna(0)), y)

    class OnTwoColumns:  # the estimator sees two numeric columns; the capture sees the signature's three
        classes_ = fitted.classes_

        def predict(self, frame):
            return fitted.predict(frame[["Tool wear [min]"]].assign(t=frame["Torque [Nm]"].fillna(0)))

        def predict_proba(self, frame):
            return fitted.predict_proba(frame[["Tool wear [min]"]].assign(t=frame["Torque [Nm]"].fillna(0)))

    manifest = {"name": "wear", "version": "0.3.0", "signature": modelio.infer_signature(X),
                "sample_input": modelio.sample_records(X.head(5))}
    return PackagedModel(OnTwoColumns(), manifest)


def score(model: PackagedModel, records: list[dict]):
    inputs = model.arrays(records)
    predictions, probabilities = model.predict_frame(inputs)
    return inputs, predictions, probabilities


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"Type": "LM"[i % 2], "Torque [Nm]": 30.0 + i, "Tool wear [min]": 100 + i} for i in range(start, start + n)]


def capture(root, **options) -> tuple[Capture, list[str]]:
    lines: list[str] = []
    options.setdefault("flush_seconds", 3600)  # written at close only, unless a test says otherwise
    return Capture.open(root, log=lines.append, **options), lines


def test_records_follow_the_capture_format(model, tmp_path):
    cap, log = capture(tmp_path / "cap")
    records = rows(2) + [{"Type": "M", "Torque [Nm]": None, "Tool wear [min]": 7}]
    inputs, predictions, probabilities = score(model, records)
    assert cap.wants()  # sample 1: every request
    assert cap.record("req-1", model, "champion", inputs, predictions, probabilities, 1.23456, arrived=DAY + 0.5)
    assert cap.record("req-1", model, "shadow", inputs, predictions, probabilities, 2.0, arrived=DAY + 0.5)
    assert (cap.captured, cap.written, cap.buffered) == (2, 0, 2)
    cap.close()
    assert log == [f"capture: 2 records written under {tmp_path / 'cap'}"]
    [part] = part_paths(tmp_path / "cap")
    assert re.fullmatch(r".*/wear/2026-11-27/part-130000-\d+-\d{6}\.jsonl", part), part
    champion_line, shadow_line = map(json.loads, Path(part).read_bytes().splitlines())  # one line per role
    assert champion_line == {
        "v": 2, "model": "wear", "version": "0.3.0", "role": "champion", "requests": 1,
        "request_id": ["req-1"], "ts": ["2026-11-27T13:00:00.500000Z"], "latency_ms": [1.235], "rows": [3],
        "inputs": {"Type": ["L", "M", "M"], "Torque [Nm]": [30.0, 31.0, None], "Tool wear [min]": [100, 101, 7]},
        "predictions": predictions.tolist(), "classes": [False, True],
        "probabilities": {"False": probabilities[:, 0].tolist(), "True": probabilities[:, 1].tolist()},
    }
    assert shadow_line["role"] == "shadow" and shadow_line["request_id"] == ["req-1"]
    champion, shadow = read_records(tmp_path / "cap")  # per request, in format 1's fields
    assert champion == {
        "v": 2, "ts": "2026-11-27T13:00:00.500000Z", "request_id": "req-1", "model": "wear", "version": "0.3.0",
        "role": "champion", "latency_ms": 1.235, "rows": 3,
        "inputs": {"Type": ["L", "M", "M"], "Torque [Nm]": [30.0, 31.0, None], "Tool wear [min]": [100, 101, 7]},
        "predictions": predictions.tolist(), "classes": [False, True], "probabilities": probabilities.tolist(),
    }
    assert shadow["role"] == "shadow" and shadow["request_id"] == "req-1"


def test_a_batch_of_requests_is_one_columnar_line_bounded_in_rows(model, tmp_path, monkeypatch):
    from nbops.runtime import capture as module

    monkeypatch.setattr(module, "LINE_VALUES", 30)  # 3 columns: 10 rows a line
    monkeypatch.setattr(module, "LINE_ROWS_MIN", 1)
    cap, _ = capture(tmp_path / "cap")
    sizes = [1, 3, 2, 4, 1, 12, 2]
    sent = {}
    for i, n in enumerate(sizes):
        scored = score(model, rows(n, start=i * 20))
        sent[f"r{i}"] = scored
        cap.record(f"r{i}", model, "champion", *scored, 0.5, arrived=DAY + i)
    cap.close()
    [part] = part_paths(tmp_path / "cap")
    lines = [json.loads(line) for line in Path(part).read_bytes().splitlines()]
    assert [line["rows"] for line in lines] == [[1, 3, 2, 4], [1], [12], [2]]  # ≤ 10 rows, a bigger request alone
    first = lines[0]
    assert first["requests"] == 4 and first["request_id"] == ["r0", "r1", "r2", "r3"]
    assert first["ts"][3] == "2026-11-27T13:00:03.000000Z"
    # row j of request i at sum(rows[:i]) + j
    inputs, predictions, probabilities = sent["r2"]
    assert first["inputs"]["Tool wear [min]"][4:6] == inputs["Tool wear [min]"].tolist()
    assert first["predictions"][4:6] == predictions.tolist()
    assert first["probabilities"]["True"][4:6] == probabilities[:, 1].tolist()
    records = list(read_records(tmp_path / "cap"))
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(len(sizes))]
    for record in records:
        inputs, predictions, probabilities = sent[record["request_id"]]
        assert record["inputs"]["Type"] == inputs["Type"].tolist() and record["predictions"] == predictions.tolist()
        assert record["probabilities"] == probabilities.tolist() and record["rows"] == len(predictions)


def test_with_a_threshold_the_captured_predictions_are_the_decisions(model, tmp_path):
    """One label per rule: the package's answer (what the server captures) holds the decisions at
    the threshold as its predictions, and the line names the threshold; no second label column."""
    deciding = PackagedModel(model.model, {**model.manifest, "decision": {"threshold": 0.0008, "positive_class": True}})
    cap, _ = capture(tmp_path / "cap")
    first_inputs, second_inputs = deciding.arrays(rows(2)), deciding.arrays(rows(3, start=40))
    first, second = deciding.answer(first_inputs), deciding.answer(second_inputs)
    cap.record("a", deciding, "champion", first_inputs, *first, 1.0)
    cap.record("b", deciding, "champion", second_inputs, *second, 1.0)
    cap.close()
    [part] = part_paths(tmp_path / "cap")
    [line] = [json.loads(text) for text in Path(part).read_bytes().splitlines()]
    expected = [bool(p >= 0.0008) for p in np.concatenate([first[1][:, 1], second[1][:, 1]])]
    # the model's own predict (a cut at 0.5) differs from the decisions on some of these rows
    assert expected != np.concatenate([deciding.predict_frame(first_inputs)[0], deciding.predict_frame(second_inputs)[0]]).tolist()
    assert line["predictions"] == expected and "decisions" not in line
    assert line["threshold"] == 0.0008 and line["rows"] == [2, 3]
    a, b = read_records(tmp_path / "cap")
    assert a["predictions"] == expected[:2] and b["predictions"] == expected[2:]
    # a line written before this rule (predictions at 0.5 beside "decisions") is still read
    old = {**line, "predictions": [not p for p in expected], "decisions": expected}
    (tmp_path / "cap" / Path(part).relative_to(tmp_path / "cap")).write_text(json.dumps(old) + "\n")
    a, b = read_records(tmp_path / "cap")
    assert a["decisions"] == expected[:2] and b["decisions"] == expected[2:] and b["threshold"] == 0.0008


def test_a_format_2_line_that_does_not_add_up_is_named(tmp_path):
    line = {"v": 2, "model": "wear", "version": "0.1.0", "role": "champion", "requests": 2, "request_id": ["a", "b"],
            "ts": ["2026-11-27T13:00:00.000000Z"] * 2, "latency_ms": [1.0, 1.0], "rows": [1, 2],
            "inputs": {"Type": ["L", "M"]}, "predictions": [0, 1, 1]}
    with pytest.raises(ValueError, match=r'part: line 1 is not a capture record \("inputs.Type" holds 2 values for 3 rows\)'):
        parse_part(json.dumps(line).encode() + b"\n")
    line["inputs"]["Type"].append("H")
    assert [r["inputs"] for r in parse_part(json.dumps(line).encode() + b"\n")[0]] == [{"Type": ["L"]}, {"Type": ["M", "H"]}]


def test_format_1_lines_still_read(tmp_path):
    line = {"v": 1, "ts": "2026-11-27T13:00:00.500000Z", "request_id": "old", "model": "wear", "version": "0.1.0",
            "role": "champion", "latency_ms": 1.0, "rows": 2, "inputs": {"Type": ["L", "M"]}, "predictions": [0, 1],
            "classes": [0, 1], "probabilities": [[0.9, 0.1], [0.2, 0.8]]}
    folder = tmp_path / "cap" / "wear" / "2026-11-27"
    folder.mkdir(parents=True)
    (folder / "part-130000-1-000001.jsonl").write_text(json.dumps(line) + "\n")
    assert list(read_records(tmp_path / "cap")) == [line]


def strict(token: str):
    raise ValueError(f"{token} is not JSON")


def test_without_orjson_the_lines_are_the_same(model, tmp_path, monkeypatch):
    records = rows(2) + [{"Type": "M", "Torque [Nm]": None, "Tool wear [min]": 7}]
    written = []
    for codec in ("orjson", "json"):
        if codec == "json":
            monkeypatch.setitem(sys.modules, "orjson", None)
        cap, _ = capture(tmp_path / codec)
        cap.record("r", model, "champion", *score(model, records), 1.0, arrived=DAY)
        cap.record("s", model, "champion", *score(model, rows(2, start=5)), 1.0, arrived=DAY + 1)
        cap.close()
        [part] = part_paths(tmp_path / codec)
        written.append(json.loads(Path(part).read_bytes(), parse_constant=strict))
    assert written[0] == written[1]
    assert written[1]["inputs"]["Torque [Nm]"] == [30.0, 31.0, None, 35.0, 36.0]
    assert written[1]["request_id"] == ["r", "s"] and written[1]["rows"] == [3, 2]


def test_a_full_buffer_drops_and_counts_and_never_blocks(model, tmp_path):
    cap, log = capture(tmp_path / "cap", buffer_records=3)
    scored = score(model, rows(1))
    started = time.perf_counter()
    accepted = [cap.record(f"r{i}", model, "champion", *scored, 1.0) for i in range(5)]
    assert time.perf_counter() - started < 0.5
    assert accepted == [True, True, True, False, False]
    assert (cap.captured, cap.dropped_full) == (3, 2)
    cap.close()
    assert [r["request_id"] for r in read_records(tmp_path / "cap")] == ["r0", "r1", "r2"]
    assert "3 records written" in log[-1] and "2 dropped because the buffer was full (raise --capture-buffer" in log[-1]


def test_the_buffer_is_bounded_in_rows_too(model, tmp_path):
    cap, _ = capture(tmp_path / "cap", buffer_rows=25)
    big = score(model, rows(10))
    assert [cap.record(f"r{i}", model, "champion", *big, 1.0) for i in range(3)] == [True, True, False]
    cap.close()
    assert cap.written == 2 and cap.dropped_full == 1


def test_the_writer_thread_writes_while_serving(model, tmp_path):
    cap, _ = capture(tmp_path / "cap", flush_seconds=0.05)
    cap.record("early", model, "champion", *score(model, rows(1)), 1.0)
    deadline = time.monotonic() + 10
    while cap.written < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cap.written == 1 and [r["request_id"] for r in read_records(tmp_path / "cap")] == ["early"]
    cap.close()


def test_sampling_takes_about_the_share_asked(tmp_path):
    cap, _ = capture(tmp_path / "cap", sample=0.25)
    taken = sum(cap.wants() for _ in range(20_000))
    cap.close(quiet=True)
    assert 4_500 < taken < 5_500


def test_parts_rotate_by_size_and_by_utc_day(model, tmp_path):
    cap, _ = capture(tmp_path / "cap", part_bytes=1500)
    scored = score(model, rows(1))
    for i in range(12):
        cap.record(f"a{i}", model, "champion", *scored, 1.0, arrived=DAY + i)
        assert cap.flush()  # a line each
    cap.record("next-day", model, "champion", *scored, 1.0, arrived=DAY + 86_400)
    cap.close()
    parts = part_paths(tmp_path / "cap")
    days = sorted({Path(p).parent.name for p in parts})
    assert days == ["2026-11-27", "2026-11-28"]
    same_day = [p for p in parts if "2026-11-27" in p]
    assert len(same_day) > 1 and all(Path(p).stat().st_size <= 1500 for p in same_day)
    assert [r["request_id"] for r in read_records(tmp_path / "cap")] == [f"a{i}" for i in range(12)] + ["next-day"]


def test_a_torn_last_line_is_skipped_and_a_bad_middle_line_named(model, tmp_path):
    cap, _ = capture(tmp_path / "cap")
    scored = score(model, rows(1))
    for i in range(3):
        cap.record(f"r{i}", model, "champion", *scored, 1.0)
        assert cap.flush()  # a line each
    cap.close()
    [part] = part_paths(tmp_path / "cap")
    data = Path(part).read_bytes()
    assert data.count(b"\n") == 3
    Path(part).write_bytes(data[: len(data) - 40])  # killed while writing the third line
    assert [r["request_id"] for r in read_records(tmp_path / "cap")] == ["r0", "r1"]
    assert parse_part(data[: len(data) - 40])[1] is True and parse_part(data)[1] is False
    lines = data.split(b"\n")
    with pytest.raises(ValueError, match=r"part: line 2 is not a capture record"):
        parse_part(b"\n".join([lines[0], lines[1][:30], lines[2], b""]))


def test_write_failures_are_counted_and_said_once(model, tmp_path):
    cap, log = capture(tmp_path / "cap", flush_seconds=0.02)
    scored = score(model, rows(1))
    cap.record("ok", model, "champion", *scored, 1.0, arrived=DAY)
    while cap.written < 1:
        time.sleep(0.01)
    blocked = tmp_path / "cap" / "wear" / "2026-11-28"
    blocked.write_text("a file where the next day's folder would go")
    for i in range(3):
        cap.record(f"lost{i}", model, "champion", *scored, 1.0, arrived=DAY + 86_400)
    cap.close()
    assert cap.dropped_error == 3 and cap.written == 1
    trouble = [line for line in log if "cannot write" in line]
    assert len(trouble) == 1 and str(tmp_path / "cap") in trouble[0]
    assert "3 dropped because writing failed" in log[-1]


def test_a_folder_it_cannot_write_is_one_clear_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CaptureError, match=r"^--capture .*/file/cap: cannot write there \(.*\); choose a folder"):
        Capture.open(tmp_path / "file" / "cap")
    with pytest.raises(CaptureError, match=r"--sample 0: .* above 0 and at most 1"):
        Capture.open(tmp_path / "cap", sample=0)


def test_an_fsspec_url_gets_a_part_per_batch(model):
    pytest.importorskip("fsspec")
    url = f"memory://nbops-capture-test-{time.time_ns()}"
    cap, log = capture(url, flush_seconds=0.02)
    scored = score(model, rows(2))
    cap.record("r0", model, "champion", *scored, 1.0)
    while cap.written < 1:
        time.sleep(0.01)
    cap.record("r1", model, "champion", *scored, 1.0)
    cap.close()
    parts = part_paths(url)
    assert len(parts) == 2 and all(p.startswith("memory://") for p in parts)
    assert [r["request_id"] for r in read_records(url)] == ["r0", "r1"]
    assert log == [f"capture: 2 records written under {url}"]


def test_a_url_without_fsspec_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(CaptureError, match=r"capturing to a URL needs fsspec: pip install fsspec \(and .*s3fs for s3://"):
        Capture.open("s3://bucket/captures")


# --- /metrics ------------------------------------------------------------------------------------


def test_metrics_text_parses_and_counts(model, tmp_path):
    cap, _ = capture(tmp_path / "cap", buffer_records=1)
    scored = score(model, rows(1))
    cap.record("a", model, "champion", *scored, 1.0)
    cap.record("b", model, "champion", *scored, 1.0)
    served = {"name": 'odd "name"\\', "version": "1.0"}
    metrics = ServerMetrics(lambda: (served["name"], served["version"]), cap)
    for seconds in (0.0004, 0.003, 0.003, 7.0):
        metrics.observe_request("/predict", 200, seconds)
    metrics.observe_request("other", 404, 0.0001)
    metrics.add_rows("wear", "0.3.0", "champion", 5)
    metrics.add_rows("wear", "0.3.0", "champion", 2)
    served["version"] = "2.0"  # a switched model shows its new version at the next scrape
    text = metrics.render().decode()
    cap.close(quiet=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(family, sample_name=None, **labels):
        return next(s.value for s in families[family].samples
                    if (sample_name is None or s.name == sample_name) and all(s.labels.get(k) == v for k, v in labels.items()))

    assert families["nbops_http_requests"].type == "counter"
    assert value("nbops_http_requests", route="/predict", status="200") == 4
    assert value("nbops_http_requests", route="other", status="404") == 1
    hist = families["nbops_http_request_duration_seconds"]
    assert hist.type == "histogram"
    assert value(hist.name, f"{hist.name}_bucket", route="/predict", le="0.0005") == 1
    assert value(hist.name, f"{hist.name}_bucket", route="/predict", le="0.005") == 3
    assert value(hist.name, f"{hist.name}_bucket", route="/predict", le="5.0") == 3
    assert value(hist.name, f"{hist.name}_bucket", route="/predict", le="+Inf") == 4
    assert value(hist.name, f"{hist.name}_count", route="/predict") == 4
    assert value(hist.name, f"{hist.name}_sum", route="/predict") == pytest.approx(7.0064)
    assert value("nbops_rows_scored", model="wear", version="0.3.0", role="champion") == 7
    assert value("nbops_capture_captured_records") == 1
    assert value("nbops_capture_dropped_records", reason="buffer_full") == 1
    assert value("nbops_capture_dropped_records", reason="write_error") == 0
    assert value("nbops_capture_buffered_records") == 1 and value("nbops_capture_sample_ratio") == 1
    info = families["nbops_model_info"].samples[0]
    assert info.labels == {"model": 'odd "name"\\', "version": "2.0"} and info.value == 1
    json.dumps(families["nbops_model_info"].documentation)  # plain text
