"""The trust policy: a model file never chooses what code runs when it is loaded.

skops never unpickles; it rebuilds objects from the file's `schema.json`, importing the modules
and calling the types that the schema names. So those names are the whole attack surface: a
name is a module to import (importing `numpy.f2py.__main__` runs a program) and a callable to
call (scikit-learn, NumPy and SciPy re-export `exec`-ing test helpers, `subprocess` and `shutil`
functions under their own module names). Trusting a library by module prefix is therefore not
enough, and the policy is an exact list of names:

* types (`allowlist.TYPES`): skops' default trusted types, scikit-learn's public estimators and
  the internal types that files of real estimators hold (trees, losses, binners, kernels...),
  NumPy arrays, dtypes and random generators, SciPy's sparse matrices;
* functions (`allowlist.FUNCTIONS`): NumPy's and scipy.special's ufuncs, a few NumPy math
  functions, and the functions scikit-learn estimators hold by default (e.g. SelectKBest's
  `f_classif`). A stored method or `operator.methodcaller` is never trusted by default;
* the names a project adds (`promote.trusted_types` in params.yaml, recorded in the package
  manifest as `trusted_types`), exactly as written.

`check_schema` reads `schema.json` with the standard library, before skops (or any module the
file names) is imported, and refuses a file that names anything else; `load_skops` then lets
skops load the file with exactly those names trusted, so skops' own audit is a second check.
`allowlist.py` is generated from the installed libraries (`python -m nbops.models.trust_catalog`).
Once loaded, the trees' indices are checked (integrity.py) before the model predicts anything.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any, Iterable, Sequence

from .allowlist import FUNCTIONS, SKOPS_ESTIMATORS, SKOPS_SCIPY_UFUNCS, TYPES
from .errors import PackageError, short
from .integrity import check_structures

#: Where a project trusts more names; quoted by every refusal.
HOW_TO_ALLOW = "promote.trusted_types in params.yaml"
#: Nodes that hand back a function, which the model may later call.
_FUNCTION_NODES = frozenset({"FunctionNode"})
#: Nodes whose name is never imported or called: JSON values, slices, references to earlier nodes.
_INERT_NODES = frozenset({"JsonNode", "SliceNode", "CachedNode"})
#: Nodes that hand back a callable that calls whatever method or attribute its state names.
_CALLER_NODES = frozenset({"MethodNode", "OperatorFuncNode"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def parse_trusted_types(value: Any, where: str) -> list[str]:
    """A list of extra trusted names (params.yaml's or a manifest's), checked: full dotted names."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise PackageError(f"{where}: trusted_types must be a list of full type names like sklearn.foo.Bar, got {type(value).__name__}")
    bad = [item for item in value if not isinstance(item, str) or not _NAME.fullmatch(item)]
    if bad:
        raise PackageError(f"{where}: trusted_types holds {bad[0]!r}, not a full dotted name like module.Type")
    return list(dict.fromkeys(value))


def schema_nodes(data: bytes, where: str) -> list[tuple[str, str]]:
    """(node kind, name) of every object the file's schema names (inert JSON values and slices
    aside), read with the standard library only: nothing the file names is imported."""
    found: dict[tuple[str, str], None] = {}

    def collect(node: dict[str, Any]) -> dict[str, Any]:  # called by the parser for every object
        loader = node.get("__loader__")
        if loader is None or loader in _INERT_NODES:
            return node
        module, name = node.get("__module__"), node.get("__class__")
        if type(module) is str and type(name) is str and loader != "MethodNode":  # the common case, fast
            found[(loader, f"{module}.{name}")] = None
        else:
            found[_node_name(node, loader, where)] = None
        return node

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = archive.read("schema.json")
        json.loads(schema, object_hook=collect)
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, OSError) as exc:
        raise PackageError(f"{where}: not a readable skops model file ({type(exc).__name__}: {short(exc, 160)})") from None
    return list(found)


def _node_name(node: dict[str, Any], loader: Any, where: str) -> tuple[str, str]:
    module, name = node.get("__module__"), node.get("__class__")
    if not all(isinstance(v, str) for v in (loader, module, name)):
        raise PackageError(f"{where}: not a readable skops model file (a schema node without a module and class name)")
    if loader == "MethodNode":  # a bound method: the owner's type, and the method skops will look up
        method = (node.get("content") or {}).get("func") if isinstance(node.get("content"), dict) else None
        name = f"{name}.{method}"
    return loader, f"{module}.{name}"


