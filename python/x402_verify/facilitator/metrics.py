"""Prometheus metrics of one facilitator app (prometheus-client, its own registry).

With several worker processes each serves its own figures, unless ``PROMETHEUS_MULTIPROC_DIR``
is set (prometheus-client's multiprocess mode): then ``/metrics`` aggregates every worker's.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.verifications = Counter(
            "x402_verify_verifications", "Verdicts by scheme and reason (reason 'valid' when valid)", ["endpoint", "scheme", "reason"], registry=r
        )
        self.requests = Counter("x402_verify_http_requests", "HTTP answers by endpoint and status", ["endpoint", "status"], registry=r)
        self.latency = Histogram("x402_verify_request_seconds", "Request latency by endpoint", ["endpoint"], buckets=_LATENCY, registry=r)
        self.batch_sizes = Histogram("x402_verify_batch_size", "Payments per verify_batch call", buckets=_SIZES, registry=r)
        self.batch_seconds = Histogram("x402_verify_batch_seconds", "verify_batch time (checks; reservation if in-process)", buckets=_LATENCY, registry=r)
        self.store_seconds = Histogram("x402_verify_store_seconds", "Nonce-store and claim calls outside verify_batch", ["op"], buckets=_LATENCY, registry=r)
        self.store_errors = Counter("x402_verify_store_errors", "Nonce-store failures (fail closed)", ["op"], registry=r)
        self.upstream_seconds = Histogram("x402_verify_upstream_seconds", "Upstream settle latency", buckets=_LATENCY, registry=r)
        self.upstream_errors = Counter("x402_verify_upstream_errors", "Upstream settle calls that raised or timed out", registry=r)
        self.settlements = Counter("x402_verify_settlements", "Settlements by outcome", ["outcome"], registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}

    def verdict(self, endpoint: str, scheme: str | None, reason: str | None) -> None:
        key = ("v", endpoint, scheme, reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.verifications.labels(endpoint, scheme or "unknown", reason or "valid")
        child.inc()

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        key = ("r", endpoint, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (self.requests.labels(endpoint, str(status)), self.latency.labels(endpoint))
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
