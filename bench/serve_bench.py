"""Serving: what a request to a model package costs, side by side in one run.

For each model (a small LogisticRegression pipeline on AI4I-like columns, and the example
pipeline's gradient-boosted trees when models/failure-predictor.skops exists) it measures

  (a) in-process: sklearn's predict on a 1-row DataFrame, and the pieces of a request path
      (JSON → DataFrame, naive and ours; our whole JSON → columns → predict → JSON path; the
      capture's cost on the request path: the sampling decision and the buffer append);
  (b) a minimal FastAPI + uvicorn app loading the same skops file (dict body → DataFrame →
      predict + predict_proba; no pydantic model, no validation);
  (c) our server: `python -m <package> serve`, the runtime copied into a package folder as
      `nbops promote` lays it out (nbops/runtime/ as <package>/_runtime/), once with capture off
      and once capturing every request (`--capture DIR --sample 1`);
  (d) `mlflow models serve --env-manager local` on the same model, when an mlflow executable is
      found (--mlflow PATH, beside this Python, or on PATH); skipped otherwise.

Like for like: the runtime predicts with one joblib thread (n_jobs=1) and one OpenMP/BLAS thread
(threadpoolctl); the minimal app and the in-process rows get the same settings. MLflow runs as
its users run it (its defaults).

Each server is started alone, several times, and timed from launch to its first 200 on the
predict route. Then all are started and loaded with single-row and 100-row requests,
sequentially (one keep-alive connection) and from 8 concurrent connections, by a small asyncio
HTTP/1.1 client sending the same JSON body to all ({"dataframe_records": [...]}, which all
accept), in rounds that interleave the servers, so that other load on the machine falls on all
of them alike; figures are medians over the rounds. Resident memory is the server's process
tree's RSS after the load. Prints markdown tables; --write puts them in bench/README.md
("Serving" section; other sections are kept).

    python bench/serve_bench.py [--mlflow /path/to/mlflow] [--seconds 3] [--rounds 3] [--launches 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from nbops import runtime  # noqa: E402
from nbops.pipeline import record  # noqa: E402
from nbops.promotion import package as packaging  # noqa: E402
from nbops.runtime import jsonio  # noqa: E402

EXAMPLE = REPO / "models" / "failure-predictor.skops"
README = HERE / "README.md"
SECTION = "## Serving"
CONCURRENCY = 8
#: Calls of the in-process capture case per round (each record is written out afterwards).
CAPTURE_CALLS = 2000
OURS = "nbops runtime"
CAPTURING = "nbops runtime, capture 100%"

MINIMAL_APP = '''
import sys
import pandas as pd
import skops.io as sio
import uvicorn
from fastapi import FastAPI, Request
from threadpoolctl import threadpool_limits

data = open(sys.argv[1], "rb").read()
model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
# the runtime's thread settings: one joblib thread, one OpenMP/BLAS thread
model.set_params(**{k: 1 for k in model.get_params(deep=True) if k.endswith("n_jobs")})
threadpool_limits(limits=1)
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    frame = pd.DataFrame(body["dataframe_records"])
    return {"predictions": model.predict(frame).tolist(), "probabilities": model.predict_proba(frame).tolist()}

@app.get("/health")
async def health():
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
'''

MLFLOW_EXPORT = '''
import sys, json
import pandas as pd
import skops.io as sio
import mlflow.sklearn
from mlflow.models import infer_signature

data = open(sys.argv[1], "rb").read()
model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
sample = json.load(open(sys.argv[2]))["sample_input"]
frame = pd.DataFrame(sample["data"], columns=sample["columns"])
mlflow.sklearn.save_model(model, sys.argv[3], serialization_format="cloudpickle",
                          signature=infer_signature(frame, model.predict(frame)))
'''


# --- models and packages ---------------------------------------------------------------------


def small_model(work: Path) -> tuple[Path, Path]:
    """A LogisticRegression pipeline on AI4I-like sensor columns, saved with nbops.save_model."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    n = 5000
    X = pd.DataFrame({
        "Air temperature [K]": rng.normal(300, 2, n).round(1),
        "Process temperature [K]": rng.normal(310, 1.5, n).round(1),
        "Rotational speed [rpm]": rng.integers(1200, 2900, n),
        "Torque [Nm]": rng.normal(40, 10, n).round(1),
        "Tool wear [min]": rng.integers(0, 250, n),
    })
    y = ((X["Torque [Nm]"] * X["Rotational speed [rpm]"] > 95_000) | (X["Tool wear [min]"] > 230)).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    project = work / "small-project"
    os.environ[record.ENV_ROOT], os.environ[record.ENV_STAGE] = str(project), "train"
    try:
        record.save_model(model, "small-logreg", sample_input=X.head(20))
    finally:
        del os.environ[record.ENV_ROOT], os.environ[record.ENV_STAGE]
    return project / "models" / "small-logreg.skops", project / "models" / "small-logreg.json"


