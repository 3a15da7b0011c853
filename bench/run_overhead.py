"""How much does running a notebook as a stage cost over running its code as a script?

Runs the same small training job four ways, interleaved, several rounds each, in this
environment: as a plain Python script, through the papermill CLI, through `nbops run`, and an
bare kernel start + shutdown through jupyter_client (the floor). Prints median wall times
and the ratios nbops/papermill and nbops/script.

    python bench/run_overhead.py [--rounds 7]
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

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "train_small.ipynb"
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nbops-bench-"))
    try:
        commands = prepare(work)
        for command in commands.values():  # warm the OS file cache once; not timed
            run(command, work)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                times[name].append(run(command, work))
        report(times, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prepare(work: Path) -> dict[str, list[str]]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    (work / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, work / "notebooks" / "train_small.ipynb")
    (work / "params.yaml").write_text("train_small:\n  n_rows: 2000\n", encoding="utf-8")
    code = [("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]
    (work / "train_small.py").write_text("\n\n".join(code) + "\n", encoding="utf-8")
    # The floor: start a kernel, wait until it answers, shut it down gracefully (jupyter_client only).
    floor = (
        "from jupyter_client.manager import start_new_kernel; "
        "km, kc = start_new_kernel(kernel_name='python3'); kc.stop_channels(); km.shutdown_kernel()"
    )
    return {
        "script": [sys.executable, "train_small.py"],
        "papermill": [str(BIN / "papermill"), "--no-progress-bar", "--log-level", "WARNING",
                      "notebooks/train_small.ipynb", "out-papermill.ipynb", "-p", "n_rows", "2000"],
        "nbops run": [str(BIN / "nbops"), "run", "-q", "notebooks/train_small.ipynb", "-o", "out-nbops.ipynb"],
        "kernel floor": [sys.executable, "-c", floor],
    }


def run(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def report(times: dict[str, list[float]], rounds: int) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"{rounds} interleaved rounds, median wall time of each way (min–max):")
    for name, values in times.items():
        print(f"  {name:<13} {medians[name]:6.2f} s   ({min(values):.2f}–{max(values):.2f})")
    nbops, papermill, script = medians["nbops run"], medians["papermill"], medians["script"]
    print(f"nbops/papermill = {nbops / papermill:.2f}   nbops/script = {nbops / script:.2f}")
    print(f"overhead over the script: nbops {nbops - script:+.2f} s, papermill {papermill - script:+.2f} s, "
          f"kernel floor {medians['kernel floor']:.2f} s")


if __name__ == "__main__":
    main()
