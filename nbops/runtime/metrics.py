"""GET /metrics: the server's counters in Prometheus' text exposition format (version 0.0.4).

    nbops_http_requests_total{route, status}                 requests answered
    nbops_http_request_duration_seconds{route}               a latency histogram (arrival → answer sent)
    nbops_rows_scored_total{model, version, role}             rows predicted
    nbops_capture_captured_records_total                      requests accepted into the capture buffer
    nbops_capture_written_records_total                       ... and written out
    nbops_capture_dropped_records_total{reason}              "buffer_full" or "write_error"
    nbops_capture_buffered_records, nbops_capture_sample_ratio
    nbops_model_info{model, version}                          1: the model version being served

A few counters and one histogram need no client library: the request path adds to dicts on the
event loop (a bisect and two increments per request); everything is formatted only when scraped.
Route labels are the app's routes, and "other" for any unknown path, so a scan of random URLs
cannot grow the label set.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, Callable, Iterable

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of the latency buckets: sub-millisecond to a slow 10 s batch.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Observations per label tuple in fixed buckets; cumulative counts are made when rendered."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.series: dict[tuple[str, ...], list[float]] = {}  # labels → [bucket counts..., +Inf, sum]

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0] * (len(self.bounds) + 1) + [0.0]
        counts[bisect.bisect_left(self.bounds, value)] += 1
        counts[-1] += value


class ServerMetrics:
    """What the server counts. Request counts and latencies are added on the event loop; rows may
    be added from a worker thread too (large batches), so they take a lock."""

    def __init__(self, model_info: Callable[[], tuple[str, str]], capture: Any = None) -> None:
        self.model_info = model_info  # read when scraped: a switched model shows its new version
        self.capture = capture
        self.requests: dict[tuple[str, str], int] = {}
        self.latency = Histogram()
        self.rows: dict[tuple[str, str, str], int] = {}
        self._rows_lock = threading.Lock()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency.observe((route,), seconds)

    def add_rows(self, model: str, version: str, role: str, rows: int) -> None:
        key = (model, version, role)
        with self._rows_lock:
            self.rows[key] = self.rows.get(key, 0) + rows

    def render(self) -> bytes:
        out: list[str] = []
        family(out, "nbops_http_requests_total", "counter", "HTTP requests answered, by route and status.",
               [(("route", r), ("status", s), v) for (r, s), v in sorted(self.requests.items())])
        histogram(out, "nbops_http_request_duration_seconds",
                  "Time from a request's arrival to its answer, by route.", ("route",), self.latency)
        family(out, "nbops_rows_scored_total", "counter", "Rows predicted, by model, version and role.",
               [(("model", m), ("version", v), ("role", r), n) for (m, v, r), n in sorted(self.rows.items())])
        capture = self.capture
        family(out, "nbops_capture_captured_records_total", "counter",
               "Scored requests accepted into the capture buffer.", [(capture.captured if capture else 0,)])
        family(out, "nbops_capture_written_records_total", "counter",
               "Captured requests written to the capture folder.", [(capture.written if capture else 0,)])
        family(out, "nbops_capture_dropped_records_total", "counter",
               "Sampled requests not captured: the buffer was full, or writing failed.",
               [(("reason", "buffer_full"), capture.dropped_full if capture else 0),
                (("reason", "write_error"), capture.dropped_error if capture else 0)])
        family(out, "nbops_capture_buffered_records", "gauge", "Captured requests waiting to be written.",
               [(capture.buffered if capture else 0,)])
        family(out, "nbops_capture_sample_ratio", "gauge", "Share of scored requests captured (0: capture off).",
               [(capture.sample if capture else 0,)])
        name, version = self.model_info()
        family(out, "nbops_model_info", "gauge", "The model being served (always 1).",
               [(("model", name), ("version", version), 1)])
        return ("\n".join(out) + "\n").encode("utf-8")


def family(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[Any, ...]]) -> None:
    """One metric family: HELP, TYPE and its samples, each a tuple of (label, value) pairs then the value."""
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for sample in samples:
        out.append(f"{name}{labels_text(sample[:-1])} {number(sample[-1])}")


def histogram(out: list[str], name: str, help_text: str, label_names: tuple[str, ...], hist: Histogram) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} histogram")
    for labels, counts in sorted(hist.series.items()):
        pairs = tuple(zip(label_names, labels))
        running = 0
        for bound, count in zip(hist.bounds + (float("inf"),), counts):
            running += count
            out.append(f"{name}_bucket{labels_text(pairs + (('le', number(bound)),))} {running}")
        out.append(f"{name}_sum{labels_text(pairs)} {number(counts[-1])}")
        out.append(f"{name}_count{labels_text(pairs)} {running}")


def labels_text(pairs: Iterable[tuple[str, Any]]) -> str:
    inner = ",".join(f'{key}="{escape(str(value))}"' for key, value in pairs)
    return f"{{{inner}}}" if inner else ""


def escape(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(value) if isinstance(value, int) else repr(float(value))
