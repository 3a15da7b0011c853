"""Tell CI to retrain: fire a GitHub `repository_dispatch` event (`drift-detected`).

    from nbops.loop.dispatch import fire_drift_event
    fire_drift_event("OWNER/REPO", {"model": "failure-predictor", "drift_share": 0.6})

sends `POST {api}/repos/OWNER/REPO/dispatches` with
`{"event_type": "drift-detected", "client_payload": {...}}`; a workflow listening on
`repository_dispatch: types: [drift-detected]` then runs (the retraining job of the generated
workflow does). GitHub answers 204 with no body.

The token comes from an environment variable (NBOPS_DISPATCH_TOKEN, else GITHUB_TOKEN; inside
GitHub Actions the job's GITHUB_TOKEN may dispatch to its own repository with `contents: write`)
and is never printed: not in results, errors, reprs or tracebacks — a message the server sends
back is scrubbed of it, and redirects are refused so it is never forwarded to another host.
The API's base URL (GitHub Enterprise, a local stand-in in tests) comes from `api_url`, else
$GITHUB_API_URL (which Actions sets), else https://api.github.com. Plain http is accepted only
for a loopback host, so a token never crosses a network unencrypted.

Stdlib only (urllib); `import nbops` does not load this module.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..core.exceptions import DispatchError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TOKEN_ENV = ("NBOPS_DISPATCH_TOKEN", "GITHUB_TOKEN")
DRIFT_EVENT = "drift-detected"
#: GitHub's limits for a repository dispatch event.
MAX_EVENT_TYPE_CHARS = 100
MAX_PAYLOAD_PROPERTIES = 10

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
#: Answers worth another try: the request never reached a decision.
_RETRY_STATUSES = {502, 503, 504}


@dataclass(frozen=True)
class DispatchResult:
    """What was sent; holds no token."""

    repo: str
    event_type: str
    url: str
    status: int

    def __str__(self) -> str:
        return f"sent {self.event_type} to {self.repo} ({self.url}: HTTP {self.status})"


def fire_drift_event(
    repo: str,
    payload: Mapping[str, Any],
    *,
    token_env: str | Sequence[str] = DEFAULT_TOKEN_ENV,
    api_url: str | None = None,
    event_type: str = DRIFT_EVENT,
    timeout: float = 10.0,
    retries: int = 2,
) -> DispatchResult:
    """Fire a `repository_dispatch` event of `event_type` at `repo` ("OWNER/REPO").

    `payload` becomes the event's `client_payload` (JSON, at most 10 top-level keys), which the
    workflow reads as `github.event.client_payload`. `token_env` names the environment variable
    holding the token, or several tried in order. Gateway errors and unreachable hosts are tried
    again `retries` times (1 s, then 2 s apart). Raises DispatchError with a one-line message.
    """
    repo = _check_repo(repo)
    body = _body(event_type, payload)
    url = f"{_api_base(api_url)}/repos/{repo}/dispatches"
    token = _token(token_env)
    status = _post(url, body, token, timeout=timeout, retries=retries, repo=repo)
    return DispatchResult(repo=repo, event_type=event_type, url=url, status=status)


# --- checks, before anything is sent -----------------------------------------------------------


def _check_repo(repo: str) -> str:
    repo = (repo or "").strip()
    if repo.startswith("https://github.com/"):
        repo = repo[len("https://github.com/"):].removesuffix(".git").strip("/")
    if not _REPO.match(repo):
        raise DispatchError(f"repository {repo!r} is not OWNER/REPO (for example: acme/plant-models)")
    return repo


def _body(event_type: str, payload: Mapping[str, Any]) -> bytes:
    if not event_type or len(event_type) > MAX_EVENT_TYPE_CHARS:
        raise DispatchError(f"event type {event_type!r}: give 1 to {MAX_EVENT_TYPE_CHARS} characters")
    if not isinstance(payload, Mapping):
        raise DispatchError(f"the event payload must be a JSON object (a dict), not {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_PROPERTIES:
        raise DispatchError(
            f"the event payload has {len(payload)} top-level keys; GitHub accepts at most "
            f"{MAX_PAYLOAD_PROPERTIES}: nest the rest under one key"
        )
    try:
        return json.dumps({"event_type": event_type, "client_payload": dict(payload)}, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise DispatchError(f"the event payload is not JSON: {exc}") from None


def _api_base(api_url: str | None) -> str:
    from urllib.parse import urlsplit

    base = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme == "https" and parts.hostname:
        return base
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return base
    raise DispatchError(
        f"API URL {base!r}: use https:// (plain http only for 127.0.0.1 or localhost, so the token "
        "never crosses a network unencrypted)"
    )


def _token(token_env: str | Sequence[str]) -> str:
    names = [token_env] if isinstance(token_env, str) else list(token_env)
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    listed = " or ".join(f"${name}" for name in names)
    raise DispatchError(
        f"no token to dispatch with: set {listed} to a GitHub token allowed to write the "
        "repository's contents (in Actions: `permissions: contents: write`)"
    )


# --- sending -----------------------------------------------------------------------------------


def _post(url: str, body: bytes, token: str, *, timeout: float, retries: int, repo: str) -> int:
    from .. import __version__

    opener = urllib.request.build_opener(_NoRedirects())
    headers = {
        "Accept": "application/vnd.github+json",
        "Content-Type": "application/json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": f"nbops/{__version__}",
    }
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        # unredirected: urllib never copies it onto another request
        request.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            with opener.open(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            status, detail = exc.code, _server_message(exc)
            exc.close()
            if status in _RETRY_STATUSES and attempt < retries:
                time.sleep(2**attempt)
                continue
            raise DispatchError(_scrub(_explain(status, detail, repo, url), token)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt < retries:
                time.sleep(2**attempt)
                continue
            reason = getattr(exc, "reason", exc)
            raise DispatchError(_scrub(f"could not reach {url}: {reason}", token)) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _server_message(error: Any) -> str:
    """GitHub's `message` field, or the start of whatever the server said."""
    try:
        raw = error.read(4096).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a body we cannot read adds nothing
        return ""
    try:
        message = json.loads(raw).get("message", "")
    except (ValueError, AttributeError):
        message = raw
    return " ".join(str(message).split())[:200]


def _explain(status: int, detail: str, repo: str, url: str) -> str:
    said = f" ({detail})" if detail else ""
    if status == 401:
        return f"{url} refused the token (HTTP 401{said}): it is wrong or expired; set a valid one"
    if status in (403, 404):
        # GitHub answers 404, not 403, when a token may not see a private repository
        return (
            f"{url} answered HTTP {status}{said}: check that {repo} exists and that the token may write "
            "its contents (fine-grained: Contents read and write; in Actions: `permissions: contents: write`)"
        )
    if status == 422:
        return f"{url} rejected the event (HTTP 422{said}): check the event type and payload"
    if 300 <= status < 400:
        return f"{url} redirected (HTTP {status}); give the final API URL (redirects are not followed with a token)"
    return f"{url} answered HTTP {status}{said}"


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: the answer comes back as an HTTPError of status 3xx."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None
