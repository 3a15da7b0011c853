"""Notebook stages in dvc.yaml: built as data by pure functions, written without disturbing the
rest of the file.

`add_stage("notebooks/train.ipynb")` (the library behind `nbops stage add`) writes the stage
that runs a notebook with `nbops run`:

* **what it runs and depends on** — the notebook's code-only form: with jupytext pairing
  configured (a `jupytext.toml` at the project root, `formats = "ipynb,py:percent"`), the
  percent script `notebooks/train.py`, which saving from JupyterLab changes only when code or
  tags change, so exploring does not make the stage stale; without pairing, the `.ipynb`;
* **params** — exactly the names of the notebook's `parameters` cell, as `<section>.<name>`,
  and the section is added to params.yaml with the cell's defaults when it lacks them;
* **outs, metrics, plots** — what the recording API writes for the stage, found without running
  the notebook: calls such as `nbops.log_metric(...)`, `nbops.log_plot("name", ..., x=, y=,
  template=)`, `nbops.save_model(model, "name", ...)` (outs) and `nbops.load_model("name")`
  (deps) are read from the source; where a call's name is not a literal (or a plot's x/y are
  left to their defaults), the records of the stage's last report `reports/<stage>.ipynb` fill
  in what the source cannot tell.

dvc.yaml and params.yaml are edited as text blocks: only the stage (or params section) being
written is re-rendered, with ruamel.yaml's round trip so comments inside it survive; every other
line of the file stays byte for byte as it was.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..core import params as params_mod
from ..core import project
from ..core._io import atomic_write_text
from ..core.exceptions import NotebookError, ProjectError, StageError
from .supervise import SETTINGS_SECTION

#: What `nbops run` is called as in a stage's cmd.
RUN_COMMAND = "nbops run"
#: Commands that run a notebook without nbops' params.yaml wiring.
DIRECT_RUNNERS = ("papermill", "jupyter nbconvert", "jupyter execute", "jupyter-nbconvert", "jupyter-execute")

#: Plot properties of the recording API's helpers: name → (template, x, y).
HELPER_PLOTS = {
    "log_pr_curve": ("pr_curve", "simple", "recall", "precision"),
    "log_roc_curve": ("roc_curve", "simple", "fpr", "tpr"),
    "log_confusion_matrix": ("confusion_matrix", "confusion", "actual", "predicted"),
}
_METRIC_CALLS = ("log_metric", "log_metrics")
_RECORDING = {*_METRIC_CALLS, "log_plot", *HELPER_PLOTS, "log_checks", "save_model", "load_model"}


# --- the notebook: its code-only form, parameters and recording calls ------------------------


def paired_forms(path: Path) -> dict[str, Path]:
    """The files jupytext pairs `path` with, by extension ({".ipynb": …, ".py": …}); {} unpaired."""
    try:
        from jupytext.config import load_jupytext_config
        from jupytext.formats import long_form_multiple_formats
        from jupytext.paired_paths import InconsistentPath, paired_paths
    except ImportError:  # pragma: no cover - jupytext is a core dependency
        return {}
    try:
        config = load_jupytext_config(str(path))
        formats = config.default_formats(str(path)) if config else None
    except Exception:  # noqa: BLE001 - a broken jupytext.toml means no pairing we can rely on
        return {}
    if not formats:
        return {}
    for fmt in long_form_multiple_formats(formats):
        if fmt.get("extension") == path.suffix:
            try:
                pairs = paired_paths(str(path), fmt, formats)
            except InconsistentPath:
                continue
            return {Path(p).suffix: Path(p) for p, _ in pairs}
    return {}


def code_form(notebook: Path) -> Path:
    """What a stage runs and depends on: the paired percent script of an .ipynb when jupytext
    pairs one, else the notebook itself."""
    if notebook.suffix != ".ipynb":
        return notebook
    return paired_forms(notebook).get(".py", notebook)


def sync_pair(notebook: Path) -> None:
    """Bring the paired files of `notebook` up to date (`jupytext --sync`): the newer file's
    inputs win, outputs stay in the .ipynb."""
    from jupytext.cli import jupytext as jupytext_cli

    try:
        jupytext_cli(["--sync", "--quiet", str(notebook)])
    except SystemExit as exc:  # jupytext's CLI exits on errors
        if exc.code:
            raise NotebookError(f"{notebook}: `jupytext --sync` failed (exit {exc.code}); run it to see why") from None


@dataclass
class Recorded:
    """What a notebook's source records through nbops, found without running it."""

    metrics: bool = False
    plots: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {template, x, y} known
    saved_models: list[str] = field(default_factory=list)
    profiled_models: list[str] = field(default_factory=list)  # saved with reference=…: a profile too
    loaded_models: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # calls whose name is not a literal


