"""A model package loaded for prediction: the manifest, the sha256-verified model, its signature.

    model = PackagedModel.load("registry/failure-predictor/0.1.0")
    model.predict([{"Type": "L", "Air temperature [K]": 300.1, ...}])
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import PackageError, short
from .parity import differences
from .shortcuts import answers_shortcut, columns_shortcut, qualname
from .signature import Signature
from .trust import load_skops

MANIFEST_FILE = "manifest.json"


class Decision:
    """A classifier's decision threshold (the manifest's `decision`, set by save_model): a row's
    decision is `positive_class` when that class's probability is at least `threshold`, else
    the other class. nbops records the sample's decisions with this same rule."""

    __slots__ = ("threshold", "positive_class", "other_class", "index", "entry")

    def __init__(self, entry: Mapping[str, Any], classes: list[Any], where: str) -> None:
        threshold = entry.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise PackageError(f"{where}: decision.threshold must be a finite number, got {threshold!r}")
        if len(classes) != 2:
            raise PackageError(f"{where}: a decision threshold needs a classifier of two classes, not {classes}")
        positive = entry.get("positive_class", classes[-1])
        if positive not in classes:
            raise PackageError(f"{where}: decision.positive_class {positive!r} is not one of the classes {classes}")
        self.threshold = float(threshold)
        self.positive_class = positive
        self.index = classes.index(positive)
        self.other_class = classes[1 - self.index]
        self.entry = dict(entry)

    def apply(self, probabilities: Any) -> list[Any]:
        """The decisions for rows of class probabilities (columns in the order of the classes)."""
        return self.labels(probabilities).tolist()

    def labels(self, probabilities: Any) -> Any:
        """The decisions as a numpy array (what a served answer's `predictions` holds)."""
        import numpy as np

        flagged = np.asarray(probabilities, dtype=np.float64)[:, self.index] >= self.threshold
        return np.where(flagged, np.asarray(self.positive_class), np.asarray(self.other_class))

    def rule(self) -> dict[str, Any]:
        """The label rule, as /metadata states it."""
        return {
            "rule": "threshold", "threshold": self.threshold, "positive_class": self.positive_class,
            "other_class": self.other_class, "score": f"probability of class {self.positive_class}",
            "text": f"{self.positive_class} when the probability of class {self.positive_class} is at least "
                    f"{self.threshold}, else {self.other_class}",
        }


def apply_decision(probabilities: Any, classes: list[Any], decision: Mapping[str, Any]) -> list[Any]:
    """The rule of `Decision`, for a manifest entry and probabilities (what save_model records)."""
    return Decision(decision, list(classes), "decision").apply(probabilities)


