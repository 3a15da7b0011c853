"""Capture lines as columnar batches: what the monitor folds, whatever the line's format.

A format-2 line (INTERFACES.md §2b: one line per written batch of requests, columnar) is one
`Batch` as it is: its lists are the ones orjson built, nothing is copied per row. Consecutive
format-1 lines (one request each) of the same model, version, role and columns become one `Batch`
too, their per-row lists joined, so the rest of the monitor sees only batches. A line whose
arrays do not add up (a column shorter than its rows) is counted as unreadable, as a torn one is.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, compress, repeat
from typing import Any, Iterable

#: Fields a format-1 record holds per request; per-row fields are its lists.
_V1_KEY = ("model", "version", "role")


@dataclass
class Batch:
    """Requests of one (model, version, role): per-request lists, and per-row lists with the
    requests' rows end to end (row j of request i at sum(rows[:i]) + j)."""

    model: str
    version: str
    role: str
    request_ids: list[Any]
    ts: list[str]
    rows: list[int]
    inputs: dict[str, list[Any]]
    predictions: list[Any]
    probabilities: list[list[Any]] | None  # one list per class, in the order of the classes

    @property
    def total_rows(self) -> int:
        return len(self.predictions)

    def scores(self, positive_index: int | None) -> list[Any]:
        """The score of every row: the positive class's probability, or a regressor's prediction."""
        if positive_index is None:
            return self.predictions
        if self.probabilities is None or positive_index >= len(self.probabilities):
            return []
        return self.probabilities[positive_index]

    def keep(self, mask: list[bool]) -> Batch:
        """Only the requests where `mask` (one flag per request) is true."""
        row_mask = list(chain.from_iterable(map(repeat, mask, self.rows)))

        def rows_of(values: list[Any]) -> list[Any]:
            return list(compress(values, row_mask))

        return Batch(
            self.model, self.version, self.role, list(compress(self.request_ids, mask)), list(compress(self.ts, mask)),
            list(compress(self.rows, mask)), {c: rows_of(v) for c, v in self.inputs.items()}, rows_of(self.predictions),
            None if self.probabilities is None else [rows_of(p) for p in self.probabilities],
        )


def to_batches(records: Iterable[dict[str, Any]]) -> tuple[list[Batch], int]:
    """(batches, unreadable lines) of a chunk's parsed lines, in order."""
    batches: list[Batch] = []
    bad = 0
    run: list[dict[str, Any]] = []
    run_key: tuple[Any, ...] | None = None
    for record in records:
        if record.get("v") == 2:
            if run:
                batches.append(_from_v1(run))
                run, run_key = [], None
            batch = _from_v2(record)
            if batch is None:
                bad += 1
            else:
                batches.append(batch)
            continue
        key = _v1_key(record)
        if key is None:
            bad += 1
            continue
        if key != run_key and run:
            batches.append(_from_v1(run))
            run = []
        run.append(record)
        run_key = key
    if run:
        batches.append(_from_v1(run))
    return batches, bad


def _v1_key(record: dict[str, Any]) -> tuple[Any, ...] | None:
    """What format-1 records must share to be one batch; None for a record whose lists do not add up."""
    inputs = record.get("inputs")
    predictions = record.get("predictions")
    if not isinstance(inputs, dict) or not isinstance(predictions, list):
        return None
    rows = record.get("rows")
    if type(rows) is not int:
        rows = record["rows"] = len(predictions)
    probabilities = record.get("probabilities")
    if (len(predictions) != rows or any(type(v) is not list or len(v) != rows for v in inputs.values())
            or (probabilities is not None and (type(probabilities) is not list or len(probabilities) != rows))):
        return None
    width = len(probabilities[0]) if probabilities else (0 if probabilities is None else -1)
    return (*(record.get(k) for k in _V1_KEY), tuple(inputs), width)


def _from_v1(run: list[dict[str, Any]]) -> Batch:
    first = run[0]
    inputs = [r["inputs"] for r in run]
    probabilities = None
    if first.get("probabilities") is not None:
        rows = list(chain.from_iterable(r["probabilities"] for r in run))
        probabilities = [list(column) for column in zip(*rows)] if rows else None
    return Batch(
        str(first.get("model") or ""), str(first.get("version") or ""), str(first.get("role") or "champion"),
        [r.get("request_id") for r in run], [r.get("ts") or "" for r in run], [r["rows"] for r in run],
        {c: list(chain.from_iterable(i[c] for i in inputs)) for c in inputs[0]},
        list(chain.from_iterable(r["predictions"] for r in run)), probabilities,
    )


def _from_v2(line: dict[str, Any]) -> Batch | None:
    try:
        rows, ids, ts = line["rows"], line["request_id"], line["ts"]
        inputs, predictions = line["inputs"], line["predictions"]
        total = sum(rows)
        if not (len(ids) == len(ts) == len(rows)) or len(predictions) != total or not isinstance(inputs, dict):
            return None
        if ts and set(map(type, ts)) != {str}:
            return None
        if any(len(v) != total for v in inputs.values()):
            return None
        probabilities = line.get("probabilities")
        if isinstance(probabilities, dict):
            classes = line.get("classes") or []
            columns = [probabilities.get(str(c)) for c in classes]
            probabilities = list(probabilities.values()) if any(c is None for c in columns) else columns
        elif probabilities is not None:  # row-wise
            probabilities = [list(column) for column in zip(*probabilities)]
        if probabilities is not None and any(len(p) != total for p in probabilities):
            return None
    except (KeyError, TypeError):
        return None
    return Batch(str(line.get("model") or ""), str(line.get("version") or ""), str(line.get("role") or "champion"),
                 ids, ts, rows, inputs, predictions, probabilities)
