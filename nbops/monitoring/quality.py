"""Data quality of one column against its reference: counted, never guessed.

nulls (and their share against training's), values outside the training range (below its min,
above its max), categories the training data never had (with the most frequent of them).
"""

from __future__ import annotations

from typing import Any, Mapping

from .accumulate import CategoricalAccumulator, NumericAccumulator

#: A column's null share may exceed training's by this much before it is worth a warning.
NULL_SLACK = 0.01


def column_quality(reference: Mapping[str, Any], current: Any) -> dict[str, Any]:
    rows = current.rows
    found: dict[str, Any] = {"nulls": current.nulls, "null_share": round(current.nulls / rows, 6) if rows else 0.0,
                             "reference_null_share": reference.get("null_share", 0.0)}
    if isinstance(current, NumericAccumulator):
        found.update({
            "below_range": current.below, "above_range": current.above, "out_of_range": current.below + current.above,
            "out_of_range_share": round((current.below + current.above) / current.count, 6) if current.count else 0.0,
            "min": current.min if current.count else None, "max": current.max if current.count else None,
            "mean": round(current.mean, 6) if current.mean is not None else None,
            "std": round(current.std, 6) if current.std is not None else None,
        })
    elif isinstance(current, CategoricalAccumulator):
        known = set((reference.get("categories") or {}))
        unseen = {k: c for k, c in current.counts.items() if k not in known}
        found["unseen"] = sum(unseen.values()) if not reference.get("other") else 0
        top = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        found["unseen_values"] = ", ".join(f"{k} ({c})" for k, c in top) if found["unseen"] else ""
    return found


def quality_warnings(name: str, quality: Mapping[str, Any], out_of_range: float) -> list[str]:
    warnings = []
    if quality.get("unseen"):
        warnings.append(f"'{name}': {quality['unseen']:,} rows hold categories never seen in training: {quality['unseen_values']}")
    if quality.get("out_of_range_share", 0.0) > out_of_range:
        warnings.append(
            f"'{name}': {quality['out_of_range']:,} values outside the training range "
            f"({quality['below_range']:,} below its min, {quality['above_range']:,} above its max)"
        )
    if quality.get("null_share", 0.0) > (quality.get("reference_null_share") or 0.0) + NULL_SLACK:
        warnings.append(f"'{name}': {quality['null_share']:.1%} nulls against {quality.get('reference_null_share') or 0:.1%} in training")
    return warnings
