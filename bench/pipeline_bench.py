"""What does the pipeline cost over running the example's notebooks as plain scripts?

The root example project (its dvc.yaml, params.yaml and notebooks) is copied twice into a
temporary folder and timed three ways, in interleaved rounds, after one warm-up round:

* **scripts** — each stage's code as a plain Python script, one after another, from the project
  root: the code cells of the notebook the stage runs (its paired percent script,
  notebooks/NAME.py, as nbops reads it), with papermill's injected-parameters cell — the stage's
  params.yaml values, as `nbops run` resolves them — right after the `parameters` cell. So
  `python .bench/ingest.py` runs what the kernel runs, with the same values. NBOPS_STAGE and
  NBOPS_ROOT are set as `nbops run` sets them, so `nbops.log_metric`, `save_model`, ... write the
  same files. A stage whose command is not `nbops run` runs its command as it is.
* **nbops run** — `nbops run notebooks/NAME.py` for each stage, one after another (no DVC).
* **dvc repro -f** — the whole pipeline forced, in a git + DVC repository.

Every way runs in the same environment (the same thread settings: OMP_NUM_THREADS & co. are
whatever the caller has, printed below), on the same inputs and parameters. Prints median wall
times, each stage's medians, the ratios side by side, and the load average before and after.

    python bench/pipeline_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
GOAL = 1.3  # issue 10: dvc repro -f at most 1.3x the scripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from nbops.testing import command_env, copy_project, init_repo

    work = Path(tempfile.mkdtemp(prefix="nbops-pipeline-bench-"))
    load_before = os.getloadavg()
    try:
        env = command_env(work)
        pipeline = init_repo(copy_project(REPO, work / "pipeline"), env)
        scripts = copy_project(REPO, work / "scripts")
        plan = stage_plan(scripts, env)
        ways = {
            "scripts": [(name, command, stage_env) for name, command, stage_env in plan["scripts"]],
            "nbops run": [(name, command, {}) for name, command in plan["nbops run"]],
            "dvc repro -f": [("all", [str(BIN / "dvc"), "repro", "-f"], {})],
        }
        folders = {"scripts": scripts, "nbops run": pipeline, "dvc repro -f": pipeline}
        times: dict[str, dict[str, list[float]]] = {way: {} for way in ways}
        for round_ in range(args.rounds + 1):  # round 0 warms the file cache and writes dvc.lock
            for way, steps in ways.items():
                for name, command, extra in steps:
                    seconds = run(command, folders[way], {**env, **extra})
                    if round_:
                        times[way].setdefault(name, []).append(seconds)
        report(times, plan["described"], load_before, os.getloadavg(), args.rounds, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stage_plan(root: Path, env: dict[str, str]) -> dict:
    """The stages of dvc.yaml in order, as plain scripts and as `nbops run` commands."""
    from nbops import execute, params, pipeline, record
    from nbops.stages import parse_run_cmd
    from papermill.translators import translate_parameters

    scripts, runs, described = [], [], []
    (root / ".bench").mkdir()
    for name, stage in pipeline.load_stages(root).items():
        parsed = parse_run_cmd(stage.cmd)
        if parsed is None:  # not a notebook: the command itself, in both ways
            command = ["bash", "-c", stage.cmd]
            scripts.append((name, command, {}))
            runs.append((name, command))
            described.append(f"{name}: `{stage.cmd}` as it is")
            continue
        notebook, section = parsed
        nb = params.load_notebook(root / notebook)
        values = execute.resolve_parameters(root / notebook, section, root, {}, nb=nb)
        cell = params.require_parameters_cell(nb, notebook)
        injected = translate_parameters("python3", "python", values, "Parameters")
        sources = [params.cell_source(c) for c in nb["cells"] if c.get("cell_type") == "code"]
        code_index = sum(1 for c in nb["cells"][: cell.index] if c.get("cell_type") == "code")
        sources.insert(code_index + 1, injected)
        script = root / ".bench" / f"{name}.py"
        script.write_text("\n\n".join(sources) + "\n", encoding="utf-8")
        stage_env = {record.ENV_STAGE: section, record.ENV_ROOT: str(root)}
        scripts.append((name, [sys.executable, str(script.relative_to(root))], stage_env))
        runs.append((name, [str(BIN / "nbops"), "run", "-q", *shlex.split(stage.cmd)[2:]]))
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        described.append(f"{name}: `python .bench/{name}.py` = the code cells of {notebook} + ({shown})")
    return {"scripts": scripts, "nbops run": runs, "described": described}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")
    return seconds


def report(
    times: dict[str, dict[str, list[float]]], described: list[str], load_before: tuple[float, ...],
    load_after: tuple[float, ...], rounds: int, env: dict[str, str],
) -> None:
    totals = {way: [sum(step[i] for step in steps.values()) for i in range(rounds)] for way, steps in times.items()}
    medians = {way: statistics.median(values) for way, values in totals.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print("load average (1/5/15 min): before " + "/".join(f"{x:.1f}" for x in load_before)
          + ", after " + "/".join(f"{x:.1f}" for x in load_after))
    print("thread settings (same for every way): "
          + ", ".join(f"{name}={env.get(name, 'unset')}" for name in THREAD_VARIABLES))
    print("baseline scripts:")
    for line in described:
        print(f"  {line}")
    print(f"{rounds} interleaved rounds after a warm-up round; median wall time (min–max):")
    for way, values in totals.items():
        print(f"  {way:<13} {medians[way]:6.2f} s   ({min(values):.2f}–{max(values):.2f})")
    stages = list(times["scripts"])
    print("each stage, median s:  " + "  ".join(f"{name:>10}" for name in stages))
    for way in ("scripts", "nbops run"):
        print(f"  {way:<20} " + "  ".join(f"{statistics.median(times[way][name]):10.2f}" for name in stages))
    ratio = [r / s for r, s in zip(totals["dvc repro -f"], totals["scripts"])]
    print(f"dvc repro -f / scripts = {medians['dvc repro -f'] / medians['scripts']:.2f} "
          f"(per round {min(ratio):.2f}–{max(ratio):.2f}; goal <= {GOAL})   "
          f"nbops run / scripts = {medians['nbops run'] / medians['scripts']:.2f}")
    print(f"overhead over the scripts: nbops run {medians['nbops run'] - medians['scripts']:+.2f} s "
          f"({(medians['nbops run'] - medians['scripts']) / len(stages):+.2f} s a stage), "
          f"dvc repro -f {medians['dvc repro -f'] - medians['scripts']:+.2f} s")


if __name__ == "__main__":
    main()
