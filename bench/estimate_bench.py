"""nbops' performance estimate before labels against NannyML's CBPE, on the same data.

    python bench/estimate_bench.py [--rounds 3] [--workdir /tmp/nbops-estimate-bench]

Two cases, each a reference (labelled scores of rows the model was not trained on: what the
calibration is fitted on) and windows of scores without labels:

* simulated: raw scores r ~ Beta(1, 6) and P(positive | r) = r³ (the truth is known; the model
  overstates its risk), 60,000 reference rows; ten windows of 20,000 rows, five of them shifted
  (r ~ Beta(2, 5): covariate shift, the same relation), threshold 0.4;
* fraud stream: the fraud example's small world with its story's pattern shift on day 77, the
  project's model (boosted trees, 50 rounds) trained on weeks 5–7, its out-of-fold scores there
  (three one-week blocks) as the reference, the threshold chosen by cost on them, and weeks 8–17
  as the windows — weeks 11 on are after the shift (concept drift: what no score-only estimate sees).

For every window: precision and recall at the threshold, ROC AUC and average precision as nbops
estimates them (nbops/monitoring/estimate.py: the profile's isotonic map and per-bin sums), as
NannyML 0.13.1's CBPE estimates them (isotonic calibration, fitted on the same reference), and
as realized from the labels. Printed side by side, with each estimator's mean absolute error
against the realized figures on the windows before the shift, and how far the two estimates are
from each other; then the time of each (nbops: the calibration built once and each window
estimated from its scores; NannyML: CBPE fitted once and each window estimated), medians of
`--rounds` rounds and their ratio.

NannyML runs in its own virtual environment, bench/.venv-nannyml (python3 -m venv
bench/.venv-nannyml && bench/.venv-nannyml/bin/pip install nannyml==0.13.1; it needs
Python < 3.13 and brings ~60 packages: a bench's dependency, never nbops'); its usage
telemetry is turned off (NML_DISABLE_USAGE_LOGGING=1). Without it, only nbops' side is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NANNYML_PYTHON = HERE / ".venv-nannyml" / "bin" / "python"
EXAMPLE = HERE.parent / "examples" / "fraud-detection"
METRICS = ("precision", "recall", "roc_auc", "average_precision")

NANNYML_SCRIPT = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")  # "the resulting number of chunks is too low": one window is one chunk here
import pandas as pd
import nannyml as nml
workdir, rounds = sys.argv[1], int(sys.argv[2])
spec = json.load(open(f"{workdir}/case.json"))
reference = pd.read_csv(f"{workdir}/reference.csv")
windows = [pd.read_csv(f"{workdir}/window-{i}.csv") for i in range(spec["windows"])]
times, estimates = [], None
for _ in range(rounds):
    started = time.perf_counter()
    cbpe = nml.CBPE(metrics=["precision", "recall", "roc_auc", "average_precision"], y_pred_proba="score", y_pred="decision",
                    y_true="label", problem_type="classification_binary", chunk_number=1)
    cbpe.fit(reference)
    found = []
    for window in windows:
        frame = cbpe.estimate(window).to_df(multilevel=False)
        frame = frame[frame["chunk_period"] == "analysis"]  # the results hold the reference chunk too
        found.append({m: float(frame[f"{m}_value"].iloc[0]) for m in ["precision", "recall", "roc_auc", "average_precision"]})
    times.append(time.perf_counter() - started)
    estimates = found
print(json.dumps({"times": times, "estimates": estimates, "version": nml.__version__}))
"""


@dataclasses.dataclass
class Case:
    name: str
    reference_scores: object
    reference_labels: object
    threshold: float
    windows: list  # (label, scores, labels, before the shift)


def simulated_case():
    import numpy as np

    rng = np.random.default_rng(0)

    def draw(n, a, b):
        r = rng.beta(a, b, n)
        return r, rng.random(n) < r ** 3

    reference = draw(60_000, 1.0, 6.0)
    windows = []
    for i in range(10):
        shifted = i >= 5
        scores, labels = draw(20_000, 2.0 if shifted else 1.0, 5.0 if shifted else 6.0)
        windows.append((f"{'shifted' if shifted else 'same'} {i % 5}", scores, labels, True))
    return Case("simulated (P = r³)", reference[0], reference[1], 0.4, windows)


def fraud_case():
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(EXAMPLE))
    from fraudkit import features, simulate

    import nbops

    world = dataclasses.replace(simulate.WORLDS["small"], n_days=7 * 18)
    rules = simulate.FraudRules()
    shift = {"terminals_per_day": 0.5, "amount_factor": 2.0, "testing_cards_per_day": 15.0}  # story.py's Plan.shift
    sim = simulate.simulate(world, rules, seed=0, shift_day=77, shifted=rules.updated(shift))
    frame = features.add_features(sim.transactions)
    frame["week"] = frame["tx_time_days"] // 7
    names = features.feature_names()
    train = frame[frame["week"].between(5, 7)]

    def model():
        return HistGradientBoostingClassifier(learning_rate=0.1, max_iter=50, max_leaf_nodes=31, class_weight="balanced",
                                              early_stopping=False, random_state=0)

    with threadpool_limits(1):
        oof = cross_val_predict(model(), train[names], train["tx_fraud"], groups=train["week"], cv=LeaveOneGroupOut(),
                                method="predict_proba")[:, 1]
        fitted = model().fit(train[names], train["tx_fraud"])
        threshold = nbops.choose_threshold(train["tx_fraud"], oof, review_cost=3, miss_cost=150)["threshold"]
        windows = []
        for week in range(8, 18):
            rows = frame[frame["week"] == week]
            windows.append((f"week {week}", fitted.predict_proba(rows[names])[:, 1], rows["tx_fraud"].to_numpy().astype(bool),
                            7 * week + 6 < 77))
    return Case("fraud stream (story)", oof, train["tx_fraud"].to_numpy().astype(bool), threshold,
                [(w[0], np.asarray(w[1]), w[2], w[3]) for w in windows])


