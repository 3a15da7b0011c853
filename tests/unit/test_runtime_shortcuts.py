"""The runtime's prediction shortcuts (nbops/runtime/shortcuts.py): taken only where the warm-up
proves them bit-identical, and then giving exactly the model's own answers on fresh rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from nbops.models import modelio
from nbops.runtime import PackagedModel


@pytest.fixture(autouse=True)
def one_thread():
    """As a server predicts (and fast on a busy machine: OpenMP threads spin-wait for a core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def frame(n: int, seed: int, types=("L", "M", "H")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Type": rng.choice(list(types), size=n),
        "Air temperature [K]": rng.normal(300, 2, size=n).round(1),
        "Rotational speed [rpm]": rng.integers(1200, 2800, size=n),
        "Torque [Nm]": rng.normal(40, 10, size=n).round(1),
    })


def target(X: pd.DataFrame, classes: int = 2) -> np.ndarray:
    score = (X["Torque [Nm]"] > 45).astype(int) + (X["Rotational speed [rpm]"] < 1700).astype(int)
    return np.minimum(score, classes - 1).to_numpy()


def packaged(model, X: pd.DataFrame) -> PackagedModel:
    """A PackagedModel as a package holds it: signature and sample as save_model records them."""
    sample = X.head(20)
    manifest = {"name": "m", "version": "1.0.0", "signature": modelio.infer_signature(X),
                "sample_input": modelio.sample_records(sample), "sample_predictions": model.predict(sample).tolist()}
    loaded = PackagedModel(model, manifest)
    loaded.warmup()
    return loaded


def the_models_own(loaded: PackagedModel, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """What the model itself answers for these rows, given as the server gives them: the frame the
    signature builds. Compared with the same rows' frame, not with a batch they were part of: a
    BLAS sums one row and many rows in different orders (gemv against gemm), and how differently
    depends on the machine's BLAS, not on nbops."""
    frame = loaded.frame(records)
    return loaded.model.predict(frame), loaded.model.predict_proba(frame)


def assert_same_as_the_model(loaded: PackagedModel, X: pd.DataFrame) -> None:
    """Fresh rows, whole and one by one, as dict-of-columns and as DataFrame: the model's own bits."""
    records = X.to_dict(orient="records")
    expected = the_models_own(loaded, records)
    for inputs in (loaded.arrays(records), loaded.frame(records)):
        predictions, probabilities = loaded.predict_frame(inputs)
        assert np.array_equal(predictions, expected[0]) and predictions.dtype == expected[0].dtype
        assert np.array_equal(probabilities, expected[1])
    for i in range(0, len(records), 37):
        one = records[i:i + 1]
        predictions, probabilities = loaded.predict_frame(loaded.arrays(one))
        own = the_models_own(loaded, one)
        assert predictions.tolist() == own[0].tolist()
        assert probabilities.tolist() == own[1].tolist()


def encoded(encoder, final, **ct):
    return make_pipeline(make_column_transformer((encoder, ["Type"]), remainder="passthrough", **ct), final)


@pytest.mark.parametrize("classes", [2, 3])
def test_boosted_trees_on_encoded_columns_take_both_shortcuts(classes):
    X = frame(600, 0)
    model = encoded(OneHotEncoder(categories=[["L", "M", "H"]], handle_unknown="ignore"),
                    HistGradientBoostingClassifier(max_iter=30, random_state=0)).fit(X, target(X, classes))
    loaded = packaged(model, X)
    assert loaded._answers is not None and loaded._columns_step is not None
    assert_same_as_the_model(loaded, frame(300, 1))
    # a category never seen in training: the encoder's own answer (zeros, handle_unknown="ignore")
    assert_same_as_the_model(loaded, frame(50, 2, types=("L", "X")))


def test_ordinal_encoder_then_a_scaler_and_a_forest():
    X = frame(400, 3)
    model = make_pipeline(
        make_column_transformer((OrdinalEncoder(), ["Type"]), remainder="passthrough"),
        StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1),
    ).fit(X, target(X))
    loaded = packaged(model, X)
    assert loaded._columns_step is not None and loaded._answers is not None and len(loaded._transforms) == 2
    assert_same_as_the_model(loaded, frame(200, 4))


def test_an_unknown_category_the_encoder_refuses_is_refused_the_same_way():
    X = frame(300, 5)
    model = encoded(OneHotEncoder(), LogisticRegression(max_iter=500)).fit(X, target(X))
    loaded = packaged(model, X)
    assert loaded._columns_step is not None and loaded._answers is None  # no one-pass rule for it
    bad = frame(3, 6, types=("Z",)).to_dict(orient="records")
    with pytest.raises(ValueError) as ours:
        loaded.predict_frame(loaded.arrays(bad))
    with pytest.raises(ValueError) as theirs:
        model.predict(pd.DataFrame(bad))
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("case", ["sparse output", "pandas output", "bool passthrough", "scaled numbers"])
def test_no_column_shortcut_where_it_could_differ(case):
    X = frame(300, 7)
    if case == "sparse output":  # the ColumnTransformer hands a sparse matrix on
        model = encoded(OneHotEncoder(), LogisticRegression(max_iter=500), sparse_threshold=1.0)
    elif case == "pandas output":
        model = encoded(OneHotEncoder(sparse_output=False), LogisticRegression(max_iter=500))
        model.set_output(transform="pandas")
    elif case == "bool passthrough":  # pandas stacks bools beside floats as objects, numpy as floats
        X = X.assign(Running=X["Torque [Nm]"] > 40)
        model = encoded(OneHotEncoder(), HistGradientBoostingClassifier(max_iter=10))
    else:  # a scaler on numbers: not a lookup, scikit-learn runs it
        model = make_pipeline(make_column_transformer((OneHotEncoder(), ["Type"]), remainder=StandardScaler()),
                              LogisticRegression(max_iter=500))
    model.fit(X, target(X))
    loaded = packaged(model, X)
    assert loaded._columns_step is None
    fresh = frame(100, 8)
    if case == "bool passthrough":
        fresh = fresh.assign(Running=fresh["Torque [Nm]"] > 40)
    assert_same_as_the_model(loaded, fresh)


def test_boosted_trees_with_missing_values_and_categories_give_the_models_own_bits():
    """The per-tree routine called directly: missing values (each node's side for NaN), known
    categories (bitsets) and several trees per iteration, bit for bit as `_raw_predict`."""
    from nbops.runtime import shortcuts

    X = frame(600, 3)
    X.loc[::7, "Torque [Nm]"] = np.nan
    model = encoded(OrdinalEncoder(), HistGradientBoostingClassifier(max_iter=40, random_state=0)).fit(X, target(X, 3))
    fresh = frame(300, 4)
    fresh.loc[::5, "Torque [Nm]"] = np.nan
    assert shortcuts._boosted_raw_predict(model[-1]) is not None
    assert_same_as_the_model(packaged(model, X), fresh)

    rng = np.random.default_rng(5)
    codes = np.column_stack([rng.integers(0, 6, size=500), rng.normal(size=500)])
    coded = HistGradientBoostingClassifier(max_iter=30, categorical_features=[0], random_state=0).fit(codes, codes[:, 0] % 2)
    raw_predict = shortcuts._boosted_raw_predict(coded) or coded._raw_predict
    unseen = np.column_stack([rng.integers(0, 9, size=200), rng.normal(size=200)])  # 6, 7, 8 never seen
    assert np.array_equal(raw_predict(unseen), coded._raw_predict(unseen))
