"""`nbops serve`, `nbops predict`, `nbops promote` and `nbops models assign` when something is in
the way: a taken port, a reader that stops reading, an optional dependency that is not installed.
Every case runs the real CLI in a subprocess; a missing package is simulated by a meta path
finder in that subprocess for which the package does not exist (as if never installed)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from nbops.pipeline import record
from nbops.testing import command_env, run

#: `python -c ABSENT pkg1,pkg2 nbops-args...`: the nbops CLI in a process where pkg1, pkg2 are not installed.
ABSENT = '''
import sys

class Absent:
    """Finds nothing for the named top-level packages, so importing them fails as if not installed."""
    def __init__(self, names):
        self.names = set(names)
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

names = sys.argv[1].split(",")
for loaded in [m for m in sys.modules if m.partition(".")[0] in names]:
    del sys.modules[loaded]
sys.meta_path.insert(0, Absent(names))
sys.argv = ["nbops", *sys.argv[2:]]
from nbops.cli import main
sys.exit(main())
'''


def without(packages: str, *args: str) -> list[str]:
    return [sys.executable, "-c", ABSENT, packages, *args]


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """A registry holding one complete version of a small model, laid out as promotion lays it out."""
    home = tmp_path_factory.mktemp("serving")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"temperature": rng.normal(300, 2, 200).round(1), "speed": rng.integers(1200, 2800, 200)})
    y = (X["speed"] < 1800).astype(int)
    model = LogisticRegression(max_iter=200).fit(X, y)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(record.ENV_ROOT, str(home))
        patch.setenv(record.ENV_STAGE, "train")
        patch.delenv(record.ENV_JOURNAL, raising=False)
        saved = record.save_model(model, "m", sample_input=X.head(5))
    package = home / "registry/m/0.1.0"
    package.mkdir(parents=True)
    shutil.copy(home / "models" / saved["model_file"], package / "model.skops")
    (package / "manifest.json").write_text(json.dumps({**saved, "model_file": "model.skops", "version": "0.1.0"}))
    (package / ".complete").write_text("")
    (home / "registry/m/stages.json").write_text(json.dumps({"stages": {}, "history": []}))
    X.sample(6000, replace=True, random_state=0).to_csv(home / "inputs.csv", index=False)
    return home / "registry"


@pytest.fixture
def env(tmp_path, registry) -> dict[str, str]:
    return command_env(tmp_path, {"NBOPS_REGISTRY": str(registry)})


def one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"nbops: error: {expected}\n"


def test_serve_on_a_taken_port_is_one_line(registry, env, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["nbops", "serve", "m", "--port", str(port)], tmp_path, env, check=False, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"nbops: error: m: cannot listen on 127.0.0.1:{port} (Address already in use")
    assert result.stderr.endswith(f"; choose another with --port, or stop what uses {port}\n")


def test_serve_without_uvicorn_says_how_to_install_it(registry, env, tmp_path):
    result = run(without("uvicorn", "serve", "m", "--port", "0"), tmp_path, env, check=False, timeout=120)
    one_line(result, "serving a model needs uvicorn, which is not installed here: pip install 'nbops[serve]'")


def test_serve_does_not_need_fastapi(registry, env, tmp_path):
    server = subprocess.Popen(without("fastapi", "serve", "m", "--port", "0"), cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert "serving on http://127.0.0.1:" in line, line + (server.stderr.read() if server.poll() is not None else "")
        url = line.split("serving on ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(f"{url}/health", timeout=30) as answer:
            assert answer.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_predict_into_a_pipe_closed_early_stops_quietly(registry, env, tmp_path):
    inputs = registry.parent / "inputs.csv"
    result = subprocess.run(["bash", "-c", f"set -o pipefail; nbops predict m '{inputs}' | head -n 3"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[0] == "temperature,speed,prediction,probability_0,probability_1"
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == ""  # no BrokenPipeError traceback, nothing to say: the reader had what it wanted
    assert result.returncode == 141  # as a shell tool stopped by SIGPIPE


def test_predict_to_a_folder_is_one_line(registry, env, tmp_path):
    result = run(["nbops", "predict", "m", str(registry.parent / "inputs.csv"), "-o", str(tmp_path)], tmp_path, env,
                 check=False, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith(f"nbops: error: {tmp_path}: cannot write the predictions")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("absent, args, message", [
    ("nbconvert", ["promote", "m", "--dry-run"], "rendering the model card needs nbconvert, which is not installed here: pip install 'nbops[promote]'"),
    ("gto", ["promote", "m", "--git-tag"], "writing GTO's git tags (--git-tag) needs gto, which is not installed here: pip install 'nbops[promote]'"),
    ("gto", ["models", "assign", "m@0.1.0", "production", "--git-tag"],
     "writing GTO's git tags (--git-tag) needs gto, which is not installed here: pip install 'nbops[promote]'"),
])
def test_promotion_tools_missing_say_how_to_install_them(registry, env, tmp_path, absent, args, message):
    before = (registry / "m/stages.json").read_text()
    one_line(run(without(absent, *args), tmp_path, env, check=False, timeout=120), message)
    assert (registry / "m/stages.json").read_text() == before  # nothing was assigned or promoted


def test_a_package_that_cannot_be_loaded_is_one_line(registry, tmp_path):
    broken = tmp_path / "registry"
    shutil.copytree(registry, broken)
    (broken / "m/0.1.0/model.skops").unlink()
    (broken / "m/0.1.0/model.skops").mkdir()  # unreadable as a file: an OSError inside the load
    env = command_env(tmp_path, {"NBOPS_REGISTRY": str(broken)})
    result = run(["nbops", "serve", "m", "--port", "0"], tmp_path, env, check=False, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("nbops: error: ") and "model.skops" in result.stderr and "Traceback" not in result.stderr
