"""How long does `nbops promote` take, wheel build included?

Builds two throwaway projects in a temporary folder, reproduces them with `dvc repro`, then
times `nbops promote NAME` (a real promotion into a fresh registry, every gate, the wheel, the
card) several times each and prints the median:

* the example pipeline's model (gradient-boosted trees on the simulated plant's data, default params.yaml);
* a ~50 MB model: a k-nearest-neighbours classifier holding ~50 MB of training data (large
  arrays, few objects);
* a deep random forest of 60 trees (many small objects, what skops loads slowest; its file is
  smaller than its memory because skops deflates the node arrays).

    python bench/promote_bench.py [--rounds 5] [--workdir DIR] [--only big-knn] [--baseline SRC]

`--workdir` keeps the reproduced projects in DIR and reuses them on the next run (preparing them
takes minutes); `--only` times the named models alone. `--baseline SRC` also times another
checkout of nbops (`git archive main | tar -x -C SRC`), imported through PYTHONPATH with this
same interpreter, libraries and projects, in rounds interleaved with this checkout's, and prints
both medians and their ratio. Beside wall time it prints the CPU time the promotion's processes
used (user + system), steadier than wall time on a shared machine (a checkout older than nbops' own wheel writer, `wheelfile`, needs `pip install hatchling`).
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

from nbops.testing import PROJECT_FILES, command_env, copy_project, init_repo, run  # noqa: E402

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
    parser.add_argument("--workdir", type=Path, help="keep the reproduced projects here and reuse them")
    parser.add_argument("--only", action="append", metavar="NAME", help="time only this model (repeatable)")
    parser.add_argument("--baseline", type=Path, metavar="SRC", help="another nbops checkout to time side by side")
    args = parser.parse_args()
    home = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="nbops-promote-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    env = command_env(home)
    wanted = set(args.only or ["failure-predictor", "big-knn", "big-forest"])
    try:
        cases = [("example", prepare_example(home, env), "failure-predictor")] if "failure-predictor" in wanted else []
        if wanted & {"big-knn", "big-forest"}:
            big = prepare_big(home, env)
            cases += [(label, big, name) for label, name in (("knn, 50 MB data", "big-knn"), ("forest, 60 trees", "big-forest"))
                      if name in wanted]
        print(machine())
        print(f"`nbops promote NAME` into a fresh registry, {args.rounds} rounds, median (min–max):")
        for label, project, name in cases:
            size = (project / "models" / f"{name}.skops").stat().st_size / 1e6
            times: dict[str, list[float]] = {"this": [], "baseline": []}
            cpu: dict[str, list[float]] = {"this": [], "baseline": []}  # user + system, the promotion's processes
            ways = ["this", "baseline"] if args.baseline else ["this"]
            for i in range(args.rounds):
                for way in ways if i % 2 == 0 else ways[::-1]:  # interleaved, alternating who goes first
                    registry = home / f"registry-{name}-{way}-{i}"
                    shutil.rmtree(registry, ignore_errors=True)
                    way_env = {**env, "NBOPS_REGISTRY": str(registry)}
                    if way == "baseline":
                        way_env["PYTHONPATH"] = str(args.baseline.resolve())
                    cpu_before = _children_cpu()
                    start = time.perf_counter()
                    run(["nbops", "promote", name], project, way_env)
                    times[way].append(time.perf_counter() - start)
                    cpu[way].append(_children_cpu() - cpu_before)
                    shutil.rmtree(registry, ignore_errors=True)
            line = f"  {label:<17} model {size:5.1f} MB   this checkout {_summary(times['this'])}, CPU {statistics.median(cpu['this']):.2f} s"
            if args.baseline:
                ratio = statistics.median(times["this"]) / statistics.median(times["baseline"])
                line += (f"   baseline {_summary(times['baseline'])}, CPU {statistics.median(cpu['baseline']):.2f} s"
                         f"   this/baseline {ratio:.2f}")
            print(line)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if not args.workdir:
            shutil.rmtree(home, ignore_errors=True)


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far, their children included:
    on a shared machine wall time grows with the load, CPU time much less."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _summary(times: list[float]) -> str:
    return f"{statistics.median(times):5.2f} s ({min(times):.2f}–{max(times):.2f})"


def prepare_example(home: Path, env: dict[str, str]) -> Path:
    if (home / "example" / "dvc.lock").exists():
        return home / "example"
    project = copy_project(REPO, home / "example", files=PROJECT_FILES)
    init_repo(project, env)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "reproduced"], project, env)
    return project


def prepare_big(home: Path, env: dict[str, str]) -> Path:
    project = home / "big"
    if (project / "dvc.lock").exists():
        return project
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
