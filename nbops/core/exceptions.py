"""Errors nbops raises, each written for the person who has to fix the problem.

    NbopsError
    ├── ProjectError                  no project root, unreadable dvc.yaml
    │   └── StageError                a dvc.yaml stage that cannot be written as asked
    ├── ParamsError (ValueError)      params.yaml syntax, unknown names, wrong types
    ├── NotebookError                 unreadable notebook, no `parameters` cell
    ├── ExecutionError                a cell raised; carries papermill's fields
    │   ├── KernelDiedError           the kernel process died mid-cell
    │   └── RunStoppedError           a time limit, SIGTERM, SIGHUP or Ctrl-C stopped the run
    ├── RecordError                   bad arguments to log_metric / log_plot / save_model
    ├── ChecksFailed                  data checks found bad rows (log_checks); the stage stops
    ├── ModelFileError                a model file that fails its hash or its type check
    ├── PromotionError                gates refused a promotion; carries every failure
    ├── RegistryError                 unknown model or version, bad names, lock timeouts
    ├── ServeError                    server configuration problems
    ├── MonitorError                  `nbops monitor` input it cannot read: capture, data, labels, profile
    ├── MissingExtraError (ImportError)  an optional dependency is not installed; names the extra
    └── DispatchError                 a CI event (repository_dispatch) that could not be sent

`cli.main` prints `str(error)` of an NbopsError without a traceback (NBOPS_DEBUG=1 shows it).
This module imports nothing of nbops: everything else may import it.
"""

from __future__ import annotations

from typing import Any


class NbopsError(Exception):
    """Base of every error nbops raises on purpose; its message is meant for the user."""

    exit_code = 1


class ProjectError(NbopsError):
    """The project layout (root, dvc.yaml, paths) is not what nbops needs."""


class StageError(ProjectError):
    """`nbops stage add` cannot write the stage: a name taken by another stage, a default
    params.yaml cannot hold."""


class ParamsError(ValueError, NbopsError):
    """params.yaml cannot be read, or its values do not fit the notebook's parameters."""


class NotebookError(NbopsError):
    """A notebook cannot be read or lacks what nbops needs (a `parameters` cell)."""


class ExecutionError(NbopsError):
    """A cell raised while the notebook ran; the partial report was written anyway."""

    def __init__(
        self,
        message: str,
        *,
        notebook: str,
        report: str | None,
        cell_index: int | None,
        cell_source: str = "",
        ename: str = "",
        evalue: str = "",
    ) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.report = report
        self.cell_index = cell_index
        self.cell_source = cell_source
        self.ename = ename
        self.evalue = evalue


class KernelDiedError(ExecutionError):
    """The kernel process exited while a cell was running (crash, os._exit, out of memory)."""


class RunStoppedError(ExecutionError):
    """The run was stopped from outside or by its time limit; the kernel's processes were
    stopped and what the run recorded removed. `reason` is "timeout" or the signal's name;
    the exit code is 128 + the signal's number, as a shell reports a signalled command."""

    def __init__(self, message: str, *, reason: str, signum: int | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.reason = reason
        if signum is not None:
            self.exit_code = 128 + signum


class RecordError(ValueError, NbopsError):
    """A recording call (log_metric, log_plot, save_model) got arguments it cannot record."""


class ChecksFailed(NbopsError):
    """Data checks found bad rows (`nbops.log_checks`): raised in the stage's kernel to stop the
    pipeline. `nbops run` keeps what the checks recorded (metrics, the checks plot) for review."""


class ModelFileError(NbopsError):
    """A model file does not match its recorded hash, or holds types nbops will not load."""


class PromotionError(NbopsError):
    """A promotion was refused; `failures` lists every gate that failed, one line each."""

    def __init__(self, message: str, failures: list[str] | None = None, result: Any = None) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.result = result  # the PromotionResult, when the gates ran

    def _render_traceback_(self) -> list[str]:
        """In a notebook cell (IPython asks for this instead of a traceback): the promotion card,
        failed gates in red, then the error in one line per failure — no frames of nbops."""
        if self.result is not None and not getattr(self, "_card_shown", False):
            self._card_shown = True  # IPython asks twice: to show the error, then to store it
            try:
                from IPython.display import display

                display(self.result)  # a PromotionResult renders as the promotion card
            except ImportError:  # pragma: no cover - IPython asks for this, so it is there
                pass
        return [f"\x1b[0;31mPromotionError\x1b[0m: {line}" if i == 0 else line for i, line in enumerate(str(self).splitlines())]


class RegistryError(NbopsError):
    """A registry operation was asked for something that does not exist or is not allowed."""


class ServeError(NbopsError):
    """The model server cannot start as configured."""


class MonitorError(NbopsError):
    """`nbops monitor` was given input it cannot use: no profile, an unreadable capture part,
    labels without the columns it needs, a bad threshold in params.yaml."""


class MissingExtraError(ImportError, NbopsError):
    """An optional dependency is not installed; the message says which extra installs it."""


class DispatchError(NbopsError):
    """A repository_dispatch event could not be sent; the message never holds the token."""
