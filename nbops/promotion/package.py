"""Build a model package folder: model file, manifest, model card, pins, wheel, Dockerfile, MLmodel.

The folder is self-describing and immutable once published:

    model.skops         the model (skops: loading runs no pickle code)
    manifest.json       name, version, metrics, params, signature, sample + predictions, lineage…
    profile.json        the reference profile `nbops monitor` compares live data with (when recorded)
    card.html           the model card: the manifest's summary over the evaluation report
    requirements.txt    pinned runtime requirements (what predicting and serving need, nothing else)
    dist/*.whl          an installable wheel: `python -m <pkg> predict|serve`, `<pkg>.load()`
    Dockerfile          serves the wheel (infrastructure as code for the user's platform)
    MLmodel, code/, python_env.yaml   the folder is also an MLflow pyfunc model directory

The wheel carries the `nbops/runtime/` package as `<pkg>/_runtime/` (and the MLflow `code/` folder
as `_nbops_runtime/`): the same loading, validation and serving code `nbops serve` uses, and
nothing of nbops itself. The wheel is written by `wheelfile`, with the model stored uncompressed
(it is compressed already).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path
from typing import Any

from ..core._io import atomic_write_text, current_umask, dump_json, sha256_file
from .wheelfile import wheel_name, write_wheel

MODEL_FILE = "model.skops"
#: The reference profile (nbops/monitoring/profile.py), when the model was saved with reference=.
PROFILE_FILE = "profile.json"
#: Distributions a package needs to predict (pinned to the versions that trained the model).
PREDICT_DISTRIBUTIONS = ("scikit-learn", "skops", "numpy", "scipy", "pandas")
#: The server the runtime runs on: uvicorn, its fast parser and loop, and the JSON codec.
SERVER_DISTRIBUTIONS = ("uvicorn", "httptools", "uvloop", "orjson")


def import_name(name: str) -> str:
    """The Python package name for a model name: 'failure-predictor' → 'failure_predictor'."""
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", name).lower()
    return f"model_{ident}" if ident[:1].isdigit() else ident


def requirements(model_versions: dict[str, str]) -> list[str]:
    """Pins: the predicting libraries at the versions that trained the model, the server's at
    the versions installed here."""
    pins = []
    for dist in PREDICT_DISTRIBUTIONS:
        pinned = model_versions.get(dist) or _installed(dist)
        if pinned:
            pins.append(f"{dist}=={pinned}")
    for dist in SERVER_DISTRIBUTIONS:
        pinned = _installed(dist)
        if pinned:
            pins.append(f"{dist}=={pinned}")
    return pins


def _installed(dist: str) -> str | None:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return None


def build_core(dest: Path, manifest: dict[str, Any], model_file: Path, profile_file: Path | None = None, *,
               sha256: str | None = None) -> dict[str, Any]:
    """Copy the model (and its reference profile) into the empty folder `dest` and write
    manifest.json and requirements.txt: enough to load the package (and check its parity)
    while the rest is built.

    `sha256`: the model file's, when the caller already hashed it (a large model is then read
    once more, to copy it; loading the package checks the copy against it).
    Returns the manifest as written (with `model_file`, `sha256`, `requirements`, `wheel`, and
    `profile` when there is one).
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, dest / MODEL_FILE)
    manifest = dict(manifest)
    if profile_file is not None:
        manifest["profile"] = _copy_profile(profile_file, dest)
    manifest["format"] = "skops"
    manifest["model_file"] = MODEL_FILE
    manifest["sha256"] = sha256 or sha256_file(dest / MODEL_FILE)
    manifest["package"] = import_name(manifest["name"])
    manifest["requirements"] = requirements(manifest.get("versions") or {})
    manifest["wheel"] = f"dist/{wheel_name(manifest['package'], manifest['version'])}"
    atomic_write_text(dest / "manifest.json", dump_json(manifest))
    (dest / "requirements.txt").write_text("\n".join(manifest["requirements"]) + "\n", encoding="utf-8")
    return manifest


