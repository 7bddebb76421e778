"""Store URLs: the nonce store and the settlement ledger a facilitator runs on.

- ``sqlite://PATH`` (``sqlite:///var/lib/x402/nonces.db`` is the absolute path
  ``/var/lib/x402/nonces.db``; ``sqlite://nonces.db`` is relative): durable on one host,
  shared by its worker processes. The default (``DEFAULT_STORE``).
- ``redis://…`` / ``rediss://…``: one Redis server shared by replicas.
- ``redis+cluster://…`` / ``rediss+cluster://…``: a Redis Cluster.
- ``memory://``: in-process, not durable; refused with more than one worker process, since
  replay protection would then be per process.
"""

from __future__ import annotations

import fcntl
import os
import threading
from typing import Any, NamedTuple

from x402_verify.ledger import MemoryLedger, RedisLedger
from x402_verify.stores import MemoryNonceStore, RedisNonceStore, SqliteNonceStore

__all__ = ["DEFAULT_STORE", "Stores", "open_stores"]

DEFAULT_STORE = "sqlite://x402-verify.sqlite3"


class Stores(NamedTuple):
    nonces: Any
    ledger: Any
    shared: bool  # seen by every worker process (False: memory)


def open_stores(url: str, *, workers: int = 1, redis_timeout: float = 0.5) -> Stores:
    """The nonce store and ledger for ``url``; ``ValueError`` names what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {url!r} has no scheme: use sqlite://PATH, redis://HOST:PORT, redis+cluster://HOST:PORT or memory://")
    scheme = scheme.lower()
    if scheme == "memory":
        if workers > 1:
            raise ValueError(
                "memory:// keeps replay state per process: with more than one worker a payment could be accepted once per worker;"
                " use sqlite://PATH (one host) or redis://… (several)"
            )
        return Stores(MemoryNonceStore(), MemoryLedger(), False)
    if scheme == "sqlite":
        if not rest:
            raise ValueError("sqlite:// needs a path: sqlite:///absolute/path.db or sqlite://relative.db")
        from x402_verify.facilitator.sqlite_ledger import SqliteLedger

        lock = rest + ".lock"
        return Stores(WriterLock(SqliteNonceStore(rest), lock), WriterLock(SqliteLedger(rest), lock), True)
    if scheme in ("redis", "rediss"):
        return Stores(RedisNonceStore(url, timeout=redis_timeout), RedisLedger(url, timeout=redis_timeout), True)
    if scheme in ("redis+cluster", "rediss+cluster"):
        plain = scheme.split("+", 1)[0] + "://" + rest
        return Stores(RedisNonceStore(plain, cluster=True, timeout=redis_timeout), _cluster_ledger(plain, redis_timeout), True)
    raise ValueError(f"unknown store URL scheme {scheme!r}: use sqlite://, redis://, redis+cluster:// or memory://")


def _cluster_ledger(url: str, timeout: float) -> Any:
    import redis

    client = redis.RedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)
    # The ledger's scripts touch a record and its due-time index together: one hash tag puts
    # every ledger key in one slot (settlements are few next to verifications; the nonce
    # store's keys stay spread over the cluster).
    return RedisLedger(url, client=client, prefix="x402l:{ledger}:")


class WriterLock:
    """A SQLite store whose writes take an exclusive ``flock`` on a file beside the database
    first. SQLite lets one writer in at a time anyway; its busy handler makes the others
    sleep and poll (1, 2, 5 ... 100 ms steps), which under several workers put the p99 of
    /verify in the hundreds of milliseconds. A blocked ``flock`` is woken by the kernel the
    moment the holder is done. Reads pass straight through."""

    WRITES = frozenset({"reserve_many", "settle", "release", "charge", "acquire", "finish", "sweep"})

    def __init__(self, inner: Any, path: str) -> None:
        self._inner = inner
        self._path = path
        self._local = threading.local()  # one descriptor per thread: flock is per open file
        self._fd()

    def _fd(self) -> int:
        fd: int | None = getattr(self._local, "fd", None)
        if fd is None:
            fd = self._local.fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self.WRITES:
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            fd = self._fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                return attr(*args, **kwargs)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

        return locked
