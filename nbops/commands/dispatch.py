"""`nbops dispatch`: fire a repository_dispatch event (default `drift-detected`) so CI retrains.

Also the options other commands share to fire it: `nbops monitor ... --dispatch OWNER/REPO`
calls `add_dispatch_options(parser)` and, on drift, `dispatch_from_args(args, payload)`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dispatch",
        help="fire a GitHub repository_dispatch event (drift-detected) to start the retraining job",
        description=(
            "Send POST /repos/OWNER/REPO/dispatches to the GitHub API. The token comes from "
            "$NBOPS_DISPATCH_TOKEN or $GITHUB_TOKEN (or --token-env) and is never printed."
        ),
    )
    parser.add_argument("repo", nargs="?", help="OWNER/REPO (default: $GITHUB_REPOSITORY, which Actions sets)")
    parser.add_argument("--event-type", default=None, help="the event type (default: drift-detected)")
    parser.add_argument("--payload", default="{}", help="the client_payload as a JSON object (at most 10 keys)")
    _add_connection_options(parser, prefix="")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..loop.dispatch import DRIFT_EVENT, fire_drift_event
    from ..core.exceptions import DispatchError

    repo = args.repo or os.environ.get("GITHUB_REPOSITORY", "")
    if not repo:
        raise DispatchError("name the repository: `nbops dispatch OWNER/REPO` (or set $GITHUB_REPOSITORY)")
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        raise DispatchError(f"--payload is not JSON ({exc}): give an object such as '{{\"model\": \"m\"}}'") from None
    result = fire_drift_event(
        repo, payload, event_type=args.event_type or DRIFT_EVENT, **_connection_kwargs(args, prefix="")
    )
    print(result)
    return 0


# --- shared with commands that fire the event on a finding (nbops monitor) ----------------------


def add_dispatch_options(parser: argparse.ArgumentParser) -> None:
    """`--dispatch OWNER/REPO` (fire `drift-detected` when drift is found), its token variable and API URL."""
    group = parser.add_argument_group("retraining event")
    group.add_argument(
        "--dispatch", metavar="OWNER/REPO", nargs="?", const="$GITHUB_REPOSITORY", default=None,
        help="on drift, fire a repository_dispatch `drift-detected` event at OWNER/REPO "
        "(no value: $GITHUB_REPOSITORY)",
    )
    _add_connection_options(group, prefix="dispatch-")


def dispatch_from_args(args: argparse.Namespace, payload: Mapping[str, Any]) -> str | None:
    """Fire the event when `--dispatch` was given; returns the line to print (None when not asked)."""
    from ..loop.dispatch import fire_drift_event
    from ..core.exceptions import DispatchError

    if args.dispatch is None:
        return None
    repo = os.environ.get("GITHUB_REPOSITORY", "") if args.dispatch == "$GITHUB_REPOSITORY" else args.dispatch
    if not repo:
        raise DispatchError("--dispatch without OWNER/REPO needs $GITHUB_REPOSITORY: name the repository")
    return str(fire_drift_event(repo, payload, **_connection_kwargs(args, prefix="dispatch-")))


def _add_connection_options(parser: Any, prefix: str) -> None:
    parser.add_argument(
        f"--{prefix}token-env", metavar="VAR", default=None,
        help="the environment variable holding the token (default: NBOPS_DISPATCH_TOKEN, then GITHUB_TOKEN)",
    )
    parser.add_argument(
        f"--{prefix}api-url", metavar="URL", default=None,
        help="the GitHub API base URL (default: $GITHUB_API_URL or https://api.github.com; GitHub Enterprise: "
        "https://HOST/api/v3)",
    )


def _connection_kwargs(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    attr = prefix.replace("-", "_")
    kwargs: dict[str, Any] = {"api_url": getattr(args, f"{attr}api_url")}
    token_env = getattr(args, f"{attr}token_env")
    if token_env:
        kwargs["token_env"] = token_env
    return kwargs