def make_package(skops: Path, manifest_path: Path, site: Path, name: str) -> Path:
    """A package as promotion lays it out: <name>/{_runtime/, __main__.py, model.skops, manifest.json}."""
    pkg = site / name
    pkg.mkdir(parents=True)
    shutil.copy(skops, pkg / "model.skops")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.update(model_file="model.skops", version="0.1.0")
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    packaging.copy_runtime(pkg / "_runtime")
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "__main__.py").write_text(
        "import sys\nfrom pathlib import Path\nfrom ._runtime import main\n\n"
        "sys.exit(main(package_dir=Path(__file__).parent))\n", encoding="utf-8")
    return pkg


def body_for(manifest: dict[str, Any], rows: int) -> bytes:
    sample = manifest["sample_input"]
    records = [dict(zip(sample["columns"], row)) for row in sample["data"]]
    return json.dumps({"dataframe_records": [records[i % len(records)] for i in range(rows)]}).encode()


# --- in-process ------------------------------------------------------------------------------


def time_calls(fn: Callable[[], Any], seconds: float, max_calls: int = 20000) -> list[float]:
    for _ in range(20):
        fn()
    latencies = []
    end = time.perf_counter() + seconds
    while len(latencies) < max_calls and time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - start)
    return latencies


def in_process(package: Path, manifest: dict[str, Any], seconds: float, rounds: int, work: Path) -> list[dict[str, Any]]:
    import pandas as pd
    import skops.io as sio
    from threadpoolctl import threadpool_limits

    loads, dumps, numpy_native = jsonio.codec()
    data = (package / "model.skops").read_bytes()
    raw = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    raw.set_params(**{k: 1 for k in raw.get_params(deep=True) if k.endswith("n_jobs")})  # as the runtime serves
    ours = runtime.PackagedModel.load(package, n_jobs=1)
    threadpool_limits(limits=1)  # the runtime's one OpenMP/BLAS thread, now that the libraries are loaded
    ours.warmup()
    rows = []
    for n in (1, 100):
        body = body_for(manifest, n)
        frame = pd.DataFrame(json.loads(body)["dataframe_records"])
        columns = ours.arrays(loads(body))
        answer = ours.predict_frame(columns)

        def request_path() -> bytes:
            validated = ours.arrays(loads(body), max_rows=10_000)
            predictions, probabilities = ours.predict_frame(validated)
            return dumps({"predictions": jsonio.array_json(predictions, numpy_native),  # noqa: B023
                          "probabilities": jsonio.array_json(probabilities, numpy_native)})

        def capture_cost(seconds: float) -> list[float]:
            """The request path's part: a fresh capture whose writer waits (it writes at close,
            outside the timing), with room for every call (none dropped)."""
            capture = runtime.Capture.open(work / f"in-process-{package.name}", buffer_records=CAPTURE_CALLS + 100,
                                           buffer_rows=10**9, flush_seconds=3600, log=lambda line: None)
            try:
                def captured() -> None:
                    if capture.wants():
                        capture.record("0123456789abcdef0123456789abcdef", ours, "champion", columns, *answer, 1.0)  # noqa: B023

                return time_calls(captured, seconds, max_calls=CAPTURE_CALLS)
            finally:
                capture.close(quiet=True)

        def writer_cost(seconds: float) -> list[float]:
            """The writer's part, off the request path: the time its thread takes to write 2,000
            buffered requests (grouped into lines, encoded, appended to a part), per request."""
            capture = runtime.Capture.open(work / f"in-process-writer-{package.name}", buffer_records=2_100,
                                           buffer_rows=10**9, flush_seconds=3600, log=lambda line: None)
            for i in range(2_000):
                capture.record(f"{i:032x}", ours, "champion", columns, *answer, 1.0)  # noqa: B023
            started = time.perf_counter()
            capture.close(quiet=True)
            return [(time.perf_counter() - started) / 2_000] * 2_000

        cases = {
            "sklearn predict on a DataFrame": lambda: raw.predict(frame),
            "sklearn predict + predict_proba": lambda: (raw.predict(frame), raw.predict_proba(frame)),
            "JSON → DataFrame, naive (json + pd.DataFrame(records))": lambda: pd.DataFrame(json.loads(body)["dataframe_records"]),
            "JSON → validated DataFrame (runtime.frame)": lambda: ours.frame(loads(body), max_rows=10_000),
            "JSON → validated columns (runtime.arrays)": lambda: ours.arrays(loads(body), max_rows=10_000),
            "runtime request path (JSON → columns → predict → JSON)": request_path,
        }
        timed: dict[str, Callable[[float], list[float]]] = {label: (lambda s, fn=fn: time_calls(fn, s)) for label, fn in cases.items()}
        timed["capture on the request path (sampling decision + buffer append)"] = capture_cost
        timed["capture writer, per request (its thread, off the request path)"] = writer_cost
        samples: dict[str, list[dict[str, float]]] = {label: [] for label in timed}
        for _ in range(rounds):  # cases interleaved, medians over the rounds (as for the servers)
            for label, measure in timed.items():
                latencies = measure(seconds / 4)
                samples[label].append(summarise(latencies, sum(latencies)))
        for label, got in samples.items():
            rows.append({"what": label, "rows": n, **{k: statistics.median(s[k] for s in got) for k in ("p50", "p99", "rps")}})
    return rows


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Launched:
    def __init__(self, name: str, command: list[str], port: int, path: str, body: bytes, env: dict[str, str], log: Path) -> None:
        self.name, self.port, self.path = name, port, path
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        started = time.perf_counter()
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
        self.log = log
        self.first_200 = self._wait_first_200(started)

    def _wait_first_200(self, started: float, timeout: float = 120) -> float:
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                status, _ = asyncio.run(one_request(self.port, self.request))
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: no 200 within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def rss_mb(self) -> float:
        return sum(_rss_kb(pid) for pid in _tree(self.process.pid)) / 1024

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
            self.process.wait()


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo.extend(int(child) for child in task.read_text().split())
    return pids


