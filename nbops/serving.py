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
          follow: bool = True, poll: float = 1.0, shadow: str | None = None, shadow_queue: int = 1000) -> None:
    """Serve NAME[@VERSION|@STAGE]. A stage (NAME@production) is followed unless `follow` is False:
    each version the stage is given is loaded and checked beside the one serving, then switched to
    (runtime/follow.py; the stage is read every `poll` seconds). `shadow` (NAME@STAGE or
    NAME@VERSION) scores each request with a challenger too, off the request path (runtime/shadow.py)."""
    from . import runtime
    from .registry import project_registry

    if not poll > 0:
        raise ServeError(f"--poll {poll:g}: give a number of seconds above 0")
    if shadow_queue < 1:
        raise ServeError("--shadow-queue must be at least 1")
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise ServeError("serving needs uvicorn: pip install 'nbops[serve]'") from None
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
    try:
        runtime.serve(model, host=host, port=port, token=token, follower=follower, shadow=shadow_scorer)
    except runtime.PackageError as exc:  # e.g. it no longer predicts its recorded sample here
        raise ServeError(str(exc)) from None
    except OSError as exc:  # the port is taken, the address is not this machine's...
        raise ServeError(exc.strerror or str(exc)) from None


def stage_of(ref: str) -> str | None:
    """The stage NAME@STAGE names (None for NAME and NAME@VERSION)."""
    from .registry import _SEMVER

    _, _, selector = ref.partition("@")
    return selector if selector and not _SEMVER.match(selector.lstrip("v")) else None


def _shadow(reg: Any, ref: str, poll: float, queue_size: int) -> Any:
    """The challenger of `--shadow`: a followed stage (which may have no version yet) or a fixed version."""
    from . import runtime
    from .registry import validate_name

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
    from . import runtime

    model = load_packaged(ref, registry)
    try:
        runtime.predict_csv(model, input_path, output_path)
    except (runtime.InputError, runtime.PackageError) as exc:
        raise ServeError(str(exc)) from None
