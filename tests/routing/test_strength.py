"""Tier calibration (routing/strength.py): what the cascade knows about each tier."""

from __future__ import annotations

import json

import pytest

from routerllm.exceptions import RoutingError
from routerllm.routing.strength import PRIOR_TASKS, ChainCalibration, CrossFitted, Fixed, Observation


def observations(n: int = 40) -> list[Observation]:
    out = []
    for i in range(n):
        tid = f"T/{i}"
        lone = i % 4 == 0
        out.append(Observation(tid, "small", first_visible_pass=i % 2 == 0, first_right=i % 3 == 0,
                               state="lone" if lone else "failed", state_right=lone and i % 8 == 0))
        out.append(Observation(tid, "large", first_visible_pass=True, first_right=i % 5 != 0))
    return out


def test_fit_counts_states_and_later_tiers() -> None:
    cal = ChainCalibration.fit(observations(), ["small", "large"])
    small, large = cal.tiers["small"], cal.tiers["large"]
    assert small.tasks == large.tasks == 40
    assert small.visible_pass_rate == 0.5 and large.visible_pass_rate == 1.0
    assert small.accuracy == pytest.approx(14 / 40) and large.accuracy == pytest.approx(32 / 40)
    assert small.states == {"lone": [10, 5], "failed": [30, 0]}
    lone_ids = [i for i in range(40) if i % 4 == 0]
    assert small.after["lone"]["large"] == [10, sum(i % 5 != 0 for i in lone_ids)]


def test_estimates_are_smoothed_toward_the_tier() -> None:
    cal = ChainCalibration.fit(observations(), ["small", "large"])
    acc = cal.tiers["small"].accuracy
    assert cal.expected("small", "lone") == pytest.approx((5 + PRIOR_TASKS * acc) / (10 + PRIOR_TASKS))
    assert cal.expected("small", "failed") == pytest.approx(0.0)  # a failed step leans on 0, not on the tier
    assert cal.expected("small", "conflict") == pytest.approx(acc)  # never seen: the tier's accuracy
    after = cal.tiers["small"].after["lone"]["large"]
    assert cal.expected_after("large", "small", "lone") == pytest.approx(
        (after[1] + PRIOR_TASKS * cal.tiers["large"].accuracy) / (after[0] + PRIOR_TASKS))
    assert cal.expected("medium", "lone") is None and cal.expected_after("medium", "small", "lone") is None


def test_without_labels_the_visible_pass_rate_is_the_strength() -> None:
    unlabelled = [Observation(o.task_id, o.tier, o.first_visible_pass, None, o.state, None) for o in observations()]
    cal = ChainCalibration.fit(unlabelled, ["small", "large"])
    assert cal.tiers["small"].accuracy is None and cal.strength("small") == 0.5
    assert cal.expected("small", "lone") == 0.5 and cal.expected_after("large", "small", "lone") == 1.0
    assert cal.expected("small", "failed") == 0.0


def test_file_round_trip_and_errors(tmp_path) -> None:
    cal = ChainCalibration.fit(observations(), ["small", "large"], source="test")
    again = ChainCalibration.load(cal.save(tmp_path / "c.json"))
    assert again.tiers == cal.tiers and again.source == "test"
    assert again.expected("small", "lone") == cal.expected("small", "lone")
    with pytest.raises(RoutingError, match="routerllm calibrate"):
        ChainCalibration.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(RoutingError, match="not a routerllm tier calibration"):
        ChainCalibration.load(tmp_path / "other.json")


def test_cross_fitting_never_calibrates_a_task_on_itself() -> None:
    obs = observations(50)
    fitted = CrossFitted.fit(obs, ["small", "large"], folds=5, seed=0)
    assert sorted(set(fitted.fold_of.values())) == [0, 1, 2, 3, 4]
    for tid, fold in fitted.fold_of.items():
        cal = fitted.for_task(tid)
        assert tid not in cal.task_ids and len(cal.task_ids) == 40
    assert fitted.for_task("not in the run") is fitted.overall and len(fitted.overall.task_ids) == 50
    assert Fixed().for_task("T/1").tiers == {}  # no calibration: the cascade follows the chain's order
