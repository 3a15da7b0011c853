"""Request capture: sampled answers of a served model, written as JSON lines for `nbops monitor`.

    capture = Capture.open("captures/", sample=1.0)      # or an fsspec URL: "s3://bucket/captures"
    if capture.wants():                                  # the sampling decision, once per request
        capture.record(request_id, model, "champion", inputs, predictions, probabilities, latency_ms)
    capture.close()                                      # writes what is buffered (lifespan shutdown)

The request path only appends a tuple of references it already holds (the validated input columns,
the prediction arrays) to a bounded in-memory buffer, under a lock held for a few hundred
nanoseconds; nothing is copied or formatted there. A writer thread wakes every `flush_seconds`,
takes the whole buffer, and writes ONE columnar line per (model, version, role) of what it took
(format version 2, INTERFACES.md §2b) to the current part of the model's UTC day:

    <root>/<model-name>/<YYYY-MM-DD>/part-<HHMMSS>-<pid>-<seq>.jsonl
    {"v": 2, "model", "version", "role", "requests": N,
     "request_id": [N], "ts": [N], "latency_ms": [N], "rows": [N],          per request
     "inputs": {column: [sum(rows)]}, "predictions": [sum(rows)],            per row, requests in order
     "classes": [...], "probabilities": {"<class>": [sum(rows)], ...},       classifiers
     "threshold": t}                                                         with a decision threshold

The predictions are the labels the server answered: with a decision threshold, the decisions at
`threshold` (lines written before that rule also hold "decisions", still read).

Row j of request i is at offset sum(rows[:i]) + j. A reader parses one line per batch of
requests instead of one per request (parsing small JSON objects was ~80% of `nbops monitor`'s
time), and numeric columns go to orjson as numpy arrays. A line holds at most LINE_VALUES values
(rows × input columns, but at least LINE_ROWS_MIN rows; a request larger than that is a line of
its own), so a reader never holds a huge line. Format version 1 (one line per request, the same fields per
request, probabilities row-wise) is still read.

A part ends with its UTC day or when it would grow past `part_bytes`. Locally, each batch is one
write call of complete lines, so a part ends mid-line only when the process was killed during that
call; `read_records` skips such a torn last line. On an fsspec URL (object stores cannot append),
each batch is a part of its own, uploaded whole.

When the buffer is full (`buffer_records` requests or `buffer_rows` rows waiting), the record is
dropped and counted: a request never waits for the disk. A clean stop writes everything buffered;
a kill loses at most the buffer. The counters (captured, written, dropped) count requests.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
import tempfile
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from . import jsonio
from .errors import CaptureError, say, short

FORMAT_VERSION = 2
#: Values (rows × input columns) in one line at most: 10,000 rows of 10 columns (≈ 1 MB of JSON).
LINE_VALUES = 100_000
#: ... but never fewer rows than this in a line, however many columns (unless one request is bigger).
LINE_ROWS_MIN = 100
ROLES = ("champion", "shadow")
DEFAULT_BUFFER_RECORDS = 10_000
#: Rows waiting in the buffer at most: a flood of 10,000-row batches must not hold gigabytes.
DEFAULT_BUFFER_ROWS = 500_000
DEFAULT_PART_BYTES = 64 << 20
#: How often the writer wakes: locally every second; on object storage every 10 s (a part per batch).
#: The default buffer holds 10 s of 1,000 requests/s, several times what one server process answers.
LOCAL_FLUSH_SECONDS = 1.0
REMOTE_FLUSH_SECONDS = 10.0
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class Capture:
    """Sampled request capture into JSON-lines parts under a folder or fsspec URL (see the module)."""

    def __init__(self, writer: _Parts, *, sample: float = 1.0, buffer_records: int = DEFAULT_BUFFER_RECORDS,
                 buffer_rows: int = DEFAULT_BUFFER_ROWS, flush_seconds: float = LOCAL_FLUSH_SECONDS,
                 log: Callable[[str], None] | None = None) -> None:
        self.root = writer.root
        self.sample = float(sample)
        self.buffer_records = int(buffer_records)
        self.buffer_rows = int(buffer_rows)
        self.flush_seconds = float(flush_seconds)
        self._writer = writer
        self._log = log or say
        _, self._dumps, self._numpy_native = jsonio.codec()
        self._random = random.random
        self._lock = threading.Lock()
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._buffered_rows = 0
        # Counters, read by /metrics and the summary line.
        self.captured = 0  # accepted into the buffer
        self.written = 0  # on disk (or in the object store)
        self.dropped_full = 0  # refused: the buffer was full
        self.dropped_error = 0  # taken from the buffer but not written: a write failed
        self._failing = False
        self._closed = False
        self._wake = threading.Event()
        self._drained = threading.Condition()  # notified after each drain (flush waits on it)
        self._drains = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nbops-capture", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, sample: float = 1.0, buffer_records: int = DEFAULT_BUFFER_RECORDS,
             buffer_rows: int = DEFAULT_BUFFER_ROWS, part_bytes: int = DEFAULT_PART_BYTES,
             flush_seconds: float | None = None, log: Callable[[str], None] | None = None) -> Capture:
        """Start capturing under `root`, a folder (created if needed) or an fsspec URL; checks that
        it can be written first (CaptureError naming the option and the fix otherwise)."""
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 < sample <= 1:
            raise CaptureError(f"--sample {sample!r}: the share of requests captured must be above 0 and at most 1")
        if buffer_records < 1 or buffer_rows < 1:
            raise CaptureError("--capture-buffer must be at least 1 record")
        text = os.fspath(root)
        if not text:
            raise CaptureError("--capture needs a folder or an fsspec URL")
        if "://" in text:
            writer: _Parts = _RemoteParts.open(text, part_bytes)
            default_flush = REMOTE_FLUSH_SECONDS
        else:
            writer = _LocalParts.open(Path(text), part_bytes)
            default_flush = LOCAL_FLUSH_SECONDS
        return cls(writer, sample=sample, buffer_records=buffer_records, buffer_rows=buffer_rows,
                   flush_seconds=default_flush if flush_seconds is None else flush_seconds, log=log)

    def __repr__(self) -> str:
        return f"<Capture {self.root} sample={self.sample:g} captured={self.captured} dropped={self.dropped}>"

    # -- the request path

    def wants(self) -> bool:
        """Whether to capture this request: the sampling decision (always, at a rate of 1)."""
        return self.sample >= 1.0 or self._random() < self.sample

    def record(self, request_id: str, model: Any, role: str, inputs: Any, predictions: Any, probabilities: Any,
               latency_ms: float, *, arrived: float | None = None) -> bool:
        """Buffer one scored request; False when the buffer is full (the record is dropped and counted).

        `model` is what answered (a PackagedModel: name, version, classes, decision); `role` is
        "champion", or "shadow" for a challenger scored beside it on the same request (same
        `request_id`); `inputs` the validated columns (a dict of arrays or a DataFrame) and
        `predictions`/`probabilities` the arrays as the model returned them (None for no
        probabilities). `arrived` is the request's arrival (time.time(); default: now). Nothing is
        copied: the arrays must not be changed afterwards. Thread-safe; never blocks on I/O."""
        rows = len(predictions)
        item = (time.time() if arrived is None else arrived, request_id, model, role, inputs, predictions,
                probabilities, latency_ms)
        with self._lock:
            if len(self._buffer) >= self.buffer_records or self._buffered_rows + rows > self.buffer_rows or self._closed:
                self.dropped_full += 1
                return False
            self._buffer.append(item)
            self._buffered_rows += rows
            self.captured += 1
        return True

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_error

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- the writer thread

    def _run(self) -> None:
        """The writer thread: it alone touches the parts (opens, writes, closes them)."""
        while not self._stopping:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self._drain()
            with self._drained:
                self._drains += 1
                self._drained.notify_all()
        self._drain()
        try:
            self._writer.close()
        except Exception as exc:  # noqa: BLE001
            self._log(f"capture: closing the last part under {self.root} failed ({short(exc, 200)})")

    def _drain(self) -> None:
        with self._lock:
            if not self._buffer:
                return
            batch, self._buffer, self._buffered_rows = self._buffer, deque(), 0
        # One line per (model, version, role) of the batch — and per UTC day and set of columns, the
        # rare cases where requests of one model differ there.
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for item in batch:
            inputs, probabilities = item[4], item[6]
            key = (id(item[2]), item[3], _day(item[0]), tuple(inputs.keys()), probabilities is None)
            groups.setdefault(key, []).append(item)
        parts: dict[tuple[str, str], list[tuple[bytes, int]]] = {}
        firsts: dict[tuple[str, str], float] = {}
        for (_, _, day, columns, _), items in groups.items():
            name = _UNSAFE_NAME.sub("_", str(items[0][2].name)) or "model"
            lines = parts.setdefault((name, day), [])
            firsts.setdefault((name, day), items[0][0])
            for chunk in _by_rows(items, max(LINE_ROWS_MIN, LINE_VALUES // max(len(columns), 1))):
                lines.extend(self._lines(chunk))
        for (name, day), lines in parts.items():
            requests = sum(n for _, n in lines)
            if not requests:
                continue
            try:
                self._writer.write(name, day, firsts[(name, day)], [line for line, _ in lines])
            except Exception as exc:  # noqa: BLE001 - a full disk, lost credentials: count, say once, go on
                self.dropped_error += requests
                self._trouble(f"capture: cannot write under {self.root} ({short(exc, 200)}); "
                              f"{self.dropped_error} records dropped so far")
                continue
            self.written += requests
            if self._failing:
                self._failing = False
                self._log(f"capture: writing under {self.root} again")

    def _lines(self, items: list[tuple[Any, ...]]) -> list[tuple[bytes, int]]:
        """(line, requests) for requests of one model and role: one line, or — when a value cannot be
        written as JSON — one line per request, dropping (and counting) only the requests at fault."""
        try:
            return [(self._line(items), len(items))]
        except Exception as exc:  # noqa: BLE001 - a value the codec cannot write
            if len(items) > 1:
                return [line for item in items for line in self._lines([item])]
            self.dropped_error += 1
            self._trouble(f"capture: a record of request {items[0][1]} cannot be written as JSON ({short(exc, 160)}); dropped")
            return []

    def _line(self, items: list[tuple[Any, ...]]) -> bytes:
        """One columnar line (format 2) for requests of one model, role and set of columns."""
        model, role = items[0][2], items[0][3]
        native = self._numpy_native
        record: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "model": model.name,
            "version": model.version,
            "role": role,
            "requests": len(items),
            "request_id": [item[1] for item in items],
            "ts": [_timestamp(item[0]) for item in items],
            "latency_ms": [round(float(item[7]), 3) for item in items],
            "rows": [len(item[5]) for item in items],
            "inputs": {str(name): _values(_joined([item[4][name] for item in items]), native) for name in items[0][4].keys()},
            "predictions": _values(_joined([item[5] for item in items]), native),
        }
        if items[0][6] is not None:
            probabilities = _joined([item[6] for item in items])
            classes = list(getattr(model, "classes", None) or range(probabilities.shape[1]))
            record["classes"] = classes
            record["probabilities"] = {str(c): _values(probabilities[:, i], native) for i, c in enumerate(classes)}
            decision = getattr(model, "decision", None)
            if decision is not None:  # the predictions are the decisions at this threshold (the served label)
                record["threshold"] = decision.threshold
        return self._dumps(record) + b"\n"

    def flush(self, timeout: float = 30.0) -> bool:
        """Write what is buffered now and wait until it is written (False after `timeout` s, or when
        closed): for notebooks and benchmarks; the server leaves it to the writer's schedule."""
        deadline = time.monotonic() + timeout
        with self._drained:
            target = self._drains + 2  # a drain in progress may have taken the buffer before the last record
            while self._drains < target and self._thread.is_alive():
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._drained.wait(min(left, 0.1))
        return self._drains >= target

    def _trouble(self, line: str) -> None:
        if not self._failing:
            self._failing = True
            self._log(line)

    # -- stopping

    def close(self, timeout: float = 30.0, *, quiet: bool = False) -> None:
        """Stop taking records, write everything buffered, close the parts; logs one summary line
        (with the drops, if any) unless `quiet`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # a slow disk or store: the thread goes on while the process lives
            self._log(f"capture: still writing under {self.root} after {timeout:g} s; what is not written "
                      "when the process exits is lost")
            return
        if not quiet:
            self._log(self.summary())

    def summary(self) -> str:
        text = f"capture: {self.written} records written under {self.root}"
        if self.dropped_full:
            text += (f"; {self.dropped_full} dropped because the buffer was full "
                     f"(raise --capture-buffer, now {self.buffer_records}, or lower --sample, now {self.sample:g})")
        if self.dropped_error:
            text += f"; {self.dropped_error} dropped because writing failed"
        return text


# --- parts --------------------------------------------------------------------------------------


class _Parts:
    """Where batches of lines go: the current part of each (model, day)."""

    root: str
    part_bytes: int
    _seq = itertools.count(1)

    def write(self, name: str, day: str, first: float, lines: list[bytes]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _part_name(self, first: float) -> str:
        return f"part-{time.strftime('%H%M%S', time.gmtime(first))}-{os.getpid()}-{next(self._seq):06d}.jsonl"


class _LocalParts(_Parts):
    """Parts in a local folder, each batch appended by one write call of complete lines."""

    def __init__(self, root: Path, part_bytes: int) -> None:
        self.root = str(root)
        self.folder = root
        self.part_bytes = part_bytes
        self.current: dict[str, tuple[int, int, str]] = {}  # model name → (fd, bytes written, day)

    @classmethod
    def open(cls, root: Path, part_bytes: int) -> _LocalParts:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".nbops-capture-probe-", dir=root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise CaptureError(f"--capture {root}: cannot write there ({exc.strerror or exc}); "
                               "choose a folder this process can write") from None
        return cls(root, part_bytes)

    def write(self, name: str, day: str, first: float, lines: list[bytes]) -> None:
        if name in self.current and self.current[name][2] != day:  # a new UTC day: a new folder and part
            self._close(name)
        size = self.current[name][1] if name in self.current else 0
        chunk: list[bytes] = []
        chunk_size = 0
        for line in lines:
            if size + chunk_size + len(line) > self.part_bytes and size + chunk_size > 0:
                if chunk:
                    self._append(name, day, first, chunk)
                    chunk, chunk_size = [], 0
                self._close(name)  # full: the next line starts a new part
                size = 0
            chunk.append(line)
            chunk_size += len(line)
        if chunk:
            self._append(name, day, first, chunk)

    def _append(self, name: str, day: str, first: float, lines: list[bytes]) -> None:
        if name not in self.current:
            folder = self.folder / name / day
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / self._part_name(first), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            self.current[name] = (fd, 0, day)
        fd, size, _ = self.current[name]
        data = b"".join(lines)
        try:
            _write_all(fd, data)
        except OSError:
            self._close(name)  # a torn line stays this part's last: the next batch starts a new part
            raise
        self.current[name] = (fd, size + len(data), day)

    def _close(self, name: str) -> None:
        fd = self.current.pop(name, (-1, 0, ""))[0]
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        for name in list(self.current):
            self._close(name)


class _RemoteParts(_Parts):
    """Parts on an fsspec file system (object storage cannot append): one part per batch, uploaded whole."""

    def __init__(self, fs: Any, base: str, url: str, part_bytes: int) -> None:
        self.fs, self.base, self.root, self.part_bytes = fs, base.rstrip("/"), url, part_bytes

    @classmethod
    def open(cls, url: str, part_bytes: int) -> _RemoteParts:
        try:
            import fsspec
        except ImportError:
            raise CaptureError(f"--capture {url}: capturing to a URL needs fsspec: pip install fsspec "
                               "(and the file system's package: s3fs for s3://, gcsfs for gs://, adlfs for az://)") from None
        try:
            fs, base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise CaptureError(f"--capture {url}: {short(exc, 200)}") from None
        probe = f"{base.rstrip('/')}/.nbops-capture-probe-{os.getpid()}"
        try:
            fs.makedirs(base, exist_ok=True)
            with fs.open(probe, "wb") as handle:
                handle.write(b"")
            fs.rm(probe)
        except Exception as exc:  # noqa: BLE001 - credentials, permissions, a missing bucket...
            raise CaptureError(f"--capture {url}: cannot write there ({short(exc, 200)})") from None
        return cls(fs, base, url, part_bytes)

    def write(self, name: str, day: str, first: float, lines: list[bytes]) -> None:
        folder = f"{self.base}/{name}/{day}"
        self.fs.makedirs(folder, exist_ok=True)
        chunk: list[bytes] = []
        size = 0
        for line in lines + [b""]:
            if (size + len(line) > self.part_bytes or not line) and chunk:
                with self.fs.open(f"{folder}/{self._part_name(first)}", "wb") as handle:
                    handle.write(b"".join(chunk))
                chunk, size = [], 0
            if line:
                chunk.append(line)
                size += len(line)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- values ------------------------------------------------------------------------------------


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


def _day(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def _by_rows(items: list[tuple[Any, ...]], line_rows: int) -> Iterator[list[tuple[Any, ...]]]:
    """Consecutive runs of requests holding at most `line_rows` rows (a bigger request alone)."""
    chunk: list[tuple[Any, ...]] = []
    rows = 0
    for item in items:
        size = len(item[5])
        if chunk and rows + size > line_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(item)
        rows += size
    if chunk:
        yield chunk


def _joined(arrays: list[Any]) -> Any:
    """The requests' arrays (numpy arrays or pandas columns) end to end, as one array."""
    if len(arrays) == 1:
        return arrays[0]
    import numpy as np

    return np.concatenate(arrays)