def _rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else 0


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        length = int(lower[at + 15: lower.index(b"\r\n", at)])
        return status, await reader.readexactly(length)
    chunks = []  # chunked transfer encoding
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, b"".join(chunks)
        chunks.append(chunk[:-2])


async def one_request(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await read_response(reader)
    finally:
        writer.close()


async def load(port: int, request: bytes, clients: int, seconds: float, max_requests: int) -> tuple[list[float], float]:
    """`clients` keep-alive connections sending `request` back to back; latencies and wall time."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    per_client = max_requests // clients

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(per_client):
                if time.perf_counter() > end:
                    break
                start = time.perf_counter()
                writer.write(request)
                status, body = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"status {status}: {body[:300]!r}")
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


def summarise(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered) * 1e3,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "rps": len(ordered) / wall,
        "n": len(ordered),
    }


def request_for(launched: Launched, body: bytes) -> bytes:
    head = launched.request.split(b"\r\n\r\n", 1)[0]
    return re.sub(rb"Content-Length: \d+", f"Content-Length: {len(body)}".encode(), head) + b"\r\n\r\n" + body


def bench_servers(running: list[Launched], bodies: dict[int, bytes], seconds: float, rounds: int) -> list[dict[str, Any]]:
    """Every scenario on every server, `rounds` times, servers interleaved (their order rotated
    each round) so that load from elsewhere on the machine falls on all of them alike; the
    figures are medians over the rounds."""
    samples: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    for launched in running:
        for body in bodies.values():
            asyncio.run(load(launched.port, request_for(launched, body), 1, 1.0, 50))  # warm-up
    for round_ in range(rounds):
        order = running[round_ % len(running):] + running[: round_ % len(running)]
        for rows, body in bodies.items():
            for clients in (1, CONCURRENCY):
                for launched in order:
                    latencies, wall = asyncio.run(load(launched.port, request_for(launched, body), clients, seconds, 20000))
                    samples.setdefault((launched.name, rows, clients), []).append(summarise(latencies, wall))
    results = []
    for launched in running:
        for rows in bodies:
            for clients in (1, CONCURRENCY):
                got = samples[(launched.name, rows, clients)]
                results.append({"server": launched.name, "rows": rows, "clients": clients,
                                **{key: statistics.median(s[key] for s in got) for key in ("p50", "p99", "rps")},
                                "n": sum(s["n"] for s in got)})
    return results


# --- the run -----------------------------------------------------------------------------------


def servers_for(package: Path, work: Path, mlflow: str | None) -> dict[str, Callable[[int], tuple[list[str], str, dict[str, str]]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "PYTHONPATH"))}
    minimal = work / "minimal_app.py"
    minimal.write_text(MINIMAL_APP, encoding="utf-8")
    ours_env = {**env, "PYTHONPATH": str(package.parent)}
    captured = work / f"captured-{package.name}"
    servers = {
        "minimal FastAPI": lambda port: ([sys.executable, str(minimal), str(package / "model.skops"), str(port)], "/predict", env),
        OURS: lambda port: ([sys.executable, "-m", package.name, "serve", "--port", str(port)], "/predict", ours_env),
        CAPTURING: lambda port: ([sys.executable, "-m", package.name, "serve", "--port", str(port),
                                  "--capture", str(captured), "--sample", "1"], "/predict", ours_env),
    }
    if mlflow:
        mlflow_python = str(Path(mlflow).parent / "python")
        exported = work / f"mlflow-{package.name}"
        subprocess.run([mlflow_python, "-c", MLFLOW_EXPORT, str(package / "model.skops"), str(package / "manifest.json"),
                        str(exported)], check=True, env=env, capture_output=True)
        mlflow_env = {**env, "PATH": f"{Path(mlflow).parent}{os.pathsep}{env.get('PATH', '')}"}
        servers["mlflow models serve"] = lambda port: (
            [mlflow, "models", "serve", "-m", str(exported), "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            "/invocations", mlflow_env)
    return servers


def run_model(label: str, package: Path, work: Path, mlflow: str | None, seconds: float, launches: int,
              rounds: int) -> dict[str, Any]:
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    bodies = {1: body_for(manifest, 1), 100: body_for(manifest, 100)}
    print(f"\n[{label}] in-process …", file=sys.stderr, flush=True)
    local = in_process(package, manifest, seconds, rounds, work)
    servers = servers_for(package, work, mlflow)

    def launch(name: str) -> Launched:
        port = free_port()
        command, path, env = servers[name](port)
        return Launched(name, command, port, path, bodies[1], env, work / f"{name.replace(' ', '_')}.log")

    first: dict[str, list[float]] = {name: [] for name in servers}
    for i in range(launches):  # start-up, interleaved: one server at a time, stopped after its first 200
        print(f"[{label}] launches {i + 1}/{launches} …", file=sys.stderr, flush=True)
        for name in servers:
            launched = launch(name)
            launched.stop()
            first[name].append(launched.first_200)
    running: list[Launched] = []
    try:
        for name in servers:
            running.append(launch(name))
        print(f"[{label}] load: {rounds} rounds × 4 scenarios × {len(running)} servers × {seconds:g} s …", file=sys.stderr, flush=True)
        load_rows = bench_servers(running, bodies, seconds, rounds)
        rss = {launched.name: launched.rss_mb() for launched in running}
    finally:
        for launched in running:
            launched.stop()
    started = {name: {"first_200": statistics.median(first[name]), "first_all": first[name], "rss": rss[name]} for name in servers}
    return {"label": label, "estimator": manifest["estimator"], "in_process": local, "load": load_rows, "started": started}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for dist in ("scikit-learn", "pandas", "numpy", "skops", "uvicorn", "fastapi", "orjson", "uvloop", "httptools"):
        try:
            versions.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist} –")
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}; "
            + ", ".join(versions))


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def render(results: list[dict[str, Any]], mlflow_note: str, command: str, loads: tuple[str, str]) -> str:
    out = [SECTION, "", f"`{command}` — {time.strftime('%Y-%m-%d')}, {machine()}; {mlflow_note}. "
           f"Load average (1/5/15 min) before the run {loads[0]}, after {loads[1]}: the machine is shared.", ""]
    out.append("Every server answers the same JSON body (`{\"dataframe_records\": [...]}`) with predictions and "
               "probabilities; one worker each; the load client runs on the same 2 cores. p50/p99 in ms, throughput "
               "in requests/s; medians over rounds that interleave the servers.")
    for result in results:
        out += ["", f"### {result['label']} (`{result['estimator']}`)", ""]
        out += ["| in-process | rows | p50 ms | p99 ms | calls/s |", "|---|---:|---:|---:|---:|"]
        for row in result["in_process"]:
            out.append(f"| {row['what']} | {row['rows']} | {row['p50']:.3f} | {row['p99']:.3f} | {row['rps']:.0f} |")
        out += ["", "| server | rows | clients | p50 ms | p99 ms | req/s |", "|---|---:|---:|---:|---:|---:|"]
        for row in result["load"]:
            out.append(f"| {row['server']} | {row['rows']} | {row['clients']} | {row['p50']:.2f} | {row['p99']:.2f} | {row['rps']:.0f} |")
        out += ["", "| server | launch → first 200 (median) | each launch | RSS after load |", "|---|---:|---|---:|"]
        for name, s in result["started"].items():
            each = ", ".join(f"{t:.2f}" for t in s["first_all"])
            out.append(f"| {name} | {s['first_200']:.2f} s | {each} | {s['rss']:.0f} MB |")
        by = {(r["server"], r["rows"], r["clients"]): r for r in result["load"]}
        out += ["", "| capture cost (capture 100% vs off) | rows | clients | throughput kept | p50 change |",
                "|---|---:|---:|---:|---:|"]
        for rows, clients in scenarios(result):
            on, off = by[(CAPTURING, rows, clients)], by[(OURS, rows, clients)]
            out.append(f"| {CAPTURING} | {rows} | {clients} | {on['rps'] / off['rps']:.1%} | {on['p50'] - off['p50']:+.2f} ms |")
        out += ["", "| ratio (nbops runtime ÷ other) | rows | clients | throughput | p50 latency |", "|---|---:|---:|---:|---:|"]
        for row in result["load"]:
            if row["server"] in (OURS, CAPTURING):
                continue
            for mine in (OURS, CAPTURING):
                ours = by[(mine, row["rows"], row["clients"])]
                label = f"vs {row['server']}" + (" (ours capturing)" if mine == CAPTURING else "")
                out.append(f"| {label} | {row['rows']} | {row['clients']} | "
                           f"{ours['rps'] / row['rps']:.2f}× | {ours['p50'] / row['p50']:.2f}× |")
        out += ["", "Goals: " + goals(result)]
    return "\n".join(out) + "\n"


def scenarios(result: dict[str, Any]) -> list[tuple[int, int]]:
    return sorted({(r["rows"], r["clients"]) for r in result["load"]})


def goals(result: dict[str, Any]) -> str:
    by = {(r["server"], r["rows"], r["clients"]): r for r in result["load"]}
    cases = scenarios(result)
    checks = []
    p50 = by[(CAPTURING, 1, 1)]["p50"]
    checks.append(f"p50 single-row with capture on {p50:.1f} ms {'≤' if p50 <= 5 else '>'} 5 ms ({'met' if p50 <= 5 else 'missed'})")
    kept = [by[(CAPTURING, r, c)]["rps"] / by[(OURS, r, c)]["rps"] for r, c in cases]
    rise = [by[(CAPTURING, r, c)]["p50"] - by[(OURS, r, c)]["p50"] for r, c in cases]
    checks.append(f"capture on keeps {min(kept):.0%}–{max(kept):.0%} of the throughput (≥ 95 %: "
                  f"{'met' if min(kept) >= 0.95 else 'missed, met only'} in {sum(k >= 0.95 for k in kept)}/{len(kept)} scenarios) "
                  f"and moves p50 by {min(rise):+.2f} to {max(rise):+.2f} ms (≤ +0.2 ms: "
                  f"{'met' if max(rise) <= 0.2 else 'missed, met only'} in {sum(r <= 0.2 for r in rise)}/{len(rise)})")
    if ("minimal FastAPI", 1, 1) in by:
        ratios = [by[(OURS, r, c)]["rps"] / by[("minimal FastAPI", r, c)]["rps"] for r, c in cases]
        checks.append(f"throughput {min(ratios):.2f}–{max(ratios):.2f}× the minimal FastAPI app's, both in one thread "
                      f"({'met' if min(ratios) >= 1 else 'missed, met only'} in {sum(x >= 1 for x in ratios)}/{len(ratios)} scenarios)")
    if ("mlflow models serve", 1, 1) in by:
        ratios = [by[(CAPTURING, r, c)]["rps"] / by[("mlflow models serve", r, c)]["rps"] for r, c in cases]
        checks.append(f"capturing, {min(ratios):.1f}–{max(ratios):.1f}× MLflow's throughput "
                      f"(≥ 3×: {'met' if min(ratios) >= 3 else 'missed, met only'} in {sum(x >= 3 for x in ratios)}/{len(ratios)})")
    started = result["started"][OURS]
    checks.append(f"first answer {started['first_200']:.2f} s ({'met' if started['first_200'] <= 2.5 else 'missed'}: ≤ 2.5 s)")
    checks.append(f"{started['rss']:.0f} MB resident ({'met' if started['rss'] < 250 else 'missed'}: < 250 MB)")
    return "; ".join(checks) + "."


def write_readme(section: str) -> None:
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n\nLatest figures of the benchmarks in this folder.\n"
    start = text.find(SECTION + "\n")
    if start >= 0:
        following = text.find("\n## ", start + len(SECTION))
        end = len(text) if following < 0 else following + 1
        notes_at = text.find("<!-- serving notes -->", start)
        notes = text[notes_at:end].rstrip() + "\n" if 0 <= notes_at < end else ""
        text = text[:start] + section + ("\n" + notes if notes else "") + ("\n" if following >= 0 else "") + text[end:]
    else:
        text = text.rstrip() + "\n\n" + section
    README.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", help="an mlflow executable (its environment needs skops and cloudpickle); "
                        "default: the one beside this Python (the dev extra's mlflow-skinny), else mlflow on PATH")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per load scenario and round (default: %(default)s)")
    parser.add_argument("--launches", type=int, default=5, help="launches per server for the start-up time (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the load scenarios (default: %(default)s)")
    parser.add_argument("--no-example", action="store_true", help="skip the example pipeline's model")
    parser.add_argument("--write", action="store_true", help=f"write the tables into {README.relative_to(REPO)}")
    args = parser.parse_args()

    beside = Path(sys.executable).parent / "mlflow"
    mlflow = shutil.which(args.mlflow) if args.mlflow else (str(beside) if beside.exists() else shutil.which("mlflow"))
    if args.mlflow and not mlflow:
        print(f"{args.mlflow}: not an executable", file=sys.stderr)
    if mlflow:
        version = subprocess.run([mlflow, "--version"], capture_output=True, text=True).stdout.strip()
        mlflow_note = f"MLflow: {version or mlflow} (`{mlflow}`)"
    else:
        mlflow_note = "no mlflow executable found: (d) skipped"
        print("no mlflow executable: skipping `mlflow models serve` (install the dev extra, or pass --mlflow PATH)", file=sys.stderr)
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="nbops-serve-bench-"))
    try:
        site = work / "site"
        models = [("small model: LogisticRegression", *small_model(work), "small_logreg")]
        if EXAMPLE.exists() and not args.no_example:
            models.append(("example model: failure-predictor", EXAMPLE, EXAMPLE.with_suffix(".json"), "failure_predictor"))
        results = []
        for label, skops, manifest, name in models:
            package = make_package(skops, manifest, site, name)
            results.append(run_model(label, package, work, mlflow, args.seconds, args.launches, args.rounds))
        command = "python bench/serve_bench.py " + " ".join(a for a in sys.argv[1:])
        section = render(results, mlflow_note, command.strip(), (load_before, load_average()))
        print(section)
        if args.write:
            write_readme(section)
            print(f"written to {README}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
