"""Switching versions under load: a server following `@production` while the stage moves.

A registry (a temporary folder, or with --s3 a bucket on moto's S3 server on 127.0.0.1) holds six
versions of the example's model — scikit-learn's HistGradientBoostingClassifier (200 iterations)
behind a one-hot ColumnTransformer, trained on the AI4I 2020 data (../shared/data/ai4i2020.csv;
generated rows when it is absent) with six seeds. `nbops serve failure-predictor@production`
serves them (its default poll of 1 s unless --poll), while 8 clients (threads of this process, one
keep-alive connection each) POST a one-row request in a loop. Then:

  steady     --steady seconds at one version: p50 and p99 latency, the reference;
  switches   5 promotions (0.2.0 … 0.6.0) and 1 rollback (back to 0.5.0), --hold seconds apart:
             failed requests (any answer that is not a 200 naming the same version in its header
             and body), p99 of the requests sent during each switch (from the assignment until 1 s
             after the first answer from the new version) against the steady p99, and the switch
             latency — from the assignment to the first answer from the new version — beside what
             the server reports of it (/health: read stages.json, fetch, load and warm-up);
  memory     the server's resident memory (VmRSS) before any switch and `--hold` seconds after
             each switch, over --switches switches in all (the six above, then alternating), and
             the growth from the 5th switch to the last.

Prints the figures as a markdown section for bench/README.md.

    python bench/switch_bench.py [--s3] [--poll 1.0] [--steady 10] [--hold 3] [--switches 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from nbops.models.registry import Registry  # noqa: E402
from nbops.testing import Answer, Load, S3Server, ServerProcess, command_env, register_model  # noqa: E402

SECTION = "## Switching versions under load"
NAME = "failure-predictor"
AI4I = REPO.parent / "shared" / "data" / "ai4i2020.csv"
FEATURES = ["Type", "Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"]
CLIENTS = 8


def training_data() -> tuple[Any, Any, str]:
    import numpy as np
    import pandas as pd

    if AI4I.exists():
        data = pd.read_csv(AI4I, encoding="utf-8-sig")
        return data[FEATURES], data["Machine failure"], f"the AI4I 2020 data ({len(data)} rows)"
    rng = np.random.default_rng(0)
    n = 10_000
    X = pd.DataFrame({
        "Type": rng.choice(["L", "M", "H"], n, p=[0.5, 0.3, 0.2]), "Air temperature [K]": rng.normal(300, 2, n).round(1),
        "Process temperature [K]": rng.normal(310, 1.5, n).round(1), "Rotational speed [rpm]": rng.normal(1540, 180, n).round(),
        "Torque [Nm]": rng.normal(40, 10, n).round(1), "Tool wear [min]": rng.integers(0, 250, n),
    })
    y = ((X["Torque [Nm]"] * X["Rotational speed [rpm]"] * 0.1047 > 9000) | (X["Tool wear [min]"] > 230)).astype(int)
    return X, y, f"generated rows ({n}; {AI4I} not found)"


def example_model(X: Any, y: Any, seed: int) -> Any:
    """The example's pipeline (notebooks/train.py), seeded."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return make_pipeline(
        make_column_transformer((OneHotEncoder(categories=[["L", "M", "H"]], handle_unknown="ignore"), ["Type"]),
                                remainder="passthrough", verbose_feature_names_out=False),
        HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=seed),
    ).fit(X, y)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def wait_for_version(load: Load, version: str, since: float, timeout: float = 60) -> float:
    """When (time.monotonic) the first answer from `version` arrived, among requests sent after
    `since`; reads only the answers that came in since it last looked (the clients share its GIL)."""
    deadline = time.monotonic() + timeout
    cursors = [0] * len(load._answers)
    first = None
    while time.monotonic() < deadline:
        for i, answers in enumerate(load._answers):
            new, cursors[i] = answers[cursors[i]:], len(answers)
            for a in new:
                if a.sent >= since and a.version == version:
                    first = a.sent + a.latency if first is None else min(first, a.sent + a.latency)
        if first is not None:
            time.sleep(0.05)  # answers sent earlier may still be landing
            for i, answers in enumerate(load._answers):
                for a in answers[cursors[i]:]:
                    if a.sent >= since and a.version == version:
                        first = min(first, a.sent + a.latency)
            return first
        time.sleep(0.02)
    raise RuntimeError(f"no answer from {version} within {timeout} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="nbops-switch-bench-"))
    s3 = S3Server(work) if args.s3 else None
    env = command_env(work, s3.env if s3 else None)
    try:
        if s3:
            root = f"{s3.make_bucket('switch-bench')}/registry"
            os.environ.update(s3.env)  # this process publishes into the bucket too
        else:
            root = str(work / "registry")
        reg = Registry(root)
        X, y, data_note = training_data()
        started = time.perf_counter()
        for seed in range(6):
            register_model(work, NAME, example_model(X, y, seed), X, version=None, stage=None, registry=root)
        build_seconds = time.perf_counter() - started
        reg.assign(NAME, "0.1.0", "production")
        model_mb = os.path.getsize(reg.local_path(NAME, "0.1.0") / "model.skops") / 1e6
        body = json.dumps([X.head(1).iloc[0].to_dict()]).encode()

        server = ServerProcess(["nbops", "serve", f"{NAME}@production", "--registry", root, "--port", "0",
                                "--poll", str(args.poll)], work, env, work / "server.log")
        load = Load(server.url, body, clients=CLIENTS).start()
        try:
            time.sleep(3)  # warm: connections open, caches filled
            steady_from = time.monotonic()
            time.sleep(args.steady)
            steady = [a for a in load.answers() if steady_from <= a.sent < time.monotonic()]
            rss_before = rss_mb(server.process.pid)

            plan = [("promotion", "0.2.0"), ("promotion", "0.3.0"), ("promotion", "0.4.0"), ("promotion", "0.5.0"),
                    ("promotion", "0.6.0"), ("rollback", "0.5.0")]
            while len(plan) < args.switches:  # then alternate, for the memory figures
                plan.append(("alternate", "0.6.0" if plan[-1][1] == "0.5.0" else "0.5.0"))
            switches = []
            for kind, version in plan:
                assigned = time.monotonic()
                reg.assign(NAME, version, "production")
                first = wait_for_version(load, version, assigned)
                time.sleep(args.hold)
                health = server.get("/health")["follow"]
                switches.append({"kind": kind, "version": version, "assigned": assigned, "first": first,
                                 "latency": first - assigned, "server": (health["last_switch"] or {}).get("seconds", {}),
                                 "rss": rss_mb(server.process.pid)})
            answers = load.stop()
        finally:
            load.stop()
            server.stop()
        log = server.log.read_text()
    finally:
        if s3:
            s3.stop()
    return {"data": data_note, "build_seconds": build_seconds, "model_mb": model_mb, "steady": steady,
            "answers": answers, "switches": switches, "rss_before": rss_before, "log": log, "registry": "s3" if s3 else "folder"}


def render(result: dict[str, Any], args: argparse.Namespace, loads: tuple[str, str]) -> str:
    import numpy
    import sklearn

    answers: list[Answer] = result["answers"]
    steady = [a.latency * 1e3 for a in result["steady"]]
    steady_p50, steady_p99 = percentile(steady, 50), percentile(steady, 99)
    failed = [a for a in answers if not a.ok]
    rows = []
    during_all: list[float] = []
    for s in result["switches"][:6]:
        during = [a.latency * 1e3 for a in answers if s["assigned"] <= a.sent <= s["first"] + 1.0]
        during_all += during
        server = s["server"]
        rows.append(f"| {s['kind']} → {s['version']} | {s['latency']:.2f} s | {server.get('read', 0) * 1e3:.0f} ms "
                    f"| {server.get('fetch', 0) * 1e3:.0f} ms | {server.get('load_and_warmup', 0):.2f} s "
                    f"| {s['latency'] - server.get('load_and_warmup', 0):.2f} s | {len(during)} | {percentile(during, 99):.1f} ms "
                    f"| {percentile(during, 99) / steady_p99:.2f}× |")
    during_p99 = percentile(during_all, 99)
    rss = [s["rss"] for s in result["switches"]]
    fifth = rss[4] if len(rss) >= 5 else rss[0]
    growth = rss[-1] - fifth
    worst_latency = max(s["latency"] - s["server"].get("load_and_warmup", 0) for s in result["switches"][:6])
    where = "a bucket on moto's S3 server on 127.0.0.1" if result["registry"] == "s3" else "a local folder"
    lines = [
        f"{SECTION}{' (registry on S3)' if result['registry'] == 's3' else ''}",
        "",
        f"`python bench/switch_bench.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + " — "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
        f"{platform.system()}; scikit-learn {sklearn.__version__}, numpy {numpy.__version__}. Load average (1/5/15 min) "
        f"before {loads[0]}, after {loads[1]}: the machine is shared with other sessions, so latencies are inflated "
        "and noisy; the ratios compare periods of the same run.",
        "",
        f"Registry: {where}; six versions of the example's model (HistGradientBoosting, 200 iterations, "
        f"{result['model_mb']:.1f} MB skops file; ",
    ]
    lines[-1] += (f"trained on {result['data']}). Server: `nbops serve {NAME}@production --poll {args.poll:g}`; "
                  f"{CLIENTS} clients post one row each, in a loop, on keep-alive connections.")
    lines += [
        "",
        f"Steady state ({args.steady:g} s, {len(steady)} requests): p50 **{steady_p50:.1f} ms**, p99 **{steady_p99:.1f} ms**.",
        f"All phases: **{len(answers)} requests, {len(failed)} failed** (a failure: not a 200 naming one version in its "
        "`X-Model-Version` header and its body).",
        "",
        "| switch | assignment → first answer from it | server: read stages.json | fetch | load + warm-up | latency − load | requests during the switch | their p99 | ÷ steady p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Memory (VmRSS of the server): {result['rss_before']:.0f} MB before any switch; after each of {len(rss)} switches "
        f"{min(rss):.0f}–{max(rss):.0f} MB (after the 5th {fifth:.0f} MB, after the last {rss[-1]:.0f} MB: growth "
        f"{growth:+.0f} MB over {len(rss) - 5} switches). Each: {', '.join(f'{r:.0f}' for r in rss)}.",
        "",
        "Goals: " + "; ".join([
            f"0 failed requests across 5 promotions and 1 rollback ({len(failed)}: {'met' if not failed else 'missed'})",
            f"p99 during switches ≤ 2× steady ({during_p99:.1f} ms = {during_p99 / steady_p99:.2f}×: "
            f"{'met' if during_p99 <= 2 * steady_p99 else 'missed'})",
            f"switch latency ≤ 2 s + load time (worst latency − load {worst_latency:.2f} s: {'met' if worst_latency <= 2 else 'missed'})",
            f"memory back to steady state, no growth over {len(rss)} switches (growth {growth:+.0f} MB from the 5th to the last: "
            f"{'met' if abs(growth) <= 10 else 'missed'})",
        ]) + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3", action="store_true", help="the registry in a bucket on moto's S3 server (needs moto[server], s3fs)")
    parser.add_argument("--poll", type=float, default=1.0, help="the server's poll interval, seconds (default: %(default)s, nbops serve's)")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds of steady state measured (default: %(default)s)")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds at each version before the next switch (default: %(default)s)")
    parser.add_argument("--switches", type=int, default=20, help="switches in all, for the memory figures (default: %(default)s; at least 6)")
    args = parser.parse_args()
    args.switches = max(args.switches, 6)
    before = load_average()
    result = run(args)
    section = render(result, args, (before, load_average()))
    print(section)
    if "Traceback" in result["log"]:
        print(result["log"], file=sys.stderr)


if __name__ == "__main__":
    main()
