"""Seamless updates, told end to end with real processes: new weeks of transactions arrive, the
fraudsters change tactics on a chosen day, monitoring sees the drift and the champion's live card
precision drops as the labels come in, the pipeline retrains on the new weeks, the challenger is
shadowed before it replaces the champion, and the server switches under load without a failed
request.

    python story.py run WORKDIR            # the story in WORKDIR (a copy of this project); writes WORKDIR/story.json
    python story.py plot WORKDIR/story.json docs/   # its figures (needs matplotlib)

What runs is what a team runs: `dvc repro` of this project (its notebooks under `nbops run`),
`nbops promote`, one `nbops serve fraud-detector@production --shadow fraud-detector@staging
--capture …` subprocess on 127.0.0.1 for the whole story, and `nbops.monitor` over its capture.
The world is the small one (500 cards, 1,000 terminals); the timeline, in weeks of simulated days:

    weeks 0–9   history: the first model trains on weeks 5–7 (tested on week 9, after the
                week of label delay) and goes to production; the weeks before are the windows'
                history (30 days, and the terminals' 7 days of delay)
    weeks 10–16 live: each week's transactions are scored by the server, in batches
    day 77      (week 11) the fraudsters change tactics (`Plan.shift`): fewer compromised
                terminals and milder amount inflation, and card testing (small payments at random
                terminals at any hour), which the champion has never seen
    week 15     end: retraining on the weeks so far — labels are a week late, so the training
                weeks end a week before the newest: 11–13, all in the new pattern; the
                challenger goes to staging, and the server shadows it
    week 16     end: after a week in the shadow, it is promoted to production while 8 clients
                keep the server busy (nbops.testing.Load); the server switches with no failed request
    week 17     the new champion serves

Each week, at its end, monitoring compares the week's inputs with the serving version's training
profile (the drift) and estimates its performance from the scores alone (the calibration the
profile records), and the labels of the week before arrive (fraud is confirmed a week later):
the live metrics of that week, champion and shadow, are computed from the capture, and the
estimate made a week earlier stands beside them. Card
precision@k is the handbook's daily measure with k scaled to the world: 100 of 5,000 cards is
10 of the small world's 500.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import http.client
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = "fraud-detector"
#: What a copy of this project needs (its data, models and reports are made by the story).
PROJECT_FILES = ("fraudkit", "notebooks", "dvc.yaml", "params.yaml", "jupytext.toml", ".dvcignore")
#: The story's settings: three training weeks, one test week (the newest), one validation week,
#: card precision@10; gates for what the small world reaches in one test week; monitoring's tolerance.
STORY_PARAMS = {
    "featurize": {"train_weeks": 3, "test_weeks": 1},
    "train": {"validation_weeks": 1, "max_iter": 50},
    "evaluate": {"k": 10},
    "promote": {"thresholds": {"average_precision": ">= 0.3", "card_precision_at_10": ">= 0.1"}, "tolerance": 0.02},
    # one small-world week holds ~60 frauds before the shift: its average precision varies by
    # about ±0.1 from week to week, so a live drop counts beyond 0.15
    "monitor": {"tolerance": 0.15},
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """The story's timeline and settings (days and weeks of the simulated world)."""

    weeks: int = 18
    first_live_week: int = 10
    shift_day: int = 77
    shift: dict[str, float] = dataclasses.field(default_factory=lambda: {
        "terminals_per_day": 0.5, "amount_factor": 2.0, "testing_cards_per_day": 15.0,
    })
    retrain_after_week: int = 15
    promote_after_week: int = 16
    k: int = 10
    batch_rows: int = 500
    load_clients: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.first_live_week <= self.retrain_after_week < self.promote_after_week < self.weeks:
            raise ValueError("the plan needs first_live_week <= retrain_after_week < promote_after_week < weeks")


# --- the world and the project --------------------------------------------------------------------


