"""A file lock that names its holder and leaves no file behind (stdlib only).

`hold(path)` takes an exclusive `flock` on `path`, then writes into it who holds it: pid, host,
command, what for and since when. A waiter reads that and reports it while it waits. The kernel
drops a `flock` when its process dies, however it dies, so a killed holder never blocks anyone:
the next process takes the lock and overwrites the stale description.

Releasing removes the file (and its folder, when that is left empty) while still holding the
lock. A waiter may by then have opened the old file; it gets the lock on an unlinked inode, sees
that `path` is no longer that file, and tries again — so two processes never both hold `path`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

#: How often a waiter retries, and how often it repeats that it is still waiting.
POLL_SECONDS = 0.1
REPEAT_SECONDS = 30.0


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder wrote it into the lock file."""

    pid: int | None
    host: str
    command: str
    purpose: str
    since: str  # ISO 8601, UTC

    def describe(self, now: float | None = None) -> str:
        """'pid 4242 on host build-1 since 13:04:05 UTC (12 s ago): promote m → staging (`nbops promote m`)'"""
        held_for = ""
        try:
            started = _dt.datetime.fromisoformat(self.since)
            seconds = (now if now is not None else time.time()) - started.timestamp()
            held_for = f" since {started.strftime('%H:%M:%S')} UTC ({max(seconds, 0):.0f} s ago)"
        except ValueError:
            pass
        what = f": {self.purpose}" if self.purpose else ""
        command = f" (`{self.command}`)" if self.command else ""
        return f"pid {self.pid} on host {self.host}{held_for}{what}{command}"


class LockTimeout(Exception):
    """The lock stayed held for the whole timeout; `holder` is who held it last (None: unknown)."""

    def __init__(self, path: Path, holder: Holder | None, waited: float) -> None:
        super().__init__(f"{path}: still held after {waited:.0f} s")
        self.path, self.holder, self.waited = path, holder, waited


def read_holder(path: str | os.PathLike[str]) -> Holder | None:
    """The holder described in `path`, or None (no file, or not written yet)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Holder(
            pid=int(data["pid"]), host=str(data.get("host", "?")), command=str(data.get("command", "")),
            purpose=str(data.get("purpose", "")), since=str(data.get("since", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _command() -> str:
    words = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    text = " ".join(words)
    return text if len(text) <= 200 else text[:199] + "…"


@contextlib.contextmanager
def hold(
    path: str | os.PathLike[str],
    *,
    purpose: str = "",
    timeout: float = 600.0,
    on_wait: Callable[[Holder | None, float], None] | None = None,
) -> Iterator[None]:
    """Hold the lock `path` (its folder is created if needed) for the `with` block.

    While another process holds it, `on_wait(holder, waited_seconds)` is called when waiting
    starts, when the holder changes and every REPEAT_SECONDS. Raises LockTimeout after `timeout`
    seconds, and OSError when the folder or the file cannot be created.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # Windows: filelock's lock, which cannot say who holds it
        from filelock import FileLock, Timeout

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock = FileLock(str(path), timeout=timeout)
            lock.acquire()
        except Timeout:
            raise LockTimeout(path, None, timeout) from None
        try:
            yield
        finally:
            lock.release()
        return
    started = time.monotonic()
    reported: tuple[Holder | None, float] | None = None
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = _open(path)
        except FileNotFoundError:  # the folder was removed by a releasing holder in between
            time.sleep(POLL_SECONDS / 10)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            waited = time.monotonic() - started
            holder = read_holder(path)
            if waited >= timeout:
                raise LockTimeout(path, holder, waited) from None
            if on_wait is not None and _should_report(reported, holder, waited):
                on_wait(holder, waited)
                reported = (holder, waited)
            time.sleep(POLL_SECONDS)
            continue
        if _is_current(fd, path):
            break
        os.close(fd)  # we locked a file its last holder had already removed: take the new one
    try:
        _describe_self(fd, purpose)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when empty: a refused first promotion leaves no folder
        os.close(fd)  # releases the flock


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for any file
    except PermissionError:
        if not path.exists():
            raise  # a folder we may not write in
        return os.open(path, os.O_RDONLY)  # another user's file: lockable, not describable


def _is_current(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _describe_self(fd: int, purpose: str) -> None:
    since = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                       "purpose": purpose, "since": since})
    with contextlib.suppress(OSError):  # a read-only descriptor: the lock holds, unnamed
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8"), 0)


def _should_report(reported: tuple[Holder | None, float] | None, holder: Holder | None, waited: float) -> bool:
    if reported is None:
        # a new holder writes its description just after taking the lock: give it a moment
        return holder is not None or waited >= 1.0
    last_holder, last_time = reported
    if holder is not None and holder != last_holder:
        return True
    return waited - last_time >= REPEAT_SECONDS
