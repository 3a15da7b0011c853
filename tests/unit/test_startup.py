"""nbops' own processes tell the standalone runtime so without the runtime importing nbops."""

import json
import subprocess
import sys

from nbops.core import _startup
from nbops.runtime import trust


def test_the_runtime_learns_that_a_process_is_nbops_own_and_its_children_are_not():
    """`skip_slow_optional_imports` (what `nbops …` and the card renderer call first) marks the
    process for `runtime.trust`; a child inherits the variable but is not taken for nbops' own
    (a kernel runs the user's code, where skops' defaults must stay as skops builds them)."""
    assert _startup.OWN_PROCESS_ENV == trust.OWN_PROCESS_ENV
    child = "from nbops.runtime import trust; print(trust.is_own_process())"
    code = (
        "import json, subprocess, sys\n"
        "from nbops.runtime import trust\n"
        "before = trust.is_own_process()\n"
        "from nbops.core._startup import skip_slow_optional_imports\n"
        "skip_slow_optional_imports()\n"
        f"kid = subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True, check=True)\n"
        "print(json.dumps([before, trust.is_own_process(), kid.stdout.strip()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [False, True, "False"]