def _copy_profile(profile_file: Path, dest: Path) -> dict[str, Any]:
    """profile.json in the package folder and the manifest's description of it. It stays out of
    the wheel: predicting and serving do not read it, `nbops monitor` reads it from the registry."""
    from ..monitoring.profile import describe

    shutil.copyfile(profile_file, dest / PROFILE_FILE)
    with open(dest / PROFILE_FILE, encoding="utf-8") as handle:
        profile = json.load(handle)
    return {"file": PROFILE_FILE, "sha256": sha256_file(dest / PROFILE_FILE), **describe(profile)}


def build_rest(dest: Path, manifest: dict[str, Any]) -> None:
    """The wheel, the Dockerfile and the MLflow files, next to what `build_core` wrote."""
    built = _build_wheel(dest, manifest)
    if f"dist/{built.name}" != manifest["wheel"]:
        raise RuntimeError(f"the wheel was written as {built.name}, not the {manifest['wheel']} the manifest names")
    (dest / "Dockerfile").write_text(_dockerfile(manifest), encoding="utf-8")
    _write_mlflow(dest, manifest)


def write_card(dest: Path, manifest: dict[str, Any], report_html: str | None) -> None:
    """card.html: the manifest's summary over the evaluation report (rendered by nbconvert)."""
    from .cards import model_card

    (dest / "card.html").write_text(model_card(manifest, report_html), encoding="utf-8")


def copy_runtime(dest: Path) -> Path:
    """Copy the runtime package, whole and as it is, to the new folder `dest` (e.g. `<pkg>/_runtime`)."""
    from .. import runtime

    shutil.copytree(Path(runtime.__file__).parent, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    copy_function=shutil.copyfile)  # files get the umask's permissions, not the source's
    folder_mode = 0o777 & ~current_umask()
    for folder in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        folder.chmod(folder_mode)  # copytree copies each folder's mode from the source: undo that
    return dest


# --- the wheel -------------------------------------------------------------------------------


def _build_wheel(dest: Path, manifest: dict[str, Any]) -> Path:
    from .. import __version__

    package = manifest["package"]
    with tempfile.TemporaryDirectory(prefix="nbops-wheel-") as tmp:
        src = Path(tmp)
        pkg = src / package
        pkg.mkdir()
        copy_runtime(pkg / "_runtime")
        shutil.copyfile(dest / MODEL_FILE, pkg / MODEL_FILE)
        shutil.copyfile(dest / "manifest.json", pkg / "manifest.json")
        (pkg / "__init__.py").write_text(_init_py(manifest), encoding="utf-8")
        (pkg / "__main__.py").write_text(_MAIN_PY, encoding="utf-8")
        # the model is a zip of deflated arrays already: stored as is, and its digest reused
        return write_wheel(
            dest / "dist", pkg, name=package, version=manifest["version"],
            summary=f"{manifest['name']} {manifest['version']}, packaged by nbops",
            requires_python=f">={'.'.join(platform.python_version_tuple()[:2])}",
            requires=manifest["requirements"], readme=_readme(manifest),
            stored=[MODEL_FILE], sha256={MODEL_FILE: manifest["sha256"]}, generator=f"nbops {__version__}",
        )


def _init_py(manifest: dict[str, Any]) -> str:
    metrics = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in (manifest.get("metrics") or {}).items())
    return f'''"""{manifest["name"]} {manifest["version"]}: a model packaged by nbops.

    import {manifest["package"]}
    model = {manifest["package"]}.load()          # sha256-verified, no pickle
    model.predict(frame)                           # a DataFrame with the signature's columns

Metrics at promotion: {metrics or "none recorded"}.
Command line: python -m {manifest["package"]} predict INPUT.csv [-o OUT.csv] | serve [--port 8000]
"""

from pathlib import Path as _Path

from . import _runtime

__version__ = "{manifest["version"]}"
NAME = "{manifest["name"]}"
_HERE = _Path(__file__).resolve().parent


def load(n_jobs: int | None = 1) -> "_runtime.PackagedModel":
    """The packaged model; its file's sha256 is checked against the manifest on every load.

    Estimators predict in one thread by default, which gives bit for bit the probabilities the
    notebook recorded (a forest's threads sum in varying order); n_jobs=None keeps the model's
    own setting, e.g. for large batches.
    """
    return _runtime.PackagedModel.load(_HERE, n_jobs=n_jobs)


def manifest() -> dict:
    """The package manifest: signature, metrics, lineage, library versions."""
    import json

    return json.loads((_HERE / "manifest.json").read_text(encoding="utf-8"))
'''


