"""Monitoring thresholds: Evidently's defaults, overridable in params.yaml's `monitor:` section.

    monitor:
      p_value: 0.05          # KS / chi-square / Z-test: drift when p < this (references ≤ small_reference values)
      wasserstein: 0.1       # numeric columns of larger references: normed Wasserstein distance ≥ this
      jensenshannon: 0.1     # categorical columns of larger references: Jensen–Shannon distance ≥ this
      small_reference: 1000  # reference values up to which the statistical tests are used
      drift_share: 0.5       # dataset drift when at least this share of the columns drift
      psi_moderate: 0.1      # PSI bands: stable below, moderate up to psi_act, act above
      psi_act: 0.25
      tolerance: 0.05        # live performance: a metric worse than the manifest's by more than this
      min_labels: 30         # fewer labelled rows than this: live metrics are shown, never flagged
      out_of_range: 0.01     # data quality: warn when this share of a column lies outside the training range
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ..core.exceptions import MonitorError
from .drift import DriftConfig


@dataclass(frozen=True)
class MonitorConfig:
    drift: DriftConfig = DriftConfig()
    tolerance: float = 0.05
    min_labels: int = 30
    out_of_range: float = 0.01


_DRIFT_KEYS = {f.name for f in fields(DriftConfig)}
_OTHER_KEYS = {"tolerance", "min_labels", "out_of_range"}
VALID_KEYS = sorted(_DRIFT_KEYS | _OTHER_KEYS)


def from_mapping(section: Mapping[str, Any] | None, where: str = "params.yaml monitor") -> MonitorConfig:
    """The config with the section's overrides; an unknown key or a non-number is an error."""
    if section is None:
        return MonitorConfig()
    if not isinstance(section, Mapping):
        raise MonitorError(f"{where}: must be a mapping of thresholds ({', '.join(VALID_KEYS)})")
    drift: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in section.items():
        if key not in _DRIFT_KEYS | _OTHER_KEYS:
            raise MonitorError(f"{where}.{key}: unknown threshold; valid keys: {', '.join(VALID_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise MonitorError(f"{where}.{key}: must be a non-negative number, got {value!r}")
        (drift if key in _DRIFT_KEYS else other)[key] = int(value) if key in ("small_reference", "few_values", "min_labels") else float(value)
    return replace(MonitorConfig(), drift=replace(DriftConfig(), **drift), **other)


def from_project(root: Path | None) -> MonitorConfig:
    """The `monitor:` section of the project's params.yaml (defaults when there is none)."""
    if root is None or not (root / "params.yaml").exists():
        return MonitorConfig()
    from ..core.params import load_yaml

    params = load_yaml(root / "params.yaml", shown="params.yaml")
    return from_mapping(params.get("monitor") if isinstance(params, dict) else None)
