"""The fraud example's story.py without its processes: a delivered batch is one the validate
stage accepts, and the committed story.json draws the README's pictures. (The story itself, with
DVC, kernels and a server: tests/e2e/test_fraud_story.py.)"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import pandas as pd
import pytest

from .conftest import FRAUD_EXAMPLE


@pytest.fixture(scope="module")
def story():
    spec = importlib.util.spec_from_file_location("fraud_story", FRAUD_EXAMPLE / "story.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_delivered_batch_passes_the_checks_and_holds_the_days_so_far(story, tmp_path):
    from fraudkit import checks

    plan = dataclasses.replace(story.Plan(), weeks=4, first_live_week=1, shift_day=14, retrain_after_week=2, promote_after_week=3)
    sim, featured = story.simulate_stream(plan)
    assert (featured.loc[featured["tx_time_days"] >= 14, "tx_fraud_scenario"] == 4).any()
    assert not (featured.loc[featured["tx_time_days"] < 14, "tx_fraud_scenario"] == 4).any()
    source = story.deliver(sim, 20, tmp_path / "incoming")
    assert source == "../incoming/days-000-020"
    folder = tmp_path / "incoming" / "days-000-020"
    batch = json.loads((folder / "batch.json").read_text())
    transactions = pd.read_parquet(folder / "transactions.parquet")
    assert transactions["tx_time_days"].max() == 20 and transactions["tx_time_days"].min() == 0
    assert checks.findings(transactions, checks.Batch(
        start=pd.Timestamp(batch["start"]), taken_in=pd.Timestamp.now(),  # taken in now, as generate does
        customer_ids=set(sim.customers["customer_id"]), terminal_ids=set(sim.terminals["terminal_id"]),
    )) is None


def test_a_plan_out_of_order_is_refused(story):
    with pytest.raises(ValueError, match="retrain_after_week < promote_after_week"):
        story.Plan(retrain_after_week=16, promote_after_week=15)


def test_the_committed_story_draws_the_readme_pictures(story, tmp_path):
    pytest.importorskip("matplotlib")
    committed = FRAUD_EXAMPLE / "docs" / "story.json"
    paths = story.plot(committed, tmp_path)
    assert [p.name for p in paths] == ["story.png", "switch.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    readme = (FRAUD_EXAMPLE / "README.md").read_text()
    assert "(docs/story.png)" in readme and "(docs/switch.png)" in readme
    assert (FRAUD_EXAMPLE / "docs" / "story.png").exists() and (FRAUD_EXAMPLE / "docs" / "switch.png").exists()