def refused_names(nodes: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The (kind, name) pairs the policy refuses: 'function', 'method' or 'type'."""
    allowed = frozenset(extra)
    refused = []
    for loader, name in nodes:
        if loader in _INERT_NODES or name in allowed:
            continue
        if loader in _FUNCTION_NODES:
            ok, kind = name in FUNCTIONS, "function"
        elif loader in _CALLER_NODES:
            ok, kind = False, "method" if loader == "MethodNode" else "operator"
        elif loader == "TypeNode":  # a type or a builtin function, returned as an object
            ok, kind = name in TYPES or name in FUNCTIONS, "type or function"
        else:
            ok, kind = name in TYPES, "type"
        if not ok:
            refused.append((kind, name))
    return refused


def check_schema(data: bytes, where: str, extra: Sequence[str] = ()) -> list[str]:
    """Refuse (PackageError) a file whose schema names anything outside the policy and `extra`;
    return the names it holds that need trusting beyond skops' defaults (for skops' own audit)."""
    nodes = schema_nodes(data, where)
    refused = refused_names(nodes, extra)
    if refused:
        kind, name = refused[0]
        what = {
            "function": f"function {name}, which is not on the allow-list of functions a model may hold "
                        "(NumPy and scipy.special ufuncs, a few NumPy math functions, scikit-learn's defaults)",
            "method": f"stored method {name}, and stored methods are not trusted by default",
            "operator": f"{name}, which calls whatever attribute or method it names, and is not trusted by default",
            "type": f"type {name}, which is not on the allow-list of types a model may hold",
            "type or function": f"{name}, which is on neither allow-list (of types, of functions) a model may hold",
        }[kind]
        if name.startswith("__main__.") or "<" in name:  # skops stores functions by name: these have none to import
            what = "a lambda or nested function" if "<" in name else "a function defined in the notebook or script itself"
            raise PackageError(
                f"{where}: the model holds {name}, {what}, which cannot be loaded anywhere else "
                "(skops stores functions by name): use a NumPy function, or define it in a module of your project"
            )
        more = f" (and {len(refused) - 1} more: {', '.join(n for _, n in refused[1:4])}{', …' if len(refused) > 4 else ''})" if len(refused) > 1 else ""
        raise PackageError(
            f"{where}: refusing to load the model: it holds {what}{more}; "
            f"if you trust it, add its exact name to {HOW_TO_ALLOW}"
        )
    return sorted({name for loader, name in nodes if loader not in _INERT_NODES})


#: Set by `own_process()`: this process runs only nbops (a server, the parity check), no user code.
_OWN_PROCESS = False


def own_process() -> None:
    """Say that this process runs nothing but nbops' own loading (a model server, the parity
    check), so `import_skops` may skip skops' default catalog; never call it in a user's kernel."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def import_skops() -> Any:
    """`skops.io`, imported once. Importing it builds skops' default trust lists by walking every
    scikit-learn module (`all_estimators()`, about two seconds of imports on a small machine) and
    by looking up the module of each scipy.special ufunc among all loaded modules (about 0.4 s
    once scikit-learn is loaded): lists nbops never uses, since `load_skops` always names the
    exact trusted names. In a process nbops owns (`own_process()`), both walks are skipped and
    the lists are filled from the allow-list's copies, so skops' defaults stay what they were
    for anything else there."""
    import sys

    startup = sys.modules.get("nbops.core._startup")  # nbops' own commands say so there (absent in a wheel)
    owned = _OWN_PROCESS or bool(getattr(startup, "_own_process", False))
    if "skops.io" in sys.modules or not owned:
        import skops.io

        return skops.io
    import scipy.special
    import sklearn.utils

    walk, listing = sklearn.utils.all_estimators, vars(scipy.special).get("__dir__")
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    scipy.special.__dir__ = lambda: []  # type: ignore[attr-defined] # what `dir(scipy.special)` answers
    try:
        import skops.io
        from skops.io import _trusted_types
    finally:
        sklearn.utils.all_estimators = walk
        if listing is None:
            del scipy.special.__dir__
        else:
            scipy.special.__dir__ = listing  # type: ignore[attr-defined]
    # The same list objects skops' nodes read at load time: filled in place.
    for attribute, names in (("SKLEARN_ESTIMATOR_TYPE_NAMES", SKOPS_ESTIMATORS),
                             ("SCIPY_UFUNC_TYPE_NAMES", SKOPS_SCIPY_UFUNCS)):
        found = getattr(_trusted_types, attribute, None)
        if isinstance(found, list) and not found:
            found.extend(names)
    return skops.io


def load_skops(data: bytes, where: str = "model", trusted: Sequence[str] | None = None) -> Any:
    """Load skops bytes whose schema passes `check_schema`; `trusted` are the extra names a
    project (params.yaml) or a package (its manifest's `trusted_types`) trusts."""
    extra = parse_trusted_types(trusted, where)
    names = check_schema(data, where, extra)  # before skops, or anything the file names, is imported
    try:
        sio = import_skops()
    except ImportError:
        raise PackageError(f"{where}: loading a model needs skops (pip install skops scikit-learn)") from None
    try:
        model = sio.loads(data, trusted=names)
    except sio.exceptions.UntrustedTypesFoundException as exc:  # skops saw a name our reading did not
        raise PackageError(f"{where}: refusing to load the model: skops finds untrusted {short(exc, 200)}; "
                           f"if you trust them, add their exact names to {HOW_TO_ALLOW}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild means: not a model we can use
        raise PackageError(f"{where}: the model could not be loaded ({type(exc).__name__}: {short(exc)})") from exc
    check_structures(model, where)  # trusted types, but are their indices inside their arrays?
    return model
