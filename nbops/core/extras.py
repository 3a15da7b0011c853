"""Optional dependencies: import one, or say which of nbops' extras installs it.

    uvicorn = require("uvicorn", "serve", "serving a model")

raises MissingExtraError ("serving a model needs uvicorn, which is not installed here: pip
install 'nbops[serve]'") instead of an ImportError from deep inside a command. `load=False`
only checks that the module can be found (for heavy modules a subprocess imports later).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .exceptions import MissingExtraError


def require(module: str, extra: str, purpose: str, *, load: bool = True) -> ModuleType | None:
    try:
        if load:
            return importlib.import_module(module)
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        return None
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or module).split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {missing}, which is not installed here: pip install 'nbops[{extra}]'"
        ) from None
