"""Current data for the monitor: capture folders (INTERFACES.md §2, §2b) and data files, streamed.

A capture folder `<root>/<model>/<YYYY-MM-DD>/part-*.jsonl` (a local path or an fsspec URL) is
cut into work units — byte ranges of ~UNIT_BYTES aligned on lines — read CHUNK_BYTES at a time;
each chunk's lines (format 2: one columnar line per batch of requests; format 1: one per request)
become columnar batches (batches.py), and each column of the chunk's champion rows goes into its
accumulator (accumulate.py) as one numpy array. Units run in parallel processes when there is
enough to read, and their accumulators merge. Memory holds one chunk per process, never the
whole capture. Only champion rows are compared with the profile; a shadow (challenger) row is paired with
the champion row of the same request (request_id, row) when both are in one chunk — the runtime
writes them within a flush or two — for their agreement, and scored against labels beside the champion.

A data file (CSV, or parquet when pyarrow is installed) is read in slices of rows and scored
with the packaged model for prediction drift.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from operator import eq
from typing import Any, Iterator, Mapping, Sequence

from ..core.exceptions import MonitorError
from .accumulate import Accumulators
from .batches import Batch, to_batches

UNIT_BYTES = 32 << 20
CHUNK_BYTES = 8 << 20
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELATIVE = re.compile(r"^(\d+)\s*([dhm])$")


# --- time windows ----------------------------------------------------------------------------------


def parse_time(text: str | None, option: str, now: _dt.datetime | None = None) -> str | None:
    """A bound of --since/--until as the capture's timestamp text (UTC, microseconds, Z):
    an ISO date or date-time (naive = UTC), or a span back from now: 7d, 12h, 30m."""
    if text is None or text == "":
        return None
    text = str(text).strip()
    match = _RELATIVE.match(text)
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
        moment = (now or _dt.datetime.now(_dt.timezone.utc)) - _dt.timedelta(**{unit: int(match[1])})
    else:
        try:
            moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise MonitorError(
                f"{option} {text!r}: not a time; give an ISO date or date-time (2026-11-27, 2026-11-27T13:00Z) or a span (7d, 12h)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normal_ts(ts: Any) -> str:
    if isinstance(ts, str) and len(ts) == 27:
        return ts
    try:
        return parse_time(str(ts), "ts") or ""
    except MonitorError:
        return ""


# --- what a scan collects --------------------------------------------------------------------------


@dataclass
class Joined:
    """Labelled rows: the label, the model's score and its prediction, per role."""

    labels: list[Any] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)

    def extend(self, other: Joined) -> None:
        self.labels += other.labels
        self.scores += other.scores
        self.predictions += other.predictions


@dataclass
class Scan:
    """Everything read from the current data, mergeable across units."""

    accumulators: Accumulators
    requests: int = 0
    roles: Counter[str] = field(default_factory=Counter)  # rows by role
    versions: Counter[str] = field(default_factory=Counter)  # rows by model version
    bad_lines: int = 0
    first_ts: str = ""
    last_ts: str = ""
    joined: dict[str, Joined] = field(default_factory=dict)  # role -> labelled rows
    # shadow rows paired with the champion's row of the same request: count, same prediction,
    # summed |score difference|
    paired: int = 0
    agreed: int = 0
    score_gap: float = 0.0

    def merge(self, other: Scan) -> Scan:
        self.accumulators.merge(other.accumulators)
        self.requests += other.requests
        self.roles.update(other.roles)
        self.versions.update(other.versions)
        self.bad_lines += other.bad_lines
        self.first_ts = min(filter(None, (self.first_ts, other.first_ts)), default="")
        self.last_ts = max(self.last_ts, other.last_ts)
        for role, joined in other.joined.items():
            self.joined.setdefault(role, Joined()).extend(joined)
        self.paired += other.paired
        self.agreed += other.agreed
        self.score_gap += other.score_gap
        return self


@dataclass
class ScanSpec:
    """What the scan needs to know besides the data (shipped to worker processes)."""

    profile: Mapping[str, Any]
    since: str | None = None
    until: str | None = None
    positive_index: int | None = None  # which probability is the profile's score
    labels: Mapping[tuple[str, int], Any] | None = None  # (request_id, row) -> label
    label_keys: Mapping[Any, Any] | None = None  # key value -> label (with key_column)
    key_column: str | None = None
    label_requests: frozenset[str] = frozenset()


# --- capture folders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    path: str
    start: int
    end: int


