"""The fallback policy: what a failed request becomes.

    the request itself is at fault (BackendRejected)      -> 400, no tier is blamed, nothing counted
    the large tier failed or timed out                    -> counted in large_tier_failures_total; then
        server.fallback_to_small and a small tier exist   -> the cheapest small tier answers instead,
                                                             marked `fallback` (fallbacks_total)
        otherwise                                         -> 503 large_tier_unavailable
    another tier timed out (or the request, between tiers) -> 504
    another tier failed                                   -> 503 backend_error
    the strategy or the jail could not run                -> 503 routing_failed
    anything that is not a BackendError                   -> propagates: a bug, answered 500

What the client reads (`fallback_reason`, error messages) says which tier failed and how, from
`public_reason`: never the failure's own message, which may name files, hosts or operator fixes
(that message is logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from routerllm.exceptions import BackendError, BackendRejected, BackendTimeout, RouterLLMError
from routerllm.server.admission import RequestTimeout
from routerllm.server.errors import ApiError, rejected

if TYPE_CHECKING:
    from routerllm.server import protocol as p
    from routerllm.server.metrics import ServerMetrics
    from routerllm.server.tiers import ServedTiers

logger = logging.getLogger(__name__)


def public_reason(exc: BackendError) -> str:
    """How a tier failure is described to clients (no message of the failure itself)."""
    tier = f"tier {exc.tier!r}" if exc.tier else "the request"
    if isinstance(exc, RequestTimeout):
        return exc.message  # names only the server's own limit
    if isinstance(exc, BackendTimeout):
        return f"{tier} did not answer within its time limit"
    return f"{tier} is unavailable"


@dataclass
class Fallback:
    """The decision to answer a request whose large tier failed with a small tier."""

    tier: str
    failed: str
    why: str
    reason: Literal["timeout", "error"]


class FallbackPolicy:
    def __init__(self, tiers: "ServedTiers", metrics: "ServerMetrics", enabled: bool) -> None:
        self.tiers = tiers
        self.metrics = metrics
        self.enabled = enabled

    def choose(self, exc: BaseException) -> Fallback:
        """The fallback for `exc`, or raises the ApiError the request is answered with (see the
        module docstring). Non-BackendErrors are re-raised as they are."""
        if isinstance(exc, BackendRejected):
            raise rejected(exc) from None
        if isinstance(exc, RouterLLMError) and not isinstance(exc, BackendError):
            # not a tier: the strategy or the jail could not run (the log has the message and fix)
            logger.error("request failed: %s", exc)
            raise ApiError(503, "The request could not be routed; the server log says why.",
                           "service_unavailable_error", code="routing_failed") from None
        if not isinstance(exc, BackendError):
            raise exc
        why = public_reason(exc)
        large = self.tiers.large
        if exc.tier != large:
            logger.warning("request failed: %s", exc)
            if isinstance(exc, BackendTimeout):
                raise ApiError(504, f"The request timed out: {why}.", "timeout_error", code="timeout") from None
            raise ApiError(503, f"The request failed: {why}.", "service_unavailable_error",
                           code="backend_error") from None
        reason: Literal["timeout", "error"] = "timeout" if isinstance(exc, BackendTimeout) else "error"
        self.metrics.large_failures.labels(large, reason).inc()
        if not (self.enabled and self.tiers.small):
            logger.warning("large tier %s failed (%s); no fallback configured", large, exc)
            raise ApiError(
                503, f"The large tier '{large}' failed ({why}) and server.fallback_to_small is off (or there is no "
                "small tier).", "service_unavailable_error", code="large_tier_unavailable",
            ) from None
        small = self.tiers.small[0]
        logger.warning("large tier %s failed (%s); falling back to %s", large, exc, small)
        self.metrics.fallbacks.labels(large, small, reason).inc()
        return Fallback(tier=small, failed=large, why=why, reason=reason)

    @staticmethod
    def failed_too(fallback: Fallback, exc: BaseException) -> ApiError:
        """The error when the fallback tier failed as well."""
        if isinstance(exc, BackendRejected):
            return rejected(exc)
        if not isinstance(exc, RouterLLMError):
            raise exc
        logger.warning("fallback tier %s failed too: %s", fallback.tier, exc)
        if isinstance(exc, BackendTimeout):
            return ApiError(504, f"The large tier failed ({fallback.why}) and the small tier '{fallback.tier}' "
                            "timed out too.", "timeout_error", code="timeout")
        return ApiError(503, f"The large tier failed ({fallback.why}) and the small tier '{fallback.tier}' failed "
                        "too.", "service_unavailable_error", code="all_tiers_failed")

    @staticmethod
    def annotate(info: "p.RoutingInfo", fallback: Fallback, strategy: str | None, failed_calls: dict[str, int]) -> None:
        """Mark a fallback's routing information: who failed, why, and every call the request made."""
        info.strategy = strategy
        info.reason = f"fallback: large tier {fallback.failed!r} failed ({fallback.why}); answered by {fallback.tier!r}"
        info.fallback, info.fallback_from, info.fallback_reason = True, fallback.failed, fallback.why
        calls = dict(failed_calls)
        for name, count in info.calls.items():
            calls[name] = calls.get(name, 0) + count
        info.calls = calls

