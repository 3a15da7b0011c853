"""The example's quick start — `dvc repro` in a fresh clone — for this checkout and for a git
revision (default: main), in interleaved rounds; prints median wall times side by side and the ratio.

    python bench/quickstart_bench.py [--rev main] [--rounds 3]

Each round copies each side's example files (what git holds of notebooks/, plantsim/, params.yaml,
dvc.yaml, jupytext.toml and dvc.lock) into a new git + DVC repository with an empty DVC cache, and
times `dvc repro` alone (git and DVC setup excluded), with this checkout's nbops for both.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nbops.testing import command_env, init_repo, run  # noqa: E402

FILES = ["notebooks", "plantsim", "params.yaml", "dvc.yaml", "jupytext.toml", "dvc.lock"]


def export(rev: str | None, dest: Path) -> Path:
    """The example files git holds at `rev` (None: the working tree's tracked files)."""
    dest.mkdir(parents=True)
    if rev is None:
        tracked = subprocess.run(["git", "ls-files", "--", *FILES], cwd=REPO, capture_output=True, text=True, check=True)
        for name in tracked.stdout.splitlines():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
        return dest
    present = subprocess.run(["git", "ls-tree", "--name-only", rev, "--", *FILES], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    archive = subprocess.run(["git", "archive", rev, "--", *present], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def one_run(template: Path, home: Path) -> float:
    env = command_env(home)
    project = home / "project"
    shutil.copytree(template, project)
    init_repo(project, env)
    start = time.perf_counter()
    run(["dvc", "repro"], project, env, timeout=1800)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="main", help="the revision to compare with (default: main)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quickstart-bench-") as tmp:
        sides = {f"{args.rev}": export(args.rev, Path(tmp) / "rev"), "this checkout": export(None, Path(tmp) / "here")}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                home = Path(tmp) / f"{name.replace(' ', '-')}-{round_}"
                home.mkdir()
                times[name].append(one_run(sides[name], home))
                shutil.rmtree(home, ignore_errors=True)
                print(f"round {round_ + 1}: {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    print("| example | median `dvc repro` | range |\n|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} s | {min(values):.1f}–{max(values):.1f} |")
    base, here = (statistics.median(v) for v in times.values())
    print(f"\nthis checkout / {args.rev} = {here / base:.2f}")


if __name__ == "__main__":
    main()
