"""Recording from notebook cells: metrics, plots and models, as files DVC reads.

Runs inside the kernel, interactively in JupyterLab and under `nbops run` alike, so it imports
only the stdlib and nbops' lowest layer at import time; pandas, sklearn and skops are imported
by the call that needs them.

Every recorded item is also displayed as an output of MIME type `RECORD_MIME` (with a one-line
text fallback), so a later tool can read back from an executed report what a stage recorded,
with hashes, without re-running it (`read_records`).

Files written:  metrics/<stage>.json, plots/<stage>/<name>.json, models/<name>.skops + .json
                (+ models/<name>.profile.json with `reference=`)

Only a pipeline run (`nbops run`, which names the stage in NBOPS_STAGE) writes those files.
Exploring — a notebook run in JupyterLab, under nbval or from a plain script — records the same
files under .nbops/scratch/<stage>/ (ignored by git and DVC), says so once per stage, and so never
changes what the pipeline produced. When exploring, `load_model` and `input_path` take the newer
of the pipeline's file and one an exploratory run wrote; in a pipeline run, always the pipeline's.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from ..core import project
from ..core._io import atomic_write_bytes, dump_json, sha256_bytes
from ..core.exceptions import ChecksFailed, ModelFileError, RecordError

RECORD_MIME = "application/vnd.nbops.record+json"

# Environment `nbops run` sets for the kernel it starts.
ENV_STAGE = "NBOPS_STAGE"
ENV_ROOT = "NBOPS_ROOT"
ENV_JOURNAL = "NBOPS_JOURNAL"

#: DVC plot templates a `log_plot` may name.
PLOT_TEMPLATES = (
    "linear", "simple", "scatter", "smooth", "confusion", "confusion_normalized",
    "bar_horizontal", "bar_horizontal_sorted",
)

_metrics: dict[str, dict[str, Any]] = {}  # stage -> metrics logged in this kernel session
_announced: set[str] = set()  # stages whose scratch folder this session has named
_read_from_scratch: set[str] = set()  # scratch files this session has said it reads


# --- where we are ----------------------------------------------------------------------------


def current_stage() -> str:
    """The stage being recorded: set by `nbops run`, else the notebook's file name."""
    stage = os.environ.get(ENV_STAGE)
    if stage:
        return stage
    # jupyter_server tells the kernel which notebook it serves; VS Code has its own variable.
    session = os.environ.get("JPY_SESSION_NAME") or _user_ns_get("__vsc_ipynb_file__") or _user_ns_get("__session__")
    # A paired percent script opened as a notebook (jupytext) records as its .ipynb would.
    if session and Path(str(session)).suffix in (".ipynb", ".py"):
        return Path(str(session)).stem
    return "notebook"


def in_pipeline() -> bool:
    """True under `nbops run`, which names the stage; False when exploring."""
    return bool(os.environ.get(ENV_STAGE))


def project_root() -> Path:
    root = os.environ.get(ENV_ROOT)
    if root:
        return Path(root)
    return project.find_root() or Path.cwd()


def _user_ns_get(name: str) -> Any:
    ipython = _get_ipython()
    return ipython.user_ns.get(name) if ipython is not None else None


def _get_ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def _destination(stage: str, relative: str) -> str:
    """Where a file the pipeline keeps at `relative` goes in this run (see the module's docstring)."""
    if in_pipeline():
        return relative
    _announce_scratch(stage)
    return project.scratch_path(stage, relative)


def _announce_scratch(stage: str) -> None:
    if stage in _announced:
        return
    _announced.add(stage)
    ignore = project_root() / project.SCRATCH_DIR.split("/")[0] / ".gitignore"
    if not ignore.exists():  # git ignores the folder in any project, whatever its own .gitignore says
        atomic_write_bytes(ignore, b"# nbops' run journals and what exploring records: never committed\n*\n")
    text = (
        f"nbops: exploring (not `nbops run`): stage '{stage}' records into {project.scratch_path(stage)}/, "
        "which git and DVC ignore; only `dvc repro` writes the stage's outputs"
    )
    _note_text(text)


def _write(relative: str, data: bytes) -> None:
    """Write a recorded file atomically, noting it in the run's journal first (see execute.py)."""
    target = project_root() / relative
    journal = os.environ.get(ENV_JOURNAL)
    if journal:
        with open(journal, "a", encoding="utf-8") as handle:
            handle.write(relative + "\n")
    atomic_write_bytes(target, data)


