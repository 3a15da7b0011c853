"""`nbops promote NAME`: turn the model a clean pipeline run recorded into a package version.

One code path for the CLI, `nbops.promote()` in a cell and `%nbops promote`:

1. find the stage report that recorded the model (nbops.save_model) and the metrics the
   pipeline's reports recorded;
2. run the pipeline gates (thresholds, reports, freshness, clean tree);
3. under the registry lock: build the package into a private folder, run the package gates
   (parity, champion/challenger), and only when every gate passed move it in as the next
   version and assign it to the target stage. Failures are reported together and leave the
   registry exactly as it was. `dry_run` builds in a temporary folder and writes nothing.

Promoting to production the very model staging holds (the same sha256) assigns that version
instead of publishing a copy under a new number — unless that version was promoted from
uncommitted changes, whose lineage production does not accept.
"""

from __future__ import annotations

import getpass
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gates as gates_mod
from ..models import modelio
from . import package
from ..core import dvc, project
from ..core._io import sha256_file
from .cards import finish_notebook_html, start_notebook_html
from ..core.exceptions import PromotionError, RegistryError
from ..core.params import load_yaml
from ..pipeline.record import read_records
from ..models.registry import Registry, default_root, now, validate_name

TARGET_STAGES = ("staging", "production")


@dataclass
class PromotionResult:
    """What a promotion did (or, for a dry run, would do)."""

    name: str
    stage: str
    version: str
    dry_run: bool
    gates: list[gates_mod.GateResult]
    metrics: dict[str, Any]
    path: str | None = None  # the package folder in the registry
    wheel: str | None = None
    registry: str | None = None
    notes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    #: "publish": a new version was (would be) built and published; "assign": an existing version
    #: with the same model bytes was (would be) assigned to the stage.
    action: str = "publish"

    @property
    def ok(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failures(self) -> list[str]:
        return [f for g in self.gates for f in g.failures]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "stage": self.stage, "version": self.version, "dry_run": self.dry_run,
            "action": self.action, "ok": self.ok, "path": self.path, "wheel": self.wheel, "registry": self.registry,
            "metrics": self.metrics, "notes": self.notes, "tags": self.tags,
            "gates": [{"name": g.name, "passed": g.passed, "failures": g.failures, "details": g.details} for g in self.gates],
        }

    def __str__(self) -> str:
        lines = [f"{'✓' if g.passed else '✗'} {g.name}" + (f": {'; '.join(g.failures)}" if g.failures else "") for g in self.gates]
        if self.dry_run and self.action == "assign":
            lines.append(f"dry run: {self.name} {self.version}, which holds the same model, would be assigned to "
                         f"{self.stage} (no new version); nothing was written")
        elif self.dry_run:
            lines.append(f"dry run: {self.name} would become {self.version} in {self.stage}; nothing was written")
        elif self.action == "assign":
            lines.append(f"promoted {self.name} {self.version} to {self.stage}: the existing version holding the same "
                         f"model, assigned (no new version): {self.path}")
            lines.append(f"wheel: {self.wheel}")
        else:
            lines.append(f"promoted {self.name} {self.version} to {self.stage}: {self.path}")
            lines.append(f"wheel: {self.wheel}")
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(f"git tag: {tag}" for tag in self.tags)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .cards import promotion_card

        return promotion_card(self)


