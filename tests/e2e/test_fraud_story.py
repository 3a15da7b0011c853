"""The fraud example's seamless-updates story end to end at the small scale, as
examples/fraud-detection/story.py tells it: real `dvc repro` (kernels under `nbops run`), real
promotions, one real `nbops serve … --shadow … --capture …` subprocess on 127.0.0.1 for the whole
story, `nbops.monitor` over its capture, and the switch to the retrained model under the load of
8 clients. The script also writes the data of the README's pictures; here they are drawn too."""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STORY = REPO / "examples" / "fraud-detection" / "story.py"
#: The stated error of the estimate before labels on stable weeks (|estimated − realized|).
ESTIMATE_ERROR = {"precision": 0.1, "recall": 0.2, "roc_auc": 0.15, "average_precision": 0.15}


def _story_module():
    spec = importlib.util.spec_from_file_location("fraud_story", STORY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_seamless_updates_story(tmp_path):
    story_module = _story_module()
    started = time.monotonic()
    story = story_module.run_story(tmp_path / "story", log=print)
    print(f"the story took {time.monotonic() - started:.0f} s: {story['timings']}")
    plan, weeks = story["plan"], {w["week"]: w for w in story["weeks"]}
    k = f"card_precision_at_{plan['k']}"
    first, challenger = story["promotions"][0]["version"], story["promotions"][1]["version"]
    assert first != challenger and story["promotions"][1]["to"] == "staging"
    assert story["promotions"][2] == {**story["promotions"][2], "to": "production", "version": challenger}

    before = [w for w in weeks.values() if not w["new_pattern"]]
    shifted = [w for w in weeks.values() if w["new_pattern"] and w["serving"] == first]
    assert before and len(shifted) >= 3
    # new weeks bring the new pattern: card testing only after the shift
    assert all(w["card_testing"] == 0 for w in before) and all(w["card_testing"] > 50 for w in shifted)

    # monitoring sees the drift: more of the champion's inputs drift once the pattern changed
    assert max(w["drift"]["share"] for w in shifted) > max(w["drift"]["share"] for w in before)
    assert all(w["drift"]["status"] in ("warn", "drift") for w in shifted[1:])

    # the labels arrive a week late, and the champion's live card precision drops
    assert all("live" in w for w in weeks.values()), "every week's labels arrived"
    baseline = max(w["live"]["champion"][k] for w in before)
    assert min(w["live"]["champion"][k] for w in shifted) < 0.6 * baseline
    # ... which monitoring flags against the metrics the champion was promoted with
    assert any(w["monitor"]["dropped"] for w in shifted)

    # retrained on the new weeks, the challenger is shadowed for a week before it serves: it
    # beats the champion on the same requests
    shadowed = [w for w in weeks.values() if w["shadow"] == challenger and w["serving"] == first]
    assert len(shadowed) == 1
    live = shadowed[0]["live"]
    assert live["shadow"]["version"] == challenger and live["champion"]["version"] == first
    assert live["shadow"][k] > live["champion"][k]
    assert shadowed[0]["monitor"]["shadow"]["paired"] == shadowed[0]["transactions"]

    # the switch under load: every answer good, both versions answered, the new one last
    switch = story["switch"]
    assert switch["clients"] == 8 and switch["failed"] == 0, switch["failures"]
    assert switch["by_version"].get(first, 0) > 0 and switch["by_version"].get(challenger, 0) > 0
    assert switch["timeline"][-1][2] == challenger
    assert weeks[plan["weeks"] - 1]["serving"] == challenger
    assert story["health"]["follow"]["switches"] == 1 and story["health"]["follow"]["failed"] is None

    # performance estimated before the labels, from the scores and the calibration the profile
    # records: within a stated error of the realized figures on the weeks whose pattern the
    # serving version was trained on (a week holds ~50 frauds before the shift: its own figures
    # vary by about ±0.1 from week to week) ...
    assert all(w["estimate"]["usable"] for w in weeks.values())
    stable = [w for w in weeks.values() if (w["serving"] == first and not w["new_pattern"]) or w["serving"] == challenger]
    assert len(stable) >= 2
    for w in stable:
        beside = w["monitor"]["estimate"]["metrics"]
        for name, error in ESTIMATE_ERROR.items():
            assert abs(beside[name]["error"]) <= error, (w["week"], name, beside[name])
    # ... and it falls in the week the fraud pattern changes, before any of its labels: fewer
    # compromised terminals leave fewer sure flags, so fewer of the flagged are expected to be fraud
    changed = min(w["week"] for w in weeks.values() if w["new_pattern"])
    before_change, at_change = weeks[changed - 1]["estimate"]["metrics"], weeks[changed]["estimate"]["metrics"]
    assert at_change["precision"]["estimated"] < 0.9 * before_change["precision"]["estimated"]
    assert at_change["average_precision"]["estimated"] < before_change["average_precision"]["estimated"]
    # what the scores cannot tell: card testing the champion scores low. Its recall, estimated as
    # before, lies far from the realized once the labels arrive, and monitoring says so
    for w in shifted:
        recall = w["monitor"]["estimate"]["metrics"]["recall"]
        assert recall["within"] is False and recall["realized"] < recall["estimated"] - 0.3, (w["week"], recall)

    # the README's pictures, from this run's story.json
    pytest.importorskip("matplotlib")
    pictures = story_module.plot(tmp_path / "story" / "story.json", tmp_path / "pictures")
    assert [p.name for p in pictures] == ["story.png", "switch.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000 for p in pictures)
