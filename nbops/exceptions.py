"""Errors nbops raises, each written for the person who has to fix the problem.

    NbopsError
    ├── ProjectError                  no project root, unreadable dvc.yaml
    │   └── StageError                a dvc.yaml stage that cannot be written as asked
    ├── ParamsError (ValueError)      params.yaml syntax, unknown names, wrong types
    ├── NotebookError                 unreadable notebook, no `parameters` cell
    ├── ExecutionError                a cell raised; carries papermill's fields
    │   └── KernelDiedError           the kernel process died mid-cell
    ├── RecordError                   bad arguments to log_metric / log_plot / save_model
    ├── ModelFileError                a model file that fails its hash or its type check
    ├── PromotionError                gates refused a promotion; carries every failure
    ├── RegistryError                 unknown model or version, bad names, lock timeouts
    ├── ServeError                    server configuration problems
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


class RecordError(ValueError, NbopsError):
    """A recording call (log_metric, log_plot, save_model) got arguments it cannot record."""


class ModelFileError(NbopsError):
    """A model file does not match its recorded hash, or holds types nbops will not load."""


class PromotionError(NbopsError):
    """A promotion was refused; `failures` lists every gate that failed, one line each."""

    def __init__(self, message: str, failures: list[str] | None = None, result: Any = None) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.result = result  # the PromotionResult, when the gates ran


class RegistryError(NbopsError):
    """A registry operation was asked for something that does not exist or is not allowed."""


class ServeError(NbopsError):
    """The model server cannot start as configured."""


class DispatchError(NbopsError):
    """A repository_dispatch event could not be sent; the message never holds the token."""
