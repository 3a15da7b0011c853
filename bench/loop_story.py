"""The closed loop, end to end: a plant drifts, monitoring sees it, a retrained model takes over.

Real processes only: the example project copied into a fresh git + DVC repository, `dvc repro`
(kernels via `nbops run`), `nbops promote --to production`, `nbops serve failure-predictor@production
--capture` as a server subprocess on 127.0.0.1, `nbops monitor` on what it captured. The story:

  train      the plant's first `train_days` days (`dvc repro` seeds them), promoted to production;
  stable     days that follow the same rules, sent to the server day by day: no drift;
  drift      days under the shifts of plantsim/scenarios/drift.yaml (tool wear, product mix, a sensor
             offset, more heat-dissipation failures): drift, and live recall drops once labels arrive;
  turn       one loop turn — the newest batch lands in data/batches, `dvc repro`, `git commit`,
             `nbops promote --to production`, the server switches — under 8 clients of continuous load;
  after      days served by the new version: monitoring reports recovery.

Each day's requests are its rows (in requests of `rows_per_request` rows, with an X-Request-ID);
after the day, its batch lands in data/batches and its labels (the batch's `Machine failure`)
in labels.csv, joined by request id. Monitoring runs per phase (and per day with --per-day) on
the capture's time window of that traffic.

    python bench/loop_story.py --scale full --per-day --json docs/loop-story.json --plot docs/loop-story.png
    python bench/loop_story.py --scale small          # what tests/e2e/test_loop_story.py runs

Prints the phases and the loop turn's parts (markdown for bench/README.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from nbops.testing import Load, ServerProcess, command_env, copy_project, init_repo, run, set_params  # noqa: E402

NAME = "failure-predictor"
SCENARIO = REPO / "plantsim" / "scenarios" / "drift.yaml"
SCENARIO_FIRST_DAY = 35  # drift.yaml's first shift: its days are moved to start at `drift_from`
SENSORS = ["Type", "Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"]
CLIENTS = 8


@dataclass(frozen=True)
class Scale:
    rows_per_day: int
    train_days: int      # days 0 … train_days-1 are seeded and trained on; also the training window (ingest.window_days)
    stable_days: int
    drift_days: int
    after_days: int
    rows_per_request: int
    spread: float        # 1: drift.yaml's shifts as written (days apart, a ramp); 0: all from the first drifted day
    max_iter: int        # the boosted trees' iterations (train.max_iter; the example's is 200)


SCALES = {
    # The training window is `train_days` long: once as many drifted days have arrived, the retrained model
    # learns from drifted days alone, so its profile is the plant as it now is.
    "small": Scale(rows_per_day=1000, train_days=4, stable_days=2, drift_days=5, after_days=2, rows_per_request=25, spread=0,
                   max_iter=50),
    "full": Scale(rows_per_day=700, train_days=14, stable_days=5, drift_days=20, after_days=7, rows_per_request=10, spread=0.5,
                  max_iter=200),
}


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def features(frame: Any) -> Any:
    """What the model takes: the example's featurize stage (notebooks/featurize.py), for live rows."""
    import numpy as np

    out = frame[SENSORS].copy()
    out["Power [W]"] = (out["Torque [Nm]"] * out["Rotational speed [rpm]"] * 2 * np.pi / 60).round(3)
    out["Temperature difference [K]"] = (out["Process temperature [K]"] - out["Air temperature [K]"]).round(3)
    out["Strain [minNm]"] = (out["Tool wear [min]"] * out["Torque [Nm]"]).round(3)
    return out


def shifted_scenario(drift_from: int, spread: float) -> dict[str, Any]:
    """drift.yaml with its days moved so that its first shift starts on `drift_from` (and, with
    spread 0, every shift starts then, at full strength: no ramp)."""
    import yaml

    scenario = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    for shift in scenario["shifts"]:
        for key in ("from", "to"):
            if shift.get(key) is not None:
                shift[key] = drift_from + round((int(shift[key]) - SCENARIO_FIRST_DAY) * spread)
        if spread == 0:
            shift.pop("to", None)
            shift.pop("ramp", None)
    return scenario


