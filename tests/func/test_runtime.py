"""The package runtime (the nbops/runtime/ package) on a real package folder: a model saved with
`nbops.save_model`, loaded, validated, predicted, scored from CSV and served over real HTTP."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import make_column_transformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from nbops.models import modelio
from nbops.promotion import package as packaging
from nbops.pipeline import record
from nbops import runtime
from nbops.core.exceptions import ModelFileError
from nbops.runtime import InputError, PackagedModel, PackageError
from nbops.runtime.parity import same_floats
from nbops.testing import assert_same_answers

RUNTIME_DIR = Path(runtime.__file__).parent
COLUMNS = ["Type", "Air temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Running"]


def _training_frame(n: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({
        "Type": rng.choice(["L", "M", "H"], size=n),
        "Air temperature [K]": rng.normal(300, 2, size=n).round(1),
        "Rotational speed [rpm]": rng.integers(1200, 2800, size=n),
        "Torque [Nm]": rng.normal(40, 10, size=n).round(1),
        "Running": rng.integers(0, 2, size=n).astype(bool),
    })
    y = ((X["Torque [Nm]"] > 45) & (X["Rotational speed [rpm]"] < 2000)).astype(int)
    return X, y


def _save(model, name: str, sample, root: Path) -> dict:
    """Save with the real nbops.save_model into `root` (as a pipeline stage would)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(record.ENV_ROOT, str(root))
        patch.setenv(record.ENV_STAGE, "train")
        patch.delenv(record.ENV_JOURNAL, raising=False)
        return record.save_model(model, name, sample_input=sample)


def _package(root: Path, saved: dict, folder: Path, **extra) -> Path:
    """A package folder as promotion lays it out: model.skops + manifest.json (name, version...)."""
    folder.mkdir(parents=True)
    shutil.copy(root / "models" / saved["model_file"], folder / "model.skops")
    manifest = {**saved, "model_file": "model.skops", "version": "0.1.0", **extra}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    X, y = _training_frame()
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(categories=[["L", "M", "H"]], handle_unknown="ignore"), ["Type"]),
            remainder="passthrough",
        ),
        RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0, n_jobs=2),
    ).fit(X, y)
    saved = _save(model, "failure-predictor", X.head(12), root)
    return _package(
        root, saved, root / "package",
        metrics={"roc_auc": 0.97},
        lineage={"git_commit": "abc123", "dirty": False, "stages": {"train": {"deps": {}}, "evaluate": {}}},
    )


@pytest.fixture(scope="module")
def model(package) -> PackagedModel:
    return PackagedModel.load(package)


@pytest.fixture(scope="module")
def manifest(package) -> dict:
    return json.loads((package / "manifest.json").read_text())


def records(manifest: dict, n: int | None = None) -> list[dict]:
    sample = manifest["sample_input"]
    return [dict(zip(sample["columns"], row)) for row in sample["data"][:n]]


def columns(manifest: dict) -> dict[str, list]:
    sample = manifest["sample_input"]
    return {name: list(values) for name, values in zip(sample["columns"], zip(*sample["data"]))}


def assert_same_probabilities(actual, recorded) -> None:
    """Probabilities computed in two processes: the same up to the order of their sums (the forest
    predicts with n_jobs=2 threads, which add the trees' votes in whatever order they finish;
    another BLAS or CPU may too), see runtime/parity.py."""
    assert same_floats(np.asarray(actual), np.asarray(recorded)), (actual, recorded)


# --- loading -------------------------------------------------------------------------------


def test_load_and_predict_give_the_recorded_sample_predictions(model, manifest):
    assert (model.name, model.version, model.columns) == ("failure-predictor", "0.1.0", COLUMNS)
    assert model.manifest["sha256"] == manifest["sha256"]
    assert_same_answers(manifest, predictions=model.predict(records(manifest)), probabilities=model.predict_proba(records(manifest)))
    assert_same_answers(manifest, predictions=model.predict(columns(manifest)))
    frame = pd.DataFrame(manifest["sample_input"]["data"], columns=manifest["sample_input"]["columns"])
    assert_same_answers(manifest, predictions=model.predict(frame[list(reversed(COLUMNS))]))


