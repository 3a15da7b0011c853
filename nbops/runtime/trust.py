"""The trust policy: which types a model file may hold, checked before anything is constructed.

skops never unpickles: it rebuilds objects from a schema, importing the types the schema names.
So the types are the attack surface, and they are checked first.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .errors import PackageError, short

#: Top-level modules whose types a model file may hold (beyond skops' own defaults).
TRUSTED_MODULES = ("sklearn", "numpy", "scipy")


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
            raise PackageError(f"{where}: the model could not be loaded ({type(exc).__name__}: {short(exc)})") from exc
    try:
        types = sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means: not a model file we can read
        raise PackageError(f"{where}: not a readable skops model file ({type(exc).__name__}: {short(exc)})") from None
    check_trusted(types, where)
    try:
        return sio.loads(data, trusted=types)
    except Exception as exc:  # noqa: BLE001
        raise PackageError(f"{where}: the model could not be loaded ({type(exc).__name__}: {short(exc)})") from exc
