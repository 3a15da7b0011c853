"""Run one notebook as a pipeline stage: parameters from params.yaml, executed by papermill.

The working directory of the kernel is the project root, so relative paths in a notebook mean
the same under `nbops run`, under nbval and interactively (where `import nbops` moves the kernel
to the root). The report is made deterministic (no timestamps, stable cell ids) so that
unchanged inputs give a byte-identical report and `dvc.lock` does not churn.

On failure the partial report is kept for the user to open, and every file the run recorded
(listed in a journal the kernel appends to, see record.py) is removed with the stage's metrics
and plots, so nothing is left looking like the result of a successful run. The exception is a
stage stopped by its data checks (`nbops.log_checks` raising ChecksFailed): what it recorded is
the evidence of the failure, and stays for `dvc metrics show` and `nbops report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import params as params_mod
from ..core import project
from . import record, supervise
from ..core._io import atomic_write_text
from .portability import absolute_paths_in_outputs
from ..core.exceptions import ExecutionError, KernelDiedError, NotebookError, ParamsError, ProjectError, RunStoppedError

_PAPERMILL_TIMING_KEYS = ("start_time", "end_time", "duration")
_INJECTED_TAG = "injected-parameters"
_ERROR_MARKER_TAG = "papermill-error-cell-tag"
#: The exception `nbops.log_checks` raises to stop a stage whose data checks failed.
CHECKS_FAILED = "ChecksFailed"


@dataclass
class RunResult:
    """What one `run_notebook` produced."""

    stage: str
    notebook: Path
    report: Path
    parameters: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    #: cells whose outputs tie the report to this checkout (the project's absolute path)
    warnings: list[str] = field(default_factory=list)


def run_notebook(
    notebook: str | os.PathLike[str],
    *,
    stage: str | None = None,
    parameters: dict[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    kernel_name: str | None = None,
    timeout: float | str | None = None,
    start_timeout: float | str | None = None,
) -> RunResult:
    """Execute `notebook` with the params.yaml section of `stage` (default: the notebook's stem).

    `parameters` override params.yaml values (the CLI's `-p`); both are checked against the
    notebook's `parameters` cell. `timeout` (the cells, first to last) and `start_timeout` (the kernel's
    start-up) override params.yaml's `nbops:` settings (see supervise.py). Raises
    ParamsError/NotebookError/ProjectError before anything runs; ExecutionError
    (KernelDiedError, RunStoppedError) after writing the partial report when a cell fails, the
    kernel dies, the time limit expires or a signal stops the run.
    """
    notebook = Path(notebook)
    if notebook.is_dir():
        raise NotebookError(f"{notebook}: is a folder; give a notebook file (.ipynb, or its paired .py)")
    if not notebook.is_file():
        raise NotebookError(f"{notebook}: notebook not found")
    root_path = Path(root) if root else (project.find_root(notebook) or Path.cwd())
    root_path = root_path.resolve()
    nb_abs = notebook.resolve()
    shown = project.relpath(nb_abs, root_path)
    stage = stage or nb_abs.stem
    if not project.is_valid_name(stage):
        raise ProjectError(f"stage name {stage!r} must be a plain name (letters, digits, . _ -)")
    if stage == supervise.SETTINGS_SECTION:
        raise ProjectError(
            f"stage name '{stage}' is reserved: params.yaml's `{stage}:` section holds nbops' own settings; pass --stage NAME"
        )

    nb = params_mod.load_notebook(notebook)  # a jupytext text notebook (.py) runs exactly as read here
    params_file = root_path / project.PARAMS_FILE
    loaded = params_mod.load_params(params_file, shown=project.relpath(params_file, Path.cwd()))
    values = resolve_parameters(nb_abs, stage, root_path, parameters or {}, shown=shown, nb=nb, params=loaded)
    try:
        limits = supervise.read_limits(loaded[0], stage, timeout=timeout, start_timeout=start_timeout)
    except supervise.SettingsError as exc:
        raise ParamsError(str(exc)) from None
    _refuse_another_stage_file(root_path, nb_abs, stage, shown)
    report = _report_path(output, root_path, stage)
    _check_writable(report)
    journal = _new_journal(root_path, stage)
    report.unlink(missing_ok=True)  # a report left by an earlier run must not pass for this run's
    env = {**os.environ, record.ENV_STAGE: stage, record.ENV_ROOT: str(root_path), record.ENV_JOURNAL: journal}
    running: dict[str, int] = {}

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        running["index"] = cell_index

    supervisor = supervise.Supervisor(limits.timeout)
    try:
        with supervisor:
            _execute(nb_abs, nb, report, values, root_path, quiet, kernel_name, on_cell_execute, shown, env, limits, supervisor)
    except ExecutionError as exc:
        if exc.ename == CHECKS_FAILED and supervisor.reason is None:
            # a failed data check keeps its findings (metrics, the partial report) for the user to read
            kept = _recorded(journal)
            raise ExecutionError(
                f"{shown}: data checks failed — {str(exc.evalue).strip().splitlines()[0]} — "
                f"the findings are in {', '.join(sorted(kept)) or project.metrics_path(stage)}; "
                f"partial report: {project.relpath(Path(exc.report or report), Path.cwd())}",
                notebook=exc.notebook, report=exc.report, cell_index=exc.cell_index, cell_source=exc.cell_source,
                ename=exc.ename, evalue=exc.evalue,
            ) from None
        _discard_recorded(root_path, stage, journal)
        if supervisor.reason is None or isinstance(exc, RunStoppedError):
            raise
        _raise_stopped(supervisor, limits, report, root_path, nb_abs, shown, running.get("index"))
    except BaseException as exc:
        _discard_recorded(root_path, stage, journal)
        if supervisor.reason is not None or isinstance(exc, supervise.Stopped):
            _raise_stopped(supervisor, limits, report, root_path, nb_abs, shown, running.get("index"))
        if _kernel_died(exc) is None:
            raise
        where, cell_index, source = _mark_running_cell(
            report, running.get("index"), "DeadKernelError", "the kernel died while this cell ran", root_path, nb_abs
        )
        raise KernelDiedError(
            f"{shown}: the kernel died while running {where} — a crash, os._exit() or running out of memory; "
            f"partial report: {project.relpath(report, Path.cwd())}",
            notebook=shown, report=str(report), cell_index=cell_index, cell_source=source,
        ) from None
    finally:
        supervisor.stop_kernel()  # what the cells started dies with the run, whatever its outcome
        with contextlib.suppress(OSError):
            os.unlink(journal)
        with contextlib.suppress(OSError):
            os.rmdir(Path(journal).parent)  # .nbops/, when nothing else is in it

    executed = _read_json(report) or {}
    shown_report = project.relpath(report, root_path)
    warnings = [found.describe(shown_report) for found in absolute_paths_in_outputs(executed, root_path)]
    return RunResult(stage, nb_abs, report, values, record.read_records(executed), warnings)


def resolve_parameters(
    notebook: Path, stage: str, root: Path, overrides: dict[str, Any], *, shown: str | None = None,
    nb: dict[str, Any] | None = None, params: tuple[dict[str, Any], set[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    """The values to inject: the stage's params.yaml section, then `overrides`, both checked.
    `params` is what `params.load_params` read, when the caller has it."""
    shown = shown or str(notebook)
    nb = nb if nb is not None else params_mod.load_notebook(notebook)
    cell = params_mod.require_parameters_cell(nb, shown)
    params_file = root / project.PARAMS_FILE
    sections, empty = params if params is not None else params_mod.load_params(
        params_file, shown=project.relpath(params_file, Path.cwd())
    )
    section = params_mod.stage_section(sections, stage, project.PARAMS_FILE)
    params_mod.check_values(
        section, cell.parameters, notebook=shown, origin=f"{project.PARAMS_FILE} section '{stage}'",
        empty=[name for sect, name in empty if sect == stage],
    )
    params_mod.check_values(overrides, cell.parameters, notebook=shown, origin="-p")
    overrides = {name: None if value is params_mod.EMPTY else value for name, value in overrides.items()}
    return {**section, **overrides}


def _refuse_another_stage_file(root: Path, notebook: Path, stage: str, shown: str) -> None:
    """A dvc.yaml stage that runs another file for this params section (often the paired
    script of this .ipynb): running this one would overwrite that stage's outputs with another
    file's and leave `dvc status` dirty."""
    dvc_file = root / project.DVC_FILE
    if not dvc_file.is_file():
        return
    from .stages import parse_run_cmd

    try:
        dvc = params_mod.load_yaml(dvc_file, shown=project.DVC_FILE)
    except ParamsError:
        return  # dvc.yaml's own problems are for `dvc repro` and `nbops check` to report
    stages = dvc.get("stages")
    for name, spec in (stages.items() if isinstance(stages, dict) else ()):
        parsed = parse_run_cmd(spec.get("cmd")) if isinstance(spec, dict) else None
        if parsed is None or parsed[1] != stage:
            continue
        runs = (root / str(spec.get("wdir") or ".") / parsed[0]).resolve()
        if runs != notebook:
            raise ProjectError(
                f"{shown}: stage '{name}' in dvc.yaml runs {project.relpath(runs, root)} for the params section "
                f"'{stage}', not {shown}; running this file would replace that stage's outputs and leave `dvc status` "
                f"dirty: run `nbops run {parsed[0]}` (or `dvc repro {name}`), or pass --stage NAME for a run of its own"
            )


def _report_path(output: str | os.PathLike[str] | None, root: Path, stage: str) -> Path:
    """Where the report goes: `output` (-o) when given, checked, else reports/<stage>.ipynb."""
    if not output:
        return root / project.report_path(stage)
    given = str(output)
    path = Path(output) if Path(output).is_absolute() else Path.cwd() / output
    example = f"{given.rstrip('/' + os.sep) or '.'}/{stage}.ipynb"
    if given.endswith(("/", os.sep)) or path.is_dir():
        raise ProjectError(f"-o {given}: is a folder; give the report's file name, e.g. -o {example}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ProjectError(f"-o {given}: {project.relpath(parent, Path.cwd())} is a file, not a folder; choose another path")
            break
    if path.suffix != ".ipynb":
        raise ProjectError(f"-o {given}: the report is a notebook; give a path ending in .ipynb, e.g. -o {path.stem}.ipynb")
    return path


def _check_writable(report: Path) -> None:
    """Fail before the kernel starts when the report cannot be written."""
    shown = project.relpath(report, Path.cwd())
    folder = project.relpath(report.parent, Path.cwd())
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(
            f"{shown}: cannot create the report's folder {folder}/ ({exc.strerror}); make its parent writable or pass -o PATH"
        ) from None
    try:  # the folder: the report is replaced atomically, through a temporary file beside it
        fd, probe = tempfile.mkstemp(prefix=".nbops-probe-", dir=report.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ProjectError(
            f"{shown}: cannot write into {folder}/ ({exc.strerror}); make it writable (chmod u+w {folder}) or pass -o PATH"
        ) from None
    try:  # a report made read-only on purpose is not silently replaced
        if report.exists():
            os.close(os.open(report, os.O_WRONLY))
    except OSError as exc:
        raise ProjectError(
            f"{shown}: cannot write the report {shown} ({exc.strerror}); make it writable (chmod u+w {shown}) or pass -o PATH"
        ) from None


def _new_journal(root: Path, stage: str) -> str:
    """The file the kernel lists what it records in (see record.py), under <root>/.nbops/."""
    journal_dir = root / ".nbops"
    try:
        journal_dir.mkdir(exist_ok=True)
        fd, journal = tempfile.mkstemp(prefix=f"journal-{stage}-", suffix=".txt", dir=journal_dir)
    except OSError as exc:
        raise ProjectError(
            f"{root}: cannot write .nbops/ in the project folder ({exc.strerror}); nbops run keeps its run journal "
            "there and writes metrics, plots and models into the project: make the project folder writable"
        ) from None
    os.close(fd)
    return journal


def _raise_stopped(
    supervisor: supervise.Supervisor, limits: supervise.Limits, report: Path, root: Path, notebook: Path, shown: str,
    executed_index: int | None,
) -> None:
    """The run was stopped by its time limit or a signal: mark the cell that was running in the
    partial report, and raise RunStoppedError naming it."""
    reason = supervisor.reason or "Ctrl-C"
    if reason == "timeout":
        assert limits.timeout is not None
        what = f"timed out after {supervise.describe(limits.timeout)} (the limit set by {limits.timeout_origin})"
        ename, evalue = "TimeoutError", f"nbops run stopped the kernel: the run's time limit ({limits.timeout_origin}) expired"
    else:
        what = "interrupted (Ctrl-C)" if reason == "Ctrl-C" else f"stopped by {reason}"
        ename = "KeyboardInterrupt" if reason == "Ctrl-C" else "Terminated"
        evalue = f"nbops run was {what} while this cell ran and stopped the kernel"
    where, cell_index, source = _mark_running_cell(report, executed_index, ename, evalue, root, notebook)
    running = f" while running {where}" if cell_index is not None else " before a cell ran"
    partial = f"; partial report: {project.relpath(report, Path.cwd())}" if report.exists() else ""
    raise RunStoppedError(
        f"{shown}: {what}{running}; the kernel and its processes were stopped and what the run recorded removed{partial}",
        reason=reason, signum=supervisor.signum, notebook=shown, report=str(report) if partial else None,
        cell_index=cell_index, cell_source=source, ename=ename, evalue=evalue,
    ) from None


def _mark_running_cell(
    report: Path, executed_index: int | None, ename: str, evalue: str, root: Path, notebook: Path,
) -> tuple[str, int | None, str]:
    """Give the cell that was running an error output and papermill's `failed` status in the
    partial report (papermill marks it `completed` when the kernel goes away), and return how
    to name it: ("cell 3 (`first line`)", its index in the user's notebook, its source)."""
    executed = _read_json(report)
    if executed is None or executed_index is None or not 0 <= executed_index < len(executed.get("cells", [])):
        _make_deterministic_file(report, root, notebook)
        return "a cell", None, ""
    cell_index, source = _original_cell(executed, executed_index)
    cell = executed["cells"][executed_index]
    cell.setdefault("outputs", []).append(
        {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
    )
    cell_meta = cell.setdefault("metadata", {}).setdefault("papermill", {})
    cell_meta.update({"status": "failed", "exception": True})
    for later in executed["cells"][executed_index + 1 :]:  # papermill calls cells it never ran `completed`
        if later.get("cell_type") == "code" and later.get("execution_count") is None and not later.get("outputs"):
            later.setdefault("metadata", {}).setdefault("papermill", {}).update({"status": "pending", "exception": None})
    executed.setdefault("metadata", {}).setdefault("papermill", {})["exception"] = True
    atomic_write_text(report, json.dumps(make_deterministic(executed, root, notebook), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    where = f"cell {cell_index + 1} (`{_first_line(source)}`)" if cell_index is not None else "a cell"
    return where, cell_index, source


def _execute(
    notebook: Path, nb: dict[str, Any], report: Path, values: dict[str, Any], root: Path, quiet: bool,
    kernel_name: str | None, on_cell_execute: Any, shown: str, env: dict[str, str], limits: supervise.Limits,
    supervisor: supervise.Supervisor,
) -> None:
    from jupyter_core.utils import run_sync

    socket_dir = tempfile.mkdtemp(prefix="nbops-kernel-")
    # The kernel boots (~0.7 s) while papermill imports: start it first, hand it to papermill.
    name = kernel_name or _kernelspec_name(nb)
    try:
        kernel = _start_kernel(name, root, socket_dir, shown, env, supervisor)
    except BaseException:
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise
    source = notebook
    metadata = nb.setdefault("metadata", {})
    if not (metadata.get("kernelspec") or {}).get("language") and not (metadata.get("language_info") or {}).get("name"):
        # A notebook (often a script) that names no language: it is the kernel's, as papermill needs to know.
        spec = kernel.kernel_spec
        metadata["kernelspec"] = {"name": kernel.kernel_name, "display_name": spec.display_name, "language": spec.language}
        source = None
    if any("id" not in cell for cell in nb.get("cells", [])):
        # nbformat < 4.5 has no cell ids, and papermill would invent random ones on every run
        nb["nbformat"], nb["nbformat_minor"] = 4, max(5, int(nb.get("nbformat_minor") or 0))
        for index, cell in enumerate(nb.get("cells", [])):
            cell.setdefault("id", f"cell-{index}")
        source = None
    if notebook.suffix != ".ipynb" or source is None:  # papermill reads .ipynb files: hand it the notebook we read
        source = Path(socket_dir) / f"{notebook.stem}.ipynb"
        source.write_text(json.dumps(nb), encoding="utf-8")
    started: dict[str, bool] = {}

    def on_cell(cell: Any, cell_index: int) -> None:
        started["cell"] = True
        supervisor.start_clock()
        on_cell_execute(cell, cell_index)

    quiet_log = _DropKernelDied()
    logging.getLogger("papermill").addFilter(quiet_log)
    try:
        from ..core._startup import without_unused_extras

        with without_unused_extras():
            import papermill
        from papermill.exceptions import PapermillExecutionError

        try:
            papermill.execute_notebook(
                str(source),
                str(report),
                parameters=values,
                cwd=str(root),
                progress_bar=not quiet,
                kernel_name=kernel.kernel_name,
                km=kernel,
                record_timing=False,
                on_cell_execute=on_cell,
                start_timeout=limits.start_timeout,
            )
        except PapermillExecutionError as exc:
            _make_deterministic_file(report, root, notebook)
            executed = _read_json(report) or {}
            cell_index, cell_source, stderr = _failed_cell(executed)
            where = f"cell {cell_index + 1} (`{_first_line(cell_source)}`)" if cell_index is not None else "a cell"
            ename, evalue = exc.ename, str(exc.evalue)
            if ename == "CellExecutionError" and stderr:  # no error output: the failure was only printed to stderr
                ename, _, evalue = stderr.partition(": ") if ": " in stderr else ("error", "", stderr)
            first = evalue.strip().splitlines()[0] if evalue.strip() else ""
            raise ExecutionError(
                f"{shown} failed in {where}: {ename}: {first} — "
                f"partial report: {project.relpath(report, Path.cwd())}",
                notebook=shown, report=str(report), cell_index=cell_index, cell_source=cell_source,
                ename=ename, evalue=evalue,
            ) from None
        except RuntimeError as exc:
            if started or supervisor.reason is not None or "Kernel" not in str(exc):
                raise
            # nbclient's start-up wait: "Kernel didn't respond in 60 seconds", "Kernel died before replying"
            supervisor.stop_kernel()
            report.unlink(missing_ok=True)  # papermill's copy of the notebook, not a single cell run
            if "respond" in str(exc):
                problem = (f"did not start within {supervise.describe(limits.start_timeout)} (set by "
                           f"{limits.start_timeout_origin}; raise it with --start-timeout or params.yaml's nbops.start_timeout)")
            else:
                problem = "exited while starting"
            raise ExecutionError(
                f"{shown}: the kernel '{kernel.kernel_name}' {problem}; its processes were stopped and no cell ran",
                notebook=shown, report=None, cell_index=None,
            ) from None
    finally:
        logging.getLogger("papermill").removeFilter(quiet_log)
        # Graceful: the kernel's interpreter exits normally, so files a cell left open are flushed.
        with contextlib.suppress(Exception):
            run_sync(kernel.shutdown_kernel)()
        shutil.rmtree(socket_dir, ignore_errors=True)
    _make_deterministic_file(report, root, notebook)


class _DropKernelDied(logging.Filter):
    """nbclient logs "Kernel died while waiting for execute reply." and "Error occurred while
    starting new kernel client" through papermill's logger; the run reports the death, the stop
    that caused it or the failed start itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Kernel died" not in message and "starting new kernel client" not in message


def _kernelspec_name(nb: dict[str, Any]) -> str:
    return ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name") or "python3"


def _start_kernel(
    kernel_name: str, root: Path, socket_dir: str, shown: str, env: dict[str, str], supervisor: supervise.Supervisor,
) -> Any:
    """Launch the kernel in the project root with `env`, talking over Unix sockets in a private
    folder rather than unencrypted localhost TCP ports that other users of the machine could
    reach, and hand its process group (its own session: jupyter_client starts it so) to the
    supervisor."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from traitlets import CaselessStrEnum, default

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _default_ip(self) -> str:
            return os.path.join(socket_dir, "kernel")

        async def _async_finish_shutdown(self, waittime: float | None = None, pollinterval: float = 0.1, restart: bool = False) -> None:
            # jupyter_client polls every 0.1 s for the kernel to exit; a stage waits for it each run.
            await super()._async_finish_shutdown(waittime, pollinterval=0.01, restart=restart)

    kernel = IPCKernelManager(kernel_name=kernel_name)
    try:
        run_sync(kernel.start_kernel)(cwd=str(root), env=env)
    except NoSuchKernel:
        raise NotebookError(
            f"{shown}: no Jupyter kernel named '{kernel_name}' is installed here "
            "(install ipykernel in this environment, or pass --kernel NAME)"
        ) from None
    except BaseException:
        supervise.stop_group(_process_group(kernel))  # a stop that came while it launched
        raise
    supervisor.attach(_process_group(kernel))
    return kernel


def _process_group(kernel: Any) -> int | None:
    process = getattr(getattr(kernel, "provisioner", None), "process", None)
    if process is None:
        return None
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _kernel_died(exc: BaseException) -> BaseException | None:
    seen = exc
    while seen is not None:
        if type(seen).__name__ == "DeadKernelError":
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _recorded(journal: str) -> set[str]:
    """The files the kernel recorded (relative to the root), from the run's journal."""
    with contextlib.suppress(OSError):
        return {line.strip() for line in Path(journal).read_text(encoding="utf-8").splitlines() if line.strip()}
    return set()


def _discard_recorded(root: Path, stage: str, journal: str) -> None:
    """Remove what a failed run recorded, and the stage's metrics and plots."""
    recorded = _recorded(journal)
    recorded.add(project.metrics_path(stage))
    for relative in recorded:
        target = (root / relative).resolve()
        if root in target.parents:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    shutil.rmtree(root / project.PLOTS_DIR / stage, ignore_errors=True)


# --- reading and normalising the executed notebook -------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None


def _is_ours(cell: dict[str, Any]) -> bool:
    """Cells papermill added: the injected parameters and its error markers."""
    tags = (cell.get("metadata") or {}).get("tags") or []
    return _INJECTED_TAG in tags or _ERROR_MARKER_TAG in tags


def _original_cell(executed: dict[str, Any], executed_index: int) -> tuple[int | None, str]:
    """Map a cell index of the executed notebook back to the user's notebook."""
    original = -1
    for index, cell in enumerate(executed.get("cells", [])):
        if not _is_ours(cell):
            original += 1
        if index == executed_index:
            return (None, "") if _is_ours(cell) else (original, params_mod.cell_source(cell))
    return None, ""


def _failed_cell(executed: dict[str, Any]) -> tuple[int | None, str, str]:
    """(index in the user's notebook, source, last line it wrote to stderr) of the cell that
    failed: the one with an error output, else the one papermill marked (a failure only
    printed to stderr, such as an unknown line magic's UsageError)."""
    original = -1
    marked: tuple[int | None, str, str] = (None, "", "")
    for cell in executed.get("cells", []):
        if _is_ours(cell):
            continue
        original += 1
        if any(out.get("output_type") == "error" for out in cell.get("outputs", []) or []):
            return original, params_mod.cell_source(cell), ""
        if marked[0] is None and ((cell.get("metadata") or {}).get("papermill") or {}).get("exception"):
            marked = (original, params_mod.cell_source(cell), _last_stderr_line(cell))
    return marked


def _last_stderr_line(cell: dict[str, Any]) -> str:
    text = "".join(
        "".join(out.get("text", "")) if isinstance(out.get("text"), list) else str(out.get("text", ""))
        for out in cell.get("outputs", []) or [] if out.get("output_type") == "stream" and out.get("name") == "stderr"
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
    return ""


def make_deterministic(nb: dict[str, Any], root: Path, source: Path | None = None) -> dict[str, Any]:
    """Drop wall-clock fields, make paths relative to the project root and give papermill's own
    cells stable ids, so the report does not depend on when or where the project ran.
    `source` is the notebook the user ran, recorded as papermill's input path (papermill saw a
    converted copy of a text notebook)."""
    papermill_meta = nb.get("metadata", {}).get("papermill")
    if isinstance(papermill_meta, dict):
        for key in _PAPERMILL_TIMING_KEYS:
            papermill_meta.pop(key, None)
        if source is not None:
            papermill_meta["input_path"] = str(source)
        for key in ("input_path", "output_path"):
            if papermill_meta.get(key):
                papermill_meta[key] = project.relpath(Path(papermill_meta[key]), root)
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        cell_papermill = meta.get("papermill")
        if isinstance(cell_papermill, dict):
            for key in _PAPERMILL_TIMING_KEYS:
                cell_papermill.pop(key, None)
        if "id" in cell and _is_ours(cell):
            tags = meta.get("tags") or []
            cell["id"] = "injected-parameters" if _INJECTED_TAG in tags else f"papermill-error-{index}"
    return nb


def _make_deterministic_file(report: Path, root: Path, source: Path | None = None) -> None:
    nb = _read_json(report)
    if nb is None:
        return
    atomic_write_text(report, json.dumps(make_deterministic(nb, root, source), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