def test_n_jobs_1_and_one_pass_prediction_change_nothing(package, manifest):
    fast = PackagedModel.load(package, n_jobs=1)
    assert fast.model.get_params()["randomforestclassifier__n_jobs"] == 1
    fast.warmup()
    assert fast._answers is not None  # a forest: predictions derived from the one predict_proba pass
    assert fast._transforms  # a pipeline: its column transformer runs once for both answers
    # not on numpy columns: pandas makes the passthrough of a bool beside numbers an object array
    assert fast._columns_step is None
    predictions, probabilities = fast.predict_frame(fast.frame(records(manifest)))
    assert_same_answers(manifest, predictions=predictions, probabilities=probabilities)
    assert predictions.tolist() == fast.model.predict(fast.frame(records(manifest))).tolist()  # this process, these rows
    # in one thread the trees are summed in order: the same bits on every call
    assert fast.predict_proba(records(manifest)).tolist() == probabilities.tolist()


def test_tampered_model_file_is_refused(package, tmp_path):
    copy = shutil.copytree(package, tmp_path / "package")
    (copy / "model.skops").write_bytes((copy / "model.skops").read_bytes() + b"\0")
    with pytest.raises(PackageError, match=r"model.skops: sha256 .* does not match the manifest's"):
        PackagedModel.load(copy)


def test_missing_package_files_are_named(package, tmp_path):
    with pytest.raises(PackageError, match="manifest.json: not found"):
        PackagedModel.load(tmp_path)
    copy = shutil.copytree(package, tmp_path / "package")
    (copy / "model.skops").unlink()
    with pytest.raises(PackageError, match="model.skops: model file not found"):
        PackagedModel.load(copy)
    (copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PackageError, match="unreadable manifest"):
        PackagedModel.load(copy)


def test_a_package_trusts_exactly_its_manifests_extra_names(package, tmp_path):
    # json.dumps is a function skops stores by name; it is not on the built-in allow-list
    data = sio.dumps(FunctionTransformer(func=json.dumps))
    folder = shutil.copytree(package, tmp_path / "package")
    (folder / "model.skops").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    manifest["trusted_types"] = []
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(PackageError, match=r"model.skops: refusing to load the model: it holds function json.dumps"):
        PackagedModel.load(folder)
    manifest["trusted_types"] = ["json.dumps"]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert PackagedModel.load(folder).model.func is json.dumps


def test_modelio_uses_the_runtime_policy():
    data = sio.dumps(FunctionTransformer(func=json.dumps))
    with pytest.raises(ModelFileError, match="m.skops: refusing to load the model: it holds function json.dumps"):
        modelio.loads(data, "m.skops")
    assert modelio.loads(data, "m.skops", ["json.dumps"]).func is json.dumps
    with pytest.raises(ModelFileError, match="not a readable skops model file"):
        modelio.loads(b"not a zip", "m.skops")


