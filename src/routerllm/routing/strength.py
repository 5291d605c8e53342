"""What the router knows about each tier of the chain: how strong it is, and how often its answer
is right in each evidence state the cascade can end a step in.

    calibration = ChainCalibration.fit(observations, chain=["small", "medium", "large"])
    calibration.expected("small", "lone")                 # P(the small tier's lone passing answer is right)
    calibration.expected_after("large", "small", "lone")  # P(the large tier's answer is right | small ended 'lone')

Evidence, from a calibration run over calibration tasks (never the task being routed; see
`CrossFitted`):

* `visible_pass_rate`: the share of tasks (with visible examples) whose first answer passes all of
  them. Needs no hidden test: a label-free strength.
* `accuracy`: the share of tasks whose first answer passes the hidden tests (a labelled
  calibration split: recorded verdicts, or answers scored by the Judge).
* `states[state] = [tasks, right]`: after the tier's cascade step, how often the answer it would
  return in that state is right (labelled).
* `after[state][later] = [tasks, right]`: on the tasks where this tier ended in `state`, how often
  a later tier's first answer is right (labelled): how much better the next tier does on exactly
  the tasks this tier was unsure of.

Estimates are smoothed toward a fallback with PRIOR_TASKS pseudo-tasks (a Beta prior), so a state
seen on few calibration tasks leans on the tier's overall figure: expected(tier, state) toward the
tier's accuracy (else its visible pass rate); expected_after(later, ...) toward the later tier's
accuracy (else visible pass rate). With no evidence at all both return None and the cascade falls
back to the chain's order (later tiers are assumed stronger).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from routerllm.exceptions import RoutingError

FORMAT = "routerllm-tier-calibration/1"
# Pseudo-tasks of the Beta prior behind every per-state estimate. 2 keeps a state seen on ten
# tasks mostly its own figure while a state seen on one or two leans on the tier's overall one
# (the usual add-a-few smoothing; chosen on Mistral-7B -> GPT-4 only, see bench/bench_routing.py).
PRIOR_TASKS = 2.0
FAILED = "failed"


@dataclass
class Observation:
    """One calibration task on one tier. `first_*` describe the tier's first answer; `state` and
    `state_right` the tier's cascade step (None for the last tier of the chain, which is not
    checked). `*_right` are None without labels."""

    task_id: str
    tier: str
    first_visible_pass: bool | None = None
    first_right: bool | None = None
    state: str | None = None
    state_right: bool | None = None


@dataclass
class TierStats:
    tasks: int = 0
    visible_pass_rate: float | None = None
    accuracy: float | None = None
    states: dict[str, list[int]] = field(default_factory=dict)
    after: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def strength(self) -> float | None:
        return self.accuracy if self.accuracy is not None else self.visible_pass_rate


def _smoothed(counts: list[int] | None, prior: float) -> float:
    n, right = counts if counts else (0, 0)
    return (right + PRIOR_TASKS * prior) / (n + PRIOR_TASKS)


@dataclass
class ChainCalibration:
    tiers: dict[str, TierStats] = field(default_factory=dict)
    source: str = ""
    task_ids: list[str] = field(default_factory=list)

    # -- estimates ---------------------------------------------------------------------------------
    def strength(self, tier: str) -> float | None:
        stats = self.tiers.get(tier)
        return None if stats is None else stats.strength

    def expected(self, tier: str, state: str) -> float | None:
        """P(the answer `tier` returns after ending its step in `state` is right)."""
        stats = self.tiers.get(tier)
        if stats is None or stats.strength is None:
            return None
        prior = 0.0 if state == FAILED else stats.strength  # every answer failed the visible examples
        if stats.accuracy is None:  # label-free: the tier's strength stands for every unsure state
            return prior
        return _smoothed(stats.states.get(state), prior)

    def expected_after(self, later: str, tier: str, state: str) -> float | None:
        """P(`later`'s first answer is right | `tier` ended its step in `state`)."""
        later_stats = self.tiers.get(later)
        if later_stats is None or later_stats.strength is None:
            return None
        stats = self.tiers.get(tier)
        counts = stats.after.get(state, {}).get(later) if stats is not None and later_stats.accuracy is not None else None
        return _smoothed(counts, later_stats.strength) if counts else later_stats.strength

    def describe(self) -> dict[str, Any]:
        return {name: {"tasks": s.tasks, "visible_pass_rate": s.visible_pass_rate, "accuracy": s.accuracy,
                       "states": {k: v for k, v in sorted(s.states.items())}} for name, s in self.tiers.items()}

    # -- fitting -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, observations: list[Observation], chain: list[str], source: str = "") -> "ChainCalibration":
        by_task: dict[str, dict[str, Observation]] = {}
        for o in observations:
            by_task.setdefault(o.task_id, {})[o.tier] = o
        out = cls(source=source, task_ids=sorted(by_task))
        for position, tier in enumerate(chain):
            rows = [t[tier] for t in by_task.values() if tier in t]
            stats = TierStats(tasks=len(rows))
            visible = [o.first_visible_pass for o in rows if o.first_visible_pass is not None]
            right = [o.first_right for o in rows if o.first_right is not None]
            stats.visible_pass_rate = float(np.mean(visible)) if visible else None
            stats.accuracy = float(np.mean(right)) if right else None
            for o in rows:
                if o.state is None or o.state_right is None:
                    continue
                n, r = stats.states.setdefault(o.state, [0, 0])
                stats.states[o.state] = [n + 1, r + int(o.state_right)]
                for later in chain[position + 1:]:
                    other = by_task[o.task_id].get(later)
                    if other is None or other.first_right is None:
                        continue
                    bucket = stats.after.setdefault(o.state, {})
                    n, r = bucket.get(later, [0, 0])
                    bucket[later] = [n + 1, r + int(other.first_right)]
            out.tiers[tier] = stats
        return out

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ChainCalibration":
        path = Path(path)
        fix = "write one with `routerllm calibrate --config ... --output FILE` and set router.calibration_path"
        if not path.is_file():
            raise RoutingError(f"no tier calibration at {path}", fix=fix)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RoutingError(f"{path} is not JSON ({exc})", fix=fix) from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise RoutingError(f"{path} is not a routerllm tier calibration ({FORMAT})", fix=fix)
        tiers = {name: TierStats(**stats) for name, stats in data.get("tiers", {}).items()}
        return cls(tiers=tiers, source=data.get("source", str(path)), task_ids=list(data.get("task_ids", [])))


@dataclass
class CrossFitted:
    """Calibrations fitted on all folds but one: a task in the calibration set is routed with the
    calibration that left its fold out; any other request with the one fitted on everything."""

    fold_of: dict[str, int]
    per_fold: list[ChainCalibration]
    overall: ChainCalibration

    def for_task(self, task_id: str | None) -> ChainCalibration:
        fold = self.fold_of.get(task_id or "")
        return self.overall if fold is None else self.per_fold[fold]

    @classmethod
    def fit(cls, observations: list[Observation], chain: list[str], folds: int = 5, seed: int = 0,
            source: str = "") -> "CrossFitted":
        task_ids = sorted({o.task_id for o in observations})
        order = np.random.default_rng(seed).permutation(len(task_ids))
        fold_of = {task_ids[i]: int(rank % folds) for rank, i in enumerate(order)}
        per_fold = [ChainCalibration.fit([o for o in observations if fold_of[o.task_id] != k], chain,
                                         source=f"{source} (fold {k} left out)") for k in range(folds)]
        return cls(fold_of, per_fold, ChainCalibration.fit(observations, chain, source=source))


class Fixed:
    """One calibration (or none) for every request: a file from `routerllm calibrate`, or nothing
    (the chain's order decides)."""

    def __init__(self, calibration: ChainCalibration | None = None) -> None:
        self.calibration = calibration or ChainCalibration(source="none: the chain's order")

    def for_task(self, task_id: str | None) -> ChainCalibration:
        return self.calibration
