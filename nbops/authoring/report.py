"""`nbops report`: a Markdown summary of what a change did, for a pull request or a CI job summary.

Compares the workspace with a git revision (default: the last commit, HEAD) using DVC's own
diffs (`dvc params diff`, `dvc metrics diff`): the parameters that changed, every metric with
its delta, whether the pipeline is up to date (`dvc status`), the promotion gates, and where the
plots are. Markdown reads fine in a terminal too.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core import project
from ..core.exceptions import ProjectError
from ..core.dvc import git

WORKSPACE = "workspace"


@dataclass
class Change:
    file: str
    name: str
    old: Any
    new: Any
    delta: float | None = None


@dataclass
class Report:
    root: Path
    rev: str
    commit: str | None  # the revision resolved; None when there is nothing to compare with
    subject: str
    params: list[Change]
    metrics: list[Change]
    stale: dict[str, list[str]]
    gates: list[dict[str, Any]]
    plots: list[dict[str, str]]
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # what nbops.log_checks recorded, per stage

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["root"] = str(self.root)
        return data

    def markdown(self) -> str:
        base = f"`{self.rev}`" + (f" (`{self.commit[:7]}` {self.subject})" if self.commit and self.subject else "")
        old = self.rev if self.commit else "before"
        lines = ["## nbops report", ""]
        if self.commit:
            lines.append(f"The workspace compared with {base}.")
        lines += [f"_{note}_" for note in self.notes]
        lines.append("")
        if self.stale:
            described = "; ".join(f"`{stage}` ({', '.join(changes)})" for stage, changes in self.stale.items())
            lines.append(f"**Pipeline: not reproduced** — {described}. Run `dvc repro`.")
        else:
            lines.append("**Pipeline: up to date** (`dvc status` is clean).")
        lines += _checks_markdown(self.checks)
        lines += ["", "### Parameters changed", ""]
        if self.params:
            lines += [f"| parameter | {old} | workspace |", "|---|---:|---:|"]
            lines += [f"| `{c.name}` | {_value(c.old, exact=True)} | {_value(c.new, exact=True)} |" for c in self.params]
        else:
            lines.append("No parameter changed.")
        lines += ["", "### Metrics", ""]
        if self.metrics:
            lines += [f"| file | metric | {old} | workspace | change |", "|---|---|---:|---:|---:|"]
            lines += [
                f"| `{c.file}` | `{c.name}` | {_value(c.old)} | {_value(c.new)} | {_delta(c.delta)} |"
                for c in self.metrics
            ]
        else:
            lines.append("No metrics recorded (log some with `nbops.log_metric` and declare them in dvc.yaml).")
        lines += ["", "### Promotion gates", ""]
        if not self.gates:
            lines.append("No model to promote.")
        else:
            lines += ["| gate | result | detail |", "|---|---|---|"]
            lines += [
                f"| {g.get('gate', '')} | {'pass' if g.get('passed') else '**fail**'} | {g.get('detail', '')} |"
                for g in self.gates
            ]
        lines += ["", "### Plots", ""]
        if self.plots:
            for plot in self.plots:
                axes = f": {plot['x']} → {plot['y']}" if plot.get("x") and plot.get("y") else ""
                missing = "" if plot.get("exists") == "yes" else " — not produced yet"
                lines.append(f"- `{plot['path']}` ({plot.get('template') or 'linear'}{axes}){missing}")
            target = f" {self.rev}" if self.commit else ""
            lines += ["", f"See them side by side with `dvc plots diff{target} --open`."]
        else:
            lines.append("No plots declared.")
        return "\n".join(lines) + "\n"


def _checks_markdown(checks: list[dict[str, Any]]) -> list[str]:
    """The data checks of each stage that ran some: passed, or a row per failed check with a
    few offending rows."""
    if not checks:
        return []
    lines = ["", "### Data checks", ""]
    for entry in checks:
        of = f" of `{entry['source']}`" if entry.get("source") else ""
        if entry.get("passed"):
            lines.append(f"- `{entry['stage']}`: all checks passed on {entry.get('rows')} rows{of}.")
            continue
        failed = entry.get("failed") or []
        lines += [
            f"**`{entry['stage']}`: {len(failed)} check{'s' if len(failed) != 1 else ''} failed** on "
            f"{entry.get('rows')} rows{of}" + (" — the stage stopped and nothing downstream ran." if entry.get("stopped") else "."), "",
            "| check | column | failing rows | e.g. (row: value) |", "|---|---|---:|---|",
        ]
        for f in failed:
            shown = ", ".join(f"{e.get('row')}: `{e.get('value')!r}`" for e in (f.get("examples") or [])[:3])
            lines.append(f"| `{f.get('check')}` | `{f.get('column')}` | {f.get('failing_rows')} | {shown} |")
        lines.append("")
    return lines


def _recorded_checks(root: Path) -> list[dict[str, Any]]:
    """The `checks` records in the stages' reports (a failed stage's partial report included)."""
    from ..core.dvc import load_stages
    from ..pipeline.record import read_records

    found = []
    for stage in load_stages(root).values():
        path = root / stage.report if stage.report else None
        if path is None or not path.exists():
            continue
        try:
            records = read_records(path)
        except (OSError, ValueError):
            continue
        found += [{**r, "stage": stage.name} for r in records if r.get("kind") == "checks"]
    return found


def _value(value: Any, exact: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not exact:
        return f"{value:.6g}"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _delta(delta: float | None) -> str:
    if delta is None or (isinstance(delta, float) and math.isnan(delta)):
        return "—"
    if delta == 0:
        return "0"
    return f"{delta:+.4g}"


def _gate_status(root: Path) -> list[dict[str, Any]]:
    """The promotion gates of every model the pipeline's reports recorded, as a dry-run
    promotion to staging checks them: one dict per gate, {"gate", "passed", "detail"}."""
    from ..core.exceptions import NbopsError
    from ..promotion.promote import promote, recorded_models

    found: list[dict[str, Any]] = []
    for name in recorded_models(root):
        try:
            result = promote(name, dry_run=True, root=root)
        except NbopsError as exc:
            result = getattr(exc, "result", None)  # a PromotionError's gates, if they ran
            if result is None:
                found.append({"gate": name, "passed": False, "detail": str(exc).splitlines()[0]})
                continue
        for gate in result.gates:
            found.append({"gate": f"{name}: {gate.name}", "passed": gate.passed, "detail": "; ".join(gate.failures)})
    return found


def _plots(root: Path, dvc: dict[str, Any]) -> list[dict[str, str]]:
    from ..pipeline.stages import entry_path

    found: list[dict[str, str]] = []
    entries: list[Any] = []
    for spec in (dvc.get("stages") or {}).values():
        if isinstance(spec, dict):
            entries += list(spec.get("plots") or [])
    top = dvc.get("plots") or []
    entries += list(top) if isinstance(top, list) else []
    for entry in entries:
        path = entry_path(entry)
        if not path:
            continue
        props = entry[path] if isinstance(entry, dict) and isinstance(entry.get(path), dict) else {}
        found.append({
            "path": path, "template": str(props.get("template", "")), "x": str(props.get("x", "")),
            "y": str(props.get("y", "")), "exists": "yes" if (root / path).exists() else "no",
        })
    return found


def _changes(diff: dict[str, Any], with_delta: bool) -> list[Change]:
    changes = []
    for file, entries in (diff.get("diff") or {}).items():
        for name, values in (entries or {}).items():
            delta = values.get("diff") if with_delta else None
            changes.append(Change(str(file), str(name), values.get("old"), values.get("new"),
                                  delta if isinstance(delta, (int, float)) and not isinstance(delta, bool) else None))
    return changes


def _flatten(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`dvc metrics/params show` data of the workspace as {file: {dotted.name: value}}."""
    result: dict[str, dict[str, Any]] = {}
    data = (shown.get(WORKSPACE) or {}).get("data") or {}
    for file, content in data.items():
        values: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), value)
            else:
                values[prefix] = node

        walk("", (content or {}).get("data") or {})
        result[str(file)] = values
    return result