def code_cells(nb: dict[str, Any]) -> Iterable[tuple[int, str]]:
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code":
            yield index, params_mod.cell_source(cell)


def _python(source: str) -> ast.Module | None:
    """A cell's source as Python, IPython magics and shell lines blanked; None if unparsable."""
    lines = [line if not line.lstrip().startswith(("%", "!")) else "" for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def scan_recording(nb: dict[str, Any]) -> Recorded:
    """The recording calls in a notebook's code cells: `nbops.log_metric(...)`, `import nbops as
    nb; nb.log_plot(...)` and `from nbops import save_model; save_model(...)` alike."""
    trees = [tree for _, source in code_cells(nb) if (tree := _python(source)) is not None]
    modules: set[str] = set()
    functions: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.asname or alias.name for alias in node.names if alias.name == "nbops")
            elif isinstance(node, ast.ImportFrom) and node.module == "nbops":
                functions.update({alias.asname or alias.name: alias.name for alias in node.names if alias.name in _RECORDING})
    found = Recorded()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
                name = func.attr
            elif isinstance(func, ast.Name) and func.id in functions:
                name = functions[func.id]
            else:
                continue
            _note_call(found, name, node)
    return found


def _literal(node: ast.Call, position: int, keyword: str) -> tuple[bool, Any]:
    """(given, value) of an argument; value is None when given but not a literal."""
    for kw in node.keywords:
        if kw.arg == keyword:
            return True, _const(kw.value)
    if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[: position + 1]):
        return True, _const(node.args[position])
    return False, None


def _const(node: ast.AST) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _note_call(found: Recorded, name: str, node: ast.Call) -> None:
    if name in _METRIC_CALLS:
        found.metrics = True
    elif name == "log_plot":
        given, plot = _literal(node, 0, "name")
        if not plot:
            found.unresolved.append("log_plot")
            return
        props: dict[str, str] = {}
        given, template = _literal(node, 99, "template")
        props["template"] = template if given and template else "linear"
        for axis in ("x", "y"):
            given, value = _literal(node, 99, axis)
            if given and value:
                props[axis] = value
        found.plots.setdefault(plot, props)
    elif name == "log_checks":  # its metrics and a bar plot of failing rows per check
        found.metrics = True
        given, plot = _literal(node, 99, "name")
        if given and not plot:
            found.unresolved.append(name)
            return
        found.plots.setdefault(plot or "checks", {"template": "bar_horizontal", "x": "failing_rows", "y": "check"})
    elif name in HELPER_PLOTS:
        default, template, x, y = HELPER_PLOTS[name]
        given, plot = _literal(node, 2, "name")  # (y_true, y_score | y_pred, name=...)
        if given and not plot:
            found.unresolved.append(name)
            return
        found.plots.setdefault(plot or default, {"template": template, "x": x, "y": y})
    elif name in ("save_model", "load_model"):
        given, model = _literal(node, 1 if name == "save_model" else 0, "name")
        target = found.saved_models if name == "save_model" else found.loaded_models
        if not model:
            found.unresolved.append(name)
        elif model not in target:
            target.append(model)
        if model and name == "save_model" and _passes_reference(node) and model not in found.profiled_models:
            found.profiled_models.append(model)


def _passes_reference(node: ast.Call) -> bool:
    """save_model(..., reference=X) with X anything but a literal None records a profile."""
    return any(
        kw.arg == "reference" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
        for kw in node.keywords
    )


