"""One monitoring run's statistics turned into a MonitorResult: per-column drift and quality,
dataset and prediction drift, live performance, shadow agreement, warnings and chart data."""

from __future__ import annotations

from typing import Any, Mapping

from .config import MonitorConfig
from .drift import column_drift, decile_bins, numeric_shares
from .quality import column_quality, quality_warnings
from .report import MonitorResult
from .sources import Scan

CHART_CATEGORIES = 12


def analyse(
    *, name: str, version: str, source: str, window: dict[str, Any], profile: Mapping[str, Any], manifest: Mapping[str, Any],
    scan: Scan, config: MonitorConfig, positive: Any, joined_by: str | None,
) -> MonitorResult:
    acc = scan.accumulators
    sample = (profile.get("sample") or {}).get("columns") or {}
    columns, warnings, notes, charts = [], [], [], {}
    for reference in profile["columns"]:
        column = reference["name"]
        current = acc.columns[column]
        entry = column_drift(reference, current, config.drift, sample.get(column))
        quality = column_quality(reference, current)
        entry.update(quality)
        columns.append(entry)
        warnings += quality_warnings(column, quality, config.out_of_range)
        if entry.get("drifted"):
            warnings.append(f"'{column}' drifts: {entry['test']} {entry['score']:.4g} (threshold {entry['threshold']:g})")
        elif entry.get("psi_band") in ("moderate", "act"):
            warnings.append(f"'{column}': PSI {entry['psi']:.3g} ({entry['psi_band']})")
        if current.count:
            charts[column] = chart(reference, current)
    tested = [c for c in columns if c.get("test") != "none"]
    drifted = [c for c in tested if c.get("drifted")]
    share = len(drifted) / len(tested) if tested else 0.0
    dataset = {
        "drifted": bool(tested) and share >= config.drift.drift_share,
        "drifted_columns": len(drifted), "columns": len(tested), "share": round(share, 6),
        "threshold": config.drift.drift_share,
    }
    prediction = None
    if acc.scores is not None and profile.get("scores"):
        if acc.scores.count:
            prediction = column_drift(profile["scores"], acc.scores, config.drift, (profile.get("sample") or {}).get("scores"))
            prediction["of"] = profile["scores"].get("of") or "score"
            charts["score: " + prediction["of"]] = chart(profile["scores"], acc.scores, probability_bounds(prediction["of"]))
        else:
            notes.append("no scores in the current data (captured probabilities or predictions): prediction drift not tested")
    if acc.rows == 0:
        warnings.append("no rows in the window: nothing was compared")
    for column, count in sorted(acc.missing_columns.items()):
        warnings.append(f"'{column}': missing from {count:,} captured rows")
    for column, count in sorted(acc.extra_columns.items()):
        notes.append(f"'{column}': in the current data but not in the profile (not monitored)")
    if scan.bad_lines:
        warnings.append(f"{scan.bad_lines:,} capture lines were unreadable and skipped (a torn last line after a kill?)")
    versions = {v for v in scan.versions if v}
    if versions and versions != {version}:
        notes.append(f"captured rows come from version(s) {', '.join(sorted(versions))}; the profile is {name} {version}'s")
    performance = None
    if joined_by is not None:
        performance = live_performance(scan, manifest, positive, config, joined_by, notes)
    estimated = estimate_section(scan, profile, manifest, positive, config, warnings, notes)
    shadow = shadow_summary(scan, manifest, positive, config)
    return MonitorResult(
        model=name, version=version, source=source,
        window={**window, "first": scan.first_ts or None, "last": scan.last_ts or None},
        rows=acc.rows, requests=scan.requests, roles=dict(scan.roles), columns=columns, dataset_drift=dataset,
        prediction=prediction, performance=performance, shadow=shadow, notes=notes, warnings=warnings, charts=charts,
        estimate=estimated,
    )


def probability_bounds(of: str) -> tuple[float, float] | None:
    """(0, 1) for a score that is a probability (`record` profiles a classifier's as "probability
    of class …"): its chart's outer bins end there, not at "> 1"."""
    return (0.0, 1.0) if str(of).startswith("probability") else None


