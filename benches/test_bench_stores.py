"""Replay stores (issue 5): ``reserve_many`` in batches of 256 fresh keys, against the naive way
of each backend, timed in the same run.

    python -m pytest benches/test_bench_stores.py --benchmark-enable -p no:cacheprovider -s

Keys are fresh 32-byte values, made before timing (a round gets keys no store has seen); every
reservation is asserted accepted after timing. ``now`` is fixed, validity 300 s ahead.

| ours (batches of 256) | anchor | target (absolute, as the issue states it) |
| --- | --- | --- |
| ``MemoryNonceStore`` (pre-filled with 200,000 live keys) | a ``dict`` + ``threading.Lock``, check-then-insert per item, same pre-fill | >= 1,000,000 reservations/s |
| ``RedisNonceStore`` (a redis-server on a free loopback port, ``tests/redis_servers.py``) | redis-py ``SET key val NX PX`` one round trip per item | >= 50,000/s |
| ``SqliteNonceStore`` (a file in a tmp dir: WAL, ``synchronous=FULL``) | ``reserve_many`` of one key per call (a transaction + fsync per item) | >= 20,000/s |

Ratios to the anchors are reported, not checked. The terminal summary also prints a breakdown of
where a batch's time goes (measured outside the benchmark rounds).
"""  # noqa: E501 (the table's rows)

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from conftest import check_targets

NOW = int(time.time())
UNTIL = NOW + 300
MARGIN = 60
BATCH = 256