def model_outs(name: str, profiled: bool) -> list[str]:
    """The files save_model writes for model `name`: model, manifest and (with reference=) profile."""
    outs = [project.model_path(name), project.model_manifest_path(name)]
    return outs + [project.model_profile_path(name)] if profiled else outs


def merge_report_records(found: Recorded, records: list[dict[str, Any]]) -> Recorded:
    """Fill in from a report what the source left open: x/y of plots whose axes default to the
    data's columns, and the items of calls whose names are not literals."""
    unresolved = set(found.unresolved)
    for record in records:
        kind, name = record.get("kind"), record.get("name")
        if not isinstance(name, str):
            continue
        if kind == "plot":
            if name in found.plots:
                for axis in ("x", "y"):
                    if axis not in found.plots[name] and record.get(axis):
                        found.plots[name][axis] = str(record[axis])
            elif unresolved & {"log_plot", "log_checks", *HELPER_PLOTS}:
                found.plots[name] = {k: str(record[k]) for k in ("template", "x", "y") if record.get(k)}
        elif kind == "metric" and unresolved & set(_METRIC_CALLS):
            found.metrics = True
        elif kind == "model" and "save_model" in unresolved and name not in found.saved_models:
            found.saved_models.append(name)
        if (kind == "model" and "save_model" in unresolved and record.get("profile")
                and name in found.saved_models and name not in found.profiled_models):
            found.profiled_models.append(name)
    return found


# --- the stage as data ------------------------------------------------------------------------


def parse_run_cmd(cmd: Any) -> tuple[str, str] | None:
    """(notebook, params section) of an `nbops run` command; None for any other command."""
    if isinstance(cmd, list):
        cmd = " && ".join(str(c) for c in cmd)
    if not isinstance(cmd, str):
        return None
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    for i, word in enumerate(words[:-1]):
        if (word == "nbops" or word.endswith("/nbops")) and words[i + 1] == "run":  # also `python -m nbops run`
            rest = words[i + 2 :]
            notebook, section = None, None
            j = 0
            while j < len(rest):
                if rest[j] in ("&&", ";", "||", "|"):
                    break
                if rest[j] == "--stage" and j + 1 < len(rest):
                    section = rest[j + 1]
                    j += 2
                    continue
                if rest[j].startswith("--stage="):
                    section = rest[j].split("=", 1)[1]
                elif rest[j] in ("-p", "--param", "-o", "--output", "--kernel", "--timeout", "--start-timeout"):
                    j += 2
                    continue
                elif not rest[j].startswith("-") and notebook is None:
                    notebook = rest[j]
                j += 1
            if notebook:
                return notebook, section or Path(notebook).stem
    return None


def direct_runner(cmd: Any) -> tuple[str, str | None] | None:
    """(runner, notebook) when `cmd` runs a notebook with papermill or jupyter directly."""
    if isinstance(cmd, list):
        cmd = " && ".join(str(c) for c in cmd)
    if not isinstance(cmd, str):
        return None
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    joined = " ".join(words)
    for runner in DIRECT_RUNNERS:
        if re.search(rf"(^|[\s/]){re.escape(runner)}(\s|$)", joined):
            notebook = next((w for w in words if w.endswith(".ipynb")), None)
            return runner, notebook
    return None


