"""`heuristic`: prompt features decide, with no model call and no training.

A prompt goes to the large tier when it gives the small model little to hold on to or asks a lot:
fewer visible examples than `router.heuristic_min_examples`, or a docstring longer than
`router.heuristic_max_chars`. The rule and its two limits are priors written down in the config,
not fitted to any evaluation data; `learned` is the fitted counterpart.
"""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.evaluation.examples import detect_entry_point, extract_examples
from routerllm.routing.base import RoutedAnswer, RouteDecision, Strategy
from routerllm.routing.features import docstring_of


class HeuristicStrategy(Strategy):
    name = "heuristic"
    description = "large tier for long prompts or prompts with few visible examples"

    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
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
        tier = self.tiers.large if go_large else self.small_tier
        calls: dict[str, int] = {}
        attempts: list[dict] = []
        generation = self.call(tier, request, calls, attempts)
        details = {"examples": examples, "docstring_chars": chars,
                   "max_chars": self.options.heuristic_max_chars, "min_examples": self.options.heuristic_min_examples}
        return RoutedAnswer(generation, RouteDecision(self.name, tier[0], reason, False, details), calls, attempts)
