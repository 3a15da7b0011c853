"""The drift event: a repository_dispatch sent to a real HTTP server on 127.0.0.1 standing in
for the GitHub API. The token must reach the server and nothing else: not stdout, not stderr,
not an error message (even when the server echoes it back), not a repr."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nbops.loop.dispatch import fire_drift_event
from nbops.core.exceptions import DispatchError
from nbops.testing import command_env

TOKEN = "ghp_" + "S3cr3tT0k3n" * 3


class FakeGitHub:
    """A tiny API server: records each request and answers from a script of responses."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append({
                    "path": self.path, "headers": dict(self.headers.items()), "body": self.rfile.read(length),
                })
                status, headers, body = outer.answers.pop(0) if outer.answers else (204, {}, b"")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, headers or {}, json.dumps(body).encode() if body is not None else b""))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub()
    yield server
    server.close()


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    monkeypatch.setenv("NBOPS_DISPATCH_TOKEN", TOKEN)


def test_event_reaches_the_api_with_the_token_only_in_the_authorization_header(github, token_env):
    payload = {"model": "failure-predictor", "drift_share": 0.6, "columns": ["Torque [Nm]"]}
    result = fire_drift_event("acme/plant", payload, api_url=github.url)

    [request] = github.requests
    assert request["path"] == "/repos/acme/plant/dispatches"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("nbops/")
    assert json.loads(request["body"]) == {"event_type": "drift-detected", "client_payload": payload}
    assert (result.status, result.repo, result.event_type) == (204, "acme/plant", "drift-detected")
    assert TOKEN not in repr(result) and TOKEN not in str(result)
    assert str(result) == f"sent drift-detected to acme/plant ({github.url}/repos/acme/plant/dispatches: HTTP 204)"


@pytest.mark.parametrize("status, expected", [
    (401, "refused the token (HTTP 401 (Bad credentials"),
    (404, "answered HTTP 404 (Not Found"),
    (403, "answered HTTP 403 (Resource not accessible"),
])
def test_refusals_are_one_line_and_never_hold_the_token_even_when_echoed(github, token_env, status, expected):
    message = {401: "Bad credentials", 404: "Not Found", 403: "Resource not accessible by integration"}[status]
    github.answer(status, {"message": f"{message}; you sent Bearer {TOKEN}", "documentation_url": "https://docs"})
    with pytest.raises(DispatchError) as caught:
        fire_drift_event("acme/plant", {"drift": True}, api_url=github.url)
    text = str(caught.value)
    assert expected in text and "\n" not in text
    assert TOKEN not in text and "***" in text  # the echo was scrubbed
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no urllib request chained
    if status != 401:
        assert "acme/plant exists" in text and "contents" in text


def test_cli_prints_neither_the_token_on_success_nor_on_failure_even_with_debug(github, tmp_path):
    env = command_env(tmp_path, {"NBOPS_DISPATCH_TOKEN": TOKEN})
    env.pop("GITHUB_TOKEN", None)
    cmd = [sys.executable, "-m", "nbops", "dispatch", "acme/plant", "--api-url", github.url,
           "--payload", '{"model": "failure-predictor", "drift_share": 0.6}']
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("sent drift-detected to acme/plant")
    assert json.loads(github.requests[0]["body"])["client_payload"]["drift_share"] == 0.6

    for debug in ("", "1"):
        github.answer(401, {"message": f"Bad credentials {TOKEN}"})
        failed = subprocess.run(cmd, env={**env, "NBOPS_DEBUG": debug}, capture_output=True, text=True, timeout=60)
        assert failed.returncode == 1
        assert "HTTP 401" in failed.stderr
        assert TOKEN not in failed.stdout + failed.stderr
        if not debug:
            assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
        else:
            assert "Traceback" in failed.stderr  # the debug traceback holds no token either
    assert all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in github.requests)