def capture_units(root: str, model: str, since: str | None, until: str | None, unit_bytes: int = UNIT_BYTES) -> tuple[Any, list[Unit]]:
    """(filesystem, byte-range units) of the model's capture parts inside the window's days."""
    import fsspec

    try:
        fs, base = fsspec.core.url_to_fs(str(root))
    except (ImportError, ValueError) as exc:
        raise MonitorError(f"--capture {root}: cannot open ({exc})") from None
    folder = f"{base.rstrip('/')}/{model}"
    if not fs.isdir(folder):
        raise MonitorError(
            f"--capture {root}: no folder '{model}' there (expected {root.rstrip('/')}/{model}/<YYYY-MM-DD>/part-*.jsonl); "
            "serve the model with capture on, or pass the capture root that holds it"
        )
    first_day, last_day = (since or "")[:10], (until or "9999")[:10]
    units: list[Unit] = []
    for day in sorted(fs.ls(folder, detail=False)):
        name = day.rstrip("/").rsplit("/", 1)[-1]
        if not _DAY.match(name) or name < first_day or name > last_day:
            continue
        for entry in sorted(fs.ls(day, detail=True), key=lambda e: e["name"]):
            file_name = entry["name"].rsplit("/", 1)[-1]
            if entry.get("type") != "file" or not file_name.startswith("part-") or not file_name.endswith(".jsonl"):
                continue
            size = int(entry.get("size") or 0)
            for start in range(0, max(size, 1), unit_bytes):
                units.append(Unit(entry["name"], start, min(start + unit_bytes, size)))
    return fs, units