def test_runtime_is_standalone(tmp_path):
    """Copied as <pkg>/_runtime/ it imports only the stdlib at module level and, of its own
    package, only its sibling modules (relative imports): nothing of nbops."""
    sources = sorted(RUNTIME_DIR.glob("*.py"))
    siblings = {path.stem for path in sources}
    assert {"__init__", "errors", "trust", "signature", "model", "jsonio", "http", "cli"} <= siblings
    top_level = set()
    for source in sources:
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                top_level.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                top_level.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1, f"{source.name}: import from outside the runtime package"
                named = [node.module] if node.module else [alias.name for alias in node.names]
                assert set(named) <= siblings, f"{source.name}: imports {named}"
    assert top_level <= set(sys.stdlib_module_names), top_level - set(sys.stdlib_module_names)
    packaging.copy_runtime(tmp_path / "_runtime")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _runtime; "
        "assert _runtime.PackagedModel.__module__ == '_runtime.model'; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'nbops', 'numpy', 'pandas', 'sklearn', 'skops', 'uvicorn'}))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_copies_hold_the_whole_runtime_and_no_bytecode(tmp_path):
    (RUNTIME_DIR / "__pycache__").mkdir(exist_ok=True)  # present once anything imported it
    copied = packaging.copy_runtime(tmp_path / "_runtime")
    names = sorted(p.name for p in copied.rglob("*"))
    assert names == sorted(p.name for p in RUNTIME_DIR.rglob("*") if "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert "__init__.py" in names and not [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


# --- inputs ---------------------------------------------------------------------------------


def test_every_payload_shape_gives_the_same_validated_frame(model, manifest):
    rows = records(manifest, 3)
    split = {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in rows]}
    shapes = [
        rows, {"records": rows}, {"dataframe_records": rows}, {"dataframe_split": split},
        {"columns": {c: [r[c] for r in rows] for c in COLUMNS}},
        {c: [r[c] for r in rows] for c in reversed(COLUMNS)},
    ]
    frames = [model.frame(shape) for shape in shapes]
    assert list(frames[0].columns) == COLUMNS
    assert [str(t) for t in frames[0].dtypes] == ["str", "float64", "int64", "float64", "bool"]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])


def test_ints_are_fine_for_float_columns(model, manifest):
    row = {**records(manifest, 1)[0], "Air temperature [K]": 300}
    assert model.frame([row])["Air temperature [K]"].dtype == np.float64


def _bad(manifest: dict, **changes):
    row = dict(records(manifest, 1)[0])
    for key, value in changes.items():
        key = key.replace("_", " ")
        if value is DROP:
            row.pop(key)
        else:
            row[key] = value
    return [row]


DROP = object()
T, AIR, SPEED, TORQUE, RUN = COLUMNS


@pytest.mark.parametrize("make, message, status", [
    (lambda m: [], "empty batch: no rows to predict", 422),
    (lambda m: {"records": []}, "empty batch", 422),
    (lambda m: [{**records(m, 1)[0], "Color": "red"}], "row 1: unexpected column 'Color'", 422),
    (lambda m: [{k: v for k, v in records(m, 1)[0].items() if k != TORQUE}], "row 1: missing column 'Torque [Nm]'", 422),
    (lambda m: records(m, 2) + [{k: v for k, v in records(m, 1)[0].items() if k != T}], "row 3: missing column 'Type'", 422),
    (lambda m: [{**records(m, 1)[0], TORQUE: "high"}], "column 'Torque [Nm]' expects float64 numbers, got str 'high' in row 1", 422),
    (lambda m: [{**records(m, 1)[0], SPEED: 1500.5}], "column 'Rotational speed [rpm]' expects int64 integers, got float 1500.5", 422),
    (lambda m: [{**records(m, 1)[0], AIR: True}], "column 'Air temperature [K]' expects float64 numbers, got bool True", 422),
    (lambda m: [{**records(m, 1)[0], RUN: 1}], "column 'Running' expects true/false, got int 1", 422),
    (lambda m: [{**records(m, 1)[0], T: 7}], "column 'Type' expects strings, got int 7", 422),
    (lambda m: [{**records(m, 1)[0], T: None}], "column 'Type' has a null in row 1", 422),
    (lambda m: records(m, 1) + [{**records(m, 1)[0], TORQUE: None}], "column 'Torque [Nm]' has a null in row 2", 422),
    (lambda m: [{**records(m, 1)[0], SPEED: 2**70}], "out of the int64 range", 422),
    (lambda m: "L,300,1500", "expected a list of records", 422),
    (lambda m: [records(m, 1)[0], [1, 2]], "row 2 is a list, not an object of column values", 422),
    (lambda m: {"columns": {**columns(m), AIR: [300.0]}}, "columns have different lengths", 422),
    (lambda m: {**columns(m), AIR: 300.0}, "column 'Air temperature [K]' must be a list of values", 422),
    (lambda m: {"dataframe_split": {"columns": COLUMNS, "data": [[1, 2]]}}, "dataframe_split: row 1 has 2 values for 5 columns", 422),
    (lambda m: {"dataframe_split": {"columns": COLUMNS[:-1], "data": []}}, "dataframe_split: missing column 'Running'", 422),
    (lambda m: records(m) * 3, "batch of 36 rows is over the limit of 30 rows", 413),
])
def test_bad_inputs_are_named(model, manifest, make, message, status):
    with pytest.raises(InputError) as caught:
        model.frame(make(manifest), max_rows=30)
    assert message in str(caught.value)
    assert caught.value.status == status
    assert "\n" not in str(caught.value)


