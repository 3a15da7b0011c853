"""Follow a registry stage: serve the version a stage names, and switch when the stage moves.

The registry (nbops/models/registry.py owns it) is the contract between training and serving. This
module reads only what following one stage needs, and imports nothing of nbops:

    <root>/<name>/stages.json             {"stages": {"production": {"version": "0.2.0", ...}}, ...}
    <root>/<name>/<version>/.complete     a version counts only once this marker exists
    <root>/<name>/<version>/manifest.json and the model file it names

(tests/unit/test_follow.py checks this against nbops.models.registry, so the two cannot drift). The root
is a folder or an fsspec URL (s3://bucket/models; fsspec is imported only then).

A `Follower` polls stages.json every `interval` seconds, looking first at what is cheap — the
file's mtime, size and inode, or its ETag on object storage — and reading it only when that
changed. When the stage names another version, the follower fetches it (from object storage:
its manifest and model file only, into a local cache), loads it (sha256, trust policy) and warms
it up (its parity sample must give the recorded predictions) beside the version being served,
and only then hands it to `on_switch`: for the HTTP app, one reference swap. A version that
fails is not switched to: the failure is logged, kept for /health, and that version is tried
again only once the stage has moved away from it and back.

Switch latency, from the assignment to answers from the new version, is the wait for the next
poll (at most `interval`) + reading stages.json + fetching the version + loading + warming up;
`status()["last_switch"]` gives each part as measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .errors import PackageError, say, short
from .model import MANIFEST_FILE, PackagedModel

#: The registry's layout, as nbops.models.registry writes it (a test keeps the two equal).
STAGES_FILE = "stages.json"
COMPLETE_MARKER = ".complete"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

DEFAULT_INTERVAL = 1.0


def shown_root(root: str) -> str:
    """The root as logs and /health show it: without credentials a URL may carry (user:secret@)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", str(root))


class StageSource:
    """One stage of one model in a registry: the version it names, and that version's files."""

    def __init__(self, root: str | os.PathLike[str], name: str, stage: str, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        for what, value in (("model name", name), ("stage name", stage)):
            if not _NAME.match(value) or ".." in value:
                raise PackageError(f"{what} {value!r} is not allowed: use letters, digits, '.', '_' and '-'")
        self.root, self.name, self.stage = str(root), name, stage
        self.fs: Any = None  # an fsspec filesystem for remote roots; None for a local folder
        base = self.root
        if "://" in base:
            try:
                import fsspec
                from fsspec.implementations.local import LocalFileSystem
            except ImportError:
                raise PackageError(f"reading the registry {shown_root(base)} needs fsspec (and its driver, e.g. s3fs): pip install fsspec s3fs") from None
            try:
                fs, base = fsspec.core.url_to_fs(base)
            except (ImportError, ValueError) as exc:
                raise PackageError(f"cannot open the registry {shown_root(self.root)}: {short(exc, 200)}") from None
            if not isinstance(fs, LocalFileSystem):
                self.fs = fs
        self.base = base.rstrip("/") or "/"
        cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "nbops-follow-cache"
        self.cache = cache / re.sub(r"[^A-Za-z0-9._-]", "_", shown_root(self.root)) / name

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.stage}"

    def _path(self, *parts: str) -> str:
        return "/".join([self.base, self.name, *parts])

    def marker(self) -> Any:
        """What changes whenever stages.json is replaced (None: nothing cheap to compare; read it)."""
        path = self._path(STAGES_FILE)
        if self.fs is None:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                return ("missing",)
            return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self.fs.invalidate_cache(path)  # fsspec caches listings and infos: a poll must see the store
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return ("missing",)
        tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        return None if tag is None else (str(tag), info.get("size"))

    def assigned(self) -> str | None:
        """The version the stage names now (None: no such stage assigned yet)."""
        path = self._path(STAGES_FILE)
        try:
            if self.fs is None:
                text = Path(path).read_text(encoding="utf-8")
            else:
                text = self.fs.cat_file(path).decode("utf-8")
        except FileNotFoundError:
            return None
        try:
            entry = (json.loads(text).get("stages") or {}).get(self.stage)
        except (ValueError, AttributeError) as exc:
            raise PackageError(f"{shown_root(path)}: not a stages file ({short(exc, 120)})") from None
        if entry is None:
            return None
        version = entry.get("version") if isinstance(entry, dict) else None
        if not isinstance(version, str) or not _VERSION.match(version):
            raise PackageError(f"{shown_root(path)}: stage {self.stage!r} names no valid version ({entry!r:.80})")
        return version

    def fetch(self, version: str) -> Path:
        """A local folder holding the version's manifest and model file. Local registries: the
        version folder itself. Remote ones: those two files, downloaded once into the cache
        (the sha256 check at load time covers the copy). PackageError for an incomplete version;
        OSError when the storage cannot be reached."""
        if not _VERSION.match(version):
            raise PackageError(f"{version!r} is not a version (MAJOR.MINOR.PATCH)")
        if self.fs is None:
            folder = Path(self._path(version))
            if not (folder / COMPLETE_MARKER).is_file():
                raise PackageError(f"{folder}: not a complete version of '{self.name}' (no {COMPLETE_MARKER} marker)")
            return folder
        cached = self.cache / version
        if (cached / COMPLETE_MARKER).is_file():
            return cached
        remote = self._path(version)
        if not self.fs.exists(f"{remote}/{COMPLETE_MARKER}"):
            raise PackageError(f"{shown_root(self.root)}/{self.name}/{version}: not a complete version (no {COMPLETE_MARKER} marker)")
        self.cache.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.cache))
        try:
            manifest_bytes = self.fs.cat_file(f"{remote}/{MANIFEST_FILE}")
            (partial / MANIFEST_FILE).write_bytes(manifest_bytes)
            try:
                model_file = str(json.loads(manifest_bytes).get("model_file") or "")
            except (ValueError, AttributeError):
                model_file = ""  # PackagedModel.load names what is wrong with the manifest
            if model_file and Path(model_file).name == model_file and model_file not in (".", ".."):
                self.fs.get_file(f"{remote}/{model_file}", str(partial / model_file))
            (partial / COMPLETE_MARKER).write_text("fetched\n", encoding="utf-8")
            try:
                os.replace(partial, cached)
            except OSError:  # another process fetched it first
                pass
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return cached


