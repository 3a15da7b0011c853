"""The input signature: the model's columns and dtypes, and payloads validated into a DataFrame.

A payload is a DataFrame, a list of records, a dict of columns or a JSON-decoded request body in
one of the shapes of SHAPES. `Signature.frame` checks the set of columns, every value's type,
nulls and the row limit, and raises InputError naming the column and row at fault. The common
case costs a few C-level passes per column (see `_array`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from .errors import InputError, PackageError, short

_ALLOWED_TYPES = {
    "float": frozenset({float, int}),
    "int": frozenset({int}),
    "bool": frozenset({bool}),
    "str": frozenset({str}),
}
_WRAPPERS = ("records", "dataframe_records", "columns", "dataframe_split")
SHAPES = (
    'a list of records [{"column": value, ...}], {"records": [...]}, {"columns": {"column": [values]}}, '
    '{"dataframe_records": [...]} or {"dataframe_split": {"columns": [...], "data": [[...]]}}'
)


class Column:
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


class Signature:
    """The columns a model takes (name, dtype, nullable) and the payload → DataFrame validation."""

    def __init__(self, signature: Mapping[str, Any], sample_input: Any = None, where: str = "model") -> None:
        """`signature` is a manifest's: {"type": "dataframe"|"array", "columns": [{"name", "dtype",
        "nullable"?}]}; columns in which `sample_input` (the manifest's) has a null accept nulls."""
        self.type: str = signature.get("type", "dataframe")
        specs = signature.get("columns")
        if not specs:
            raise PackageError(f"{where}: the manifest has no input signature (signature.columns)")
        nullable = _columns_with_nulls(sample_input)
        try:
            self.specs = [
                Column(str(c["name"]), str(c.get("dtype", "float64")), bool(c.get("nullable")) or str(c["name"]) in nullable)
                for c in specs
            ]
        except (KeyError, TypeError, AttributeError):
            raise PackageError(f"{where}: signature.columns must be a list of {{\"name\", \"dtype\"}} objects") from None
        self.columns: list[str] = [c.name for c in self.specs]
        self._names = frozenset(self.columns)
        if len(self._names) != len(self.columns):
            raise PackageError(f"{where}: the signature names a column twice")

    def frame(self, payload: Any, *, max_rows: int | None = None) -> Any:
        """A validated DataFrame, in the signature's column order and dtypes, from a DataFrame,
        a list of records, a dict of columns or a JSON-decoded request payload (see SHAPES)."""
        import pandas as pd

        return pd.DataFrame(self.arrays(payload, max_rows=max_rows), copy=False)

    def arrays(self, payload: Any, *, max_rows: int | None = None) -> dict[str, Any]:
        """The validated columns as {name: array}, in the signature's order and dtypes: what `frame`
        puts in its DataFrame (the server skips building one when the model does not need it)."""
        import pandas as pd

        if isinstance(payload, pd.DataFrame):
            return self._from_dataframe(payload, max_rows)
        if max_rows is not None and rows_hint(payload) > max_rows:  # refuse before walking the rows
            raise InputError(f"batch of {rows_hint(payload)} rows is over the limit of {max_rows} rows; send smaller batches", 413)
        columns, n = self._column_values(payload)
        if n == 0:
            raise InputError("empty batch: no rows to predict")
        if max_rows is not None and n > max_rows:
            raise InputError(f"batch of {n} rows is over the limit of {max_rows} rows; send smaller batches", 413)
        return {spec.name: self._array(spec, columns[spec.name]) for spec in self.specs}

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
                raise InputError(f'"{key}" holds a {_json_type(inner)}; expected {SHAPES}')
        if isinstance(payload, list):
            if payload and not isinstance(payload[0], dict) and self.type == "array":
                return self._from_rows(payload, self.columns, "rows")
            return self._from_records(payload)
        if isinstance(payload, dict):
            if not payload:
                raise InputError("empty batch: no rows to predict")
            return self._from_columns(payload)
        raise InputError(f"expected {SHAPES}; got a {_json_type(payload)}")

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
                raise InputError(f"row {i} is a {_json_type(record)}, not an object of column values; expected {SHAPES}")
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
        if names is None and self.type == "array":
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

    def _array(self, spec: Column, values: Sequence[Any]) -> Any:
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

    def _array_slow(self, spec: Column, values: Sequence[Any]) -> Any:
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

    def _other(self, spec: Column, values: list[Any]) -> Any:
        import pandas as pd

        try:
            return pd.Series(values, dtype=object).astype(spec.dtype).array
        except (TypeError, ValueError) as exc:
            raise InputError(f"column '{spec.name}' cannot be read as {spec.dtype}: {short(exc, 120)}") from None

    def _from_dataframe(self, df: Any, max_rows: int | None) -> dict[str, Any]:
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
        for spec in self.specs:
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
        return arrays

    # -- prediction


def rows_hint(payload: Any) -> int:
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


def _columns_with_nulls(sample: Any) -> set[str]:
    """Columns in which the recorded sample input has a null: the model was made to accept them."""
    if not isinstance(sample, dict) or not sample.get("columns") or not sample.get("data"):
        return set()
    found = set()
    for name, values in zip(sample["columns"], zip(*sample["data"])):
        if any(v is None for v in values):
            found.add(str(name))
    return found


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