def _scratch_note(record: dict[str, Any]) -> dict[str, Any]:
    if not in_pipeline():
        record["scratch"] = True
    return record


def _note(record: dict[str, Any], text: str) -> None:
    """Show the record in the notebook: machine-readable under RECORD_MIME, a line for people."""
    ipython = _get_ipython()
    if ipython is None or not hasattr(ipython, "display_pub"):
        return
    from IPython.display import display

    display({RECORD_MIME: record, "text/plain": f"nbops: {text}"}, raw=True)


# --- metrics ---------------------------------------------------------------------------------


def log_metric(name: str | Mapping[str, Any], value: Any = None) -> None:
    """Record one metric (`log_metric("roc_auc", 0.97)`) or several (`log_metric({...})`).

    Metrics of a stage go to metrics/<stage>.json, which `dvc metrics show` reads; logging
    a name again replaces its value.
    """
    if isinstance(name, Mapping):
        if value is not None:
            raise RecordError("log_metric: pass either a dict of metrics or a name and a value, not both")
        items = dict(name)
    else:
        items = {name: value}
    if not items:
        raise RecordError("log_metric: no metrics given")
    checked = {_metric_name(key): _metric_value(key, val) for key, val in items.items()}
    stage = current_stage()
    metrics = _metrics.setdefault(stage, {})
    metrics.update(checked)
    relative = _destination(stage, project.metrics_path(stage))
    data = dump_json(metrics).encode("utf-8")
    _write(relative, data)
    for key, val in checked.items():
        _note(
            _scratch_note({"kind": "metric", "stage": stage, "name": key, "value": val, "path": relative}),
            f"metric {key} = {val!r} → {relative}",
        )


log_metrics = log_metric


def _metric_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RecordError(f"log_metric: metric names must be non-empty strings, got {name!r}")
    return name


def _metric_value(name: str, value: Any) -> int | float | bool:
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordError(f"log_metric: metric '{name}' is {value}; metrics must be finite numbers")
        return value
    raise RecordError(f"log_metric: metric '{name}' must be a number, got {type(value).__name__} {value!r}")


# --- plots -----------------------------------------------------------------------------------


def log_plot(
    name: str,
    data: Any,
    *,
    x: str | None = None,
    y: str | None = None,
    template: str = "linear",
    title: str | None = None,
) -> None:
    """Record plot data (a DataFrame, a list of row dicts or a dict of columns) as
    plots/<stage>/<name>.json, a file `dvc plots show` renders with `template`.

    Returns nothing, so a call ending a cell adds no output to the report: the note shown
    for the record already says where the file went."""
    if not project.is_valid_name(name):
        raise RecordError(f"log_plot: plot name {name!r} must be a plain file name (letters, digits, . _ -)")
    if template not in PLOT_TEMPLATES:
        raise RecordError(f"log_plot: unknown template {template!r}; DVC's templates are {', '.join(PLOT_TEMPLATES)}")
    rows = _rows(name, data)
    if not rows:
        raise RecordError(f"log_plot: plot '{name}' has no rows")
    columns = list(rows[0])
    x = x or columns[0]
    y = y or (columns[1] if len(columns) > 1 else columns[0])
    for axis, column in (("x", x), ("y", y)):
        if column not in rows[0]:
            raise RecordError(f"log_plot: {axis}={column!r} is not a column of plot '{name}' (columns: {', '.join(columns)})")
    stage = current_stage()
    relative = _destination(stage, project.plot_path(stage, name))
    payload = json.dumps(rows, indent=1, allow_nan=False).encode("utf-8") + b"\n"
    _write(relative, payload)
    record = {
        "kind": "plot", "stage": stage, "name": name, "path": relative, "x": x, "y": y,
        "template": template, "title": title or name, "sha256": sha256_bytes(payload),
    }
    _note(_scratch_note(record), f"plot {name} ({template}, {len(rows)} rows) → {relative}")


