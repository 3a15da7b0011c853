"""The runtime of a model package: load it, validate inputs, predict, serve over HTTP, score CSVs.

This one module is copied verbatim into every package that `nbops promote` builds (as
`<package>/_runtime.py`), and nbops itself uses it for `nbops serve` and `nbops predict`. So it
is standalone: at module level it imports only the standard library and nothing of nbops;
numpy, pandas, scikit-learn, skops and uvicorn are imported by the functions that need them.

A package folder holds `manifest.json` and the model file it names (`model_file`, skops format).
Loading verifies the file's sha256 against the manifest and refuses any type that does not come
from scikit-learn, NumPy or SciPy; skops never unpickles, so loading runs no code of the file's.

    PackageError (Exception)      bad or missing package, sha256 mismatch, untrusted types
    InputError (ValueError)       a prediction input that does not fit the signature; `.status`
                                  is the HTTP status it maps to (422, or 413 for oversized)

    model = PackagedModel.load("registry/failure-predictor/0.1.0")
    model.predict([{"Type": "L", "Air temperature [K]": 300.1, ...}])
    serve(model, port=8000)                       # POST /predict, GET /health, GET /metadata
    main(["predict", "in.csv", "-o", "out.csv"], package_dir=...)   # `python -m <package>`

The HTTP app is a plain ASGI callable run by uvicorn: three fixed routes do not need a
framework, and without one a request costs only JSON parsing, the column-wise validation and
the model itself (see bench/serve_bench.py).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = [
    "TRUSTED_MODULES",
    "PackageError",
    "InputError",
    "PackagedModel",
    "check_trusted",
    "load_skops",
    "create_app",
    "serve",
    "predict_csv",
    "main",
]

#: Top-level modules whose types a model file may hold (beyond skops' own defaults).
TRUSTED_MODULES = ("sklearn", "numpy", "scipy")
MANIFEST_FILE = "manifest.json"
DEFAULT_MAX_ROWS = 10_000
#: Environment variable holding the bearer token of `serve` (safer than --token, which `ps` shows).
TOKEN_ENV = "NBOPS_SERVE_TOKEN"
#: Batches up to this many rows are predicted on the event loop; larger ones in a worker
#: thread, so that /health keeps answering during a long batch.
_INLINE_ROWS = 1_000
#: Final estimators whose `predict` is exactly `classes_.take(argmax(predict_proba))`, so one
#: pass gives both (a 300-tree forest costs the same twice otherwise). Exact types only.
_PREDICT_IS_ARGMAX_PROBA = frozenset({
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
})


class PackageError(Exception):
    """The package cannot be used: missing or unreadable files, a sha256 mismatch, untrusted types."""


class InputError(ValueError):
    """A prediction input that does not fit the model's signature; the message names the problem."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# --- trusted loading ----------------------------------------------------------------------


def check_trusted(types: Iterable[str], where: str) -> None:
    """Refuse type names whose top-level module is not in TRUSTED_MODULES."""
    refused = [t for t in types if t.split(".", 1)[0] not in TRUSTED_MODULES]
    if refused:
        raise PackageError(
            f"{where}: refusing to load types from outside {', '.join(TRUSTED_MODULES)}: "
            f"{', '.join(refused)} (only model files built from trusted libraries are loaded)"
        )


def load_skops(data: bytes, where: str = "model", trusted: Sequence[str] | None = None) -> Any:
    """Load skops bytes after checking that every type they hold comes from a trusted library.

    `trusted`, when given (a manifest's `trusted_types`), saves a pass over the file: the list
    is checked against the policy and skops refuses, before constructing anything, a file with
    types beyond it; such a file then goes through the full check below."""
    try:
        import skops.io as sio
    except ImportError:
        raise PackageError(f"{where}: loading a model needs skops (pip install skops scikit-learn)") from None
    if trusted is not None and all(isinstance(t, str) for t in trusted):
        check_trusted(trusted, where)
        try:
            return sio.loads(data, trusted=list(trusted))
        except sio.exceptions.UntrustedTypesFoundException:
            pass  # the file holds types the list does not name: decide from the file itself
        except Exception as exc:  # noqa: BLE001
            raise PackageError(f"{where}: the model could not be loaded ({type(exc).__name__}: {_short(exc)})") from exc
    try:
        types = sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means: not a model file we can read
        raise PackageError(f"{where}: not a readable skops model file ({type(exc).__name__}: {_short(exc)})") from None
    check_trusted(types, where)
    try:
        return sio.loads(data, trusted=types)
    except Exception as exc:  # noqa: BLE001
        raise PackageError(f"{where}: the model could not be loaded ({type(exc).__name__}: {_short(exc)})") from exc


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the model ------------------------------------------------------------------------------