def simulate_stream(plan: Plan) -> tuple[Any, Any]:
    """The whole timeline simulated at once (the fraud rules change on `plan.shift_day`), with
    each transaction's features computed from what was known when it happened; (simulation,
    features frame)."""
    sys.path.insert(0, str(HERE))
    from fraudkit import features, simulate

    world = dataclasses.replace(simulate.WORLDS["small"], n_days=7 * plan.weeks)
    rules = simulate.FraudRules()
    sim = simulate.simulate(world, rules, seed=plan.seed, shift_day=plan.shift_day, shifted=rules.updated(plan.shift))
    featured = features.add_features(sim.transactions)
    featured["week"] = featured["tx_time_days"] // 7
    return sim, featured


def make_project(workdir: Path, env: dict[str, str]) -> Path:
    """A copy of this project in its own git + DVC repository, with the story's settings."""
    from nbops.testing import set_params

    project = workdir / "project"
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = HERE / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy2(source, project / name)
    set_params(project, STORY_PARAMS)
    (project / ".gitignore").write_text("/registry/\n/.nbops/\n__pycache__/\n", encoding="utf-8")
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["dvc", "init", "-q"], project, env)
    _commit(project, env, "the fraud-detection project, story settings")
    return project


def deliver(sim: Any, through_day: int, incoming: Path) -> str:
    """Everything up to `through_day` as a batch folder the generate stage takes in
    (`generate.source`); returns its path relative to the project."""
    import pandas as pd

    folder = incoming / f"days-000-{through_day:03d}"
    folder.mkdir(parents=True)
    sim.customers.to_parquet(folder / "customers.parquet", index=False)
    sim.terminals.to_parquet(folder / "terminals.parquet", index=False)
    sim.transactions[sim.transactions["tx_time_days"] <= through_day].to_parquet(folder / "transactions.parquet", index=False)
    start = pd.Timestamp(sim.transactions["tx_datetime"].min().normalize())
    batch = {"start": start.isoformat(), "end": (start + pd.Timedelta(days=through_day + 1)).isoformat(), "scale": "small"}
    (folder / "batch.json").write_text(json.dumps(batch, indent=1) + "\n", encoding="utf-8")
    return f"../{incoming.name}/{folder.name}"


def retrain(project: Path, env: dict[str, str], source: str) -> dict[str, Any]:
    """`dvc repro` on the delivered batch, committed; the evaluation's metrics."""
    from nbops.testing import set_params

    set_params(project, {"generate": {"source": source}})
    started = time.monotonic()
    _run(["dvc", "repro"], project, env, timeout=1200)
    seconds = time.monotonic() - started
    _commit(project, env, f"dvc repro on {source}")
    metrics = json.loads((project / "metrics/evaluate.json").read_text(encoding="utf-8"))
    return {"source": source, "seconds": round(seconds, 1), "metrics": metrics}


def promote(project: Path, env: dict[str, str], to: str) -> dict[str, Any]:
    started = time.monotonic()
    result = json.loads(_run(["nbops", "promote", MODEL, "--to", to, "--json"], project, env, timeout=900).stdout)
    if not result.get("ok"):
        raise RuntimeError(f"nbops promote {MODEL} --to {to} was refused: {result}")
    gates = {g["name"]: g["passed"] for g in result.get("gates", [])}
    return {"to": to, "version": result["version"], "gates": gates, "seconds": round(time.monotonic() - started, 1)}


