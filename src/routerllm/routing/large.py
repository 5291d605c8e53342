"""`large`: every request goes to the large tier. The ceiling (and the cost) of the comparison."""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.routing.base import Plan, RouteDecision, Strategy


class LargeStrategy(Strategy):
    name = "large"
    description = "always the large tier"

    def plan(self, request: GenerationRequest, entry_point: str | None = None) -> Plan:
        generation = yield from self.one(self.tiers.large_name, request)
        return generation, RouteDecision(self.name, self.tiers.large_name, "always the large tier", escalated=False)
