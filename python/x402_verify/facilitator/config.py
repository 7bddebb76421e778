"""The facilitator's configuration: one frozen dataclass, read from CLI flags or ``X402_VERIFY_*``
environment variables, serialisable (each worker process rebuilds its app from it)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DEFAULT_NETWORKS", "DEFAULT_STORE", "FacilitatorConfig", "open_store"]

#: Base and Base Sepolia: what the service accepts when no network is named.
DEFAULT_NETWORKS = ("eip155:8453", "eip155:84532")
#: The embedded default: a durable SQLite file in the working directory.
DEFAULT_STORE = "sqlite:///x402-verify.sqlite3"
STORE_SCHEMES = ("sqlite", "redis", "rediss", "redis+cluster", "memory")
#: Where a worker runs its checks (``FacilitatorConfig.checks``).
CHECKS = ("auto", "loop", "threads")


@dataclass(frozen=True)
class FacilitatorConfig:
    """Everything ``create_app`` and ``x402-verify serve`` take.

    Attributes:
        networks: CAIP-2 networks accepted and listed by ``/supported`` (no wildcard: the SDK's
            resource server cannot build requirements from one).
        store: ``sqlite:///path`` (durable, the default), ``redis://host:port/db``,
            ``redis+cluster://host:port`` or ``memory://`` (one process only).
        upstream: the facilitator that settles (``HTTPFacilitatorSettler``); without one,
            ``/settle`` answers a failed settlement (nothing is marked settled).
        facilitator_addresses: the addresses an upto witness may name, listed in ``/supported``
            (``extra.facilitatorAddress`` and ``signers``); without them upto is not offered.
        auth_token: a bearer token ``/verify`` and ``/settle`` require (and ``/release``,
            which exists only when a token is set); compared in constant time.
        max_body_bytes / max_header_bytes / max_json_depth: request bounds (400 past them).
        request_timeout: seconds a request may take before it is answered as failed.
        upstream_timeout: seconds per upstream call; max_upstream: concurrent upstream calls.
        max_batch / max_inflight: the micro-batcher (``x402_verify._batching``).
        sweep_interval: seconds between sweeps of expired reservations (0: none).
        threads: worker threads a ``verify_batch`` may use (None: every core).
        checks: where each worker runs its ``verify_batch`` calls: ``"loop"``, on its event
            loop's thread (two thread hand-offs a batch fewer, which cost more than the loop
            time they free; docs/facilitator.md, "Server"), or ``"threads"``, in
            ``max_inflight`` threads beside it. ``"auto"`` (the default) is the loop, unless the
            verifier reads chain state: those checks wait on the network, so they run in
            threads (and ``"loop"`` is refused for them).
    """

    networks: tuple[str, ...] = DEFAULT_NETWORKS
    store: str = DEFAULT_STORE
    upstream: str | None = None
    facilitator_addresses: tuple[str, ...] = ()
    auth_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024
    max_json_depth: int = 32
    request_timeout: float = 30.0
    upstream_timeout: float = 25.0
    max_upstream: int = 32
    max_batch: int = 256
    max_inflight: int = 2
    sweep_interval: float = 30.0
    threads: int | None = None
    checks: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.networks, str):
            raise TypeError("networks is a sequence of CAIP-2 names, not one str")
        object.__setattr__(self, "networks", tuple(self.networks))
        object.__setattr__(self, "facilitator_addresses", tuple(self.facilitator_addresses))
        if not self.networks:
            raise ValueError("at least one network")
        for n in self.networks:
            if not isinstance(n, str) or "*" in n or not n.startswith("eip155:"):
                raise ValueError(f"network {n!r}: a CAIP-2 eip155:<chainId> name (no wildcard)")
        store_scheme(self.store)
        for name in ("max_body_bytes", "max_header_bytes", "max_json_depth", "max_upstream", "max_batch", "max_inflight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 30:
                raise ValueError(f"{name} must be an int in [1, 2**30], got {v!r}")
        for name in ("request_timeout", "upstream_timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 3600:
                raise ValueError(f"{name} must be seconds in (0, 3600], got {v!r}")
        if isinstance(self.sweep_interval, bool) or not isinstance(self.sweep_interval, (int, float)) or not 0 <= self.sweep_interval <= 86400:
            raise ValueError(f"sweep_interval must be seconds in [0, 86400], got {self.sweep_interval!r}")
        if self.checks not in CHECKS:
            raise ValueError(f"checks must be one of {', '.join(CHECKS)}, got {self.checks!r}")
        if self.auth_token is not None and (not isinstance(self.auth_token, str) or not self.auth_token or not self.auth_token.isascii()):
            raise ValueError("auth_token must be non-empty ASCII text")
        if self.upstream is not None and urlsplit(self.upstream).scheme not in ("http", "https"):
            raise ValueError(f"upstream must be an http(s) URL, got {self.upstream!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FacilitatorConfig:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def store_scheme(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"store must be a URL str, not {type(url).__name__}")
    scheme = urlsplit(url).scheme
    if scheme not in STORE_SCHEMES:
        raise ValueError(f"store URL {url!r}: use sqlite:///path, redis://host:port/db, redis+cluster://host:port or memory://")
    if scheme == "sqlite" and not sqlite_path(url):
        raise ValueError(f"store URL {url!r}: sqlite:///relative/path or sqlite:////absolute/path")
    return scheme


def sqlite_path(url: str) -> str:
    # sqlite:///x.db -> "x.db" (relative), sqlite:////tmp/x.db -> "/tmp/x.db" (SQLAlchemy's spelling).
    rest = url[len("sqlite://") :]
    return rest[1:] if rest.startswith("/") else rest


def open_store(url: str) -> Any:
    """The nonce store a store URL names (opened in the calling process)."""
    from x402_verify import MemoryNonceStore, RedisNonceStore, SqliteNonceStore

    scheme = store_scheme(url)
    if scheme == "sqlite":
        path = sqlite_path(url)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        return SqliteNonceStore(path)
    if scheme == "memory":
        return MemoryNonceStore()
    target, cluster = redis_target(url)
    return RedisNonceStore(target, cluster=cluster)


def redis_target(url: str) -> tuple[str, bool]:
    """``(URL redis-py reads, cluster?)`` of a ``redis://``, ``rediss://`` or ``redis+cluster://`` store URL."""
    if store_scheme(url) == "redis+cluster":
        return "redis://" + url[len("redis+cluster://") :], True
    return url, False
