"""HTML for people: the model card of a package and the promotion card shown in a notebook."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path
from typing import Any

_STYLE = """
<style>
.nbops-card{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;line-height:1.4;color:#1f2328}
.nbops-card h1,.nbops-card h2{margin:.6em 0 .3em}
.nbops-card table{border-collapse:collapse;margin:.4em 0}
.nbops-card td,.nbops-card th{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
.nbops-card .pass{color:#1a7f37;font-weight:600}.nbops-card .fail{color:#cf222e;font-weight:600}
.nbops-card code{background:#f6f8fa;padding:0 .2em}
.nbops-card .muted{color:#656d76}
.nbops-card tr.gate-fail td{background:#ffebe9}
</style>
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)


def _metrics_table(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "<p class='muted'>no metrics recorded</p>"
    return "<table>" + _rows([(k, _e(f"{v:.6g}" if isinstance(v, float) else v)) for k, v in metrics.items()]) + "</table>"


def summary_html(manifest: dict[str, Any]) -> str:
    lineage = manifest.get("lineage") or {}
    git = lineage.get("git") or {}
    commit = (git.get("commit") or "no commit")[:12]
    dirty = " <span class='fail'>(dirty tree)</span>" if git.get("dirty") else ""
    columns = (manifest.get("signature") or {}).get("columns", [])
    signature = "<table><tr><th>column</th><th>dtype</th></tr>" + "".join(
        f"<tr><td><code>{_e(c['name'])}</code></td><td>{_e(c['dtype'])}</td></tr>" for c in columns
    ) + "</table>"
    notebooks = "".join(
        f"<li><code>{_e(n.get('notebook'))}</code> → <code>{_e(n.get('report'))}</code> "
        f"<span class='muted'>sha256 {_e(str(n.get('report_sha256'))[:12])}…</span></li>"
        for n in lineage.get("notebooks", [])
    )
    forced = f"<p class='fail'>Forced: {_e(lineage['forced'])}</p>" if lineage.get("forced") else ""
    decision = manifest.get("decision") if isinstance(manifest.get("decision"), dict) else None
    decision_html = (
        "<h2>Decision</h2><table>" + _rows([(k, _e(v)) for k, v in decision.items()]) + "</table>" if decision else ""
    )
    return (
        f"<h1>{_e(manifest.get('name'))} <span class='muted'>{_e(manifest.get('version', ''))}</span></h1>"
        + "<table>"
        + _rows([
            ("estimator", f"<code>{_e(manifest.get('estimator'))}</code>"),
            ("created", _e(manifest.get("created", ""))),
            ("git commit", f"<code>{_e(commit)}</code>{dirty}"),
            ("model sha256", f"<code>{_e(str(manifest.get('sha256', ''))[:16])}…</code>"),
            ("install", f"<code>pip install {_e(manifest.get('wheel', ''))}</code>"),
        ])
        + "</table>"
        + forced
        + "<h2>Metrics</h2>" + _metrics_table(manifest.get("metrics") or {})
        + decision_html
        + "<h2>Input signature</h2>" + signature
        + (f"<h2>Lineage</h2><ul>{notebooks}</ul>" if notebooks else "")
    )


def model_card(manifest: dict[str, Any], report_html: str | None) -> str:
    """A standalone page: the manifest's summary on top of the evaluation report's HTML."""
    body = f"<h2>Evaluation report</h2>{report_html}" if report_html else ""
    title = f"{manifest.get('name')} {manifest.get('version', '')} — model card"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>{_STYLE}</head>"
        f"<body><div class='nbops-card'>{summary_html(manifest)}{body}</div></body></html>\n"
    )


def notebook_html(report: Path) -> str:
    """The body of an executed notebook as HTML (nbconvert's basic template, no prompts)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(report), as_version=4)
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return body


def start_notebook_html(report: Path) -> subprocess.Popen[str]:
    """Render `report` in a subprocess (nbconvert's import and rendering take about a second,
    which then overlaps the caller's work); read the HTML from its stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "nbops.promotion.cards", str(report)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_notebook_html(process: subprocess.Popen[str] | None) -> str | None:
    if process is None:
        return None
    out, err = process.communicate()
    if process.returncode != 0:
        lines = err.strip().splitlines() or ["no output"]
        return f"<p class='fail'>the report could not be rendered: {_e(lines[-1])}</p>"
    return out


def promotion_card(result: Any) -> str:
    """The card a notebook shows for `nbops.promote(...)` (a PromotionResult)."""
    gates = "".join(
        f"<tr class='gate-{'pass' if g.passed else 'fail'}'><td>{_e(g.name)}</td>"
        f"<td class='{'pass' if g.passed else 'fail'}'>{'pass' if g.passed else 'fail'}</td>"
        f"<td>{'<br>'.join([*(f'<span class=fail>{_e(f)}</span>' for f in g.failures), *(_e(d) for d in g.details)])}</td></tr>"
        for g in result.gates
    )
    where = (
        f"<p>Package: <code>{_e(result.path)}</code><br>Wheel: <code>{_e(result.wheel)}</code></p>"
        if result.path else f"<p class='muted'>{'dry run: ' if result.dry_run else ''}nothing was written</p>"
    )
    done = "assigned" if getattr(result, "action", "publish") == "assign" else "promoted"
    verdict = (
        f"<span class='pass'>{'would be ' + done if result.dry_run else done}</span> to "
        f"<b>{_e(result.stage)}</b> as version <b>{_e(result.version)}</b>"
        if result.ok else
        f"<span class='fail'>refused</span> <span class='muted'>(would have been version {_e(result.version)} "
        f"in {_e(result.stage)})</span>"
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.notes)
    return (
        f"{_STYLE}<div class='nbops-card'><h2>{_e(result.name)}: {verdict}</h2>{where}"
        f"<h3>Gates</h3><table><tr><th>gate</th><th>result</th><th>details</th></tr>{gates}</table>"
        f"<h3>Metrics</h3>{_metrics_table(result.metrics)}"
        + (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "")
        + "</div>"
    )


if __name__ == "__main__":
    from ..core._startup import exit_now, skip_slow_optional_imports, without_unused_extras, yield_cpu

    skip_slow_optional_imports()
    yield_cpu()  # a promotion waits on its parity check first (gates.start_parity)
    with without_unused_extras():  # jsonschema's format checkers, which nbformat's schema never uses
        import nbconvert  # noqa: F401
        import nbformat  # noqa: F401
    sys.stdout.write(notebook_html(Path(sys.argv[1])))
    exit_now()