_NONE = type(None)
_ALLOWED_TYPES = {
    "float": frozenset({float, int}),
    "int": frozenset({int}),
    "bool": frozenset({bool}),
    "str": frozenset({str}),
}
_WRAPPERS = ("records", "dataframe_records", "columns", "dataframe_split")
_SHAPES = (
    'a list of records [{"column": value, ...}], {"records": [...]}, {"columns": {"column": [values]}}, '
    '{"dataframe_records": [...]} or {"dataframe_split": {"columns": [...], "data": [[...]]}}'
)


class _Column:
    """One input column of the signature and how to check and convert its values."""

    __slots__ = ("name", "dtype", "kind", "target", "nullable")

    def __init__(self, name: str, dtype: str, nullable: bool) -> None:
        import numpy as np

        self.name, self.dtype, self.nullable = name, dtype, nullable
        self.target: Any = None
        if dtype == "str":
            self.kind = "str"
        elif dtype == "bool":
            self.kind, self.target = "bool", np.dtype(bool)
        else:
            try:
                np_dtype = np.dtype(dtype)
            except TypeError:  # category, string[pyarrow], datetimes with zones...: pandas converts
                np_dtype = None
            if np_dtype is not None and np_dtype.kind == "f":
                self.kind, self.target = "float", np_dtype
            elif np_dtype is not None and np_dtype.kind in "iu":
                self.kind, self.target = "int", np_dtype
            else:
                self.kind = "other"

    def describe(self) -> str:
        return {"float": f"{self.dtype} numbers", "int": f"{self.dtype} integers", "bool": "true/false",
                "str": "strings"}.get(self.kind, self.dtype)


