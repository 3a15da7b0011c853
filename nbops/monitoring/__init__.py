"""Monitoring: a package's reference profile against what the model sees now.

    result = nbops.monitor("failure-predictor@production", capture="capture/", labels="labels.csv")
    result            # in JupyterLab: the report, with its charts
    result.status     # "ok", "warn" or "drift"

Modules (pure functions over arrays and profiles; the CLI, the cell API and CI share them):
    profile     the reference profile save_model records and promotion packages
    accumulate  current data as mergeable statistics over the profile's bins (streamed)
    sources     capture folders and data files, read part by part (in parallel processes)
    drift       Evidently's default per-column tests, PSI, computed against the profile
    quality     nulls, unseen categories, values outside the training range
    performance labels joined by request id or key column; live metrics vs the manifest's
    calibration the calibration a profile records (isotonic map, reliability table, its check)
    estimate    performance estimated from the scores before labels arrive; realized beside it
    analyse     one run's statistics → a MonitorResult (status, warnings, charts)
    config      thresholds, params.yaml `monitor:`
    report      MonitorResult, status, exit codes, JSON and Markdown; html: the page

`nbops.monitor` is the call (`monitor` below, re-exported lazily by nbops); this package is `nbops.monitoring`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.exceptions import MonitorError
from .report import MonitorResult

__all__ = ["monitor", "MonitorResult"]


def monitor(
    ref: str,
    *,
    capture: str | None = None,
    data: str | None = None,
    since: str | None = None,
    until: str | None = None,
    labels: str | None = None,
    key: str | None = None,
    registry: str | None = None,
    root: str | Path | None = None,
    jobs: int | None = None,
) -> MonitorResult:
    """Compare the current data of model `ref` (NAME[@VERSION|@STAGE]) with its package's profile.

    Current data is a capture folder (`capture`, a path or fsspec URL, laid out as INTERFACES.md
    §2 says) or a CSV/parquet file of inputs (`data`, scored here with the packaged model). `labels` (CSV or
    JSON lines) adds live performance, joined by request id or by the input column `key`.
    """
    from ..core import project
    from ..models.registry import project_registry
    from . import config as config_mod
    from .analyse import analyse
    from .sources import ScanSpec, parse_time, scan_capture, scan_data

    if (capture is None) == (data is None):
        raise MonitorError("give the current data: --capture DIR (a capture folder) or --data FILE (CSV or parquet), one of them")
    root_path = Path(root).resolve() if root else (project.find_root() or Path.cwd())
    config = config_mod.from_project(root_path)
    reg = project_registry(registry, root_path)
    name, version = reg.resolve(ref)
    folder = reg.local_path(name, version)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    profile = load_package_profile(folder, manifest, f"{name}@{version}")
    positive_index, positive = _positive(manifest, profile)
    window = {"since": parse_time(since, "--since"), "until": parse_time(until, "--until")}
    spec = ScanSpec(profile=profile, since=window["since"], until=window["until"], positive_index=positive_index, key_column=key)
    joined_by = None
    if labels:
        from .performance import load_labels

        table, joined_by = load_labels(labels, key)
        if key:
            spec.label_keys = table
        else:
            spec.labels = table
            spec.label_requests = frozenset(rid for rid, _ in table)
    if capture is not None:
        scan = scan_capture(capture, name, spec, jobs=jobs)
        source = str(capture)
    else:
        from .. import runtime

        try:
            model = runtime.PackagedModel.load(folder)
        except runtime.PackageError as exc:
            raise MonitorError(str(exc)) from None
        columns = [c["name"] for c in (manifest.get("signature") or {}).get("columns", [])]
        try:
            scan = scan_data(str(data), spec, model, columns)
        except (runtime.InputError, runtime.PackageError) as exc:
            raise MonitorError(f"--data {data}: the packaged model refuses it: {exc}") from None
        source = str(data)
    return analyse(
        name=name, version=version, source=source, window=window, profile=profile, manifest=manifest,
        scan=scan, config=config, positive=positive, joined_by=joined_by,
    )


def load_package_profile(folder: Path, manifest: dict[str, Any], shown: str) -> dict[str, Any]:
    """The package's profile.json, its sha256 checked against the manifest."""
    from ..core._io import sha256_file
    from .profile import validate

    entry = manifest.get("profile")
    if not entry:
        raise MonitorError(
            f"{shown} has no reference profile, so there is nothing to compare current data with: record one with "
            "nbops.save_model(model, NAME, sample_input=…, reference=X_train), run `dvc repro` and promote again"
        )
    path = folder / str(entry.get("file", "profile.json"))
    if not path.exists():
        raise MonitorError(f"{path}: missing, though the manifest of {shown} names it; the package is incomplete")
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise MonitorError(f"{path}: sha256 does not match the manifest of {shown}; the profile was changed after promotion")
    try:
        return validate(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (ValueError, json.JSONDecodeError) as exc:
        raise MonitorError(str(exc)) from None


def _positive(manifest: dict[str, Any], profile: dict[str, Any]) -> tuple[int | None, Any]:
    """(index of the scored class in `probabilities`, that class) for a binary classifier; a
    regressor's score is its prediction: (None, None)."""
    classes = manifest.get("classes") or []
    if manifest.get("task") == "classification" and len(classes) == 2:
        return 1, classes[1]
    return None, None  # a regressor (its prediction is its score), or multiclass (no single score)