def promote(
    name: str,
    *,
    to: str = "staging",
    dry_run: bool = False,
    force: str | None = None,
    git_tag: bool = False,
    bump: str = "minor",
    root: str | Path | None = None,
    registry: str | None = None,
) -> PromotionResult:
    """Promote the model `name` (recorded by nbops.save_model in a stage report) to `to`.

    Raises PromotionError listing every failed gate; nothing is written then.
    """
    validate_name(name)
    _require_tools(git_tag)
    if to not in TARGET_STAGES:
        raise RegistryError(f"--to must be one of {', '.join(TARGET_STAGES)}, got {to!r}")
    if force is not None and not str(force).strip():
        raise PromotionError("--force needs a reason, written into the version's lineage (e.g. --force 'recall matters more')")
    root_path = Path(root).resolve() if root else (project.find_root() or Path.cwd())
    params = load_yaml(root_path / project.PARAMS_FILE, shown=project.PARAMS_FILE)
    config = params.get("promote") or {}
    if not isinstance(config, dict):
        raise PromotionError("params.yaml: the `promote:` section must be a mapping (thresholds:, tolerance:, registry:)")
    config = {**config, "trusted_types": modelio.parse_trusted_types(config.get("trusted_types"))}
    # The parity check (started first: it imports while the package is built), DVC's status and
    # the card's rendering run in subprocesses while this one builds the package.
    helpers = [gates_mod.start_parity()]
    try:
        candidate = gather(root_path, name, to, config, force)
        candidate.parity_process = helpers[0]
        candidate.status_process = dvc.start_status(root_path, candidate.involved)
        helpers.append(candidate.status_process)
        card_report = _card_report(candidate)
        html_process = start_notebook_html(card_report) if card_report and card_report.exists() else None
        helpers.append(html_process)
        return _promote(candidate, reg_root=registry or default_root(root_path, config), html_process=html_process,
                        dry_run=dry_run, git_tag=git_tag, bump=bump)
    finally:
        for process in helpers:
            _stop(process)


def _stop(process: Any) -> None:
    """Kill a helper the promotion no longer waits for (it ended early, or was refused)."""
    if process is None:
        return
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _require_tools(git_tag: bool) -> None:
    """Before any gate runs: the package's card is rendered with nbconvert (in a subprocess, so
    only looked up here); --git-tag writes tags with gto. The wheel needs nothing (wheelfile.py)."""
    from ..core.extras import require

    require("nbconvert", "promote", "rendering the model card", load=False)
    if git_tag:
        require("gto", "promote", "writing GTO's git tags (--git-tag)", load=False)


def _promote(
    candidate: gates_mod.Candidate, *, reg_root: str, html_process: Any, dry_run: bool, git_tag: bool, bump: str,
) -> PromotionResult:
    name = candidate.name
    results = gates_mod.run_gates(candidate, "pipeline")

    reg = Registry(reg_root)
    if dry_run:  # reads the registry, takes no lock, builds in a temporary folder: writes nothing there
        build_dir = Path(tempfile.mkdtemp(prefix="nbops-dry-run-"))
        try:
            return _finish(candidate, reg, results, bump, build_dir, html_process, dry_run=True, git_tag=False)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
    with reg.lock(name, purpose=f"promote {name} → {candidate.target}"):
        reg.cleanup(name)
        build_dir = reg.build_dir(name)
        try:
            return _finish(candidate, reg, results, bump, build_dir, html_process, dry_run=False, git_tag=git_tag)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)  # gone after publish's rename; removed on failure


def _finish(
    candidate: gates_mod.Candidate, reg: Registry, results: list[gates_mod.GateResult], bump: str,
    build_dir: Path, html_process: Any, *, dry_run: bool, git_tag: bool,
) -> PromotionResult:
    name = candidate.name
    champion_version = reg.stages(name).get(candidate.target)
    candidate.champion = reg.manifest(name, champion_version) if champion_version else None
    model_file = candidate.root / candidate.model_record["path"]
    twin = _staging_twin(candidate, reg, model_file)
    if twin is not None:
        return _assign_twin(candidate, reg, results, twin, dry_run=dry_run, git_tag=git_tag)
    version = reg.next_version(name, bump)
    manifest = package_manifest(candidate, version)
    if candidate.force_reason and candidate.champion is not None:
        manifest["lineage"]["forced"] = candidate.force_reason
    if model_file.exists() and candidate.model_manifest is not None:
        manifest = package.build_core(build_dir, manifest, model_file, profile_file(candidate), sha256=candidate.model_sha256)
        candidate.package_dir = build_dir
        gates_mod.send_package(candidate.parity_process, build_dir)
        package.build_rest(build_dir, manifest)
    results = results + gates_mod.run_gates(candidate, "package")
    if candidate.package_dir is not None:
        package.write_card(build_dir, manifest, finish_notebook_html(html_process))
    result = PromotionResult(
        name, candidate.target, version, dry_run, results, candidate.metrics,
        registry=reg.root, notes=list(candidate.notes),
    )
    _refuse_on_failures(result)
    if dry_run:
        return result
    result.path = reg.publish(name, version, build_dir)
    result.wheel = f"{result.path}/{manifest['wheel']}"
    reg.assign(name, version, candidate.target, action="promote", reason=candidate.force_reason)
    if git_tag:
        result.tags = tag_git(candidate.root, name, version, candidate.target)
    return result


