"""One day of a simulated machining plant, following the AI4I 2020 generation rules, with shifts.

The rules (S. Matzka, "Explainable Artificial Intelligence for Predictive Maintenance
Applications", 2020, as published with the UCI data set), one row per machining process:

* product quality variant L, M or H. The UCI text says 50 / 30 / 20 %, the published file holds
  60 / 30 / 10 % (6000 / 2997 / 1003 rows); we follow the file, which is what a model trained on
  it has seen (knob `type_mix`);
* air temperature: a random walk normalised to a standard deviation of 2 K around 300 K;
* process temperature: air temperature plus 10 K plus a random walk normalised to 1 K;
* torque: normally distributed around 40 Nm with a standard deviation of 10 Nm, no negative values;
* rotational speed: from a power of 2860 W (the speed at which the spindle delivers 2860 W at
  that torque) overlaid with normal noise, scaled so that its level and spread match the file;
* tool wear: each process adds 5 / 3 / 2 minutes for H / M / L; the tool is replaced, or fails
  (tool wear failure, TWF), at a wear drawn between 200 and 240 minutes (knob `tool_life`);
* heat dissipation failure (HDF): process − air temperature below 8.6 K and speed below 1380 rpm;
* power failure (PWF): torque × angular speed below 3500 W or above 9000 W;
* overstrain failure (OSF): tool wear × torque above 11,000 / 12,000 / 13,000 minNm for L / M / H;
* random failure (RNF): 0.1 % of processes fail regardless of their parameters.
`Machine failure` is 1 when any failure mode occurred.

Each day is generated on its own from (seed, date): writing one day gives the same bytes as
writing a month that holds it, and a new day never changes an old one. Within a day the tool
starts part-worn and the temperatures walk; across days the plant is stationary unless a
*shift* says otherwise (see `Shift` and `KNOBS`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

AI4I_COLUMNS = [
    "UDI", "Product ID", "Type", "Air temperature [K]", "Process temperature [K]",
    "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]", "Machine failure",
    "TWF", "HDF", "PWF", "OSF", "RNF",
]
FAILURE_MODES = ["TWF", "HDF", "PWF", "OSF", "RNF"]
#: Readings a calibration offset can affect (what a sensor reports, not what the machine does).
SENSORS = ["Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"]

#: The plant's settings: the generation rules' constants. A shift changes some of them for a range of days.
KNOBS: dict[str, Any] = {
    "type_mix": {"L": 0.6, "M": 0.3, "H": 0.1},          # share of each product variant
    "tool_life": [200.0, 240.0],                        # min: a tool is replaced (or fails) at a wear drawn in this range
    "twf_probability": 0.4,                             # a tool reaching its life fails instead of being replaced
    "hdf_min_temp_diff": 8.6,                           # K: HDF below this process − air difference ...
    "hdf_max_rpm": 1380.0,                              # ... and below this speed
    "pwf_power": [3500.0, 9000.0],                      # W: PWF outside this range
    "osf_limits": {"L": 11000.0, "M": 12000.0, "H": 13000.0},  # minNm: OSF above tool wear × torque
    "rnf_rate": 0.001,                                  # share of processes failing at random
    "sensor_offset": {},                                # {reading: offset}: a calibration error in what is recorded
}
WEAR_PER_PROCESS = {"L": 2, "M": 3, "H": 5}


class PlantError(ValueError):
    """A scenario or setting the simulator cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class Shift:
    """Knob values in force from day `first` to day `last` (inclusive; `last` None: from then on).

    With `ramp`, numeric values move in a straight line from what was in force before the shift
    (on its first day a 1/n step) to the given value (on its last day) — a drift rather than a jump.
    """

    first: dt.date
    last: dt.date | None
    values: Mapping[str, Any]
    ramp: bool = False
    name: str = ""

    def covers(self, day: dt.date) -> bool:
        return self.first <= day and (self.last is None or day <= self.last)

    def progress(self, day: dt.date) -> float:
        if not self.ramp or self.last is None:
            return 1.0
        return ((day - self.first).days + 1) / ((self.last - self.first).days + 1)