def ours(case: Case) -> list[dict]:
    from nbops.monitoring.calibration import build_calibration
    from nbops.monitoring.estimate import ScoreBins, estimate

    calibration = build_calibration(case.reference_labels, case.reference_scores, threshold=case.threshold)
    found = []
    for _, scores, _, _ in case.windows:
        bins = ScoreBins(calibration)
        bins.add(scores)
        result = estimate(bins, {"threshold": case.threshold}, tolerance=0.05)
        found.append({m: result["metrics"][m]["estimated"] for m in METRICS})
    return found


def realized(case: Case) -> list[dict]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = []
    for _, scores, labels, _ in case.windows:
        flagged = scores >= case.threshold
        out.append({"precision": float(labels[flagged].mean()), "recall": float(labels[flagged].sum() / labels.sum()),
                    "roc_auc": float(roc_auc_score(labels, scores)), "average_precision": float(average_precision_score(labels, scores))})
    return out


def nannyml(case: Case, workdir: Path, rounds: int) -> dict | None:
    import pandas as pd

    if not NANNYML_PYTHON.exists():
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"score": case.reference_scores, "label": case.reference_labels.astype(int),
                  "decision": (case.reference_scores >= case.threshold).astype(int)}).to_csv(workdir / "reference.csv", index=False)
    for i, (_, scores, _, _) in enumerate(case.windows):
        pd.DataFrame({"score": scores, "decision": (scores >= case.threshold).astype(int)}).to_csv(workdir / f"window-{i}.csv", index=False)
    (workdir / "case.json").write_text(json.dumps({"windows": len(case.windows)}))
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    done = subprocess.run([str(NANNYML_PYTHON), "-c", NANNYML_SCRIPT, str(workdir), str(rounds)], capture_output=True, text=True,
                          env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"NannyML failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(case: Case, workdir: Path, rounds: int = 1) -> dict:
    """Both estimators on one case: per-window estimates, realized figures, errors and times."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        mine = ours(case)
        times.append(time.perf_counter() - started)
    theirs = nannyml(case, workdir, rounds)
    truth = realized(case)
    stable = [i for i, window in enumerate(case.windows) if window[3]]
    summary = {}
    for m in METRICS:
        summary[m] = {"nbops_error": statistics.mean(abs(mine[i][m] - truth[i][m]) for i in stable)}
        if theirs:
            summary[m]["nannyml_error"] = statistics.mean(abs(theirs["estimates"][i][m] - truth[i][m]) for i in stable)
            summary[m]["between"] = statistics.mean(abs(mine[i][m] - theirs["estimates"][i][m]) for i in range(len(mine)))
    return {"case": case.name, "windows": [w[0] for w in case.windows], "nbops": mine, "nannyml": theirs and theirs["estimates"],
            "realized": truth, "summary": summary, "nbops_seconds": times, "nannyml_seconds": theirs and theirs["times"],
            "nannyml_version": theirs and theirs["version"]}


def show(result: dict) -> None:
    print(f"\n### {result['case']}\n")
    header = " | ".join(f"{m}: nbops / NannyML / realized" for m in METRICS)
    print(f"| window | {header} |\n|---|" + "---|" * len(METRICS))
    for i, window in enumerate(result["windows"]):
        cells = []
        for m in METRICS:
            theirs = f"{result['nannyml'][i][m]:.3f}" if result["nannyml"] else "–"
            cells.append(f"{result['nbops'][i][m]:.3f} / {theirs} / {result['realized'][i][m]:.3f}")
        print(f"| {window} | " + " | ".join(cells) + " |")
    print("\nmean absolute error against the realized figures (windows before any shift of the relation):")
    for m, s in result["summary"].items():
        extra = f", NannyML {s['nannyml_error']:.4f}; nbops − NannyML {s['between']:.4f} on every window" if "nannyml_error" in s else ""
        print(f"- {m}: nbops {s['nbops_error']:.4f}{extra}")
    ours_median = statistics.median(result["nbops_seconds"])
    line = f"time for {len(result['windows'])} windows (median of {len(result['nbops_seconds'])}): nbops {ours_median:.3f} s"
    if result["nannyml_seconds"]:
        theirs_median = statistics.median(result["nannyml_seconds"])
        line += f", NannyML {result['nannyml_version']} {theirs_median:.3f} s ({theirs_median / ours_median:.1f}× nbops')"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nbops-estimate-bench"))
    args = parser.parse_args()
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    if not NANNYML_PYTHON.exists():
        print("(no bench/.venv-nannyml: NannyML's side skipped)")
    for make in (simulated_case, fraud_case):
        case = make()
        show(compare(case, args.workdir / case.name.split()[0], args.rounds))
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
