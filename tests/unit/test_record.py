import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from nbops.models import modelio
from nbops.pipeline import record
from nbops.core.exceptions import ModelFileError, RecordError


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.integers(0, 5, size=60)})
    y = (X["a"] > 0).astype(int)
    return DecisionTreeClassifier(random_state=0).fit(X, y), X


def test_metrics_accumulate_in_one_file_per_stage(stage_root):
    record.log_metric("auc", np.float64(0.9))
    record.log_metric({"f1": 0.5, "n": 3})
    record.log_metric("auc", 0.95)
    assert json.loads((stage_root / "metrics/unit.json").read_text()) == {"auc": 0.95, "f1": 0.5, "n": 3}


@pytest.mark.parametrize("value", ["high", float("nan"), [1, 2], None])
def test_metric_values_must_be_finite_numbers(stage_root, value):
    with pytest.raises(RecordError, match="metric 'm'"):
        record.log_metric("m", value)
    assert not (stage_root / "metrics/unit.json").exists()


def test_journal_lists_what_was_written(stage_root, monkeypatch):
    journal = stage_root / "journal.txt"
    monkeypatch.setenv(record.ENV_JOURNAL, str(journal))
    record.log_metric("m", 1)
    record.log_plot("curve", {"x": [1, 2], "y": [3, 4]})
    assert journal.read_text().split() == ["metrics/unit.json", "plots/unit/curve.json"]


def test_plot_rows_from_dataframe_dict_and_validation(stage_root):
    record.log_plot("a", pd.DataFrame({"x": [1, 2], "y": [0.5, np.nan]}), x="x", y="y")
    assert json.loads((stage_root / "plots/unit/a.json").read_text()) == [{"x": 1, "y": 0.5}, {"x": 2, "y": None}]
    with pytest.raises(RecordError, match="y='z' is not a column"):
        record.log_plot("b", {"x": [1], "y": [2]}, y="z")
    with pytest.raises(RecordError, match="unknown template"):
        record.log_plot("c", {"x": [1]}, template="pie")
    with pytest.raises(RecordError, match="plain file name"):
        record.log_plot("../evil", {"x": [1]})


def test_confusion_matrix_rows_are_per_sample(stage_root):
    record.log_confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]))
    rows = json.loads((stage_root / "plots/unit/confusion_matrix.json").read_text())
    assert rows == [{"actual": "0", "predicted": "0"}, {"actual": "1", "predicted": "0"}, {"actual": "1", "predicted": "1"}]


def test_save_model_writes_skops_and_manifest(stage_root, fitted):
    model, X = fitted
    manifest = record.save_model(model, "tree", sample_input=X.head(7))
    path = stage_root / "models/tree.skops"
    assert manifest["sha256"] == modelio.sha256_bytes(path.read_bytes())
    assert manifest["signature"]["columns"] == [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "int64"}]
    assert manifest["sample_predictions"] == model.predict(X.head(7)).tolist()
    assert len(manifest["sample_probabilities"]) == 7
    on_disk = json.loads((stage_root / "models/tree.json").read_text())
    assert on_disk == manifest and on_disk["versions"]["scikit-learn"]
    # the recorded sample replays exactly: every float kept all its digits
    replay = pd.DataFrame(manifest["sample_input"]["data"], columns=manifest["sample_input"]["columns"])
    assert model.predict_proba(replay).tolist() == manifest["sample_probabilities"]
    assert record.load_model("tree").predict(X).tolist() == model.predict(X).tolist()


def test_model_bytes_are_deterministic(fitted):
    model, _ = fitted
    first = modelio.dumps(model)
    clone = DecisionTreeClassifier(random_state=0).fit(*_xy())
    assert modelio.dumps(model) == first
    assert modelio.dumps(clone) == modelio.dumps(DecisionTreeClassifier(random_state=0).fit(*_xy()))


