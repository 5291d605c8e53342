"""Prometheus metrics of one server app, in a registry of its own (never the global one), so two
apps in one process (tests, the bench) count separately.

Series (all prefixed `routerllm_`):
  requests_total{endpoint, model, tier, status}      every answered request, errors included
  routing_decisions_total{strategy, tier}            tier each strategy chose
  escalations_total{strategy}                        small -> large escalations
  fallbacks_total{from_tier, to_tier, reason}        large tier failed/timed out, small answered
  large_tier_failures_total{tier, reason}            large tier failed/timed out (fallback or 503)
  request_latency_seconds{endpoint, tier}            wall time in the service, histogram
  time_to_first_token_seconds{tier}                  backend ttft (measured or modelled), histogram
  tokens_total{tier, kind}                           prompt / completion tokens
  energy_kwh_total{tier, timing}, co2_kg_total{tier, timing}   where the backend reports energy
  queue_depth                                        requests admitted and not finished
  tier_up{tier}                                      1 when the last health probe succeeded
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets in seconds: the service adds ~ms; tiers answer in 0.1 s (small, replay) to minutes (405B offloaded).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "routerllm_requests", "Requests answered, by endpoint, model, tier and HTTP status",
            ["endpoint", "model", "tier", "status"], registry=r,
        )
        self.decisions = Counter(
            "routerllm_routing_decisions", "Routing decisions: tier chosen per strategy", ["strategy", "tier"], registry=r
        )
        self.escalations = Counter(
            "routerllm_escalations", "Requests escalated from a small tier to the large tier", ["strategy"], registry=r
        )
        self.fallbacks = Counter(
            "routerllm_fallbacks", "Large tier failed or timed out and a small tier answered instead",
            ["from_tier", "to_tier", "reason"], registry=r,
        )
        self.large_failures = Counter(
            "routerllm_large_tier_failures", "Requests whose large-tier call failed or timed out (fallback or 503)",
            ["tier", "reason"], registry=r,
        )
        self.latency = Histogram(
            "routerllm_request_latency_seconds", "Wall time of a request inside the service, s",
            ["endpoint", "tier"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.ttft = Histogram(
            "routerllm_time_to_first_token_seconds", "Time to first token reported by the answering tier, s",
            ["tier"], buckets=TTFT_BUCKETS_S, registry=r,
        )
        self.tokens = Counter("routerllm_tokens", "Tokens processed", ["tier", "kind"], registry=r)
        self.energy = Counter(
            "routerllm_energy_kwh", "Energy of generations, kWh (measured or modelled, as labelled)",
            ["tier", "timing"], registry=r,
        )
        self.co2 = Counter(
            "routerllm_co2_kg", "CO2 of generations, kg (energy x the configured carbon intensity)",
            ["tier", "timing"], registry=r,
        )
        self.queue_depth = Gauge("routerllm_queue_depth", "Requests admitted and not finished", registry=r)
        self.tier_up = Gauge("routerllm_tier_up", "1 when the tier's last health probe succeeded", ["tier"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
