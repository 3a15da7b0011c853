"""Build the runtime's allow-list (nbops/runtime/allowlist.py) from the installed libraries.

The runtime decides what a model file may name without importing scikit-learn (it must decide
before anything the file names is imported, and it is stdlib-only), so the list is static. This
module regenerates it, and a test compares the committed list with a fresh one, so that it
cannot go stale silently when scikit-learn, skops, NumPy or SciPy change:

    python -m nbops.models.trust_catalog            # compare; exit 1 and show the difference when stale
    python -m nbops.models.trust_catalog --write    # rewrite nbops/runtime/allowlist.py

What goes in (see nbops/runtime/trust.py for how it is used):
* types: skops' default trusted types; scikit-learn's public estimators; every type found in
  the skops files of real fitted estimators (each public estimator fitted on small binary,
  multiclass or regression data, over its `loss` and `algorithm` options); the loss, link,
  kernel, distance-metric and cross-validation families those come from; NumPy's arrays,
  dtypes and random generators; SciPy's sparse matrices and arrays.
* functions: NumPy's and scipy.special's ufuncs (under every module path skops may write for
  them), a few NumPy math functions, scikit-learn's univariate score functions, and every
  function found in the files of those real fitted estimators (their defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import warnings
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Iterable, Iterator

ALLOWLIST_FILE = Path(__file__).resolve().parents[1] / "runtime" / "allowlist.py"
LIBRARIES = ("scikit-learn", "skops", "numpy", "scipy")
#: NumPy functions (not ufuncs) a FunctionTransformer may hold: pure math on arrays.
NUMPY_MATH_FUNCTIONS = (
    "clip", "round", "around", "nan_to_num", "sum", "prod", "mean", "median", "std", "var",
    "min", "max", "amin", "amax", "cumsum", "sort", "ravel", "squeeze", "asarray", "log1p",
)
#: Module families whose classes are plain numeric objects of the estimators that hold them.
SKLEARN_FAMILIES = (
    "sklearn._loss.loss", "sklearn._loss.link", "sklearn._loss._loss", "sklearn.linear_model._sgd_fast",
    "sklearn.gaussian_process.kernels", "sklearn.metrics._dist_metrics", "sklearn.model_selection._split",
)
#: Internal types real estimators hold only for some data, so fitting them on the catalog's small
#: data set finds them only some of the time: OneVsRest/OneVsOne store a _ConstantPredictor for a
#: label that is constant in what they saw.
SKLEARN_DATA_DEPENDENT = ("sklearn.multiclass._ConstantPredictor",)
#: Builtin and standard-library types skops' nodes trust by default (dict, OrderedDict, ...).
SKOPS_NODE_DEFAULTS = (
    "builtins.dict", "collections.OrderedDict", "collections.defaultdict", "builtins.list",
    "builtins.set", "builtins.tuple", "builtins.bytes", "builtins.bytearray", "builtins.slice",
    "functools.partial", "numpy.ndarray", "numpy.dtype", "numpy.ma.MaskedArray", "numpy.ma.core.MaskedArray",
    "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator", "numpy.random.bit_generator.SeedSequence",
)
#: The modules under which skops may write a scipy.special ufunc's name (the first loaded
#: module holding the object, which depends on import order).
SCIPY_UFUNC_MODULES = ("scipy.special", "scipy.special._ufuncs", "scipy.special._special_ufuncs")


def build() -> dict[str, Any]:
    """{"types": [...], "functions": [...], "versions": {...}, "not_fitted": [...]}, sorted."""
    from skops.io import _trusted_types as skops_defaults

    types, functions = static_names()
    found_types, found_functions, not_fitted = fitted_names()
    return {
        "types": sorted(types | found_types),
        "functions": sorted(functions | found_functions),
        "skops_estimators": sorted(skops_defaults.SKLEARN_ESTIMATOR_TYPE_NAMES),
        "skops_scipy_ufuncs": sorted(skops_defaults.SCIPY_UFUNC_TYPE_NAMES),
        "versions": {lib: dist_version(lib) for lib in LIBRARIES},
        "not_fitted": not_fitted,
    }


def static_names() -> tuple[set[str], set[str]]:
    """The names that need no fitting: skops' defaults, public estimators, families, NumPy/SciPy."""
    import importlib

    import numpy as np
    import scipy.sparse
    import scipy.special
    from skops.io import _trusted_types as skops_defaults
    from skops.io._sklearn import ALLOWED_LOSSES
    from skops.io._utils import get_type_name
    from sklearn.utils import all_estimators

    types = set(SKOPS_NODE_DEFAULTS)
    types |= set(skops_defaults.PRIMITIVE_TYPE_NAMES) | set(skops_defaults.CONTAINER_TYPE_NAMES)
    types |= set(skops_defaults.SKLEARN_ESTIMATOR_TYPE_NAMES) | set(skops_defaults.SKLEARN_INTERNAL_TYPE_NAMES)
    types |= set(skops_defaults.NUMPY_DTYPE_TYPE_NAMES) | set(skops_defaults.NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES)
    types |= {get_type_name(loss) for loss in ALLOWED_LOSSES} | set(SKLEARN_DATA_DEPENDENT)
    types |= {get_type_name(cls) for _, cls in all_estimators()}
    for family in SKLEARN_FAMILIES:
        try:
            module = importlib.import_module(family)
        except ImportError:
            continue
        types |= {get_type_name(obj) for obj in vars(module).values()
                  if isinstance(obj, type) and obj.__module__ == family}
    sparse = [getattr(scipy.sparse, n) for n in dir(scipy.sparse) if n.endswith(("_matrix", "_array"))]
    types |= {get_type_name(cls) for cls in sparse if isinstance(cls, type)}

    functions = set(skops_defaults.NUMPY_UFUNC_TYPE_NAMES) | set(skops_defaults.SCIPY_UFUNC_TYPE_NAMES)
    functions |= {f"numpy.{name}" for name in dir(np) if isinstance(getattr(np, name), np.ufunc)}
    functions |= set(_ufunc_aliases())
    functions |= {_function_name(getattr(np, name)) for name in NUMPY_MATH_FUNCTIONS}
    from sklearn import feature_selection

    functions |= {_function_name(getattr(feature_selection, name)) for name in (
        "chi2", "f_classif", "f_oneway", "f_regression", "mutual_info_classif", "mutual_info_regression", "r_regression")}
    return types, functions


