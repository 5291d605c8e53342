"""Routing along a chain of tiers (models.small_llms in order, then models.large_llm).

    from routerllm.routing import build_tiers, build_strategy
    tiers = build_tiers(config)                      # backends by tier name, from the config
    router = build_strategy("cascade", tiers, config.router, judge=open_judge(config.benchmark))
    answer = router.answer(GenerationRequest(prompt=...), entry_point="add")
    answer.decision   # RouteDecision(strategy, tier, reason, escalated, details, accepted, state)
    answers = router.answer_many(requests, entry_points)   # batched by stage (routing/driver.py)

Modules: base (tiers, decisions, plans), driver (stage batches), cascade (the chain's steps),
checker and execution (the checks, the one place code runs), strength (tier calibration),
self_tests (tests a tier writes itself), code (the code an answer stands for), and one module per
simple strategy. Strategies: see `routerllm.routing.registry.STRATEGIES`.
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
