"""Strategy registry: name -> class. `build_strategy` is how every caller makes a router."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routerllm.exceptions import RoutingError
from routerllm.routing.base import Strategy, Tiers
from routerllm.routing.cascade import CascadeStrategy
from routerllm.routing.heuristic import HeuristicStrategy
from routerllm.routing.large import LargeStrategy
from routerllm.routing.random import RandomStrategy
from routerllm.routing.small import SmallStrategy

if TYPE_CHECKING:
    from routerllm.config import RouterSection
    from routerllm.evaluation.judge import Judge

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        SmallStrategy,
        LargeStrategy,
        RandomStrategy,
        HeuristicStrategy,
        CascadeStrategy,
    )
}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class (usable as a decorator)."""
    STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def build_strategy(
    name: str, tiers: Tiers, options: "RouterSection", judge: "Judge | None" = None, **kwargs: Any
) -> Strategy:
    """Make the strategy registered under `name` (`kwargs` go to its class: the cascade takes
    `calibration=`); unknown names raise RoutingError listing them."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise RoutingError(f"unknown routing strategy {name!r}", fix=unknown_strategy_fix(name))
    return cls(tiers, options, judge=judge, **kwargs)


REMOVED = {
    "learned": "the 'learned' router was removed: cross-validated, it did not beat random routing on every "
               "recorded pair (README, 'Routing'); the cascade covers its use",
}


def unknown_strategy_fix(name: str) -> str:
    known = f"use one of: {', '.join(STRATEGIES)} (router.strategy / router.strategies / --strategies)"
    return f"{REMOVED[name]}; {known}" if name in REMOVED else known