def _function_name(func: Any) -> str:
    from skops.io._utils import get_module

    return f"{get_module(func)}.{func.__name__}"


def _ufunc_aliases() -> Iterator[str]:
    """scipy.special's ufuncs under each module of SCIPY_UFUNC_MODULES that holds them."""
    import importlib

    import numpy as np

    for module_name in SCIPY_UFUNC_MODULES:
        module = importlib.import_module(module_name)
        for name in dir(module):
            if isinstance(getattr(module, name, None), np.ufunc):
                yield f"{module_name}.{name}"


def fitted_names() -> tuple[set[str], set[str], list[str]]:
    """Types and functions in the skops files of every public estimator, fitted for real."""
    import numpy as np
    import skops.io as sio
    from sklearn.base import is_classifier, is_regressor
    from sklearn.utils._test_common.instance_generator import _tested_estimators

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    X[:, 0] += np.repeat([0.0, 3.0], 20)
    targets = {"binary": np.repeat([0, 1], 20), "multiclass": np.arange(40) % 3,
               "regression": X[:, 0] * 2 + rng.normal(size=40) * 0.1}
    types: set[str] = set()
    functions: set[str] = set()
    not_fitted: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for estimator in _tested_estimators():
            kinds = ["binary", "multiclass"] if is_classifier(estimator) else ["regression"] if is_regressor(estimator) else ["binary"]
            fitted = 0
            for variant in _variants(estimator):
                for kind in kinds:
                    model = _fit(variant, X, targets[kind])
                    try:
                        data = sio.dumps(model) if model is not None else None
                    except Exception:  # noqa: BLE001 - skops cannot store it (e.g. Birch)
                        data = None
                    if data is None:
                        continue
                    fitted += 1
                    for loader, name in _schema_names(data):
                        (functions if loader == "FunctionNode" else types).add(name)
            if not fitted:
                not_fitted.append(type(estimator).__name__)
    functions |= _scorer_functions()
    return types, functions, sorted(set(not_fitted))


def _fit(estimator: Any, X: Any, y: Any) -> Any:
    """The estimator fitted on the first input it accepts: numbers, text, dicts or labels alone."""
    from sklearn.base import clone
    from sklearn.utils.estimator_checks import _enforce_estimator_tags_X, _enforce_estimator_tags_y

    words = ["machine", "failure", "torque", "speed", "tool", "wear", "heat", "power"]
    text = [" ".join(words[(i + k) % len(words)] for k in range(3)) for i in range(len(y))]
    attempts = [
        lambda e: e.fit(_enforce_estimator_tags_X(e, X.copy()), _enforce_estimator_tags_y(e, y.copy())),
        lambda e: e.fit(text, y),
        lambda e: e.fit([{w: float(i % 3)} for i, w in enumerate(text)], y),
        lambda e: e.fit(y),
    ]
    for attempt in attempts:
        try:
            return attempt(clone(estimator))
        except Exception:  # noqa: BLE001 - not this kind of input
            continue
    return None


