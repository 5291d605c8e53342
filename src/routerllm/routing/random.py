"""`random`: the large tier with probability `router.random_p`, else the small tier.

The coin is seeded per request from `router.seed` and the request's identity (task id or prompt),
so a run is reproducible and independent of the order tasks are answered in (a resumed run draws
the same coins). Its expected accuracy is the straight line between small-only and large-only:
the baseline every other strategy must beat at the same share of large calls.
"""

from __future__ import annotations

import hashlib
import random as _random

from routerllm.backends.base import GenerationRequest
from routerllm.routing.base import Plan, RouteDecision, Strategy


def request_coin(seed: int, request: GenerationRequest) -> float:
    """A uniform number in [0, 1) that depends only on the seed and the request's identity."""
    key = request.task_id if request.task_id is not None else request.prompt
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return _random.Random(int.from_bytes(digest[:8], "big")).random()


class RandomStrategy(Strategy):
    name = "random"
    description = "the large tier with probability router.random_p (seeded)"

    def plan(self, request: GenerationRequest, entry_point: str | None = None) -> Plan:
        p = self.options.random_p
        coin = request_coin(self.options.seed, request)
        go_large = coin < p
        tier = self.tiers.large_name if go_large else self.small_tier[0]
        generation = yield from self.one(tier, request)
        decision = RouteDecision(
            self.name,
            tier,
            f"coin {coin:.3f} {'<' if go_large else '>='} p={p:g}",
            escalated=False,
            details={"coin": coin, "p": p, "seed": self.options.seed},
        )
        return generation, decision