def test_dataframe_inputs_are_checked_too(model, manifest):
    frame = pd.DataFrame(manifest["sample_input"]["data"], columns=COLUMNS)
    with pytest.raises(InputError, match="missing column 'Running'"):
        model.predict(frame.drop(columns=RUN))
    with pytest.raises(InputError, match="column 'Torque \\[Nm\\]' expects float64 numbers, got str 'x' in row 2"):
        model.predict(frame.astype({TORQUE: object}).assign(**{TORQUE: [1.0, "x"] + [1.0] * 10}))
    with pytest.raises(InputError, match="column 'Rotational speed \\[rpm\\]' has a null in row 1"):
        model.predict(frame.assign(**{SPEED: [None] + [1500] * 11}))


def test_nullable_columns_accept_nulls(package, tmp_path, manifest):
    folder = shutil.copytree(package, tmp_path / "package")
    changed = json.loads((folder / "manifest.json").read_text())
    changed["signature"]["columns"][3]["nullable"] = True
    (folder / "manifest.json").write_text(json.dumps(changed), encoding="utf-8")
    nullable = PackagedModel.load(folder)
    frame = nullable.frame(records(manifest, 1) + [{**records(manifest, 1)[0], TORQUE: None}])
    assert np.isnan(frame[TORQUE].iloc[1])


def test_a_model_without_probabilities_on_an_array_signature(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    saved = _save(Ridge().fit(X, X @ [1.0, 2.0, 3.0]), "ridge", X[:5], tmp_path)
    regressor = PackagedModel.load(_package(tmp_path, saved, tmp_path / "package"))
    assert not hasattr(regressor, "predict_proba")
    # a linear model's sums: a copy of the rows laid out elsewhere may take another BLAS path
    assert_same_answers(saved, predictions=regressor.predict([[float(v) for v in row] for row in X[:5]]))
    assert_same_answers(saved, predictions=regressor.predict({"dataframe_split": {"data": X[:5].tolist()}}))


# --- batch scoring: python -m <pkg> predict ----------------------------------------------------


def test_main_predict_scores_a_csv(package, manifest, tmp_path, capsys):
    source = tmp_path / "in.csv"
    pd.DataFrame(manifest["sample_input"]["data"], columns=COLUMNS).to_csv(source, index=False)
    assert runtime.main(["predict", str(source), "-o", str(tmp_path / "out.csv")], package_dir=package) == 0
    scored = pd.read_csv(tmp_path / "out.csv")
    assert list(scored.columns) == COLUMNS + ["prediction", "probability_0", "probability_1"]
    assert_same_answers(manifest, predictions=scored["prediction"], probabilities=scored[["probability_0", "probability_1"]])

    bad = tmp_path / "bad.csv"
    lines = source.read_text().splitlines()
    lines[1] = "," + lines[1].split(",", 1)[1]  # an empty Type in the first row
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert runtime.main(["predict", str(bad)], package_dir=package) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: column 'Type' has a null in row 1; the model needs a value (strings)"
    assert runtime.main(["predict", str(tmp_path / "nope.csv")], package_dir=package) == 1
    assert "nope.csv: file not found" in capsys.readouterr().err


def test_main_serve_reports_a_busy_port_in_one_line(package, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert runtime.main(["serve", "--port", str(port)], package_dir=package) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and "\n" not in err


def test_serve_predicts_in_one_thread(package):
    served = PackagedModel.load(package)
    assert served.model.get_params()["randomforestclassifier__n_jobs"] == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match="cannot listen on"):
            runtime.serve(served, port=busy.getsockname()[1])
    assert served.model.get_params()["randomforestclassifier__n_jobs"] == 1


def _installed_copy(package: Path, where: Path) -> Path:
    """What a generated package holds: <pkg>/_runtime/ (verbatim), __main__.py, the package files."""
    pkg = where / "fp_model"
    shutil.copytree(package, pkg)
    packaging.copy_runtime(pkg / "_runtime")
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\nfrom ._runtime import PackagedModel\n\n"
        "def load():\n    return PackagedModel.load(Path(__file__).parent)\n", encoding="utf-8")
    (pkg / "__main__.py").write_text(
        "import sys\nfrom pathlib import Path\nfrom ._runtime import main\n\n"
        "sys.exit(main(package_dir=Path(__file__).parent))\n", encoding="utf-8")
    return pkg


