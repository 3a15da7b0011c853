"""How long does `nbops promote` take, wheel build included?

Builds two throwaway projects in a temporary folder, reproduces them with `dvc repro`, then
times `nbops promote NAME` (a real promotion into a fresh registry, every gate, the wheel, the
card) several times each and prints the median:

* the example pipeline's model (a random forest on the AI4I-like data, default params.yaml);
* a ~50 MB model: a k-nearest-neighbours classifier holding ~50 MB of training data (large
  arrays, few objects);
* a deep random forest of 60 trees (many small objects, what skops loads slowest; its file is
  smaller than its memory because skops deflates the node arrays).

    python bench/promote_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nbops.testing import command_env, copy_project, init_repo, run  # noqa: E402

BIG_NOTEBOOK = '''# %% tags=["parameters"]
kind = "knn"
# %%
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
import nbops

rng = np.random.default_rng(0)
if kind == "knn":  # ~50 MB of float64 training data kept by the model
    X = pd.DataFrame(rng.normal(size=(650_000, 10)), columns=[f"x{i}" for i in range(10)])
    y = (X["x0"] + X["x1"] > 0).astype(int)
    model = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X, y)
else:  # a deep forest of ~50 MB
    X = pd.DataFrame(rng.normal(size=(60_000, 10)), columns=[f"x{i}" for i in range(10)])
    y = (X["x0"] + X["x1"] * X["x2"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=60, random_state=0, n_jobs=-1).fit(X, y)
nbops.log_metric("train_size", len(X))
nbops.save_model(model, f"big-{kind}", sample_input=X.head(20))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nbops-promote-bench-"))
    env = command_env(home)
    try:
        cases = [("example", prepare_example(home, env), "failure-predictor")]
        big = prepare_big(home, env)
        cases += [("knn, 50 MB data", big, "big-knn"), ("forest, 60 trees", big, "big-forest")]
        print(machine())
        print(f"`nbops promote NAME` into a fresh registry, {args.rounds} rounds, median (min–max):")
        for label, project, name in cases:
            size = (project / "models" / f"{name}.skops").stat().st_size / 1e6
            times = []
            for i in range(args.rounds):
                registry = home / f"registry-{name}-{i}"
                start = time.perf_counter()
                run(["nbops", "promote", name], project, {**env, "NBOPS_REGISTRY": str(registry)})
                times.append(time.perf_counter() - start)
            print(f"  {label:<17} model {size:5.1f} MB   {statistics.median(times):5.2f} s   "
                  f"({min(times):.2f}–{max(times):.2f})")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def prepare_example(home: Path, env: dict[str, str]) -> Path:
    project = copy_project(REPO, home / "example", files=("notebooks", "params.yaml", "dvc.yaml", "jupytext.toml"))
    init_repo(project, env)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "reproduced"], project, env)
    return project


def prepare_big(home: Path, env: dict[str, str]) -> Path:
    project = home / "big"
    (project / "notebooks").mkdir(parents=True)
    (project / "notebooks/big.py").write_text(BIG_NOTEBOOK, encoding="utf-8")
    (project / "params.yaml").write_text("knn:\n  kind: knn\nforest:\n  kind: forest\n", encoding="utf-8")
    stages = {}
    for kind in ("knn", "forest"):
        stages[kind] = {
            "cmd": f"nbops run notebooks/big.py --stage {kind}",
            "deps": ["notebooks/big.py"],
            "params": [f"{kind}.kind"],
            "outs": [f"models/big-{kind}.skops", f"models/big-{kind}.json", f"reports/{kind}.ipynb"],
            "metrics": [f"metrics/{kind}.json"],
        }
    (project / "dvc.yaml").write_text(json.dumps({"stages": stages}, indent=2), encoding="utf-8")
    init_repo(project, env)
    run(["dvc", "repro"], project, env, timeout=1800)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "reproduced"], project, env)
    return project


def machine() -> str:
    load = os.getloadavg()[0]
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {load:.2f} at start")


if __name__ == "__main__":
    main()