@dataclass
class Scenario:
    """The plant's baseline knobs and its shifts, applied in order (a later shift wins)."""

    shifts: list[Shift] = field(default_factory=list)
    baseline: Mapping[str, Any] = field(default_factory=lambda: KNOBS)

    def knobs(self, day: dt.date) -> dict[str, Any]:
        knobs = _copy(self.baseline)
        for shift in self.shifts:
            if shift.covers(day):
                fraction = shift.progress(day)
                for name, target in shift.values.items():
                    knobs[name] = _blend(knobs[name], target, fraction, name)
        return knobs


def parse_scenario(data: Mapping[str, Any] | None, start: dt.date, source: str = "scenario") -> Scenario:
    """A scenario from its YAML form: `{"shifts": [{"from": 30, "to": 44, "ramp": true, KNOB: VALUE, ...}]}`.

    `from` / `to` are day numbers counted from `start` (day 0) or dates (YYYY-MM-DD); `to` may be left out.
    """
    data = data or {}
    unknown = set(data) - {"shifts"}
    if unknown:
        raise PlantError(f"{source}: unknown key(s) {sorted(unknown)}; a scenario holds `shifts:`")
    shifts = []
    for index, entry in enumerate(data.get("shifts") or [], start=1):
        where = f"{source}: shift {index}"
        if not isinstance(entry, Mapping) or "from" not in entry:
            raise PlantError(f"{where}: give at least `from:` (a day number or YYYY-MM-DD) and one knob")
        values = {k: v for k, v in entry.items() if k not in ("from", "to", "ramp", "name")}
        if not values:
            raise PlantError(f"{where}: no knob to change; knobs: {', '.join(KNOBS)}")
        for name, value in values.items():
            if name not in KNOBS:
                raise PlantError(f"{where}: unknown knob {name!r}; knobs: {', '.join(KNOBS)}")
            _check_knob(name, value, where)
        first = _day(entry["from"], start, where)
        last = _day(entry["to"], start, where) if entry.get("to") is not None else None
        if last is not None and last < first:
            raise PlantError(f"{where}: `to` ({last}) is before `from` ({first})")
        shifts.append(Shift(first, last, values, bool(entry.get("ramp", False)), str(entry.get("name", ""))))
    return Scenario(shifts)


