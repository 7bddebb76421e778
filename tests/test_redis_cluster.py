"""``RedisNonceStore(url, cluster=True)`` on a real 3-master Redis Cluster (started on free
loopback ports by ``redis_servers.redis_cluster``).

- Exactly once: 50 concurrent verifications of one header, from 50 threads and from 2
  processes x 25 threads, accept it once in each of 100 repetitions; 50 distinct payments all
  pass; one batch of 10 copies accepts one; settle / release / charge through the verifier
  (the same harness as test_store_concurrency.py). Each with ``now`` on the real clock, 10
  minutes and an hour behind the servers' clocks.
- A 256-key batch, whose keys fall in slots on all 3 masters, costs one round trip per node
  (counted at redis-py's ``Connection.send_packed_command``), not one per key; the keys did land
  on all 3 nodes.
- The lifecycle (settle / release / charge are WATCH/MULTI on one key) works on the cluster, and
  concurrent upto charges never pass the cap.
- The settlement ledger (``RedisLedger(cluster=True)``, the facilitator's claims and the
  gateway's sessions) on the same cluster: the lease machine and the claims checks of
  test_settlers_http.py; its records spread over every master and ``due`` merges their groups.
- A master down: a batch touching it is refused (``nonce_store_unavailable``), none accepted;
  ledger calls whose group lives there raise ``NonceStoreError``. Every node down: the store and
  the ledger raise ``NonceStoreError`` (redis-py's ``RedisClusterException`` is no RedisError).
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.connection

import x402_verify as xv
from redis_servers import CLUSTER_HIGHEST_PORT, RedisCluster, RedisServer
from test_settlers_http import check_claims, check_lease_machine
from test_store_concurrency import (
    SKEWS,
    ProcessPair,
    check_concurrent_charges,
    check_lifecycle,
    check_one_batch,
    check_processes,
    check_threads,
    open_spec,
    redis_spec,
)
from test_stores import close_store, code_of, new_key, sign_payment, verifier
from x402_verify.errors import NonceStoreError
from x402_verify.ledger import RedisLedger

BATCH = 256


@pytest.fixture
def cluster_store(redis_cluster: RedisCluster) -> Iterator[Any]:
    store = xv.RedisNonceStore(redis_cluster.url, cluster=True, timeout=2.0, prefix=f"k{uuid.uuid4().hex[:12]}:")
    yield store
    close_store(store)


def node_keys(cluster: RedisCluster, pattern: str) -> dict[int, int]:
    """How many keys matching ``pattern`` each master holds (KEYS is node-local)."""
    out = {}
    for port in cluster.ports:
        with redis.Redis(host="127.0.0.1", port=port) as node:
            out[port] = len(node.keys(pattern))
    return out


class SendCounter:
    """Counts ``send_packed_command`` calls (one per request written: a pipeline's commands
    for one node go out in one call) per server port, while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: collections.Counter[int] = collections.Counter()
        original: Any = redis.connection.AbstractConnection.send_packed_command
        counts = self.counts

        def counting(conn: Any, *args: Any, **kwargs: Any) -> Any:
            counts[conn.port] += 1
            return original(conn, *args, **kwargs)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)


@pytest.mark.parametrize("skew", SKEWS)
def test_cluster_exactly_once_threads(redis_cluster: RedisCluster, thread_pool: ThreadPoolExecutor, skew: int) -> None:
    store = open_spec(redis_spec(redis_cluster.url, cluster=True))
    try:
        check_threads(store, thread_pool, skew)
    finally:
        close_store(store)


@pytest.mark.parametrize("skew", SKEWS)
def test_cluster_exactly_once_two_processes(redis_cluster: RedisCluster, process_pair: ProcessPair, skew: int) -> None:
    check_processes(redis_spec(redis_cluster.url, cluster=True), process_pair, skew)


@pytest.mark.parametrize("skew", SKEWS)
def test_cluster_one_batch_and_lifecycle(redis_cluster: RedisCluster, skew: int) -> None:
    store = open_spec(redis_spec(redis_cluster.url, cluster=True))
    try:
        check_one_batch(store, skew)
        check_lifecycle(store, skew)
    finally:
        close_store(store)