class PackagedModel:
    """A model package loaded for prediction: the model, its manifest and its input signature.

    `predict` and `predict_proba` take a DataFrame, a list of records or a dict of columns, and
    validate it against the signature first (InputError names the column and row at fault).
    """

    def __init__(self, model: Any, manifest: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> None:
        self.model = model
        self.manifest = dict(manifest)
        self.path = Path(path) if path is not None else None
        self.name: str = str(self.manifest.get("name") or "model")
        self.version: str = str(self.manifest.get("version") or "0")
        signature = self.manifest.get("signature") or {}
        self.signature_type: str = signature.get("type", "dataframe")
        specs = signature.get("columns")
        if not specs:
            raise PackageError(f"{self._where()}: the manifest has no input signature (signature.columns)")
        nullable = _columns_with_nulls(self.manifest.get("sample_input"))
        try:
            self._columns = [
                _Column(str(c["name"]), str(c.get("dtype", "float64")), bool(c.get("nullable")) or str(c["name"]) in nullable)
                for c in specs
            ]
        except (KeyError, TypeError, AttributeError):
            raise PackageError(f"{self._where()}: signature.columns must be a list of {{\"name\", \"dtype\"}} objects") from None
        self.columns: list[str] = [c.name for c in self._columns]
        self._names = frozenset(self.columns)
        if len(self._names) != len(self.columns):
            raise PackageError(f"{self._where()}: the signature names a column twice")
        classes = self.manifest.get("classes")
        if classes is None and hasattr(model, "classes_"):
            classes = model.classes_.tolist()
        self.classes: list[Any] = list(classes or [])
        # Shortcuts of predict_frame, enabled by warmup() once proven identical on the sample input.
        self._one_pass = False  # predictions taken from predict_proba (forests)
        self._transforms: list[Any] | None = None  # a pipeline's transformers, run once for both answers
        self._final: Any = None
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
            raise PackageError(f"{manifest_path}: unreadable manifest ({_short(exc)})") from None
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
            raise PackageError(f"{model_path}: cannot read the model file ({_short(exc)})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest["sha256"]:
            raise PackageError(
                f"{model_path}: sha256 {digest[:12]}… does not match the manifest's {str(manifest['sha256'])[:12]}… "
                "(the model file was changed after the package was built; do not serve it)"
            )
        trusted = manifest.get("trusted_types")
        model = load_skops(data, str(model_path), trusted if isinstance(trusted, list) else None)
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
        a list of records, a dict of columns or a JSON-decoded request payload (see _SHAPES)."""
        import pandas as pd

        if isinstance(payload, pd.DataFrame):
            return self._from_dataframe(payload, max_rows)
        if max_rows is not None and _rows_hint(payload) > max_rows:  # refuse before walking the rows
            raise InputError(f"batch of {_rows_hint(payload)} rows is over the limit of {max_rows} rows; send smaller batches", 413)
        columns, n = self._column_values(payload)
        if n == 0:
            raise InputError("empty batch: no rows to predict")
        if max_rows is not None and n > max_rows:
            raise InputError(f"batch of {n} rows is over the limit of {max_rows} rows; send smaller batches", 413)
        arrays = {spec.name: self._array(spec, columns[spec.name]) for spec in self._columns}
        return pd.DataFrame(arrays, copy=False)

    def _column_values(self, payload: Any) -> tuple[dict[str, Sequence[Any]], int]:
        """Payload → ({column: values}, rows), checking the shape and the set of columns."""
        if isinstance(payload, dict) and len(payload) == 1:
            key, inner = next(iter(payload.items()))
            if key in ("records", "dataframe_records") and isinstance(inner, list):
                return self._from_records(inner)
            if key == "columns" and isinstance(inner, dict):
                return self._from_columns(inner)
            if key == "dataframe_split" and isinstance(inner, dict):
                return self._from_split(inner)
            if key in _WRAPPERS:
                raise InputError(f'"{key}" holds a {_json_type(inner)}; expected {_SHAPES}')
        if isinstance(payload, list):
            if payload and not isinstance(payload[0], dict) and self.signature_type == "array":
                return self._from_rows(payload, self.columns, "rows")
            return self._from_records(payload)
        if isinstance(payload, dict):
            if not payload:
                raise InputError("empty batch: no rows to predict")
            return self._from_columns(payload)
        raise InputError(f"expected {_SHAPES}; got a {_json_type(payload)}")

    def _check_names(self, names: Iterable[Any], where: str = "") -> None:
        names = [str(n) for n in names]
        given = set(names)
        if given == self._names and len(names) == len(given):
            return
        prefix = f"{where}: " if where else ""
        missing = [c for c in self.columns if c not in given]
        if missing:
            raise InputError(f"{prefix}missing column{_s(missing)} {_quote(missing)} (the model takes: {_quote(self.columns)})")
        extra = [c for c in names if c not in self._names]
        if extra:
            raise InputError(f"{prefix}unexpected column{_s(extra)} {_quote(extra)} (the model takes: {_quote(self.columns)})")
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise InputError(f"{prefix}column{_s(dupes)} {_quote(dupes)} given twice")

    def _from_records(self, records: list[Any]) -> tuple[dict[str, Sequence[Any]], int]:
        n = len(records)
        if n == 0:
            return {}, 0
        width = len(self.columns)
        # One C-level pass each: every record an object with exactly the signature's keys?
        if set(map(type, records)) != {dict} or set(map(len, records)) != {width}:
            self._bad_record(records)
        try:
            if width == 1:
                name = self.columns[0]
                return {name: [r[name] for r in records]}, n
            from operator import itemgetter

            by_column = list(zip(*map(itemgetter(*self.columns), records)))
        except KeyError:
            self._bad_record(records)
        return dict(zip(self.columns, by_column)), n

    def _bad_record(self, records: list[Any]) -> None:
        for i, record in enumerate(records, 1):
            if not isinstance(record, dict):
                raise InputError(f"row {i} is a {_json_type(record)}, not an object of column values; expected {_SHAPES}")
            self._check_names(record.keys(), f"row {i}")
        raise InputError("records do not match the signature")  # not reached: some record failed above

    def _from_columns(self, columns: dict[str, Any]) -> tuple[dict[str, Sequence[Any]], int]:
        self._check_names(columns.keys())
        lengths = {}
        for name, values in columns.items():
            if not isinstance(values, (list, tuple)):
                if _is_array_like(values):
                    values = list(values)
                    columns = {**columns, name: values}
                else:
                    raise InputError(
                        f"column '{name}' must be a list of values, got a {_json_type(values)} "
                        '(to send one row, send [{"column": value, ...}])'
                    )
            lengths[name] = len(values)
        if len(set(lengths.values())) > 1:
            (a, na), (b, nb) = sorted(lengths.items(), key=lambda item: item[1])[:: len(lengths) - 1]
            raise InputError(f"columns have different lengths: '{b}' has {nb} values, '{a}' has {na}")
        return {str(k): v for k, v in columns.items()}, next(iter(lengths.values()))

    def _from_split(self, split: dict[str, Any]) -> tuple[dict[str, Sequence[Any]], int]:
        unknown = set(split) - {"columns", "data", "index"}
        if unknown:
            raise InputError(f"dataframe_split: unexpected key{_s(unknown)} {_quote(sorted(unknown))} (expected columns, data)")
        data = split.get("data")
        if not isinstance(data, list):
            raise InputError(f"dataframe_split: \"data\" must be a list of rows, got a {_json_type(data)}")
        names = split.get("columns")
        if names is None and self.signature_type == "array":
            names = self.columns
        if not isinstance(names, list):
            raise InputError(f"dataframe_split: \"columns\" must be a list of column names, got a {_json_type(names)}")
        return self._from_rows(data, [str(c) for c in names], "dataframe_split")

    def _from_rows(self, rows: list[Any], names: list[str], where: str) -> tuple[dict[str, Sequence[Any]], int]:
        self._check_names(names, where)
        if not rows:
            return {}, 0
        width = len(names)
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
            for i, row in enumerate(rows, 1):
                if not isinstance(row, list):
                    raise InputError(f"{where}: row {i} is a {_json_type(row)}, not a list of values")
                if len(row) != width:
                    raise InputError(f"{where}: row {i} has {len(row)} values for {width} columns")
        return dict(zip(names, zip(*rows))), len(rows)

    def _array(self, spec: _Column, values: Sequence[Any]) -> Any:
        """Values of one column → a numpy array of the signature's dtype, or InputError.

        The common case costs two C-level passes: the set of the values' Python types, then
        numpy's conversion. Anything unusual (nulls, numpy scalars, a wrong type) takes the
        per-value path, which finds the row at fault."""
        import numpy as np

        allowed = _ALLOWED_TYPES.get(spec.kind)
        if allowed is not None and set(map(type, values)) <= allowed:
            try:
                if spec.kind == "str":
                    return np.array(values, dtype=object)
                array = np.array(values, dtype=spec.target)
            except (OverflowError, ValueError):
                return self._array_slow(spec, values)
            if spec.kind == "float" and not np.isfinite(array).all():
                return self._array_slow(spec, values)  # NaN (a null) or a value beyond float range
            return array
        return self._array_slow(spec, values)

    def _array_slow(self, spec: _Column, values: Sequence[Any]) -> Any:
        import numpy as np

        clean: list[Any] = []
        has_null = False
        for i, value in enumerate(values, 1):
            if value is None or (isinstance(value, float) and math.isnan(value)) or _is_missing(value):
                if not spec.nullable:
                    raise InputError(f"column '{spec.name}' has a null in row {i}; the model needs a value ({spec.describe()})")
                has_null = True
                clean.append(None)
                continue
            if spec.kind == "float":
                ok = _is_number(value) and not _is_bool(value)
                if ok:
                    value = float(value)
                    if math.isinf(value):
                        raise InputError(f"column '{spec.name}' has {value} in row {i}; the model needs finite numbers")
            elif spec.kind == "int":
                ok = _is_integer(value)
                if ok:
                    value = int(value)
                    info = np.iinfo(spec.target)
                    if not info.min <= value <= info.max:
                        raise InputError(f"column '{spec.name}' has {value} in row {i}, out of the {spec.dtype} range")
            elif spec.kind == "bool":
                ok = _is_bool(value)
                value = bool(value) if ok else value
            elif spec.kind == "str":
                ok = isinstance(value, str)
            else:
                ok = True
            if not ok:
                raise InputError(
                    f"column '{spec.name}' expects {spec.describe()}, got {_type_name(value)} {_preview(value)} in row {i}"
                )
            clean.append(value)
        if spec.kind == "other":
            return self._other(spec, clean)
        if spec.kind == "str":
            return np.array(clean, dtype=object)
        if has_null:  # nullable numbers → float64 with NaN, as pandas reads them; bools → object
            if spec.kind == "bool":
                return np.array(clean, dtype=object)
            return np.array([math.nan if v is None else v for v in clean], dtype=np.float64)
        return np.array(clean, dtype=spec.target)

    def _other(self, spec: _Column, values: list[Any]) -> Any:
        import pandas as pd

        try:
            return pd.Series(values, dtype=object).astype(spec.dtype).array
        except (TypeError, ValueError) as exc:
            raise InputError(f"column '{spec.name}' cannot be read as {spec.dtype}: {_short(exc, 120)}") from None

    def _from_dataframe(self, df: Any, max_rows: int | None) -> Any:
        import numpy as np
        import pandas as pd

        self._check_names(df.columns)
        n = len(df)
        if n == 0:
            raise InputError("empty batch: no rows to predict")
        if max_rows is not None and n > max_rows:
            raise InputError(f"batch of {n} rows is over the limit of {max_rows} rows; send smaller batches", 413)
        by_name = {str(c): c for c in df.columns}
        arrays = {}
        for spec in self._columns:
            series = df[by_name[spec.name]]
            kind = series.dtype.kind
            array = None
            if spec.kind in ("float", "int") and kind in "fiu" and not isinstance(series.dtype, pd.CategoricalDtype):
                if spec.kind == "int" and kind == "f":
                    array = None  # floats (or nulls) in an int column: the slow path names the row
                elif series.hasnans:
                    array = None
                else:
                    array = series.to_numpy(dtype=spec.target)
                    if spec.kind == "float" and not np.isfinite(array).all():
                        array = None
            elif spec.kind == "bool" and kind == "b" and not series.hasnans:
                array = series.to_numpy(dtype=bool)
            elif spec.kind == "str" and (series.dtype == object or isinstance(series.dtype, pd.StringDtype)):
                values = series.to_numpy(dtype=object)
                if not series.hasnans and set(map(type, values)) == {str}:
                    array = series.array if isinstance(series.dtype, pd.StringDtype) else values
            elif spec.kind == "other" and str(series.dtype) == spec.dtype:
                array = series.array
            if array is None:
                array = self._array_slow(spec, series.tolist())
            arrays[spec.name] = array
        return pd.DataFrame(arrays, copy=False)

    # -- prediction

    def _model_input(self, frame: Any) -> Any:
        # a model fitted on an array (signature type "array") must not see column names
        return frame.to_numpy() if self.signature_type == "array" else frame

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

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "predict_proba")

    def predict_frame(self, frame: Any) -> tuple[Any, Any]:
        """(predictions, probabilities or None) for an already validated frame (see `frame`).

        After `warmup` has proven them identical on the sample input, two shortcuts apply: a
        pipeline's transformers run once for both answers, and for a forest the predictions are
        taken from the probabilities, as the forest's own `predict` does."""
        X = self._model_input(frame)
        if not self.has_proba:
            return self.model.predict(X), None
        if self._transforms is None:
            head, final = X, self.model
        else:
            head, final = X, self._final
            for step in self._transforms:
                head = step.transform(head)
        probabilities = final.predict_proba(head)
        if self._one_pass:
            import numpy as np

            return self._final_classes.take(np.argmax(probabilities, axis=1), axis=0), probabilities
        return final.predict(head), probabilities

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
        import numpy as np

        frame = self.frame(dict(zip(sample["columns"], zip(*sample["data"]))))
        X = self._model_input(frame)
        predictions = self.model.predict(X)
        expected = self.manifest.get("sample_predictions")
        if expected is not None and not _same_predictions(predictions, expected):
            raise PackageError(
                f"{self._where()}: the model does not predict its recorded sample predictions in this environment "
                f"(built with {_versions_text(self.manifest)}); reinstall the package's pinned requirements"
            )
        self._warm = True
        if not self.has_proba:
            return
        probabilities = self.model.predict_proba(X)
        final = self.model
        if _qualname(self.model) == "sklearn.pipeline.Pipeline":
            final = self.model.steps[-1][1]
            transforms = [step for _, step in self.model.steps[:-1] if step is not None and not isinstance(step, str)]
            if all(step == "passthrough" or step is None or hasattr(step, "transform") for _, step in self.model.steps[:-1]):
                self._transforms, self._final = transforms, final
        if _qualname(final) in _PREDICT_IS_ARGMAX_PROBA and getattr(final, "n_outputs_", 1) == 1:
            self._final_classes, self._one_pass = final.classes_, True
        try:
            shortcut_predictions, shortcut_probabilities = self.predict_frame(frame)
            same = (np.array_equal(shortcut_predictions, predictions)
                    and np.array_equal(shortcut_probabilities, probabilities, equal_nan=True))
        except Exception:  # noqa: BLE001 - a shortcut that fails is not taken
            same = False
        if not same:
            self._transforms, self._one_pass = None, False


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _same_predictions(predictions: Any, expected: list[Any]) -> bool:
    """Labels must be equal; real-valued predictions may differ in the last bits (another CPU's
    BLAS kernels sum in another order), not more."""
    import numpy as np

    if predictions.tolist() == expected:
        return True
    if predictions.dtype.kind != "f":
        return False
    try:
        return bool(np.allclose(predictions, np.asarray(expected, dtype=np.float64), rtol=1e-9, atol=1e-12, equal_nan=True))
    except (TypeError, ValueError):
        return False


def _columns_with_nulls(sample: Any) -> set[str]:
    """Columns in which the recorded sample input has a null: the model was made to accept them."""
    if not isinstance(sample, dict) or not sample.get("columns") or not sample.get("data"):
        return set()
    found = set()
    for name, values in zip(sample["columns"], zip(*sample["data"])):
        if any(v is None for v in values):
            found.add(str(name))
    return found


def _versions_text(manifest: Mapping[str, Any]) -> str:
    versions = manifest.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items()) or "unknown versions"


def _is_missing(value: Any) -> bool:
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    return hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f" and value != value


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _is_number(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Real)


def _is_integer(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_array_like(value: Any) -> bool:
    return hasattr(value, "__len__") and hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_name(value: Any) -> str:
    if _is_bool(value):
        return "bool"
    return {str: "str", int: "int", float: "float", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _preview(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"


def _s(items: Any) -> str:
    return "" if len(items) == 1 else "s"


# --- JSON --------------------------------------------------------------------------------------


def _json_codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes], bool]:
    """(loads, dumps, numpy_native): orjson when installed (several times faster, and it writes
    numpy arrays directly), else the stdlib, which is made to refuse NaN and Infinity as JSON does."""
    try:
        import orjson
    except ImportError:
        def refuse(token: str) -> Any:
            raise ValueError(f"{token} is not valid JSON")

        def loads(body: bytes) -> Any:
            return json.loads(body, parse_constant=refuse)

        def dumps(value: Any) -> bytes:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_jsonable).encode("utf-8")

        return loads, dumps, False

    option = orjson.OPT_SERIALIZE_NUMPY

    def dumps_fast(value: Any) -> bytes:
        return orjson.dumps(value, default=_jsonable, option=option)

    return orjson.loads, dumps_fast, True


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _array_json(array: Any, numpy_native: bool) -> Any:
    """A prediction array in the form the JSON encoder writes fastest."""
    if numpy_native and array.dtype.kind in "biuf" and array.dtype.isnative:
        import numpy as np

        return np.ascontiguousarray(array)
    return array.tolist()


# --- HTTP -------------------------------------------------------------------------------------


def create_app(
    model: PackagedModel,
    *,
    token: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_body_bytes: int | None = None,
) -> Callable[..., Any]:
    """An ASGI app serving `model`: POST /predict, GET /health, GET /metadata.

    Bad input gets a JSON {"error": "..."} naming the problem: 400 for a body that is not
    JSON, 422 for a wrong shape, column, dtype or null and for an empty batch, 413 for more than
    `max_rows` rows or a body over `max_body_bytes` (default: 2 KB per row allowed), 401 when a
    bearer `token` is set and the request lacks it (/health is open, for liveness probes).
    """
    import asyncio
    import logging

    log = logging.getLogger("nbops.runtime")
    loads, dumps, numpy_native = _json_codec()
    model.warmup()
    if max_body_bytes is None:
        max_body_bytes = max(1 << 20, 2048 * max_rows)
    expected_auth = f"Bearer {token}".encode("latin-1") if token else None
    # The parts of every answer that never change, serialised once.
    tail = dumps({"classes": model.classes, "model": model.name, "version": model.version})[1:]
    health = dumps({"status": "ok", "model": model.name, "version": model.version})
    metadata = dumps(_metadata(model))
    json_headers = [(b"content-type", b"application/json")]

    async def respond(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = json_headers + [(b"content-length", str(len(body)).encode())] + (extra or [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def error(send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await respond(send, status, dumps({"error": message}), extra)

    def predict(payload: Any) -> bytes:
        frame = model.frame(payload, max_rows=max_rows)
        predictions, probabilities = model.predict_frame(frame)
        head = b'{"predictions":' + dumps(_array_json(predictions, numpy_native))
        if probabilities is not None:
            head += b',"probabilities":' + dumps(_array_json(probabilities, numpy_native))
        return head + b"," + tail

    async def lifespan(receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        path, method = scope["path"], scope["method"]
        headers = scope["headers"]
        if expected_auth is not None and path != "/health":
            given = next((value for key, value in headers if key == b"authorization"), b"")
            if not hmac.compare_digest(given, expected_auth):
                reason = "missing bearer token" if not given else "wrong bearer token"
                await error(send, 401, f"{reason}: send the header 'Authorization: Bearer <token>'",
                            [(b"www-authenticate", b"Bearer")])
                return
        if path == "/predict":
            if method != "POST":
                await error(send, 405, "use POST /predict with a JSON body", [(b"allow", b"POST")])
                return
            length = next((value for key, value in headers if key == b"content-length"), None)
            if length is not None and length.isdigit() and int(length) > max_body_bytes:
                await error(send, 413, f"request body of {int(length)} bytes is over the limit of {max_body_bytes} bytes")
                return
            chunks = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_body_bytes:
                    await error(send, 413, f"request body is over the limit of {max_body_bytes} bytes")
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if not body.strip():
                await error(send, 400, f"empty request body; send JSON: {_SHAPES}")
                return
            try:
                payload = loads(body)
            except ValueError as exc:  # orjson.JSONDecodeError and json's are ValueErrors
                await error(send, 400, f"request body is not valid JSON ({_short(exc, 120)})")
                return
            try:
                if _rows_hint(payload) > _INLINE_ROWS:
                    answer = await asyncio.get_running_loop().run_in_executor(None, predict, payload)
                else:
                    answer = predict(payload)
            except InputError as exc:
                await error(send, exc.status, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - the model raised: answer, log, stay up
                log.exception("prediction failed")
                await error(send, 500, f"prediction failed: {type(exc).__name__}: {_short(exc, 200)}")
                return
            await respond(send, 200, answer)
        elif path == "/health" or path == "/metadata":
            if method not in ("GET", "HEAD"):
                await error(send, 405, f"use GET {path}", [(b"allow", b"GET")])
                return
            await respond(send, 200, health if path == "/health" else metadata)
        else:
            await error(send, 404, f"no route {path}; the routes are POST /predict, GET /health, GET /metadata")

    return app


def _rows_hint(payload: Any) -> int:
    """Roughly how many rows a payload holds (0 when unknown), to choose where to predict."""
    if isinstance(payload, list):
        return len(payload)
    if isinstance(payload, dict) and len(payload) == 1:
        inner = next(iter(payload.values()))
        if isinstance(inner, list):
            return len(inner)
        if isinstance(inner, dict):
            data = inner.get("data")
            if isinstance(data, list):
                return len(data)
            first = next(iter(inner.values()), None)
            return len(first) if isinstance(first, list) else 0
    return 0


def _metadata(model: PackagedModel) -> dict[str, Any]:
    manifest = model.manifest
    lineage = manifest.get("lineage") or {}
    summary: dict[str, Any] = {}
    if isinstance(lineage, dict):
        for key, value in lineage.items():
            if value is None or isinstance(value, (str, int, float, bool)):
                summary[key] = value
            elif isinstance(value, dict):
                summary[key] = sorted(value)  # e.g. the stages whose dvc.lock hashes are recorded
            elif isinstance(value, list):
                summary[key] = value if len(json.dumps(value, default=str)) <= 2000 else f"{len(value)} items"
    sample = manifest.get("sample_input") or {}
    example = None
    if sample.get("columns") and sample.get("data"):
        example = {"records": [dict(zip(sample["columns"], sample["data"][0]))]}
    return {
        "name": model.name,
        "version": model.version,
        "created": manifest.get("created"),
        "estimator": manifest.get("estimator"),
        "task": manifest.get("task"),
        "classes": model.classes,
        "signature": manifest.get("signature"),
        "metrics": manifest.get("metrics") or {},
        "lineage": summary,
        "versions": manifest.get("versions") or {},
        "sha256": manifest.get("sha256"),
        "example": example,
    }


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


def serve(
    model: PackagedModel | str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    n_jobs: int | None = 1,
    access_log: bool = False,
    log: Callable[[str], None] | None = None,
) -> None:
    """Serve the model (a PackagedModel, or a package folder) with uvicorn until interrupted.

    Binds 127.0.0.1 unless told otherwise; port 0 picks a free port. Logs one line with the URL
    once the socket listens. `n_jobs=1` (the default; None keeps the model's own) makes the model
    predict in one thread: for request-sized batches joblib's thread start-up costs more than it
    saves (a 300-tree forest: 3× slower per row with n_jobs=-1), and the sums are bit-stable."""
    try:
        import uvicorn
    except ImportError:
        raise PackageError("serving needs uvicorn: pip install uvicorn (or 'nbops[serve]')") from None
    if not isinstance(model, PackagedModel):
        model = PackagedModel.load(model)
    if n_jobs is not None:
        model.set_n_jobs(n_jobs)
    if n_jobs == 1:
        _limit_native_threads()
    app = create_app(model, token=token, max_rows=max_rows)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    note = ", bearer token required" if token else ""
    (log or _stderr)(
        f"{model.name} {model.version}: serving on http://{shown}:{bound_port} "
        f"(POST /predict, GET /health, GET /metadata{note}); Ctrl+C stops"
    )
    config = uvicorn.Config(
        app, log_level="warning", access_log=access_log, lifespan="on", server_header=False,
        timeout_graceful_shutdown=10,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _limit_native_threads() -> None:
    """One OpenMP/BLAS thread, as n_jobs=1 is one joblib thread: for request-sized batches a
    thread pool's wake-up costs more than it saves (a gradient-boosted model's single row:
    about 8 ms with two OpenMP threads, 1 ms with one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, keep the defaults
        return
    threadpool_limits(limits=1)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- batch scoring and the command line ------------------------------------------------------


def predict_csv(model: PackagedModel, source: str | os.PathLike[str] | Any, output: str | os.PathLike[str] | Any | None = None) -> Any:
    """Score a CSV: its rows (validated like an HTTP request) plus a `prediction` column and, for
    classifiers, one `probability_<class>` column per class. Writes CSV to `output` (a path or a
    file object; stdout when None) and returns the scored DataFrame."""
    import pandas as pd

    text_columns = {spec.name: str for spec in model._columns if spec.kind in ("str", "other")}
    try:
        # Only empty cells are nulls: "NA" may be a category (North America), not a missing value.
        data = pd.read_csv(source, dtype=text_columns, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise InputError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{source}: cannot read it as CSV ({_short(exc, 160)})") from None
    try:
        frame = model.frame(data)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    predictions, probabilities = model.predict_frame(frame)
    scored = frame.copy()
    scored["prediction"] = predictions
    if probabilities is not None:
        classes = model.classes or list(range(probabilities.shape[1]))
        for i, label in enumerate(classes):
            scored[f"probability_{label}"] = probabilities[:, i]
    scored.to_csv(sys.stdout if output is None else output, index=False)
    return scored


def main(argv: Sequence[str] | None = None, package_dir: str | os.PathLike[str] | None = None) -> int:
    """`python -m <package> predict INPUT.csv [-o OUT.csv]` and `python -m <package> serve`.
    Errors are one line on stderr and exit status 1."""
    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(
        prog=f"python -m {folder.name}" if package_dir is not None else None,
        description="Score a CSV with the packaged model, or serve it over HTTP.",
    )
    if package_dir is None:
        parser.add_argument("--package", metavar="DIR", help="the package folder (holding manifest.json)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{predict,serve}")
    predict = commands.add_parser("predict", help="score a CSV file; writes CSV with prediction columns")
    predict.add_argument("input", metavar="INPUT.csv", help="CSV with the model's input columns ('-' for stdin)")
    predict.add_argument("-o", "--output", metavar="OUT.csv", help="where to write the scored CSV (default: stdout)")
    server = commands.add_parser("serve", help="serve POST /predict, GET /health, GET /metadata")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    server.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    server.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' (better: set {TOKEN_ENV})")
    server.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="largest batch accepted (default: %(default)s)")
    server.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if getattr(args, "package", None):
        folder = Path(args.package)
    try:
        if args.command == "predict":
            model = PackagedModel.load(folder)
            source = sys.stdin if args.input == "-" else args.input
            predict_csv(model, source, args.output)
            if args.output:
                _stderr(f"{model.name} {model.version}: scored {args.input} → {args.output}")
            return 0
        token = args.token or os.environ.get(TOKEN_ENV) or None
        if args.max_rows < 1:
            raise InputError("--max-rows must be at least 1")
        serve(PackagedModel.load(folder), host=args.host, port=args.port, token=token,
              max_rows=args.max_rows, access_log=args.access_log)
        return 0
    except (PackageError, InputError) as exc:
        _stderr(f"error: {exc}")
        return 1
    except OSError as exc:  # a port in use, an unwritable output file...
        _stderr(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