def build_report(root: str | os.PathLike[str] | None = None, rev: str = "HEAD") -> Report:
    """Compare the workspace of the project at `root` with the git revision `rev`."""
    root_path = Path(root).resolve() if root else project.find_root()
    if root_path is None or not (root_path / ".dvc").exists():
        raise ProjectError("no DVC project here (no .dvc folder above the working directory); run `nbops init` or `dvc init`")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from ..core.params import load_yaml

    # Read as nbops reads them first: a syntax error is then `params.yaml:8:2: ...`, not DVC's traceback.
    dvc = load_yaml(root_path / project.DVC_FILE, shown=project.DVC_FILE)
    load_yaml(root_path / project.PARAMS_FILE, shown=project.PARAMS_FILE)
    commit, nothing = _resolve(root_path, rev)
    notes: list[str] = [nothing] if nothing else []
    subject = git(root_path, "log", "-1", "--format=%s", commit).stdout.strip() if commit else ""
    try:
        with Repo(str(root_path)) as repo:
            if commit:
                params_diff = repo.params.diff(a_rev=commit)
                metrics_diff = repo.metrics.diff(a_rev=commit, all=True)
                params = _changes(params_diff, with_delta=False)
                metrics = _changes(metrics_diff, with_delta=True)
                unreadable = sorted({
                    str(file) for diff in (params_diff, metrics_diff)
                    for errors in (diff.get("errors") or {}).values()
                    for file in (errors if isinstance(errors, dict) else {"metrics": errors})
                })
                if unreadable:
                    notes.append(
                        f"DVC could not read {', '.join(unreadable)} in every revision (not in the cache? "
                        "`dvc pull` fetches it from the remote): those values show as —."
                    )
            else:
                params = []
                metrics = [
                    Change(file, name, None, value)
                    for file, values in _flatten(repo.metrics.show()).items() for name, value in values.items()
                ]
            stale = _stale(repo)
    except DvcException as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProjectError(f"DVC cannot read the project: {detail} (`dvc status` shows the same; fix that first)") from None
    metrics.sort(key=lambda c: (c.file, c.name))
    params.sort(key=lambda c: (c.file, c.name))
    return Report(root_path, rev, commit, subject, params, metrics, stale, _gate_status(root_path), _plots(root_path, dvc),
                  notes, _recorded_checks(root_path))


