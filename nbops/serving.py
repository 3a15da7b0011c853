"""`nbops serve` and `nbops predict`: registry references resolved, then nbops.runtime does the work
(the same module every package wheel carries). What keeps a model from loading or the server
from listening (a missing file, a port in use, no uvicorn) is one line naming it."""

from __future__ import annotations

import errno
from typing import Any

from .exceptions import ModelFileError, ServeError


def load_packaged(ref: str, registry: str | None = None) -> Any:
    """The PackagedModel of NAME[@VERSION|@STAGE], sha256-verified."""
    from . import runtime
    from .registry import project_registry

    reg = project_registry(registry)
    try:
        name, version = reg.resolve(ref)
        return runtime.PackagedModel.load(reg.local_path(name, version))
    except runtime.PackageError as exc:
        raise ModelFileError(str(exc)) from None
    except OSError as exc:
        raise ModelFileError(f"{ref}: cannot load it from the registry {reg.root} ({_os_error(exc)})") from None


def serve(ref: str, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None, registry: str | None = None,
          capture: str | None = None, sample: float = 1.0, capture_buffer: int | None = None,
          capture_flush: float | None = None) -> None:
    """Serve NAME[@VERSION|@STAGE]; with `capture` (a folder or fsspec URL) record a `sample` share
    of scored requests there (see nbops/runtime/capture.py)."""
    from . import runtime
    from .extras import require

    require("uvicorn", "serve", "serving a model")
    model = load_packaged(ref, registry)
    buffer = {} if capture_buffer is None else {"capture_buffer": capture_buffer}
    try:
        runtime.serve(model, host=host, port=port, token=token, capture=capture, sample=sample,
                      capture_flush=capture_flush, **buffer)
    except (runtime.PackageError, runtime.CaptureError) as exc:  # e.g. it no longer predicts its recorded sample here
        raise ServeError(str(exc)) from None
    except OSError as exc:  # the runtime names host:port; EADDRINUSE, EACCES (a port below 1024), bad host
        hint = f"; choose another with --port, or stop what uses {port}" if exc.errno == errno.EADDRINUSE else ""
        raise ServeError(f"{ref}: {_os_error(exc)}{hint}") from None


def predict_csv(ref: str, input_path: str, output_path: str | None, *, registry: str | None = None) -> None:
    from . import runtime

    model = load_packaged(ref, registry)
    try:
        runtime.predict_csv(model, input_path, output_path)
    except (runtime.InputError, runtime.PackageError) as exc:
        raise ServeError(str(exc)) from None
    except BrokenPipeError:
        raise  # the reader went away (`| head`): cli.main ends quietly
    except OSError as exc:
        raise ServeError(f"{output_path or 'stdout'}: cannot write the predictions ({_os_error(exc)})") from None


def _os_error(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return f"{text}: {exc.filename}" if exc.filename and str(exc.filename) not in text else text
