"""The HTTP server: a plain ASGI app with four routes, bound and run by uvicorn.

    POST /predict    a JSON payload (signature.SHAPES) → predictions (+ probabilities, classes;
                     + threshold when the package has a decision threshold: then each
                     prediction IS the decision at that threshold; /metadata's "label" says so)
    GET  /health     liveness: always open, even when a bearer token is required; the version
                     served, and what follow.py / shadow.py report when following a stage
    GET  /metadata   the manifest's summary: signature, metrics, lineage, an example request
    GET  /metrics    counters in Prometheus' text format (metrics.py)

Four fixed routes do not need a framework, and without one a request costs only JSON parsing,
the column-wise validation and the model itself (see bench/serve_bench.py). Every refusal is a
JSON {"error": "..."} naming the problem, and the server stays up. Every answer carries an
`X-Request-ID`: the request's own when it sent a sane one, else a new one; a scored request that
is sampled for capture (capture.py) is recorded under that id, so labels can be joined later.
Every answer also names the version that served it (`X-Model-Version`, and "version" in the
body): a server following a registry stage (follow.py) switches versions while it runs, and a
request is answered by the version that was current when it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, NamedTuple

from . import jsonio
from .capture import DEFAULT_BUFFER_RECORDS, Capture
from .errors import InputError, PackageError, say, short
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, ServerMetrics
from .model import PackagedModel
from .signature import SHAPES, rows_hint

if TYPE_CHECKING:
    from .follow import Follower
    from .shadow import Shadow

DEFAULT_MAX_ROWS = 10_000
#: Batches up to this many rows are predicted on the event loop; larger ones in a worker
#: thread, so that /health keeps answering during a long batch.
INLINE_ROWS = 1_000
#: Routes answered without the bearer token (liveness probes carry none).
OPEN_PATHS = frozenset({"/health"})
#: A request's own X-Request-ID is kept when it is 1-128 of these characters; else one is made.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._~:@+/=-]{1,128}")

_JSON_HEADERS = [(b"content-type", b"application/json")]
_log = logging.getLogger("nbops.runtime")

Handler = Callable[[dict, Any, Any], Awaitable[None]]


class Refusal(Exception):
    """Raised by a route to answer `status` with {"error": message}; the server stays up."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or []


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class Route(NamedTuple):
    methods: tuple[str, ...]
    handler: Handler
    usage: str  # the hint of a 405 answer


