"""Checks of a loaded model's tree structures, before it predicts anything.

A trusted type is not a trusted content. scikit-learn's decision trees (`Tree`), the predictors
of HistGradientBoosting (`TreePredictor`) and the neighbour trees (`KDTree`, `BallTree`) follow
the child and sample indices stored in their arrays without bounds checks, so a file whose
arrays were edited crashes the process (a segmentation fault) the first time the model
predicts, or loops forever. skops does not trust these types by default for that reason; the
trust policy does (real models hold them), and this module makes that safe: every index must
point inside its array, and every child must come after its parent (trees are stored in that
order, which also rules out cycles).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from .errors import PackageError

#: How many objects of a model are visited at most (a forest of 1,000 trees holds ~3,000).
_MAX_OBJECTS = 1_000_000


def check_structures(model: Any, where: str) -> None:
    """PackageError naming the first tree whose indices point outside its arrays."""
    for obj, owner in _objects(model):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        check = _CHECKS.get(type(obj).__qualname__)
        if check is None or not name.startswith("sklearn."):
            continue
        problem = check(obj, owner)
        if problem:
            raise PackageError(f"{where}: refusing to load the model: its {name} {problem} "
                               "(the file is corrupt or was edited; predicting would read outside its arrays)")


def _objects(root: Any) -> Iterator[tuple[Any, Any]]:
    """Every object reachable from `root` through attributes, lists, tuples and dicts, with the
    estimator that holds it (arrays and scalars are not entered)."""
    seen: set[int] = set()
    stack: list[tuple[Any, Any]] = [(root, None)]
    while stack and len(seen) < _MAX_OBJECTS:
        obj, owner = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))) or hasattr(obj, "dtype"):
            continue
        seen.add(id(obj))
        yield obj, owner
        if isinstance(obj, dict):
            stack.extend((value, owner) for value in obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend((value, owner) for value in obj)
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                holder = obj if hasattr(obj, "n_features_in_") else owner
                stack.extend((value, holder) for value in attributes.values())


def _children_problem(left: Any, right: Any, internal: Any) -> str | None:
    """Children of internal nodes inside the array and after their parent."""
    import numpy as np

    n = len(left)
    index = np.arange(n)[internal]
    for side, children in (("left", left[internal]), ("right", right[internal])):
        bad = (children <= index) | (children >= n)
        if bad.any():
            i = int(np.argmax(bad))
            return f"node {int(index[i])} has {side} child {int(children[i])} among {n} nodes"
    return None


def _tree(tree: Any, owner: Any) -> str | None:
    """sklearn.tree._tree.Tree: leaves have both children -1; features within n_features."""
    import numpy as np

    left, right, feature = np.asarray(tree.children_left), np.asarray(tree.children_right), np.asarray(tree.feature)
    n = int(tree.node_count)
    if not len(left) == len(right) == len(feature) == n or np.asarray(tree.value).shape[0] != n:
        return f"has arrays of different lengths for its {n} nodes"
    leaf = left == -1
    if (right[leaf] != -1).any():
        return "has a leaf with one child"
    internal = ~leaf
    bad_feature = internal & ((feature < 0) | (feature >= int(tree.n_features)))
    if bad_feature.any():
        return f"splits node {int(np.argmax(bad_feature))} on feature {int(feature[bad_feature][0])} of {int(tree.n_features)}"
    return _children_problem(left, right, internal)


def _tree_predictor(predictor: Any, owner: Any) -> str | None:
    """HistGradientBoosting's TreePredictor: children, features and category bitsets in range."""
    import numpy as np

    nodes = np.asarray(predictor.nodes)
    if len(nodes) == 0:
        return "has no nodes"
    internal = ~nodes["is_leaf"].astype(bool)
    n_features = getattr(owner, "n_features_in_", None)
    features = nodes["feature_idx"].astype(np.int64)
    bad = internal & (features < 0) if n_features is None else internal & ((features < 0) | (features >= int(n_features)))
    if bad.any():
        return f"splits node {int(np.argmax(bad))} on feature {int(features[bad][0])}"
    categorical = internal & nodes["is_categorical"].astype(bool)
    bitsets = len(np.asarray(getattr(predictor, "raw_left_cat_bitsets", ())))
    if categorical.any() and (nodes["bitset_idx"][categorical].astype(np.int64) >= bitsets).any():
        return f"names a category bitset beyond its {bitsets}"
    return _children_problem(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), internal)


def _binary_tree(tree: Any, owner: Any) -> str | None:
    """KDTree and BallTree: sample indices within the data, node ranges within the indices,
    internal nodes' children (2i+1, 2i+2) within the nodes."""
    import numpy as np

    data, indices, node_data, bounds = tree.get_arrays()
    n_samples, n_nodes = len(data), len(node_data)
    indices = np.asarray(indices)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_samples):
        return f"indexes samples outside its {n_samples}"
    start, end = node_data["idx_start"].astype(np.int64), node_data["idx_end"].astype(np.int64)
    if ((start < 0) | (start > end) | (end > len(indices))).any():
        return f"has a node range outside its {len(indices)} indices"
    internal = np.flatnonzero(~node_data["is_leaf"].astype(bool))
    if len(internal) and 2 * int(internal.max()) + 2 >= n_nodes:
        return f"has an internal node {int(internal.max())} without children among {n_nodes} nodes"
    if np.asarray(bounds).ndim != 3 or np.asarray(bounds).shape[1] != n_nodes:
        return f"has node bounds for another number of nodes than its {n_nodes}"
    return None


_CHECKS: dict[str, Callable[[Any, Any], str | None]] = {
    "Tree": _tree,
    "TreePredictor": _tree_predictor,
    "KDTree": _binary_tree,
    "BallTree": _binary_tree,
}