def estimate_section(scan: Scan, profile: Mapping[str, Any], manifest: Mapping[str, Any], positive: Any,
                     config: MonitorConfig, warnings: list[str], notes: list[str]) -> dict[str, Any] | None:
    """Performance estimated from the window's scores (estimate.py), and the realized figures
    beside it when labels joined."""
    bins = scan.accumulators.estimate
    if bins is None:
        if positive is not None and profile.get("scores"):
            notes.append("the profile records no calibration, so performance is not estimated before labels arrive: "
                         "record one with nbops.save_model(..., calibration=(y_val, scores_val))")
        return None
    from .estimate import beside_realized, estimate, notes_of, warnings_of
    from .performance import is_positive

    decision = manifest.get("decision") if isinstance(manifest.get("decision"), dict) else None
    result = estimate(bins, decision, config.tolerance)
    joined = scan.joined.get("champion")
    if joined is not None and joined.labels:
        beside_realized(result, is_positive(joined.labels, positive), joined.scores, decision, config.min_labels)
    if not result["usable"]:
        notes.append(f"the performance estimate means nothing here: {result['reason']}")
    warnings += warnings_of(result)
    notes += notes_of(result)
    return result


def chart(reference: Mapping[str, Any], current: Any, bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Reference and current shares to draw: deciles for numbers, the top categories otherwise."""
    if reference["kind"] == "numeric":
        ref, cur, labels = numeric_shares(reference, current, decile_bins(reference), bounds)
        return {"labels": labels, "reference": ref, "current": cur}
    counts = dict(reference.get("categories") or {})
    n = max(sum(counts.values()) + int(reference.get("other") or 0), 1)
    m = max(current.count, 1)
    top = sorted(counts, key=lambda k: (-counts[k], k))[:CHART_CATEGORIES]
    labels = list(top)
    ref = [counts[k] / n for k in top]
    cur = [current.counts.get(k, 0) / m for k in top]
    rest_cur = (current.count - sum(current.counts.get(k, 0) for k in top)) / m
    rest_ref = 1 - sum(ref) if counts else 0.0
    if rest_cur > 0 or rest_ref > 1e-9:
        labels.append("(other / unseen)")
        ref.append(max(rest_ref, 0.0))
        cur.append(max(rest_cur, 0.0))
    return {"labels": labels, "reference": ref, "current": cur}


def live_performance(scan: Scan, manifest: Mapping[str, Any], positive: Any, config: MonitorConfig, joined_by: str, notes: list[str]) -> dict[str, Any]:
    from .performance import compare, live_metrics

    joined = scan.joined.get("champion")
    recorded = dict(manifest.get("metrics") or {})
    labelled = len(joined.labels) if joined else 0
    result: dict[str, Any] = {"joined_by": joined_by, "labelled_rows": labelled, "tolerance": config.tolerance, "metrics": {}}
    if not labelled:
        notes.append(f"no labelled rows matched the current data (joined by {joined_by})")
        return result
    if not recorded:
        notes.append("the manifest records no metrics to compare live performance with")
        return result
    live = live_metrics(joined.labels, joined.scores, joined.predictions, list(recorded), positive)
    result["metrics"] = compare(live, recorded, config.tolerance, labelled, config.min_labels)
    if labelled < config.min_labels:
        notes.append(f"only {labelled} labelled rows (monitor.min_labels is {config.min_labels}): live metrics shown, drops not flagged")
    return result


def shadow_summary(scan: Scan, manifest: Mapping[str, Any], positive: Any, config: MonitorConfig) -> dict[str, Any] | None:
    """Rows scored by a shadow (challenger) beside the champion; with labels, its metrics too."""
    rows = sum(count for role, count in scan.roles.items() if role != "champion")
    if not rows:
        return None
    summary: dict[str, Any] = {"rows": rows, "paired": scan.paired}
    if scan.paired:
        summary["agreement"] = round(scan.agreed / scan.paired, 6)
        summary["mean_score_difference"] = round(scan.score_gap / scan.paired, 6)
    joined_champion, joined_shadow = scan.joined.get("champion"), scan.joined.get("shadow")
    if joined_shadow and joined_shadow.labels and joined_champion and joined_champion.labels:
        from .performance import live_metrics

        names = list((manifest.get("metrics") or {}))
        champion = live_metrics(joined_champion.labels, joined_champion.scores, joined_champion.predictions, names, positive)
        shadow = live_metrics(joined_shadow.labels, joined_shadow.scores, joined_shadow.predictions, names, positive)
        summary["labelled_rows"] = len(joined_shadow.labels)
        summary["metrics"] = {
            name: {"champion": champion[name], "shadow": shadow[name],
                   "delta": round(shadow[name] - champion[name], 6) if champion[name] is not None and shadow[name] is not None else None}
            for name in names
        }
    return summary
