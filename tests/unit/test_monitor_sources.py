"""Reading capture parts: byte-range units give every line exactly once; torn lines are counted."""

from __future__ import annotations

import random

import fsspec

from nbops.monitor.sources import Unit, parse_lines, parse_time, read_unit_chunks


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