def _rows(name: str, data: Any) -> list[dict[str, Any]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # DataFrame
        data = data.to_dict(orient="records")
    elif isinstance(data, Mapping):
        columns = {str(k): list(v) for k, v in data.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise RecordError(f"log_plot: the columns of plot '{name}' have different lengths")
        data = [dict(zip(columns, values)) for values in zip(*columns.values())]
    if not isinstance(data, list) or not all(isinstance(row, Mapping) for row in data):
        raise RecordError(f"log_plot: plot '{name}' needs a DataFrame, a list of row dicts or a dict of columns")
    rows = []
    for row in data:
        clean = {}
        for key, value in row.items():
            if hasattr(value, "item") and callable(value.item):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[str(key)] = value
        rows.append(clean)
    return rows


def log_pr_curve(y_true: Any, y_score: Any, name: str = "pr_curve", max_points: int = 500) -> None:
    """Precision-recall curve of the positive class, as a DVC `simple` plot (x=recall)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y_true, y_score)
    keep = _evenly_spaced(len(precision), max_points)
    rows = [{"recall": round(float(recall[i]), 6), "precision": round(float(precision[i]), 6)} for i in keep]
    log_plot(name, rows, x="recall", y="precision", template="simple", title="Precision-recall curve")


def log_roc_curve(y_true: Any, y_score: Any, name: str = "roc_curve", max_points: int = 500) -> None:
    """ROC curve of the positive class, as a DVC `simple` plot (x=fpr, y=tpr)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y_true, y_score)
    keep = _evenly_spaced(len(fpr), max_points)
    rows = [{"fpr": round(float(fpr[i]), 6), "tpr": round(float(tpr[i]), 6)} for i in keep]
    log_plot(name, rows, x="fpr", y="tpr", template="simple", title="ROC curve")


def log_confusion_matrix(y_true: Any, y_pred: Any, name: str = "confusion_matrix") -> None:
    """One row per sample ({actual, predicted}), as DVC's `confusion` template expects."""
    rows = [{"actual": str(_scalar(a)), "predicted": str(_scalar(p))} for a, p in zip(y_true, y_pred)]
    log_plot(name, rows, x="actual", y="predicted", template="confusion", title="Confusion matrix")


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _evenly_spaced(length: int, limit: int) -> list[int]:
    if length <= limit:
        return list(range(length))
    step = (length - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


# --- data checks -----------------------------------------------------------------------------

#: Columns of a findings table: check, column, row, value (pandera's failure cases are read too).
_PANDERA_COLUMNS = {"failure_case": "value", "index": "row"}


def log_checks(
    findings: Any,
    *,
    rows: int,
    checks: Any = None,
    name: str = "checks",
    examples: int = 5,
    fail: bool = True,
    source: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Record the result of data checks, and stop the stage when any failed.

    `findings` holds one row per failing value: a DataFrame with the columns check, column, row
    and value — or pandera's `SchemaErrors` (or its `failure_cases`) as it is — and None or an
    empty frame when every check passed. `rows` is how many rows were checked; `checks` names
    every check run, so the plot shows the ones that passed too. `source` names the file checked
    (its rows are what `row` counts), so the failure's message says where to look.

    Writes the metrics rows_checked, checks_failed and rows_failing to metrics/<stage>.json, a
    plot plots/<stage>/<name>.json (failing rows per check, `bar_horizontal`) and the findings
    with a few offending rows per check into the report, where `nbops report` shows them. When
    a check failed and `fail` is true, raises ChecksFailed naming each check, its column and
    offending rows: the stage fails, `dvc repro` stops, nothing downstream runs, and `nbops run`
    keeps these files as the failure's evidence. Returns the summary recorded.
    """
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise RecordError(f"log_checks: rows must be the number of rows checked, got {rows!r}")
    table = _findings_table(findings)
    failed: list[dict[str, Any]] = []
    if len(table):
        table = table.assign(column=table["column"].fillna("*").astype(str), check=table["check"].astype(str))
        for (check, column), group in table.groupby(["check", "column"], sort=False):
            distinct = group.drop_duplicates("row")
            failed.append({
                "check": check, "column": column, "failing_rows": int(len(distinct)),
                "examples": [
                    {"row": _jsonable(r), "value": _jsonable(v)}
                    for r, v in zip(distinct["row"].head(examples), distinct["value"].head(examples))
                ],
            })
    rows_failing = int(table["row"].nunique()) if len(table) else 0
    log_metric({"rows_checked": rows, "checks_failed": len(failed), "rows_failing": rows_failing})
    plotted = [{"check": f"{f['check']} ({f['column']})", "failing_rows": f["failing_rows"]} for f in failed]
    seen = {f["check"] for f in failed}
    plotted += [{"check": str(c), "failing_rows": 0} for c in (checks or []) if str(c) not in seen]
    if not plotted:
        plotted = [{"check": "all checks", "failing_rows": 0}]
    log_plot(name, plotted, x="failing_rows", y="check", template="bar_horizontal", title="Failing rows per data check")
    summary: dict[str, Any] = {"rows": rows, "passed": not failed, "failed": failed}
    if source is not None:
        summary["source"] = str(source)
    of = f" of {source}" if source is not None else ""
    _note({"kind": "checks", "stage": current_stage(), "name": name, **summary, "stopped": bool(failed and fail)},
          f"checks: {'all passed' if not failed else f'{len(failed)} failed'} on {rows} rows{of}")
    if failed and fail:
        raise ChecksFailed(describe_failed_checks(failed, rows, source=summary.get("source")))
    return summary


def describe_failed_checks(failed: list[dict[str, Any]], rows: int, limit: int = 3, source: str | None = None) -> str:
    """One line: each failed check, its column, its count and a few offending rows (of `source`)."""
    parts = []
    for f in failed:
        shown = ", ".join(f"row {e['row']}: {e['value']!r}" for e in f["examples"][:limit])
        count = f"{f['failing_rows']} row{'s' if f['failing_rows'] != 1 else ''}"
        parts.append(f"{f['check']} on {f['column']}: {count} (e.g. {shown})")
    of = f" of {source}" if source else ""
    return f"{len(failed)} data check{'s' if len(failed) != 1 else ''} failed on {rows} rows{of}: " + "; ".join(parts)


def _findings_table(findings: Any) -> Any:
    import pandas as pd

    if findings is None:
        return pd.DataFrame(columns=["check", "column", "row", "value"])
    if hasattr(findings, "failure_cases") and not hasattr(findings, "columns"):  # pandera's SchemaErrors
        findings = findings.failure_cases
    if not hasattr(findings, "columns"):
        raise RecordError("log_checks: findings must be a DataFrame (check, column, row, value), pandera's SchemaErrors, or None")
    renames = {k: v for k, v in _PANDERA_COLUMNS.items() if k in findings.columns and v not in findings.columns}
    table = findings.rename(columns=renames)
    missing = [c for c in ("check", "column", "row", "value") if c not in table.columns]
    if missing:
        raise RecordError(
            f"log_checks: the findings lack the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(expected check, column, row, value)"
        )
    return table[["check", "column", "row", "value"]].reset_index(drop=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


# --- models ----------------------------------------------------------------------------------


def save_model(
    model: Any, name: str, *, sample_input: Any, reference: Any = None, description: str = "", decision: Any = None,
    calibration: Any = None,
) -> dict[str, Any]:
    """Save a fitted model as models/<name>.skops plus a manifest models/<name>.json.

    The manifest holds the input signature inferred from `sample_input`, the sample itself with
    the model's predictions on it (the promotion parity check replays them), the model file's
    sha256 and library versions. Returns the manifest.

    `decision` sets the decision threshold of a classifier: a number, or a mapping with a
    "threshold" (what `nbops.choose_threshold` returns; its other entries — how and on what the
    threshold was chosen — are kept). A row's decision is `positive_class` (default: the last of
    the model's classes, 1 for 0/1 labels) when that class's probability is at least the
    threshold, else the other class. The manifest records it as `decision`, with the decisions on
    the sample; a promoted package answers them beside the probabilities.

    `reference` (the training frame, e.g. X_train) also records models/<name>.profile.json: the
    distribution the model was trained on and its scores there (nbops/monitoring/profile.py),
    which a promotion puts into the package and `nbops monitor` compares live data with.

    `calibration` (a binary classifier's, with `reference`): `(y, scores)` — labels and the
    positive class's scores of rows the model was NOT trained on (out-of-fold or validation
    scores), or a mapping with "labels", "scores" and a "source" saying what they are. The
    profile then records the calibration (nbops/monitoring/calibration.py: the isotonic map, a
    reliability table, whether it is good enough), from which `nbops monitor` estimates precision,
    recall, ROC AUC and the decision's cost on windows whose labels have not arrived yet.
    """
    from ..models import modelio

    if not isinstance(name, str) or not project.is_valid_name(name):
        raise RecordError(
            f"save_model: model name {name!r} must be a plain name (letters, digits, . _ -; no '/' or '..')"
        )
    if sample_input is None or len(sample_input) == 0:
        raise RecordError(f"save_model('{name}'): sample_input must hold a few rows of the model's input, e.g. X_test[:20]")
    if not hasattr(model, "predict"):
        raise RecordError(f"save_model('{name}'): {type(model).__name__} has no predict(); pass a fitted estimator")
    try:
        signature = modelio.infer_signature(sample_input)
        with modelio.single_threaded(model):
            predictions = model.predict(sample_input)
            probabilities = model.predict_proba(sample_input) if hasattr(model, "predict_proba") else None
    except Exception as exc:  # noqa: BLE001 - the user's model raised: say so in their terms
        raise RecordError(f"save_model('{name}'): the model could not predict its sample_input: {type(exc).__name__}: {exc}") from exc
    decision_entry, sample_decisions = _decision(model, name, decision, probabilities)

    try:
        data = modelio.dumps(model)
    except Exception as exc:  # noqa: BLE001 - skops cannot store some objects: say which, in the cell
        raise RecordError(f"save_model('{name}'): skops cannot store this model ({type(exc).__name__}: {exc}); nothing was saved") from None
    # Load it back as production will (the trust policy, plus params.yaml's promote.trusted_types),
    # so that a model nbops would refuse to serve is refused here, in the notebook cell.
    trusted = modelio.project_trusted_types(project_root())
    try:
        reloaded = modelio.loads(data, f"save_model('{name}')", trusted)
        with modelio.single_threaded(reloaded):
            replayed = reloaded.predict(sample_input)
    except ModelFileError as exc:
        raise ModelFileError(f"{exc}; nothing was saved") from None
    except Exception as exc:  # noqa: BLE001 - the reloaded model raised: it could not be served either
        raise RecordError(f"save_model('{name}'): the model loaded back from its skops bytes cannot predict "
                          f"({type(exc).__name__}: {exc}); nothing was saved") from None
    if modelio.to_jsonable(replayed) != modelio.to_jsonable(predictions):
        raise RecordError(f"save_model('{name}'): the model predicts differently after a skops round trip; it cannot be saved faithfully")

    if calibration is not None and reference is None:
        raise RecordError(f"save_model('{name}', calibration=...): the calibration goes into the reference profile; "
                          "pass reference=X_train too")
    profile_bytes = (_reference_profile(model, name, reference, signature, decision_entry, calibration)
                     if reference is not None else None)

    stage = current_stage()
    model_rel = _destination(stage, project.model_path(name))
    manifest_rel = _destination(stage, project.model_manifest_path(name))
    profile_rel = _destination(stage, project.model_profile_path(name))
    manifest = {
        "name": name,
        "stage": stage,
        "description": description,
        "format": "skops",
        "model_file": Path(model_rel).name,
        "sha256": sha256_bytes(data),
        "size": len(data),
        "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        "task": "classification" if probabilities is not None else "prediction",
        "classes": modelio.to_jsonable(getattr(model, "classes_", [])),
        "trusted_types": modelio.names_trusted_by(data, trusted),  # what it needs from params.yaml's list
        "signature": signature,
        "sample_input": modelio.sample_records(sample_input),
        "sample_predictions": modelio.to_jsonable(predictions),
        "sample_probabilities": modelio.to_jsonable(probabilities) if probabilities is not None else None,
        "versions": _versions(),
    }
    if decision_entry is not None:
        manifest["decision"] = decision_entry
        manifest["sample_decisions"] = sample_decisions
    if profile_bytes is not None:
        from ..monitoring.profile import describe

        manifest["profile"] = {
            "file": Path(profile_rel).name, "sha256": sha256_bytes(profile_bytes),
            **describe(json.loads(profile_bytes)),
        }
    manifest_bytes = dump_json(manifest).encode("utf-8")
    _write(model_rel, data)
    _write(manifest_rel, manifest_bytes)
    record = {
        "kind": "model", "stage": stage, "name": name, "path": model_rel, "sha256": manifest["sha256"],
        "manifest": manifest_rel, "manifest_sha256": sha256_bytes(manifest_bytes),
    }
    if profile_bytes is not None:
        _write(profile_rel, profile_bytes)
        record.update({"profile": profile_rel, "profile_sha256": sha256_bytes(profile_bytes)})
    _note(_scratch_note(record), f"model {name} ({manifest['estimator']}, sha256 {manifest['sha256'][:12]}) → {model_rel}")
    return manifest


def _decision(model: Any, name: str, decision: Any, probabilities: Any) -> tuple[dict[str, Any] | None, Any]:
    """The manifest's `decision` entry and the sample's decisions, or (None, None) without one."""
    if decision is None:
        return None, None
    from ..models import modelio
    from ..models.decisions import _check_threshold

    where = f"save_model('{name}', decision=...)"
    if isinstance(decision, Mapping):
        entry = {str(k): v for k, v in decision.items()}
        if "threshold" not in entry:
            raise RecordError(f"{where}: the decision needs a 'threshold' (e.g. what nbops.choose_threshold returns)")
    else:
        entry = {"threshold": decision}
    try:
        entry["threshold"] = _check_threshold(entry["threshold"], where)
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    if probabilities is None:
        raise RecordError(f"{where}: {type(model).__name__} has no predict_proba; a decision threshold applies to a classifier's probabilities")
    classes = modelio.to_jsonable(getattr(model, "classes_", []))
    if len(classes) != 2:
        raise RecordError(f"{where}: a decision threshold needs a classifier of two classes; the model has {len(classes)}: {classes}")
    positive = entry.get("positive_class", classes[-1])
    positive = positive.item() if hasattr(positive, "item") else positive
    if positive not in classes:
        raise RecordError(f"{where}: positive_class {positive!r} is not one of the model's classes {classes}")
    entry["positive_class"] = positive
    ordered = {"threshold": entry["threshold"], "positive_class": positive}
    ordered.update({k: v for k, v in entry.items() if k not in ordered})
    try:
        json.dumps(ordered, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where}: the decision's entries must be JSON numbers, strings, lists or mappings ({exc})") from None
    return ordered, modelio.apply_decision(probabilities, classes, ordered)


def _reference_profile(model: Any, name: str, reference: Any, signature: dict[str, Any],
                       decision: dict[str, Any] | None = None, calibration: Any = None) -> bytes:
    """The reference profile's bytes: the frame's distribution and the model's scores on it (the
    predicted labels by the rule the package answers with: the decision, when there is one), and
    the calibration when given."""
    import numpy as np
    import pandas as pd

    from ..models import modelio
    from ..monitoring.profile import build_profile, dumps

    where = f"save_model('{name}', reference=...)"
    if not hasattr(reference, "__len__") or len(reference) == 0:
        raise RecordError(f"{where}: the reference must be the training inputs (a DataFrame such as X_train), got {type(reference).__name__}")
    expected = [c["name"] for c in signature["columns"]]
    if isinstance(reference, pd.DataFrame):
        missing = [c for c in expected if c not in map(str, reference.columns)]
        if missing:
            raise RecordError(f"{where}: the reference lacks the input column(s) {', '.join(missing)} that sample_input has")
        frame = reference.rename(columns=str)[expected]
    else:
        frame = pd.DataFrame(np.asarray(reference))
        frame.columns = [str(c) for c in frame.columns]
        if list(frame.columns) != expected:
            raise RecordError(f"{where}: the reference has {frame.shape[1]} columns, sample_input {len(expected)}")
    try:
        with modelio.single_threaded(model):
            model_input = frame if isinstance(reference, pd.DataFrame) else np.asarray(reference)
            predictions = np.asarray(model.predict(model_input))
            probabilities = np.asarray(model.predict_proba(model_input)) if hasattr(model, "predict_proba") else None
    except Exception as exc:  # noqa: BLE001 - the user's model raised: say so in their terms
        raise RecordError(f"{where}: the model could not predict the reference: {type(exc).__name__}: {exc}") from exc
    classes = list(getattr(model, "classes_", []))
    if probabilities is not None and probabilities.ndim == 2 and probabilities.shape[1] == 2:
        scores, score_of = probabilities[:, 1], f"probability of class {modelio.to_jsonable(classes[1]) if classes else 1}"
    elif probabilities is None and predictions.dtype.kind in "iuf":
        scores, score_of = predictions, "prediction"
    else:
        scores, score_of = None, ""  # multiclass: the predicted classes' counts describe the output
    if decision is not None and probabilities is not None:
        predictions = np.asarray(modelio.apply_decision(probabilities, modelio.to_jsonable(classes), decision))
    profile = build_profile(
        frame, scores=scores, score_of=score_of, predictions=predictions if probabilities is not None else None
    )
    if calibration is not None:
        profile["calibration"] = _calibration(name, calibration, classes, score_of if scores is not None else "", decision)
    return dumps(profile).encode("utf-8")


def _calibration(name: str, given: Any, classes: list[Any], score_of: str, decision: dict[str, Any] | None) -> dict[str, Any]:
    """The profile's calibration entry from save_model's `calibration=` (see save_model)."""
    import numpy as np

    from ..models import modelio
    from ..monitoring.calibration import build_calibration

    where = f"save_model('{name}', calibration=...)"
    if not score_of.startswith("probability"):
        raise RecordError(f"{where}: calibration needs a classifier of two classes (its score: the positive class's probability)")
    source = ""
    if isinstance(given, Mapping):
        missing = [k for k in ("labels", "scores") if k not in given]
        if missing:
            raise RecordError(f"{where}: the mapping needs 'labels' and 'scores' (and may say its 'source')")
        labels, scores, source = given["labels"], given["scores"], str(given.get("source", ""))
    elif isinstance(given, (tuple, list)) and len(given) == 2:
        labels, scores = given
    else:
        raise RecordError(f"{where}: give (labels, scores) of rows the model was not trained on, e.g. (y_val, scores_val)")
    positive = modelio.to_jsonable(classes[1])
    y = np.asarray(labels) == positive
    threshold = None
    if decision is not None and decision.get("positive_class") == positive:
        threshold = decision["threshold"]
    try:
        return build_calibration(y, scores, threshold=threshold, of=score_of, source=source)
    except ValueError as exc:
        raise RecordError(f"{where}: {exc}") from None


def load_model(name: str) -> Any:
    """Load a model saved with `save_model`, verifying its sha256 against its manifest.

    In a pipeline run: the pipeline's models/<name>.skops, always. When exploring: the newer of
    that and one an exploratory run saved (.nbops/scratch/<stage>/models/), so a notebook explored
    after another explored one uses its model, and one explored after `dvc repro` the pipeline's;
    the notebook says when the scratch one is taken."""
    from ..models import modelio

    if not isinstance(name, str) or not project.is_valid_name(name):
        raise RecordError(f"load_model: model name {name!r} must be a plain name (letters, digits, . _ -)")
    relative = _newest(project.model_manifest_path(name))
    if relative is None:
        raise RecordError(
            f"load_model: no model '{name}' ({project.model_manifest_path(name)} is missing); "
            "save it with nbops.save_model or run the stage that does (`dvc repro`)"
        )
    root = project_root()
    manifest_file = root / relative
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    # The project's extra trusted names (params.yaml promote.trusted_types), as a package trusts its manifest's.
    trusted = modelio.project_trusted_types(root)
    return modelio.load_file(manifest_file.parent / manifest["model_file"], manifest["sha256"], trusted)


def compare_champion(
    name: str, score: Any, *, stages: Any = ("staging", "production"),
) -> dict[str, dict[str, Any]]:
    """Score the versions of `name` the registry now holds in `stages` with `score`, a function
    of a model returning a dict of metrics — the same function, on the same data, that measured
    the model this stage evaluates. So champion and challenger are compared like for like (say,
    on the most recent weeks), not each on the test set it happened to have.

    Each comparison is noted in the report; promotion's champion gate then compares the
    challenger's metrics with these, as long as the stage still holds the version compared
    (else it falls back to the metrics in the champion's manifest, and says so). Returns
    {stage: {"version", "metrics"}}; {} while nothing is promoted.
    """
    from .. import runtime
    from ..models.registry import project_registry

    if not isinstance(name, str) or not project.is_valid_name(name):
        raise RecordError(f"compare_champion: model name {name!r} must be a plain name (letters, digits, . _ -)")
    if not callable(score):
        raise RecordError("compare_champion: score must be a function of a model returning a dict of metrics")
    registry = project_registry(root=project_root())
    assigned = registry.stages(name) if registry.versions(name) else {}
    found: dict[str, dict[str, Any]] = {}
    scored: dict[str, dict[str, Any]] = {}
    for stage in stages:
        version = assigned.get(stage)
        if not version:
            continue
        if version not in scored:
            try:
                model = runtime.PackagedModel.load(registry.local_path(name, version))
            except runtime.PackageError as exc:
                raise RecordError(f"compare_champion('{name}'): {exc}") from None
            metrics = score(model)
            if not isinstance(metrics, Mapping):
                raise RecordError(f"compare_champion('{name}'): score returned {type(metrics).__name__}, not a dict of metrics")
            scored[version] = {_metric_name(k): _metric_value(k, v) for k, v in metrics.items()}
        found[stage] = {"version": version, "metrics": scored[version]}
        shown = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in scored[version].items())
        _note(
            {"kind": "champion", "stage": current_stage(), "name": name, "registry_stage": stage,
             "version": version, "metrics": scored[version]},
            f"champion {name} {version} ({stage}) on the same data: {shown}",
        )
    return found


# --- data files a stage writes and reads --------------------------------------------------------


def output_path(path: str | os.PathLike[str]) -> Path:
    """Where this run writes `path`, a data output of its stage (a DVC out, e.g. "data/raw.csv").

    Under `nbops run`: `path` itself. When exploring: the same path under
    .nbops/scratch/<stage>/, so an interactive run never overwrites the pipeline's data. The
    parent folder is created. The result is relative to the project root (the working directory
    of a stage and of an nbops kernel)."""
    relative = _project_relative(path, "output_path")
    destination = _destination(current_stage(), relative)
    (project_root() / destination).parent.mkdir(parents=True, exist_ok=True)
    return _shown(destination)


def input_path(path: str | os.PathLike[str]) -> Path:
    """Where this run reads `path`, a data input of its stage (a DVC dep, e.g. "data/raw.csv").

    Under `nbops run`: `path` itself, as DVC tracks it. When exploring: the newer of `path` and a
    copy an exploratory run of another stage wrote with `output_path` (the notebook says which)."""
    relative = _project_relative(path, "input_path")
    return _shown(_newest(relative) or relative)


def _project_relative(path: str | os.PathLike[str], caller: str) -> str:
    given = Path(path)
    root = project_root()
    if given.is_absolute():
        try:
            given = given.resolve().relative_to(root.resolve())
        except ValueError:
            raise RecordError(f"{caller}: {path} is outside the project {root}; give a path inside the project, such as data/raw.csv") from None
    if ".." in given.parts or not given.parts:
        raise RecordError(f"{caller}: {str(path)!r} must be a path inside the project, such as data/raw.csv")
    return given.as_posix()


def _shown(relative: str) -> Path:
    """`relative` as a path usable from here: relative when the working directory is the root."""
    root = project_root()
    return Path(relative) if Path.cwd().resolve() == root.resolve() else root / relative


def _newest(relative: str) -> str | None:
    """`relative`, or its copy in a scratch folder when exploring and that copy is newer."""
    root = project_root()
    found = []
    for candidate in [relative] + ([] if in_pipeline() else _scratch_copies(root, relative)):
        modified = _modified(root / candidate)
        if modified is not None:
            found.append((modified, candidate != relative, candidate))
    if not found:
        return None
    _, from_scratch, chosen = max(found)
    if from_scratch and chosen not in _read_from_scratch:
        _read_from_scratch.add(chosen)
        older = "newer than the pipeline's" if _modified(root / relative) is not None else "the pipeline has none yet"
        _note_text(f"nbops: exploring: {relative} is read from {chosen} ({older}); `dvc repro` makes the pipeline's")
    return chosen


def _scratch_copies(root: Path, relative: str) -> list[str]:
    scratch = root / project.SCRATCH_DIR
    if not scratch.is_dir():
        return []
    return sorted(f"{project.SCRATCH_DIR}/{stage.name}/{relative}" for stage in scratch.iterdir() if stage.is_dir())


def _modified(path: Path) -> int | None:
    """When `path` last changed: a file's mtime, a folder's newest file's."""
    try:
        if not path.is_dir():
            return path.stat().st_mtime_ns
        times = [p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()]
        return max(times) if times else None
    except OSError:
        return None


def _note_text(text: str) -> None:
    ipython = _get_ipython()
    if ipython is not None and hasattr(ipython, "display_pub"):
        from IPython.display import display

        display({"text/plain": text}, raw=True)
    else:
        print(text, file=sys.stderr)


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for dist in ("scikit-learn", "skops", "numpy", "scipy", "pandas"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found


# --- reading back ----------------------------------------------------------------------------


def read_records(report: str | os.PathLike[str] | Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a stage recorded, read from its executed report (path or notebook JSON)."""
    if not isinstance(report, Mapping):
        with open(report, encoding="utf-8") as handle:
            report = json.load(handle)
    found = []
    for cell in report.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data") or {}
            if RECORD_MIME in data:
                found.append(data[RECORD_MIME])
    return found