def _resolve(root: Path, rev: str) -> tuple[str | None, str | None]:
    """(commit, None) for a revision git knows; (None, why there is nothing to compare with)
    for an ancestor a young history lacks (`HEAD~1` on a first commit) or a repository without
    commits; ProjectError for a revision git does not know at all (a typo)."""
    found = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip(), None
    if git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode != 0:
        return None, f"Nothing to compare with: the repository has no commit yet, so `{rev}` does not exist. Current values only."
    base = re.match(r"^(.+?)[~^]", rev)
    if base:
        known = git(root, "rev-parse", "--verify", "--quiet", f"{base.group(1)}^{{commit}}")
        if known.returncode == 0:
            first = " (it is the first commit)" if git(root, "rev-parse", "--verify", "--quiet", f"{base.group(1)}^").returncode else ""
            return None, (
                f"Nothing to compare with: `{rev}` does not exist, because `{base.group(1)}` ({known.stdout.strip()[:7]}) "
                f"has no such ancestor{first}. Current values only."
            )
    shallow = git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    hint = ("this clone is shallow: fetch the history (`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout)"
            if shallow else "give a branch, tag or commit git knows (`git log --oneline` lists commits)")
    raise ProjectError(f"--rev {rev}: no such revision in this repository; {hint}")


def _stale(repo: Any) -> dict[str, list[str]]:
    from ..core.dvc import describe_status

    return describe_status(repo.status() or {})
