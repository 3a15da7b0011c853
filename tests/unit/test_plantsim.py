"""The example's plant simulator (plantsim/): the AI4I 2020 rules, day-by-day determinism, the
shifts a real plant sees, the batch folder and `python -m plantsim`."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plantsim.__main__ import main
from plantsim.ai4i import AI4I_COLUMNS, KNOBS, PlantError, Scenario, Shift, generate_day, parse_scenario
from plantsim.batches import in_window, list_batches, next_days, read_batch, simulate

from ..conftest import REPO, real_data_csv

START = dt.date(2024, 1, 1)


def days(first: int, count: int) -> list[dt.date]:
    return [START + dt.timedelta(days=first + i) for i in range(count)]


def month(knobs_by_day=None, n=334, seed=11) -> pd.DataFrame:
    return pd.concat([generate_day(d, n, seed, knobs_by_day(d) if knobs_by_day else None) for d in days(0, 30)])


def test_a_day_follows_the_ai4i_2020_rules():
    frame = month()
    assert list(frame.columns) == AI4I_COLUMNS and frame["UDI"].is_unique
    assert frame["Type"].value_counts(normalize=True).round(2).to_dict() == {"L": 0.6, "M": 0.3, "H": 0.1}
    assert frame["Air temperature [K]"].mean() == pytest.approx(300, abs=0.05)
    assert frame["Air temperature [K]"].std() == pytest.approx(2, abs=0.05)
    assert (frame["Process temperature [K]"] - frame["Air temperature [K]"]).mean() == pytest.approx(10, abs=0.05)
    assert frame["Torque [Nm]"].min() > 0 and frame["Torque [Nm]"].mean() == pytest.approx(40, abs=0.5)
    assert frame["Rotational speed [rpm]"].mean() == pytest.approx(1539, abs=15)  # the published file: 1538.8
    power = frame["Torque [Nm]"] * frame["Rotational speed [rpm]"] * 2 * np.pi / 60
    diff = frame["Process temperature [K]"] - frame["Air temperature [K]"]
    assert (frame["HDF"] == ((diff < 8.6) & (frame["Rotational speed [rpm]"] < 1380))).all()
    assert (frame["PWF"] == ((power < 3500) | (power > 9000))).all()
    limit = frame["Type"].map({"L": 11000, "M": 12000, "H": 13000})
    assert (frame["OSF"] == (frame["Tool wear [min]"] * frame["Torque [Nm]"] > limit)).all()
    assert (frame["Machine failure"] == frame[["TWF", "HDF", "PWF", "OSF", "RNF"]].max(axis=1)).all()
    assert frame.loc[frame["TWF"] == 1, "Tool wear [min]"].between(200, 245).all()
    # wear grows by 5 / 3 / 2 minutes for H / M / L until the tool is replaced
    one = generate_day(START, 334, 11)
    step = one["Tool wear [min]"].diff().iloc[1:]
    grew = step > 0
    assert (step[grew] == one["Type"].shift()[1:][grew].map({"H": 5, "M": 3, "L": 2})).all()
    assert 0.02 < frame["Machine failure"].mean() < 0.06  # the published file: 3.4 %


def test_a_day_depends_on_seed_and_date_alone(tmp_path):
    simulate(tmp_path / "month", days(0, 30), rows_per_day=50, seed=3)
    simulate(tmp_path / "one", days(17, 1), rows_per_day=50, seed=3)
    name = f"{days(17, 1)[0]}.csv"
    assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "month" / name).read_bytes()
    assert not generate_day(START, 50, 3).equals(generate_day(START, 50, 4))
    # a batch that arrived is never rewritten, whatever the settings
    before = (tmp_path / "one" / name).read_bytes()
    assert simulate(tmp_path / "one", days(17, 2), rows_per_day=10, seed=9) == [tmp_path / "one" / f"{days(18, 1)[0]}.csv"]
    assert (tmp_path / "one" / name).read_bytes() == before


def test_a_sensor_offset_changes_the_readings_not_the_machine():
    base = generate_day(START, 334, 11)
    knobs = {**KNOBS, "sensor_offset": {"Air temperature [K]": 2.0, "Rotational speed [rpm]": -30}}
    shifted = generate_day(START, 334, 11, knobs)
    assert np.allclose(shifted["Air temperature [K]"], base["Air temperature [K]"] + 2.0)
    assert (shifted["Rotational speed [rpm]"] == base["Rotational speed [rpm]"] - 30).all()
    assert shifted[["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"]].equals(
        base[["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"]]
    )


def test_shifts_a_real_plant_sees():
    scenario = parse_scenario({"shifts": [
        {"from": 10, "to": 19, "ramp": True, "tool_life": [280, 320]},
        {"from": 10, "type_mix": {"L": 0.2, "M": 0.3, "H": 0.5}},
        {"from": "2024-01-21", "hdf_min_temp_diff": 9.5, "rnf_rate": 0.02},
    ]}, START, "drift.yaml")
    before, ramp, after = (pd.concat([generate_day(d, 334, 11, scenario.knobs(d)) for d in days(a, 10)])
                           for a in (0, 10, 20))
    # tool wear creeps up during the ramp, then stays up; tools are changed later
    assert before["Tool wear [min]"].mean() < ramp["Tool wear [min]"].mean()
    assert scenario.knobs(days(10, 1)[0])["tool_life"] == pytest.approx([208, 248])  # 1/10 of the way
    assert scenario.knobs(days(19, 1)[0])["tool_life"] == [280, 320]
    assert scenario.knobs(days(20, 1)[0])["tool_life"] == [200.0, 240.0]  # `to`: the shift ended
    # the mix moves to H, and stays (no `to`)
    assert after["Type"].value_counts(normalize=True)["H"] == pytest.approx(0.5, abs=0.04)
    assert before["Type"].value_counts(normalize=True)["H"] == pytest.approx(0.1, abs=0.03)
    # heat dissipation and random failures become more frequent
    assert after["HDF"].sum() > 2 * before["HDF"].sum()
    assert after["RNF"].sum() > 5 * max(before["RNF"].sum(), 1)
    assert Scenario().knobs(START) == KNOBS


def test_the_shipped_drift_scenario_parses_and_starts_after_the_first_month():
    import yaml

    scenario = parse_scenario(yaml.safe_load((REPO / "plantsim/scenarios/drift.yaml").read_text()), START)
    assert min(s.first for s in scenario.shifts) > START + dt.timedelta(days=29)
    assert scenario.knobs(START + dt.timedelta(days=29)) == KNOBS


@pytest.mark.parametrize("shift, message", [
    ({"from": 1, "tool_lif": [1, 2]}, "unknown knob 'tool_lif'; knobs: type_mix"),
    ({"from": 1, "tool_life": [300, 200]}, "tool_life is a range \\[low, high\\]"),
    ({"from": 1, "type_mix": {"X": 1}}, "type_mix maps \\['H', 'L', 'M'\\] to numbers"),
    ({"from": 1, "sensor_offset": {"Humidity": 1}}, "sensor_offset maps readings to offsets"),
    ({"from": 1, "rnf_rate": 2}, "rnf_rate is a probability"),
    ({"from": 5, "to": 2, "rnf_rate": 0.1}, "`to` \\(2024-01-03\\) is before `from` \\(2024-01-06\\)"),
    ({"from": "soon", "rnf_rate": 0.1}, "'soon' is neither a day number nor a date"),
    ({"to": 3, "rnf_rate": 0.1}, "give at least `from:`"),
    ({"from": 1}, "no knob to change"),
])
def test_scenario_mistakes_are_named(shift, message):
    with pytest.raises(PlantError, match=r"^s\.yaml: shift 1: .*" + message):
        parse_scenario({"shifts": [shift]}, START, "s.yaml")


def test_the_batch_folder(tmp_path):
    simulate(tmp_path, days(0, 5), rows_per_day=10, seed=1)
    found = list_batches(tmp_path)
    assert [b.day for b in found] == days(0, 5)
    assert [b.day for b in in_window(found, days(3, 1)[0], 2)] == days(2, 2)
    assert next_days(tmp_path, START) == days(5, 1)
    assert next_days(tmp_path, START, count=3) == days(5, 3)
    assert next_days(tmp_path, START, until=days(7, 1)[0]) == days(5, 3)
    assert next_days(tmp_path / "empty", START, count=2) == days(0, 2)
    assert list(read_batch(found[0]).columns) == AI4I_COLUMNS
    (tmp_path / "notes.txt").write_text("ignored")
    assert len(list_batches(tmp_path)) == 5
    (tmp_path / "jan-6.csv").write_text("x")
    with pytest.raises(PlantError, match="jan-6.csv: a batch is named after its day, YYYY-MM-DD.csv"):
        list_batches(tmp_path)
    (tmp_path / "jan-6.csv").unlink()
    (tmp_path / "2024-01-09.csv").write_text("UDI,Type\n1,L\n")
    with pytest.raises(PlantError, match="2024-01-09.csv: lacks the AI4I 2020 columns"):
        read_batch(list_batches(tmp_path)[-1])


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(
        "plant:\n  start: '2024-03-01'\n  rows_per_day: 20\n  seed: 5\n  initial_days: 4\ningest:\n  window_days: 3\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def names(project: Path) -> list[str]:
    return sorted(p.stem for p in (project / "data/batches").glob("*.csv"))


def test_cli_seeds_an_empty_folder_then_adds_days(project, capsys):
    assert main(["seed"]) == 0
    assert names(project) == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    assert "wrote 4 batches to data/batches: 2024-03-01 … 2024-03-04" in capsys.readouterr().out
    seeded = (project / "data/batches/2024-03-02.csv").read_bytes()
    assert main(["seed"]) == 0 and "nothing to seed" in capsys.readouterr().out
    assert main(["simulate"]) == 0 and names(project)[-1] == "2024-03-05"
    assert main(["simulate", "--days", "2", "--scenario", str(REPO / "plantsim/scenarios/drift.yaml")]) == 0
    assert main(["simulate", "--until", "2024-03-09"]) == 0
    assert names(project)[-3:] == ["2024-03-07", "2024-03-08", "2024-03-09"]
    assert "wrote 2 batches to data/batches: 2024-03-08, 2024-03-09" in capsys.readouterr().out.splitlines()[-1]
    assert (project / "data/batches/2024-03-02.csv").read_bytes() == seeded
    assert len(pd.read_csv(project / "data/batches/2024-03-09.csv")) == 20


def test_cli_errors_are_one_line(project, capsys):
    (project / "bad.yaml").write_text("shifts:\n  - from: 1\n    torque: 3\n")
    assert main(["simulate", "--scenario", "bad.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plantsim: error: bad.yaml: shift 1: unknown knob 'torque'") and err.count("\n") == 1
    assert main(["simulate", "--until", "2024-13-01"]) == 1
    assert "--until '2024-13-01': give a date as YYYY-MM-DD" in capsys.readouterr().err
    assert main(["replay", "missing.csv"]) == 1
    assert "missing.csv: no such file" in capsys.readouterr().err
    (project / "params.yaml").write_text("plant:\n  rows_per_dya: 3\n")
    assert main(["seed"]) == 1
    assert "plant.rows_per_dya is not a plant setting" in capsys.readouterr().err


def test_replay_splits_a_csv_with_a_bom_into_days(project, capsys):
    frame = generate_day(START, 50, 1)
    (project / "real.csv").write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False).encode())
    assert main(["replay", "real.csv", "--days", "1"]) == 0
    assert names(project) == ["2024-03-01"]
    assert main(["replay", "real.csv"]) == 0  # the rest: 50 rows at 20 a day make 3 days, the last short
    assert names(project) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    replayed = pd.concat(pd.read_csv(p) for p in sorted((project / "data/batches").glob("*.csv")))
    assert replayed.reset_index(drop=True).equals(frame)
    assert main(["replay", "real.csv", "--days", "1"]) == 0
    assert "wrote 0 batches" in capsys.readouterr().out.splitlines()[-1]  # the file holds no fourth day


@pytest.mark.skipif(real_data_csv() is None, reason="the AI4I 2020 CSV (../shared/data/ai4i2020.csv) is not here")
def test_replay_of_the_real_data(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "plantsim", "replay", str(real_data_csv()), "--out", str(tmp_path), "--params", "none.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 30 batches to {tmp_path}: 2024-01-01 … 2024-01-30"
    first = pd.read_csv(tmp_path / "2024-01-01.csv")
    assert len(first) == 334 and first["UDI"].iloc[0] == 1
    assert sum(len(pd.read_csv(p)) for p in tmp_path.glob("*.csv")) == 10000