def _isolated_env(where: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "PYTHON"))}
    env["PYTHONPATH"] = str(where)
    return env


def test_python_m_package_predict_without_nbops(package, manifest, tmp_path):
    pkg = _installed_copy(package, tmp_path / "site")
    source = tmp_path / "in.csv"
    pd.DataFrame(manifest["sample_input"]["data"], columns=COLUMNS).to_csv(source, index=False)
    # nbops is importable in this interpreter, so prove the package does not import it
    code = ("import runpy, sys; sys.argv = ['fp_model', 'predict', sys.argv[1]]\n"
            "try:\n    runpy.run_module('fp_model', run_name='__main__')\n"
            "except SystemExit as e:\n    assert 'nbops' not in sys.modules; raise")
    result = subprocess.run([sys.executable, "-c", code, str(source)], cwd=tmp_path,
                            env=_isolated_env(pkg.parent), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert_same_answers(manifest, predictions=scored["prediction"])


# --- the HTTP server, over real HTTP -----------------------------------------------------------


#: `python -m <pkg>` with orjson made unimportable: the server's standard-library JSON fallback.
_WITHOUT_ORJSON = "import runpy, sys; sys.modules['orjson'] = None; runpy.run_module(sys.argv.pop(1), run_name='__main__')"


class Server:
    def __init__(self, pkg: Path, log: Path, *args: str, token: str | None = None, orjson: bool = True) -> None:
        env = _isolated_env(pkg.parent)
        if token:
            env[runtime.TOKEN_ENV] = token
        self.log = log
        self.started = time.monotonic()
        start = ["-m", pkg.name] if orjson else ["-c", _WITHOUT_ORJSON, pkg.name]
        self.process = subprocess.Popen(
            [sys.executable, *start, "serve", "--port", "0", *args],
            cwd=pkg.parent, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )
        deadline = time.monotonic() + 60
        while "serving on http://" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        line = next(line for line in log.read_text().splitlines() if "serving on http://" in line)
        self.url = line.split("serving on ", 1)[1].split(" ", 1)[0]
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        from nbops.testing import stop_process

        stop_process(self.process)


@pytest.fixture(scope="module")
def server(package, tmp_path_factory):
    where = tmp_path_factory.mktemp("served")
    running = Server(_installed_copy(package, where / "site"), where / "server.log", "--max-rows", "50")
    yield running
    running.client.close()
    running.stop()


def test_server_logs_one_line_and_binds_localhost(server):
    lines = server.log.read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("failure-predictor 0.1.0: serving on http://127.0.0.1:")


def test_server_predicts_records_and_columns(server, manifest):
    expected = {
        "predictions": manifest["sample_predictions"], "probabilities": manifest["sample_probabilities"],
        "classes": [0, 1], "model": "failure-predictor", "version": "0.1.0",
    }
    for payload in (records(manifest), {"records": records(manifest)}, {"columns": columns(manifest)},
                    {"dataframe_split": manifest["sample_input"]}):
        answer = server.client.post("/predict", json=payload)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        got = answer.json()
        assert_same_answers(manifest, predictions=got.pop("predictions"), probabilities=got.pop("probabilities"))
        assert got == {k: v for k, v in expected.items() if k not in ("predictions", "probabilities")}


def test_server_health_and_metadata(server, manifest):
    assert server.client.get("/health").json() == {"status": "ok", "model": "failure-predictor", "version": "0.1.0"}
    metadata = server.client.get("/metadata").json()
    assert (metadata["name"], metadata["version"]) == ("failure-predictor", "0.1.0")
    assert metadata["signature"] == manifest["signature"]
    assert metadata["metrics"] == {"roc_auc": 0.97}
    assert metadata["lineage"] == {"git_commit": "abc123", "dirty": False, "stages": ["evaluate", "train"]}
    # without a decision threshold, the label is the model's own prediction
    assert metadata["label"] == {"rule": "model", "text": "the most probable class (the model's predict)"}
    # the example in the metadata is a valid request
    assert server.client.post("/predict", json=metadata["example"]).status_code == 200


@pytest.mark.parametrize("request_args, status, message", [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "request body is not valid JSON"),
    ({"content": b""}, 400, "empty request body"),
    ({"content": b"[NaN]"}, 400, "not valid JSON"),
    ({"json": {"rows": []}}, 422, "column"),
    ({"json": "L,300"}, 422, "expected a list of records"),
    ({"json": []}, 422, "empty batch: no rows to predict"),
    ({"json": {"columns": {c: [] for c in COLUMNS}}}, 422, "empty batch"),
    ("missing", 422, "row 1: missing column 'Torque [Nm]'"),
    ("extra", 422, "row 1: unexpected column 'Color'"),
    ("string", 422, "column 'Torque [Nm]' expects float64 numbers, got str 'high' in row 1"),
    ("float_in_int", 422, "column 'Rotational speed [rpm]' expects int64 integers, got float 1500.5 in row 1"),
    ("null", 422, "column 'Type' has a null in row 1"),
    ("too_many_rows", 413, "batch of 60 rows is over the limit of 50 rows"),
    ({"content": b" " * (2 << 20)}, 413, "over the limit of 1048576 bytes"),
])
def test_server_refuses_bad_input_and_stays_up(server, manifest, request_args, status, message):
    row = records(manifest, 1)[0]
    named = {
        "missing": [{k: v for k, v in row.items() if k != TORQUE}],
        "extra": [{**row, "Color": "red"}],
        "string": [{**row, TORQUE: "high"}],
        "float_in_int": [{**row, SPEED: 1500.5}],
        "null": [{**row, T: None}],
        "too_many_rows": [row] * 60,
    }
    if isinstance(request_args, str):
        request_args = {"json": named[request_args]}
    answer = server.client.post("/predict", **request_args)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert server.client.get("/health").status_code == 200
    assert server.client.post("/predict", json=[row]).status_code == 200