def entry_path(entry: Any) -> str | None:
    """The path of a dvc.yaml deps/outs/metrics/plots entry (a string or {path: options})."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and len(entry) == 1:
        return str(next(iter(entry)))
    return None


def _rel(path: Path, root: Path) -> str:
    if not project.is_inside(path, root):
        raise ProjectError(f"{path}: outside the project {root}; stage paths must be inside it")
    return project.relpath(path, root)


@dataclass
class StagePlan:
    """The stage `add_stage` would write, and what params.yaml lacks for it."""

    name: str
    section: str
    notebook: str  # as given, relative to the root
    runs: str  # the file the stage runs and depends on
    stage: dict[str, Any]
    parameters: dict[str, params_mod.Parameter]
    missing_params: dict[str, Any]  # params.yaml lacks these: name -> the cell's default
    extra_params: list[str]  # params.yaml section names the notebook does not define
    recorded: Recorded
    warnings: list[str] = field(default_factory=list)


def plan_stage(
    notebook: str | os.PathLike[str],
    *,
    name: str | None = None,
    deps: Iterable[str] = (),
    outs: Iterable[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> StagePlan:
    """Build (but do not write) the stage for `notebook`; reads the notebook, its report and
    params.yaml."""
    path = Path(notebook)
    if not path.exists():
        raise NotebookError(f"{notebook}: notebook not found")
    root_path = Path(root).resolve() if root else project.find_root(path)
    if root_path is None:
        raise ProjectError(
            f"{notebook}: not inside a project (no dvc.yaml, params.yaml or .dvc above it); "
            "create one with `nbops init` or `dvc init`"
        )
    runs_path = code_form(path.resolve())
    given = _rel(path, root_path)
    runs = _rel(runs_path, root_path)
    stage_name = name or path.stem
    if not project.is_valid_name(stage_name):
        raise StageError(f"stage name {stage_name!r} must be a plain name (letters, digits, . _ -); pass --name")
    if stage_name == SETTINGS_SECTION:
        raise StageError(
            f"stage name '{stage_name}' is reserved: params.yaml's `{stage_name}:` section holds nbops' own settings; pass --name"
        )
    section = stage_name

    nb = params_mod.load_notebook(runs_path if runs_path.exists() else path.resolve())
    cell = params_mod.require_parameters_cell(nb, runs)
    recorded = scan_recording(nb)
    report = root_path / project.report_path(section)
    warnings: list[str] = []
    if report.exists():
        from .record import read_records

        try:
            merge_report_records(recorded, read_records(report))
        except (OSError, ValueError):
            warnings.append(f"{project.report_path(section)}: unreadable report, ignored")
    for call in sorted(set(recorded.unresolved)):
        if not report.exists():
            warnings.append(
                f"{runs}: a {call}() call names its item with an expression, so its file is not declared; "
                f"run the stage once (`nbops run {runs}`) and re-run `nbops stage add`, which reads the report"
            )
    for plot, props in recorded.plots.items():
        missing = [axis for axis in ("x", "y") if axis not in props]
        if missing:
            warnings.append(
                f"{runs}: plot '{plot}' leaves {' and '.join(missing)} to the data's columns; pass x= and y= "
                "to nbops.log_plot (or run the stage once) so `dvc plots show` draws the right axes"
            )

    user_deps = [_rel(Path(d), root_path) for d in deps]
    user_outs = [_rel(Path(o), root_path) for o in outs]
    dep_list = _unique([runs, *user_deps, *(p for m in recorded.loaded_models for p in (project.model_path(m), project.model_manifest_path(m)))])
    out_list = _unique([*user_outs, *(p for m in recorded.saved_models for p in model_outs(m, m in recorded.profiled_models)), project.report_path(section)])
    cmd = f"{RUN_COMMAND} {_quote(runs)}" + (f" --stage {section}" if section != Path(runs).stem else "")

    stage: dict[str, Any] = {"cmd": cmd, "deps": dep_list}
    if cell.parameters:
        stage["params"] = [f"{section}.{p}" for p in cell.parameters]
    stage["outs"] = out_list
    if recorded.metrics:
        stage["metrics"] = [project.metrics_path(section)]
    if recorded.plots:
        stage["plots"] = [{project.plot_path(section, plot): dict(props)} for plot, props in recorded.plots.items()]

    params_file = root_path / project.PARAMS_FILE
    current = params_mod.stage_section(params_mod.load_yaml(params_file, shown=project.PARAMS_FILE), section)
    missing = {}
    for pname, parameter in cell.parameters.items():
        if pname in current:
            continue
        if parameter.default is params_mod.UNKNOWN:
            raise StageError(
                f"{runs}: parameter '{pname}' defaults to the expression {parameter.source}, which params.yaml "
                f"cannot hold; give it a literal default in the parameters cell or set {section}.{pname} in params.yaml"
            )
        missing[pname] = parameter.default
    extra = [k for k in current if k not in cell.parameters]
    if extra:
        warnings.append(
            f"params.yaml section '{section}' sets {', '.join(map(str, extra))}, which {runs} does not define; "
            "`nbops run` will refuse it: remove it or add it to the parameters cell"
        )
    return StagePlan(stage_name, section, given, runs, stage, cell.parameters, missing, extra, recorded, warnings)


def _quote(path: str) -> str:
    return shlex.quote(path)


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _same_notebook(a: str, b: str) -> bool:
    """Two forms of one notebook: the same path, or paired files (same folder and stem)."""
    pa, pb = Path(a), Path(b)
    return pa == pb or (pa.with_suffix("") == pb.with_suffix("") and {pa.suffix, pb.suffix} <= {".ipynb", ".py"})


def merge_stage(existing: dict[str, Any] | None, plan: StagePlan) -> dict[str, Any]:
    """The stage to write: `plan.stage` where nothing exists; else the existing stage with the
    parts nbops owns brought up to date — the notebook's form in cmd and deps, the section's
    params (exactly the cell's names), the report, metrics/<section>.json and plots/<section>/…
    — and every entry the user added kept as it is."""
    new = plan.stage
    if not existing:
        return {key: _copy(value) for key, value in new.items()}
    merged = dict(existing)
    old_cmd = existing.get("cmd")
    parsed = parse_run_cmd(old_cmd)
    if isinstance(old_cmd, str) and parsed and parsed[0] != plan.runs and _same_notebook(parsed[0], plan.runs):
        merged["cmd"] = _replace_word(old_cmd, parsed[0], _quote(plan.runs))
    elif not (parsed and parsed[0] == plan.runs):
        merged["cmd"] = new["cmd"]

    def is_notebook(path: str | None) -> bool:
        return path is not None and _same_notebook(path, plan.runs)

    merged["deps"] = _merge_entries(
        existing.get("deps"), new["deps"], drop=lambda p: False,
        replace=lambda p: plan.runs if is_notebook(p) else None,  # the notebook's other form, in its place
    )
    section_prefix = f"{plan.section}."
    old_params = list(existing.get("params") or [])
    kept = [e for e in old_params if not (isinstance(e, str) and e.startswith(section_prefix))]
    merged["params"] = list(new.get("params", [])) + kept
    if not merged["params"]:
        merged.pop("params")
    merged["outs"] = _merge_entries(existing.get("outs"), new["outs"], drop=lambda p: False)
    plots_dir = f"{project.PLOTS_DIR}/{plan.section}/"
    resolved = not plan.recorded.unresolved
    for key in ("metrics", "plots"):
        wanted = new.get(key, [])
        wanted_paths = {entry_path(e) for e in wanted}

        def stale(path: str | None, wanted_paths: set[str | None] = wanted_paths) -> bool:
            owned = path == project.metrics_path(plan.section) or (path or "").startswith(plots_dir)
            return owned and resolved and path not in wanted_paths

        entries = _merge_entries(existing.get(key), wanted, drop=stale)
        if entries:
            merged[key] = entries
        else:
            merged.pop(key, None)
    return _in_order(list(existing), merged)


_STAGE_KEYS = ("cmd", "wdir", "deps", "params", "outs", "metrics", "plots")


def _in_order(existing_keys: list[str], merged: dict[str, Any]) -> dict[str, Any]:
    """`merged` in the existing stage's key order, a new key placed after the keys that come
    before it in DVC's usual order (cmd, deps, params, outs, metrics, plots)."""
    keys = [k for k in existing_keys if k in merged]
    for key in _STAGE_KEYS:
        if key in merged and key not in keys:
            before = _STAGE_KEYS[: _STAGE_KEYS.index(key)]
            at = max((i + 1 for i, k in enumerate(keys) if k in before), default=0)
            keys.insert(at, key)
    keys += [k for k in merged if k not in keys]
    return {k: merged[k] for k in keys}


def _replace_word(cmd: str, old: str, new: str) -> str:
    return re.sub(rf"(?<![^\s'\"]){re.escape(old)}(?![^\s'\"])", new, cmd, count=1)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _merge_entries(old: Any, new: list[Any], drop: Any, replace: Any = None) -> list[Any]:
    """Existing entries in their order (those `drop` says go are removed, those `replace` maps
    to a new path are replaced in place), then the new ones not there yet."""
    result: list[Any] = []
    seen: set[str | None] = set()
    for entry in old or []:
        path = entry_path(entry)
        if replace is not None and (replacement := replace(path)) is not None:
            entry, path = replacement, replacement
        if drop(path) or path in seen:
            continue
        seen.add(path)
        result.append(entry)
    for entry in new:
        if entry_path(entry) not in seen:
            seen.add(entry_path(entry))
            result.append(_copy(entry))
    return result


# --- writing: dvc.yaml and params.yaml as text blocks -----------------------------------------


def write_text(path: Path, text: str) -> None:
    """Write a project file atomically, keeping its permissions (a new file gets rw-r--r--:
    atomic writes go through a private temporary file)."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    atomic_write_text(path, text)
    os.chmod(path, mode)


def _yaml(text: str = "") -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments and key order survive
    yaml.width = 4096
    yaml.preserve_quotes = True
    mapping, sequence, offset = 2, 4, 2
    for match in re.finditer(r"^( *)[^\s#-][^\n]*:[ \t]*\n( *)- ", text, re.MULTILINE):
        dash_offset = len(match.group(2)) - len(match.group(1))
        if dash_offset == 0:
            sequence, offset = 2, 0
        break
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def _load(yaml: Any, text: str, filename: str) -> Any:
    from ruamel.yaml import YAMLError

    try:
        return yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        raise ProjectError(f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc}); fix it first") from None


def _dump(yaml: Any, data: Any, indent: int) -> list[str]:
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    lines = buffer.getvalue().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    return [(" " * indent + line) if line.strip() else "" for line in lines]


def _spans(lines: list[str], mapping: Any, end: int) -> dict[Any, tuple[int, int]]:
    """Line spans [start, stop) of each key of a block `mapping`, without the blank and comment
    lines that trail a block (those lead into the next key and stay where they are)."""
    keys = list(mapping)
    starts = [mapping.lc.key(k)[0] for k in keys]
    spans = {}
    for i, key in enumerate(keys):
        stop = starts[i + 1] if i + 1 < len(keys) else end
        while stop > starts[i] + 1 and (not lines[stop - 1].strip() or lines[stop - 1].lstrip().startswith("#")):
            stop -= 1
        spans[key] = (starts[i], stop)
    return spans


def _top_level_end(lines: list[str], data: Any, key: str) -> int:
    """The line where the top-level block of `key` ends (the next top-level key, or EOF)."""
    keys = list(data)
    index = keys.index(key)
    return data.lc.key(keys[index + 1])[0] if index + 1 < len(keys) else len(lines)


def _is_block_mapping(node: Any) -> bool:
    from ruamel.yaml.comments import CommentedMap

    return isinstance(node, CommentedMap) and not node.fa.flow_style()


def _write_child(
    text: str, filename: str, parent: str | None, key: str, update: Any, *, blank_line_before: bool | None = None
) -> tuple[str, bool]:
    """Replace (or add) the block of `key` — under the top-level `parent`, or at the top level —
    by `update(node_or_None) -> node`, leaving every other line of `text` as it is.
    Returns the new text and whether the block was added."""
    yaml = _yaml(text)
    lines = text.splitlines()
    data = _load(yaml, text, filename) if text.strip() else None
    if data is not None and not _is_block_mapping(data):
        raise ProjectError(f"{filename}: expected a mapping at the top; fix the file first")
    container, end, indent = data, len(lines), 0
    if parent is not None:
        if data is None or parent not in data:
            block = _dump(yaml, {parent: {key: update(None)}}, 0)
            prefix = text.rstrip("\n")
            return (prefix + ("\n\n" if prefix else "") + "\n".join(block) + "\n"), True
        container = data[parent]
        end = _top_level_end(lines, data, parent)
        if container is None:  # `stages:` with nothing under it
            start = data.lc.key(parent)[0]
            block = _dump(yaml, {key: update(None)}, 2)
            lines[start + 1 : start + 1] = block
            return "\n".join(lines) + "\n", True
        if not _is_block_mapping(container):
            raise StageError(f"{filename}: '{parent}' is written in flow style ({{...}}); rewrite it in block style first")
        indent = container.lc.key(next(iter(container)))[1] if container else 2
    if container is None:  # an empty file, or comments only
        block = _dump(yaml, {key: update(None)}, 0)
        prefix = text.rstrip("\n")
        return (prefix + ("\n\n" if prefix else "") + "\n".join(block) + "\n"), True
    spans = _spans(lines, container, end)
    if key in spans:
        start, stop = spans[key]
        # dedented, so that ruamel keeps end-of-line comments at their columns once re-indented
        block_text = "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[start:stop]) + "\n"
        node = _load(_yaml(block_text), block_text, filename)[key]
        block = _dump(_yaml(block_text), {key: update(node)}, indent)
        lines[start:stop] = block
        return "\n".join(lines) + "\n", False
    if spans:
        ordered = list(spans.values())
        insert_at = ordered[-1][1]
        if blank_line_before is None:  # separate blocks as the file does (its first two blocks)
            blank_line_before = len(ordered) < 2 or any(not line.strip() for line in lines[ordered[0][1] : ordered[1][0]])
    else:
        insert_at, blank_line_before = end, False
    block = _dump(yaml, {key: update(None)}, indent)
    lines[insert_at:insert_at] = ([""] if blank_line_before else []) + block
    return "\n".join(lines) + "\n", True


def _to_yaml_value(value: Any) -> Any:
    """Lists and dicts of a parameter default, in flow style (`[1, 2]`) as people write them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, (list, tuple)):
        seq = CommentedSeq([_to_yaml_value(v) for v in value])
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        mapping = CommentedMap((str(k), _to_yaml_value(v)) for k, v in value.items())
        mapping.fa.set_flow_style()
        return mapping
    return value


