"""`small`: every request goes to the first (cheapest) small tier. The floor of the comparison."""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.routing.base import Plan, RouteDecision, Strategy


class SmallStrategy(Strategy):
    name = "small"
    description = "always the cheapest small tier"

    def plan(self, request: GenerationRequest, entry_point: str | None = None) -> Plan:
        tier = self.small_tier[0]
        generation = yield from self.one(tier, request)
        return generation, RouteDecision(self.name, tier, "always the small tier", escalated=False)