def test_arrays_that_do_not_shrink_are_stored_and_the_rest_deflated():
    """Measured floats (here 2 MB of a k-nearest-neighbours model's training data) barely deflate:
    they are stored as they are, so saving and loading skip zlib; a tree's arrays are deflated."""
    import io
    import zipfile

    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(25_000, 10))
    knn = KNeighborsClassifier(n_neighbors=3).fit(X, (X[:, 0] > 0).astype(int))
    data = modelio.dumps(knn)
    entries = {info.file_size: info.compress_type for info in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    assert entries[max(entries)] == zipfile.ZIP_STORED  # the 2 MB training set
    assert zipfile.ZIP_DEFLATED in entries.values()  # its schema and the small arrays
    assert modelio.dumps(knn) == data
    assert modelio.runtime.load_skops(data).predict(X[:50]).tolist() == knn.predict(X[:50]).tolist()
    tree = zipfile.ZipFile(io.BytesIO(modelio.dumps(DecisionTreeClassifier(random_state=0).fit(X, X[:, 1] > 0))))
    assert {info.compress_type for info in tree.infolist()} == {zipfile.ZIP_DEFLATED}


def _xy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    return X, (X[:, 0] > 0).astype(int)


def test_tampered_model_file_is_refused(stage_root, fitted):
    model, X = fitted
    record.save_model(model, "tree", sample_input=X.head(3))
    path = stage_root / "models/tree.skops"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelFileError, match="does not match the recorded"):
        record.load_model("tree")


def test_names_outside_the_trust_policy_are_refused():
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    data = sio.dumps(FunctionTransformer(os.system))  # a builtin function: skops stores it by name
    with pytest.raises(ModelFileError, match=r"model.skops: refusing to load the model: it holds posix\.system, which is on neither allow-list"):
        modelio.loads(data, "model.skops")


def test_save_model_rejects_bad_names_and_missing_samples(stage_root, fitted):
    model, X = fitted
    with pytest.raises(RecordError, match="plain name"):
        record.save_model(model, "../x", sample_input=X)
    with pytest.raises(RecordError, match="sample_input must hold"):
        record.save_model(model, "x", sample_input=X.head(0))
    with pytest.raises(RecordError, match="could not predict"):
        record.save_model(LogisticRegression(), "x", sample_input=X)


def test_read_records_from_notebook_json():
    nb = {"cells": [{"outputs": [{"data": {record.RECORD_MIME: {"kind": "metric", "name": "m"}}}, {"text": "x"}]}]}
    assert record.read_records(nb) == [{"kind": "metric", "name": "m"}]