def _sync_mapping(node: Any, wanted: dict[str, Any]) -> Any:
    """Make the ruamel mapping `node` hold exactly `wanted`'s keys in `wanted`'s order, keeping
    the nodes (and so the comments) of values that did not change."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if node is None:
        node = CommentedMap()
    for key in [k for k in node if k not in wanted]:
        del node[key]
    for position, (key, value) in enumerate(wanted.items()):
        if key in node and _plain(node[key]) == _plain(value):
            continue
        if isinstance(value, list):
            old = node.get(key) if isinstance(node.get(key), CommentedSeq) else None
            value = _sync_sequence(old, value)
        elif isinstance(value, dict):
            old = node.get(key) if isinstance(node.get(key), CommentedMap) else None
            value = _sync_mapping(old, value)
        if key in node:
            node[key] = value
        else:
            node.insert(min(position, len(node)), key, value)
    keys = list(wanted)
    if list(node) != keys:  # reorder, moving nodes (with their comments) as they are
        items = [(k, node[k]) for k in keys]
        comments = {k: node.ca.items.get(k) for k in keys}
        for k in keys:
            del node[k]
        for k, v in items:
            node[k] = v
            if comments[k] is not None:
                node.ca.items[k] = comments[k]
    return node


def _sync_sequence(node: Any, wanted: list[Any]) -> Any:
    """A ruamel sequence holding `wanted`, reusing the items (and their comments) of `node`."""
    from ruamel.yaml.comments import CommentedSeq

    old = list(node) if node is not None else []
    plain_old = [_plain(v) for v in old]
    seq = CommentedSeq()
    for index, value in enumerate(wanted):
        plain = _plain(value)
        if plain in plain_old:
            at = plain_old.index(plain)
            seq.append(old[at])
            if node is not None and at in node.ca.items:
                seq.ca.items[index] = node.ca.items[at]
            plain_old[at] = object()  # each old item is reused once
        else:
            seq.append(_sync_mapping(None, value) if isinstance(value, dict) else value)
    return seq


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_dvc_yaml(root: Path) -> dict[str, Any]:
    """dvc.yaml as plain data ({} when absent)."""
    path = root / project.DVC_FILE
    return params_mod.load_yaml(path, shown=project.DVC_FILE) if path.exists() else {}


@dataclass
class StageResult:
    """What `add_stage` did."""

    name: str
    action: str  # "added", "updated" or "unchanged"
    stage: dict[str, Any]
    runs: str
    params_added: dict[str, Any]
    warnings: list[str]
    synced: bool

    def __str__(self) -> str:
        lines = [f"dvc.yaml: {self.action} stage '{self.name}' (runs {self.runs})"]
        if self.params_added:
            lines.append(f"params.yaml: added {', '.join(f'{self.name}.{k}' for k in self.params_added)} with the notebook's defaults")
        return "\n".join(lines)


def add_stage(
    notebook: str | os.PathLike[str],
    *,
    name: str | None = None,
    deps: Iterable[str] = (),
    outs: Iterable[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> StageResult:
    """Write (or update) the dvc.yaml stage that runs `notebook` with `nbops run`, and add the
    defaults params.yaml lacks for it. See the module docstring for what goes in the stage."""
    path = Path(notebook)
    root_path = Path(root).resolve() if root else project.find_root(path if path.exists() else Path.cwd())
    synced = False
    if path.suffix == ".ipynb" and path.exists():
        pair = paired_forms(path.resolve()).get(".py")
        if pair is not None and (not pair.exists() or pair.stat().st_mtime < path.stat().st_mtime):
            sync_pair(path)
            synced = True
    plan = plan_stage(path, name=name, deps=deps, outs=outs, root=root_path)
    root_path = root_path or project.find_root(path)
    assert root_path is not None  # plan_stage raised otherwise
    dvc = read_dvc_yaml(root_path)
    stages = dvc.get("stages") or {}
    if not isinstance(stages, dict):
        raise ProjectError(f"{project.DVC_FILE}: 'stages' must be a mapping of stage names")
    existing = stages.get(plan.name)
    if existing is not None:
        parsed = parse_run_cmd(existing.get("cmd") if isinstance(existing, dict) else None)
        if not parsed or not _same_notebook(parsed[0], plan.runs):
            shown = existing.get("cmd") if isinstance(existing, dict) else existing
            raise StageError(
                f"{project.DVC_FILE}: stage '{plan.name}' already exists and runs `{shown}`, not {plan.runs}; "
                "choose another name with --name NAME"
            )
    for other, spec in stages.items():
        parsed = parse_run_cmd(spec.get("cmd") if isinstance(spec, dict) else None)
        if other != plan.name and parsed and _same_notebook(parsed[0], plan.runs) and parsed[1] == plan.section:
            raise StageError(
                f"{project.DVC_FILE}: stage '{other}' already runs {parsed[0]} for the params section '{plan.section}'; "
                f"update it with `nbops stage add {plan.notebook} --name {other}`"
            )
    merged = merge_stage(existing, plan)
    action = "added" if existing is None else ("unchanged" if _plain(existing) == _plain(merged) else "updated")

    if action != "unchanged":
        dvc_file = root_path / project.DVC_FILE
        text = params_mod.read_text(dvc_file, project.DVC_FILE) if dvc_file.exists() else ""
        new_text, _ = _write_child(text, project.DVC_FILE, "stages", plan.name, lambda node: _sync_mapping(node, merged))
        write_text(dvc_file, new_text)
    if plan.missing_params:
        params_file = root_path / project.PARAMS_FILE
        text = params_mod.read_text(params_file, project.PARAMS_FILE) if params_file.exists() else ""

        def add_defaults(node: Any) -> Any:
            from ruamel.yaml.comments import CommentedMap

            node = node if node is not None else CommentedMap()
            for key, value in plan.missing_params.items():
                node[key] = _to_yaml_value(value)
            return node

        new_text, _ = _write_child(text, project.PARAMS_FILE, None, plan.section, add_defaults)
        write_text(params_file, new_text)
    return StageResult(plan.name, action, merged, plan.runs, dict(plan.missing_params), plan.warnings, synced)
