"""Routing between small tiers and the large tier.

    from routerllm.routing import build_tiers, build_strategy
    tiers = build_tiers(config)                      # backends by tier name, from the config
    router = build_strategy("cascade", tiers, config.router, sandbox=Sandbox())
    answer = router.answer(GenerationRequest(prompt=...), entry_point="add")
    answer.decision   # RouteDecision(strategy, tier, reason, escalated, details)

Strategies: see `routerllm.routing.registry.STRATEGIES`.
"""

from routerllm.routing.base import RoutedAnswer, RouteDecision, Strategy, Tiers, build_tiers
from routerllm.routing.registry import STRATEGIES, build_strategy, register_strategy, strategy_names

__all__ = [
    "STRATEGIES",
    "RouteDecision",
    "RoutedAnswer",
    "Strategy",
    "Tiers",
    "build_strategy",
    "build_tiers",
    "register_strategy",
    "strategy_names",
]