async def respond(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send one complete JSON response."""
    headers = _JSON_HEADERS + [(b"content-length", str(len(body)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header(scope: dict[str, Any], name: bytes, default: bytes | None = None) -> bytes | None:
    """The first value of a request header (`name` in lower case, as ASGI gives them)."""
    return next((value for key, value in scope["headers"] if key == name), default)


def request_id(scope: dict[str, Any]) -> bytes:
    """The request's X-Request-ID when it is sane (bounded length, plain characters), else a new
    random one (128 bits, hex)."""
    given = header(scope, b"x-request-id")
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex().encode()


class Exchange:
    """One request as the app's hooks see it: its id, when it arrived, and the status answered.
    Its `send` adds the X-Request-ID header to the answer and notes the status."""

    __slots__ = ("request_id", "arrived", "started", "status", "captured", "_send")

    def __init__(self, scope: dict[str, Any], send: Any) -> None:
        self.request_id = request_id(scope)
        self.arrived = time.time()
        self.started = time.perf_counter()
        self.status = 0
        self.captured = False  # whether the champion's answer was captured (a shadow's follows it)
        self._send = send

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", self.request_id)]}
        await self._send(message)


class Served:
    """A model as the app serves it, with the parts of its answers that never change serialised
    once. The app holds one and replaces it whole (`App.switch`); a request takes it once, when it
    arrives, so it finishes on that version whatever happens meanwhile."""

    __slots__ = ("model", "tail", "metadata_body", "headers")

    def __init__(self, model: PackagedModel, dumps: Callable[[Any], bytes]) -> None:
        self.model = model
        constant: dict[str, Any] = {"classes": model.classes, "model": model.name, "version": model.version}
        if model.decision is not None:
            constant = {"threshold": model.decision.threshold, **constant}
        self.tail = dumps(constant)[1:]
        self.metadata_body = dumps(metadata(model))
        self.headers = version_headers(model)


def version_headers(model: PackagedModel) -> list[tuple[bytes, bytes]]:
    """X-Model-Version: the version that answered (printable ASCII only: it comes from a manifest)."""
    return [(b"x-model-version", "".join(c if " " < c < "\x7f" else "?" for c in model.version).encode())]


class App:
    """The ASGI app serving one PackagedModel at a time; see `create_app`."""

    def __init__(self, model: PackagedModel, *, token: str | None, max_rows: int, max_body_bytes: int | None,
                 capture: Capture | None = None, follower: Follower | None = None,
                 shadow: Shadow | None = None) -> None:
        self.capture = capture
        self.metrics = ServerMetrics(lambda: (self.model.name, self.model.version), capture)
        self.max_rows = max_rows
        self.max_body_bytes = max(1 << 20, 2048 * max_rows) if max_body_bytes is None else max_body_bytes
        self.expected_token = token.encode("latin-1") if token else None
        self.loads, self.dumps, self.numpy_native = jsonio.codec()
        self.served = Served(model, self.dumps)
        self.follower, self.shadow = follower, shadow
        if shadow is not None and capture is not None:
            shadow.record = capture.record  # the challenger's answers, under the champion's request ids
        self.routes: dict[str, Route] = {
            "/predict": Route(("POST",), self.predict, "use POST /predict with a JSON body"),
            "/health": Route(("GET", "HEAD"), self.health, "use GET /health"),
            "/metadata": Route(("GET", "HEAD"), self.metadata, "use GET /metadata"),
            "/metrics": Route(("GET", "HEAD"), self.prometheus, "use GET /metrics"),
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send, self.shutdown)
            return
        path = scope["path"]
        exchange = scope["nbops.exchange"] = Exchange(scope, send)
        send = exchange.send
        served = scope["nbops.served"] = self.served  # this request's version, whatever switches meanwhile
        try:
            if self.expected_token is not None and path not in OPEN_PATHS:
                self.check_token(scope)
            route = self.routes.get(path)
            if route is None:
                routes = ", ".join(f"{r.methods[0]} {p}" for p, r in self.routes.items())
                raise Refusal(404, f"no route {path}; the routes are {routes}")
            if scope["method"] not in route.methods:
                raise Refusal(405, route.usage, [(b"allow", route.methods[0].encode())])
            await route.handler(scope, receive, send)
        except Refusal as refusal:
            await self.error(send, refusal.status, refusal.message, refusal.headers + served.headers)
        except _Disconnected:
            return
        finally:
            if exchange.status:  # 0: the client left before an answer
                route = path if path in self.routes else "other"  # unknown paths: one label, not one each
                self.metrics.observe_request(route, exchange.status, time.perf_counter() - exchange.started)

    @property
    def model(self) -> PackagedModel:
        """The model being served now."""
        return self.served.model

    def switch(self, model: PackagedModel) -> None:
        """Serve `model` (loaded, warmed up and checked) from now on: one reference swap. Requests
        that arrived before keep the version they took."""
        self.served = Served(model, self.dumps)

    async def shutdown(self) -> None:
        """At the lifespan's shutdown (SIGTERM, Ctrl+C): write what the capture buffer holds."""
        if self.capture is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.capture.close)

    async def error(self, send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await respond(send, status, self.dumps({"error": message}), extra)

    def check_token(self, scope: dict[str, Any]) -> None:
        """Authorization: Bearer <token>; the scheme's name is case-insensitive (RFC 7235), the token is not."""
        given = header(scope, b"authorization", b"")
        scheme, _, credentials = given.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self.expected_token):
            reason = "missing bearer token" if not given else "wrong bearer token"
            raise Refusal(401, f"{reason}: send the header 'Authorization: Bearer <token>'", [(b"www-authenticate", b"Bearer")])

    # -- routes

    async def health(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        served = scope["nbops.served"]
        await respond(send, 200, self.health_body(served), served.headers)

    def health_body(self, served: Served) -> bytes:
        state: dict[str, Any] = {"status": "ok", "model": served.model.name, "version": served.model.version}
        if self.follower is not None:
            state["follow"] = self.follower.status()
        if self.shadow is not None:
            state["shadow"] = self.shadow.status()
        return self.dumps(state)

    async def metadata(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        served = scope["nbops.served"]
        await respond(send, 200, served.metadata_body, served.headers)

    async def prometheus(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = self.metrics.render()
        headers = [(b"content-type", METRICS_CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def predict(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        check_json_content(scope)
        body = await self.read_body(scope, receive)
        if not body.strip():
            raise Refusal(400, f"empty request body; send JSON: {SHAPES}")
        try:
            payload = self.loads(body)
        except ValueError as exc:  # orjson.JSONDecodeError and json's are ValueErrors (jsonio's too)
            raise Refusal(400, f"request body is not valid JSON ({short(exc, 120)})") from None
        exchange, served = scope["nbops.exchange"], scope["nbops.served"]
        try:
            if rows_hint(payload) > INLINE_ROWS:
                answer = await asyncio.get_running_loop().run_in_executor(None, self.score, payload, exchange, served)
            else:
                answer = self.score(payload, exchange, served)
        except InputError as exc:
            raise Refusal(exc.status, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the model raised: answer, log, stay up
            _log.exception("prediction failed")
            raise Refusal(500, f"prediction failed: {type(exc).__name__}: {short(exc, 200)}") from None
        await respond(send, 200, answer, served.headers)

    # -- the parts of /predict

    async def read_body(self, scope: dict[str, Any], receive: Any) -> bytes:
        """The request body, refused (413) as soon as it is over `max_body_bytes`."""
        limit = self.max_body_bytes
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise Refusal(413, f"request body of {int(length)} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refusal(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def score(self, payload: Any, exchange: Exchange | None = None, served: Served | None = None) -> bytes:
        """A decoded payload → the answer's JSON bytes (InputError for a payload that does not fit)."""
        served = served or self.served
        model = served.model
        inputs = model.arrays(payload, max_rows=self.max_rows)
        predictions, probabilities = model.answer(inputs)  # the label: the decision when there is a threshold
        self.scored(exchange, model, inputs, predictions, probabilities)
        if self.shadow is not None:
            self.shadow.submit(exchange.request_id.decode() if exchange is not None else "", payload, inputs, model,
                               predictions, captured=exchange is not None and exchange.captured,
                               arrived=exchange.arrived if exchange is not None else None)
        head = b'{"predictions":' + self.dumps(jsonio.array_json(predictions, self.numpy_native))
        if probabilities is not None:
            head += b',"probabilities":' + self.dumps(jsonio.array_json(probabilities, self.numpy_native))
        return head + b"," + served.tail

    def scored(self, exchange: Exchange | None, model: PackagedModel, inputs: Any, predictions: Any, probabilities: Any) -> None:
        """The hook after each scored request: count its rows; capture it if sampled."""
        self.metrics.add_rows(model.name, model.version, "champion", len(predictions))
        capture = self.capture
        if capture is not None and exchange is not None and capture.wants():
            exchange.captured = capture.record(
                exchange.request_id.decode(), model, "champion", inputs, predictions, probabilities,
                (time.perf_counter() - exchange.started) * 1e3, arrived=exchange.arrived)


def check_json_content(scope: dict[str, Any]) -> None:
    """415 for a body declared as something else than JSON (application/json or any +json type),
    or sent compressed; a request without Content-Type is read as JSON."""
    declared = header(scope, b"content-type")
    if declared is not None:
        media_type = declared.split(b";", 1)[0].strip().lower()
        if media_type != b"application/json" and not (media_type.startswith(b"application/") and media_type.endswith(b"+json")):
            shown = media_type.decode("latin-1") or "(empty)"
            raise Refusal(415, f"Content-Type {shown} is not JSON; send the body as application/json")
    encoding = header(scope, b"content-encoding")
    if encoding is not None and encoding.strip().lower() not in (b"", b"identity"):
        raise Refusal(415, f"Content-Encoding {encoding.decode('latin-1')} is not supported; send the JSON body uncompressed")


def create_app(
    model: PackagedModel,
    *,
    token: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_body_bytes: int | None = None,
    capture: Capture | None = None,
    follower: Follower | None = None,
    shadow: Shadow | None = None,
) -> App:
    """An ASGI app serving `model`: POST /predict, GET /health, GET /metadata, GET /metrics.

    Bad input gets a JSON {"error": "..."} naming the problem: 400 for a body that is not
    valid JSON (or nested too deeply), 415 for one declared as another media type, 422 for a wrong shape, column, dtype or null and for an empty batch, 413 for more than
    `max_rows` rows or a body over `max_body_bytes` (default: 2 KB per row allowed), 401 when a
    bearer `token` is set and the request lacks it (/health is open, for liveness probes).
    The model is warmed up first (PackageError if it no longer predicts its recorded sample).
    With `capture` (capture.Capture), sampled scored requests are recorded; the app closes it
    (writing what is buffered) at the lifespan's shutdown.
    A `follower` (follow.py) and a `shadow` (shadow.py) report in /health; `serve()` starts them.
    """
    model.warmup()
    return App(model, token=token, max_rows=max_rows, max_body_bytes=max_body_bytes, capture=capture,
               follower=follower, shadow=shadow)


async def lifespan(receive: Any, send: Any, on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def metadata(model: PackagedModel) -> dict[str, Any]:
    """What GET /metadata answers: the manifest's summary and an example request."""
    manifest = model.manifest
    lineage = manifest.get("lineage") or {}
    summary: dict[str, Any] = {}
    if isinstance(lineage, dict):
        for key, value in lineage.items():
            if value is None or isinstance(value, (str, int, float, bool)):
                summary[key] = value
            elif isinstance(value, dict):
                summary[key] = sorted(value)  # e.g. the stages whose dvc.lock hashes are recorded
            elif isinstance(value, list):
                summary[key] = value if len(json.dumps(value, default=str)) <= 2000 else f"{len(value)} items"
    sample = manifest.get("sample_input") or {}
    example = None
    if sample.get("columns") and sample.get("data"):
        example = {"records": [dict(zip(sample["columns"], sample["data"][0]))]}
    return {
        "name": model.name,
        "version": model.version,
        "created": manifest.get("created"),
        "estimator": manifest.get("estimator"),
        "task": manifest.get("task"),
        "classes": model.classes,
        "signature": manifest.get("signature"),
        "metrics": manifest.get("metrics") or {},
        "lineage": summary,
        "versions": manifest.get("versions") or {},
        "sha256": manifest.get("sha256"),
        "decision": manifest.get("decision"),
        "label": model.label_rule,
        "example": example,
    }


# --- running it ---------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), inheritable by uvicorn's workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def serve(
    model: PackagedModel | str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    n_jobs: int | None = 1,
    access_log: bool = False,
    log: Callable[[str], None] | None = None,
    capture: str | os.PathLike[str] | Capture | None = None,
    sample: float = 1.0,
    capture_buffer: int = DEFAULT_BUFFER_RECORDS,
    capture_flush: float | None = None,
    follower: Follower | None = None,
    shadow: Shadow | None = None,
) -> None:
    """Serve the model (a PackagedModel, or a package folder) with uvicorn until interrupted.

    Binds 127.0.0.1 unless told otherwise; port 0 picks a free port. Logs one line with the URL
    once the socket listens. `n_jobs=1` (the default; None keeps the model's own) makes the model
    predict in one thread: for request-sized batches joblib's thread start-up costs more than it
    saves (a 300-tree forest: 3× slower per row with n_jobs=-1), and the sums are bit-stable.

    `capture` (a folder or an fsspec URL, or a Capture already open; off by default, as inputs may
    be sensitive) records a `sample` share of scored requests there (capture.py), buffering at most `capture_buffer`
    requests and writing them every `capture_flush` seconds (default: capture.py's); a clean stop
    (SIGTERM, Ctrl+C) writes the buffer and logs a summary line.

    With a `follower` (follow.py: the model is the version its stage names now), the server
    switches to each version the stage is given once it passes its checks; with a `shadow`
    (shadow.py), a challenger scores each request too, off the request path (and its answers are
    captured beside the champion's)."""
    try:
        import uvicorn
    except ImportError:
        raise PackageError("serving needs uvicorn: pip install uvicorn (or 'nbops[serve]')") from None
    if not isinstance(model, PackagedModel):
        model = PackagedModel.load(model)
    if n_jobs is not None:
        model.set_n_jobs(n_jobs)
    if n_jobs == 1:
        _limit_native_threads()
    recorder = capture if isinstance(capture, Capture) else None
    if capture and recorder is None:
        recorder = Capture.open(capture, sample=sample, buffer_records=capture_buffer, flush_seconds=capture_flush, log=log)
    try:
        app = create_app(model, token=token, max_rows=max_rows, capture=recorder, follower=follower, shadow=shadow)
        sock = bind(host, port)
    except BaseException:
        if recorder is not None:
            recorder.close(quiet=True)  # nothing was served: the error is the one line to show
        raise
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    note = ", bearer token required" if token else ""
    if recorder is not None:
        note += f"; capturing {recorder.sample * 100:g}% of scored requests under {recorder.root}"
    note += following_note(follower, shadow)
    # uvicorn stops gracefully on SIGTERM, then raises it again for the handler it found; a SIGTERM
    # is how servers are stopped, so that handler ends the run normally (exit status 0). One that
    # arrives before uvicorn listens for signals (say, as soon as the line below is read) is kept
    # and handed to it once it does.
    early: list[int] = []
    previous = _quiet_sigterm(early)
    try:
        (log or say)(
            f"{model.name} {model.version}: serving on http://{shown}:{bound_port} "
            f"(POST /predict, GET /health, GET /metadata, GET /metrics{note}); Ctrl+C stops"
        )
        config = uvicorn.Config(
            app, log_level="warning", access_log=access_log, lifespan="on", server_header=False,
            timeout_graceful_shutdown=10,
        )
        with background(app):
            _server_class(uvicorn)(config, early).run(sockets=[sock])
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
        if recorder is not None:
            recorder.close()  # when the lifespan shutdown did not run (idempotent)


def following_note(follower: Follower | None, shadow: Shadow | None) -> str:
    """What the start-up line says of a followed stage and a shadow."""
    note = f"; following {follower.ref} every {follower.interval:g} s" if follower is not None else ""
    return note + (f"; shadow {shadow.ref}" if shadow is not None else "")


@contextlib.contextmanager
def background(app: App) -> Iterator[None]:
    """The app's threads while the server runs: the follower's polls and the shadow's worker."""
    if app.follower is not None:
        app.follower.start(app.switch)
    if app.shadow is not None:
        app.shadow.start()
    try:
        yield
    finally:
        if app.shadow is not None:
            app.shadow.stop()
        if app.follower is not None:
            app.follower.stop()


def _quiet_sigterm(early: list[int]) -> Any:
    """Outside uvicorn's own handling (main thread only), a SIGTERM ends nothing abruptly: before
    uvicorn runs it is noted in `early`, after it the run ends normally. Returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: early.append(signum))


def _server_class(uvicorn: Any) -> Any:
    """uvicorn's Server, stopping at once (gracefully) for a SIGTERM that came before it listened."""

    class Server(uvicorn.Server):
        def __init__(self, config: Any, early: list[int]) -> None:
            super().__init__(config)
            self._early = early

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                if self._early:
                    self.handle_exit(signal.SIGTERM, None)
                yield

    return Server


def _limit_native_threads() -> None:
    """One OpenMP/BLAS thread, as n_jobs=1 is one joblib thread: for request-sized batches a
    thread pool's wake-up costs more than it saves (a gradient-boosted model's single row:
    about 8 ms with two OpenMP threads, 1 ms with one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, keep the defaults
        return
    threadpool_limits(limits=1)
