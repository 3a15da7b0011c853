"""The Jupyter server extension nbops enables (installed as
etc/jupyter/jupyter_server_config.d/nbops.json): after JupyterLab saves a notebook that the
git filter applies to, git compares it through the filter again (`nbstripout.forget_cached_stat`),
so a run-and-save leaves `git status` clean when nothing but outputs changed."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbops.authoring.server_extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    serverapp.contents_manager.register_post_save_hook(after_save)


def after_save(model: dict[str, Any], os_path: str, contents_manager: Any = None, **_: Any) -> None:
    if model.get("type") == "notebook":
        from .nbstripout import forget_cached_stat

        forget_cached_stat(os_path)