@pytest.mark.parametrize("session, stage", [
    ("notebooks/train.ipynb", "train"), ("notebooks/train.py", "train"), ("Console 1", "notebook"),
])
def test_interactive_stage_is_the_notebook_or_its_paired_script(monkeypatch, session, stage):
    from nbops.pipeline.record import current_stage

    monkeypatch.delenv("NBOPS_STAGE", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", session)
    assert current_stage() == stage


def test_recorded_files_get_ordinary_permissions(stage_root):
    import os

    record.log_metric("m", 1)
    umask = os.umask(0)
    os.umask(umask)
    assert (stage_root / "metrics/unit.json").stat().st_mode & 0o777 == 0o666 & ~umask


# --- exploring records into a scratch folder; only `nbops run` writes the stage's outputs ------


@pytest.fixture
def exploring(tmp_path, monkeypatch):
    """An interactive session of notebooks/explore.ipynb in the project `tmp_path` (no `nbops run`)."""
    monkeypatch.setenv(record.ENV_ROOT, str(tmp_path))
    monkeypatch.delenv(record.ENV_STAGE, raising=False)
    monkeypatch.delenv(record.ENV_JOURNAL, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/explore.ipynb")
    monkeypatch.chdir(tmp_path)
    for state in (record._metrics, record._announced, record._read_from_scratch):
        state.clear()
    yield tmp_path
    for state in (record._metrics, record._announced, record._read_from_scratch):
        state.clear()


def _as_pipeline(monkeypatch, stage):
    monkeypatch.setenv(record.ENV_STAGE, stage)


def test_exploring_records_into_scratch_and_says_so_once(exploring, fitted, capsys):
    model, X = fitted
    (exploring / "metrics").mkdir()
    (exploring / "metrics/explore.json").write_text('{"auc": 0.5}\n')
    record.log_metric("auc", 0.9)
    record.log_plot("curve", {"x": [1, 2], "y": [3, 4]})
    record.save_model(model, "tree", sample_input=X.head(3))
    scratch = exploring / ".nbops/scratch/explore"
    assert json.loads((scratch / "metrics/explore.json").read_text()) == {"auc": 0.9}
    assert (scratch / "plots/explore/curve.json").exists()
    assert (scratch / "models/tree.skops").exists() and (scratch / "models/tree.json").exists()
    # the pipeline's files are untouched, and nothing else appeared beside them
    assert (exploring / "metrics/explore.json").read_text() == '{"auc": 0.5}\n'
    assert not (exploring / "plots").exists() and not (exploring / "models").exists()
    said = capsys.readouterr().err
    assert said.count("records into .nbops/scratch/explore/") == 1, said
    assert (exploring / ".nbops/.gitignore").read_text().splitlines()[-1] == "*"  # git ignores it in any project


def test_load_model_when_exploring_takes_the_newer_and_in_the_pipeline_the_pipelines(exploring, fitted, monkeypatch, capsys):
    model, X = fitted
    other = LogisticRegression().fit(X, (X["b"] > 2).astype(int))
    _as_pipeline(monkeypatch, "train")
    record.save_model(model, "m", sample_input=X.head(3))  # the pipeline's: models/m.*
    monkeypatch.delenv(record.ENV_STAGE)
    record.save_model(other, "m", sample_input=X.head(3))  # explored later: scratch, newer
    assert type(record.load_model("m")) is LogisticRegression
    assert "models/m.json is read from .nbops/scratch/explore/models/m.json" in capsys.readouterr().err
    # `dvc repro` afterwards makes the pipeline's newer again
    later = (exploring / ".nbops/scratch/explore/models/m.json").stat().st_mtime_ns + 10**9
    os.utime(exploring / "models/m.json", ns=(later, later))
    assert type(record.load_model("m")) is DecisionTreeClassifier
    # a pipeline run never takes the scratch one, however new
    newest = later + 10**9
    os.utime(exploring / ".nbops/scratch/explore/models/m.json", ns=(newest, newest))
    assert type(record.load_model("m")) is LogisticRegression
    _as_pipeline(monkeypatch, "evaluate")
    assert type(record.load_model("m")) is DecisionTreeClassifier


def test_output_and_input_paths_keep_exploring_away_from_the_pipelines_data(exploring, monkeypatch, capsys):
    _as_pipeline(monkeypatch, "ingest")
    assert record.output_path("data/raw.csv") == Path("data/raw.csv")
    Path("data/raw.csv").write_text("pipeline\n")
    monkeypatch.delenv(record.ENV_STAGE)
    explored = record.output_path("data/raw.csv")  # exploring notebooks/explore.ipynb
    assert explored == Path(".nbops/scratch/explore/data/raw.csv") and explored.parent.is_dir()
    explored.write_text("explored\n")
    later = Path("data/raw.csv").stat().st_mtime_ns + 10**9
    os.utime(explored, ns=(later, later))
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/featurize.ipynb")  # another notebook, exploring
    assert record.input_path("data/raw.csv") == explored
    assert "data/raw.csv is read from .nbops/scratch/explore/data/raw.csv" in capsys.readouterr().err
    _as_pipeline(monkeypatch, "featurize")
    assert record.input_path("data/raw.csv") == Path("data/raw.csv")
    for bad in ("../outside.csv", "/etc/passwd", ""):
        with pytest.raises(RecordError, match="inside the project"):
            record.output_path(bad)


def test_the_recording_api_returns_nothing_printed_as_an_absolute_path(stage_root, fitted, monkeypatch):
    """What a call returns is what a cell ending with it shows in the report: no clone's path."""
    model, X = fitted
    monkeypatch.chdir(stage_root)
    y = np.array([0, 1, 1, 0])
    results = [
        record.log_metric("m", 1),
        record.log_plot("p", {"x": [1], "y": [2]}),
        record.log_pr_curve(y, [0.1, 0.8, 0.7, 0.3]),
        record.log_roc_curve(y, [0.1, 0.8, 0.7, 0.3]),
        record.log_confusion_matrix(y, y),
        record.save_model(model, "tree", sample_input=X.head(3)),
        record.load_model("tree"),
        record.output_path("data/out.csv"),
        record.input_path("data/in.csv"),
    ]
    for result in results:
        assert str(stage_root) not in repr(result) and str(stage_root) not in str(result), result
