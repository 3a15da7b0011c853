"""What ends an `nbops run` early: its time limits, and the signals that stop it.

A run has two limits, set in params.yaml's `nbops:` section (nbops' own settings, never
injected into a notebook) or on the command line (`--timeout`, `--start-timeout`):

    nbops:
      timeout: 1h          # a stage's cells, first to last (default: no limit)
      start_timeout: 60    # the kernel's start-up (default: 60 s, as papermill)
      stages:
        train:
          timeout: 2h      # one stage's own limit

A duration is a number of seconds or a number with `s`, `m` or `h`; `null` is no limit (a
stage's own `timeout: null` lifts the section's). When the time limit
expires, or SIGTERM (CI, `timeout`), SIGHUP or Ctrl-C reaches `nbops run`, the `Supervisor`
kills the kernel's process group — the kernel and every process a cell started — and the run
ends as a failed cell does (execute.py names the cell, keeps the partial report and removes
what the run recorded). Stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from dataclasses import dataclass
from typing import Any

#: The params.yaml section holding nbops' own settings; no stage may be named so.
SETTINGS_SECTION = "nbops"
DEFAULT_START_TIMEOUT = 60.0
_LIMIT_KEYS = ("timeout", "start_timeout")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600}
#: The signals a run treats as "stop": what CI runners and `timeout` send, a closed terminal, Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class SettingsError(ValueError):
    """A bad value in the `nbops:` section or of --timeout; the message names it (no nbops import here)."""


@dataclass(frozen=True)
class Limits:
    timeout: float | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT
    timeout_origin: str = ""  # where the time limit was set, for the message when it expires
    start_timeout_origin: str = ""


def parse_duration(value: Any, where: str) -> float | None:
    """Seconds from `90`, `2.5`, `"90s"`, `"15m"` or `"2h"`; None (no limit) from `null` or
    `none`; SettingsError naming `where` otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match and float(match.group(1)) > 0:
        return float(match.group(1)) * _UNITS[match.group(2)]
    raise SettingsError(
        f"{where} is {value!r}; write a positive number of seconds or a duration such as 90s, 15m or 2h (null: no limit)"
    )


def settings_problems(params: dict[str, Any], filename: str = "params.yaml") -> list[tuple[tuple[str, ...], str]]:
    """Every problem of the `nbops:` section, as (key path, message)."""
    section = params.get(SETTINGS_SECTION)
    problems: list[tuple[tuple[str, ...], str]] = []
    if section is None:
        return problems
    where = f"{filename}: {SETTINGS_SECTION}"
    if not isinstance(section, dict):
        return [((SETTINGS_SECTION,), f"{where} must be a mapping (timeout:, start_timeout:, stages:)")]

    def limits(mapping: dict[Any, Any], path: tuple[str, ...]) -> None:
        for key, value in mapping.items():
            dotted = ".".join((*path, str(key)))
            if key in _LIMIT_KEYS:
                try:
                    parse_duration(value, f"{filename}: {dotted}")
                except SettingsError as exc:
                    problems.append(((*path, str(key)), str(exc)))
            elif not (path == (SETTINGS_SECTION,) and key == "stages"):
                allowed = ", ".join(_LIMIT_KEYS + (("stages",) if path == (SETTINGS_SECTION,) else ()))
                problems.append(((*path, str(key)), f"{filename}: {dotted} is not an nbops setting (settings: {allowed})"))

    limits(section, (SETTINGS_SECTION,))
    stages = section.get("stages")
    if stages is not None and not isinstance(stages, dict):
        problems.append(((SETTINGS_SECTION, "stages"), f"{where}.stages must map stage names to their settings (train: {{timeout: 2h}})"))
    for stage, settings in (stages or {}).items() if isinstance(stages, dict) else ():
        path = (SETTINGS_SECTION, "stages", str(stage))
        if not isinstance(settings, dict):
            problems.append((path, f"{filename}: {'.'.join(path)} must be a mapping (timeout:, start_timeout:)"))
        else:
            limits(settings, path)
    return problems


def read_limits(
    params: dict[str, Any], stage: str, *, timeout: Any = None, start_timeout: Any = None, filename: str = "params.yaml",
) -> Limits:
    """The limits of `stage`: the command line's, else the stage's own in params.yaml, else the
    section's defaults. Raises SettingsError naming the bad value."""
    problems = settings_problems(params, filename)
    if problems:
        raise SettingsError(problems[0][1])
    section = params.get(SETTINGS_SECTION) or {}
    own = (section.get("stages") or {}).get(stage) or {}
    found: dict[str, tuple[float | None, str]] = {}
    for key, given, flag in (("timeout", timeout, "--timeout"), ("start_timeout", start_timeout, "--start-timeout")):
        if given is not None:
            found[key] = (parse_duration(given, flag), f"{flag} {given}")
        elif key in own:
            found[key] = (parse_duration(own[key], ""), f"{filename}: {SETTINGS_SECTION}.stages.{stage}.{key}")
        elif key in section:
            found[key] = (parse_duration(section[key], ""), f"{filename}: {SETTINGS_SECTION}.{key}")
    run_limit, run_origin = found.get("timeout", (None, ""))
    start_limit, start_origin = found.get("start_timeout", (None, ""))
    if start_limit is None:
        start_limit, start_origin = DEFAULT_START_TIMEOUT, "default"
    return Limits(run_limit, start_limit, run_origin, start_origin)


def describe(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def stop_group(pgid: int | None) -> None:
    """SIGKILL every process of the group `pgid` (the kernel and what its cells started)."""
    if pgid is None or pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Stopped(BaseException):
    """Raised in the main thread when a stop arrives before the kernel runs (nothing to kill yet).
    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""


class Supervisor:
    """Watches one run: a timer for its time limit and handlers for the stop signals. A stop
    kills the kernel's process group once `attach`ed (the run then fails as the kernel died),
    or raises `Stopped` before that. `reason` says what stopped the run ("timeout", or the
    signal's name), None while nothing did."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.reason: str | None = None
        self.signum: int | None = None
        self._pgid: int | None = None
        self._timer: threading.Timer | None = None
        self._saved: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Supervisor:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for signum in STOP_SIGNALS:
                with contextlib.suppress(ValueError, OSError):
                    self._saved[signum] = signal.signal(signum, self._on_signal)
        return self

    def start_clock(self) -> None:
        """Start counting the time limit (once, when the first cell starts: the kernel's start-up
        has its own limit, which nbclient enforces)."""
        with self._lock:
            if self.timeout is None or self._timer is not None:
                return
            self._timer = threading.Timer(self.timeout, self._stop, args=("timeout",))
            self._timer.daemon = True
            self._timer.start()

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for signum, handler in self._saved.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)

    def attach(self, pgid: int | None) -> None:
        """The kernel's process group; a stop that came before is carried out now."""
        with self._lock:
            self._pgid = pgid
            stopped = self.reason is not None
        if stopped:
            stop_group(pgid)

    def stop_kernel(self) -> None:
        """Kill what the kernel's group still holds (after the run, whatever its outcome)."""
        with self._lock:
            pgid = self._pgid
        stop_group(pgid)

    def _stop(self, reason: str, signum: int | None = None) -> bool:
        """Record the first stop and kill the kernel's group; False when nothing is attached yet."""
        with self._lock:
            if self.reason is None:
                self.reason, self.signum = reason, signum
            pgid = self._pgid
        stop_group(pgid)
        return pgid is not None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self._stop(signal_name(signum), signum):
            raise Stopped(signum)

