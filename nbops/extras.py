"""Optional dependencies: import one, or say which of nbops' extras installs it.

    uvicorn = require("uvicorn", "serve", "serving a model")

raises MissingExtraError ("serving a model needs uvicorn, which is not installed: pip install
'nbops[serve]'") instead of an ImportError from deep inside a command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import MissingExtraError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise MissingExtraError(
            f"{purpose} needs {missing.split('.')[0]}, which is not installed here: pip install 'nbops[{extra}]'"
        ) from None