def read_unit_chunks(fs: Any, unit: Unit, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Whole lines whose first byte lies in [start, end), CHUNK_BYTES at a time (a unit owns the
    lines that start inside it; the line in which its end falls is read to its newline)."""
    with fs.open(unit.path, "rb") as handle:
        offset = unit.start
        if unit.start > 0:
            handle.seek(unit.start - 1)
            offset = unit.start - 1 + len(handle.readline())  # the rest of a line the previous unit owns
        carry = b""
        while offset - len(carry) < unit.end:  # the first line not yet given out starts inside the unit
            block = handle.read(chunk_bytes)
            if not block:
                if carry:
                    yield carry  # a last line without its newline (torn by a kill, say)
                return
            offset += len(block)
            cut = block.rfind(b"\n")
            if cut < 0:
                carry += block
                continue
            data_start = offset - len(block) - len(carry)
            lines = carry + block[: cut + 1] if carry else block[: cut + 1]  # one copy of the block
            carry = block[cut + 1 :]
            if data_start + len(lines) >= unit.end:
                stop = lines.find(b"\n", max(unit.end - data_start - 1, 0))
                yield lines[: stop + 1]
                return
            yield lines


def parse_lines(chunk: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of a chunk of JSON lines, and how many lines were unreadable (a torn last line
    after a kill, say): those are skipped and counted."""
    loads = _loads()
    lines = [line for line in chunk.split(b"\n") if line]  # no strip: a chunk is megabytes, copied once
    if not lines:
        return [], 0
    enabled = gc.isenabled()
    gc.disable()  # a million small containers: the cyclic GC would rescan them again and again
    try:
        try:  # line by line is faster than one big array for orjson (measured)
            records = list(map(loads, lines))
            if all(type(r) is dict for r in records):
                return records, 0
        except ValueError:
            pass
        records, bad = [], 0
        for line in lines:
            if not line.strip():
                continue
            try:
                record = loads(line)
            except ValueError:
                bad += 1
                continue
            if type(record) is dict:
                records.append(record)
            else:
                bad += 1
        return records, bad
    finally:
        if enabled:
            gc.enable()


def _loads() -> Any:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with nbops[serve]
        return json.loads


def fold_records(scan: Scan, spec: ScanSpec, records: list[dict[str, Any]]) -> None:
    """Add a chunk's parsed lines (format 1 or 2) to the scan."""
    batches, bad = to_batches(records)
    scan.bad_lines += bad
    fold_batches(scan, spec, batches)


def fold_batches(scan: Scan, spec: ScanSpec, batches: list[Batch]) -> None:
    """Add a chunk's batches to the scan: champion rows to the accumulators (one array per column
    for the whole chunk), shadow rows paired with the champion's, labels joined."""
    if spec.since or spec.until:
        batches = _in_window(batches, spec.since or "", spec.until or "\uffff")
    batches = [b for b in batches if b.rows]
    if not batches:
        return
    for batch in batches:
        scan.requests += len(batch.rows)
        first, last = min(batch.ts), max(batch.ts)
        scan.first_ts = min(filter(None, (scan.first_ts, first)), default="")
        scan.last_ts = max(scan.last_ts, last)
    champions = [b for b in batches if b.role == "champion"]
    if len(champions) != len(batches):
        for batch in batches:
            if batch.role != "champion":
                scan.roles[batch.role] += batch.total_rows
        _pair_shadows(scan, spec, champions, [b for b in batches if b.role == "shadow"])
    for batch in champions:
        scan.versions[batch.version] += batch.total_rows
    if champions:
        scan.roles["champion"] += _fold_champions(scan, spec, champions)
    if spec.labels is not None or spec.label_keys is not None:
        for batch in batches:
            _join(scan, spec, batch)


def _in_window(batches: list[Batch], since: str, until: str) -> list[Batch]:
    kept = []
    for batch in batches:
        if set(map(len, batch.ts)) == {27} and since <= min(batch.ts) and max(batch.ts) < until:
            kept.append(batch)  # the whole batch inside the window (the common case), its stamps as written
            continue
        mask = [since <= _normal_ts(t) < until for t in batch.ts]
        if all(mask):
            kept.append(batch)
        elif any(mask):
            kept.append(batch.keep(mask))
    return kept


def _pair_shadows(scan: Scan, spec: ScanSpec, champions: list[Batch], shadows: list[Batch]) -> None:
    """Agreement of shadow rows with the champion rows of the same requests in this chunk."""
    if not shadows:
        return
    index: dict[Any, tuple[Batch, int, int]] = {}
    for batch in champions:
        start = 0
        for rid, rows in zip(batch.request_ids, batch.rows):
            index[rid] = (batch, start, rows)
            start += rows
    for shadow in shadows:
        ours_scores = shadow.scores(spec.positive_index)
        start = 0
        for rid, rows in zip(shadow.request_ids, shadow.rows):
            hit = index.get(rid)
            if hit is not None:
                champion, at, theirs = hit
                pairs = min(rows, theirs)
                scan.paired += pairs
                scan.agreed += sum(map(eq, shadow.predictions[start : start + pairs], champion.predictions[at : at + pairs]))
                theirs_scores = champion.scores(spec.positive_index)
                scan.score_gap += sum(
                    abs(float(a) - float(b))
                    for a, b in zip(ours_scores[start : start + pairs], theirs_scores[at : at + pairs])
                    if a is not None and b is not None
                )
            start += rows


def _fold_champions(scan: Scan, spec: ScanSpec, batches: list[Batch]) -> int:
    """Champion rows into the accumulators — a numeric column as one array for all the batches
    (built from each batch's list straight away), a categorical one batch by batch; returns how many rows."""
    acc = scan.accumulators
    rows = sum(b.total_rows for b in batches)
    acc.rows += rows
    known = acc.columns.keys()
    for batch in batches:
        for name in batch.inputs.keys() - known:
            acc.extra_columns[name] += batch.total_rows
    for name, column in acc.columns.items():
        parts = []
        for batch in batches:
            values = batch.inputs.get(name)
            if values is None:
                acc.missing_columns[name] += batch.total_rows
            else:
                parts.append(values)
        _add(column, parts)
    if acc.scores is not None:
        score_parts = [scores for scores in (b.scores(spec.positive_index) for b in batches) if scores]
        _add(acc.scores, score_parts)
        if acc.estimate is not None:
            _add(acc.estimate, score_parts)
    if acc.predictions is not None:
        _add(acc.predictions, [b.predictions for b in batches])
    return rows


def _add(accumulator: Any, parts: list[list[Any]]) -> None:
    """Lists of values (one per batch) into an accumulator."""
    if not parts:
        return
    if accumulator.kind != "numeric":
        for values in parts:
            accumulator.add(values)
        return
    import numpy as np

    arrays = []
    for values in parts:
        try:
            arrays.append(np.fromiter(values, dtype=float, count=len(values)))  # no shape discovery: faster than np.array
        except (TypeError, ValueError):
            try:
                arrays.append(np.array(values, dtype=float))  # null (None) → NaN
            except (TypeError, ValueError):
                arrays.append(np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values], dtype=float))
    accumulator.add(arrays[0] if len(arrays) == 1 else np.concatenate(arrays))


def _join(scan: Scan, spec: ScanSpec, batch: Batch) -> None:
    """The batch's labelled rows: by (request_id, row), or by the key column's value."""
    joined = scan.joined.setdefault(batch.role, Joined())
    predictions, scores = batch.predictions, batch.scores(spec.positive_index)
    if not scores:
        scores = predictions
    if spec.labels is not None:
        start = 0
        for rid, rows in zip(batch.request_ids, batch.rows):
            if rid in spec.label_requests:
                for i in range(rows):
                    label = spec.labels.get((rid, i))
                    if label is not None:
                        joined.labels.append(label)
                        joined.scores.append(scores[start + i])
                        joined.predictions.append(predictions[start + i])
            start += rows
    elif spec.label_keys is not None:
        keys = batch.inputs.get(spec.key_column) or []
        get = spec.label_keys.get
        for i, label in enumerate(map(get, keys)):
            if label is not None:
                joined.labels.append(label)
                joined.scores.append(scores[i])
                joined.predictions.append(predictions[i])


