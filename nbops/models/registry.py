"""The model registry: immutable package versions and stage assignments, on any fsspec storage.

Layout under the registry root (a folder or an fsspec URL such as s3://bucket/models):

    NAME/VERSION/...        one package per version; complete once VERSION/.complete exists
    NAME/stages.json        {"stages": {stage: {version, assigned, action, reason}}, "history": [...]}
    NAME/.lock              serialises writers (local filesystems); names its holder; exists only
                            while a promotion holds it (or after one was killed: then it is free)

A version folder is built elsewhere and moved in with one rename (local) or uploaded with its
`.complete` marker last (object storage), so a crash leaves no half-package that counts;
stages.json is replaced atomically. Versions are never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core import project
from ..core._io import atomic_write_text, current_umask, dump_json
from ..core.exceptions import RegistryError

ENV_REGISTRY = "NBOPS_REGISTRY"
COMPLETE_MARKER = ".complete"
STAGES_FILE = "stages.json"
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")  # always fullmatch: `$` would accept "0.1.0\n"
#: How long a promotion waits for another one of the same model (it says so while it waits).
LOCK_TIMEOUT = 600.0


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 40 else f"{name[:20]!r}… ({len(name)} characters)"


def validate_name(name: str, what: str = "model name") -> str:
    if isinstance(name, str) and len(name) > project.MAX_NAME_LENGTH:
        raise RegistryError(
            f"{what} {_shown(name)} is too long: at most {project.MAX_NAME_LENGTH} characters "
            "(it becomes a folder and a file name)"
        )
    if not isinstance(name, str) or not project.is_valid_name(name):
        raise RegistryError(
            f"{what} {_shown(name) if isinstance(name, str) else repr(name)} is not allowed: use letters, digits, "
            "'.', '_' and '-' (no path separators, no '..', not starting with '.', no spaces or line breaks)"
        )
    return name


def is_version(text: str) -> bool:
    """'0.1.0' or 'v0.1.0': what NAME@… reads as a version, never as a stage."""
    return _SEMVER.fullmatch(text[1:] if text.startswith("v") else text) is not None


def validate_stage(stage: str) -> str:
    validate_name(stage, "stage name")
    if is_version(stage):
        raise RegistryError(
            f"stage name {stage!r} looks like a version: NAME@{stage} always means the version, so the stage could "
            "never be reached; choose a word such as 'canary'"
        )
    return stage


def parse_version(version: str) -> tuple[int, int, int]:
    match = _SEMVER.fullmatch(version[1:] if version.startswith("v") else version)
    if not match:
        raise RegistryError(f"version {version!r} is not of the form MAJOR.MINOR.PATCH (e.g. 0.2.0)")
    return int(match[1]), int(match[2]), int(match[3])


def bump(version: str | None, part: str = "minor") -> str:
    if version is None:
        return "0.1.0"
    major, minor, patch = parse_version(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    return f"{major}.{minor + 1}.0"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def default_root(project_root: Path, promote_config: dict[str, Any] | None = None) -> str:
    """NBOPS_REGISTRY, else params.yaml `promote.registry`, else <project>/registry."""
    configured = os.environ.get(ENV_REGISTRY) or (promote_config or {}).get("registry")
    if not configured:
        return str(project_root / "registry")
    configured = str(configured)
    if "://" in configured or os.path.isabs(configured):
        return configured
    return str(project_root / configured)


def project_registry(override: str | None = None, root: Path | None = None) -> Registry:
    """The registry of the project around the working directory (or `root`): `override` when
    given, else what `default_root` finds from params.yaml's `promote:` section."""
    if override:
        return Registry(override)
    from ..core.params import load_yaml

    root = root or project.find_root() or Path.cwd()
    config = load_yaml(root / project.PARAMS_FILE, shown=project.PARAMS_FILE).get("promote") or {}
    return Registry(default_root(root, config if isinstance(config, dict) else {}))


