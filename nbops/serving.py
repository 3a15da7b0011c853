"""`nbops serve` and `nbops predict`: registry references resolved, then nbops.runtime does the work
(the same module every package wheel carries)."""

from __future__ import annotations

from typing import Any

from .exceptions import ModelFileError, ServeError


def load_packaged(ref: str, registry: str | None = None) -> Any:
    """The PackagedModel of NAME[@VERSION|@STAGE], sha256-verified."""
    from . import runtime
    from .registry import project_registry

    reg = project_registry(registry)
    name, version = reg.resolve(ref)
    try:
        return runtime.PackagedModel.load(reg.local_path(name, version))
    except runtime.PackageError as exc:
        raise ModelFileError(str(exc)) from None


def serve(ref: str, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None, registry: str | None = None,
          capture: str | None = None, sample: float = 1.0, capture_buffer: int | None = None,
          capture_flush: float | None = None) -> None:
    """Serve NAME[@VERSION|@STAGE]; with `capture` (a folder or fsspec URL) record a `sample` share
    of scored requests there (see nbops/runtime/capture.py)."""
    from . import runtime

    model = load_packaged(ref, registry)
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise ServeError("serving needs uvicorn: pip install 'nbops[serve]'") from None
    buffer = {} if capture_buffer is None else {"capture_buffer": capture_buffer}
    try:
        runtime.serve(model, host=host, port=port, token=token, capture=capture, sample=sample,
                      capture_flush=capture_flush, **buffer)
    except (runtime.PackageError, runtime.CaptureError) as exc:  # e.g. it no longer predicts its recorded sample here
        raise ServeError(str(exc)) from None
    except OSError as exc:  # the port is taken, the address is not this machine's...
        raise ServeError(exc.strerror or str(exc)) from None


def predict_csv(ref: str, input_path: str, output_path: str | None, *, registry: str | None = None) -> None:
    from . import runtime

    model = load_packaged(ref, registry)
    try:
        runtime.predict_csv(model, input_path, output_path)
    except (runtime.InputError, runtime.PackageError) as exc:
        raise ServeError(str(exc)) from None
