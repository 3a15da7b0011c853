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

Every way runs in the same environment, on the same inputs and parameters, with the same
thread settings: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set to --threads
(default 1) for every way. On a shared 2-core machine, scikit-learn's OpenMP threads competing
with other processes make the model fit 3-6x slower and erratic, which would drown the overhead
being measured; `--threads 0` keeps the caller's settings. The order of the ways rotates from
round to round. Prints median wall times and CPU times (user + system of every process a way
started: steadier than wall time on a busy machine), each stage's medians, the ratios side by
side, and the load average before and after.

    python bench/pipeline_bench.py [--rounds 5] [--threads 1] [--before DIR]

`--before DIR` also times `nbops run` with the nbops package of another checkout (DIR holds its
`nbops/` folder, e.g. `git worktree add /tmp/before COMMIT`), imported through PYTHONPATH by the
CLI and the kernel alike: a before/after comparison of a change, in the same interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads for every way; 0: the caller's")
    parser.add_argument("--before", type=Path, metavar="DIR", help="also time `nbops run` with DIR/nbops (another checkout)")
    args = parser.parse_args()

    from nbops.testing import command_env, copy_project, init_repo

    work = Path(tempfile.mkdtemp(prefix="nbops-pipeline-bench-"))
    load_before = os.getloadavg()
    try:
        env = command_env(work)
        if args.threads:
            env.update({name: str(args.threads) for name in THREAD_VARIABLES})
        pipeline = init_repo(copy_project(REPO, work / "pipeline"), env)
        scripts = copy_project(REPO, work / "scripts")
        plan = stage_plan(scripts, env)
        ways = {
            "scripts": [(name, command, stage_env) for name, command, stage_env in plan["scripts"]],
            "nbops run": [(name, command, {}) for name, command in plan["nbops run"]],
            "dvc repro -f": [("all", [str(BIN / "dvc"), "repro", "-f"], {})],
        }
        folders = {"scripts": scripts, "nbops run": pipeline, "dvc repro -f": pipeline}
        if args.before:
            before = {"PYTHONPATH": str(args.before.resolve())}
            ways["nbops run (before)"] = [(name, command, before) for name, command in plan["nbops run"]]
            folders["nbops run (before)"] = pipeline
        times: dict[str, dict[str, list[float]]] = {way: {} for way in ways}
        cpu: dict[str, dict[str, list[float]]] = {way: {} for way in ways}
        order = list(ways)
        for round_ in range(args.rounds + 1):  # round 0 warms the file cache and writes dvc.lock
            for way in order[round_ % len(order):] + order[: round_ % len(order)]:
                for name, command, extra in ways[way]:
                    seconds, cpu_seconds = run(command, folders[way], {**env, **extra})
                    if round_:
                        times[way].setdefault(name, []).append(seconds)
                        cpu[way].setdefault(name, []).append(cpu_seconds)
        report(times, cpu, plan["described"], load_before, os.getloadavg(), args.rounds, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stage_plan(root: Path, env: dict[str, str]) -> dict:
    """The stages of dvc.yaml in order, as plain scripts and as `nbops run` commands."""
    from nbops.pipeline import execute, record
    from nbops.core import dvc, params
    from nbops.pipeline.stages import parse_run_cmd
    from papermill.translators import translate_parameters

    scripts, runs, described = [], [], []
    (root / ".bench").mkdir()
    for name, stage in dvc.load_stages(root).items():
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
        runs.append((name, [str(BIN / "nbops"), *shlex.split(stage.cmd)[1:]]))  # what DVC runs
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        described.append(f"{name}: `python .bench/{name}.py` = the code cells of {notebook} + ({shown})")
    return {"scripts": scripts, "nbops run": runs, "described": described}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of `command`; CPU counts every descendant that was waited for
    (the kernel, DVC's stage commands)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def report(
    times: dict[str, dict[str, list[float]]], cpu: dict[str, dict[str, list[float]]], described: list[str],
    load_before: tuple[float, ...], load_after: tuple[float, ...], rounds: int, env: dict[str, str],
) -> None:
    def totals(measured: dict[str, dict[str, list[float]]]) -> dict[str, list[float]]:
        return {way: [sum(step[i] for step in steps.values()) for i in range(rounds)] for way, steps in measured.items()}

    wall, cpu_total = totals(times), totals(cpu)
    medians = {way: statistics.median(values) for way, values in wall.items()}
    cpu_medians = {way: statistics.median(values) for way, values in cpu_total.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print("load average (1/5/15 min): before " + "/".join(f"{x:.1f}" for x in load_before)
          + ", after " + "/".join(f"{x:.1f}" for x in load_after))
    print("thread settings (same for every way): "
          + ", ".join(f"{name}={env.get(name, 'unset')}" for name in THREAD_VARIABLES))
    print("baseline scripts:")
    for line in described:
        print(f"  {line}")
    print(f"{rounds} interleaved rounds after a warm-up round; median (min–max) of the whole pipeline:")
    print(f"  {'':<18} {'wall s':>21}   {'CPU s':>21}")
    for way in wall:
        print(f"  {way:<18} {medians[way]:6.2f} ({min(wall[way]):6.2f}–{max(wall[way]):6.2f})"
              f"   {cpu_medians[way]:6.2f} ({min(cpu_total[way]):6.2f}–{max(cpu_total[way]):6.2f})")
    stages = list(times["scripts"])
    print("each stage, median wall s / CPU s:  " + "  ".join(f"{name:>13}" for name in stages))
    for way in (way for way in times if way != "dvc repro -f"):
        print(f"  {way:<33} " + "  ".join(
            f"{statistics.median(times[way][name]):6.2f}/{statistics.median(cpu[way][name]):6.2f}" for name in stages))
    print(f"  {'nbops run - scripts':<33} " + "  ".join(
        f"{statistics.median(times['nbops run'][name]) - statistics.median(times['scripts'][name]):+6.2f}/"
        f"{statistics.median(cpu['nbops run'][name]) - statistics.median(cpu['scripts'][name]):+6.2f}" for name in stages))
    for label, measured, mid in (("wall", wall, medians), ("CPU", cpu_total, cpu_medians)):
        ratio = [r / s for r, s in zip(measured["dvc repro -f"], measured["scripts"])]
        met = "met" if mid["dvc repro -f"] / mid["scripts"] <= GOAL else "NOT met"
        print(f"{label + ':':<5} dvc repro -f / scripts = {mid['dvc repro -f'] / mid['scripts']:.2f} "
              f"(per round {min(ratio):.2f}–{max(ratio):.2f}; goal <= {GOAL}: {met})   "
              f"nbops run / scripts = {mid['nbops run'] / mid['scripts']:.2f}   "
              f"overhead: nbops run {mid['nbops run'] - mid['scripts']:+.2f} s, "
              f"dvc repro -f {mid['dvc repro -f'] - mid['scripts']:+.2f} s "
              f"(of which DVC {mid['dvc repro -f'] - mid['nbops run']:+.2f} s)")
        if "nbops run (before)" in measured:
            print(f"{'':5} nbops run: before {mid['nbops run (before)']:.2f} s, after {mid['nbops run']:.2f} s "
                  f"({mid['nbops run'] - mid['nbops run (before)']:+.2f} s; before / scripts = "
                  f"{mid['nbops run (before)'] / mid['scripts']:.2f})")


if __name__ == "__main__":
    main()
