"""Shadow scoring: each scored request is also scored by a challenger, off the request path.

    shadow = Shadow(follower=Follower(StageSource(root, "failure-predictor", "staging")))
    shadow.start()
    shadow.submit(request_id, payload, inputs, champion, predictions)   # on the request path: O(1)

`submit` only puts the request on a bounded queue (when it is full the request is dropped and
counted: a request never waits for the challenger). One worker thread scores the queue with the
challenger — the same validated inputs when both versions have the same signature, else the
challenger validates the request body itself — and counts rows scored and rows on which the two
agree. When a `record` hook is given (the capture's), the challenger's answer is recorded with
role "shadow" under the champion's request id, for requests whose champion answer was recorded.
A challenger following a stage (`follower`) switches like the champion does.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from .errors import InputError, say, short
from .follow import Follower
from .model import PackagedModel

DEFAULT_QUEUE = 1000

#: record(request_id, model, role, inputs, predictions, probabilities, latency_ms) — the capture's API.
Record = Callable[..., Any]


class Shadow:
    """A challenger scoring a copy of the traffic; see the module's docstring."""

    def __init__(self, *, follower: Follower | None = None, model: PackagedModel | None = None,
                 queue_size: int = DEFAULT_QUEUE, max_rows: int | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if queue_size < 1:
            raise ValueError("the shadow queue holds at least 1 request")
        self.follower = follower
        self.model: PackagedModel | None = model
        self.max_rows = max_rows
        self.log = log or say
        self.record: Record | None = None
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._drop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # requests not scored: the queue was full
        self.scored = 0  # requests scored by the challenger
        self.failed = 0  # requests the challenger refused (InputError) or failed on
        self.same_version = 0  # requests not scored: the challenger is the champion's very version
        self.waiting = 0  # requests not scored: no challenger assigned yet
        self.rows = 0
        self.rows_agreeing = 0
        self.last_error: str | None = None

    @property
    def ref(self) -> str:
        if self.follower is not None:
            return self.follower.ref
        return f"{self.model.name}@{self.model.version}" if self.model is not None else "(none)"

    def switch(self, model: PackagedModel) -> None:
        """The challenger's follower calls this with each new challenger version."""
        self.model = model

    # -- the request path

    def submit(self, request_id: str, payload: Any, inputs: Any, champion: PackagedModel, predictions: Any,
               *, captured: bool = False, arrived: float | None = None) -> None:
        """Queue one scored request for the challenger; never blocks (a full queue drops it)."""
        try:
            self._queue.put_nowait((request_id, payload, inputs, champion, predictions, captured, arrived))
        except queue.Full:
            with self._drop_lock:
                self.dropped += 1

    # -- the worker

    def start(self) -> None:
        if self.follower is not None:
            self.follower.start(self.switch)
        self._thread = threading.Thread(target=self._work, name="nbops-shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after what is queued now (the queue is bounded); then the follower."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)  # waits for room: the worker is draining the queue
            except queue.Full:
                pass
            self._thread.join(timeout)
            self._thread = None
        if self.follower is not None:
            self.follower.stop()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued request is scored (tests, and a clean stop)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self.score(*item)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one request
                self.failed += 1
                self._note_error(f"{type(exc).__name__}: {short(exc, 200)}")
            finally:
                self._queue.task_done()

    def score(self, request_id: str, payload: Any, inputs: Any, champion: PackagedModel, predictions: Any,
              captured: bool = False, arrived: float | None = None) -> None:
        """Score one request with the challenger and compare (the worker's job; tests call it)."""
        challenger = self.model
        if challenger is None:  # the challenger's stage has no version yet
            self.waiting += 1
            return
        if (challenger.name, challenger.version) == (champion.name, champion.version):
            self.same_version += 1
            return
        started = time.perf_counter()
        try:
            if challenger.manifest.get("signature") != champion.manifest.get("signature"):
                inputs = challenger.arrays(payload, max_rows=self.max_rows)
            shadow_predictions, probabilities = challenger.answer(inputs)  # its own label rule
        except InputError as exc:
            self.failed += 1
            self._note_error(f"{challenger.version} refused a request the champion took: {exc}")
            return
        latency_ms = (time.perf_counter() - started) * 1e3
        self.scored += 1
        self.rows += len(shadow_predictions)
        self.rows_agreeing += agreeing(predictions, shadow_predictions)
        if self.record is not None and captured:
            self.record(request_id, challenger, "shadow", inputs, shadow_predictions, probabilities, latency_ms)

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            self.log(f"shadow {self.ref}: {message}")
        self.last_error = message

    def status(self) -> dict[str, Any]:
        """What /health shows of the challenger."""
        return {
            "ref": self.ref, "version": self.model.version if self.model is not None else None,
            "queued": self._queue.qsize(), "scored": self.scored, "dropped": self.dropped, "failed": self.failed,
            "same_version": self.same_version, "waiting": self.waiting, "rows": self.rows, "rows_agreeing": self.rows_agreeing,
            "agreement": round(self.rows_agreeing / self.rows, 6) if self.rows else None,
            "last_error": self.last_error,
            **({"follow": self.follower.status()} if self.follower is not None else {}),
        }


def agreeing(champion: Any, challenger: Any) -> int:
    """How many rows get the same prediction from both."""
    import numpy as np

    a, b = np.asarray(champion), np.asarray(challenger)
    if a.shape != b.shape:
        return 0
    same = a == b
    return int(same.sum() if same.ndim == 1 else same.reshape(len(a), -1).all(axis=1).sum())
