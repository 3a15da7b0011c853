"""The monitoring report as one self-contained HTML page: inline CSS and SVG, no script, nothing
fetched from a network. Each column gets a chart of reference against current shares over the
reference's deciles (numeric; plus a bin each side of the training range) or its categories.
`fragment` is what JupyterLab shows for a MonitorResult; `document` is the file --html writes.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from .report import MonitorResult, _num

REFERENCE_COLOUR = "#8c9bb0"
CURRENT_COLOUR = "#d9622b"
_STYLE = """
.nbm{font:13px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d232b;max-width:1180px}
.nbm h2{font-size:20px;margin:6px 0}.nbm h3{font-size:15px;margin:18px 0 6px}
.nbm .badge{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-weight:600}
.nbm .ok{background:#2f8a4c}.nbm .warn{background:#c18a12}.nbm .drift{background:#c23b2e}
.nbm table{border-collapse:collapse;margin:6px 0}.nbm td,.nbm th{border-bottom:1px solid #e3e6ea;padding:3px 9px;text-align:left}
.nbm td.n{text-align:right;font-variant-numeric:tabular-nums}.nbm tr.drifted td{background:#fbeceb}
.nbm .charts{display:flex;flex-wrap:wrap;gap:10px}.nbm figure{margin:0;border:1px solid #e3e6ea;border-radius:6px;padding:6px}
.nbm figcaption{font-weight:600;margin-bottom:2px}.nbm .key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.nbm ul{margin:4px 0;padding-left:20px}.nbm .muted{color:#5f6b7a}
"""


#: The bins' labels under a chart: their font size (px), and a character's width at it, taken
#: generously (digits and most letters are narrower), to leave the rotated labels room.
LABEL_FONT = 9
_CHAR_WIDTH = 0.62 * LABEL_FONT
_SLANT = math.radians(40)
#: Characters of a label written under its bars (the bars' tooltips hold all of it): a bin's
#: two edges always fit (edge_labels), a long category's name is shortened.
LABEL_LIMIT = 28


def bars_svg(labels: Sequence[str], reference: Sequence[float], current: Sequence[float], width: int = 360, plot_height: int = 118) -> str:
    """Grouped bars of reference and current shares, as inline SVG. The labels, slanted under the
    bars, are measured: the picture grows below (and the plot moves right) until the longest fits,
    so none is cut or clipped."""
    count = max(len(labels), 1)
    shown = [_short(str(label), LABEL_LIMIT) for label in labels]
    longest = max([len(text) for text in shown] or [0]) * _CHAR_WIDTH
    top, gap = 8, 8
    bottom = math.ceil(gap + longest * math.sin(_SLANT) + LABEL_FONT * 1.2)
    slot = (width - 40) / count
    left = max(34, math.ceil(longest * math.cos(_SLANT) - slot / 2 + 4))
    plot_w, plot_h = width - left - 6, plot_height
    height = top + plot_h + bottom
    peak = max([*reference, *current, 0.01])
    slot = plot_w / count
    bar = max(slot * 0.38, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for tick in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="9" text-anchor="end" fill="#5f6b7a">{peak * tick:.0%}</text>')
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.1
        for j, (value, colour) in enumerate(((reference[i], REFERENCE_COLOUR), (current[i], CURRENT_COLOUR))):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{max(h, 0):.1f}" fill="{colour}">'
                f'<title>{escape(str(label))}: {"reference" if j == 0 else "current"} {value:.1%}</title></rect>'
            )
        cx, cy = left + i * slot + slot / 2, top + plot_h + gap
        parts.append(f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="{LABEL_FONT}" fill="#5f6b7a" text-anchor="end" '
                     f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{escape(shown[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fragment(result: MonitorResult) -> str:
    """The report as an HTML fragment (its own scoped style), for JupyterLab and the page."""
    status = result.status
    d = result.dataset_drift
    out = [f"<div class='nbm'><style>{_STYLE}</style>"]
    out.append(
        f"<h2>Monitoring {escape(result.model)} {escape(result.version)} <span class='badge {status}'>{status}</span></h2>"
        f"<div class='muted'>{result.rows:,} rows in {result.requests:,} requests from <code>{escape(result.source)}</code>"
        + (f", {escape(str(result.window.get('first')))} → {escape(str(result.window.get('last')))}" if result.window.get("first") else "")
        + "</div>"
    )
    out.append(
        f"<p><b>Dataset drift: {'yes' if d.get('drifted') else 'no'}</b> — {d.get('drifted_columns')} of {d.get('columns')} columns drift "
        f"(share {_num(d.get('share'))}, threshold {_num(d.get('threshold'))})."
    )
    if result.prediction:
        p = result.prediction
        out.append(
            f"<br><b>Prediction drift: {'yes' if p.get('drifted') else 'no'}</b> — {escape(str(p.get('of') or 'score'))}: "
            f"{escape(str(p.get('test')))} {_num(p.get('score'))} (threshold {_num(p.get('threshold'))}), PSI {_num(p.get('psi'))}"
        )
    out.append("</p>")
    if result.warnings:
        out.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{escape(w)}</li>" for w in result.warnings) + "</ul>")
    out.append("<h3>Columns</h3><table><tr><th>column</th><th>test</th><th>score</th><th>threshold</th><th>drift</th>"
               "<th>PSI</th><th>band</th><th>nulls</th><th>out of range</th><th>unseen</th></tr>")
    for c in result.columns:
        out.append(
            f"<tr class='{'drifted' if c.get('drifted') else ''}'><td>{escape(c['column'])}</td><td>{escape(str(c.get('test')))}</td>"
            f"<td class='n'>{_num(c.get('score'))}</td><td class='n'>{_num(c.get('threshold'))}</td>"
            f"<td>{'<b>yes</b>' if c.get('drifted') else 'no'}</td><td class='n'>{_num(c.get('psi'))}</td><td>{escape(str(c.get('psi_band') or '–'))}</td>"
            f"<td class='n'>{_num(c.get('nulls'))}</td><td class='n'>{_num(c.get('out_of_range'))}</td><td class='n'>{_num(c.get('unseen'))}</td></tr>"
        )
    out.append("</table>")
    perf = result.performance
    if perf:
        out.append(f"<h3>Live performance</h3><div class='muted'>{perf.get('labelled_rows', 0):,} labelled rows, joined by {escape(str(perf.get('joined_by')))}</div>")
        if perf.get("metrics"):
            out.append("<table><tr><th>metric</th><th>live</th><th>at promotion</th><th>change</th><th>dropped</th></tr>")
            for name, m in perf["metrics"].items():
                out.append(
                    f"<tr class='{'drifted' if m.get('dropped') else ''}'><td>{escape(name)}</td><td class='n'>{_num(m.get('live'))}</td>"
                    f"<td class='n'>{_num(m.get('recorded'))}</td><td class='n'>{_num(m.get('change'))}</td><td>{'<b>yes</b>' if m.get('dropped') else 'no'}</td></tr>"
                )
            out.append("</table>")
    estimate = result.estimate
    if estimate and estimate.get("metrics"):
        trust = "" if estimate.get("usable") else f" — <b>not meaningful</b>: {escape(str(estimate.get('reason')))}"
        out.append(f"<h3>Performance estimated from the scores</h3><div class='muted'>{estimate.get('rows', 0):,} rows, "
                   f"{_num(estimate.get('expected_positives'))} positives expected{trust}</div>")
        out.append("<table><tr><th>metric</th><th>estimated</th><th>95% band</th><th>calibration data</th><th>realized</th>"
                   "<th>within band</th></tr>")
        for name, m in estimate["metrics"].items():
            bad = m.get("dropped") or m.get("within") is False
            out.append(
                f"<tr class='{'drifted' if bad else ''}'><td>{escape(name)}</td><td class='n'>{_num(m.get('estimated'))}</td>"
                f"<td class='n'>{_num(m.get('low'))}–{_num(m.get('high'))}</td><td class='n'>{_num(m.get('reference'))}</td>"
                f"<td class='n'>{_num(m.get('realized'))}</td><td>{escape(str(m.get('within', '–')))}</td></tr>"
            )
        out.append("</table>")
    if result.shadow:
        s = result.shadow
        out.append(f"<h3>Shadow</h3><p>{s.get('rows', 0):,} rows, {s.get('paired', 0):,} paired with the champion, agreement {_num(s.get('agreement'))}.</p>")
    if result.charts:
        out.append(
            "<h3>Distributions</h3><div class='key'>"
            f"<span style='background:{REFERENCE_COLOUR}'></span>reference (training)<span style='background:{CURRENT_COLOUR}'></span>current</div>"
            "<div class='charts'>"
        )
        for name, chart in result.charts.items():
            out.append(
                f"<figure><figcaption>{escape(name)}</figcaption>"
                + bars_svg(chart["labels"], chart["reference"], chart["current"])
                + "</figure>"
            )
        out.append("</div>")
    if result.notes:
        out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in result.notes) + "</ul>")
    out.append("</div>")
    return "".join(out)


def document(result: MonitorResult) -> str:
    """A whole, self-contained page."""
    title = escape(f"Monitoring {result.model} {result.version}")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title></head>"
        f"<body>{fragment(result)}</body></html>\n"
    )