def _values(array: Any, numpy_native: bool = False) -> Any:
    """An array (numpy, pandas, list) as the JSON codec takes it: a numeric numpy array as it is
    when the codec writes those (orjson: NaN → null), else a list, NaN (a null) → None."""
    kind = getattr(getattr(array, "dtype", None), "kind", "")
    if numpy_native and kind and kind in "biuf" and type(array).__module__ == "numpy" and array.dtype.isnative:
        import numpy as np

        return np.ascontiguousarray(array)
    values = array.tolist() if hasattr(array, "tolist") else list(array)
    if (kind == "f" and bool((array != array).any())) or (kind == "O" and set(map(type, values)) - _NO_NAN_TYPES):
        values = [_no_nan(v) for v in values]  # NaN != NaN; objects other than strings may hold NaN
    return values


_NO_NAN_TYPES = {str, int, bool, type(None)}


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


# --- reading ------------------------------------------------------------------------------------


def part_paths(root: str | os.PathLike[str], model: str | None = None) -> list[str]:
    """The parts under a capture root (a folder or fsspec URL), in name order (day, then time)."""
    text = os.fspath(root)
    pattern = f"{_UNSAFE_NAME.sub('_', model) if model else '*'}/*/part-*.jsonl"
    if "://" not in text:
        return sorted(str(p) for p in Path(text).glob(pattern))
    import fsspec

    fs, base = fsspec.core.url_to_fs(text)
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(f"{base.rstrip('/')}/{pattern}"))


