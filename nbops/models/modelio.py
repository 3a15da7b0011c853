"""Model files: deterministic skops bytes, hash-verified loading of trusted types only, signatures.

skops stores objects without pickle; what a file may name (types, and functions it holds) is
decided by the runtime's trust policy (nbops/runtime/trust.py) before anything is imported, plus
the exact names a project adds in params.yaml (`promote.trusted_types`).
skops names array files and object ids after `id()`, so the same model would give different bytes
on every run; `dumps` renumbers them in order of appearance and fixes zip timestamps, so an
unchanged model keeps its sha256 and `dvc repro` does not churn.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

from ..core import project
from .. import runtime
from ..core._io import sha256_bytes
from ..core.exceptions import ModelFileError, ParamsError

#: Where a project lists the extra names it trusts.
TRUSTED_TYPES_PARAM = "promote.trusted_types"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ID_PATTERN = re.compile(r'("__id__": )(\d+)|"(\d+)\.npy"')


def dumps(model: Any) -> bytes:
    """The model as skops bytes that are identical for an identical model."""
    import skops.io as sio

    raw = sio.dumps(model)
    try:
        return _canonical_zip(raw)
    except (KeyError, ValueError, zipfile.BadZipFile):  # a skops format we do not know: keep it as is
        return raw


def _canonical_zip(raw: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema = source.read("schema.json").decode("utf-8")
    numbering: dict[str, str] = {}

    def renumber(match: re.Match[str]) -> str:
        original = match.group(2) or match.group(3)
        new = numbering.setdefault(original, str(len(numbering) + 1))
        return f"{match.group(1)}{new}" if match.group(2) else f'"{new}.npy"'

    schema = _ID_PATTERN.sub(renumber, schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        entries = {"schema.json": schema.encode("utf-8")}
        for info in source.infolist():
            if info.filename == "schema.json":
                continue
            stem, dot, ext = info.filename.partition(".")
            name = f"{numbering[stem]}{dot}{ext}" if stem in numbering else info.filename
            entries[name] = source.read(info)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED if _compresses(entries[name]) else zipfile.ZIP_STORED
            target.writestr(info, entries[name])
    return out.getvalue()


def _compresses(data: bytes, probe: int = 1 << 20) -> bool:
    """Whether deflating `data` is worth it, judged on its first MiB (the same bytes always get the
    same answer). Arrays of measured floats barely shrink (a 50 MB training set held by a
    k-nearest-neighbours model: 4 %), yet deflating costs ~1.5 s at every save and inflating
    ~0.3 s at every load; trees, counts and text shrink by half or more."""
    head = data[:probe]
    return len(head) < 256 or len(zlib.compress(head, 1)) < 0.9 * len(head)


def parse_trusted_types(value: Any, where: str = f"{project.PARAMS_FILE} {TRUSTED_TYPES_PARAM}") -> list[str]:
    """The extra trusted names of a project, checked (a list of full dotted names)."""
    try:
        return runtime.parse_trusted_types(value, where)
    except runtime.PackageError as exc:
        raise ParamsError(str(exc)) from None


def project_trusted_types(root: str | os.PathLike[str] | None) -> list[str]:
    """`promote.trusted_types` of the project at `root` (none without a params.yaml)."""
    from ..core.params import load_yaml

    if root is None:
        return []
    params = load_yaml(Path(root) / project.PARAMS_FILE, shown=project.PARAMS_FILE)
    section = params.get("promote") or {}
    return parse_trusted_types(section.get("trusted_types") if isinstance(section, dict) else None)


def names_trusted_by(data: bytes, trusted: list[str], where: str = "model") -> list[str]:
    """The names of `trusted` that the file holds (what it needs beyond the built-in policy)."""
    if not trusted:
        return []
    try:
        held = set(runtime.check_schema(data, where, trusted))
    except runtime.PackageError as exc:
        raise ModelFileError(str(exc)) from None
    return [name for name in trusted if name in held]


def loads(data: bytes, where: str = "model", trusted: list[str] | tuple[str, ...] = ()) -> Any:
    """Load skops bytes whose every name passes the trust policy, plus `trusted` (runtime.load_skops)."""
    try:
        return runtime.load_skops(data, where, list(trusted))
    except runtime.PackageError as exc:
        raise ModelFileError(str(exc)) from exc.__cause__


def apply_decision(probabilities: Any, classes: list[Any], decision: dict[str, Any]) -> list[Any]:
    """Decisions at a threshold, by the rule every package's runtime applies to its answers."""
    from ..runtime.model import apply_decision as runtime_rule

    return runtime_rule(probabilities, classes, decision)


def load_file(path: str | os.PathLike[str], sha256: str | None = None, trusted: list[str] | tuple[str, ...] = ()) -> Any:
    """Load a model file, verifying its sha256 first when one is given."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise ModelFileError(
            f"{path}: sha256 {sha256_bytes(data)[:12]}… does not match the recorded {sha256[:12]}… "
            "(the file was changed after it was recorded; re-create it with `dvc repro`)"
        )
    return loads(data, str(path), trusted)


@contextlib.contextmanager
def single_threaded(model: Any) -> Iterator[Any]:
    """Predict with n_jobs=1 on every estimator that has it, restoring the settings after.

    A forest with n_jobs > 1 sums its trees' probabilities in thread-completion order, so the
    last bits of a probability vary from call to call; one thread gives the same bits every
    time, which is what a parity check between notebook and package needs.
    """
    get_params = getattr(model, "get_params", None)
    saved = {k: v for k, v in get_params(deep=True).items() if k == "n_jobs" or k.endswith("__n_jobs")} if get_params else {}
    if saved:
        model.set_params(**{key: 1 for key in saved})
    try:
        yield model
    finally:
        if saved:
            model.set_params(**saved)


# --- signatures and JSON-safe samples ------------------------------------------------------


def infer_signature(sample: Any) -> dict[str, Any]:
    """Columns and dtypes of a DataFrame sample (or the width and dtype of an array)."""
    import pandas as pd

    if isinstance(sample, pd.DataFrame):
        return {
            "type": "dataframe",
            "columns": [{"name": str(name), "dtype": _dtype_name(dtype)} for name, dtype in sample.dtypes.items()],
        }
    import numpy as np

    array = np.asarray(sample)
    if array.ndim != 2:
        raise ValueError(f"sample_input must be 2-dimensional (rows × features), got shape {array.shape}")
    return {
        "type": "array",
        "columns": [{"name": str(i), "dtype": _dtype_name(array.dtype)} for i in range(array.shape[1])],
    }


def _dtype_name(dtype: Any) -> str:
    """A portable dtype name: int64, float64, bool, str, category, datetime64[ns]…"""
    kind = getattr(dtype, "kind", "O")
    name = str(dtype)
    if name in ("object", "string", "str") or kind in ("O", "U", "S") or name.startswith("string"):
        return "str"
    return name


def sample_records(sample: Any) -> dict[str, Any]:
    """A sample input as {"columns": [...], "data": [[...], ...]}; floats keep every digit."""
    import pandas as pd

    frame = sample if isinstance(sample, pd.DataFrame) else pd.DataFrame(sample)
    rows = [[_plain(value) for value in row] for row in frame.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in frame.columns], "data": rows}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    if not isinstance(value, (str, int, float, bool, type(None))):
        return str(value)
    return value


def to_jsonable(values: Any) -> Any:
    """Predictions (numpy arrays, pandas objects) as plain lists of JSON scalars."""
    import numpy as np

    array = np.asarray(values)
    return array.tolist()
