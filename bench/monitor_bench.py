"""How fast `nbops monitor` is, against Evidently's data-drift preset on the same data and tests.

    python bench/monitor_bench.py [--rows 1000000] [--rounds 3] [--workdir /tmp/nbops-monitor-bench] [--with-v1]

One synthetic model (10 input columns: 7 numeric, 3 categorical; a logistic regression) is
packaged with a 20,000-row reference profile into a real registry; the current data is
1,000,000 rows (a drifted copy of the generator), scored by the loaded package and captured by
the runtime's own writer (nbops.runtime.Capture, format 2 of INTERFACES.md §2b: one columnar
line per written batch) — one row per request (online traffic, the worst case), the writer
taking 1,000 requests per flush (a server answering 1,000 requests/s, flushing every second),
and 100 rows per request (batch scoring) — and also as a CSV for Evidently. With --with-v1, the
one-row-per-request capture is also written in format 1 (one JSON line per request, what the
runtime wrote before) and read once per round. Rounds interleave the cases; medians (min–max)
are printed side by side with the ratios.

Cases
* `nbops monitor --capture` (CLI, a fresh process: imports, JSON parsing, two worker processes)
* `nbops monitor --data current.csv` (CLI; scores the rows with the packaged model too)
* nbops in-process on the in-memory frame (the statistics alone: the same input Evidently gets)
* Evidently 0.7 `Report([DataDriftPreset()]).run(current, reference)` on the in-memory frames
  (timed inside its process), and that whole process as its users run it (start, imports,
  reading the two CSVs, the report: what our CLI rows include),
  the raw 20,000-row reference (its test choice by reference size is then the same as ours:
  Wasserstein for numeric columns, Jensen–Shannon for categorical ones), run in its own virtual
  environment bench/.venv-evidently (create it: python3 -m venv bench/.venv-evidently &&
  bench/.venv-evidently/bin/pip install evidently==0.7.23 "pandas<3" — 0.7.23 does not import
  with pandas 3); skipped when absent.

Peak memory (max RSS of the monitor process and of its largest worker) is measured for
250,000 and 1,000,000 rows × 10 columns, and 250,000 rows × 40 columns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = HERE / ".venv-evidently" / "bin" / "python"
MODEL = "bench-model"
REFERENCE_ROWS = 20_000


def frame(rng, n: int, columns: int = 10, shift: float = 0.0):
    import numpy as np
    import pandas as pd

    data = {}
    numeric = columns - 3 * (columns // 10 or 1)
    for i in range(numeric):
        if i % 3 == 2:
            data[f"count_{i}"] = rng.poisson(5 + 3 * shift + i % 4, n)
        else:
            data[f"sensor_{i} [unit]"] = (rng.normal(100 + i + shift * 4, 10 + i % 5, n)).round(3)
    for j in range(columns - numeric):
        p = [0.5, 0.3, 0.2] if not shift else [0.35, 0.35, 0.3]
        data[f"kind_{j}"] = rng.choice(["alpha", "beta", "gamma"], n, p=p)
    return pd.DataFrame(data)


def setup(workdir: Path, rows: int, columns: int = 10, with_v1: bool = False) -> dict:
    """The package, the captures and the CSV (kept in workdir between runs)."""
    import numpy as np

    tag = f"{rows}x{columns}"
    root = workdir / f"project-{columns}"
    paths = {"root": root, "capture1": workdir / f"capture-v2-{tag}-1", "capture100": workdir / f"capture-v2-{tag}-100",
             "capture1_v1": workdir / f"capture-v1-{tag}-1",
             "csv": workdir / f"current-{tag}.csv", "reference_csv": workdir / f"reference-{columns}.csv"}
    done, done_v1 = workdir / f".ready-v2-{tag}", workdir / f".ready-v1-{tag}"
    if done.exists() and (done_v1.exists() or not with_v1):
        return paths
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from nbops.runtime import PackagedModel
    from nbops.testing import register_model

    rng = np.random.default_rng(0)
    reference = frame(rng, REFERENCE_ROWS, columns)
    cats = [c for c in reference.columns if c.startswith("kind_")]
    y = (reference.iloc[:, 0] + rng.normal(0, 10, REFERENCE_ROWS) > 100).astype(int)
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), cats), remainder="passthrough"),
                          LogisticRegression(max_iter=300)).fit(reference, y)
    if not (root / "registry").exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "params.yaml").write_text("", encoding="utf-8")
        register_model(root, MODEL, model, reference)
    reference.to_csv(paths["reference_csv"], index=False)
    current = frame(np.random.default_rng(1), rows, columns, shift=0.3)
    current.to_csv(paths["csv"], index=False)
    package = PackagedModel.load(root / "registry" / MODEL / "0.1.0", n_jobs=1)
    inputs = package.arrays({"columns": current.to_dict("list")})  # as the server validates a JSON body
    predictions, probabilities = package.predict_frame(inputs)
    if not done.exists():
        for per in (1, 100):
            started = time.perf_counter()
            write_capture(paths[f"capture{per}"], package, inputs, predictions, probabilities, per)
            print(f"  wrote {rows:,} rows, {per} per request, with the runtime's writer in {time.perf_counter() - started:.1f} s", flush=True)
        done.write_text("ok\n")
    if with_v1 and not done_v1.exists():
        write_v1_capture(paths["capture1_v1"], current, predictions, probabilities, 1)
        done_v1.write_text("ok\n")
    return paths


def write_capture(folder: Path, package, inputs: dict, predictions, probabilities, per: int, per_flush: int = 1000) -> None:
    """The capture the runtime writes (nbops.runtime.Capture: format 2) of requests of `per` rows,
    each given as the server gives it (views of the validated columns and of the answers), the
    writer taking `per_flush` requests at a time (as a server answering that many a second)."""
    import datetime as dt

    from nbops.runtime import Capture

    start = dt.datetime(2026, 11, 27, 10, tzinfo=dt.timezone.utc).timestamp()
    capture = Capture.open(folder, buffer_records=2 * per_flush, buffer_rows=2 * per_flush * per, flush_seconds=3600,
                           log=lambda line: None)
    names = list(inputs)
    for number, first in enumerate(range(0, len(predictions), per)):
        last = first + per
        accepted = capture.record(f"{number:032x}", package, "champion", {c: inputs[c][first:last] for c in names},
                                  predictions[first:last], probabilities[first:last], 1.234, arrived=start + number / 1000)
        assert accepted
        if (number + 1) % per_flush == 0:
            capture.flush()
    capture.close(quiet=True)
    assert capture.dropped == 0, capture.summary()


def write_v1_capture(folder: Path, current, predictions, probabilities, per: int) -> None:
    """Capture format 1 (one JSON line per request, what the runtime wrote before format 2), as it
    wrote it (orjson, compact), in parts of ~64 MB."""
    import orjson

    columns = {c: current[c].tolist() for c in current.columns}
    preds, probs = predictions.tolist(), probabilities.tolist()
    day = folder / MODEL / "2026-11-27"
    day.mkdir(parents=True, exist_ok=True)
    part, size, handle = 0, 0, None
    for number, first in enumerate(range(0, len(current), per)):
        last = first + per
        line = orjson.dumps({
            "v": 1, "ts": f"2026-11-27T{10 + number // 3_600_000:02d}:{number // 60_000 % 60:02d}:{number // 1000 % 60:02d}.{number % 1000:03d}000Z",
            "request_id": f"{number:032x}", "model": MODEL, "version": "0.1.0", "role": "champion", "latency_ms": 1.234,
            "rows": len(preds[first:last]), "inputs": {c: v[first:last] for c, v in columns.items()},
            "predictions": preds[first:last], "classes": [0, 1], "probabilities": probs[first:last],
        }) + b"\n"
        if handle is None or size > 64 << 20:
            if handle:
                handle.close()
            handle = open(day / f"part-100000-{os.getpid()}-{part}.jsonl", "wb")
            part, size = part + 1, 0
        handle.write(line)
        size += len(line)
    handle.close()


def run_cli(paths: dict, *args: str) -> tuple[float, dict]:
    """Wall time of a fresh `nbops monitor` process, and its peak memory (self, largest child)."""
    code = (
        "import resource, sys, json\n"
        "from nbops.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime\n"
        # not ru_maxrss for this process: Linux carries the peak over exec, from the bench's own process
        "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(json.dumps({'exit': code, 'self_mb': peak / 1024, 'child_mb': kids.ru_maxrss / 1024, 'cpu': cpu}), file=sys.stderr)\n"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, "monitor", MODEL, *args, "--registry", str(paths["root"] / "registry"), "--json"],
                            cwd=paths["root"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 3, 4):
        raise SystemExit(f"nbops monitor failed:\n{result.stderr}")
    memory = json.loads(result.stderr.strip().splitlines()[-1])
    memory["result"] = json.loads(result.stdout)
    return elapsed, memory


def in_process_frame(paths: dict) -> tuple[float, float]:
    """nbops' statistics on the in-memory frame (what Evidently is given), no file reading."""
    code = f"""
import json, time, pandas as pd, numpy as np
from pathlib import Path
from nbops.monitoring import load_package_profile
from nbops.monitoring.accumulate import Accumulators
from nbops.monitoring.analyse import analyse
from nbops.monitoring.config import MonitorConfig
from nbops.monitoring.sources import Scan
folder = Path({str(paths['root'] / 'registry' / MODEL / '0.1.0')!r})
manifest = json.loads((folder / 'manifest.json').read_text())
profile = load_package_profile(folder, manifest, 'bench')
current = pd.read_csv({str(paths['csv'])!r})
start, start_cpu = time.perf_counter(), time.process_time()
scan = Scan(Accumulators(profile))
acc = scan.accumulators
acc.rows = len(current)
for name, column in acc.columns.items():
    series = current[name]
    column.add(series.to_numpy(dtype=float) if column.kind == 'numeric' else series.tolist())
result = analyse(name='{MODEL}', version='0.1.0', source='frame', window={{}}, profile=profile, manifest=manifest, scan=scan,
                 config=MonitorConfig(), positive=1, joined_by=None)
print(time.perf_counter() - start, time.process_time() - start_cpu)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


EVIDENTLY_CODE = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference = pd.read_csv(sys.argv[1])
current = pd.read_csv(sys.argv[2])
start, start_cpu = time.perf_counter(), time.process_time()
snapshot = Report([DataDriftPreset()]).run(current, reference)
elapsed, used = time.perf_counter() - start, time.process_time() - start_cpu
found = {}
for metric in snapshot.dict()["metrics"]:
    name = metric.get("metric_name") or ""
    if name.startswith("ValueDrift"):
        found[name.split("(", 1)[1].split(",")[0].replace("column=", "")] = float(metric.get("value"))
print(json.dumps({"seconds": elapsed, "cpu": used, "drifts": found}))
"""


