"""What `nbops monitor` found, and its renderings: JSON (DVC metrics), Markdown (CI job summary)
and HTML (html.py).

Status, worst first:
    drift   dataset drift (at least `drift_share` of the columns drift), prediction drift, or a
            live metric worse than the manifest's beyond the tolerance
    warn    a column drifts, a PSI band is moderate or act, a metric estimated before labels is
            worse than on the calibration data beyond the tolerance, a realized metric falls
            outside its estimate's band, or data quality needs a look
            (categories never seen in training, values outside the training range beyond
            `out_of_range`, more nulls than in training, missing columns, unreadable lines)
    ok      none of these

Exit codes of `nbops monitor` (cli.main maps errors): 0 ok (or below --fail-on), 1 error
(input it cannot use), 2 usage, 3 warn with --fail-on warn, 4 drift with --fail-on drift|warn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "warn", "drift")
EXIT_OK, EXIT_WARN, EXIT_DRIFT = 0, 3, 4


@dataclass
class MonitorResult:
    """The outcome of one monitoring run (`nbops.monitor(...)`, `nbops monitor`)."""

    model: str
    version: str
    source: str
    window: dict[str, str | None]
    rows: int
    requests: int
    roles: dict[str, int]
    columns: list[dict[str, Any]]
    dataset_drift: dict[str, Any]
    prediction: dict[str, Any] | None
    performance: dict[str, Any] | None
    shadow: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    charts: dict[str, Any] = field(default_factory=dict)  # column -> {labels, reference, current}; HTML only
    estimate: dict[str, Any] | None = None  # performance estimated from the scores (estimate.py)

    @property
    def status(self) -> str:
        performance_drop = any(m.get("dropped") for m in ((self.performance or {}).get("metrics") or {}).values())
        if self.dataset_drift.get("drifted") or (self.prediction or {}).get("drifted") or performance_drop:
            return "drift"
        return "warn" if self.warnings else "ok"

    def exit_code(self, fail_on: str | None) -> int:
        """0 unless the status reaches `fail_on` ("drift" or "warn"): then 4 for drift, 3 for warn."""
        status = self.status
        if fail_on is None or STATUSES.index(status) < STATUSES.index(fail_on):
            return EXIT_OK
        return EXIT_DRIFT if status == "drift" else EXIT_WARN

    @property
    def drifted_columns(self) -> list[str]:
        return [c["column"] for c in self.columns if c.get("drifted")]

    def to_dict(self) -> dict[str, Any]:
        """The JSON DVC reads as metrics: nested objects of numbers, booleans and strings."""
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "source": self.source,
            "window": self.window,
            "rows": self.rows,
            "requests": self.requests,
            "roles": dict(self.roles),
            "dataset_drift": self.dataset_drift,
            "columns": {c["column"]: {k: v for k, v in c.items() if k != "column"} for c in self.columns},
            "prediction": self.prediction,
            "performance": self.performance,
            "estimate": self.estimate,
            "shadow": self.shadow,
            "warnings": {str(i + 1): w for i, w in enumerate(self.warnings)},
            "notes": {str(i + 1): n for i, n in enumerate(self.notes)},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        return markdown(self)

    def to_html(self) -> str:
        from .html import document

        return document(self)

    def _repr_html_(self) -> str:
        from .html import fragment

        return fragment(self)

    def __str__(self) -> str:
        return self.to_markdown()


_BADGE = {"ok": "✅ ok", "warn": "⚠️ warn", "drift": "❌ drift"}


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(result: MonitorResult) -> str:
    """A summary for a CI job summary ($GITHUB_STEP_SUMMARY) or a terminal."""
    d = result.dataset_drift
    lines = [
        f"## Monitoring {result.model} {result.version}: {_BADGE[result.status]}",
        "",
        f"{result.rows:,} rows in {result.requests:,} requests from `{result.source}`"
        + (f", {result.window.get('first')} → {result.window.get('last')}" if result.window.get("first") else "")
        + ".",
        "",
        f"**Dataset drift: {'yes' if d.get('drifted') else 'no'}** — {d.get('drifted_columns')} of {d.get('columns')} columns drift "
        f"(share {_num(d.get('share'))}, threshold {_num(d.get('threshold'))}).",
    ]
    if result.prediction:
        p = result.prediction
        lines.append(
            f"**Prediction drift: {'yes' if p.get('drifted') else 'no'}** — {p.get('of') or 'score'}: {p.get('test')} "
            f"{_num(p.get('score'))} (threshold {_num(p.get('threshold'))}), PSI {_num(p.get('psi'))}."
        )
    lines += ["", "| column | test | score | threshold | drift | PSI | band | nulls | out of range | unseen |",
              "|---|---|---:|---:|:-:|---:|---|---:|---:|---:|"]
    for c in result.columns:
        lines.append(
            f"| {c['column']} | {c.get('test')} | {_num(c.get('score'))} | {_num(c.get('threshold'))} | "
            f"{'**yes**' if c.get('drifted') else 'no'} | {_num(c.get('psi'))} | {c.get('psi_band') or '–'} | "
            f"{_num(c.get('nulls'))} | {_num(c.get('out_of_range'))} | {_num(c.get('unseen'))} |"
        )
    perf = result.performance
    if perf:
        lines += ["", f"**Live performance** on {perf.get('labelled_rows', 0):,} labelled rows (joined by {perf.get('joined_by')}):", ""]
        if perf.get("metrics"):
            lines += ["| metric | live | at promotion | change | dropped |", "|---|---:|---:|---:|:-:|"]
            for name, m in perf["metrics"].items():
                lines.append(f"| {name} | {_num(m.get('live'))} | {_num(m.get('recorded'))} | {_num(m.get('change'))} | {'**yes**' if m.get('dropped') else 'no'} |")
    lines += estimate_markdown(result.estimate)
    if result.shadow:
        s = result.shadow
        lines += ["", f"**Shadow**: {s.get('rows', 0):,} rows, {s.get('paired', 0):,} paired with the champion, agreement {_num(s.get('agreement'))}."]
        for name, m in (s.get("metrics") or {}).items():
            lines.append(f"- {name}: champion {_num(m.get('champion'))}, shadow {_num(m.get('shadow'))}, delta {_num(m.get('delta'))}")
    if result.warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in result.warnings]]
    if result.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def estimate_markdown(estimate: dict[str, Any] | None) -> list[str]:
    """The performance estimate's table: estimated (band), the calibration data's figure, realized."""
    if not estimate or not estimate.get("metrics"):
        return []
    trusted = "" if estimate.get("usable") else " — **not meaningful**: " + str(estimate.get("reason"))
    lines = ["", f"**Performance estimated from the scores** ({estimate.get('rows', 0):,} rows, "
                 f"{_num(estimate.get('expected_positives'))} positives expected, threshold {_num(estimate.get('threshold'))}){trusted}:", "",
             "| metric | estimated | 95% band | calibration data | realized | error | within band |", "|---|---:|---|---:|---:|---:|:-:|"]
    for name, m in estimate["metrics"].items():
        band = f"{_num(m.get('low'))}–{_num(m.get('high'))}" if "low" in m else "–"
        flag = " (dropped)" if m.get("dropped") else ""
        lines.append(f"| {name} | {_num(m.get('estimated'))}{flag} | {band} | {_num(m.get('reference'))} | {_num(m.get('realized'))} | "
                     f"{_num(m.get('error'))} | {_num(m.get('within'))} |")
    return lines