def test_server_routes_and_methods(server):
    assert server.client.get("/predict").status_code == 405
    assert server.client.get("/nope").json()["error"].startswith("no route /nope")
    assert server.process.poll() is None


@pytest.mark.parametrize("content_type, status", [
    ("application/json", 200), ("application/json; charset=utf-8", 200), ("APPLICATION/JSON", 200),
    ("application/vnd.api+json", 200), (None, 200),
    ("text/csv", 415), ("application/x-www-form-urlencoded", 415), ("text/plain; charset=utf-8", 415),
    ("multipart/form-data; boundary=x", 415), ("", 415),
])
def test_server_answers_415_for_a_body_declared_as_not_json(server, manifest, content_type, status):
    headers = {} if content_type is None else {"content-type": content_type}
    answer = server.client.post("/predict", content=json.dumps(records(manifest, 2)).encode(), headers=headers)
    assert answer.status_code == status, answer.text
    if status == 415:
        assert answer.json()["error"].endswith("is not JSON; send the body as application/json")
    assert server.client.get("/health").status_code == 200


def test_server_refuses_compressed_bodies_with_415(server, manifest):
    import gzip

    body = gzip.compress(json.dumps(records(manifest, 2)).encode())
    answer = server.client.post("/predict", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert answer.status_code == 415 and "Content-Encoding gzip is not supported" in answer.json()["error"]


@pytest.fixture(scope="module")
def stdlib_server(package, tmp_path_factory):
    where = tmp_path_factory.mktemp("served-stdlib")
    running = Server(_installed_copy(package, where / "site"), where / "server.log", orjson=False)
    yield running
    running.client.close()
    running.stop()


@pytest.mark.parametrize("codec", ["orjson", "stdlib json"])
def test_deeply_nested_bodies_get_400_not_500(server, stdlib_server, manifest, codec):
    running = server if codec == "orjson" else stdlib_server
    for depth in (2_000, 200_000):  # beyond both parsers' nesting limits; 400 KB, under the body limit
        answer = running.client.post("/predict", content=b"[" * depth + b"]" * depth, headers={"content-type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("request body is not valid JSON")
    assert running.client.post("/predict", json=records(manifest, 2)).status_code == 200
    assert running.process.poll() is None


def test_the_stdlib_server_predicts_like_the_orjson_one(server, stdlib_server, manifest):
    fast = server.client.post("/predict", json=records(manifest)).json()
    slow = stdlib_server.client.post("/predict", json=records(manifest)).json()
    assert_same_probabilities(slow.pop("probabilities"), fast.pop("probabilities"))
    assert slow == fast
    assert "nested too deeply" in stdlib_server.client.post("/predict", content=b"[" * 5000 + b"]" * 5000).json()["error"]


def test_bearer_token_is_required_when_set(package, manifest, tmp_path):
    secured = Server(_installed_copy(package, tmp_path / "site"), tmp_path / "server.log", token="s3cret")
    try:
        payload = records(manifest, 2)
        assert "bearer token required" in secured.log.read_text()
        missing = secured.client.post("/predict", json=payload)
        assert missing.status_code == 401 and "missing bearer token" in missing.json()["error"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = secured.client.post("/predict", json=payload, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]
        assert secured.client.get("/metadata").status_code == 401
        assert secured.client.get("/health").status_code == 200  # liveness probes carry no token
        ok = secured.client.post("/predict", json=payload, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
        # RFC 7235: the scheme's name is case-insensitive, and one or more spaces may follow it
        for given in ("bearer s3cret", "BEARER s3cret", "BeArEr   s3cret"):
            assert secured.client.post("/predict", json=payload, headers={"Authorization": given}).status_code == 200, given
        # the token itself is compared exactly; other schemes are refused
        for given in ("Bearer S3CRET", "Basic s3cret", "Bearers3cret", "s3cret"):
            refused = secured.client.post("/predict", json=payload, headers={"Authorization": given})
            assert refused.status_code == 401 and "wrong bearer token" in refused.json()["error"], given
    finally:
        secured.client.close()
        secured.stop()


def test_app_without_orjson_uses_the_stdlib_and_answers_the_same(model, manifest, monkeypatch):
    """The ASGI app itself (no server), with orjson made unimportable: json's fallback path."""
    import asyncio

    async def call(app, method, path, body=b""):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
            return await client.request(method, path, content=body)

    fast = asyncio.run(call(runtime.create_app(model), "POST", "/predict", json.dumps(records(manifest)).encode()))
    monkeypatch.setitem(sys.modules, "orjson", None)
    app = runtime.create_app(model)
    slow = asyncio.run(call(app, "POST", "/predict", json.dumps(records(manifest)).encode()))
    assert slow.status_code == fast.status_code == 200
    slow_answer, fast_answer = slow.json(), fast.json()
    assert_same_probabilities(slow_answer.pop("probabilities"), fast_answer.pop("probabilities"))
    assert slow_answer == fast_answer
    refused = asyncio.run(call(app, "POST", "/predict", b'[{"Torque [Nm]": NaN}]'))
    assert refused.status_code == 400 and "NaN is not valid JSON" in refused.json()["error"]
