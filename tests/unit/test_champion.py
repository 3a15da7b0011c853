"""The champion gate compares with the champion's figures on the challenger's own data when a
stage measured them (nbops.compare_champion) for the version the target stage holds now."""

from pathlib import Path

from nbops.promotion import gates
from nbops.pipeline import record


def _note(version: str, metrics: dict, stage: str = "staging") -> dict:
    output = {"output_type": "display_data", "metadata": {}, "data": {record.RECORD_MIME: {
        "kind": "champion", "stage": "evaluate", "name": "m", "registry_stage": stage, "version": version, "metrics": metrics}}}
    return {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [output]}]}


def _candidate(report: dict | None, champion_metrics: dict, metrics: dict) -> gates.Candidate:
    return gates.Candidate(
        root=Path("."), name="m", target="staging", stages={}, lock={}, model_stage=None, model_record={},
        model_manifest=None, reports={"evaluate": report}, metrics=metrics, metric_stages={k: "evaluate" for k in metrics},
        involved=[], config={"thresholds": {"average_precision": ">= 0.5"}, "tolerance": 0.01}, git=None,
        champion={"version": "0.2.0", "metrics": champion_metrics},
    )


def test_same_data_figures_replace_the_champions_own():
    # on its own (older) weeks the champion had 0.90; on this stage's weeks it scores 0.60
    candidate = _candidate(_note("0.2.0", {"average_precision": 0.60}), {"average_precision": 0.90}, {"average_precision": 0.65})
    assert gates.champion_gate(candidate) == []
    worse = _candidate(_note("0.2.0", {"average_precision": 0.70}), {"average_precision": 0.50}, {"average_precision": 0.65})
    [failure] = gates.champion_gate(worse)
    assert "0.65 is worse than staging's 0.7 (version 0.2.0, scored on the same data by stage 'evaluate')" in failure


def test_a_comparison_with_another_version_falls_back_and_says_so():
    stale = _candidate(_note("0.1.0", {"average_precision": 0.60}), {"average_precision": 0.90}, {"average_precision": 0.65})
    [failure] = gates.champion_gate(stale)
    assert "its own test data" in failure
    assert any("compared with staging's version 0.1.0, but staging now holds 0.2.0" in note for note in stale.notes)
    other_stage = _candidate(_note("0.2.0", {"average_precision": 0.6}, stage="production"), {"average_precision": 0.9}, {"average_precision": 0.65})
    assert "its own test data" in gates.champion_gate(other_stage)[0]
