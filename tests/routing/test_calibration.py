"""Logistic regression, threshold calibration, cross-validation and `routerllm calibrate`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routerllm.cli import main
from routerllm.routing.calibration import (
    LearnedRouterModel,
    auc,
    fit_logistic,
    fit_rows,
    folds,
    threshold_for_share,
)


def test_logistic_regression_recovers_the_signal() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(float)
    w, b = fit_logistic(x, y, l2=0.1)
    assert w[0] > 2 and w[1] < -1 and abs(w[2]) < 0.5
    p = 1 / (1 + np.exp(-(x @ w + b)))
    assert ((p > 0.5) == y).mean() > 0.9


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_threshold_sends_the_target_share_large(share: float) -> None:
    scores = np.random.default_rng(1).random(200)
    th = threshold_for_share(scores, share)
    assert abs((scores < th).mean() - share) <= 0.005


def test_folds_are_disjoint_and_cover() -> None:
    ids = [f"T/{i}" for i in range(37)]
    parts = folds(ids, k=5)
    flat = sorted(i for p in parts for i in p)
    assert flat == list(range(37))


def test_save_load_roundtrip(tmp_path) -> None:
    rows = [[float(i), float(i % 3)] for i in range(20)]
    labels = [i % 2 == 0 for i in range(20)]
    model = fit_rows(["a", "b"], rows, labels, 0.5)
    path = model.save(tmp_path / "m.json")
    again = LearnedRouterModel.load(path)
    assert np.allclose(again.scores_from_rows(rows), model.scores_from_rows(rows))
    assert auc(np.array([0.9, 0.1]), [True, False]) == 1.0


def test_calibrate_command_on_recorded_outcomes(tmp_path) -> None:
    from tests.routing.conftest import REPO, recorded_file

    recorded_file("Mistral-7B-Instruct-v0.1")
    out = tmp_path / "router.json"
    with pytest.raises(SystemExit) as done:
        main(["calibrate", "--config", str(REPO / "configs" / "replay_config.yaml"), "--target-large-share", "0.5",
              "--output", str(out)])
    assert done.value.code in (0, None)
    data = json.loads(out.read_text())
    assert data["format"] == "routerllm-learned-router/1"
    assert data["trained_on"]["tasks"] == 164 and data["target_large_share"] == 0.5
    cv = data["cross_validation"]
    assert 0.35 < cv["large_share"] < 0.65 and cv["auc"] is not None