class Story:
    def __init__(self, scale: Scale, work: Path, poll: float, per_day: bool, say: Any = print) -> None:
        self.scale, self.work, self.poll, self.per_day, self.say = scale, work, poll, per_day, say
        self.project = work / "project"
        self.plant = work / "plant"          # the plant's days, before they arrive
        self.capture = work / "capture"
        self.labels = work / "labels.csv"
        self.env = command_env(work)
        self.start = dt.date(2024, 1, 1)
        self.days: list[dict[str, Any]] = []
        self.phases: dict[str, Any] = {}
        self.turn: dict[str, Any] = {}
        self.load: dict[str, Any] = {}
        self.server: ServerProcess | None = None

    # --- steps ----------------------------------------------------------------------------------

    def timed(self, what: str, args: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.perf_counter()
        result = run(args, self.project, self.env, **kwargs)
        seconds = time.perf_counter() - started
        self.say(f"  {what}: {seconds:.1f} s")
        return seconds, result

    def setup(self) -> str:
        s = self.scale
        copy_project(REPO, self.project)
        set_params(self.project, {"plant": {"rows_per_day": s.rows_per_day, "initial_days": s.train_days},
                                  "ingest": {"window_days": s.train_days}, "train": {"max_iter": s.max_iter}})
        init_repo(self.project, self.env)
        self.say(f"train: days 0–{s.train_days - 1} ({s.rows_per_day} processes a day)")
        self.timed("dvc repro", ["dvc", "repro"])
        run(["git", "add", "-A"], self.project, self.env)
        run(["git", "commit", "-q", "-m", "train on the first days"], self.project, self.env)
        self.timed("nbops promote --to production", ["nbops", "promote", NAME, "--to", "production"])
        # The plant's coming days, written ahead into a folder of their own; each lands in data/batches after it is served.
        import yaml

        drift_from = s.train_days + s.stable_days
        scenario = self.work / "scenario.yaml"
        scenario.write_text(yaml.safe_dump(shifted_scenario(drift_from, s.spread), sort_keys=False), encoding="utf-8")
        shutil.copytree(self.project / "data" / "batches", self.plant)
        last = s.train_days + s.stable_days + s.drift_days + s.after_days - 1
        run([sys.executable, "-m", "plantsim", "simulate", "--out", str(self.plant), "--until", self.date(last).isoformat(),
             "--scenario", str(scenario)], self.project, self.env)
        with self.labels.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(["request_id", "row", "label"])
        return self.stage_version()

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)

    def stage_version(self) -> str:
        from nbops.models.registry import Registry

        return Registry(self.project / "registry").stages(NAME)["production"]

    def serve(self) -> None:
        self.server = ServerProcess(
            ["nbops", "serve", f"{NAME}@production", "--port", "0", "--poll", str(self.poll),
             "--capture", str(self.capture), "--capture-flush", "0.2"],
            self.project, self.env, self.work / "server.log")
        self.say(f"serving {NAME}@production on {self.server.url} with capture on")

    def send_day(self, day: int, phase: str) -> dict[str, Any]:
        """The day's processes as requests to the server; afterwards its batch lands and its labels arrive."""
        import pandas as pd

        assert self.server is not None
        batch = self.plant / f"{self.date(day).isoformat()}.csv"
        frame = pd.read_csv(batch)
        X, labels = features(frame), frame["Machine failure"].astype(int).tolist()
        host, port = self.server.url.split("//", 1)[1].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        since, versions, label_rows = utc_now(), set(), []
        step = self.scale.rows_per_request
        for first in range(0, len(X), step):
            rid = f"{self.date(day).isoformat()}-{first // step:04d}"
            body = json.dumps({"records": X.iloc[first:first + step].to_dict(orient="records")}).encode()
            connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json", "X-Request-ID": rid})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"day {day}: the server answered {response.status}: {answer}")
            versions.add(answer["version"])
            label_rows += [[rid, row, labels[first + row]] for row in range(len(answer["predictions"]))]
        connection.close()
        until = utc_now()
        self.wait_for_capture()
        landing = time.perf_counter()
        shutil.copy2(batch, self.project / "data" / "batches" / batch.name)  # the day's batch lands ...
        with self.labels.open("a", newline="", encoding="utf-8") as handle:  # ... with its labels
            csv.writer(handle).writerows(label_rows)
        record = {"day": day, "date": self.date(day).isoformat(), "phase": phase, "since": since, "until": until,
                  "rows": len(X), "failures": int(sum(labels)), "versions": sorted(versions),
                  "landed_seconds": time.perf_counter() - landing}
        self.days.append(record)
        return record

    def wait_for_capture(self, timeout: float = 30) -> None:
        """Until the server has written out every request it captured (its /metrics counters)."""
        import urllib.request

        assert self.server is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(self.server.url + "/metrics", timeout=10) as response:
                text = response.read().decode()
            counts = {line.split()[0]: float(line.split()[-1]) for line in text.splitlines()
                      if line.startswith(("nbops_capture_captured_records_total", "nbops_capture_written_records_total"))}
            if counts and counts.get("nbops_capture_captured_records_total") == counts.get("nbops_capture_written_records_total"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the server did not write its capture within {timeout} s")

    def monitor(self, version: str, since: str, until: str, labels: bool = True) -> dict[str, Any]:
        args = ["nbops", "monitor", f"{NAME}@{version}", "--capture", str(self.capture), "--since", since, "--until", until, "--json"]
        if labels:
            args += ["--labels", str(self.labels)]
        report = json.loads(run(args, self.project, self.env).stdout)
        recall = ((report.get("performance") or {}).get("metrics") or {}).get("recall") or {}
        return {
            "version": version, "status": report["status"], "rows": report["rows"],
            "drift_share": report["dataset_drift"]["share"], "dataset_drift": report["dataset_drift"]["drifted"],
            "drifted_columns": [c for c, v in report["columns"].items() if v.get("drifted")],
            "prediction_drift": bool((report.get("prediction") or {}).get("drifted")),
            "labelled_rows": (report.get("performance") or {}).get("labelled_rows", 0),
            "recall": recall.get("live"), "recall_recorded": recall.get("recorded"), "recall_dropped": recall.get("dropped"),
        }

    def phase(self, name: str, days: range) -> None:
        version = self.stage_version()
        self.say(f"{name}: days {days.start}–{days.stop - 1}, served by {version}")
        records = [self.send_day(day, name) for day in days]
        if self.per_day:
            for record in records:
                record["monitor"] = self.monitor(version, record["since"], record["until"])
        since, until = records[0]["since"], records[-1]["until"]
        summary = {"days": [days.start, days.stop - 1], "version": version, "since": since, "until": until}
        if name == "drift":  # before the labels: data drift only; then with them
            summary["before_labels"] = self.monitor(version, since, until, labels=False)
        summary["monitor"] = self.monitor(version, since, until)
        self.phases[name] = summary
        m = summary["monitor"]
        self.say(f"  monitor: {m['status']}, drift share {m['drift_share']:.2f} ({', '.join(m['drifted_columns']) or 'no column'}), "
                 f"live recall {fmt(m['recall'])} (recorded {fmt(m['recall_recorded'])}, {m['labelled_rows']} labelled rows)")

    def force_reason(self, version: str) -> str:
        """Why the champion/challenger gate is passed, from what monitoring measured.

        That gate compares the new model's figures with those production's version recorded at its
        own evaluation, on data from before the drift, which monitoring has just shown no longer
        hold; every other gate (thresholds, parity, freshness, up-to-date, clean tree) still decides."""
        m = self.phases["drift"]["monitor"]
        first, last = self.phases["drift"]["days"]
        return (f"the plant drifted (nbops monitor, days {first}-{last}: {m['drift_share']:.0%} of the columns drift; "
                f"{version}'s live recall {m['recall']:.3f} against {m['recall_recorded']:.3f} at its evaluation, "
                f"whose figures predate the drift)")

    def loop_turn(self) -> None:
        """A new batch → dvc repro → commit → promote → the server answers from the new version, under load."""
        import pandas as pd

        assert self.server is not None
        old = self.stage_version()
        self.say("turn: the newest batch has landed; retrain and promote under load")
        newest = self.days[-1]
        t = self.turn
        t["ingest"] = newest["landed_seconds"]
        t["repro"], _ = self.timed("dvc repro", ["dvc", "repro"])
        commit_started = time.perf_counter()
        run(["git", "add", "-A"], self.project, self.env)
        run(["git", "commit", "-q", "-m", f"retrain on the batches up to {newest['date']}"], self.project, self.env)
        t["commit"] = time.perf_counter() - commit_started
        row = features(pd.read_csv(self.plant / f"{newest['date']}.csv").head(1)).to_dict(orient="records")
        load = Load(self.server.url, json.dumps(row).encode(), clients=CLIENTS).start()
        try:
            time.sleep(2)  # load is running before the promotion
            load_from = time.monotonic()
            t["promote"], promoted = self.timed("nbops promote --to production",
                                                ["nbops", "promote", NAME, "--to", "production", "--force", self.force_reason(old)])
            assigned = time.monotonic()  # the promotion assigned production just before it exited
            new = self.stage_version()
            if new == old:
                raise RuntimeError(f"the promotion did not move production from {old}:\n{promoted.stdout}{promoted.stderr}")
            first = wait_for_version(load, new, assigned)
            t["switch"] = first - assigned
            time.sleep(2)  # and keeps running after the switch
            answers = load.stop()
        finally:
            load.stop()
        t["total"] = t["ingest"] + t["repro"] + t["commit"] + t["promote"] + t["switch"]
        from nbops.models.registry import Registry

        t["forced"] = (Registry(self.project / "registry").manifest(NAME, new).get("lineage") or {}).get("forced")
        health = self.server.get("/health")["follow"]
        t["server_read_fetch_load"] = sum((health.get("last_switch") or {}).get("seconds", {}).values())
        during = [a for a in answers if a.sent >= load_from]
        failed = [a for a in answers if not a.ok]
        self.load = {"clients": CLIENTS, "requests": len(answers), "failed": len(failed),
                     "versions": sorted({a.version for a in answers if a.version}),
                     "during_promotion": len(during), "failures": [repr(a) for a in failed[:5]]}
        self.say(f"  switched {old} → {new}: {len(answers)} requests under load, {len(failed)} failed; "
                 f"the first answer from {new} {t['switch']:.2f} s after `nbops promote` exited")

    def run(self) -> dict[str, Any]:
        s = self.scale
        first_version = self.setup()
        self.serve()
        try:
            stable = range(s.train_days, s.train_days + s.stable_days)
            drift = range(stable.stop, stable.stop + s.drift_days)
            after = range(drift.stop, drift.stop + s.after_days)
            self.phase("stable", stable)
            self.phase("drift", drift)
            self.loop_turn()
            self.phase("after", after)
        finally:
            assert self.server is not None
            self.server.stop()
        log = (self.work / "server.log").read_text()
        return {"scale": asdict(s), "poll": self.poll, "first_version": first_version, "days": self.days,
                "phases": self.phases, "turn": self.turn, "load": self.load, "server_log_traceback": "Traceback" in log}


def wait_for_version(load: Load, version: str, since: float, timeout: float = 60) -> float:
    """When (time.monotonic) the first answer from `version` came back, among requests sent after `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [a.sent + a.latency for a in load.answers() if a.sent >= since and a.version == version]
        if done:
            time.sleep(0.05)  # answers sent earlier may still be landing
            return min(a.sent + a.latency for a in load.answers() if a.sent >= since and a.version == version)
        time.sleep(0.02)
    raise RuntimeError(f"no answer from {version} within {timeout} s")


def fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


# --- outputs ---------------------------------------------------------------------------------------


def markdown(result: dict[str, Any], argv: list[str], loads: tuple[str, str]) -> str:
    t, p, load = result["turn"], result["phases"], result["load"]
    parts = [("ingest (the batch lands in data/batches)", t["ingest"]), ("`dvc repro` (batches → ingest → featurize → train → evaluate)", t["repro"]),
             ("`git commit` of dvc.lock", t["commit"]), ("`nbops promote --to production` (gates, package, wheel, card)", t["promote"]),
             (f"switch: `nbops promote` exits → first answer from the new version (poll {result['poll']:g} s)", t["switch"])]
    lines = [
        "## One loop turn",
        "",
        f"`python bench/loop_story.py {' '.join(argv)}` — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores "
        f"({platform.machine()}), Python {platform.python_version()}, {platform.system()}. Load average (1/5/15 min) before "
        f"{loads[0]}, after {loads[1]}: the machine is shared with other sessions, so every time is inflated.",
        "",
        "From a new batch to the new version serving, the parts in order:",
        "",
        "| part | seconds | share |",
        "|---|---:|---:|",
        *[f"| {what} | {seconds:.2f} | {seconds / t['total']:.0%} |" for what, seconds in parts],
        f"| **total** | **{t['total']:.1f}** | |",
        "",
        f"Under {load['clients']} clients of continuous load from before the promotion until 2 s after the switch: "
        f"{load['requests']} requests, **{load['failed']} failed**, versions answering {', '.join(load['versions'])}.",
        "",
        "| phase | days | version | status | drift share | drifted columns | live recall | recorded recall |",
        "|---|---|---|---|---:|---|---:|---:|",
    ]
    for name in ("stable", "drift", "after"):
        m = p[name]["monitor"]
        lines.append(f"| {name} | {p[name]['days'][0]}–{p[name]['days'][1]} | {m['version']} | {m['status']} | {m['drift_share']:.2f} "
                     f"| {', '.join(m['drifted_columns']) or '–'} | {fmt(m['recall'])} | {fmt(m['recall_recorded'])} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Drift share, live recall and the version served, day by day (needs matplotlib and --per-day)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'nbops[examples]' (or matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d for d in result["days"] if "monitor" in d]
    if not days:
        raise SystemExit("--plot needs the per-day figures: add --per-day")
    x = [d["day"] for d in days]
    versions = sorted({d["monitor"]["version"] for d in days}, key=lambda v: tuple(int(p) for p in v.split(".")))
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 3, 1.3]})
    drift = [d for d in days if d["phase"] == "drift"]
    turn_at = max(d["day"] for d in drift) + 0.5 if drift else None
    for ax in axes:
        if drift:
            ax.axvspan(min(d["day"] for d in drift) - 0.5, turn_at, color="#f4d6d2", lw=0, zorder=0)
        if turn_at is not None:
            ax.axvline(turn_at, color="#555", lw=1, ls=":", zorder=1)
        ax.grid(axis="y", color="#ddd", lw=0.6)
    share = [d["monitor"]["drift_share"] for d in days]
    axes[0].plot(x, share, "o-", color="#c0392b", ms=4)
    axes[0].axhline(0.5, color="#c0392b", lw=0.8, ls="--")
    axes[0].text(x[0], 0.52, "dataset drift: half of the columns", color="#c0392b", fontsize=8, va="bottom")
    axes[0].set_ylabel("share of columns\ndrifting")
    axes[0].set_ylim(-0.03, 1.03)
    recall = [d["monitor"]["recall"] for d in days]
    recorded = [d["monitor"]["recall_recorded"] for d in days]
    axes[1].plot(x, recall, "o-", color="#2471a3", ms=4, label="live recall (labels of the day)")
    axes[1].step(x, recorded, where="mid", color="#2471a3", lw=1, ls="--", label="recall at evaluation (the version served)")
    axes[1].set_ylabel("recall of\nthe failure class")
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(loc="lower left", fontsize=8, frameon=False)
    axes[2].step(x, [versions.index(d["monitor"]["version"]) for d in days], where="mid", color="#1e8449", lw=2)
    axes[2].set_yticks(range(len(versions)), versions)
    axes[2].set_ylim(-0.5, len(versions) - 0.5)
    axes[2].set_ylabel("version\nserved")
    axes[2].set_xlabel("day (the plant's days since it started; days before the first shown were trained on)")
    if turn_at is not None:
        axes[0].text(turn_at + 0.15, 0.95, "retrain, promote,\nswitch", fontsize=8, va="top")
    if drift:
        axes[0].text(min(d["day"] for d in drift) - 0.3, 0.95, "the plant drifts", fontsize=8, va="top", color="#922b21")
    fig.suptitle(f"{NAME}@production over the days: drift, live recall, version served", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full", help="days and rows (default: %(default)s)")
    parser.add_argument("--poll", type=float, default=0.2, help="the server's poll interval, seconds (default: %(default)s)")
    parser.add_argument("--per-day", action="store_true", help="also monitor each day (the picture's points)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--plot", type=Path, help="draw the picture (PNG) here; needs --per-day and matplotlib")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (printed)")
    args = parser.parse_args()
    before = "/".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="nbops-loop-story-"))
    try:
        result = Story(SCALES[args.scale], work, args.poll, args.per_day).run()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"working folder: {work}", file=sys.stderr)
    after = "/".join(f"{x:.1f}" for x in os.getloadavg())
    result["load_average"] = {"before": before, "after": after}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        plot(result, args.plot)
    print(markdown(result, sys.argv[1:], (before, after)))


if __name__ == "__main__":
    main()