def scan_unit(fs: Any, unit: Unit, spec: ScanSpec) -> Scan:
    scan = Scan(Accumulators(spec.profile))
    for chunk in read_unit_chunks(fs, unit):
        records, bad = parse_lines(chunk)
        scan.bad_lines += bad
        fold_records(scan, spec, records)
    return scan


# parallel scanning: worker processes inherit the spec by fork
_WORKER: dict[str, Any] = {}


def _work(unit: Unit) -> Scan:
    return scan_unit(_WORKER["fs"], unit, _WORKER["spec"])


def scan_capture(root: str, model: str, spec: ScanSpec, jobs: int | None = None) -> Scan:
    """Read the model's capture parts in the window; in `jobs` processes when there is enough."""
    fs, units = capture_units(root, model, spec.since, spec.until)
    if not units:
        raise MonitorError(
            f"--capture {root}: no capture parts for '{model}'"
            + (f" between {spec.since or 'the start'} and {spec.until or 'now'}" if spec.since or spec.until else "")
            + " (files <root>/<model>/<YYYY-MM-DD>/part-*.jsonl)"
        )
    total = Scan(Accumulators(spec.profile))
    jobs = jobs or min(2, os.cpu_count() or 1)
    size = sum(u.end - u.start for u in units)
    if jobs > 1 and len(units) > 1 and size > 2 * CHUNK_BYTES and _can_fork():
        import multiprocessing

        _WORKER.update(fs=fs, spec=spec)
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for part in pool.imap_unordered(_work, units):
                    total.merge(part)
        finally:
            _WORKER.clear()
    else:
        for unit in units:
            total.merge(scan_unit(fs, unit, spec))
    return total


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


# --- data files ----------------------------------------------------------------------------------


def data_frames(path: str, columns: Sequence[str], rows_per_slice: int = 200_000) -> Iterator[Any]:
    """Slices of a CSV or parquet file (local path or fsspec URL) holding `columns`."""
    import pandas as pd

    lower = str(path).lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise MonitorError(f"--data {path}: reading parquet needs pyarrow (pip install pyarrow), or pass a CSV") from None
            import fsspec

            with fsspec.open(path, "rb") as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows_per_slice):
                    yield _checked(batch.to_pandas(), columns, path)
            return
        for frame in pd.read_csv(path, chunksize=rows_per_slice):
            yield _checked(frame, columns, path)
    except FileNotFoundError:
        raise MonitorError(f"--data {path}: file not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MonitorError(f"--data {path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _checked(frame: Any, columns: Sequence[str], path: str) -> Any:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MonitorError(f"--data {path}: lacks the model's input column(s) {', '.join(missing)}")
    return frame


def scan_data(path: str, spec: ScanSpec, model: Any, input_columns: Sequence[str]) -> Scan:
    """Fold a data file into a scan, scoring it with the packaged model (when given): its labels
    by the rule the package answers with (the decision at its threshold, when it has one)."""
    import numpy as np

    scan = Scan(Accumulators(spec.profile))
    acc = scan.accumulators
    for frame in data_frames(path, input_columns):
        acc.rows += len(frame)
        scan.requests += len(frame)
        scan.roles["champion"] += len(frame)
        for name, column in acc.columns.items():
            series = frame[name]
            column.add(series.to_numpy(dtype=float, na_value=np.nan) if column.kind == "numeric" else series.tolist())
        joining = spec.label_keys is not None and spec.key_column in frame.columns
        if model is None or not (acc.scores is not None or acc.predictions is not None or joining):
            continue
        labels, probabilities = model.answer(model.frame(frame[list(input_columns)]))
        labels = np.asarray(labels)
        if spec.positive_index is not None and probabilities is not None:
            scores = np.asarray(probabilities)[:, spec.positive_index]
        else:
            scores = labels.astype(float) if labels.dtype.kind in "biuf" else None
        if acc.predictions is not None:
            acc.predictions.add(labels.tolist())
        if acc.scores is not None and scores is not None:
            acc.scores.add(scores)
            if acc.estimate is not None and spec.positive_index is not None:
                acc.estimate.add(scores)
        if joining:
            joined = scan.joined.setdefault("champion", Joined())
            keys = frame[spec.key_column].tolist()
            shown = scores.tolist() if scores is not None else labels.tolist()
            for key, prediction, score in zip(keys, labels.tolist(), shown):
                label = spec.label_keys.get(key)
                if label is not None:
                    joined.labels.append(label)
                    joined.scores.append(score)
                    joined.predictions.append(prediction)
    return scan
