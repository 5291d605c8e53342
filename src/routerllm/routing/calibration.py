"""Training and calibrating the `learned` router: logistic regression on prompt features (numpy),
its threshold set so that a target share of tasks goes to the large tier, k-fold cross-validation
(a task is never scored by a model trained on it), and the JSON file `routerllm calibrate` writes.

    model = fit_router(prompts, entry_points, small_passed, target_large_share=0.5)
    model.save("results/router.json");  LearnedRouterModel.load(...)
    p = model.score(prompt, entry_point)      # predicted probability that the small tier succeeds
    model.goes_large(p)                       # p < model.threshold

The threshold is the `target_large_share` quantile of the training prompts' scores: the prompts
least likely to be solved by the small tier go to the large one. It is set on training data only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from routerllm.exceptions import RoutingError
from routerllm.routing.features import feature_matrix

logger = logging.getLogger(__name__)

FORMAT = "routerllm-learned-router/1"
L2 = 1.0  # ridge penalty on standardized features (the usual default; not tuned on evaluation data)
NEWTON_STEPS = 50


@dataclass
class LearnedRouterModel:
    feature_names: list[str]
    mean: list[float]
    std: list[float]
    weights: list[float]
    bias: float
    threshold: float
    target_large_share: float
    embedding: bool = False
    trained_on: dict[str, Any] = field(default_factory=dict)
    cross_validation: dict[str, Any] = field(default_factory=dict)

    # -- scoring -------------------------------------------------------------------------------
    def scores_from_rows(self, rows: list[list[float]]) -> np.ndarray:
        x = (np.asarray(rows, dtype=float) - np.asarray(self.mean)) / np.asarray(self.std)
        return _sigmoid(x @ np.asarray(self.weights) + self.bias)

    def score_many(self, prompts: list[str], entry_points: list[str | None]) -> np.ndarray:
        _, rows = feature_matrix(prompts, entry_points, embedding=self.embedding)
        return self.scores_from_rows(rows)

    def score(self, prompt: str, entry_point: str | None = None) -> float:
        return float(self.score_many([prompt], [entry_point])[0])

    def goes_large(self, score: float, threshold: float | None = None) -> bool:
        return score < (self.threshold if threshold is None else threshold)

    # -- files -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LearnedRouterModel":
        path = Path(path)
        if not path.is_file():
            raise RoutingError(
                f"no learned router model at {path}",
                fix="train one with `routerllm calibrate --config ... --output FILE` and set router.learned_model_path",
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RoutingError(f"{path} is not JSON ({exc})", fix="re-create it with `routerllm calibrate`") from None
        if data.pop("format", None) != FORMAT:
            raise RoutingError(f"{path} is not a routerllm learned router file ({FORMAT})",
                               fix="re-create it with `routerllm calibrate`")
        return cls(**data)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression by Newton's method (x standardized; bias unpenalized)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def threshold_for_share(scores: np.ndarray, target_large_share: float) -> float:
    """The score below which `target_large_share` of these prompts fall (they go large)."""
    scores = np.sort(np.asarray(scores, dtype=float))
    n = len(scores)
    k = int(round(target_large_share * n))
    if k <= 0:
        return float(scores[0]) if n else 0.0  # nothing strictly below the lowest score
    if k >= n:
        return float(np.nextafter(scores[-1], np.inf))
    return float((scores[k - 1] + scores[k]) / 2.0)


def fit_rows(names: list[str], rows: list[list[float]], labels: list[bool], target_large_share: float,
             embedding: bool = False, trained_on: dict[str, Any] | None = None) -> LearnedRouterModel:
    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    if len(y) < 4 or y.min() == y.max():
        raise RoutingError(
            f"cannot train the learned router on {len(y)} tasks with {int(y.sum())} small-tier successes",
            fix="train on more tasks (--num-examples), with a small tier that solves some but not all of them",
        )
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    w, b = fit_logistic((x - mean) / std, y)
    model = LearnedRouterModel(names, mean.tolist(), std.tolist(), w.tolist(), b, 0.0, target_large_share,
                               embedding, dict(trained_on or {}))
    model.threshold = threshold_for_share(model.scores_from_rows(rows), target_large_share)
    return model


def fit_router(prompts: list[str], entry_points: list[str | None], small_passed: list[bool],
               target_large_share: float, embedding: bool = False,
               trained_on: dict[str, Any] | None = None) -> LearnedRouterModel:
    names, rows = feature_matrix(prompts, entry_points, embedding=embedding)
    return fit_rows(names, rows, small_passed, target_large_share, embedding, trained_on)


def folds(task_ids: list[str], k: int = 5, seed: int = 0) -> list[list[int]]:
    """k disjoint folds of indices (deterministic shuffle by seed)."""
    order = np.random.default_rng(seed).permutation(len(task_ids))
    return [sorted(order[i::k].tolist()) for i in range(k)]


def cross_validated_scores(names: list[str], rows: list[list[float]], labels: list[bool], task_ids: list[str],
                           target_large_share: float, k: int = 5, seed: int = 0,
                           embedding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold scores and thresholds: each task is scored by a model trained on the other
    folds, with the threshold calibrated on those training folds only."""
    scores = np.zeros(len(rows))
    thresholds = np.zeros(len(rows))
    for fold in folds(task_ids, k, seed):
        held = set(fold)
        train = [i for i in range(len(rows)) if i not in held]
        model = fit_rows(names, [rows[i] for i in train], [labels[i] for i in train], target_large_share, embedding)
        fold_scores = model.scores_from_rows([rows[i] for i in fold])
        for i, s in zip(fold, fold_scores):
            scores[i] = s
            thresholds[i] = model.threshold
    return scores, thresholds