def _refuse_on_failures(result: PromotionResult) -> None:
    if not result.ok:
        lines = "\n".join(f"  - {failure}" for failure in result.failures)
        raise PromotionError(f"promotion of '{result.name}' to {result.stage} refused:\n{lines}", result.failures, result)


def _staging_twin(candidate: gates_mod.Candidate, reg: Registry, model_file: Path) -> tuple[str, dict[str, Any]] | None:
    """For a production promotion: the staging version holding these very model bytes, if its
    lineage is one production accepts (a commit, no uncommitted changes)."""
    if candidate.target != "production" or not model_file.exists():
        return None
    staged = reg.stages(candidate.name).get("staging")
    if staged is None:
        return None
    manifest = reg.manifest(candidate.name, staged)
    if candidate.model_sha256 is None:
        candidate.model_sha256 = sha256_file(model_file)
    if manifest.get("sha256") != candidate.model_sha256:
        return None
    git = (manifest.get("lineage") or {}).get("git") or {}
    if git.get("dirty", True) or not git.get("commit"):
        candidate.notes.append(
            f"staging's {staged} holds the same model but was promoted from uncommitted changes: production "
            "gets a version of its own, with a clean lineage"
        )
        return None
    return staged, manifest


def _assign_twin(
    candidate: gates_mod.Candidate, reg: Registry, results: list[gates_mod.GateResult],
    twin: tuple[str, dict[str, Any]], *, dry_run: bool, git_tag: bool,
) -> PromotionResult:
    """Run the package gates on the published staging version and assign it to the target."""
    name, (version, manifest) = candidate.name, twin
    candidate.package_dir = reg.local_path(name, version)
    gates_mod.send_package(candidate.parity_process, candidate.package_dir)
    results = results + gates_mod.run_gates(candidate, "package")
    candidate.notes.append(f"{name} {version} (staging) holds the same model (sha256 {manifest['sha256'][:12]}…): "
                           f"{'it would be' if dry_run else 'it was'} assigned to {candidate.target}, not published again")
    result = PromotionResult(
        name, candidate.target, version, dry_run, results, candidate.metrics,
        registry=reg.root, notes=list(candidate.notes), action="assign",
    )
    _refuse_on_failures(result)
    if dry_run:
        return result
    result.path = str(reg.local_path(name, version)) if reg.local else f"{reg.root}/{name}/{version}"
    result.wheel = f"{result.path}/{manifest['wheel']}"
    reg.assign(name, version, candidate.target, action="promote", reason=candidate.force_reason)
    if git_tag:  # the version's own tag exists when staging's promotion wrote tags too
        registered = _git_tags(candidate.root, f"{name}@v{version}")
        result.tags = tag_stage(candidate.root, name, version, candidate.target) if registered else tag_git(
            candidate.root, name, version, candidate.target)
    return result


def recorded_models(root: Path) -> list[str]:
    """Names of the models the pipeline's stage reports recorded (nbops.save_model)."""
    names: list[str] = []
    for stage in dvc.load_stages(root).values():
        path = root / stage.report if stage.report else None
        if path is not None and path.exists():
            try:
                names += [r["name"] for r in read_records(path) if r.get("kind") == "model"]
            except (OSError, json.JSONDecodeError):
                continue
    return list(dict.fromkeys(names))