def _scorer_functions() -> set[str]:
    """The metric functions of scikit-learn's named scorers (GridSearchCV(scoring="f1") stores f1_score)."""
    from sklearn.metrics import get_scorer, get_scorer_names

    found = set()
    for scorer_name in get_scorer_names():
        func = getattr(get_scorer(scorer_name), "_score_func", None)
        if func is not None and hasattr(func, "__name__"):
            found.add(_function_name(func))
    return found


def _variants(estimator: Any) -> Iterator[Any]:
    """The estimator, and a copy per option of its `loss` and `algorithm` parameters (losses and
    neighbour trees are stored as their own types)."""
    yield estimator
    constraints = getattr(estimator, "_parameter_constraints", {}) or {}
    params = estimator.get_params(deep=False)
    for param in ("loss", "algorithm"):
        if param not in params:
            continue
        for constraint in constraints.get(param, []):
            for option in sorted(getattr(constraint, "options", ()) or (), key=str):
                if isinstance(option, str) and option != params[param]:
                    try:
                        yield estimator.__class__(**{**params, param: option})
                    except Exception:  # noqa: BLE001
                        continue


def _schema_names(data: bytes) -> Iterable[tuple[str, str]]:
    from ..runtime.trust import schema_nodes

    return [(loader, name) for loader, name in schema_nodes(data, "catalog")
            if loader not in ("JsonNode", "SliceNode", "CachedNode", "MethodNode", "OperatorFuncNode")]


def render(catalog: dict[str, Any]) -> str:
    """The source of nbops/runtime/allowlist.py."""
    versions = ", ".join(f"{lib} {v}" for lib, v in catalog["versions"].items())
    note = (f"Built with {versions}. Estimators not fitted here (skops cannot store them, or they take "
            f"other inputs), covered by skops' defaults only: {', '.join(catalog['not_fitted']) or 'none'}.")
    return "\n".join([
        '"""The names a model file may hold (see trust.py). Generated by `python -m nbops.models.trust_catalog --write`.',
        "",
        *textwrap.wrap(note, 100),
        '"""',
        "",
        f"GENERATED_WITH = {json.dumps(catalog['versions'])}",
        "",
        "TYPES = frozenset({",
        *(f"    {json.dumps(name)}," for name in catalog["types"]),
        "})",
        "",
        "FUNCTIONS = frozenset({",
        *(f"    {json.dumps(name)}," for name in catalog["functions"]),
        "})",
        "",
        "#: skops' own default list of scikit-learn estimators (what `all_estimators()` finds), which",
        "#: trust.import_skops restores in a process where it skipped that walk.",
        "SKOPS_ESTIMATORS = (",
        *(f"    {json.dumps(name)}," for name in catalog["skops_estimators"]),
        ")",
        "",
        "#: skops' own default list of scipy.special's ufuncs, restored the same way.",
        "SKOPS_SCIPY_UFUNCS = (",
        *(f"    {json.dumps(name)}," for name in catalog["skops_scipy_ufuncs"]),
        ")",
        "",
    ])


def differences(catalog: dict[str, Any]) -> list[str]:
    """How the committed allow-list differs from `catalog` (names only; empty when current)."""
    from ..runtime import allowlist

    lines = []
    for label, committed, fresh in (("type", allowlist.TYPES, catalog["types"]), ("function", allowlist.FUNCTIONS, catalog["functions"])):
        lines += [f"+ {label} {name} (missing from allowlist.py)" for name in sorted(set(fresh) - committed)]
        lines += [f"- {label} {name} (no longer found)" for name in sorted(committed - set(fresh))]
    for committed, fresh in ((set(allowlist.SKOPS_ESTIMATORS), catalog["skops_estimators"]),
                             (set(allowlist.SKOPS_SCIPY_UFUNCS), catalog["skops_scipy_ufuncs"])):
        lines += [f"+ skops default {name} (missing from allowlist.py)" for name in sorted(set(fresh) - committed)]
        lines += [f"- skops default {name} (no longer found)" for name in sorted(committed - set(fresh))]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbops.models.trust_catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {ALLOWLIST_FILE.name}")
    args = parser.parse_args(argv)
    catalog = build()
    if args.write:
        ALLOWLIST_FILE.write_text(render(catalog), encoding="utf-8")
        print(f"wrote {ALLOWLIST_FILE} ({len(catalog['types'])} types, {len(catalog['functions'])} functions)")
        return 0
    changed = differences(catalog)
    print("\n".join(changed) if changed else f"{ALLOWLIST_FILE.name} is current")
    if changed:
        print(f"{ALLOWLIST_FILE.name} is stale: run `python -m nbops.models.trust_catalog --write` and review the difference")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