def auc(scores: np.ndarray, labels: list[bool]) -> float | None:
    """Area under the ROC curve (probability a success scores above a failure); None if one class."""
    y = np.asarray(labels, dtype=bool)
    pos, neg = np.asarray(scores)[y], np.asarray(scores)[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


# --------------------------------------------------------------------------------------------------
# `routerllm calibrate`
# --------------------------------------------------------------------------------------------------

def small_tier_outcomes(config: Any, tasks: list[Any], from_run: str | None = None) -> dict[str, bool]:
    """task_id -> did the first small tier's first answer pass the hidden tests?

    From a comparison run's records (`from_run`), from a replay tier's recorded verdicts, or by
    generating with the small tier and scoring in the sandbox."""
    from routerllm.backends.base import make_backend

    small = config.models.small_llms[0] if config.models.small_llms else None
    if small is None:
        raise RoutingError("calibration needs a small tier", fix="add a model under models.small_llms")
    wanted = {t.task_id for t in tasks}
    if from_run:
        from routerllm.runner import RESULTS_FILE, ResultsLog

        rows = ResultsLog(Path(from_run) / RESULTS_FILE).load(repair=False)
        out = {r["task_id"]: bool(r["systems"]["small"]["passed"]) for r in rows
               if r.get("task_id") in wanted and r.get("systems", {}).get("small", {}).get("passed") is not None}
        if not out:
            raise RoutingError(f"{from_run} has no scored small-tier answers",
                               fix="pass a `routerllm compare` run made without --skip-execution")
        return out
    if small.backend == "replay":
        from routerllm.comparison import resolve_replay_paths

        resolve_replay_paths(config)
        backend = make_backend(small)
        backend.load()
        out = {}
        for t in tasks:
            verdict = backend.recorded_passed(t.task_id, 0)  # type: ignore[attr-defined]
            if verdict is not None:
                out[t.task_id] = bool(verdict)
        return out
    # generate and score for real
    from routerllm.evaluation.prompting import build_program, build_request, mode_for, postprocess
    from routerllm.evaluation.sandbox import Sandbox

    backend = make_backend(small)
    backend.load()
    out = {}
    mode = mode_for(small)
    try:
        with Sandbox(timeout_s=config.benchmark.execution_timeout_s, workers=config.benchmark.workers) as sandbox:
            for t in tasks:
                request = build_request(t, small)
                (generation,) = backend.generate([request])
                completion = postprocess(t, generation.text, mode, request.stop)
                out[t.task_id] = sandbox.run(build_program(t, completion, mode)).passed
    finally:
        backend.close()
    return out


def run_calibration(config: Any, output: str, target_large_share: float | None = None, num_examples: int | None = None,
                    from_run: str | None = None, embedding: bool | None = None) -> LearnedRouterModel:
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.routing.features import feature_matrix

    share = config.router.target_large_share if target_large_share is None else target_large_share
    use_embedding = config.router.learned_embedding if embedding is None else embedding
    tasks = load_tasks(num_examples)
    outcomes = small_tier_outcomes(config, tasks, from_run)
    tasks = [t for t in tasks if t.task_id in outcomes]
    labels = [outcomes[t.task_id] for t in tasks]
    ids = [t.task_id for t in tasks]
    names, rows = feature_matrix([t.prompt for t in tasks], [t.entry_point for t in tasks], embedding=use_embedding)
    scores, thresholds = cross_validated_scores(names, rows, labels, ids, share, embedding=use_embedding)
    large = scores < thresholds
    model = fit_rows(names, rows, labels, share, use_embedding, trained_on={
        "small_tier": config.models.small_llms[0].name,
        "tasks": len(tasks),
        "small_success_rate": float(np.mean(labels)),
        "source": from_run or ("recorded verdicts" if config.models.small_llms[0].backend == "replay" else "generated and scored"),
    })
    model.cross_validation = {
        "folds": 5,
        "auc": auc(scores, labels),
        "large_share": float(np.mean(large)),
        "small_accepted_success_rate": float(np.mean([lab for lab, g in zip(labels, large) if not g])) if (~large).any() else None,
    }
    model.save(output)
    return model