def run_evidently(paths: dict) -> tuple[float, float, dict, float, float] | None:
    """Evidently's `Report.run` alone (wall, CPU), its per-column scores, and the whole process as
    its users run it — start, imports, reading the two CSVs, the report — (wall, CPU)."""
    if not EVIDENTLY_PYTHON.exists():
        return None
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(EVIDENTLY_PYTHON), "-c", EVIDENTLY_CODE, str(paths["reference_csv"]), str(paths["csv"])],
                            capture_output=True, text=True)
    process_wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        print(f"Evidently failed: {result.stderr[-2000:]}", file=sys.stderr)
        return None
    out = json.loads(result.stdout.strip().splitlines()[-1])
    return out["seconds"], out["cpu"], out["drifts"], process_wall, process_cpu


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/nbops-monitor-bench")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--with-v1", action="store_true", help="also read the one-row-per-request capture in format 1")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}", flush=True)
    paths = setup(workdir, args.rows, with_v1=args.with_v1)
    cases = ("capture1", "capture100", "data", "frame", "evidently", "evidently_process") + (("capture1_v1",) if args.with_v1 else ())
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    memory: dict[str, dict] = {}
    evidently_drifts = None
    for _ in range(args.rounds):
        for case in times:
            if case.startswith("capture"):
                seconds, memory[case] = run_cli(paths, "--capture", str(paths[case]))
                cpu[case].append(memory[case]["cpu"])
            elif case == "data":
                seconds, memory[case] = run_cli(paths, "--data", str(paths["csv"]))
                cpu[case].append(memory[case]["cpu"])
            elif case == "frame":
                seconds, used = in_process_frame(paths)
                cpu[case].append(used)
            elif case == "evidently_process":
                continue  # measured with "evidently", from the same process
            else:
                measured = run_evidently(paths)
                if measured is None:
                    continue
                seconds, used, evidently_drifts, process_wall, process_cpu = measured
                cpu[case].append(used)
                times["evidently_process"].append(process_wall)
                cpu["evidently_process"].append(process_cpu)
                print(f"  evidently_process: {process_wall:.2f} s wall, {process_cpu:.2f} s CPU", flush=True)
            times[case].append(seconds)
            print(f"  {case}: {seconds:.2f} s wall, {cpu[case][-1]:.2f} s CPU", flush=True)
    ours = memory["capture1"]["result"]
    print(f"\n{args.rows:,} rows × 10 columns, reference {REFERENCE_ROWS:,} rows; rounds: {args.rounds}")
    print("| case | wall, median (min–max) | CPU, median | vs Evidently's Report.run (wall) | vs Evidently's Report.run (CPU) "
          "| vs Evidently's process (wall) | vs Evidently's process (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    evidently = statistics.median(times["evidently"]) if times["evidently"] else None
    evidently_cpu = statistics.median(cpu["evidently"]) if cpu["evidently"] else None
    whole = statistics.median(times["evidently_process"]) if times["evidently_process"] else None
    whole_cpu = statistics.median(cpu["evidently_process"]) if cpu["evidently_process"] else None
    sizes = {case: sum(p.stat().st_size for p in Path(paths[case]).rglob("*.jsonl")) / 1e6 for case in times if case.startswith("capture")}
    labels = {
        "capture1": f"`nbops monitor --capture`, 1 row per request, format 2 ({sizes['capture1']:.0f} MB)",
        "capture100": f"`nbops monitor --capture`, 100 rows per request, format 2 ({sizes['capture100']:.0f} MB)",
        "capture1_v1": f"`nbops monitor --capture`, 1 row per request, format 1 ({sizes.get('capture1_v1', 0):.0f} MB)",
        "data": "`nbops monitor --data current.csv` (reads and scores the CSV)",
        "frame": "nbops statistics on the in-memory frame",
        "evidently": "Evidently 0.7.23 DataDriftPreset: `Report.run` on the in-memory frames",
        "evidently_process": "Evidently 0.7.23 DataDriftPreset: the whole process (start, imports, read the two CSVs, run)",
    }
    for case, values in times.items():
        if not values:
            print(f"| {labels[case]} | skipped (no bench/.venv-evidently) | | | | | |")
            continue
        ours_wall, ours_cpu = statistics.median(values), statistics.median(cpu[case])
        ratios = ["" if case.startswith("evidently") or not theirs else f"{theirs / mine:.1f}×"
                  for theirs, mine in ((evidently, ours_wall), (evidently_cpu, ours_cpu), (whole, ours_wall), (whole_cpu, ours_cpu))]
        print(f"| {labels[case]} | {median_range(values)} | {ours_cpu:.2f} s | {' | '.join(ratios)} |")
    print(f"\nnbops per column: " + ", ".join(f"{k}: {v['test'].split()[0]} {v['score']:.3g}{' drift' if v['drifted'] else ''}" for k, v in ours["columns"].items()))
    if evidently_drifts:
        print("Evidently per column: " + ", ".join(f"{k}: {v:.3g}" if isinstance(v, (int, float)) else f"{k}: {v}" for k, v in evidently_drifts.items()))
    for case in ("capture1", "capture100", "data"):
        print(f"peak memory {case}: monitor process {memory[case]['self_mb']:.0f} MB, largest worker {memory[case]['child_mb']:.0f} MB")
    if not args.skip_memory:
        print("\n| data | capture size | peak RSS (process / largest worker) | wall | CPU |")
        print("|---|---:|---:|---:|---:|")
        for rows, columns in ((250_000, 10), (args.rows, 10), (250_000, 40)):
            more = setup(workdir, rows, columns)
            seconds, used = run_cli(more, "--capture", str(more["capture1"]))
            size = sum(p.stat().st_size for p in Path(more["capture1"]).rglob("*.jsonl"))  # format 2, 1 row per request
            print(f"| {rows:,} rows × {columns} columns | {size / 1e6:.0f} MB | {used['self_mb']:.0f} MB / {used['child_mb']:.0f} MB | {seconds:.2f} s | {used['cpu']:.2f} s |", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