class PackagedModel:
    """A model package loaded for prediction: the model, its manifest and its input signature.

    `predict` and `predict_proba` take a DataFrame, a list of records or a dict of columns, and
    validate it against the signature first (InputError names the column and row at fault).
    A package with a decision threshold (`decision` in its manifest) also answers `decide`.
    """

    def __init__(self, model: Any, manifest: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> None:
        self.model = model
        self.manifest = dict(manifest)
        self.path = Path(path) if path is not None else None
        self.name: str = str(self.manifest.get("name") or "model")
        self.version: str = str(self.manifest.get("version") or "0")
        self.signature = Signature(self.manifest.get("signature") or {}, self.manifest.get("sample_input"), self._where())
        self.signature_type: str = self.signature.type
        self.columns: list[str] = self.signature.columns
        classes = self.manifest.get("classes")
        if classes is None and hasattr(model, "classes_"):
            classes = model.classes_.tolist()
        self.classes: list[Any] = list(classes or [])
        entry = self.manifest.get("decision")
        if entry is not None and not isinstance(entry, dict):
            raise PackageError(f"{self._where()}: decision must be an object with a threshold")
        self.decision: Decision | None = Decision(entry, self.classes, self._where()) if entry else None
        # Shortcuts of predict_frame (see shortcuts.py), enabled by warmup() once proven identical
        # on the sample input.
        self._transforms: list[Any] | None = None  # a pipeline's transformers, run once for both answers
        self._final: Any = None
        self._columns_step: Callable[[dict[str, Any]], Any] | None = None  # the first transformer on numpy columns
        self._answers: Callable[[Any], tuple[Any, Any]] | None = None  # predictions + probabilities in one pass
        self._warm = False

    def __repr__(self) -> str:
        return f"<PackagedModel {self.name} {self.version} ({self.manifest.get('estimator', type(self.model).__name__)})>"

    def _where(self) -> str:
        return str(self.path / MANIFEST_FILE) if self.path is not None else f"model {self.name}"

    # -- loading

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, n_jobs: int | None = None) -> PackagedModel:
        """Load the package folder `path`: read manifest.json, verify the model file's sha256,
        load it with trusted types only. `n_jobs=1` makes every estimator of the model predict
        in one thread, which is much faster for small batches (a server's)."""
        folder = Path(path)
        manifest_path = folder / MANIFEST_FILE
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PackageError(f"{manifest_path}: not found; is {folder} a model package folder?") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise PackageError(f"{manifest_path}: unreadable manifest ({short(exc)})") from None
        if not isinstance(manifest, dict):
            raise PackageError(f"{manifest_path}: the manifest must be a JSON object")
        for key in ("model_file", "sha256", "signature"):
            if not manifest.get(key):
                raise PackageError(f"{manifest_path}: the manifest has no '{key}'")
        if manifest.get("format", "skops") != "skops":
            raise PackageError(f"{manifest_path}: unsupported model format {manifest.get('format')!r} (expected 'skops')")
        model_name = str(manifest["model_file"])
        if Path(model_name).name != model_name or model_name in ("", ".", ".."):
            raise PackageError(f"{manifest_path}: model_file {model_name!r} must be a file name inside the package")
        model_path = folder / model_name
        try:
            data = model_path.read_bytes()
        except FileNotFoundError:
            raise PackageError(f"{model_path}: model file not found (named by {MANIFEST_FILE})") from None
        except OSError as exc:
            raise PackageError(f"{model_path}: cannot read the model file ({short(exc)})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest["sha256"]:
            raise PackageError(
                f"{model_path}: sha256 {digest[:12]}… does not match the manifest's {str(manifest['sha256'])[:12]}… "
                "(the model file was changed after the package was built; do not serve it)"
            )
        # The package trusts exactly its manifest's extra names, beyond the built-in policy.
        model = load_skops(data, str(model_path), manifest.get("trusted_types"))
        packaged = cls(model, manifest, folder)
        if n_jobs is not None:
            packaged.set_n_jobs(n_jobs)
        return packaged

    def set_n_jobs(self, n_jobs: int) -> None:
        """Set `n_jobs` on every estimator of the model that has one (pipelines included).
        Predictions stay the same; a forest's per-call thread start-up goes away."""
        get_params = getattr(self.model, "get_params", None)
        if get_params is None:
            return
        keys = {key: n_jobs for key in get_params(deep=True) if key == "n_jobs" or key.endswith("__n_jobs")}
        if keys:
            self.model.set_params(**keys)

    # -- inputs

    def frame(self, payload: Any, *, max_rows: int | None = None) -> Any:
        """A validated DataFrame, in the signature's column order and dtypes, from a DataFrame,
        a list of records, a dict of columns or a JSON-decoded request payload (signature.SHAPES)."""
        return self.signature.frame(payload, max_rows=max_rows)

    def arrays(self, payload: Any, *, max_rows: int | None = None) -> dict[str, Any]:
        """The validated columns as {name: numpy array}: what `frame` holds, without building the
        DataFrame; `predict_frame` takes them, and skips pandas where the warm-up allows it."""
        return self.signature.arrays(payload, max_rows=max_rows)

    # -- prediction

    def _model_input(self, frame: Any) -> Any:
        # A model fitted on an array (signature type "array") must not see column names. The
        # array is row-major like the notebook's: a column-major copy sums in another order and
        # changes the last bit of a linear model's predictions.
        if self.signature_type != "array":
            return frame
        import numpy as np

        return np.ascontiguousarray(frame.to_numpy())

    def predict(self, X: Any) -> Any:
        """The model's predictions for X (DataFrame, list of records or dict of columns)."""
        return self.model.predict(self._model_input(self.frame(X)))

    @property
    def predict_proba(self) -> Callable[[Any], Any]:
        """Class probabilities for X, columns in the order of `classes` (classifiers only)."""
        if not hasattr(self.model, "predict_proba"):
            raise AttributeError(f"{self.name}: {type(self.model).__name__} has no predict_proba")
        return self._predict_proba

    def _predict_proba(self, X: Any) -> Any:
        return self.model.predict_proba(self._model_input(self.frame(X)))

    def decide(self, X: Any) -> list[Any]:
        """Each row's decision at the package's threshold (see `Decision`)."""
        if self.decision is None:
            raise AttributeError(f"{self.name}: the package has no decision threshold (save_model(..., decision=...))")
        return self.decision.apply(self._predict_proba(X))

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "predict_proba")

    def answer(self, inputs: Any) -> tuple[Any, Any]:
        """(labels, probabilities or None) for validated inputs: what the package answers. The
        label follows one rule: the decision at the package's threshold when it has one (the
        probability is the score), else the model's own prediction (`label_rule` says which)."""
        predictions, probabilities = self.predict_frame(inputs)
        if self.decision is not None and probabilities is not None:
            return self.decision.labels(probabilities), probabilities
        return predictions, probabilities

    @property
    def label_rule(self) -> dict[str, Any]:
        """Which rule the answer's label follows (GET /metadata's `label`)."""
        if self.decision is not None:
            return self.decision.rule()
        text = "the most probable class (the model's predict)" if self.has_proba else "the model's predict"
        return {"rule": "model", "text": text}

    def predict_frame(self, inputs: Any) -> tuple[Any, Any]:
        """(predictions, probabilities or None) for already validated inputs: a DataFrame from
        `frame`, or the columns from `arrays`.

        After `warmup` has proven them bit-identical on the sample input, shortcuts apply (see
        shortcuts.py): a pipeline's transformers run once for both answers, its ColumnTransformer
        runs on the numpy columns without pandas, and one pass of the classifier gives both."""
        if not self.has_proba:
            return self.model.predict(self._model_input(_as_frame(inputs))), None
        if self._transforms is None:
            head, final = self._model_input(_as_frame(inputs)), self.model
        else:
            final, steps = self._final, self._transforms
            if self._columns_step is not None and isinstance(inputs, dict):
                head, steps = self._columns_step(inputs), steps[1:]
            else:
                head = self._model_input(_as_frame(inputs))
            for step in steps:
                head = step.transform(head)
        if self._answers is not None:
            return self._answers(head)
        return final.predict(head), final.predict_proba(head)

    def warmup(self) -> None:
        """Predict the manifest's sample input once: imports what prediction imports lazily, checks
        that the model still predicts the recorded sample predictions (PackageError otherwise), and
        enables the shortcuts of `predict_frame` where they give bit-identical answers."""
        if self._warm:
            return
        sample = self.manifest.get("sample_input")
        if not sample or not sample.get("data"):
            self._warm = True
            return
        columns = dict(zip(sample["columns"], zip(*sample["data"])))
        frame = self.frame(columns)
        X = self._model_input(frame)
        predictions = self.model.predict(X)
        # Recorded in another process, maybe by another install or CPU: the same answers up to
        # the order of float sums (parity.py), not the same bits.
        recorded = self.manifest.get("sample_predictions")
        if recorded is not None and differences(predictions, {"sample_predictions": recorded,
                                                              "sample_probabilities": self.manifest.get("sample_probabilities")}):
            raise PackageError(
                f"{self._where()}: the model does not predict its recorded sample predictions in this environment "
                f"(built with {_versions_text(self.manifest)}); reinstall the package's pinned requirements"
            )
        self._warm = True
        if not self.has_proba:
            return
        probabilities = self.model.predict_proba(X)
        recorded_decisions = self.manifest.get("sample_decisions")
        if self.decision is not None and recorded_decisions is not None and differences(
            predictions, {"sample_decisions": recorded_decisions, "sample_probabilities": self.manifest.get("sample_probabilities")},
            decisions=self.decision.apply(probabilities), decision=self.decision,
        ):
            self._warm = False
            raise PackageError(
                f"{self._where()}: the model's decisions on its sample differ from the recorded ones "
                f"(threshold {self.decision.threshold}); reinstall the package's pinned requirements"
            )
        self._enable_shortcuts(frame, self.arrays(columns), predictions, probabilities)

    def _enable_shortcuts(self, frame: Any, arrays: dict[str, Any], predictions: Any, probabilities: Any) -> None:
        """Each shortcut that gives exactly the model's own answers on the sample; none that does not."""
        import numpy as np

        def same(answers: tuple[Any, Any]) -> bool:
            return (np.array_equal(answers[0], predictions)
                    and np.array_equal(answers[1], probabilities, equal_nan=True))

        final = self.model
        if qualname(self.model) == "sklearn.pipeline.Pipeline":
            final = self.model.steps[-1][1]
            steps = [step for _, step in self.model.steps[:-1]]
            if all(step is None or step == "passthrough" or hasattr(step, "transform") for step in steps):
                self._transforms = [step for step in steps if step is not None and not isinstance(step, str)]
                self._final = final
        self._answers = answers_shortcut(final)
        try:
            if not same(self.predict_frame(frame)):
                self._transforms, self._answers = None, None
        except Exception:  # noqa: BLE001 - a shortcut that fails is not taken
            self._transforms, self._answers = None, None
        if not self._transforms:
            return
        first = self._transforms[0]
        kinds = {spec.name: spec.kind for spec in self.signature.specs}
        try:
            self._columns_step = columns_shortcut(first, kinds)
            if self._columns_step is not None:
                head, expected_head = self._columns_step(arrays), first.transform(frame)
                if not (type(head) is type(expected_head) and head.dtype == expected_head.dtype
                        and np.array_equal(head, expected_head, equal_nan=True) and same(self.predict_frame(arrays))):
                    self._columns_step = None
        except Exception:  # noqa: BLE001
            self._columns_step = None


def _as_frame(inputs: Any) -> Any:
    """Validated columns ({name: array}) as the DataFrame `frame` would have made of them."""
    if isinstance(inputs, dict):
        import pandas as pd

        return pd.DataFrame(inputs, copy=False)
    return inputs


def _versions_text(manifest: Mapping[str, Any]) -> str:
    versions = manifest.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items()) or "unknown versions"

