"""`nbops check`: the mistakes that make a notebook pipeline silently wrong, found without
starting a kernel.

Each finding names the file (and line), the stage or parameter, and the fix:

    bad-stage               a stage that is not a mapping with a `cmd` (a string)    error
    no-parameters-cell      a stage notebook has no cell tagged `parameters`        error
    several-parameters-cells  two cells are tagged `parameters` (the second would
                            override the injected values)                           error
    param-empty             a params.yaml value left empty (`n:`) for a typed default error
    bad-setting             a bad value in params.yaml's `nbops:` section (timeouts)  error
    reserved-stage-name     a stage named `nbops` (the settings section's name)      error
    unknown-param           params.yaml sets a name the notebook does not define     error
    param-not-tracked       the notebook defines a parameter the stage's `params:`
                            does not list (DVC would not re-run the stage)           error
    listed-param-undefined  the stage lists a parameter the notebook does not define error
    param-missing           the stage lists a parameter params.yaml has no value for error
    param-type              a params.yaml value whose type the notebook refuses      error
    default-differs         a `parameters` cell default differs from params.yaml     warning
    outputs-committed       a notebook is committed (staged) with outputs            error
    runs-notebook-directly  a stage runs a notebook with papermill/jupyter itself    error
    notebook-not-dep        the notebook a stage runs is not among its deps          error
    notebook-missing        the notebook a stage runs does not exist                 error
    stale-on-save           a stage depends on an .ipynb, which saving rewrites      warning
    pair-out-of-sync        a paired .ipynb and .py hold different code              warning
    undeclared-record       the notebook records a metric/plot/model the stage does
                            not declare (DVC would not track it)                      warning
    absolute-path-in-report a cell of the stage's report shows the project's absolute
                            path (the report differs in every checkout)              warning
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..core import params as params_mod
from ..core import project
from ..pipeline import supervise
from ..core.exceptions import NbopsError, ProjectError

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    path: str
    line: int | None  # 1-based
    stage: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.severity}: {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    root: Path
    stages: list[str]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def summary(self) -> str:
        stages = f"{len(self.stages)} stage{'s' if len(self.stages) != 1 else ''}"
        if not self.findings:
            return f"nbops check: {stages}, no problems found"
        return (
            f"nbops check: {len(self.errors)} error{'s' if len(self.errors) != 1 else ''}, "
            f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''} ({stages})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "stages": self.stages, "errors": len(self.errors),
            "warnings": len(self.warnings), "findings": [f.to_dict() for f in self.findings],
        }


class _Lines:
    """Line numbers of keys in a YAML file, read with ruamel (1-based; None when unknown)."""

    def __init__(self, text: str) -> None:
        self.data: Any = None
        if text.strip():
            from ruamel.yaml import YAML

            try:
                self.data = YAML().load(text)
            except Exception:  # noqa: BLE001 - the plain loader reports syntax errors
                self.data = None

    def of(self, *keys: Any) -> int | None:
        node, line = self.data, None
        for key in keys:
            if node is None or not hasattr(node, "lc"):
                return line
            try:
                if isinstance(key, int):
                    line = node.lc.item(key)[0] + 1
                else:
                    line = node.lc.key(key)[0] + 1
                node = node[key]
            except (KeyError, IndexError, TypeError, AttributeError):
                return line
        return line


def check_project(root: str | os.PathLike[str] | None = None) -> CheckResult:
    """Lint the project at `root` (default: the one around the working directory)."""
    if root is not None and not Path(root).is_dir():
        what = "is a file, not a folder" if Path(root).exists() else "no such folder"
        raise ProjectError(f"{root}: {what}; give the project folder (the one holding dvc.yaml), or no argument for the current one")
    root_path = Path(root).resolve() if root else project.find_root()
    if root_path is None:
        raise ProjectError("no project here (no dvc.yaml, params.yaml or .dvc above the working directory); run `nbops init`")
    findings: list[Finding] = []
    dvc_file = root_path / project.DVC_FILE
    if not dvc_file.exists():
        findings.append(Finding("no-pipeline", ERROR, project.DVC_FILE, None, None,
                                "no dvc.yaml: add a stage per notebook with `nbops stage add notebooks/NAME.ipynb`"))
        return CheckResult(root_path, [], findings + _outputs_committed(root_path, set()))
    dvc_text = params_mod.read_text(dvc_file, project.DVC_FILE)
    dvc = params_mod.parse_yaml(dvc_text, project.DVC_FILE)
    dvc_lines = _Lines(dvc_text)
    params_file = root_path / project.PARAMS_FILE
    params_text = params_mod.read_text(params_file, project.PARAMS_FILE) if params_file.exists() else ""
    params = params_mod.parse_yaml(params_text, project.PARAMS_FILE) if params_text else {}
    empty = params_mod.empty_values(params_text) if params_text else set()
    params_lines = _Lines(params_text)
    findings += _check_settings(params, params_lines)

    stages = dvc.get("stages") or {}
    if not isinstance(stages, dict):
        findings.append(Finding("bad-stage", ERROR, project.DVC_FILE, dvc_lines.of("stages"), None,
                                f"'stages' must map stage names to stages (`train:` then `cmd: ...` under it), "
                                f"not a {type(stages).__name__}; `nbops stage add notebooks/NAME.ipynb` writes one"))
        stages = {}
    outs: set[str] = set()
    names: list[str] = []
    for name, spec in stages.items():
        names.append(str(name))
        if not isinstance(spec, dict) or "cmd" not in spec and not ("foreach" in spec or "matrix" in spec):
            written = f"a {type(spec).__name__}" if not isinstance(spec, dict) else "a mapping without `cmd`"
            findings.append(Finding(
                "bad-stage", ERROR, project.DVC_FILE, dvc_lines.of("stages", name), str(name),
                f"stage '{name}' is {written}, which DVC refuses: a stage is a mapping with `cmd:` (and deps, params, "
                f"outs); write it so, or let `nbops stage add NOTEBOOK --name {name}` write it",
            ))
            continue
        if str(name) == supervise.SETTINGS_SECTION:
            findings.append(Finding(
                "reserved-stage-name", ERROR, project.DVC_FILE, dvc_lines.of("stages", name), str(name),
                f"stage '{name}' has the name of params.yaml's `{name}:` section, which holds nbops' own settings; rename the stage",
            ))
        for key in ("outs", "metrics", "plots"):
            outs.update(p for p in map(_entry_path, spec.get(key) or []) if p)
        if "foreach" in spec or "matrix" in spec:
            continue  # templated stages: DVC resolves them; nothing of ours to check
        findings += _check_stage(root_path, str(name), spec, params, empty, dvc_lines, params_lines)
    findings += _outputs_committed(root_path, outs)
    return CheckResult(root_path, names, findings)


def _check_settings(params: dict[str, Any], params_lines: _Lines) -> list[Finding]:
    return [
        Finding("bad-setting", ERROR, project.PARAMS_FILE, params_lines.of(*path), None,
                message.removeprefix(f"{project.PARAMS_FILE}: "))
        for path, message in supervise.settings_problems(params, project.PARAMS_FILE)
    ]


def _entry_path(entry: Any) -> str | None:
    from ..pipeline.stages import entry_path

    return entry_path(entry)


def _check_stage(
    root: Path, name: str, spec: dict[str, Any], params: dict[str, Any], empty: set[tuple[str, str]],
    dvc_lines: _Lines, params_lines: _Lines,
) -> list[Finding]:
    from ..pipeline.stages import direct_runner, paired_forms, parse_run_cmd, scan_recording

    found: list[Finding] = []
    stage_line = dvc_lines.of("stages", name)
    cmd_line = dvc_lines.of("stages", name, "cmd") or stage_line

    def add(code: str, severity: str, message: str, path: str = project.DVC_FILE, line: int | None = None) -> None:
        found.append(Finding(code, severity, path, line if line is not None else stage_line, name, message))

    parsed = parse_run_cmd(spec.get("cmd"))
    if parsed is None:
        direct = direct_runner(spec.get("cmd"))
        if direct:
            runner, notebook = direct
            target = notebook or "the notebook"
            add("runs-notebook-directly", ERROR,
                f"stage '{name}' runs {target} with {runner} directly, so its params.yaml section is neither "
                f"injected nor checked against the parameters cell and its report is not reproducible; "
                f"run it with `nbops run` (`nbops stage add {target} --name {name}` rewrites the stage)",
                line=cmd_line)
        return found
    notebook, section = parsed
    deps = [p for p in (_entry_path(e) for e in spec.get("deps") or []) if p]
    nb_path = root / notebook
    if not nb_path.exists():
        add("notebook-missing", ERROR, f"stage '{name}' runs {notebook}, which does not exist; fix the path in cmd", line=cmd_line)
        return found
    forms = paired_forms(nb_path.resolve())
    form_paths = {project.relpath(p, root) for p in forms.values()} | {notebook}
    if notebook not in deps:
        other = [d for d in deps if d in form_paths]
        how = (f"it depends on {other[0]} instead" if other else "it is not among its deps")
        add("notebook-not-dep", ERROR,
            f"stage '{name}' runs {notebook} but {how}: DVC will not re-run it when the notebook's code changes; "
            f"add {notebook} to deps (`nbops stage add {notebook}{_name_flag(name, notebook)}`)",
            line=dvc_lines.of("stages", name, "deps") or stage_line)
    for dep in deps:
        if dep in form_paths and dep.endswith(".ipynb"):
            hint = (f"depend on its paired script {project.relpath(forms['.py'], root)} instead" if ".py" in forms else
                    "pair it with a percent script (a jupytext.toml with `formats = \"ipynb,py:percent\"`) and depend on the .py")
            add("stale-on-save", WARNING,
                f"stage '{name}' depends on {dep}, which JupyterLab rewrites with new outputs on every save, making the stage "
                f"stale though no code changed; {hint} (`nbops stage add {dep}{_name_flag(name, notebook)}` does it)",
                line=dvc_lines.of("stages", name, "deps") or stage_line)

    try:
        nb = params_mod.load_notebook(nb_path)
    except NbopsError as exc:
        add("notebook-unreadable", ERROR, str(exc), path=notebook, line=None)
        return found
    if ".ipynb" in forms and notebook != project.relpath(forms[".ipynb"], root) and forms[".ipynb"].exists():
        found += _pair_in_sync(root, name, notebook, forms[".ipynb"], nb)

    try:
        cell = params_mod.find_parameters_cell(nb, notebook)
    except NbopsError as exc:
        several = len(params_mod.parameters_cells(nb)) > 1
        add("several-parameters-cells" if several else "no-parameters-cell", ERROR, str(exc), path=notebook, line=None)
        return found
    section_values = params.get(section) if isinstance(params.get(section), dict) else {}
    entries = _listed_params(spec.get("params"))
    if cell is None:
        hint = params_mod.TEXT_TAGGING_HINT if nb_path.suffix != ".ipynb" else params_mod.TAGGING_HINT
        add("no-parameters-cell", ERROR,
            f"{notebook} (stage '{name}') has no cell tagged `parameters`, so params.yaml cannot be injected; {hint}",
            path=notebook, line=None)
    else:
        found += _check_params(root, name, notebook, section, cell.parameters, section_values, entries,
                               dvc_lines, params_lines, add, {key for sect, key in empty if sect == section})
    found += _check_recorded(name, notebook, section, spec, scan_recording(nb), dvc_lines, stage_line)
    found += _absolute_paths_in_report(root, name, section)
    return found


def _absolute_paths_in_report(root: Path, name: str, section: str) -> list[Finding]:
    """Cells of the stage's last report that show the project's absolute path (see portability)."""
    import json

    from ..pipeline.portability import absolute_paths_in_outputs

    report = project.report_path(section)
    try:
        text = (root / report).read_text(encoding="utf-8")
        nb = json.loads(text)
    except (OSError, ValueError):
        return []  # no report yet (or not one we can read): nothing ran to check
    found, lines, line = [], text.splitlines(), 0
    for hit in absolute_paths_in_outputs(nb, root):
        while line < len(lines) and hit.path not in lines[line]:
            line += 1
        found.append(Finding("absolute-path-in-report", WARNING, report, line + 1 if line < len(lines) else None,
                             name, f"{hit.message()}, then `dvc repro` (stage '{name}')"))
    return found


def _name_flag(name: str, notebook: str) -> str:
    return "" if name == Path(notebook).stem else f" --name {name}"


def _listed_params(entries: Any) -> list[str]:
    """Keys of params.yaml a stage's `params:` lists (`- train.seed`, `- params.yaml: [...]`)."""
    listed: list[str] = []
    for entry in entries or []:
        if isinstance(entry, str):
            listed.append(entry)
        elif isinstance(entry, dict):
            for file, keys in entry.items():
                if str(file) == project.PARAMS_FILE:
                    listed.extend(str(k) for k in (keys or []))
    return listed


