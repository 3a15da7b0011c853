"""The runtime of a model package: load it, validate inputs, predict, serve over HTTP, score CSVs.

This package is copied whole into every package that `nbops promote` builds (as
`<package>/_runtime/`, and as `code/_nbops_runtime/` for MLflow), and nbops itself uses it for
`nbops serve` and `nbops predict`. So it is standalone: at module level its modules import only
the standard library and each other (relative imports), nothing of nbops; numpy, pandas,
scikit-learn, skops and uvicorn are imported by the functions that need them.

A package folder holds `manifest.json` and the model file it names (`model_file`, skops format).
Loading verifies the file's sha256 against the manifest and checks the types the file names
against the trust policy before constructing anything; skops never unpickles.

    errors      PackageError, InputError
    trust       the trust policy: which types a model file may hold
    signature   the input signature: payload → validated DataFrame
    model       PackagedModel: load (sha256, manifest), predict, warm-up
    jsonio      the JSON codec (orjson when present, the stdlib otherwise)
    http        the ASGI app, its routes, bind, serve()
    cli         `python -m <package>`: predict a CSV, serve

    model = PackagedModel.load("registry/failure-predictor/0.1.0")
    model.predict([{"Type": "L", "Air temperature [K]": 300.1, ...}])
    serve(model, port=8000)                       # POST /predict, GET /health, GET /metadata
    main(["predict", "in.csv", "-o", "out.csv"], package_dir=...)   # `python -m <package>`
"""

from __future__ import annotations

from .cli import TOKEN_ENV, main, predict_csv
from .errors import InputError, PackageError
from .http import DEFAULT_MAX_ROWS, create_app, serve
from .model import MANIFEST_FILE, PackagedModel
from .trust import TRUSTED_MODULES, check_trusted, load_skops

__all__ = [
    "TRUSTED_MODULES",
    "MANIFEST_FILE",
    "DEFAULT_MAX_ROWS",
    "TOKEN_ENV",
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