def test_a_batch_costs_one_round_trip_per_node(redis_cluster: RedisCluster, cluster_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    until = int(time.time()) + 300
    # Warm up: the client learns the slot map and opens a connection to every master.
    warm = [new_key() for _ in range(BATCH)]
    assert cluster_store.reserve_many(warm, [until] * BATCH, ["w"] * BATCH) == [True] * BATCH
    measured = xv.RedisNonceStore(cluster=True, client=cluster_store.client, prefix=f"rt{uuid.uuid4().hex[:12]}:")
    keys = [new_key() for _ in range(BATCH)]
    counter = SendCounter(monkeypatch)
    answers = measured.reserve_many(keys, [until] * BATCH, ["o"] * BATCH, [None, 10] * (BATCH // 2))
    trips = dict(counter.counts)
    monkeypatch.undo()
    assert answers == [True] * BATCH
    assert set(trips) <= set(redis_cluster.ports)
    assert all(n == 1 for n in trips.values()), trips
    assert sum(trips.values()) <= len(redis_cluster.ports)
    # The keys are spread over every master (so that was one trip to each, not one in all).
    landed = node_keys(redis_cluster, measured.prefix + "*")
    assert sum(landed.values()) == BATCH
    assert all(n > 0 for n in landed.values()), landed
    assert len(trips) == len(redis_cluster.ports)
    # Replays of the whole batch: again one round trip per node.
    counter = SendCounter(monkeypatch)
    assert measured.reserve_many(keys, [until] * BATCH, ["p"] * BATCH) == [False] * BATCH
    assert sum(counter.counts.values()) <= len(redis_cluster.ports)


def test_the_round_trip_counter_counts(cluster_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: per-key commands are counted one by one."""
    names = [f"x{i}" for i in range(10)]
    for name in names:  # warm up: a connection to each node
        cluster_store.client.get(name)
    counter = SendCounter(monkeypatch)
    for name in names:
        cluster_store.client.get(name)
    assert sum(counter.counts.values()) == 10
    assert len(counter.counts) > 1


def test_cluster_lifecycle(cluster_store: Any) -> None:
    until = int(time.time()) + 300
    keys = [new_key() for _ in range(12)]  # on several nodes
    assert cluster_store.reserve_many(keys + keys[:1], [until] * 13, ["o"] * 12 + ["x"], [100] * 13) == [True] * 12 + [False]
    for k in keys:
        assert cluster_store.charge(k, "o", 60) == 60
        assert code_of(lambda k=k: cluster_store.charge(k, "o", 41)) == "invalid_upto_evm_payload_settlement_exceeds_amount"
        assert code_of(lambda k=k: cluster_store.settle(k, "x")) == "reservation_not_owner"
    for k in keys[:6]:
        assert cluster_store.settle(k, "o") == 60
        assert code_of(lambda k=k: cluster_store.release(k, "o")) == "reservation_closed"
        assert cluster_store.state(k) == ("settled", "o", 60, None)
    for k in keys[6:]:
        cluster_store.release(k, "o")
        assert cluster_store.state(k) is None
    assert cluster_store.reserve_many(keys, [until] * 12, ["n"] * 12) == [False] * 6 + [True] * 6


def test_cluster_concurrent_charges_never_pass_the_cap(cluster_store: Any) -> None:
    check_concurrent_charges(cluster_store)


def cluster_ledger(cluster: RedisCluster) -> RedisLedger:
    return RedisLedger(cluster.url, cluster=True, prefix=f"l{uuid.uuid4().hex[:12]}:", timeout=2.0)


def test_cluster_ledger_lease_machine_and_claims(redis_cluster: RedisCluster) -> None:
    check_lease_machine(cluster_ledger(redis_cluster))
    check_claims(cluster_ledger(redis_cluster))


def test_cluster_ledger_spreads_its_records_and_due_merges_its_groups(redis_cluster: RedisCluster) -> None:
    ledger = cluster_ledger(redis_cluster)
    t = 1_000_000.0
    keys = [uuid.uuid4().hex for _ in range(60)]
    for i, key in enumerate(keys):
        assert ledger.open(key, {"kind": "upto", "session": f"s{key}", "due_at": repr(t + i)}, keep_until=4e9)
        assert ledger.find_session(f"s{key}")["state"] == "open"
    landed = node_keys(redis_cluster, ledger.prefix + "*r:*")
    assert sum(landed.values()) == 60 and all(n > 0 for n in landed.values()), landed
    # The earliest due, across the groups, in order; a limit cuts the merged list, not each group.
    assert ledger.due(now=t + 59, limit=100) == keys
    assert ledger.due(now=t + 59, limit=7) == keys[:7]
    assert ledger.due(now=t + 9.5) == keys[:10]
    assert ledger.due(now=t - 1) == []
    ledger.touch(keys[0], due_at=t + 100, now=t)
    assert ledger.due(now=t + 59) == keys[1:]
    taken = ledger.acquire(keys[1], "a", lease_seconds=30, now=t + 1)
    assert taken is not None and ledger.due(now=t + 30) == keys[2:31]
    assert ledger.finish(keys[1], "a", state="settled", outcome="{}")
    assert keys[1] not in ledger.due(now=t + 1000)


def test_cluster_with_a_master_down_refuses(redis_cluster: RedisCluster) -> None:
    """Last in this module: it kills the masters of the module's cluster."""
    store = xv.RedisNonceStore(redis_cluster.url, cluster=True, timeout=0.5, prefix=f"d{uuid.uuid4().hex[:12]}:")
    ledger = cluster_ledger(redis_cluster)
    try:
        v = verifier(store)
        now = int(time.time())
        assert v.verify(*(lambda p: (p.header, p.requirements))(sign_payment("permit2", now)), now=now).is_valid
        # Claims on every master, taken while all are up.
        claims = [uuid.uuid4().hex for _ in range(30)]
        for key in claims:
            assert ledger.acquire(key, "h", lease_seconds=30, now=now, record={"owner": "o"}, keep_until=now + 3600) is not None
        redis_cluster.nodes[2].kill()
        pays = [sign_payment(("eip3009", "permit2", "upto")[i % 3], now) for i in range(30)]  # some on the dead node
        results = v.verify_batch([(p.header, p.requirements) for p in pays], now=now)
        assert {r.invalid_reason for r in results} == {"nonce_store_unavailable"}
        assert not any(r.is_valid for r in results)
        # The ledger: a claim whose group is on the dead master can be neither taken, read nor
        # finished (an error, never "free" or "done"); one on a live master still answers.
        down, up = [], []
        for key in claims:
            try:
                assert ledger.get(key)["holder"] == "h"
                up.append(key)
            except NonceStoreError:
                down.append(key)
        assert down and up
        for key in down:
            for call in (
                lambda key=key: ledger.acquire(key, "x", lease_seconds=30, now=now + 60, record={"owner": "o"}, keep_until=now + 3600),
                lambda key=key: ledger.finish(key, "h", state="settled", outcome="{}"),
                lambda key=key: ledger.open(key, {"kind": "upto"}, keep_until=now + 3600),
                lambda key=key: ledger.touch(key, due_at=now),
            ):
                with pytest.raises(NonceStoreError):
                    call()
        with pytest.raises(NonceStoreError):
            ledger.due(now=now + 60)  # some groups cannot be read: no partial answer
        assert ledger.acquire(up[0], "x", lease_seconds=30, now=now + 10, record={"owner": "o"}, keep_until=now + 3600) is None
        assert ledger.finish(up[0], "h", state="settled", outcome="{}")
        # Every master down: redis-py raises RedisClusterException, which must fail closed too.
        redis_cluster.kill()
        for call in (
            lambda: ledger.acquire(up[1], "x", lease_seconds=30, now=now + 60, record={"owner": "o"}, keep_until=now + 3600),
            lambda: ledger.get(up[1]),
            lambda: ledger.finish(up[1], "h", state="settled", outcome="{}"),
            lambda: ledger.due(now=now),
            lambda: store.state(new_key()),
            lambda: store.settle(new_key(), "o"),
            lambda: store.reserve_many([new_key()], [now + 300], ["o"], now=now),
        ):
            with pytest.raises(NonceStoreError):
                call()
        results = v.verify_batch([(p.header, p.requirements) for p in pays[:3]], now=now)
        assert {r.invalid_reason for r in results} == {"nonce_store_unavailable"}
    finally:
        close_store(store)


def test_cluster_nodes_get_ports_their_bus_can_use(tmp_path: Any) -> None:
    """A node's cluster bus listens 10,000 above its port, so Redis exits on a port above
    55535; the kernel hands such ports out about one time in five, and five in a row once
    failed a CI run. Every node port the helper picks at creation is low enough (a retry picks
    through the same bound: RedisServer._highest_port)."""
    assert CLUSTER_HIGHEST_PORT + 10_000 == 65535
    ports = [RedisServer(tmp_path / f"n{i}", cluster=True).port for i in range(200)]
    assert max(ports) <= CLUSTER_HIGHEST_PORT, max(ports)