_MAIN_PY = '''import sys
from pathlib import Path

from . import _runtime

sys.exit(_runtime.main(package_dir=Path(__file__).resolve().parent))
'''


def _readme(manifest: dict[str, Any]) -> str:
    return (
        f"# {manifest['name']} {manifest['version']}\n\nPackaged by nbops from the pipeline run at git commit "
        f"{(manifest.get('lineage') or {}).get('git', {}).get('commit')}.\n\n"
        f"    python -m {manifest['package']} predict input.csv -o predictions.csv\n"
        f"    python -m {manifest['package']} serve --port 8000\n"
    )


def _dockerfile(manifest: dict[str, Any]) -> str:
    wheel = manifest["wheel"]
    py = ".".join(platform.python_version_tuple()[:2])
    return f"""# Serves {manifest['name']} {manifest['version']} over HTTP on port 8000.
#   docker build -t {manifest['package'].replace('_', '-')}:{manifest['version']} .
#   docker run -p 8000:8000 {manifest['package'].replace('_', '-')}:{manifest['version']}
FROM python:{py}-slim
COPY {wheel} /tmp/
RUN pip install --no-cache-dir /tmp/{Path(wheel).name} && rm /tmp/{Path(wheel).name}
USER nobody
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
# 0.0.0.0 inside the container only; the port is published by `docker run -p`.
CMD ["python", "-m", "{manifest['package']}", "serve", "--host", "0.0.0.0", "--port", "8000"]
"""


# --- MLflow interop ----------------------------------------------------------------------------

_PYFUNC_LOADER = '''"""MLflow pyfunc loader for an nbops package (`mlflow.pyfunc.load_model(folder)`)."""
from pathlib import Path

import _nbops_runtime


class _NbopsPyfunc:
    def __init__(self, folder):
        self.model = _nbops_runtime.PackagedModel.load(folder)

    def predict(self, model_input, params=None):
        return self.model.predict(model_input)


def _load_pyfunc(path):
    return _NbopsPyfunc(Path(path))
'''


def _write_mlflow(dest: Path, manifest: dict[str, Any]) -> None:
    code = dest / "code"
    code.mkdir(exist_ok=True)
    (code / "nbops_pyfunc.py").write_text(_PYFUNC_LOADER, encoding="utf-8")
    copy_runtime(code / "_nbops_runtime")
    mlmodel = {
        "flavors": {
            "python_function": {
                "loader_module": "nbops_pyfunc",
                "code": "code",
                "data": ".",
                "env": {"virtualenv": "python_env.yaml"},
                "python_version": platform.python_version(),
            }
        },
        "model_uuid": manifest["sha256"][:32],
        "utc_time_created": manifest.get("created", ""),
        "signature": {
            "inputs": json.dumps([
                {"name": col["name"], "type": _mlflow_type(col["dtype"]), "required": True}
                for col in (manifest.get("signature") or {}).get("columns", [])
            ]),
            "outputs": None,
            "params": None,
        },
    }
    import yaml

    (dest / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    env = {
        "python": platform.python_version(),
        "build_dependencies": ["pip"],
        "dependencies": ["-r requirements.txt"],
    }
    (dest / "python_env.yaml").write_text(yaml.safe_dump(env, sort_keys=False), encoding="utf-8")


def _mlflow_type(dtype: str) -> str:
    if dtype.startswith("int"):
        return "long"
    if dtype.startswith("float"):
        return "double"
    if dtype == "bool":
        return "boolean"
    return "string"
