"""The JSON codec of the server: orjson when installed (several times faster, and it writes numpy
arrays directly), else the standard library's json, made to refuse NaN and Infinity as JSON does."""

from __future__ import annotations

import json
from typing import Any, Callable


def codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes], bool]:
    """(loads, dumps, numpy_native): `loads` raises ValueError on invalid JSON; `dumps` gives
    compact UTF-8 bytes; `numpy_native` says whether `dumps` takes numpy arrays as they are."""
    try:
        import orjson
    except ImportError:
        return _stdlib_loads, _stdlib_dumps, False

    option = orjson.OPT_SERIALIZE_NUMPY

    def dumps_fast(value: Any) -> bytes:
        return orjson.dumps(value, default=_jsonable, option=option)

    return orjson.loads, dumps_fast, True


def _refuse(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _stdlib_loads(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse)
    except RecursionError:  # json recurses per nesting level; orjson stops at 1024 levels with a ValueError
        raise ValueError("the JSON is nested too deeply") from None


def _stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_jsonable).encode("utf-8")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def array_json(array: Any, numpy_native: bool) -> Any:
    """A prediction array in the form the JSON encoder writes fastest."""
    if numpy_native and array.dtype.kind in "biuf" and array.dtype.isnative:
        import numpy as np

        return np.ascontiguousarray(array)
    return array.tolist()