def gather(root: Path, name: str, target: str, config: dict[str, Any], force: str | None) -> gates_mod.Candidate:
    """Find the model's report, its stage, the pipeline's metrics and reports."""
    stages = dvc.load_stages(root)
    lock = dvc.load_lock(root)
    reports: dict[str, dict[str, Any] | None] = {}
    for stage in stages.values():
        if stage.report:
            path = root / stage.report
            try:
                reports[stage.name] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
            except json.JSONDecodeError:
                reports[stage.name] = None
    found = [
        (stage_name, record)
        for stage_name, report in reports.items() if report
        for record in read_records(report)
        if record.get("kind") == "model" and record.get("name") == name
    ]
    if not found:
        hand_saved = (root / project.model_path(name)).exists()
        recorded = sorted({r["name"] for rep in reports.values() if rep for r in read_records(rep) if r.get("kind") == "model"})
        explored = sorted(root.glob(f"{project.SCRATCH_DIR}/*/{project.model_manifest_path(name)}"))
        hint = (
            f"{project.model_path(name)} exists but no pipeline stage's report recorded it: it was saved outside "
            "the pipeline (interactively?); save it from a stage notebook and run `dvc repro`"
            if hand_saved
            else f"'{name}' was only saved by exploring ({explored[0].parent.relative_to(root).as_posix()}/): a promotion "
            "takes the model a pipeline run recorded; save it from a stage notebook and run `dvc repro`"
            if explored
            else f"models recorded by the pipeline's reports: {', '.join(recorded) or 'none'}; run `dvc repro` first"
        )
        raise PromotionError(f"no stage report recorded a model '{name}': {hint}", [hint])
    stage_name, model_record = found[-1]
    manifest_path = root / project.model_manifest_path(name)
    try:
        model_manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        model_manifest = None

    metrics: dict[str, float] = {}
    metric_stages: dict[str, str] = {}
    for other, report in reports.items():
        for record in read_records(report or {}):
            if record.get("kind") == "metric":
                metrics[record["name"]] = record["value"]
                metric_stages[record["name"]] = other
    involved = dvc.upstream(stages, [stage_name, *sorted(set(metric_stages.values()))])
    paths = [project.PARAMS_FILE, project.DVC_FILE, "dvc.lock"]
    outs = {out for s in stages.values() for out in s.outs}
    paths += sorted({dep for s in involved for dep in stages[s].deps if dep not in outs and not _inside_out(dep, outs)})
    git = dvc.git_state(root, paths) if dvc.is_git_repo(root) else None
    candidate = gates_mod.Candidate(
        root=root, name=name, target=target, stages=stages, lock=lock,
        model_stage=stages[stage_name], model_record=model_record, model_manifest=model_manifest,
        reports=reports, metrics=metrics, metric_stages=metric_stages, involved=involved,
        config=config, git=git, force_reason=force,
    )
    if model_manifest is None:
        candidate.notes.append(f"{project.model_manifest_path(name)} is missing or unreadable")
    elif not model_manifest.get("profile"):
        candidate.notes.append(
            f"no reference profile: the package cannot tell `nbops monitor` what '{name}' was trained on, so "
            "monitoring will lack per-column drift, prediction drift and data-quality checks (only live performance "
            f"from labels); record one with nbops.save_model(model, '{name}', sample_input=…, reference=X_train)"
        )
    return candidate


def profile_file(candidate: gates_mod.Candidate) -> Path | None:
    """The reference profile save_model recorded beside the model, if it recorded one."""
    entry = (candidate.model_manifest or {}).get("profile")
    return candidate.root / project.model_profile_path(candidate.name) if entry else None


def _inside_out(path: str, outs: set[str]) -> bool:
    return any(path.startswith(out.rstrip("/") + "/") for out in outs)


def _card_report(candidate: gates_mod.Candidate) -> Path | None:
    """The report the model card shows: the last stage that recorded metrics, else the model's."""
    metric_stages = [s for s in candidate.involved if s in set(candidate.metric_stages.values())]
    stage = candidate.stages[metric_stages[-1]] if metric_stages else candidate.model_stage
    return candidate.root / stage.report if stage.report else None


