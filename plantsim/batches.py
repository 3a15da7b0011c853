"""The batch folder: one CSV per day, named by its date (`data/batches/2024-01-31.csv`), in the
AI4I 2020 layout. A batch that arrived is never rewritten; writes are atomic, so a reader (the
ingest stage, `dvc add`) never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from .ai4i import AI4I_COLUMNS, PlantError, Scenario, generate_day

BATCH_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.csv$")


@dataclass(frozen=True)
class Batch:
    day: dt.date
    path: Path


def list_batches(folder: str | os.PathLike[str]) -> list[Batch]:
    """The day batches in `folder`, oldest first. Files that are not CSV are ignored; a CSV not
    named YYYY-MM-DD.csv is an error (it would silently not be ingested)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".csv" or path.name.startswith("."):
            continue
        match = BATCH_NAME.match(path.name)
        day = _parse_day(match.group(1)) if match else None
        if day is None:
            raise PlantError(f"{path}: a batch is named after its day, YYYY-MM-DD.csv; rename or move it")
        found.append(Batch(day, path))
    return found


def in_window(batches: Iterable[Batch], last: dt.date, days: int) -> list[Batch]:
    """The batches of the `days` days ending with `last` (inclusive)."""
    first = last - dt.timedelta(days=days - 1)
    return [b for b in batches if first <= b.day <= last]


def read_batch(batch: Batch) -> pd.DataFrame:
    """One batch, checked for the AI4I 2020 columns (utf-8-sig: the published file starts with a BOM)."""
    frame = pd.read_csv(batch.path, encoding="utf-8-sig")
    missing = [c for c in AI4I_COLUMNS if c not in frame.columns]
    if missing:
        raise PlantError(f"{batch.path}: lacks the AI4I 2020 columns {missing}")
    return frame[AI4I_COLUMNS]


def next_days(
    folder: str | os.PathLike[str], start: dt.date, *, count: int | None = None, until: dt.date | None = None
) -> list[dt.date]:
    """The days after the newest batch in `folder` (from `start` when it holds none): `count`
    of them, or every one up to `until` (the first one alone when neither is given)."""
    present = list_batches(folder)
    first = present[-1].day + dt.timedelta(days=1) if present else start
    if until is not None:
        return [first + dt.timedelta(days=i) for i in range((until - first).days + 1)]
    return [first + dt.timedelta(days=i) for i in range(1 if count is None else count)]


def simulate(
    folder: str | os.PathLike[str], days: Iterable[dt.date], *, rows_per_day: int, seed: int,
    scenario: Scenario | None = None,
) -> list[Path]:
    """Write the simulated batch of each of `days` not yet in `folder`; returns the files written."""
    scenario = scenario or Scenario()
    written = []
    for day in days:
        path = Path(folder) / f"{day.isoformat()}.csv"
        if not path.exists():
            write_batch(path, generate_day(day, rows_per_day, seed, scenario.knobs(day)))
            written.append(path)
    return written


def replay(
    source: str | os.PathLike[str], folder: str | os.PathLike[str], days: Iterable[dt.date] | None, *,
    start: dt.date, rows_per_day: int,
) -> list[Path]:
    """Write batches from a CSV in the AI4I 2020 layout, split by rows in file order into
    consecutive days from `start` (the last day may be short): those of `days` (None: every day
    the file holds) not yet in `folder`. Days the file does not reach are left out."""
    frame = read_batch(Batch(start, Path(source)))
    held = [start + dt.timedelta(days=i) for i in range(-(-len(frame) // rows_per_day))]
    wanted = set(held if days is None else days)
    written = []
    for index, day in enumerate(held):
        path = Path(folder) / f"{day.isoformat()}.csv"
        if day in wanted and not path.exists():
            write_batch(path, frame.iloc[index * rows_per_day : (index + 1) * rows_per_day])
            written.append(path)
    return written


def write_batch(path: Path, frame: pd.DataFrame) -> None:
    """Write atomically: a temporary file in the same folder, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
