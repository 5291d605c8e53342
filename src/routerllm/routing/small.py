"""`small`: every request goes to the first (cheapest) small tier. The floor of the comparison."""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.routing.base import RoutedAnswer, RouteDecision, Strategy


class SmallStrategy(Strategy):
    name = "small"
    description = "always the cheapest small tier"

    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
        calls: dict[str, int] = {}
        attempts: list[dict] = []
        tier = self.small_tier
        generation = self.call(tier, request, calls, attempts)
        decision = RouteDecision(self.name, tier[0], "always the small tier", escalated=False)
        return RoutedAnswer(generation, decision, calls, attempts)
