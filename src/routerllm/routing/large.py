"""`large`: every request goes to the large tier. The ceiling (and the cost) of the comparison."""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.routing.base import RoutedAnswer, RouteDecision, Strategy


class LargeStrategy(Strategy):
    name = "large"
    description = "always the large tier"

    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
        calls: dict[str, int] = {}
        attempts: list[dict] = []
        generation = self.call(self.tiers.large, request, calls, attempts)
        decision = RouteDecision(self.name, self.tiers.large_name, "always the large tier", escalated=False)
        return RoutedAnswer(generation, decision, calls, attempts)