def generate_day(day: dt.date, n_rows: int, seed: int, knobs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The processes of one day in the AI4I 2020 layout, from (seed, day) alone."""
    k = _copy(KNOBS) if knobs is None else knobs
    rng = np.random.default_rng([seed, day.toordinal()])
    types = list(k["type_mix"])
    shares = np.array([k["type_mix"][t] for t in types], dtype=float)
    variant = rng.choice(np.array(types), size=n_rows, p=shares / shares.sum())

    def random_walk(sd: float) -> np.ndarray:
        walk = rng.normal(size=n_rows).cumsum()
        spread = walk.std()
        return (walk - walk.mean()) / (spread if spread > 0 else 1.0) * sd

    air = 300 + random_walk(2.0)
    process = air + 10 + random_walk(1.0)
    torque = np.clip(rng.normal(40, 10, n_rows), 3.5, None)
    rpm_at_2860_w = 2860 / torque * 60 / (2 * np.pi)
    rpm = 1075 + 0.627 * rpm_at_2860_w + rng.normal(0, 70, n_rows)
    # the physics below sees what the machine does: the recorded values, before any sensor offset
    air, process, torque = np.round(air, 1), np.round(process, 1), np.round(torque, 1)
    rpm = np.round(rpm).astype(int)

    low, high = (int(round(x)) for x in k["tool_life"])
    wear = np.zeros(n_rows, dtype=int)
    twf = np.zeros(n_rows, dtype=int)
    limit = rng.integers(low, high + 1)
    current = int(rng.integers(0, limit))  # the day starts with a part-worn tool
    for i in range(n_rows):
        wear[i] = current
        if current >= limit:  # the tool is replaced in time, or fails at this process
            twf[i] = int(rng.random() < k["twf_probability"])
            current, limit = 0, rng.integers(low, high + 1)
        else:
            current += WEAR_PER_PROCESS[variant[i]]

    power = torque * rpm * 2 * np.pi / 60
    hdf = ((process - air < k["hdf_min_temp_diff"]) & (rpm < k["hdf_max_rpm"])).astype(int)
    pwf = ((power < k["pwf_power"][0]) | (power > k["pwf_power"][1])).astype(int)
    strain_limit = np.array([k["osf_limits"][v] for v in variant], dtype=float)
    osf = (wear * torque > strain_limit).astype(int)
    rnf = (rng.random(n_rows) < k["rnf_rate"]).astype(int)
    failure = ((twf + hdf + pwf + osf + rnf) > 0).astype(int)
    serial = rng.integers(10000, 60000, n_rows)

    frame = pd.DataFrame({
        # unique across days: the date, then the process's number within it (2024-01-31, 7th: 2024013100007)
        "UDI": int(day.strftime("%Y%m%d")) * 100_000 + np.arange(1, n_rows + 1),
        "Product ID": [f"{v}{n}" for v, n in zip(variant, serial)],
        "Type": variant,
        "Air temperature [K]": air,
        "Process temperature [K]": process,
        "Rotational speed [rpm]": rpm,
        "Torque [Nm]": torque,
        "Tool wear [min]": wear,
        "Machine failure": failure,
        "TWF": twf, "HDF": hdf, "PWF": pwf, "OSF": osf, "RNF": rnf,
    })
    for column, offset in k["sensor_offset"].items():
        recorded = frame[column] + offset
        frame[column] = recorded.round().astype(int) if frame[column].dtype.kind == "i" else recorded.round(1)
    return frame


# --- knob values ---------------------------------------------------------------------------------


def _check_knob(name: str, value: Any, where: str) -> None:
    base = KNOBS[name]
    if name == "sensor_offset":
        if not isinstance(value, Mapping) or any(c not in SENSORS for c in value):
            raise PlantError(f"{where}: sensor_offset maps readings to offsets; readings: {SENSORS}")
        if not all(_is_number(v) for v in value.values()):
            raise PlantError(f"{where}: sensor_offset values must be numbers")
    elif isinstance(base, Mapping):
        if not isinstance(value, Mapping) or set(value) - set(base) or not all(_is_number(v) for v in value.values()):
            raise PlantError(f"{where}: {name} maps {sorted(base)} to numbers, e.g. {dict(base)}")
        if name == "type_mix" and (any(v < 0 for v in value.values()) or sum(value.values()) <= 0):
            raise PlantError(f"{where}: type_mix shares must be ≥ 0 and not all 0")
    elif isinstance(base, list):
        if not (isinstance(value, Sequence) and len(value) == 2 and all(_is_number(v) for v in value)
                and value[0] <= value[1]):
            raise PlantError(f"{where}: {name} is a range [low, high] of numbers, e.g. {base}")
    elif not _is_number(value):
        raise PlantError(f"{where}: {name} is a number, e.g. {base}")
    elif name in ("twf_probability", "rnf_rate") and not 0 <= value <= 1:
        raise PlantError(f"{where}: {name} is a probability between 0 and 1")


def _blend(before: Any, target: Any, fraction: float, name: str) -> Any:
    if fraction >= 1.0:
        merged = {**before, **target} if isinstance(before, Mapping) else target
        return _copy(merged)
    if isinstance(before, Mapping):
        keys = set(before) | set(target)
        return {key: _lerp(before.get(key, 0.0), target.get(key, before.get(key, 0.0)), fraction) for key in keys}
    if isinstance(before, list):
        return [_lerp(a, b, fraction) for a, b in zip(before, target)]
    return _lerp(before, target, fraction)


def _lerp(a: float, b: float, fraction: float) -> float:
    return float(a) + (float(b) - float(a)) * fraction


def _day(value: Any, start: dt.date, where: str) -> dt.date:
    if isinstance(value, bool):
        raise PlantError(f"{where}: a day is a number counted from the start (0) or a date YYYY-MM-DD, not {value!r}")
    if isinstance(value, int):
        return start + dt.timedelta(days=value)
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise PlantError(f"{where}: {value!r} is neither a day number nor a date YYYY-MM-DD") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _copy(knobs: Any) -> Any:
    if isinstance(knobs, Mapping):
        return {key: _copy(value) for key, value in knobs.items()}
    if isinstance(knobs, list):
        return list(knobs)
    return knobs
