"""`cascade`: the small model answers first; its code must pass the examples visible in the prompt.

    prompt ──► visible examples (evaluation.examples) ── none found ──► large tier
                  │
                  ▼
    small sample 0, 1, ... (router.cascade.small_samples; later samples at sample_temperature)
        each run in the sandbox against the visible examples (and, with agreement > 1, on probe
        inputs next to them, to compare the passing answers with each other)
        │  pass and `agreement` passing answers agree ──► accept the small answer
        │  passing answers disagree on a probe ─────────► large tier (the small model is unsure)
        │  failure (optional: one repair attempt with the failure fed back)
        ▼
    all samples used ──► large tier

The hidden tests are never used here: they only score the answer afterwards. Every decision
records the examples found, each attempt's verdict, the failures and the probe fingerprints.

Options (`router.cascade`, see config.CascadeOptions): small_samples, sample_temperature, repair,
example_timeout_s, escalate_without_examples, agreement.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.evaluation.examples import (
    Example,
    build_check_program,
    detect_entry_point,
    extract_examples,
    parse_check_output,
    probe_calls,
)
from routerllm.routing.base import RoutedAnswer, RouteDecision, Strategy, with_sample
from routerllm.evaluation.prompting import CHAT_INSTRUCTION
from routerllm.routing.code import code_for, tier_mode

logger = logging.getLogger(__name__)

REPAIR_INSTRUCTION = (
    "Your function fails this example from the docstring: {failure}. "
    "Reply with the corrected complete function in a single ```python code block."
)


class CascadeStrategy(Strategy):
    name = "cascade"
    description = "small model first; accepted only if its code passes the prompt's visible examples"

    def __init__(self, tiers, options, sandbox=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(tiers, options, sandbox)
        self._own_sandbox = None

    # -- sandbox -----------------------------------------------------------------------------
    def _sandbox(self):  # type: ignore[no-untyped-def]
        if self.sandbox is not None:
            return self.sandbox
        if self._own_sandbox is None:
            from routerllm.evaluation.sandbox import Sandbox

            self._own_sandbox = Sandbox(timeout_s=self.options.cascade.example_timeout_s, workers=1)
        return self._own_sandbox

    def close(self) -> None:
        if self._own_sandbox is not None:
            self._own_sandbox.close()
            self._own_sandbox = None

    # -- checking ------------------------------------------------------------------------------
    def check(
        self, request: GenerationRequest, tier_name: str, generation: Generation, entry_point: str,
        examples: list[Example], probes: list[str],
    ) -> dict[str, Any]:
        """Run one answer against the visible examples (and probes) in the sandbox."""
        code = code_for(self.tiers, tier_name, request, generation, entry_point)
        program = build_check_program(code, examples, probes)
        start = time.perf_counter()
        verdict = self._sandbox().run(program, timeout_s=self.options.cascade.example_timeout_s)
        check_s = time.perf_counter() - start
        record = parse_check_output(verdict.stdout) or {}
        failed = record.get("failed", [])
        return {
            "examples_passed": verdict.passed,
            "verdict": str(verdict),
            "examples_failed": [f["index"] for f in failed],
            "failure": _describe(failed[0]) if failed else (None if verdict.passed else str(verdict)),
            "fingerprint": record.get("fingerprint"),
            "probe_timeouts": record.get("probe_timeouts"),
            "check_s": check_s,
        }

    # -- routing -------------------------------------------------------------------------------
    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
        opts = self.options.cascade
        calls: dict[str, int] = {}
        attempts: list[dict[str, Any]] = []
        entry_point = entry_point or detect_entry_point(request.prompt)
        examples = extract_examples(request.prompt, entry_point) if entry_point else []
        details: dict[str, Any] = {
            "entry_point": entry_point,
            "examples": len(examples),
            "agreement": opts.agreement,
            "check_s": 0.0,
        }
        small = self.small_tier

        if not examples:
            if opts.escalate_without_examples:
                return self._escalate(request, calls, attempts, details, "no visible example in the prompt to check the small answer against")
            generation = self.call(small, request, calls, attempts, examples_passed=None)
            decision = RouteDecision(self.name, small[0], "no visible example; accepted unchecked (escalate_without_examples: false)", False, details)
            return RoutedAnswer(generation, decision, calls, attempts)

        probes = probe_calls(examples) if opts.agreement > 1 else []
        details["probes"] = len(probes)
        clusters: dict[str | None, list[tuple[int, Generation, dict[str, Any]]]] = {}
        repaired = False
        first_failure: str | None = None
        for index, sample_request, generation, attempt in self._samples(request, small, calls, attempts):
            result = self.check(sample_request, small[0], generation, entry_point, examples, probes)  # type: ignore[arg-type]
            attempt.update(result)
            details["check_s"] += result["check_s"]
            if not result["examples_passed"]:
                first_failure = first_failure or result["failure"]
                if opts.repair and not repaired and self._can_repair(small[0]):
                    repaired = True
                    fixed = self._repair(small, sample_request, generation, result, calls, attempts, entry_point, examples, probes)  # type: ignore[arg-type]
                    details["check_s"] += attempts[-1].get("check_s", 0.0)
                    if attempts[-1]["examples_passed"]:
                        generation, result, attempt = fixed, attempts[-1], attempts[-1]
                    else:
                        continue
                else:
                    continue
            fingerprint = result.get("fingerprint")
            clusters.setdefault(fingerprint, []).append((index, generation, attempt))
            if len(clusters) > 1:
                details["disagreeing_answers"] = {str(k): [i for i, _, _ in v] for k, v in clusters.items()}
                return self._escalate(
                    request, calls, attempts, details,
                    f"{sum(len(v) for v in clusters.values())} small answers pass the {len(examples)} visible "
                    f"examples but disagree on inputs next to them",
                )
            if len(clusters[fingerprint]) >= opts.agreement:
                chosen_index, chosen, chosen_attempt = clusters[fingerprint][0]
                details["accepted_sample"] = chosen_index
                agree = f", {len(clusters[fingerprint])} answers agree on {len(probes)} probe inputs" if opts.agreement > 1 else ""
                reason = (
                    f"small answer (sample {chosen_index}{', repaired' if chosen_attempt.get('repair') else ''}) "
                    f"passed all {len(examples)} visible examples{agree}"
                )
                decision = RouteDecision(self.name, small[0], reason, False, details)
                return RoutedAnswer(chosen, decision, calls, attempts)

        passing = sum(len(v) for v in clusters.values())
        if passing:
            why = f"only {passing} of {opts.small_samples} small answers passed the visible examples (agreement needs {opts.agreement})"
        else:
            why = f"{opts.small_samples} small answer(s) failed the visible examples; first failure: {first_failure}"
        return self._escalate(request, calls, attempts, details, why)

    def _samples(self, request, small, calls, attempts):  # type: ignore[no-untyped-def]
        """Small samples 0, 1, ... in batches of `sample_batch` (one backend call per batch; a
        batch costs the time of its longest member), yielded one at a time for checking."""
        opts = self.options.cascade
        index = 0
        batch_no = 0
        while index < opts.small_samples:
            size = min(opts.sample_batch, opts.small_samples - index)
            requests = [with_sample(request, i, None if i == 0 else opts.sample_temperature)
                        for i in range(index, index + size)]
            if size == 1:
                generations = [self.call(small, requests[0], calls, attempts)]
                records = [attempts[-1]]
            else:
                generations = self.call_batch(small, requests, calls, attempts, batch=batch_no)
                records = attempts[-size:]
            for offset, (req, gen, record) in enumerate(zip(requests, generations, records)):
                yield index + offset, req, gen, record
            index += size
            batch_no += 1

    def _escalate(self, request, calls, attempts, details, why: str) -> RoutedAnswer:  # type: ignore[no-untyped-def]
        generation = self.call(self.tiers.large, request, calls, attempts)
        decision = RouteDecision(self.name, self.tiers.large_name, f"escalated: {why}", True, details)
        return RoutedAnswer(generation, decision, calls, attempts)

    # -- repair --------------------------------------------------------------------------------
    def _can_repair(self, tier_name: str) -> bool:
        config = self.tiers.configs.get(tier_name)
        # a replayed tier has no recorded repair to return
        return config is None or config.backend != "replay"

    def _repair(self, tier, request, generation, result, calls, attempts, entry_point, examples, probes):  # type: ignore[no-untyped-def]
        failure = result["failure"] or "it failed"
        mode = tier_mode(self.tiers, tier[0], request, generation)
        if mode == "chat":
            base = request.messages or [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=request.prompt)}]
            messages = [
                *base,
                {"role": "assistant", "content": generation.text},
                {"role": "user", "content": REPAIR_INSTRUCTION.format(failure=failure)},
            ]
            repair_request = dataclasses.replace(request, messages=messages)
        else:
            # a base model continues the prompt: put the failure in a comment after the docstring
            note = f"    # A previous attempt failed: {failure.splitlines()[0][:300]}\n"
            repair_request = dataclasses.replace(request, prompt=request.prompt + note)
        fixed = self.call(tier, repair_request, calls, attempts, repair=True)
        if mode != "chat":
            # the continuation follows the comment: score it as a continuation of the original prompt
            fixed = dataclasses.replace(fixed, text=repair_request.prompt[len(request.prompt):] + fixed.text)
        outcome = self.check(request, tier[0], fixed, entry_point, examples, probes)
        attempts[-1].update(outcome)
        return fixed


def _describe(failure: dict[str, Any]) -> str:
    what = failure.get("error") or f"got {failure.get('got')}"
    return f"{failure.get('call')} should be {failure.get('expected')}, {what}"
