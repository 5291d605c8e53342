"""Scoring answers with a task's hidden tests, by the Judge, for `routerllm compare` and
`routerllm calibrate` (routing never sees these verdicts; calibration only on other tasks).

    scorer = TaskScorer(judge, tiers, timeout_s=10)
    verdicts = scorer.score_many([(task, tier_name, request, generation), ...])   # parallel, cached

The program is the code the answer stands for (routing/code.py, the same reading the cascade's
checks use), run in the jail; the task's tests and the prompt's helpers run on the Judge's
trusted side (evaluation/judge.py). Verdicts are cached per answer
(tier and generation cache key), so an answer shared by several systems runs once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from routerllm.evaluation.programs import Program
from routerllm.routing.code import code_for

if TYPE_CHECKING:
    from routerllm.backends.base import Generation, GenerationRequest
    from routerllm.evaluation.humaneval import Task
    from routerllm.evaluation.judge import Judge
    from routerllm.routing.base import Tiers

VERDICT_CHARS = 300  # characters of a failing verdict kept in a record


@dataclass(frozen=True)
class Score:
    passed: bool
    verdict: str


class TaskScorer:
    def __init__(self, judge: "Judge", tiers: "Tiers", timeout_s: float) -> None:
        self.judge = judge
        self.tiers = tiers
        self.timeout_s = timeout_s
        self._cache: dict[str, Score] = {}

    def score_many(self, items: list[tuple["Task", str, "GenerationRequest", "Generation"]]) -> list[Score]:
        keys = [f"{tier}|{generation.extra.get('cache_key') or id(generation)}" for _, tier, _, generation in items]
        todo: dict[str, Program] = {}
        for key, (task, tier, request, generation) in zip(keys, items):
            if key not in self._cache and key not in todo:
                code = code_for(self.tiers, tier, request, generation, task.entry_point)
                todo[key] = Program(task.task_id, task.entry_point, code, task.test, task.prompt)
        if todo:
            verdicts = self.judge.judge_many(list(todo.values()), timeout_s=self.timeout_s)
            for key, verdict in zip(todo, verdicts):
                self._cache[key] = Score(verdict.passed, str(verdict)[:VERDICT_CHARS])
        return [self._cache[key] for key in keys]
