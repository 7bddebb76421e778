"""The service's Prometheus metrics (``GET /metrics``, text format, through prometheus-client).

Each app gets its own registry, so two apps in one process (tests) never share counters. Under
several worker processes each answers for itself; point Prometheus at each, or set
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) before starting.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("x402_facilitator_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("x402_facilitator_request_seconds", "request latency by route", ["route"], buckets=_LATENCY, registry=r)
        self.verifications = Counter(
            "x402_facilitator_verifications", "verdicts by scheme and reason ('valid' when valid)", ["endpoint", "scheme", "reason"], registry=r
        )
        self.batch_size = Histogram("x402_facilitator_verify_batch_size", "items per verify_batch call", buckets=_SIZES, registry=r)
        self.store_latency = Histogram("x402_facilitator_store_seconds", "nonce store / ledger call latency", ["op"], buckets=_LATENCY, registry=r)
        self.store_errors = Counter("x402_facilitator_store_errors", "nonce store / ledger errors", ["op"], registry=r)
        self.upstream_latency = Histogram("x402_facilitator_upstream_seconds", "upstream settle latency", buckets=_LATENCY, registry=r)
        self.upstream_errors = Counter("x402_facilitator_upstream_errors", "upstream settle calls that raised or timed out", registry=r)
        self.settlements = Counter("x402_facilitator_settlements", "settle answers by outcome", ["outcome"], registry=r)
        self.envelope_errors = Counter("x402_facilitator_envelope_errors", "requests refused before verification, by code", ["code"], registry=r)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