def package_manifest(candidate: gates_mod.Candidate, version: str) -> dict[str, Any]:
    recorded = candidate.model_manifest or {}
    lock_stages = {}
    for stage in candidate.involved:
        entry = candidate.lock.get(stage) or {}
        lock_stages[stage] = {
            "cmd": entry.get("cmd"),
            "deps": [{"path": d.get("path"), "md5": d.get("md5")} for d in entry.get("deps") or []],
            "outs": [{"path": o.get("path"), "md5": o.get("md5")} for o in entry.get("outs") or []],
            "params": (entry.get("params") or {}).get(project.PARAMS_FILE, {}),
        }
    notebooks = []
    for stage in candidate.involved:
        spec = candidate.stages[stage]
        if spec.report and (candidate.root / spec.report).exists():
            notebooks.append({
                "stage": stage, "notebook": spec.notebook, "report": spec.report,
                "report_sha256": sha256_file(candidate.root / spec.report),
            })
    params = {}
    for stage in lock_stages.values():
        params.update(stage["params"])
    git = candidate.git
    return {
        "name": candidate.name,
        "version": version,
        "created": now(),
        "stage": candidate.target,
        "description": recorded.get("description", ""),
        "estimator": recorded.get("estimator"),
        "task": recorded.get("task"),
        "classes": recorded.get("classes"),
        # exactly params.yaml's promote.trusted_types: the package trusts these beyond the built-in policy
        "trusted_types": candidate.config.get("trusted_types") or [],
        "signature": recorded.get("signature"),
        "output": _output_description(recorded),
        "sample_input": recorded.get("sample_input"),
        "sample_predictions": recorded.get("sample_predictions"),
        "sample_probabilities": recorded.get("sample_probabilities"),
        **_decision_entries(recorded),
        "metrics": candidate.metrics,
        "metric_stages": candidate.metric_stages,
        "params": params,
        "lineage": {
            "git": {"commit": git.commit if git else None, "dirty": git.dirty if git else True,
                    "dirty_paths": git.dirty_paths if git else []},
            "model_stage": candidate.model_stage.name,
            "recorded_sha256": candidate.model_record.get("sha256"),
            "stages": lock_stages,
            "notebooks": notebooks,
            "forced": None,
            "promoted_by": _user(),
        },
        "versions": recorded.get("versions", {}),
    }


def _decision_entries(recorded: dict[str, Any]) -> dict[str, Any]:
    """The decision threshold save_model recorded (issue 11), carried into the package."""
    if not isinstance(recorded.get("decision"), dict):
        return {}
    return {"decision": recorded["decision"], "sample_decisions": recorded.get("sample_decisions")}


def _output_description(recorded: dict[str, Any]) -> dict[str, Any]:
    if recorded.get("task") == "classification":
        described = {
            "predictions": "the predicted class of each row",
            "probabilities": "per row, the probability of each class, in the order of `classes`",
            "classes": recorded.get("classes"),
        }
        decision = recorded.get("decision")
        if isinstance(decision, dict):
            described["decisions"] = (
                f"per row, {decision.get('positive_class')!r} when its probability is at least the threshold "
                f"{decision.get('threshold')}, else the other class"
            )
            described["threshold"] = decision.get("threshold")
        return described
    return {"predictions": "the model's prediction for each row"}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def tag_git(root: Path, name: str, version: str, stage: str) -> list[str]:
    """Write GTO's tags (DVC's model-registry convention) for a version and its stage."""
    from gto import api as gto_api

    gto_api.register(str(root), name, ref="HEAD", version=f"v{version}", push=False)
    return [f"{name}@v{version}", *tag_stage(root, name, version, stage)]


def tag_stage(root: str | Path, name: str, version: str, stage: str) -> list[str]:
    """GTO's stage-assignment tag for `version` (GTO names it; we report what it wrote)."""
    from gto import api as gto_api

    before = _git_tags(root, f"{name}#*")
    gto_api.assign(str(root), name, stage, version=f"v{version}", push=False, skip_registration=True)
    return sorted(_git_tags(root, f"{name}#*") - before)


def _git_tags(root: str | Path, pattern: str) -> set[str]:
    import subprocess

    return set(subprocess.run(["git", "tag", "--list", pattern], cwd=root, capture_output=True, text=True).stdout.split())
