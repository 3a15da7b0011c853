"""What the promotion card and the gates' details say (JupyterLab showed a failed gate reading as
a true statement, a refused dry run claiming a dirty lineage, no registry named: issue 18). The
card's look in a real JupyterLab is tests/e2e/test_jupyterlab.py's."""

from __future__ import annotations

from pathlib import Path

from nbops.core.dvc import GitState, Stage
from nbops.promotion import gates
from nbops.promotion.cards import promotion_card
from nbops.promotion.promote import PromotionResult, lineage_note


def candidate(thresholds: dict, metrics: dict, target: str = "staging", dirty: bool = False) -> gates.Candidate:
    stage = Stage("evaluate", "nbops run notebooks/evaluate.py")
    return gates.Candidate(
        root=Path("."), name="m", target=target, stages={"evaluate": stage}, lock={}, model_stage=stage,
        model_record={}, model_manifest=None, reports={}, metrics=metrics, metric_stages={k: "evaluate" for k in metrics},
        involved=["evaluate"], config={"thresholds": thresholds}, git=GitState("abc123", dirty, ["params.yaml"] if dirty else []),
    )


def test_a_failed_threshold_does_not_read_as_a_true_statement():
    c = candidate({"roc_auc": ">= 0.999", "recall": ">= 0.3"}, {"roc_auc": 0.972761, "recall": 0.5})
    failures = gates.thresholds_gate(c)
    assert c.details["thresholds"] == ["roc_auc 0.972761, needs ≥ 0.999 (stage 'evaluate')",
                                       "recall 0.5 ≥ 0.3 (stage 'evaluate')"]
    assert failures == ["threshold roc_auc >= 0.999: roc_auc is 0.972761 (recorded by stage 'evaluate' in metrics/evaluate.json)"]


def result(c: gates.Candidate, *, ok: bool, dry_run: bool) -> PromotionResult:
    gate = gates.GateResult("thresholds", "pipeline", [] if ok else ["threshold roc_auc >= 0.999: roc_auc is 0.97"])
    return PromotionResult("m", "staging", "0.2.0", dry_run, [gate], {"roc_auc": 0.97}, registry="/srv/registry")


def test_a_dirty_lineage_is_said_in_the_tense_of_what_happened():
    c = candidate({}, {}, dirty=True)
    assert gates.clean_tree_gate(c) == [] and c.dirty_lineage and c.notes == []
    published, dry, refused = (lineage_note(c, result(c, ok=ok, dry_run=dry)) for ok, dry in
                               ((True, False), (True, True), (False, True)))
    assert published == ["the tree has uncommitted pipeline changes: the version's lineage is marked dirty"]
    assert dry == ["the tree has uncommitted pipeline changes: the version's lineage would be marked dirty"]
    assert refused == ["the tree has uncommitted pipeline changes: a version promoted from it would have its lineage marked dirty"]
    clean = candidate({}, {})
    gates.clean_tree_gate(clean)
    assert lineage_note(clean, result(clean, ok=True, dry_run=False)) == []


def test_the_card_names_the_registry_and_what_was_written_there():
    c = candidate({}, {})
    refused = promotion_card(result(c, ok=False, dry_run=True))
    assert "dry run: nothing was written to <code>/srv/registry</code>" in refused and "refused" in refused
    published = result(c, ok=True, dry_run=False)
    published.path, published.wheel = "/srv/registry/m/0.2.0", "/srv/registry/m/0.2.0/m-0.2.0-py3-none-any.whl"
    assert "Registry: <code>/srv/registry</code><br>Package: <code>/srv/registry/m/0.2.0</code>" in promotion_card(published)
