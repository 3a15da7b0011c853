"""Promotion gates: what a model must prove before it becomes a package version.

A gate is a function of a `Candidate` returning failure messages (one line each, naming the
file, stage or metric and the next command); what it compared, passed or not, it notes with
`c.detail(gate, text)`, which the promotion card and `--json` show beside the verdict. Gates of phase "pipeline" run first, on files
alone; gates of phase "package" run once the package is built (parity, champion/challenger,
and `dvc status`, which runs in a subprocess meanwhile). Every gate runs and every failure is
reported together. Add your own with `register_gate`.
"""

from __future__ import annotations

import json
import operator
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.dvc import GitState, Stage, locked_out, md5_file, stale_stages

_CONDITION = re.compile(r"^\s*(>=|<=|==|>|<)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}


@dataclass
class Candidate:
    """Everything the gates look at, gathered once by the promotion."""

    root: Path
    name: str
    target: str
    stages: dict[str, Stage]
    lock: dict[str, Any]
    model_stage: Stage
    model_record: dict[str, Any]
    model_manifest: dict[str, Any] | None
    reports: dict[str, dict[str, Any] | None]  # stage -> executed report (None: missing)
    metrics: dict[str, float]
    metric_stages: dict[str, str]  # metric -> stage that recorded it
    involved: list[str]  # stages whose run the model depends on, in pipeline order
    config: dict[str, Any]  # params.yaml `promote:` section
    git: GitState | None
    force_reason: str | None = None
    status_process: subprocess.Popen[str] | None = None  # `dvc status`, started early
    parity_process: subprocess.Popen[str] | None = None  # the parity check's interpreter, started first
    package_dir: Path | None = None
    champion: dict[str, Any] | None = None  # manifest of the version now in the target stage
    model_sha256: str | None = None  # of the model file, hashed once (by the freshness gate)
    notes: list[str] = field(default_factory=list)
    details: dict[str, list[str]] = field(default_factory=dict)  # gate -> what it compared

    def detail(self, gate: str, text: str) -> None:
        """Note what `gate` compared (a metric against its threshold, a hash against the recorded one)."""
        self.details.setdefault(gate, []).append(text)

    @property
    def thresholds(self) -> dict[str, Any]:
        return dict(self.config.get("thresholds") or {})

    @property
    def tolerance(self) -> float:
        return float(self.config.get("tolerance", 0.0) or 0.0)


@dataclass
class GateResult:
    name: str
    phase: str
    failures: list[str]
    details: list[str] = field(default_factory=list)  # what the gate compared, passed or not

    @property
    def passed(self) -> bool:
        return not self.failures


GateFunction = Callable[[Candidate], list[str]]
_GATES: dict[str, tuple[str, GateFunction]] = {}


def register_gate(name: str, phase: str = "pipeline") -> Callable[[GateFunction], GateFunction]:
    """Decorator adding a gate; phase "pipeline" runs before the package is built, "package" after."""
    if phase not in ("pipeline", "package"):
        raise ValueError(f"gate phase must be 'pipeline' or 'package', got {phase!r}")

    def decorate(function: GateFunction) -> GateFunction:
        _GATES[name] = (phase, function)
        return function

    return decorate


def gates(phase: str) -> list[tuple[str, GateFunction]]:
    return [(name, function) for name, (p, function) in _GATES.items() if p == phase]


def run_gates(candidate: Candidate, phase: str) -> list[GateResult]:
    results = []
    for name, function in gates(phase):
        failures = function(candidate)
        results.append(GateResult(name, phase, failures, candidate.details.pop(name, [])))
    return results


def parse_condition(metric: str, condition: Any) -> tuple[str, float]:
    """'>= 0.95' → ('>=', 0.95); a bare number means '>='."""
    if isinstance(condition, (int, float)) and not isinstance(condition, bool):
        return ">=", float(condition)
    match = _CONDITION.match(str(condition))
    if not match:
        raise ValueError(
            f"params.yaml promote.thresholds.{metric}: {condition!r} is not a condition like \">= 0.95\""
        )
    return match[1] or ">=", float(match[2])


# --- the gates --------------------------------------------------------------------------------


@register_gate("thresholds")
def thresholds_gate(c: Candidate) -> list[str]:
    failures = []
    for metric, condition in c.thresholds.items():
        try:
            op, bound = parse_condition(metric, condition)
        except ValueError as exc:
            failures.append(str(exc))
            continue
        if metric not in c.metrics:
            recorded = ", ".join(sorted(c.metrics)) or "none"
            failures.append(f"threshold {metric} {op} {bound:g}: no stage recorded a metric '{metric}' (recorded: {recorded})")
            continue
        stage = c.metric_stages[metric]
        c.detail("thresholds", f"{metric} {c.metrics[metric]:g} {op} {bound:g} (stage '{stage}')")
        if not _OPERATORS[op](c.metrics[metric], bound):
            failures.append(
                f"threshold {metric} {op} {bound:g}: {metric} is {c.metrics[metric]:g} "
                f"(recorded by stage '{stage}' in metrics/{stage}.json)"
            )
    if not c.thresholds:
        c.detail("thresholds", "no thresholds set (params.yaml promote.thresholds)")
    return failures


@register_gate("reports")
def reports_gate(c: Candidate) -> list[str]:
    failures = []
    for stage in c.involved:
        report_path = c.stages[stage].report
        if report_path is None:
            continue
        report = c.reports.get(stage)
        if report is None:
            failures.append(f"{report_path}: missing; stage '{stage}' has not run with nbops — run `dvc repro`")
            continue
        for index, cell in enumerate(report.get("cells", [])):
            errors = [o for o in cell.get("outputs", []) or [] if o.get("output_type") == "error"]
            if errors:
                failures.append(
                    f"{report_path}: cell {index + 1} holds an error output ({errors[0].get('ename')}: "
                    f"{str(errors[0].get('evalue', '')).splitlines()[0] if errors[0].get('evalue') else ''}); "
                    f"fix the notebook and run `dvc repro`"
                )
                break
        else:
            c.detail("reports", f"{report_path}: ran without an error")
    return failures


@register_gate("freshness")
def freshness_gate(c: Candidate) -> list[str]:
    failures = []
    model_path = c.model_record["path"]
    file = c.root / model_path
    if not file.exists():
        return [f"{model_path}: missing; run `dvc repro`"]
    from ..core._io import file_digests

    # one read of a model that may be large: its sha256 (the package's) and DVC's md5 together
    actual, model_md5 = file_digests(file, "sha256", "md5")
    c.model_sha256 = actual
    c.detail("freshness", f"{model_path}: sha256 {actual[:12]}…, recorded by stage '{c.model_stage.name}' "
                          f"{str(c.model_record.get('sha256'))[:12]}…")
    if actual != c.model_record.get("sha256"):
        failures.append(
            f"{model_path}: not the file stage '{c.model_stage.name}' recorded in {c.model_stage.report} "
            f"(sha256 {actual[:12]}… vs {str(c.model_record.get('sha256'))[:12]}…); it was saved or changed "
            "outside the pipeline — run `dvc repro`"
        )
    checked = [model_path, c.model_record.get("manifest"), c.model_record.get("profile")]
    checked += [f"metrics/{stage}.json" for stage in sorted(set(c.metric_stages.values()))]
    for path in filter(None, checked):
        stage = _producer(c, path)
        if stage is None:
            failures.append(f"{path}: no stage in dvc.yaml lists it as an output; add it to the stage's outs (`nbops stage add`)")
            continue
        entry = locked_out(c.lock, stage, path)
        if entry is None or "md5" not in entry:
            failures.append(f"{path}: dvc.lock has no hash for it; stage '{stage}' has not run under DVC — run `dvc repro`")
        elif (c.root / path).exists() and (model_md5 if path == model_path else md5_file(c.root / path)) != entry["md5"]:
            failures.append(f"{path}: differs from the version dvc.lock records for stage '{stage}' — run `dvc repro`")
        else:
            c.detail("freshness", f"{path}: as dvc.lock records it (md5 {entry['md5'][:12]}…, stage '{stage}')")
    return failures


def _producer(c: Candidate, path: str) -> str | None:
    for name in c.stages:
        if path in c.stages[name].outs:
            return name
    return None


@register_gate("clean-tree")
def clean_tree_gate(c: Candidate) -> list[str]:
    commit = (c.git.commit or "no commit")[:12] if c.git else "not a git repository"
    state = "with uncommitted changes" if c.git is None or c.git.dirty else "clean"
    required = "" if c.target == "production" else " (a clean tree is required for production only)"
    c.detail("clean-tree", f"git {commit}, {state}{required}")
    if c.target != "production":
        if c.git is None or c.git.dirty:
            c.notes.append("staging from a tree with uncommitted pipeline changes: lineage marked dirty")
        return []
    if c.git is None or c.git.commit is None:
        return ["production needs a git commit to reproduce the version from; commit the project first"]
    if c.git.dirty:
        shown = ", ".join(c.git.dirty_paths[:5]) + (" …" if len(c.git.dirty_paths) > 5 else "")
        return [f"production needs a clean git tree for the pipeline's code and params; uncommitted: {shown} — commit them"]
    return []


@register_gate("parity", phase="package")
def parity_gate(c: Candidate) -> list[str]:
    if c.package_dir is None:
        return ["parity: no package was built"]
    if c.parity_process is None:
        failures = check_parity(c.package_dir)
    else:
        out, err = c.parity_process.communicate()
        if c.parity_process.returncode != 0:
            lines = err.strip().splitlines() or ["no output"]
            return [f"parity: the check could not run: {lines[-1]}"]
        failures = json.loads(out)
    rows = len((c.model_manifest or {}).get("sample_predictions") or [])
    c.detail("parity", f"the packaged model replayed the notebook's {rows} sample rows"
                       + (": predictions and probabilities identical" if not failures else ""))
    return failures


def start_parity() -> subprocess.Popen[str]:
    """Start the parity check's clean interpreter before there is a package: it imports
    scikit-learn and skops (2–3 s of CPU on a small machine, the longest step of a promotion)
    while this process gathers the gates and builds the package, then waits for `send_package`.
    Collected by the parity gate; killed unread if the promotion ends before."""
    return subprocess.Popen(
        [sys.executable, "-m", "nbops.promotion.gates"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def send_package(process: subprocess.Popen[str] | None, package_dir: Path) -> None:
    """Tell the waiting parity check which package to load (one line on its stdin); without
    one, the parity gate checks in this process."""
    if process is None or process.stdin is None:
        return
    try:
        process.stdin.write(f"{package_dir}\n")
        process.stdin.flush()
    except OSError:  # it has died (BrokenPipeError): the parity gate reports its stderr
        pass


def check_parity(package_dir: Path) -> list[str]:
    """Load the package as an installed one would and replay the sample the notebook recorded:
    the predictions (and probabilities, and decisions at a decision threshold) must be exactly
    the recorded ones."""
    from .. import runtime

    try:
        model = runtime.PackagedModel.load(package_dir, n_jobs=1)  # one thread: bitwise-stable sums
        manifest = model.manifest
        frame = model.frame({"dataframe_split": manifest["sample_input"]})
        predicted = _plain(model.predict(frame))
        probabilities = _plain(model.predict_proba(frame)) if manifest.get("sample_probabilities") is not None else None
        decisions = _plain(model.decide(frame)) if model.decision is not None else None
    except Exception as exc:  # noqa: BLE001 - anything here means the package cannot reproduce the notebook
        return [f"parity: the packaged model could not predict the recorded sample: {type(exc).__name__}: {exc}"]
    failures = []
    expected = manifest.get("sample_predictions")
    if predicted != expected:
        differing = sum(1 for a, b in zip(predicted, expected or []) if a != b) + abs(len(predicted) - len(expected or []))
        failures.append(f"parity: the package predicts differently from the notebook on {differing} of {len(expected or [])} sample rows")
    if probabilities is not None and probabilities != manifest.get("sample_probabilities"):
        failures.append("parity: the package's probabilities differ from those the notebook recorded for its sample")
    if decisions is not None and decisions != manifest.get("sample_decisions"):
        failures.append(
            f"parity: the package's decisions at threshold {model.decision.threshold} differ from those the notebook "
            "recorded for its sample"
        )
    return failures


def _plain(values: Any) -> Any:
    return json.loads(json.dumps(values.tolist() if hasattr(values, "tolist") else values))


@register_gate("champion", phase="package")
def champion_gate(c: Candidate) -> list[str]:
    if c.champion is None:
        c.detail("champion", f"no version in {c.target} yet: nothing to compare with")
        return []
    champion_metrics, basis = _champion_metrics(c)
    failures = []
    for metric, condition in c.thresholds.items():
        try:
            op, _ = parse_condition(metric, condition)
        except ValueError:
            continue  # the thresholds gate reports it
        champion_value = champion_metrics.get(metric)
        if op == "==" or champion_value is None or metric not in c.metrics:
            continue
        higher_is_better = op in (">=", ">")
        worse_by = (champion_value - c.metrics[metric]) if higher_is_better else (c.metrics[metric] - champion_value)
        c.detail("champion", f"{metric} {c.metrics[metric]:g} vs {c.target}'s {champion_value:g} "
                             f"(version {c.champion.get('version')}), tolerance {c.tolerance:g}")
        if worse_by > c.tolerance:
            failures.append(
                f"champion/challenger: {metric} {c.metrics[metric]:g} is worse than {c.target}'s "
                f"{champion_value:g} (version {c.champion.get('version')}, {basis}) beyond the tolerance {c.tolerance:g}"
            )
    if failures and c.force_reason:
        c.notes.append(f"forced past champion/challenger: {c.force_reason}")
        return []
    if failures:
        failures[-1] += " (set promote.tolerance in params.yaml, or --force REASON to promote anyway)"
    return failures


def _champion_metrics(c: Candidate) -> tuple[dict[str, Any], str]:
    """The champion's metrics to compare with: those a stage measured on the challenger's own
    data (nbops.compare_champion) when it compared the version the target stage holds now,
    else those in the champion's manifest (measured on its own test data)."""
    version = c.champion.get("version") if c.champion else None
    compared = [
        record for report in c.reports.values() if report
        for record in _records(report)
        if record.get("kind") == "champion" and record.get("name") == c.name and record.get("registry_stage") == c.target
    ]
    if compared and compared[-1].get("version") == version:
        return dict(compared[-1].get("metrics") or {}), f"scored on the same data by stage '{compared[-1].get('stage')}'"
    if compared:
        c.notes.append(
            f"stage '{compared[-1].get('stage')}' compared with {c.target}'s version {compared[-1].get('version')}, but "
            f"{c.target} now holds {version}: compared with its manifest's metrics instead (`dvc repro -f "
            f"{compared[-1].get('stage')}` compares again)"
        )
    return dict((c.champion or {}).get("metrics") or {}), "its own test data"


def _records(report: dict[str, Any]) -> list[dict[str, Any]]:
    from ..pipeline.record import read_records

    return read_records(report)


@register_gate("up-to-date", phase="package")
def up_to_date_gate(c: Candidate) -> list[str]:
    """`dvc status` of the stages the model depends on; it runs in a subprocess started before
    the package was built, so it is collected with the package gates."""
    from ..core.dvc import start_status

    try:
        stale = stale_stages(c.status_process or start_status(c.root, c.involved))
    except Exception as exc:  # noqa: BLE001 - DVC's own errors vary; the user needs its message
        return [str(exc)]
    failures = []
    for stage, changes in stale.items():
        shown = "; ".join(changes[:3]) + (" …" if len(changes) > 3 else "")
        failures.append(f"stage '{stage}' is not up to date ({shown}) — run `dvc repro`")
    fresh = [stage for stage in c.involved if stage not in stale]
    if fresh:
        c.detail("up-to-date", f"dvc status: {', '.join(fresh)} up to date")
    return failures


if __name__ == "__main__":  # `python -m nbops.promotion.gates [PACKAGE_DIR]`: the parity check, as JSON
    from ..core._startup import exit_now
    from ..runtime import import_skops, own_process

    own_process()  # its own process: skops may skip its default catalog (runtime/trust.py)
    if len(sys.argv) > 1:
        package = sys.argv[1]
    else:  # started ahead of the package (start_parity): import while it is built, then read where it is
        try:
            import_skops()
        except ImportError:
            pass  # check_parity says what is missing
        package = sys.stdin.readline().strip()
        if not package:  # the promotion ended before it built a package
            exit_now()
    print(json.dumps(check_parity(Path(package))))
    exit_now()