def parse_part(data: bytes, where: str = "part") -> tuple[list[dict[str, Any]], bool]:
    """The per-request records of one part's bytes (a format-2 line gives one per request), and
    whether its last line was torn (a process killed while writing it; that line is skipped). A
    bad line anywhere else is a ValueError naming it."""
    import json

    lines = data.split(b"\n")
    torn = lines[-1] != b""  # every complete line ends with "\n"
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            records.extend(requests_of(json.loads(line)))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"{where}: line {number} is not a capture record ({short(exc, 120)})") from None
    return records, torn


def requests_of(line: dict[str, Any]) -> list[dict[str, Any]]:
    """A parsed capture line as per-request records in the fields of format 1 (probabilities
    row-wise); a format-2 line keeps "v": 2. ValueError for a line whose arrays do not add up."""
    if not isinstance(line, dict):
        raise ValueError("not a JSON object")
    if line.get("v") != 2:
        return [line]
    rows, n = line["rows"], line["requests"]
    total = sum(rows)
    per_request = ("request_id", "ts", "latency_ms", "rows")
    if any(len(line[key]) != n for key in per_request):
        raise ValueError(f'"requests" is {n} but the per-request arrays differ in length')
    inputs = line["inputs"]
    per_row = [("predictions", line["predictions"]), *((f"inputs.{c}", v) for c, v in inputs.items())]
    classes, probabilities = line.get("classes"), line.get("probabilities")
    rowwise: list[Any] | None = None
    if probabilities is not None:
        columns = [probabilities[str(c)] for c in classes] if isinstance(probabilities, dict) else None
        if columns is None:
            rowwise = probabilities  # row-wise, as format 1 holds them
        else:
            per_row += [(f"probabilities.{c}", v) for c, v in zip(classes, columns)]
            rowwise = [list(row) for row in zip(*columns)]
    if "decisions" in line:
        per_row.append(("decisions", line["decisions"]))
    for key, values in per_row:
        if len(values) != total:
            raise ValueError(f'"{key}" holds {len(values)} values for {total} rows')
    records = []
    start = 0
    for i in range(n):
        end = start + rows[i]
        record: dict[str, Any] = {
            "v": 2, "ts": line["ts"][i], "request_id": line["request_id"][i], "model": line.get("model"),
            "version": line.get("version"), "role": line.get("role", "champion"), "latency_ms": line["latency_ms"][i],
            "rows": rows[i], "inputs": {c: v[start:end] for c, v in inputs.items()},
            "predictions": line["predictions"][start:end],
        }
        if rowwise is not None:
            record["classes"] = classes
            record["probabilities"] = rowwise[start:end]
        if "decisions" in line:
            record["decisions"] = line["decisions"][start:end]
            record["threshold"] = line.get("threshold")
        records.append(record)
        start = end
    return records


def read_records(root: str | os.PathLike[str], model: str | None = None) -> Iterator[dict[str, Any]]:
    """Every captured request under `root` (a folder or an fsspec URL), part by part, as a record of
    format 1's fields (a format-2 line is one record per request it holds); a torn last line of a
    part is skipped."""
    text = os.fspath(root)
    for path in part_paths(text, model):
        if "://" in text:
            import fsspec

            with fsspec.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = Path(path).read_bytes()
        yield from parse_part(data, path)[0]
