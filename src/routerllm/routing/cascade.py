"""`cascade`: climb the chain of tiers (models.small_llms in order, then models.large_llm); at each
tier before the last, draw answers until the checks decide, then keep the answer or move on.

    prompt ──► visible examples + near probe inputs (routing/checker.py)
                 │ none: "unchecked" ──► the next tier expected to do better, or this tier unchecked
                 ▼
    one step on tier i: answers 0, 1, ... (first `agreement` together, then `sample_batch` at a time,
    at most router.cascade.small_samples and never more than the tier has: a replayed tier has a
    fixed number), each checked in the jail (routing/execution.py) against the visible examples, the types of their
    results, and the other passing answers on the near probes. The step ends in one state:

        agreed    `agreement` passing answers, none conflicting    ──► accept (stop sampling now)
        conflict  two passing answers return different values      ──► unsure (stop sampling now)
        lone      fewer passing answers than `agreement`, no more to draw ──► unsure
        failed    no answer passes the visible examples            ──► unsure (expected ~0 right)

    unsure ──► the first later tier EXPECTED TO DO BETTER on this task: expected_after(j | i, state)
               > expected(i, state) (routing/strength.py, from a calibration run or the labelled
               split of recorded data; with none, the chain's order: later tiers are stronger).
               No later tier better: keep this tier's best answer (the largest group of mutually
               consistent passing answers, else its first answer).
    the last tier's first answer is returned as it is.

The hidden tests are never used here: they only score the answer afterwards. Every attempt records
its check (CheckResult: figures only); `reason` says what was checked and how it went and never
contains what the code printed or returned.

Options (`router.cascade`, config.CascadeOptions): small_samples, agreement, sample_batch,
sample_temperature, repair, self_tests (tests the tier writes itself, routing/self_tests.py),
example_timeout_s, escalate_without_examples. The tier calibration: router.calibration_path, or
the one `routerllm compare` cross-fits (routerllm/calibrate.py).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Generator

from routerllm.backends.base import GenerationRequest
from routerllm.evaluation.prompting import CHAT_INSTRUCTION
from routerllm.records import CheckResult
from routerllm.routing.base import Execute, Generate, Need, Plan, RouteDecision, Served, Strategy, available_samples, with_sample
from routerllm.routing.checker import TaskChecks, Vector, conflict, judge, task_checks
from routerllm.routing.code import code_for, tier_mode
from routerllm.routing.strength import FAILED, Fixed

logger = logging.getLogger(__name__)

AGREED, CONFLICT, LONE, UNCHECKED = "agreed", "conflict", "lone", "unchecked"
STATES = (AGREED, CONFLICT, LONE, FAILED, UNCHECKED)

REPAIR_INSTRUCTION = (
    "Your function fails this example from the docstring: {failure}. "
    "Reply with the corrected complete function in a single ```python code block."
)


@dataclass
class _Passing:
    sample: int
    served: Served
    vector: Vector


@dataclass
class StepOutcome:
    """How one tier's step ended: its state, the answer it would keep, and what it drew."""

    tier: str
    state: str
    kept: Served | None  # the answer this tier returns if the cascade stops here
    drawn: int = 0
    passing: int = 0
    examples: int = 0
    first: Served | None = None  # its first answer (sample 0)
    first_check: CheckResult | None = None
    answers: list[Served] = field(default_factory=list)  # every answer drawn (not repairs), in order


