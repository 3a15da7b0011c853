"""pytest plugin: tells the kernels nbval starts which notebook they run.

JupyterLab tells a kernel its notebook (JPY_SESSION_NAME), which is how the recording API
names the stage of an interactive run; nbval does not, so without this a notebook validated
with `pytest --nbval-lax` would record under the stage name "notebook".
"""

from __future__ import annotations

import os
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    path = str(getattr(item, "path", ""))
    if path.endswith(".ipynb"):  # runs before nbval's file-level setup starts the kernel
        os.environ["JPY_SESSION_NAME"] = path