class Keys:
    """Fresh keys, handed out one round at a time (setup of a pedantic round, untimed)."""

    def __init__(self, batches_per_round: int, rounds: int) -> None:
        self.rounds = [[[secrets.token_bytes(32) for _ in range(BATCH)] for _ in range(batches_per_round)] for _ in range(rounds)]
        self.next = 0
        self.last: list[list[bytes]] = []  # the batches of the last round handed out

    def setup(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        self.last = self.rounds[self.next]
        self.next += 1
        return (self.last,), {}


OWNERS = [f"bench:{i}" for i in range(BATCH)]
UNTILS = [UNTIL] * BATCH


def _all_accepted(outcomes: list[list[Any]]) -> bool:
    return all(ok is True for batch in outcomes for ok in batch)


# --- memory -----------------------------------------------------------------------------------

MEM_BATCHES = 200  # 51,200 reservations a round
MEM_ROUNDS = 15
MEM_PREFILL = 200_000


class NaiveMemoryStore:
    """What a gateway would write by hand: a dict under a lock, check-then-insert per item."""

    def __init__(self, margin_seconds: int = MARGIN) -> None:
        self.margin = margin_seconds
        self.lock = threading.Lock()
        self.entries: dict[bytes, tuple[str, bool, int]] = {}  # key -> (owner, settled, expires_at)

    def reserve_many(self, keys: list[bytes], valid_until: list[int], owners: list[str], *, now: int) -> list[bool]:
        out = []
        for key, until, owner in zip(keys, valid_until, owners, strict=True):
            with self.lock:
                held = self.entries.get(key)
                if held is not None and held[2] > now:
                    out.append(held[0] == owner and not held[1])
                    continue
                self.entries[key] = (owner, False, until + self.margin)
                out.append(True)
        return out


@pytest.fixture(scope="module")
def mem_keys() -> Keys:
    return Keys(MEM_BATCHES, MEM_ROUNDS + 1)


def _prefill(store: Any) -> None:
    for _ in range(MEM_PREFILL // BATCH):
        assert all(store.reserve_many([secrets.token_bytes(32) for _ in range(BATCH)], UNTILS, OWNERS, now=NOW))


def test_anchor_memory_naive(benchmark: Any, recorder: Any, mem_keys: Keys) -> None:
    benchmark.group = "memory store"
    store = NaiveMemoryStore()
    _prefill(store)
    mem_keys.next = 0

    def run(batches: list[list[bytes]]) -> list[list[bool]]:
        return [store.reserve_many(keys, UNTILS, OWNERS, now=NOW) for keys in batches]

    out = benchmark.pedantic(run, setup=mem_keys.setup, rounds=MEM_ROUNDS, warmup_rounds=1)
    recorder.record("naive_memory", benchmark, MEM_BATCHES * BATCH)
    assert _all_accepted(out)


def test_ours_memory_store(benchmark: Any, recorder: Any, mem_keys: Keys) -> None:
    benchmark.group = "memory store"
    store = xv.MemoryNonceStore(max_entries=4_000_000, margin_seconds=MARGIN)
    _prefill(store)
    mem_keys.next = 0  # the same fresh keys as the anchor's (each side has its own table)

    def run(batches: list[list[bytes]]) -> list[list[bool | None]]:
        return [store.reserve_many(keys, UNTILS, OWNERS, now=NOW) for keys in batches]

    out = benchmark.pedantic(run, setup=mem_keys.setup, rounds=MEM_ROUNDS, warmup_rounds=1)
    recorder.record("store_memory", benchmark, MEM_BATCHES * BATCH)
    assert _all_accepted(out)
    assert len(store) == MEM_PREFILL // BATCH * BATCH + mem_keys.next * MEM_BATCHES * BATCH
    assert store.reserve_many(mem_keys.last[0], UNTILS, ["other"] * BATCH, now=NOW) == [False] * BATCH  # replays


# --- redis ------------------------------------------------------------------------------------

REDIS_BATCHES = 40  # 10,240 reservations a round
REDIS_ROUNDS = 10
REDIS_NAIVE = 2_000  # round trips a round
REDIS_NAIVE_ROUNDS = 8


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("redis")
    from redis_servers import REDIS_SERVER, RedisServer

    if not os.path.exists(REDIS_SERVER):
        pytest.fail("redis-server not installed (apt-get install -y redis-server, as scripts/test.sh does)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.kill()


def test_anchor_redis_naive(benchmark: Any, recorder: Any, redis_url: str) -> None:
    import redis

    benchmark.group = "redis store"
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, decode_responses=True)
    rounds = [[secrets.token_bytes(32) for _ in range(REDIS_NAIVE)] for _ in range(REDIS_NAIVE_ROUNDS + 1)]
    it = iter(rounds)
    px = (UNTIL + MARGIN - NOW) * 1000  # the lifetime from now, as the store sets it

    def run(keys: list[bytes]) -> list[bool]:
        # One SET NX PX round trip per item: True when set, None when the key was held.
        return [client.set("naive:" + k.hex(), f"R||0|{UNTIL + MARGIN}|{OWNERS[i % BATCH]}", nx=True, px=px) is True for i, k in enumerate(keys)]

    try:
        out = benchmark.pedantic(run, setup=lambda: ((next(it),), {}), rounds=REDIS_NAIVE_ROUNDS, warmup_rounds=1)
        recorder.record("naive_redis", benchmark, REDIS_NAIVE)
        assert all(out)
    finally:
        client.close()


def test_ours_redis_store(benchmark: Any, recorder: Any, redis_url: str) -> None:
    benchmark.group = "redis store"
    store = xv.RedisNonceStore(redis_url, timeout=2.0, margin_seconds=MARGIN, prefix="bench:")
    keys = Keys(REDIS_BATCHES, REDIS_ROUNDS + 1)

    def run(batches: list[list[bytes]]) -> list[list[bool | None]]:
        return [store.reserve_many(k, UNTILS, OWNERS, now=NOW) for k in batches]

    try:
        out = benchmark.pedantic(run, setup=keys.setup, rounds=REDIS_ROUNDS, warmup_rounds=1)
        recorder.record("store_redis", benchmark, REDIS_BATCHES * BATCH)
        assert _all_accepted(out)
        assert store.reserve_many(keys.last[0], UNTILS, ["other"] * BATCH, now=NOW) == [False] * BATCH
        _redis_stages(recorder, store, redis_url)
    finally:
        store.client.close()


def _redis_stages(recorder: Any, store: Any, url: str) -> None:
    """Where a batch of 256 goes: reserve_many (one script call on a single server) against the
    floor of the same 256 SETs pre-encoded and pipelined on a raw socket (network + server work,
    no client-side encoding or parsing)."""
    import socket
    from urllib.parse import urlparse

    reps = 20
    px = (UNTIL + MARGIN - NOW) * 1000  # the lifetime from now, as the store sets it
    fresh = [[secrets.token_bytes(32) for _ in range(BATCH)] for _ in range(2 * reps)]

    def resp(*args: str) -> bytes:
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(parts)

    wires = [
        b"".join(resp("SET", "raw:" + key.hex(), f"R||0|{UNTIL + MARGIN}|{o}", "NX", "GET", "PX", str(px)) for key, o in zip(k, OWNERS, strict=True))
        for k in fresh[:reps]
    ]
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=2.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        for wire in wires:
            sock.sendall(wire)
            got = b""
            while got.count(b"\r\n") < BATCH:  # a fresh key answers "$-1\r\n" (nil)
                got += sock.recv(65536)
        raw = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for k in fresh[reps:]:
        store.reserve_many(k, UNTILS, OWNERS, now=NOW)
    whole = (time.perf_counter() - t0) / reps
    recorder.note(
        f"redis stages (batch of 256, mean of {reps}): reserve_many {whole * 1e3:.2f} ms = {BATCH / whole:,.0f}/s (one script call); "
        f"the same SETs pre-encoded and pipelined on a raw socket {raw * 1e3:.2f} ms = {BATCH / raw:,.0f}/s (network + server floor)"
    )


# --- sqlite -----------------------------------------------------------------------------------

SQLITE_BATCHES = 20  # 5,120 reservations a round
SQLITE_ROUNDS = 8
SQLITE_NAIVE = 200  # transactions a round
SQLITE_NAIVE_ROUNDS = 5


def test_anchor_sqlite_one_per_tx(benchmark: Any, recorder: Any, tmp_path: Path) -> None:
    benchmark.group = "sqlite store"
    store = xv.SqliteNonceStore(tmp_path / "naive.sqlite", margin_seconds=MARGIN)
    rounds = iter([[secrets.token_bytes(32) for _ in range(SQLITE_NAIVE)] for _ in range(SQLITE_NAIVE_ROUNDS + 1)])

    def run(keys: list[bytes]) -> list[list[bool | None]]:
        return [store.reserve_many([k], [UNTIL], [OWNERS[0]], now=NOW) for k in keys]

    try:
        out = benchmark.pedantic(run, setup=lambda: ((next(rounds),), {}), rounds=SQLITE_NAIVE_ROUNDS, warmup_rounds=1)
        recorder.record("naive_sqlite", benchmark, SQLITE_NAIVE)
        assert _all_accepted(out)
    finally:
        store.close()


def test_ours_sqlite_store(benchmark: Any, recorder: Any, tmp_path: Path) -> None:
    benchmark.group = "sqlite store"
    store = xv.SqliteNonceStore(tmp_path / "ours.sqlite", margin_seconds=MARGIN)
    keys = Keys(SQLITE_BATCHES, SQLITE_ROUNDS + 1)

    def run(batches: list[list[bytes]]) -> list[list[bool | None]]:
        return [store.reserve_many(k, UNTILS, OWNERS, now=NOW) for k in batches]

    try:
        out = benchmark.pedantic(run, setup=keys.setup, rounds=SQLITE_ROUNDS, warmup_rounds=1)
        recorder.record("store_sqlite", benchmark, SQLITE_BATCHES * BATCH)
        assert _all_accepted(out)
        assert store.reserve_many(keys.last[0], UNTILS, ["other"] * BATCH, now=NOW) == [False] * BATCH
        _sqlite_stages(recorder, tmp_path / "stages.sqlite")
    finally:
        store.close()


def _sqlite_stages(recorder: Any, path: Path) -> None:
    """Where a batch of 256 goes: the same statements with synchronous=OFF (no fsync) vs FULL."""
    reps = 10
    store = xv.SqliteNonceStore(path, margin_seconds=MARGIN)
    try:
        times = {}
        for mode in ("FULL", "OFF"):
            store._conn().execute(f"PRAGMA synchronous={mode}")
            batches = [[secrets.token_bytes(32) for _ in range(BATCH)] for _ in range(reps)]
            t0 = time.perf_counter()
            for k in batches:
                store.reserve_many(k, UNTILS, OWNERS, now=NOW)
            times[mode] = (time.perf_counter() - t0) / reps
    finally:
        store.close()
    full, off = times["FULL"], times["OFF"]
    recorder.note(
        f"sqlite stages (batch of 256, mean of {reps}): reserve_many {full * 1e3:.2f} ms = {BATCH / full:,.0f}/s with "
        f"synchronous=FULL; {off * 1e3:.2f} ms with synchronous=OFF (statements only), so the commit's fsync "
        f"is ~{max(full - off, 0) * 1e3:.2f} ms ({max(full - off, 0) / full:.0%})"
    )


# --- the verdict ------------------------------------------------------------------------------


def test_zz_ratios_meet_targets(recorder: Any) -> None:
    """Runs last: fails if a store misses its absolute target (the table is in the summary)."""
    check_targets(recorder, "stores")
