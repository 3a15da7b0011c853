"""`nbops serve` and `nbops predict`: registry references resolved, then nbops.runtime does the work
(the same module every package wheel carries). What keeps a model from loading or the server
from listening (a missing file, a port in use, no uvicorn) is one line naming it."""

from __future__ import annotations

import errno
from typing import Any

from ..core.exceptions import ModelFileError, ServeError


def load_packaged(ref: str, registry: str | None = None) -> Any:
    """The PackagedModel of NAME[@VERSION|@STAGE], sha256-verified."""
    from .. import runtime
    from ..models.registry import project_registry

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
          capture_flush: float | None = None, follow: bool = True, poll: float = 1.0, shadow: str | None = None,
          shadow_queue: int = 1000) -> None:
    """Serve NAME[@VERSION|@STAGE]. A stage (NAME@production) is followed unless `follow` is False:
    each version the stage is given is loaded and checked beside the one serving, then switched to
    (runtime/follow.py; the stage is read every `poll` seconds). `shadow` (NAME@STAGE or
    NAME@VERSION) scores each request with a challenger too, off the request path (runtime/shadow.py).
    With `capture` (a folder or fsspec URL), a `sample` share of scored requests is recorded there
    (runtime/capture.py), the challenger's answers beside the champion's."""
    from .. import runtime
    from ..core.extras import require
    from ..models.registry import project_registry

    if not poll > 0:
        raise ServeError(f"--poll {poll:g}: give a number of seconds above 0")
    if shadow_queue < 1:
        raise ServeError("--shadow-queue must be at least 1")
    require("uvicorn", "serve", "serving a model")
    reg = project_registry(registry)
    name, version = reg.resolve(ref)  # a clear error for an unknown model, version or stage
    stage = stage_of(ref)
    follower = shadow_scorer = None
    try:
        if stage and follow:
            follower = runtime.Follower(runtime.StageSource(reg.root, name, stage), interval=poll)
            model = follower.load_current()
        else:
            model = runtime.PackagedModel.load(reg.local_path(name, version))
        if shadow:
            shadow_scorer = _shadow(reg, shadow, poll, shadow_queue)
    except runtime.PackageError as exc:
        raise ModelFileError(str(exc)) from None
    except OSError as exc:
        raise ModelFileError(f"{ref}: cannot load it from the registry {reg.root} ({_os_error(exc)})") from None
    buffer = {} if capture_buffer is None else {"capture_buffer": capture_buffer}
    try:
        runtime.serve(model, host=host, port=port, token=token, capture=capture, sample=sample,
                      capture_flush=capture_flush, follower=follower, shadow=shadow_scorer, **buffer)
    except (runtime.PackageError, runtime.CaptureError) as exc:  # e.g. it no longer predicts its recorded sample here
        raise ServeError(str(exc)) from None
    except OSError as exc:  # the runtime names host:port; EADDRINUSE, EACCES (a port below 1024), bad host
        hint = f"; choose another with --port, or stop what uses {port}" if exc.errno == errno.EADDRINUSE else ""
        raise ServeError(f"{ref}: {_os_error(exc)}{hint}") from None


def stage_of(ref: str) -> str | None:
    """The stage NAME@STAGE names (None for NAME and NAME@VERSION)."""
    from ..models.registry import _SEMVER

    _, _, selector = ref.partition("@")
    return selector if selector and not _SEMVER.match(selector.lstrip("v")) else None


def _shadow(reg: Any, ref: str, poll: float, queue_size: int) -> Any:
    """The challenger of `--shadow`: a followed stage (which may have no version yet) or a fixed version."""
    from .. import runtime
    from ..models.registry import validate_name

    name = validate_name(ref.partition("@")[0])
    stage = stage_of(ref)
    if stage:
        follower = runtime.Follower(runtime.StageSource(reg.root, name, stage), interval=poll, required=False)
        return runtime.Shadow(follower=follower, model=follower.load_current(), queue_size=queue_size)
    _, version = reg.resolve(ref)
    model = runtime.PackagedModel.load(reg.local_path(name, version), n_jobs=1)
    model.warmup()
    return runtime.Shadow(model=model, queue_size=queue_size)


def predict_csv(ref: str, input_path: str, output_path: str | None, *, registry: str | None = None) -> None:
    from .. import runtime

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