# --- serving and monitoring -----------------------------------------------------------------------


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def send_week(url: str, frame: Any, week: int, feature_names: list[str], batch_rows: int) -> dict[str, Any]:
    """POST the week's transactions in time order, `batch_rows` a request, each with its own
    X-Request-ID; returns {request_id: the frame's index labels of its rows}."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    sent: dict[str, Any] = {}
    try:
        for number, first in enumerate(range(0, len(frame), batch_rows)):
            rows = frame.iloc[first:first + batch_rows]
            request_id = f"week{week:02d}-{number:03d}"
            body = json.dumps({"columns": {name: rows[name].tolist() for name in feature_names}})
            connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json", "X-Request-ID": request_id})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"the server answered {response.status} to {request_id}: {answer[:300]!r}")
            sent[request_id] = rows.index.to_numpy()
    finally:
        connection.close()
    return sent


def captured_scores(capture: Path, sent: dict[str, Any], roles: tuple[str, ...], timeout: float = 120) -> Any:
    """The scores the capture holds for the requests `sent`, one row per (transaction, role),
    once every role's answers are written (the capture flushes in the background)."""
    import numpy as np
    import pandas as pd

    from nbops.runtime import read_records

    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for record in read_records(capture, MODEL):
            if record.get("request_id") in sent and record.get("role") in roles:
                found[(record["request_id"], record["role"])] = record
        if len(found) == len(sent) * len(roles):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the capture holds {len(found)} of the {len(sent) * len(roles)} answers expected in {capture}")
        time.sleep(0.2)
    pieces = []
    for (request_id, role), record in found.items():
        probabilities = np.asarray(record["probabilities"], dtype=float)
        pieces.append(pd.DataFrame({
            "index": sent[request_id], "role": role, "version": record["version"], "score": probabilities[:, 1],
        }))
    return pd.concat(pieces, ignore_index=True)


def live_metrics(frame: Any, scores: Any, k: int) -> dict[str, dict[str, Any]]:
    """Per role: card precision@k (mean over the week's days) and average precision, from the
    labels that have now arrived."""
    from sklearn.metrics import average_precision_score

    import nbops

    out = {}
    for role, part in scores.groupby("role"):
        rows = frame.loc[part["index"].to_numpy()]
        daily = nbops.precision_at_k(rows["tx_fraud"], part["score"], k=k, groups=rows["tx_time_days"], entities=rows["customer_id"])
        out[role] = {
            "version": str(part["version"].iloc[0]),
            f"card_precision_at_{k}": round(float(daily["precision"].mean()), 4),
            "average_precision": round(float(average_precision_score(rows["tx_fraud"], part["score"])), 4),
        }
    return out