class Registry:
    """Package versions and stage assignments under one root (path or fsspec URL)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.root = str(root)
        self.fs, self.base = fsspec.core.url_to_fs(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.base = self.base.rstrip("/")

    def __repr__(self) -> str:
        return f"Registry({self.root!r})"

    def _path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    # --- reading -----------------------------------------------------------------------------

    def models(self) -> list[str]:
        if not self.fs.exists(self.base):
            return []
        names = []
        for entry in self.fs.ls(self.base, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and project.is_valid_name(name) and self.versions(name):
                names.append(name)
        return sorted(names)

    def versions(self, name: str) -> list[str]:
        """Complete versions of `name`, oldest first."""
        folder = self._path(validate_name(name))
        if not self.fs.exists(folder):
            return []
        found = []
        for entry in self.fs.ls(folder, detail=True):
            version = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and _SEMVER.fullmatch(version) and self.fs.exists(f"{entry['name'].rstrip('/')}/{COMPLETE_MARKER}"):
                found.append(version)
        return sorted(found, key=parse_version)

    def stages_doc(self, name: str) -> dict[str, Any]:
        path = self._path(validate_name(name), STAGES_FILE)
        if not self.fs.exists(path):
            return {"stages": {}, "history": []}
        try:
            with self.fs.open(path, "r", encoding="utf-8") as handle:
                return json.load(handle)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path}: not valid JSON ({exc}); restore it from the history of your storage") from None

    def stages(self, name: str) -> dict[str, str]:
        """{stage: version} currently assigned."""
        return {stage: entry["version"] for stage, entry in self.stages_doc(name).get("stages", {}).items()}

    def manifest(self, name: str, version: str) -> dict[str, Any]:
        path = self._path(validate_name(name), version, "manifest.json")
        if version not in self.versions(name):
            raise RegistryError(self._unknown_version(name, version))
        with self.fs.open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)

    def resolve(self, ref: str) -> tuple[str, str]:
        """NAME, NAME@VERSION, NAME@vVERSION or NAME@STAGE → (name, version)."""
        name, _, selector = ref.partition("@")
        validate_name(name)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.models()) or "none yet"
            raise RegistryError(f"no model '{name}' in the registry {self.root} (models: {known}); promote it first: `nbops promote {name}`")
        if not selector:
            return name, versions[-1]
        if is_version(selector):
            version = selector[1:] if selector.startswith("v") else selector
            if version not in versions:
                raise RegistryError(self._unknown_version(name, version))
            return name, version
        stages = self.stages(name)
        if selector not in stages:
            assigned = ", ".join(f"{s}={v}" for s, v in stages.items()) or "none"
            raise RegistryError(f"'{name}' has no version in stage '{selector}' (assigned: {assigned})")
        return name, stages[selector]

    def _unknown_version(self, name: str, version: str) -> str:
        return f"'{name}' has no version {version} (versions: {', '.join(self.versions(name)) or 'none'})"

    def local_path(self, name: str, version: str) -> Path:
        """A local folder holding the package (downloaded once for remote registries)."""
        if version not in self.versions(name):
            raise RegistryError(self._unknown_version(name, version))
        if self.local:
            return Path(self._path(name, version))
        cache = Path(tempfile.gettempdir()) / "nbops-registry-cache" / re.sub(r"[^A-Za-z0-9._-]", "_", self.root) / name / version
        if not (cache / COMPLETE_MARKER).exists():
            partial = cache.with_name(f".{version}-{uuid.uuid4().hex}")
            self.fs.get(self._path(name, version), str(partial), recursive=True)
            cache.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.replace(partial, cache)
        return cache

    # --- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, name: str, *, purpose: str = "", on_wait: Callable[[str], None] | None = None, timeout: float = LOCK_TIMEOUT,
    ) -> Iterator[None]:
        """Serialise writers of one model (a file lock on local registries).

        While another process holds it, `on_wait` gets a line saying who and since when (default:
        printed to stderr), as soon as waiting starts and again when anything changes. The lock
        file is removed on release, so a refused promotion leaves nothing in the registry.
        Object stores offer no portable lock; there a team should promote from one place (CI).
        """
        if not self.local:
            yield
            return
        from .lockfile import LockTimeout, hold

        folder = Path(self._path(validate_name(name)))
        lock_file = folder / ".lock"
        say = on_wait or _to_stderr
        root_existed = Path(self.base).exists()

        def waiting(holder: Any, waited: float) -> None:
            who = holder.describe() if holder is not None else "a process that has not said who it is"
            say(f"waiting for {lock_file} (another writer of '{name}' holds it): {who}; waited {waited:.0f} s so far")

        try:
            with hold(lock_file, purpose=purpose, timeout=timeout, on_wait=waiting):
                yield
        except LockTimeout as exc:
            who = exc.holder.describe() if exc.holder is not None else "a process that has not said who it is"
            raise RegistryError(
                f"{lock_file}: another writer of '{name}' held the lock for all of {exc.waited:.0f} s: {who}; "
                "if that process is stuck, stop it and try again"
            ) from None
        except OSError as exc:
            if exc.filename is None or not str(exc.filename).startswith(self.base):
                raise
            raise self._unwritable(exc) from None
        finally:
            if not root_existed:
                with contextlib.suppress(OSError):
                    Path(self.base).rmdir()  # only when empty: we created it for a promotion that did not publish

    def _unwritable(self, exc: OSError) -> RegistryError:
        return RegistryError(
            f"registry {self.root}: cannot write {exc.filename} ({exc.strerror or exc}); point NBOPS_REGISTRY, "
            "--registry or params.yaml promote.registry at a folder you can write"
        )

    def next_version(self, name: str, part: str = "minor") -> str:
        versions = self.versions(name)
        # A folder left by a crash between rename and marker still claims its number.
        taken = versions + self._claimed(name)
        latest = max(taken, key=parse_version) if taken else None
        return bump(latest, part)

    def _claimed(self, name: str) -> list[str]:
        folder = self._path(name)
        if not self.fs.exists(folder):
            return []
        return [e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(folder, detail=False) if _SEMVER.fullmatch(e.rstrip("/").rsplit("/", 1)[-1])]

    def build_dir(self, name: str) -> Path:
        """A private folder to build a package in, on the registry's filesystem when local so
        that publishing is one rename."""
        if self.local:
            parent = Path(self._path(validate_name(name)))
            try:
                parent.mkdir(parents=True, exist_ok=True)
                return _shared_mode(Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent)))
            except OSError as exc:
                raise self._unwritable(exc) from None
        return Path(tempfile.mkdtemp(prefix="nbops-package-"))

    def publish(self, name: str, version: str, built: Path) -> str:
        """Move a finished package folder in as NAME/VERSION; refuse to overwrite."""
        target = self._path(validate_name(name), version)
        if self.fs.exists(target):
            raise RegistryError(f"{target} already exists: versions are immutable")
        (built / COMPLETE_MARKER).write_text(now() + "\n", encoding="utf-8")
        if self.local:
            os.rename(built, target)  # atomic: the version appears whole or not at all
            return target
        marker = built / COMPLETE_MARKER
        tmp_marker = built.parent / f"{built.name}{COMPLETE_MARKER}"
        shutil.move(str(marker), tmp_marker)
        self.fs.put(str(built), target, recursive=True)
        self.fs.put(str(tmp_marker), f"{target}/{COMPLETE_MARKER}")  # last: only now the version counts
        shutil.rmtree(built, ignore_errors=True)
        tmp_marker.unlink(missing_ok=True)
        return self.fs.unstrip_protocol(target)  # s3://bucket/..., as the user named the registry

    def assign(self, name: str, version: str, stage: str, *, action: str = "assign", reason: str | None = None) -> dict[str, Any]:
        """Point `stage` at `version` (an earlier version is a rollback); history is kept."""
        validate_stage(stage)
        if version not in self.versions(name):
            raise RegistryError(self._unknown_version(name, version))
        doc = self.stages_doc(name)
        previous = doc.setdefault("stages", {}).get(stage, {}).get("version")
        entry = {"version": version, "assigned": now(), "action": action}
        if reason:
            entry["reason"] = reason
        doc["stages"][stage] = entry
        doc.setdefault("history", []).append({"stage": stage, "previous": previous, **entry})
        self._write_json(self._path(name, STAGES_FILE), doc)
        return entry

    def _write_json(self, path: str, data: Any) -> None:
        text = dump_json(data)
        if self.local:
            atomic_write_text(path, text)
        else:
            self.fs.pipe(path, text.encode("utf-8"))  # one object put: atomic on object stores

    def cleanup(self, name: str) -> None:
        """Remove build folders that a crashed promotion left behind."""
        if not self.local:
            return
        folder = Path(self._path(validate_name(name)))
        for leftover in folder.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in folder.glob(f".{STAGES_FILE}.*.tmp"):  # an atomic write cut short
            leftover.unlink(missing_ok=True)


def _shared_mode(folder: Path) -> Path:
    """mkdtemp makes 0700; a version folder should be as readable as any folder the user makes
    (a team sharing a registry needs to read each other's versions)."""
    folder.chmod(0o777 & ~current_umask())
    return folder


def _to_stderr(message: str) -> None:
    print(f"nbops: {message}", file=sys.stderr, flush=True)