class CascadeStrategy(Strategy):
    name = "cascade"
    description = "each tier answers in turn; an answer is kept once the prompt's visible examples and agreeing samples back it"

    def __init__(self, tiers, options, judge=None, calibration=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(tiers, options, judge)
        # per task: what the router knows of each tier (routing/strength.py); default: the chain's order
        self.calibration = calibration if calibration is not None else _configured_calibration(options)

    @property
    def agreement(self) -> int:
        """Agreeing answers needed, never more than the answers the config allows per tier."""
        return min(self.options.cascade.agreement, self.options.cascade.small_samples)

    # -- the chain ---------------------------------------------------------------------------------
    def plan(self, request: GenerationRequest, entry_point: str | None = None) -> Plan:
        opts = self.options.cascade
        checks = task_checks(request.prompt, entry_point)
        calibration = self.calibration.for_task(request.task_id)
        chain = self.tiers.names
        details: dict[str, Any] = {"entry_point": checks.entry_point, "examples": len(checks.examples),
                                   "probes": len(checks.probes), "agreement": self.agreement, "steps": []}
        notes: list[str] = []
        position = 0
        escalated = False
        while position < len(chain) - 1:
            tier = chain[position]
            if not checks.checkable:
                later = self._better_later(position, UNCHECKED, calibration) if opts.escalate_without_examples else None
                if later is not None:
                    notes.append(f"{tier}: no visible example to check an answer against; moved on")
                    details["steps"].append({"tier": tier, "state": UNCHECKED, "drawn": 0})
                    position, escalated = later, True
                    continue
                generation = yield from self.one(tier, request)
                details["steps"].append({"tier": tier, "state": UNCHECKED, "drawn": 1})
                reason = f"{tier}: no visible example to check against; " + (
                    "no later tier is expected to do better, answered unchecked" if opts.escalate_without_examples
                    else "answered unchecked (escalate_without_examples: false)")
                return generation, RouteDecision(self.name, tier, _reason(notes, reason, tier, escalated), escalated,
                                                 details, accepted=False, state=UNCHECKED)
            step = yield from self.step(tier, request, checks)
            details["steps"].append({"tier": tier, "state": step.state, "drawn": step.drawn, "passing": step.passing})
            said = _step_words(step, self.agreement)
            if step.state == AGREED:
                assert step.kept is not None
                details["accepted_sample"] = step.kept.attempt.sample
                return step.kept.generation, RouteDecision(self.name, tier, _reason(notes, said + "; accepted", tier, escalated),
                                                           escalated, details, accepted=True, state=AGREED)
            later = self._better_later(position, step.state, calibration)
            if later is None:
                kept = step.kept or step.first
                assert kept is not None
                details["accepted_sample"] = kept.attempt.sample
                return kept.generation, RouteDecision(
                    self.name, tier, _reason(notes, said + "; kept: no later tier is expected to do better", tier, escalated),
                    escalated, details, accepted=step.kept is not None, state=step.state)
            notes.append(said + "; moved on")
            position, escalated = later, True
        generation = yield from self.one(chain[-1], request)
        reason = _reason(notes, "", chain[-1], escalated) if notes else f"answered by {chain[-1]}"
        last_state = details["steps"][-1]["state"] if details["steps"] else None
        return generation, RouteDecision(self.name, chain[-1], reason, escalated, details, accepted=False,
                                         state=last_state)

    def _better_later(self, position: int, state: str, calibration) -> int | None:  # type: ignore[no-untyped-def]
        """The first later tier expected to do better than tier `position` in `state` (module docstring)."""
        names = self.tiers.names
        own = calibration.expected(names[position], state)
        for later in range(position + 1, len(names)):
            other = calibration.expected_after(names[later], names[position], state)
            if own is None or other is None:
                return position + 1  # nothing known: the chain's order
            if other > own:
                return later
        return None

    # -- one tier's step ---------------------------------------------------------------------------
    def step(self, tier: str, request: GenerationRequest, checks: TaskChecks) -> Generator[Need, Any, StepOutcome]:
        """Draw and check answers of `tier` until the state is decided (module docstring)."""
        opts = self.options.cascade
        budget = opts.small_samples
        recorded = available_samples(self.tiers.backend(tier), request.task_id)
        if recorded is not None:
            budget = min(budget, recorded)  # a replayed tier has no answer beyond its recording
        outcome = StepOutcome(tier, FAILED, None, examples=len(checks.examples))
        passing: list[_Passing] = []
        repaired = not (opts.repair and self._can_repair(tier))
        if opts.self_tests and self._can_repair(tier) and budget > 0:
            checks = yield from self._self_tests(tier, request, checks)
        while outcome.drawn < budget:
            size = min(self.agreement if outcome.drawn == 0 else opts.sample_batch, budget - outcome.drawn)
            requests = [with_sample(request, i, None if i == 0 else opts.sample_temperature)
                        for i in range(outcome.drawn, outcome.drawn + size)]
            served: list[Served] = yield Generate(tier, requests)
            outcome.drawn += size
            runs = yield Execute([checks.job(code_for(self.tiers, tier, s_req, s.generation, checks.entry_point))
                                  for s_req, s in zip(requests, served)])  # type: ignore[arg-type]
            outcome.answers += served
            for req, s, run in zip(requests, served, runs):
                result, vector = judge(checks, run)
                s.attempt.check = result
                if outcome.first is None:
                    outcome.first, outcome.first_check = s, result
                if not result.passed and not repaired:
                    repaired = True
                    fixed = yield from self._repair(tier, req, s, result, checks)
                    if fixed is not None:
                        s, result, vector = fixed
                if result.passed:
                    passing.append(_Passing(s.attempt.sample, s, vector))
                    state = self._state(passing)
                    if state is not None:
                        outcome.state, outcome.kept, outcome.passing = state, _best(passing), len(passing)
                        return outcome
        outcome.passing = len(passing)
        if passing:
            outcome.state, outcome.kept = LONE, _best(passing)
        return outcome

    def _state(self, passing: list[_Passing]) -> str | None:
        newest = passing[-1]
        if any(conflict(newest.vector, other.vector) for other in passing[:-1]):
            return CONFLICT
        if len(passing) >= self.agreement:
            return AGREED
        return None

    # -- asking the tier (repair, its own tests) ---------------------------------------------------------
    def _can_repair(self, tier: str) -> bool:
        """Can the tier be asked something it was not recorded answering (a repair, tests)?"""
        config = self.tiers.configs.get(tier)
        # a replayed tier has no recorded repair to return
        return config is None or config.backend != "replay"

    def _self_tests(self, tier: str, request: GenerationRequest, checks: TaskChecks) -> Generator[Need, Any, TaskChecks]:
        """Ask the tier for tests of the function (routing/self_tests.py); the checks with them."""
        from routerllm.routing import self_tests

        n = self.options.cascade.self_tests
        mode = tier_mode(self.tiers, tier, request)
        assert checks.entry_point is not None
        (served,) = yield Generate(tier, [self_tests.request_for(request, checks.entry_point, n, mode)], self_tests=True)
        return checks.with_self_tests(self_tests.parse(served.generation.text, checks.entry_point, n, mode))

    def _repair(self, tier: str, request: GenerationRequest, served: Served, result: CheckResult,
                checks: TaskChecks) -> Generator[Need, Any, tuple[Served, CheckResult, Vector] | None]:
        """One more answer from `tier` with its failure fed back; None when that fails too."""
        failure = result.failure or "it failed"
        generation = served.generation
        mode = tier_mode(self.tiers, tier, request, generation)
        if mode == "chat":
            base = request.messages or [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=request.prompt)}]
            messages = [*base, {"role": "assistant", "content": generation.text},
                        {"role": "user", "content": REPAIR_INSTRUCTION.format(failure=failure)}]
            repair_request = dataclasses.replace(request, messages=messages)
        else:
            # a base model continues the prompt: put the failure in a comment after the docstring
            note = f"    # A previous attempt failed: {failure.splitlines()[0][:300]}\n"
            repair_request = dataclasses.replace(request, prompt=request.prompt + note)
        (fixed,) = yield Generate(tier, [repair_request], repair=True)
        if mode != "chat":
            # the continuation follows the comment: score it as a continuation of the original prompt
            fixed = Served(dataclasses.replace(fixed.generation, text=repair_request.prompt[len(request.prompt):]
                                               + fixed.generation.text), fixed.attempt)
        (run,) = yield Execute([checks.job(code_for(self.tiers, tier, request, fixed.generation, checks.entry_point))])  # type: ignore[arg-type]
        fixed_result, vector = judge(checks, run)
        fixed.attempt.check = fixed_result
        return (fixed, fixed_result, vector) if fixed_result.passed else None


