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
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import params as params_mod
from . import project, record
from ._io import atomic_write_text
from .portability import absolute_paths_in_outputs
from .exceptions import ExecutionError, KernelDiedError, NotebookError, ProjectError

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
) -> RunResult:
    """Execute `notebook` with the params.yaml section of `stage` (default: the notebook's stem).

    `parameters` override params.yaml values (the CLI's `-p`); both are checked against the
    notebook's `parameters` cell. Raises ParamsError/NotebookError before anything runs, and
    ExecutionError (KernelDiedError) after writing the partial report when a cell fails.
    """
    notebook = Path(notebook)
    if not notebook.is_file():
        raise NotebookError(f"{notebook}: notebook not found")
    root_path = Path(root) if root else (project.find_root(notebook) or Path.cwd())
    root_path = root_path.resolve()
    nb_abs = notebook.resolve()
    shown = _display_path(nb_abs, root_path)
    stage = stage or nb_abs.stem
    if not project.is_valid_name(stage):
        raise ProjectError(f"stage name {stage!r} must be a plain name (letters, digits, . _ -)")

    nb = params_mod.load_notebook(nb_abs)  # a jupytext text notebook (.py) runs exactly as read here
    values = resolve_parameters(nb_abs, stage, root_path, parameters or {}, shown=shown, nb=nb)
    report = Path(output) if output else root_path / project.report_path(stage)
    if not report.is_absolute():
        report = Path.cwd() / report
    report.parent.mkdir(parents=True, exist_ok=True)

    journal_dir = root_path / ".nbops"
    journal_dir.mkdir(exist_ok=True)
    fd, journal = tempfile.mkstemp(prefix=f"journal-{stage}-", suffix=".txt", dir=journal_dir)
    os.close(fd)
    env = {
        record.ENV_STAGE: stage,
        record.ENV_ROOT: str(root_path),
        record.ENV_JOURNAL: journal,
    }
    running: dict[str, int] = {}

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        running["index"] = cell_index

    try:
        with _environment(env):
            _execute(nb_abs, nb, report, values, root_path, quiet, kernel_name, on_cell_execute, shown)
    except ExecutionError as exc:
        if exc.ename != CHECKS_FAILED:
            _discard_recorded(root_path, stage, journal)
            raise
        kept = _recorded(journal)
        raise ExecutionError(
            f"{shown}: data checks failed — {str(exc.evalue).strip().splitlines()[0]} — "
            f"the findings are in {', '.join(sorted(kept)) or project.metrics_path(stage)}; "
            f"partial report: {_display_path(Path(exc.report or report), Path.cwd())}",
            notebook=exc.notebook, report=exc.report, cell_index=exc.cell_index, cell_source=exc.cell_source,
            ename=exc.ename, evalue=exc.evalue,
        ) from None
    except BaseException as exc:
        _discard_recorded(root_path, stage, journal)
        died = _kernel_died(exc)
        if died is None:
            raise
        executed = _read_json(report)
        index = running.get("index")
        cell_index, source = _original_cell(executed, index) if executed and index is not None else (None, "")
        where = f"cell {cell_index + 1} (`{_first_line(source)}`)" if cell_index is not None else "a cell"
        _make_deterministic_file(report, root_path, nb_abs)
        raise KernelDiedError(
            f"{shown}: the kernel died while running {where} — a crash, os._exit() or running out of memory; "
            f"partial report: {_display_path(report, Path.cwd())}",
            notebook=shown, report=str(report), cell_index=cell_index, cell_source=source,
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(journal)

    executed = _read_json(report) or {}
    shown_report = _display_path(report, root_path)
    warnings = [found.describe(shown_report) for found in absolute_paths_in_outputs(executed, root_path)]
    return RunResult(stage, nb_abs, report, values, record.read_records(executed), warnings)


def resolve_parameters(
    notebook: Path, stage: str, root: Path, overrides: dict[str, Any], *, shown: str | None = None,
    nb: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The values to inject: the stage's params.yaml section, then `overrides`, both checked."""
    shown = shown or str(notebook)
    nb = nb if nb is not None else params_mod.load_notebook(notebook)
    cell = params_mod.require_parameters_cell(nb, shown)
    params_file = root / project.PARAMS_FILE
    section = params_mod.stage_section(
        params_mod.load_yaml(params_file, shown=_display_path(params_file, Path.cwd())), stage, project.PARAMS_FILE
    )
    params_mod.check_values(section, cell.parameters, notebook=shown, origin=f"{project.PARAMS_FILE} section '{stage}'")
    params_mod.check_values(overrides, cell.parameters, notebook=shown, origin="-p")
    return {**section, **overrides}


def _execute(
    notebook: Path, nb: dict[str, Any], report: Path, values: dict[str, Any], root: Path, quiet: bool,
    kernel_name: str | None, on_cell_execute: Any, shown: str,
) -> None:
    from jupyter_core.utils import run_sync

    socket_dir = tempfile.mkdtemp(prefix="nbops-kernel-")
    # The kernel boots (~0.7 s) while papermill imports: start it first, hand it to papermill.
    kernel = _start_kernel(kernel_name or _kernelspec_name(nb), root, socket_dir, shown)
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
    try:
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
                on_cell_execute=on_cell_execute,
            )
        except PapermillExecutionError as exc:
            _make_deterministic_file(report, root, notebook)
            executed = _read_json(report) or {}
            cell_index, source = _failed_cell(executed)
            where = f"cell {cell_index + 1} (`{_first_line(source)}`)" if cell_index is not None else "a cell"
            evalue = str(exc.evalue).strip().splitlines()[0] if str(exc.evalue).strip() else ""
            raise ExecutionError(
                f"{shown} failed in {where}: {exc.ename}: {evalue} — "
                f"partial report: {_display_path(report, Path.cwd())}",
                notebook=shown, report=str(report), cell_index=cell_index, cell_source=source,
                ename=exc.ename, evalue=str(exc.evalue),
            ) from None
    finally:
        # Graceful: the kernel's interpreter exits normally, so files a cell left open are flushed.
        with contextlib.suppress(Exception):
            run_sync(kernel.shutdown_kernel)()
        shutil.rmtree(socket_dir, ignore_errors=True)
    _make_deterministic_file(report, root, notebook)


def _kernelspec_name(nb: dict[str, Any]) -> str:
    return ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name") or "python3"


def _start_kernel(kernel_name: str, root: Path, socket_dir: str, shown: str) -> Any:
    """Launch the kernel in the project root, talking over Unix sockets in a private folder
    rather than unencrypted localhost TCP ports that other users of the machine could reach."""
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
        run_sync(kernel.start_kernel)(cwd=str(root))
    except NoSuchKernel:
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise NotebookError(
            f"{shown}: no Jupyter kernel named '{kernel_name}' is installed here "
            "(install ipykernel in this environment, or pass --kernel NAME)"
        ) from None
    return kernel


def _kernel_died(exc: BaseException) -> BaseException | None:
    seen = exc
    while seen is not None:
        if type(seen).__name__ == "DeadKernelError":
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the kernel that papermill starts (it inherits our environment)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


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


def _failed_cell(executed: dict[str, Any]) -> tuple[int | None, str]:
    original = -1
    for cell in executed.get("cells", []):
        if _is_ours(cell):
            continue
        original += 1
        if any(out.get("output_type") == "error" for out in cell.get("outputs", []) or []):
            return original, params_mod.cell_source(cell)
    return None, ""


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
                papermill_meta[key] = _display_path(Path(papermill_meta[key]), root)
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


def _display_path(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