def write_labels(path: Path, frame: Any, sent: dict[str, Any]) -> Path:
    """The week's labels as they arrive, keyed as the capture keys answers: request_id, row, label."""
    lines = ["request_id,row,label"]
    for request_id, index in sent.items():
        labels = frame.loc[index, "tx_fraud"].to_numpy()
        lines += [f"{request_id},{row},{int(label)}" for row, label in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def drift_summary(result: Any) -> dict[str, Any]:
    return {
        "status": result.status,
        "share": result.dataset_drift.get("share"),
        "drifted_columns": result.drifted_columns,
        "dataset_drift": bool(result.dataset_drift.get("drifted")),
        "prediction_drift": bool((result.prediction or {}).get("drifted")),
        "rows": result.rows,
    }


def estimate_summary(estimate: dict[str, Any] | None) -> dict[str, Any] | None:
    """What monitoring estimated from the week's scores (and, once labels joined, realized beside)."""
    if not estimate:
        return None
    keep = ("estimated", "low", "high", "reference", "dropped", "realized", "error", "within")
    return {
        "usable": estimate.get("usable"), "rows": estimate.get("rows"), "expected_positives": estimate.get("expected_positives"),
        "metrics": {name: {k: m[k] for k in keep if k in m} for name, m in (estimate.get("metrics") or {}).items()},
    }


def wait_for(server: Any, check: Any, what: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        health = server.get("/health")
        if check(health):
            return health
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not {what} within {timeout:.0f} s: {health}")
        time.sleep(0.2)


def switch_under_load(server: Any, project: Path, env: dict[str, str], frame: Any, feature_names: list[str],
                      clients: int, expected: str) -> dict[str, Any]:
    """`nbops promote --to production` while `clients` clients keep the server busy: every
    answer, the version that gave it, and whether any failed."""
    from nbops.testing import Load

    rows = frame.head(20)
    body = json.dumps({"columns": {name: rows[name].tolist() for name in feature_names}}).encode()
    load = Load(server.url, body, clients=clients).start()
    began = time.monotonic()
    try:
        time.sleep(1.0)
        promote_started = time.monotonic() - began
        promoted = promote(project, env, "production")
        promote_ended = time.monotonic() - began
        wait_for(server, lambda h: h["version"] == expected, f"switch to {expected}")
        switched = time.monotonic() - began
        time.sleep(1.0)
    finally:
        answers = load.stop()
    failed = [a for a in answers if not a.ok]
    by_version: dict[str, int] = {}
    for answer in answers:
        by_version[str(answer.version)] = by_version.get(str(answer.version), 0) + 1
    return {
        "promotion": promoted, "clients": clients, "answers": len(answers), "failed": len(failed),
        "failures": [repr(a) for a in failed[:5]], "by_version": by_version,
        "promote_started": round(promote_started, 3), "promote_ended": round(promote_ended, 3),
        "switched_by": round(switched, 3),
        # what the switch figure shows: when each answer was sent (s), its latency (ms), its version
        "timeline": [[round(a.sent - began, 4), round(1000 * a.latency, 2), a.version] for a in answers],
    }


# --- the story -------------------------------------------------------------------------------------


def run_story(workdir: Path, plan: Plan = Plan(), log: Any = print) -> dict[str, Any]:
    """The whole story in `workdir` (created; must not exist or be empty); returns what
    story.json holds."""
    from nbops import monitor
    from nbops.testing import ServerProcess, command_env

    sys.path.insert(0, str(HERE))
    from fraudkit.features import feature_names

    names = feature_names()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise FileExistsError(f"{workdir}: not empty; the story needs a folder of its own")
    env = command_env(workdir)
    timings: dict[str, float] = {}
    clock = time.monotonic()
    show = log

    def log(line: str) -> None:  # each line with the seconds since the start
        show(f"[{time.monotonic() - clock:5.0f} s] {line}")

    log("simulating the stream …")
    sim, frame = simulate_stream(plan)
    timings["simulate"] = round(time.monotonic() - clock, 1)
    project = make_project(workdir, env)
    incoming, capture, labels_dir = workdir / "incoming", workdir / "capture", workdir / "labels"
    labels_dir.mkdir()

    first_day = 7 * plan.first_live_week
    log(f"weeks 0–{plan.first_live_week - 1} arrive: dvc repro …")
    trainings = [retrain(project, env, deliver(sim, first_day - 1, incoming))]
    promotions = [promote(project, env, "production")]
    champion = promotions[0]["version"]
    log(f"{MODEL} {champion} in production ({trainings[0]['metrics']})")

    server = ServerProcess(
        ["nbops", "serve", f"{MODEL}@production", "--port", "0", "--capture", str(capture), "--capture-flush", "0.2",
         "--poll", "0.5", "--shadow", f"{MODEL}@staging"],
        project, env, workdir / "serve.log",
    )
    weeks: list[dict[str, Any]] = []
    switch: dict[str, Any] = {}
    try:
        sent_by_week: dict[int, dict[str, Any]] = {}
        for week in range(plan.first_live_week, plan.weeks):
            rows = frame[frame["week"] == week]
            health = server.get("/health")
            entry: dict[str, Any] = {
                "week": week, "first_day": 7 * week, "transactions": len(rows), "frauds": int(rows["tx_fraud"].sum()),
                "card_testing": int((rows["tx_fraud_scenario"] == 4).sum()),
                "new_pattern": 7 * week + 6 >= plan.shift_day,
                "serving": health["version"], "shadow": (health.get("shadow") or {}).get("version"), "events": [],
            }
            since = now_iso()
            sent = sent_by_week[week] = send_week(server.url, rows, week, names, plan.batch_rows)
            # a shadow holding the champion's own version is not scored again
            roles = ("champion", "shadow") if entry["shadow"] not in (None, entry["serving"]) else ("champion",)
            entry["scores"] = captured_scores(capture, sent, roles)
            until = now_iso()  # the shadow's answers are captured after the champion's: the window ends once all are in
            result = monitor(f"{MODEL}@{entry['serving']}", capture=str(capture), since=since, until=until, root=project, jobs=1)
            entry["drift"] = drift_summary(result)
            entry["estimate"] = estimate_summary(result.estimate)  # before the week's labels: the scores alone
            entry["window"] = [since, until]
            weeks.append(entry)
            _label_week(weeks, week - 1, frame, sent_by_week, capture, labels_dir, project, plan, monitor)
            log(f"week {week}: serving {entry['serving']}, shadow {entry['shadow']}, drift {entry['drift']['share']}, "
                f"live (week {week - 1}) {weeks[-2]['live'] if len(weeks) > 1 else '-'}")

            if week == plan.retrain_after_week:
                log(f"end of week {week}: retraining on the weeks so far …")
                trainings.append(retrain(project, env, deliver(sim, 7 * week + 6, incoming)))
                staged = promote(project, env, "staging")
                promotions.append(staged)
                wait_for(server, lambda h: (h.get("shadow") or {}).get("version") == staged["version"], "shadow the challenger")
                entry["events"].append(f"retrained; {staged['version']} to staging, shadowed")
            if week == plan.promote_after_week:
                log(f"end of week {week}: {promotions[-1]['version']} to production, under load …")
                switch = switch_under_load(server, project, env, rows, names, plan.load_clients, promotions[-1]["version"])
                promotions.append(switch["promotion"])
                entry["events"].append(f"{promotions[-1]['version']} to production under load: "
                                       f"{switch['answers']} answers, {switch['failed']} failed")
        # the last week's labels arrive a week after the story's end
        _label_week(weeks, plan.weeks - 1, frame, sent_by_week, capture, labels_dir, project, plan, monitor)
        health = _health_summary(server.get("/health"))
    finally:
        server.stop()
    for entry in weeks:
        entry.pop("scores", None)
    timings["total"] = round(time.monotonic() - clock, 1)
    story = {
        "plan": dataclasses.asdict(plan), "params": STORY_PARAMS, "weeks": weeks, "trainings": trainings,
        "promotions": promotions, "switch": switch, "health": health, "timings": timings,
    }
    (workdir / "story.json").write_text(json.dumps(story, indent=1) + "\n", encoding="utf-8")
    return story


def _health_summary(health: dict[str, Any]) -> dict[str, Any]:
    """What the server said of its switches and its shadow at the end (without the registry's path)."""
    follow, shadow = health.get("follow") or {}, health.get("shadow") or {}
    return {
        "version": health["version"],
        "follow": {key: follow.get(key) for key in ("ref", "serving", "switches", "last_switch", "failed")},
        "shadow": {key: shadow.get(key) for key in ("ref", "version", "scored", "dropped", "failed", "rows", "agreement")},
    }


def _label_week(weeks: list[dict[str, Any]], week: int, frame: Any, sent_by_week: dict[int, Any], capture: Path,
                labels_dir: Path, project: Path, plan: Plan, monitor: Any) -> None:
    """The labels of `week` arrive: its live metrics, from the capture, and what monitoring says with them."""
    entry = next((e for e in weeks if e["week"] == week), None)
    if entry is None:
        return
    entry["live"] = live_metrics(frame, entry["scores"], plan.k)
    labels = write_labels(labels_dir / f"week-{week:02d}.csv", frame, sent_by_week[week])
    since, until = entry["window"]
    result = monitor(f"{MODEL}@{entry['serving']}", capture=str(capture), since=since, until=until, labels=str(labels),
                     root=project, jobs=1)
    # the manifest's metrics that monitoring computes live (the others are counts of the pipeline's stages)
    performance = {name: m for name, m in ((result.performance or {}).get("metrics") or {}).items() if m.get("live") is not None}
    shadow = dict(result.shadow or {})
    if "metrics" in shadow:
        shadow["metrics"] = {name: m for name, m in shadow["metrics"].items() if m.get("shadow") is not None}
    entry["monitor"] = {
        "status": result.status,
        "dropped": sorted(name for name, m in performance.items() if m.get("dropped")),
        "live": {name: m.get("live") for name, m in performance.items()},
        "recorded": {name: m.get("recorded") for name, m in performance.items()},
        "shadow": shadow,
        # the estimate made before the labels (the same scores), now beside the realized figures
        "estimate": estimate_summary(result.estimate),
    }


# --- the pictures ---------------------------------------------------------------------------------


def plot(story_file: Path, folder: Path) -> list[Path]:
    """story.png (per week: drift, live card precision of champion and shadowed challenger, the
    serving version's average precision estimated before labels and realized after, the version
    serving) and switch.png (the answers around the switch under load)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("story.py plot: needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    story = json.loads(story_file.read_text(encoding="utf-8"))
    plan, weeks = story["plan"], story["weeks"]
    key = f"card_precision_at_{plan['k']}"
    folder.mkdir(parents=True, exist_ok=True)
    x = [w["week"] for w in weeks]
    shift_week = plan["shift_day"] / 7
    fig, (drift_ax, live_ax, estimate_ax, version_ax) = plt.subplots(4, 1, figsize=(8, 9.5), sharex=True,
                                                                     gridspec_kw={"height_ratios": [2, 3, 2.4, 1.2]})
    for ax in (drift_ax, live_ax, estimate_ax, version_ax):
        ax.axvspan(shift_week - 0.5, x[-1] + 0.5, color="#f3e3d3", zorder=0)
        for w in weeks:
            if w["events"]:
                ax.axvline(w["week"] + 0.5, color="#888", lw=0.8, ls=":")
    colors = {"ok": "#95a5a6", "warn": "#e6a23c", "drift": "#c0392b"}
    drift_ax.bar(x, [100 * (w["drift"]["share"] or 0) for w in weeks], color=[colors[w["drift"]["status"]] for w in weeks])
    drift_ax.set_ylabel("features drifting (%)")
    drift_ax.set_title(f"The fraudsters change tactics on day {plan['shift_day']} (shaded): monitoring, live "
                       "precision, the version serving", fontsize=10)
    from matplotlib.patches import Patch

    drift_ax.legend(handles=[Patch(color=colors["warn"], label="warn: some features drift"),
                             Patch(color=colors["drift"], label="drift: the scores drift too")], fontsize=8, loc="upper left")

    # one line per version: its live card precision in the weeks it served or was shadowed
    versions = sorted({role["version"] for w in weeks for role in w.get("live", {}).values()})
    styles = ["o-", "s-", "^-"]
    for number, version in enumerate(versions):
        points = [(w["week"], role[key], role is w["live"].get("shadow")) for w in weeks for role in w.get("live", {}).values()
                  if role["version"] == version]
        line = live_ax.plot([p[0] for p in points], [p[1] for p in points], styles[number % 3], label=f"version {version}")[0]
        shadowed = [p for p in points if p[2]]
        if shadowed:
            live_ax.plot([p[0] for p in shadowed], [p[1] for p in shadowed], "o", ms=13, mfc="none", mec=line.get_color(),
                         label=f"version {version} shadowed")
    live_ax.set_ylabel(f"live card precision@{plan['k']}")
    highest = max(role[key] for w in weeks for role in w.get("live", {}).values())
    live_ax.set_ylim(0, 1.4 * highest)  # room above the lines for the events' labels
    live_ax.legend(loc="lower left", fontsize=8)
    live_ax.text(0.99, 0.03, "each week's value is known a week later, when its labels arrive", transform=live_ax.transAxes,
                 ha="right", va="bottom", fontsize=8, color="#555")
    for w in weeks:
        for event in w["events"]:
            live_ax.text(w["week"] + 0.55, live_ax.get_ylim()[1] * 0.97, "retrained,\nto staging" if "staging" in event else "to production,\nunder load",
                         fontsize=7, va="top", color="#555")

    # the serving version's average precision, estimated from the week's scores at its end (before
    # any label) with its band, and realized once the labels arrived a week later
    estimated = [(w["week"], w["estimate"]["metrics"]["average_precision"]) for w in weeks
                 if (w.get("estimate") or {}).get("metrics", {}).get("average_precision")]
    if estimated:
        xs = [e[0] for e in estimated]
        estimate_ax.fill_between(xs, [e[1].get("low", e[1]["estimated"]) for e in estimated],
                                 [e[1].get("high", e[1]["estimated"]) for e in estimated], color="#d6e4f0", label="band (95%)")
        estimate_ax.plot(xs, [e[1]["estimated"] for e in estimated], "o-", color="#2c6fbb", label="estimated at the week's end")
        realized = [(w["week"], w["monitor"]["estimate"]["metrics"]["average_precision"].get("realized")) for w in weeks
                    if ((w.get("monitor") or {}).get("estimate") or {}).get("metrics", {}).get("average_precision")]
        estimate_ax.plot([r[0] for r in realized], [r[1] for r in realized], "s", color="#c0392b", label="realized, a week later")
    estimate_ax.set_ylabel("average precision\n(serving version)")
    estimate_ax.set_ylim(0, 1)
    estimate_ax.legend(loc="upper center", fontsize=8, ncol=3)

    served = sorted({w["serving"] for w in weeks} | {w["shadow"] for w in weeks if w["shadow"]})
    version_ax.step(x, [served.index(w["serving"]) for w in weeks], where="mid", color="#2c3e50", label="serving")
    shadow_weeks = [w for w in weeks if w["shadow"] and w["shadow"] != w["serving"]]
    version_ax.plot([w["week"] for w in shadow_weeks], [served.index(w["shadow"]) for w in shadow_weeks], "o", mfc="none",
                    color="#27ae60", ms=9, label="shadowed")
    version_ax.set_yticks(range(len(served)), served)
    version_ax.set_ylim(-0.5, len(served) - 0.5)
    version_ax.set_ylabel("version")
    version_ax.legend(loc="upper left", fontsize=8)
    version_ax.set_xlabel("week of transactions")
    version_ax.set_xticks(x)
    fig.tight_layout()
    paths = [folder / "story.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    switch = story.get("switch") or {}
    if switch.get("timeline"):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for version in sorted({t[2] for t in switch["timeline"]}, key=str):
            points = [(t[0], t[1]) for t in switch["timeline"] if t[2] == version]
            ax.plot(*zip(*points), ".", ms=3, label=f"answered by {version}")
        ax.axvspan(switch["promote_started"], switch["promote_ended"], color="#f3e3d3", label="nbops promote --to production")
        ax.axvline(switch["switched_by"], color="#c0392b", lw=1, label="switched (seen in /health)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"The switch under load: {switch['clients']} clients, {switch['answers']} answers, {switch['failed']} failed", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        paths.append(folder / "switch.png")
        fig.savefig(paths[1], dpi=110)
        plt.close(fig)
    return paths


# --- helpers ----------------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(args)} (in {cwd}) exited {result.returncode}:\n" + "\n".join(tail))
    return result


def _commit(project: Path, env: dict[str, str], message: str) -> None:
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-q", "--allow-empty", "-m", message], project, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="story.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the story in WORKDIR (a new folder); writes WORKDIR/story.json")
    run_parser.add_argument("workdir", type=Path)
    plot_parser = commands.add_parser("plot", help="draw story.png and switch.png from a story.json")
    plot_parser.add_argument("story", type=Path)
    plot_parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            story = run_story(args.workdir, log=lambda line: print(line, flush=True))
        except (RuntimeError, FileExistsError) as exc:
            print(f"story.py: {exc}", file=sys.stderr)
            return 1
        print(f"{args.workdir / 'story.json'}: {len(story['weeks'])} weeks in {story['timings']['total']} s")
    else:
        for path in plot(args.story, args.folder):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