class Follower:
    """Keeps a stage's assigned version serving: see the module's docstring.

    `load_current()` loads the version assigned now (for the server's start); `start(on_switch)`
    then polls in a daemon thread and calls `on_switch(model)` with each new version once it is
    loaded and checked; `poll()` does one round (tests call it directly); `status()` is for /health.
    """

    def __init__(self, source: StageSource, *, interval: float = DEFAULT_INTERVAL, n_jobs: int | None = 1,
                 log: Callable[[str], None] | None = None, required: bool = True) -> None:
        if not interval > 0:
            raise PackageError(f"the poll interval must be above 0 seconds, got {interval!r}")
        self.source, self.interval, self.n_jobs, self.required = source, float(interval), n_jobs, required
        self.log = log or say
        self.version: str | None = None  # the version being served
        self.assigned: str | None = None  # the version the stage named at the last poll
        self.failed: dict[str, Any] | None = None  # the last version that failed its checks, and why
        self.poll_error: str | None = None  # why the last poll could not read the registry
        self.switches = 0
        self.last_switch: dict[str, Any] | None = None
        self.polls = 0
        self._marker: Any = object()
        self._refused: str | None = None  # a version that failed: not tried again while still assigned
        self._on_switch: Callable[[PackagedModel], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one poll at a time (the thread's and a test's)

    @property
    def ref(self) -> str:
        return self.source.ref

    # -- loading

    def load_current(self) -> PackagedModel | None:
        """The version the stage names now, loaded and warmed up. PackageError when it fails its
        checks, or when nothing is assigned and the follower is `required` (else None: the first
        assignment will be switched to)."""
        self._marker = self.source.marker()
        version = self.source.assigned()
        self.assigned = version
        if version is None:
            if self.required:
                raise PackageError(f"{self.ref}: no version is assigned to stage '{self.source.stage}' in {shown_root(self.source.root)}")
            return None
        model, _ = self._load(version)
        self.version = version
        return model

    def _load(self, version: str) -> tuple[PackagedModel, dict[str, float]]:
        started = time.perf_counter()
        folder = self.source.fetch(version)
        fetched = time.perf_counter()
        model = self._check(folder, version)
        loaded = time.perf_counter()
        return model, {"fetch": fetched - started, "load_and_warmup": loaded - fetched}

    def _check(self, folder: Path, version: str) -> PackagedModel:
        """Load (sha256, trust policy) and warm up (parity sample) a fetched version; PackageError
        says why it must not be served."""
        try:
            model = PackagedModel.load(folder, n_jobs=self.n_jobs)
            if (model.name, model.version) != (self.source.name, version):
                raise PackageError(f"{folder / MANIFEST_FILE}: the manifest names {model.name} {model.version}, "
                                   f"not {self.source.name} {version} as its registry folder does")
            model.warmup()  # PackageError when it does not predict its recorded sample here
        except PackageError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the model raised predicting its sample
            raise PackageError(f"{folder}: {type(exc).__name__} while loading or warming up: {short(exc, 200)}") from None
        return model

    # -- polling

    def start(self, on_switch: Callable[[PackagedModel], None]) -> None:
        """Poll in a daemon thread until `stop()`; `on_switch(model)` gets each checked new version."""
        self._on_switch = on_switch
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"nbops-follow {self.ref}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one poll
                self._note_poll_error(f"{type(exc).__name__}: {short(exc, 200)}")

    def poll(self, on_switch: Callable[[PackagedModel], None] | None = None) -> bool:
        """One round: read the stage (if it changed), and switch to a new version that passes its
        checks. True when it switched."""
        with self._lock:
            return self._poll(on_switch or self._on_switch)

    def _poll(self, on_switch: Callable[[PackagedModel], None] | None) -> bool:
        self.polls += 1
        detected = time.perf_counter()
        try:
            marker = self.source.marker()
            if marker is not None and marker == self._marker:
                return False
            version = self.source.assigned()
        except Exception as exc:  # noqa: BLE001 - storage unreachable, stages.json unreadable: try again
            self._note_poll_error(_reason(exc))
            return False
        read = time.perf_counter()
        self.assigned = version
        if version != self._refused:
            self._refused = None
        if version is None or version == self.version or version == self._refused:
            self._marker = marker
            self._reads_again()
            return False
        try:
            folder = self.source.fetch(version)
        except PackageError as exc:  # not a complete version (yet): look again at the next poll
            self._note_poll_error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - could not fetch it: try again at the next poll
            self._note_poll_error(f"fetching {version}: {_reason(exc)}")
            return False
        fetched = time.perf_counter()
        self._marker = marker
        self._reads_again()
        try:
            model = self._check(folder, version)
        except PackageError as exc:  # it fails its checks: keep serving what we serve
            self._refused = version
            self.failed = {"version": version, "error": str(exc), "at": _utc_now()}
            serving = f"still serving {self.version}" if self.version else "nothing served yet"
            self.log(f"{self.ref} = {version}: not switched to, it failed its checks: {exc}; {serving}")
            return False
        seconds = {"read": read - detected, "fetch": fetched - read, "load_and_warmup": time.perf_counter() - fetched}
        previous = self.version
        if on_switch is not None:
            on_switch(model)
        self.version = version
        self.switches += 1
        seconds["total"] = time.perf_counter() - detected
        self.last_switch = {"from": previous, "to": version, "at": _utc_now(),
                            "seconds": {k: round(v, 4) for k, v in seconds.items()}}
        parts = ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items() if k != "total")
        self.log(f"{self.ref}: switched {previous or '(none)'} → {version} in {seconds['total']:.2f} s after the poll saw it ({parts})")
        del model
        release_memory()
        return True

    def _reads_again(self) -> None:
        if self.poll_error is not None:
            self.log(f"{self.ref}: the registry reads again")
            self.poll_error = None

    def _note_poll_error(self, message: str) -> None:
        if message != self.poll_error:
            self.log(f"{self.ref}: cannot read the registry {shown_root(self.source.root)} ({message}); serving {self.version} meanwhile")
        self.poll_error = message

    def status(self) -> dict[str, Any]:
        """What /health shows of the stage being followed."""
        return {
            "ref": self.ref, "registry": shown_root(self.source.root), "poll_seconds": self.interval,
            "assigned": self.assigned, "serving": self.version, "switches": self.switches,
            "last_switch": self.last_switch, "failed": self.failed, "poll_error": self.poll_error,
        }


def release_memory() -> None:
    """Hand the heap pages a replaced model freed back to the system: glibc keeps them otherwise,
    and a process that switches often would look as if it grew. The model itself is freed by
    reference counting once the last request holding it has finished; a full `gc.collect()` is not
    run here, as it would hold the interpreter lock for ~0.4 s in a server that imported
    scikit-learn, stalling the requests it is serving (the call below releases that lock)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {short(exc, 200)}" if not isinstance(exc, (OSError, PackageError)) else short(exc, 200)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
