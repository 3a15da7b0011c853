"""The trust policy (nbops/runtime/trust.py): a model file never chooses what code runs.

Five malicious files (tests/func/malicious_models.py) at every entry point of the library and
the CLI: nbops.load_model, PackagedModel.load + predict, `nbops serve` (a real process), and
nbops.save_model. (The installed wheel is tested in tests/e2e/test_promote.py, in its venv.)
Each is refused with a one-line message naming the function, nothing happens (no file written,
no command run, no directory deleted) and the process goes on. A control test proves that the
same files do all of that when skops loads them with their types trusted, as the old
module-prefix policy did.
"""

from __future__ import annotations

import hashlib
import json
import operator
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.special
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from nbops.models import modelio, trust_catalog
from nbops import runtime
from nbops.core.exceptions import ModelFileError, ParamsError
from nbops.runtime import PackagedModel, PackageError, allowlist
from nbops.testing import command_env

from .malicious_models import EDITED, HELPER, KINDS, Evidence
from .test_runtime import _save as save  # nbops.save_model, as a pipeline stage runs it

COLUMNS = ["a", "b", "c"]


def legit_model():
    """A pipeline of ufunc and NumPy-function transformers, a score function and a tree ensemble."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(np.abs(rng.normal(size=(80, 3))), columns=COLUMNS)
    y = (X["a"] > 0.7).astype(int)
    model = make_pipeline(
        FunctionTransformer(np.log1p), FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": 5.0}),
        FunctionTransformer(scipy.special.expit), StandardScaler(), SelectKBest(k=2),
        HistGradientBoostingClassifier(max_iter=5, random_state=0),
    ).fit(X, y)
    return model, X


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project trusting HELPER, with the legit model saved by nbops.save_model and, beside it,
    each malicious file under a manifest that names it (as if saved by an older nbops)."""
    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(f"promote:\n  trusted_types: [{HELPER}]\n", encoding="utf-8")
    model, X = legit_model()
    saved = save(model, "legit", X.head(5), root)
    evidence = Evidence(root / "evidence")
    for kind in KINDS:
        data = evidence.build(kind)
        (root / "models" / f"{kind}.skops").write_bytes(data)
        manifest = {**saved, "name": kind, "model_file": f"{kind}.skops", "sha256": hashlib.sha256(data).hexdigest()}
        (root / "models" / f"{kind}.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def package(project: Path, name: str, where: Path, trusted: list[str] | None = None) -> Path:
    """A package folder as promotion lays it out, its manifest trusting `trusted` (HELPER)."""
    folder = where / name
    folder.mkdir(parents=True)
    manifest = json.loads((project / "models" / f"{name}.json").read_text())
    shutil.copy(project / "models" / manifest["model_file"], folder / "model.skops")
    manifest.update(model_file="model.skops", version="0.1.0", trusted_types=[HELPER] if trusted is None else trusted)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def run_python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_refused(message: str, kind: str) -> None:
    name = KINDS[kind][1]
    assert f"holds function {name}, which is not on the allow-list" in message, message
    assert "promote.trusted_types in params.yaml" in message and "\n" not in message
    assert "more:" not in message, message  # the attack is the only name refused


def outcome(lines: str) -> dict[str, str]:
    return dict(json.loads(line) for line in lines.splitlines() if line.startswith("["))


# --- the files are real ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_malicious_files_do_harm_when_their_types_are_trusted(tmp_path):
    """Control: loaded as skops loads them with get_untrusted_types trusted (what the old
    sklearn/numpy/scipy prefix policy let through), each file does what it was built for."""
    evidence = Evidence(tmp_path / "evidence")
    for kind in KINDS:
        (tmp_path / f"{kind}.skops").write_bytes(evidence.build(kind))
    code = (
        "import sys, numpy as np, pandas as pd, skops.io as sio\n"
        "for path in sys.argv[1:]:\n"
        "    data = open(path, 'rb').read()\n"
        "    types = sio.get_untrusted_types(data=data)\n"
        "    assert all(t.split('.')[0] in ('numpy', 'scipy', 'sklearn') for t in types), types\n"
        "    try:\n"
        "        sio.loads(data, trusted=types).predict(pd.DataFrame(np.zeros((2, 3))))\n"
        "    except Exception:\n"
        "        pass  # the attack ran in a transform; the steps after it fail\n"
        "print('alive')\n"
    )
    harmless = [str(tmp_path / f"{kind}.skops") for kind in KINDS if kind != "f2py"]
    done = run_python(code, *harmless, cwd=tmp_path)
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr
    assert sorted(evidence.harm()) == ["a directory was deleted", "a file was written", "a shell command ran", "exec ran Python"]
    f2py = run_python(code, str(tmp_path / "f2py.skops"), cwd=tmp_path)
    assert "Reading fortran codes" in f2py.stdout  # importing numpy.f2py.__main__ ran f2py's command line


# --- the policy ------------------------------------------------------------------------------


def test_the_schema_is_checked_before_anything_it_names_is_imported(tmp_path):
    evidence = Evidence(tmp_path / "evidence")
    (tmp_path / "f2py.skops").write_bytes(evidence.build("f2py"))
    code = (
        "import sys; from nbops.runtime import load_skops, PackageError\n"
        "try:\n    load_skops(open(sys.argv[1], 'rb').read(), 'f2py.skops')\n"
        "except PackageError as exc:\n    print(exc)\n"
        "print(sorted(m for m in ('numpy.f2py.__main__', 'skops', 'sklearn', 'numpy') if m in sys.modules))\n"
    )
    done = run_python(code, str(tmp_path / "f2py.skops"), cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert "holds function numpy.f2py.__main__.main, which is not on the allow-list" in lines[0]
    assert lines[1] == "[]"  # refused by reading schema.json: not even skops or numpy was imported


def test_skops_lists_a_files_types_without_importing_them(tmp_path):
    """What skops' get_untrusted_types does (we rely on our own reading, but checked it): it
    builds the node tree, and imports nothing the file names."""
    (tmp_path / "f2py.skops").write_bytes(Evidence(tmp_path / "e").build("f2py"))
    code = ("import sys, skops.io as sio\n"
            "print(sio.get_untrusted_types(data=open(sys.argv[1], 'rb').read()), 'numpy.f2py.__main__' in sys.modules)\n")
    done = run_python(code, str(tmp_path / "f2py.skops"), cwd=tmp_path)
    assert done.stdout.strip() == "['numpy.f2py.__main__.main'] False", done.stdout + done.stderr


def test_legitimate_models_load_with_the_built_in_policy_alone():
    model, X = legit_model()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, X["a"] > 0.7)
    for fitted in (model, forest, LogisticRegression().fit(X, X["a"] > 0.7)):
        data = sio.dumps(fitted)
        loaded = runtime.load_skops(data, "legit.skops")
        assert loaded.predict(X).tolist() == fitted.predict(X).tolist()


@pytest.mark.parametrize("obj, kind, name", [
    (FunctionTransformer(json.dumps), "function", "json.dumps"),
    (FunctionTransformer(np.linalg.norm), "function", "numpy.linalg.norm"),
    (FunctionTransformer(operator.methodcaller("to_csv", "x.csv")), "operator", "operator.methodcaller"),
    (FunctionTransformer(StandardScaler().fit([[0.0], [1.0]]).transform), "method",
     "sklearn.preprocessing._data.StandardScaler.transform"),
    (FunctionTransformer(np.log1p, kw_args={"where": Counter()}), "type", "collections.Counter"),
])
def test_anything_else_is_refused_by_name_with_the_way_to_allow_it(obj, kind, name):
    data = sio.dumps(obj)
    with pytest.raises(PackageError) as refused:
        runtime.load_skops(data, "m.skops")
    message = str(refused.value)
    assert message.startswith("m.skops: refusing to load the model: it holds ") and name in message
    assert message.endswith("add its exact name to promote.trusted_types in params.yaml") and "\n" not in message
    assert runtime.load_skops(data, "m.skops", [name]) is not None  # trusted by exact name, it loads


def test_functions_without_an_importable_name_get_their_own_message():
    def in_notebook(x):
        return x

    in_notebook.__module__ = "__main__"  # as a function defined in a notebook cell is
    with pytest.raises(PackageError, match=r"holds __main__\.in_notebook, a function defined in the notebook or script itself"):
        runtime.load_skops(sio.dumps(FunctionTransformer(in_notebook)), "m.skops")
    with pytest.raises(PackageError, match=r"holds tests\.func\.test_trust\.<lambda>, a lambda or nested function"):
        runtime.load_skops(sio.dumps(FunctionTransformer(lambda x: x)), "m.skops")


@pytest.mark.parametrize("data, message", [
    (b"not a zip", "not a readable skops model file (BadZipFile"),
    (None, "not a readable skops model file (RecursionError"),
])
def test_unreadable_files_are_refused_in_one_line(data, message):
    if data is None:  # a schema nested deeper than any parser's stack
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("schema.json", "[" * 100_000 + "]" * 100_000)
        data = buffer.getvalue()
    with pytest.raises(PackageError, match=message.replace("(", r"\(")):
        runtime.load_skops(data, "m.skops")


@pytest.mark.parametrize("value, problem", [("numpy.full_like", "must be a list"), (["full_like"], "not a full dotted name"),
                                            ([3], "not a full dotted name")])
def test_trusted_types_must_be_a_list_of_full_names(value, problem):
    with pytest.raises(PackageError, match=problem):
        runtime.parse_trusted_types(value, "manifest.json")
    with pytest.raises(ParamsError, match=f"params.yaml promote.trusted_types: .*{problem}"):
        modelio.parse_trusted_types(value)


def test_the_allow_list_holds_the_libraries_names():
    """The part of the catalog that needs no fitting, against the committed allow-list (fast);
    test_the_allow_list_is_current (slow) rebuilds all of it."""
    types, functions = trust_catalog.static_names()
    assert types <= allowlist.TYPES, sorted(types - allowlist.TYPES)[:10]
    assert functions <= allowlist.FUNCTIONS, sorted(functions - allowlist.FUNCTIONS)[:10]
    for name in ("sklearn.ensemble._forest.RandomForestClassifier", "sklearn.tree._tree.Tree",
                 "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "scipy.sparse._csr.csr_matrix",
                 "numpy.ndarray", "numpy.dtype"):
        assert name in allowlist.TYPES, name
    assert {"numpy.log1p", "numpy.exp", "numpy.sqrt", "numpy.absolute", "numpy.clip"} <= allowlist.FUNCTIONS
    assert not {name for _, name in KINDS.values()} & (allowlist.TYPES | allowlist.FUNCTIONS)


@pytest.mark.slow
def test_the_allow_list_is_current():
    """Regenerated from the installed scikit-learn (every estimator fitted), it equals the
    committed one; otherwise run `python -m nbops.models.trust_catalog --write`."""
    assert trust_catalog.differences(trust_catalog.build()) == []


# --- trusted types whose contents were edited ----------------------------------------------------

@pytest.mark.parametrize("kind", EDITED)
def test_trees_whose_indices_point_outside_their_arrays_are_refused(kind):
    """Refused on load, before anything predicts (in this process: a miss would fail the
    assertion, not crash, since nothing here predicts)."""
    build, name = EDITED[kind]
    with pytest.raises(PackageError) as refused:
        runtime.load_skops(build(), "m.skops")
    message = str(refused.value)
    assert message.startswith(f"m.skops: refusing to load the model: its {name} "), message
    assert message.endswith("(the file is corrupt or was edited; predicting would read outside its arrays)")


_PREDICT_AS_SKOPS_LOADS = """
import sys, numpy as np, skops.io as sio
data = open(sys.argv[1], "rb").read()
sio.loads(data, trusted=sio.get_untrusted_types(data=data)).predict(np.zeros((5, 3)))
print("alive")
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", EDITED)
def test_the_edited_trees_crash_a_process_that_predicts_with_them(kind, tmp_path):
    """Control: skops does not trust these types by default for this reason; loaded with them
    trusted, the first predict kills the process (SIGSEGV)."""
    path = tmp_path / f"{kind}.skops"
    path.write_bytes(EDITED[kind][0]())
    crashed = run_python(_PREDICT_AS_SKOPS_LOADS, str(path), cwd=tmp_path)
    assert crashed.returncode < 0 and "alive" not in crashed.stdout


def test_a_tree_whose_child_is_its_parent_is_refused():
    """A cycle would make predict loop forever: children must come after their parents."""
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    X = np.random.default_rng(0).normal(size=(40, 3))
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, X[:, 0] > 0)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["right_child"][0] = 0
    model.tree_ = Tree(*model.tree_.__reduce__()[1])
    model.tree_.__setstate__({**state, "nodes": nodes})
    with pytest.raises(PackageError, match="node 0 has right child 0 among"):
        runtime.load_skops(sio.dumps(model), "m.skops")


# --- nbops.save_model --------------------------------------------------------------------------


def test_save_model_refuses_in_the_cell_what_it_could_not_load_back(tmp_path):
    (tmp_path / "params.yaml").write_text("", encoding="utf-8")
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    model = make_pipeline(FunctionTransformer(np.linalg.norm, kw_args={"axis": 1, "keepdims": True}),
                          LogisticRegression()).fit(X, [0, 0, 1, 1])
    with pytest.raises(ModelFileError) as refused:
        save(model, "normed", X, tmp_path)
    message = str(refused.value)
    assert message.startswith("save_model('normed'): refusing to load the model: it holds function numpy.linalg.norm")
    assert message.endswith("nothing was saved") and "\n" not in message
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())

    (tmp_path / "params.yaml").write_text("promote:\n  trusted_types: [numpy.linalg.norm, numpy.full]\n", encoding="utf-8")
    saved = save(model, "normed", X, tmp_path)
    assert saved["trusted_types"] == ["numpy.linalg.norm"]  # the names of the project's list the file needs


# --- the entry points ----------------------------------------------------------------------------

_LOAD_MODEL = """
import json, nbops
from nbops.core.exceptions import NbopsError
for kind in ["exec", "shell", "rmtree", "write", "f2py", "legit"]:
    try:
        model = nbops.load_model(kind)
        print(json.dumps([kind, "loaded " + type(model).__name__]), flush=True)
    except NbopsError as exc:
        print(json.dumps([kind, str(exc)]), flush=True)
print("alive")
"""


def test_nbops_load_model_refuses_every_file_and_runs_nothing(project):
    evidence = Evidence(project / "evidence")
    done = run_python(_LOAD_MODEL, cwd=project)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("alive"), done.stderr
    results = outcome(done.stdout)
    for kind in KINDS:
        assert_refused(results[kind], kind)
        assert results[kind].startswith(f"{project / 'models' / kind}.skops: ")
    assert results["legit"] == "loaded Pipeline"
    assert evidence.harm() == []


_PACKAGE_LOAD = """
import json, sys
from nbops.runtime import PackagedModel, PackageError
for folder in sys.argv[1:]:
    try:
        model = PackagedModel.load(folder)
        predicted = model.predict({"dataframe_split": model.manifest["sample_input"]}).tolist()
        print(json.dumps([folder, f"predicted {predicted}"]), flush=True)
    except PackageError as exc:
        print(json.dumps([folder, str(exc)]), flush=True)
print("alive")
"""


def test_packaged_model_load_and_predict_refuse_every_file(project, tmp_path):
    evidence = Evidence(project / "evidence")
    folders = [package(project, kind, tmp_path) for kind in [*KINDS, "legit"]]
    done = run_python(_PACKAGE_LOAD, *map(str, folders), cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("alive"), done.stderr
    results = outcome(done.stdout)
    for kind in KINDS:
        assert_refused(results[str(tmp_path / kind)], kind)
    legit = json.loads((tmp_path / "legit" / "manifest.json").read_text())
    assert results[str(tmp_path / "legit")] == f"predicted {legit['sample_predictions']}"
    assert evidence.harm() == []


def test_a_package_trusts_exactly_its_manifests_list(project, tmp_path):
    """Without HELPER in its manifest, the same file is refused for the helper too."""
    with pytest.raises(PackageError, match=r"holds function numpy\.(full_like|testing\._private\.utils\.runstring).*\(and 1 more"):
        PackagedModel.load(package(project, "exec", tmp_path, trusted=[]))
    with pytest.raises(PackageError, match="trusted_types must be a list"):
        PackagedModel.load(package(project, "legit", tmp_path / "bad", trusted="numpy.full_like"))


def registry_with(project: Path, root: Path) -> dict[str, str]:
    """A registry folder holding each file as a version of model 'fp' (kind → version)."""
    versions = {}
    for i, kind in enumerate([*KINDS, "legit"], 1):
        version = f"0.{i}.0"
        folder = package(project, kind, root / "fp" / "staging-area")
        folder.rename(root / "fp" / version)
        manifest = json.loads((root / "fp" / version / "manifest.json").read_text())
        (root / "fp" / version / "manifest.json").write_text(json.dumps({**manifest, "name": "fp", "version": version}))
        (root / "fp" / version / ".complete").write_text("test\n")
        versions[kind] = version
    return versions


@pytest.mark.slow
def test_nbops_serve_refuses_every_file_at_start_up(project, tmp_path):
    evidence = Evidence(project / "evidence")
    registry = tmp_path / "registry"
    versions = registry_with(project, registry)
    env = command_env(tmp_path)
    for kind in KINDS:
        started = subprocess.run(
            ["nbops", "serve", f"fp@{versions[kind]}", "--registry", str(registry), "--port", "0"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        assert started.returncode == 1, (kind, started.stdout, started.stderr)
        error = started.stderr.strip()
        assert error.startswith("nbops: error: ") and "Traceback" not in error, error
        assert_refused(error, kind)
    assert evidence.harm() == []

    server = subprocess.Popen(["nbops", "serve", f"fp@{versions['legit']}", "--registry", str(registry), "--port", "0"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert "fp 0.6.0: serving on http://127.0.0.1:" in line, line
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_process_of_nbops_loads_without_walking_scikit_learn_and_keeps_skops_defaults(tmp_path):
    """In a process nbops owns (a server, the parity check), importing skops skips its walk of
    every scikit-learn module and its lookup of scipy.special's ufuncs; the model still loads and
    predicts, the malicious files are still refused, and skops' default trust lists are the same
    as in any other process."""
    model, X = legit_model()
    (tmp_path / "model.skops").write_bytes(sio.dumps(model))
    (tmp_path / "evil.skops").write_bytes(KINDS["exec"][0](tmp_path / "evidence"))
    script = f"""
import json, sys
from pathlib import Path
from nbops.runtime import trust
if sys.argv[1] == "own":
    trust.own_process()
model = trust.load_skops(Path({str(tmp_path / "model.skops")!r}).read_bytes(), "model.skops")
try:
    trust.load_skops(Path({str(tmp_path / "evil.skops")!r}).read_bytes(), "evil.skops")
    refused = False
except runtime.PackageError:
    refused = True
from skops.io import _trusted_types
from skops.io import _general
print(json.dumps({{"walked": "sklearn.semi_supervised" in sys.modules, "refused": refused,
                  "defaults": sorted(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES),
                  "ufuncs": sorted(_general.SCIPY_UFUNC_TYPE_NAMES),
                  "listing": len(dir(__import__("scipy.special").special))}}))
""".replace("runtime.PackageError", "trust.PackageError")
    results = {}
    for mode in ("own", "user"):
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, env=command_env(tmp_path))
        assert done.returncode == 0, done.stderr[-2000:]
        results[mode] = json.loads(done.stdout)
    assert results["own"]["refused"] and results["user"]["refused"]
    assert not (tmp_path / "evidence").exists()
    assert results["user"]["walked"] and not results["own"]["walked"]
    assert results["own"]["defaults"] == results["user"]["defaults"] and len(results["own"]["defaults"]) > 100
    assert results["own"]["ufuncs"] == results["user"]["ufuncs"] and len(results["own"]["ufuncs"]) > 100
    assert results["own"]["listing"] == results["user"]["listing"] > 100  # scipy.special's dir() is back