def test_the_token_comes_from_the_named_variable_or_a_clear_error(github, monkeypatch):
    for name in ("NBOPS_DISPATCH_TOKEN", "GITHUB_TOKEN", "MY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DispatchError, match=r"no token to dispatch with: set \$NBOPS_DISPATCH_TOKEN or \$GITHUB_TOKEN"):
        fire_drift_event("acme/plant", {}, api_url=github.url)
    monkeypatch.setenv("GITHUB_TOKEN", "from-github-token")
    fire_drift_event("acme/plant", {}, api_url=github.url)
    monkeypatch.setenv("MY_TOKEN", "from-my-token")
    fire_drift_event("acme/plant", {}, token_env="MY_TOKEN", api_url=github.url)
    assert [r["headers"]["Authorization"] for r in github.requests] == ["Bearer from-github-token", "Bearer from-my-token"]


def test_bad_input_is_refused_before_anything_is_sent(github, token_env):
    cases = [
        (dict(repo="not-a-repo", payload={}), "repository 'not-a-repo' is not OWNER/REPO"),
        (dict(repo="acme/plant", payload={f"k{i}": i for i in range(11)}), "11 top-level keys; GitHub accepts at most 10"),
        (dict(repo="acme/plant", payload={"x": float("nan")}), "the event payload is not JSON"),
        (dict(repo="acme/plant", payload=[1, 2]), "must be a JSON object"),
        (dict(repo="acme/plant", payload={}, event_type="x" * 101), "give 1 to 100 characters"),
        (dict(repo="acme/plant", payload={}, api_url="http://api.example.com"), "use https://"),
    ]
    for kwargs, expected in cases:
        kwargs.setdefault("api_url", github.url)
        with pytest.raises(DispatchError, match=expected):
            fire_drift_event(**kwargs)
    assert github.requests == []
    # a repository given as its web address is understood
    assert fire_drift_event("https://github.com/acme/plant.git", {}, api_url=github.url).repo == "acme/plant"


def test_github_api_url_from_the_environment_and_no_redirect_carries_the_token(github, token_env, monkeypatch):
    elsewhere = FakeGitHub()
    try:
        monkeypatch.setenv("GITHUB_API_URL", github.url + "/api/v3/")  # GitHub Enterprise style, as Actions sets it
        github.answer(302, headers={"Location": f"{elsewhere.url}/repos/acme/plant/dispatches"})
        with pytest.raises(DispatchError, match="redirected \\(HTTP 302\\); give the final API URL"):
            fire_drift_event("acme/plant", {})
        assert github.requests[0]["path"] == "/api/v3/repos/acme/plant/dispatches"
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_a_gateway_error_is_tried_again(github, token_env):
    github.answer(503, {"message": "unavailable"})
    assert fire_drift_event("acme/plant", {"n": 1}, api_url=github.url, retries=1).status == 204
    assert len(github.requests) == 2
    github.answer(502, {"message": "bad gateway"})
    with pytest.raises(DispatchError, match="HTTP 502"):
        fire_drift_event("acme/plant", {"n": 1}, api_url=github.url, retries=0)


def test_an_unreachable_api_is_named(token_env):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DispatchError, match=f"could not reach http://127.0.0.1:{port}/repos/acme/plant/dispatches"):
        fire_drift_event("acme/plant", {}, api_url=f"http://127.0.0.1:{port}", retries=0)


def test_the_options_monitor_shares_fire_the_event_only_when_asked(github, token_env, monkeypatch):
    import argparse

    from nbops.commands.dispatch import add_dispatch_options, dispatch_from_args

    parser = argparse.ArgumentParser()
    add_dispatch_options(parser)
    assert dispatch_from_args(parser.parse_args([]), {"drift": True}) is None
    assert github.requests == []

    args = parser.parse_args(["--dispatch", "acme/plant", "--dispatch-api-url", github.url])
    assert dispatch_from_args(args, {"drift_share": 0.5}).startswith("sent drift-detected to acme/plant")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/from-actions")
    monkeypatch.setenv("OTHER_TOKEN", "other-token")
    args = parser.parse_args(["--dispatch", "--dispatch-token-env", "OTHER_TOKEN", "--dispatch-api-url", github.url])
    dispatch_from_args(args, {})
    assert [r["path"] for r in github.requests] == ["/repos/acme/plant/dispatches", "/repos/acme/from-actions/dispatches"]
    assert github.requests[1]["headers"]["Authorization"] == "Bearer other-token"
    monkeypatch.delenv("GITHUB_REPOSITORY")
    with pytest.raises(DispatchError, match="needs \\$GITHUB_REPOSITORY"):
        dispatch_from_args(parser.parse_args(["--dispatch"]), {})
