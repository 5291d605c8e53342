"""`heuristic`: prompt features decide, with no model call and no training.

A prompt goes to the large tier when it gives the small model little to hold on to or asks a lot:
fewer visible examples than `router.heuristic_min_examples`, or a docstring longer than
`router.heuristic_max_chars`. The rule and its two limits are priors written down in the config,
not fitted to any evaluation data.
"""

from __future__ import annotations

import re

from routerllm.backends.base import GenerationRequest
from routerllm.evaluation.examples import detect_entry_point, extract_examples
from routerllm.routing.base import Plan, RouteDecision, Strategy


def docstring_of(prompt: str, entry_point: str | None) -> str:
    """The text after the entry point's `def` line (its docstring), or the whole prompt."""
    if entry_point:
        m = None
        for m in re.finditer(rf"^\s*def\s+{re.escape(entry_point)}\s*\(.*$", prompt, flags=re.MULTILINE):
            pass
        if m is not None:
            return prompt[m.end():]
    return prompt


class HeuristicStrategy(Strategy):
    name = "heuristic"
    description = "large tier for long prompts or prompts with few visible examples"

    def plan(self, request: GenerationRequest, entry_point: str | None = None) -> Plan:
        entry_point = entry_point or detect_entry_point(request.prompt)
        examples = len(extract_examples(request.prompt, entry_point)) if entry_point else 0
        chars = len(docstring_of(request.prompt, entry_point))
        too_few = examples < self.options.heuristic_min_examples
        too_long = chars > self.options.heuristic_max_chars
        go_large = too_few or too_long
        reasons = []
        if too_few:
            reasons.append(f"{examples} visible example(s) < {self.options.heuristic_min_examples}")
        if too_long:
            reasons.append(f"docstring {chars} chars > {self.options.heuristic_max_chars}")
        reason = "; ".join(reasons) if go_large else (
            f"{examples} visible example(s), docstring {chars} chars <= {self.options.heuristic_max_chars}"
        )
        tier = self.tiers.large_name if go_large else self.small_tier[0]
        generation = yield from self.one(tier, request)
        details = {"examples": examples, "docstring_chars": chars,
                   "max_chars": self.options.heuristic_max_chars, "min_examples": self.options.heuristic_min_examples}
        return generation, RouteDecision(self.name, tier, reason, False, details)