def _reason(notes: list[str], last: str, tier: str, escalated: bool) -> str:
    """The steps in order; an escalated answer's reason starts with where it went."""
    text = "; ".join([*notes, last] if last else notes)
    return f"escalated to {tier}: {text}" if escalated else text


def _best(passing: list[_Passing]) -> Served:
    """The earliest answer of the largest group of mutually consistent passing answers."""
    best: list[_Passing] = []
    for p in passing:
        group = [q for q in passing if not conflict(p.vector, q.vector)]
        if len(group) > len(best):
            best = group
    return min(best, key=lambda q: q.sample).served


def _step_words(step: StepOutcome, agreement: int) -> str:
    """What a step checked and how it went, in words (no program output)."""
    head = f"{step.tier}: {step.drawn} answer(s) drawn, {step.passing} passed the {step.examples} visible example(s)"
    if step.state == AGREED:
        return head + (f" and {step.passing} agree on the inputs next to them" if agreement > 1 else "")
    if step.state == CONFLICT:
        return head + " but disagree on inputs next to them"
    if step.state == LONE:
        return head + f" (agreement needs {agreement}; no more answers to draw)"
    return head


def _configured_calibration(options) -> Fixed:  # type: ignore[no-untyped-def]
    from routerllm.routing.strength import ChainCalibration

    path = getattr(options, "calibration_path", None)
    return Fixed(ChainCalibration.load(path) if path else None)
