"""Reading capture parts: byte-range units give every line exactly once; torn lines are counted."""

from __future__ import annotations

import random

import fsspec

from nbops.monitoring.batches import to_batches
from nbops.monitoring.sources import Unit, parse_lines, parse_time, read_unit_chunks


def test_units_and_chunks_give_every_line_once(tmp_path):
    rng = random.Random(0)
    fs = fsspec.filesystem("file")
    path = tmp_path / "part.jsonl"
    for _ in range(300):
        data = b"".join(b"x" * rng.randint(0, 30) + b"\n" for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.3:
            data += b"torn"
        path.write_bytes(data)
        unit_bytes, chunk_bytes = rng.randint(1, 50), rng.randint(1, 20)
        units = [Unit(str(path), s, min(s + unit_bytes, len(data))) for s in range(0, max(len(data), 1), unit_bytes)]
        assert b"".join(b"".join(read_unit_chunks(fs, u, chunk_bytes)) for u in units) == data


def test_torn_and_blank_lines_are_skipped_and_counted():
    records, bad = parse_lines(b'{"a":1}\n{"a":2,"b\n\n{"a":3}\n[1]\n')
    assert [r["a"] for r in records] == [1, 3] and bad == 2


def test_times():
    assert parse_time("2026-11-27", "--since") == "2026-11-27T00:00:00.000000Z"
    assert parse_time("2026-11-27T13:05+01:00", "--since") == "2026-11-27T12:05:00.000000Z"
    import datetime as dt

    now = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
    assert parse_time("36h", "--since", now) == "2026-11-26T00:00:00.000000Z"


def test_lines_of_both_formats_become_columnar_batches():
    def v1(rid, role, rows, version="0.1.0"):
        return {"v": 1, "ts": f"2026-11-27T13:00:0{len(rid)}.000000Z", "request_id": rid, "model": "m", "version": version,
                "role": role, "rows": len(rows), "inputs": {"x": rows}, "predictions": [0] * len(rows),
                "probabilities": [[0.75, 0.25]] * len(rows)}

    v2 = {"v": 2, "model": "m", "version": "0.1.0", "role": "champion", "requests": 2, "request_id": ["c", "d"],
          "ts": ["2026-11-27T13:00:05.000000Z"] * 2, "latency_ms": [1.0, 1.0], "rows": [2, 1],
          "inputs": {"x": [5, 6, 7]}, "predictions": [1, 0, 1], "classes": [0, 1],
          "probabilities": {"0": [0.1, 0.6, 0.3], "1": [0.9, 0.4, 0.7]}}
    short = {**v2, "inputs": {"x": [5, 6]}}  # a column shorter than its rows: unreadable
    untimed = {**v2, "ts": [None, None]}  # so is a line without its times
    lines = [v1("a", "champion", [1, 2]), v1("b", "champion", [3]), v1("s", "shadow", [1]), v2, short, untimed,
             v1("e", "champion", [8], version="0.2.0")]
    batches, bad = to_batches(lines)
    assert bad == 2
    assert [(b.role, b.version, b.request_ids, b.rows) for b in batches] == [
        ("champion", "0.1.0", ["a", "b"], [2, 1]), ("shadow", "0.1.0", ["s"], [1]), ("champion", "0.1.0", ["c", "d"], [2, 1]),
        ("champion", "0.2.0", ["e"], [1])]
    first, _, columnar, _ = batches
    assert first.inputs == {"x": [1, 2, 3]} and first.scores(1) == [0.25, 0.25, 0.25]
    assert columnar.scores(1) == [0.9, 0.4, 0.7] and columnar.scores(None) == [1, 0, 1]
    kept = columnar.keep([False, True])
    assert (kept.request_ids, kept.inputs, kept.predictions, kept.probabilities) == (["d"], {"x": [7]}, [1], [[0.3], [0.7]])
