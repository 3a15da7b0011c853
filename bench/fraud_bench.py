"""The fraud-detection example at the handbook's full scale (about 1.75 M transactions).

    .venv/bin/python bench/fraud_bench.py [--seeds 10] [--rounds 3] [--skip-pipeline]

1. The simulator against the handbook's published figures, over several seeds: the spread of
   each figure is what the slow test's tolerance rests on.
2. The cost of the features per million transactions (in process, median of --rounds).
3. `dvc repro` of the example from generate through evaluate at full scale, in a fresh git
   repository: the time of each stage (from DVC's own "Running stage" lines) and in all.

Figures depend on the machine's load: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "fraud-detection"
sys.path.insert(0, str(EXAMPLE))

PUBLISHED = {"transactions": 1_754_155, "frauds": 14_681, "fraud_rate": 0.0084, "scenario_1": 973, "scenario_2": 9_077, "scenario_3": 4_631}
FULL_PARAMS = {"generate": {"scale": "full"}, "featurize": {"train_weeks": 8, "test_weeks": 4}}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def published_figures(seeds: int) -> None:
    from fraudkit import simulate

    rows = []
    times = []
    for seed in range(seeds):
        started = time.perf_counter()
        sim = simulate.simulate(simulate.WORLDS["full"], seed=seed)
        times.append(time.perf_counter() - started)
        rows.append(simulate.summary(sim.transactions))
    print(f"\n## The simulator at full scale, {seeds} seeds (generation {statistics.median(times):.1f} s median)\n")
    print("| figure | published | mean | sd | min | max | mean / published |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, value in PUBLISHED.items():
        values = [row[key] for row in rows]
        mean, sd = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
        fmt = (lambda v: f"{v:.4%}") if key == "fraud_rate" else (lambda v: f"{v:,.0f}")
        print(f"| {key} | {fmt(value)} | {fmt(mean)} | {fmt(sd)} | {fmt(min(values))} | {fmt(max(values))} | {mean / value:.3f} |")


def feature_cost(rounds: int) -> None:
    from fraudkit import features, simulate

    tx = simulate.simulate(simulate.WORLDS["full"], seed=0).transactions
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        features.add_features(tx)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"\n## Features: {len(tx):,} transactions, median of {rounds}: {median:.2f} s = "
          f"{median / len(tx) * 1e6:.2f} s per million transactions\n")


def pipeline() -> None:
    sys.path.insert(0, str(REPO))
    from nbops.testing import command_env, run, set_params

    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp:
        home = Path(tmp)
        env = command_env(home)
        repo = home / "repo"
        listed = subprocess.run(["git", "ls-files", "--", "examples/fraud-detection"], cwd=REPO, capture_output=True, text=True, check=True)
        for name in listed.stdout.split():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
        project = repo / "examples" / "fraud-detection"
        set_params(project, FULL_PARAMS)
        run(["git", "init", "-q", "-b", "main"], repo, env)
        run(["git", "add", "-A"], repo, env)
        run(["git", "commit", "-q", "-m", "example"], repo, env)
        marks: list[tuple[str, float]] = []
        started = time.perf_counter()
        process = subprocess.Popen(["dvc", "repro"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Running stage '"):
                marks.append((line.split("'")[1], time.perf_counter()))
        process.wait()
        total = time.perf_counter() - started
        if process.returncode:
            raise SystemExit(f"dvc repro failed (exit {process.returncode})")
        print(f"\n## `dvc repro` at full scale (scale=full, 8 train weeks, 4 test weeks): {total:.0f} s in all\n")
        print("| stage | seconds |")
        print("|---|---:|")
        ends = [t for _, t in marks[1:]] + [started + total]
        for (stage, begun), end in zip(marks, ends):
            print(f"| {stage} | {end - begun:.1f} |")
        metrics = (project / "metrics" / "evaluate.json").read_text()
        print(f"\nmetrics/evaluate.json: {' '.join(metrics.split())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average before: {load()}")
    published_figures(args.seeds)
    feature_cost(args.rounds)
    if not args.skip_pipeline:
        pipeline()
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