def _same_value(a: Any, b: Any) -> bool:
    def norm(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {str(k): norm(v) for k, v in value.items()}
        return value

    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return norm(a) == norm(b)


def _check_params(
    root: Path, name: str, notebook: str, section: str, defined: dict[str, params_mod.Parameter],
    values: dict[str, Any], listed: list[str], dvc_lines: _Lines, params_lines: _Lines, add: Any, empty: set[str],
) -> list[Finding]:
    import difflib

    found: list[Finding] = []
    accepted = ", ".join(defined) or "none"
    for key in values:
        if key not in defined:
            close = difflib.get_close_matches(str(key), list(defined), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(Finding(
                "unknown-param", ERROR, project.PARAMS_FILE, params_lines.of(section, key), name,
                f"{section}.{key}{hint} is not defined by the parameters cell of {notebook} (it defines: {accepted}); "
                f"`nbops run` refuses it: rename it or remove it",
            ))
    whole_section = section in listed
    params_line = dvc_lines.of("stages", name, "params") or dvc_lines.of("stages", name)
    for pname, parameter in defined.items():
        key = f"{section}.{pname}"
        if not whole_section and key not in listed:
            found.append(Finding(
                "param-not-tracked", ERROR, project.DVC_FILE, params_line, name,
                f"stage '{name}' does not list {key} in its params, so DVC will not re-run it when that value "
                f"changes; add it (`nbops stage add {notebook}{_name_flag(name, notebook)}` writes the list)",
            ))
        if pname not in values:
            continue
        value = values[pname]
        line = params_lines.of(section, pname)
        if pname in empty and value is None and params_mod.empty_refused(parameter):
            found.append(Finding(
                "param-empty", ERROR, project.PARAMS_FILE, line, name,
                f"{key} has no value but {notebook} expects {params_mod.type_name(parameter.default)} "
                f"(its default is {parameter.source}); write the value, or `null` if you mean None",
            ))
        elif not params_mod.fits(parameter.default, value):
            found.append(Finding(
                "param-type", ERROR, project.PARAMS_FILE, line, name,
                f"{key} is {value!r} ({params_mod.type_name(value)}) but {notebook} expects "
                f"{params_mod.type_name(parameter.default)} (its default is {parameter.source}); fix the value",
            ))
        elif parameter.default is not params_mod.UNKNOWN and not _same_value(parameter.default, value):
            found.append(Finding(
                "default-differs", WARNING, project.PARAMS_FILE, line, name,
                f"{key} is {value!r} but the parameters cell of {notebook} sets {pname} = {parameter.source}: "
                f"an interactive run does not compute what the pipeline computes; make them equal",
            ))
    for key in listed:
        if not key.startswith(f"{section}."):
            continue
        pname = key[len(section) + 1 :]
        if pname not in defined:
            found.append(Finding(
                "listed-param-undefined", ERROR, project.DVC_FILE, params_line, name,
                f"stage '{name}' lists {key}, which the parameters cell of {notebook} does not define "
                f"(it defines: {accepted}); remove it or define it in the cell",
            ))
        elif pname not in values:
            found.append(Finding(
                "param-missing", ERROR, project.PARAMS_FILE, params_lines.of(section), name,
                f"stage '{name}' lists {key} but params.yaml has no value for it, so `dvc repro` fails; "
                f"add it (`nbops stage add {notebook}{_name_flag(name, notebook)}` adds the cell's defaults)",
            ))
    return found


def _check_recorded(
    name: str, notebook: str, section: str, spec: dict[str, Any], recorded: Any, dvc_lines: _Lines, stage_line: int | None
) -> list[Finding]:
    declared = {p for key in ("outs", "metrics", "plots") for p in map(_entry_path, spec.get(key) or []) if p}
    wanted: list[tuple[str, str]] = []
    if recorded.metrics:
        wanted.append(("metrics", project.metrics_path(section)))
    wanted += [("plots", project.plot_path(section, plot)) for plot in recorded.plots]
    from ..pipeline.stages import model_outs

    for model in recorded.saved_models:
        wanted += [("outs", path) for path in model_outs(model, model in recorded.profiled_models)]
    found = []
    for key, path in wanted:
        covered = path in declared or any(path.startswith(d.rstrip("/") + "/") for d in declared)
        if not covered:
            found.append(Finding(
                "undeclared-record", WARNING, project.DVC_FILE, stage_line, name,
                f"{notebook} records {path} but stage '{name}' does not declare it in {key}, so DVC neither "
                f"tracks nor shows it; `nbops stage add {notebook}{_name_flag(name, notebook)}` declares it",
            ))
    return found


def _pair_in_sync(root: Path, name: str, notebook: str, ipynb: Path, nb: dict[str, Any]) -> list[Finding]:
    try:
        paired = params_mod.read_notebook_json(ipynb)
    except NbopsError:
        return []

    def code(notebook_json: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
        return [
            (params_mod.cell_source(c).strip(), tuple((c.get("metadata") or {}).get("tags") or ()))
            for c in notebook_json.get("cells", []) if c.get("cell_type") == "code"
        ]

    if code(paired) == code(nb):
        return []
    shown = project.relpath(ipynb, root)
    return [Finding(
        "pair-out-of-sync", WARNING, shown, None, name,
        f"{shown} and {notebook} hold different code; stage '{name}' runs {notebook}: bring them together "
        f"with `jupytext --sync {shown}` (JupyterLab with jupytext keeps them in sync on save)",
    )]


def _outputs_committed(root: Path, outs: Iterable[str]) -> list[Finding]:
    """Notebooks whose staged (else committed) version in git holds outputs; stage outputs such
    as reports are DVC's and skipped."""
    import json

    from ..core.dvc import git

    listed = git(root, "ls-files", "-z", "--cached", "--", "*.ipynb", text=False)
    if listed.returncode != 0:
        return []  # not a git repository: nothing is committed
    prefix = git(root, "rev-parse", "--show-prefix").stdout.strip()
    outs = {o.rstrip("/") for o in outs}
    paths = []
    for raw in listed.stdout.decode("utf-8", "replace").split("\0"):
        if not raw:
            continue
        if any(raw == o or raw.startswith(o + "/") for o in outs):
            continue
        paths.append(raw)
    if not paths:
        return []
    request = "".join(f":{prefix}{p}\n" for p in paths).encode()
    batch = git(root, "cat-file", "--batch", input=request, text=False)
    if batch.returncode != 0:
        return []
    found = []
    data = batch.stdout
    for path in paths:
        header_end = data.index(b"\n")
        header = data[:header_end].split()
        data = data[header_end + 1 :]
        if len(header) < 3 or header[1] != b"blob":
            continue
        size = int(header[2])
        blob, data = data[:size], data[size + 1 :]
        try:
            nb = json.loads(blob)
        except (ValueError, UnicodeDecodeError):
            continue
        cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))]
        if cells:
            found.append(Finding(
                "outputs-committed", ERROR, path, None, None,
                f"{path} is in git with the outputs of {len(cells)} cell{'s' if len(cells) != 1 else ''}: outputs bloat "
                f"the history and bury code changes in diffs; strip them from what git stores with "
                f"`nbops git-filter && git add {path}` (outputs stay in your copy)",
            ))
    return found
