"""Exactly once under concurrency: 50 simultaneous verifications of one payment header accept
it exactly once, in every one of 100 repetitions (a fresh payment per repetition), for every
store; 50 distinct payments all pass; concurrent upto charges never pass the cap.

- Threads: 50 threads of this process, released together by a barrier.
- Processes: 2 worker processes (spawned once per module) x 25 threads, all 50 released together
  by a cross-process barrier, each process with its own store object over the same SQLite file
  or the same Redis. ``MemoryNonceStore`` is in-process state: it has no two-process form, so
  it is tested with threads only.

The other 49 verdicts must be the replay reason (not ``nonce_store_unavailable``: a store that
gives up under contention is a refusal, but not the replay protection asked for here).

Redis (here and in test_redis_cluster.py) runs every check also with ``now`` 10 minutes and an
hour behind the server's clock: what a Redis clock running ahead of the gateway's looks like
from the gateway (libfaketime cannot run redis-server, so the skew is modelled through
``now``). A store that took its expiry from the server's clock would keep nothing there and
accept every copy.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from payments import sign_payment
from redis_servers import RedisServer
from test_stores import REPLAY_REASON, close_store, new_key, open_store, verifier

REPS = 100
CALLS = 50
PROCESSES = 2
THREADS_PER_PROCESS = CALLS // PROCESSES
DISTINCT_REPS = 5
BARRIER_TIMEOUT = 60.0
ACCEPT = "ACCEPT"
# How far the verifier's ``now`` lies behind the Redis server's clock.
SKEWS = [0, 600, 3600]
BATCH_COPIES = 10

# A store, described so another process can open its own connection to it.
StoreSpec = tuple[Any, ...]


def open_spec(spec: StoreSpec) -> Any:
    kind = spec[0]
    if kind == "memory":
        return xv.MemoryNonceStore()
    if kind == "sqlite":
        return xv.SqliteNonceStore(spec[1])
    if kind == "redis":
        _, url, cluster, prefix = spec
        return xv.RedisNonceStore(url, cluster=cluster, prefix=prefix, timeout=5.0)
    raise ValueError(kind)


def verdict(r: xv.VerifyResponse) -> str:
    return ACCEPT if r.is_valid else str(r.invalid_reason)


def run_reps(
    store: Any,
    reps: list[list[tuple[str, dict[str, Any]]]],
    now: int,
    pool: ThreadPoolExecutor,
    barrier: Any,
) -> list[list[str]]:
    """For each repetition, verifies its items on one thread each, all released by ``barrier``
    (whose other parties may be in another process); returns the verdicts per repetition."""
    v = verifier(store)

    def one(header: str, req: dict[str, Any]) -> str:
        barrier.wait(BARRIER_TIMEOUT)
        return verdict(v.verify(header, req, now=now))

    out = []
    for items in reps:
        futures = [pool.submit(one, h, r) for h, r in items]
        out.append([f.result() for f in futures])
    return out


# --------------------------------------------------------------------------------------------
# Two worker processes, reused across the tests of a module
# --------------------------------------------------------------------------------------------


def _worker_main(inbox: Any, outbox: Any, barrier: Any) -> None:
    pool = ThreadPoolExecutor(max_workers=THREADS_PER_PROCESS)
    while True:
        job = inbox.get()
        if job is None:
            break
        spec, reps, now = job
        try:
            store = open_spec(spec)
            try:
                outbox.put(("ok", run_reps(store, reps, now, pool, barrier)))
            finally:
                close_store(store)
        except BaseException:  # report, keep serving
            outbox.put(("error", traceback.format_exc()))
    pool.shutdown()


class ProcessPair:
    """``PROCESSES`` spawned workers sharing one cross-process barrier of ``CALLS`` parties."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.barrier = ctx.Barrier(CALLS)
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(PROCESSES)]
        self.procs = [ctx.Process(target=_worker_main, args=(q, self.outbox, self.barrier), daemon=True) for q in self.inboxes]
        for p in self.procs:
            p.start()

    def run(self, spec: StoreSpec, reps: list[list[tuple[str, dict[str, Any]]]], now: int) -> list[list[str]]:
        """Splits every repetition's items between the processes; returns all verdicts."""
        for i, q in enumerate(self.inboxes):
            q.put((spec, [items[i::PROCESSES] for items in reps], now))
        answers = []
        for _ in self.procs:
            try:
                status, value = self.outbox.get(timeout=300)
            except queue.Empty:
                raise AssertionError("the worker processes did not answer within 300 s") from None
            if status != "ok":
                self.barrier.abort()
                raise AssertionError(f"a worker process failed:\n{value}")
            answers.append(value)
        return [[v for answer in answers for v in answer[rep]] for rep in range(len(reps))]

    def close(self) -> None:
        for q in self.inboxes:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


@pytest.fixture(scope="module")
def process_pair() -> Iterator[ProcessPair]:
    pair = ProcessPair()
    try:
        yield pair
    finally:
        pair.close()


@pytest.fixture(scope="module")
def thread_pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        yield pool


# --------------------------------------------------------------------------------------------
# The checks, shared with test_redis_cluster.py
# --------------------------------------------------------------------------------------------


def one_header_reps(
    kinds: tuple[str, ...] = ("eip3009", "permit2", "upto"), skew: int = 0
) -> tuple[list[list[tuple[str, dict[str, Any]]]], list[str], int]:
    """REPS repetitions of CALLS copies of one fresh header (kinds in turn), valid at ``now``
    = the real clock less ``skew``."""
    now = int(time.time()) - skew
    reps, rep_kinds = [], []
    for i in range(REPS):
        kind = kinds[i % len(kinds)]
        p = sign_payment(kind, now)
        reps.append([(p.header, p.requirements)] * CALLS)
        rep_kinds.append(kind)
    return reps, rep_kinds, now


def assert_exactly_once(results: list[list[str]], kinds: list[str]) -> None:
    bad = []
    for i, (verdicts, kind) in enumerate(zip(results, kinds, strict=True)):
        accepts = verdicts.count(ACCEPT)
        others = {v for v in verdicts if v != ACCEPT}
        if accepts != 1 or others != {REPLAY_REASON[kind]} or len(verdicts) != CALLS:
            bad.append((i, kind, accepts, sorted(others)))
    assert not bad, f"{len(bad)}/{len(results)} repetitions were not exactly-once: {bad[:5]}"


def distinct_reps(skew: int = 0) -> tuple[list[list[tuple[str, dict[str, Any]]]], int]:
    now = int(time.time()) - skew
    reps = []
    for _ in range(DISTINCT_REPS):
        pays = [sign_payment(("eip3009", "permit2", "upto")[j % 3], now) for j in range(CALLS)]
        reps.append([(p.header, p.requirements) for p in pays])
    return reps, now


def assert_all_accepted(results: list[list[str]]) -> None:
    for verdicts in results:
        assert verdicts == [ACCEPT] * CALLS, sorted(set(verdicts))


def check_threads(store: Any, pool: ThreadPoolExecutor, skew: int = 0) -> None:
    barrier = threading.Barrier(CALLS)
    reps, kinds, now = one_header_reps(skew=skew)
    assert_exactly_once(run_reps(store, reps, now, pool, barrier), kinds)
    distinct, now = distinct_reps(skew)
    assert_all_accepted(run_reps(store, distinct, now, pool, barrier))


def check_processes(spec: StoreSpec, pair: ProcessPair, skew: int = 0) -> None:
    reps, kinds, now = one_header_reps(skew=skew)
    assert_exactly_once(pair.run(spec, reps, now), kinds)
    distinct, now = distinct_reps(skew)
    assert_all_accepted(pair.run(spec, distinct, now))


def check_one_batch(store: Any, skew: int = 0) -> None:
    """One ``verify_batch`` of BATCH_COPIES copies of one header, per kind: one accept."""
    now = int(time.time()) - skew
    v = verifier(store)
    for kind in ("eip3009", "permit2", "upto"):
        p = sign_payment(kind, now)
        verdicts = [verdict(r) for r in v.verify_batch([(p.header, p.requirements)] * BATCH_COPIES, now=now)]
        assert verdicts == [ACCEPT] + [REPLAY_REASON[kind]] * (BATCH_COPIES - 1), (kind, verdicts)


def check_lifecycle(store: Any, skew: int = 0) -> None:
    """Settle, release and charge through the verifier at ``now`` = real clock - ``skew``:
    settled and charged payments stay replays; a released one is accepted once more."""
    now = int(time.time()) - skew
    v = verifier(store)
    settled, released, session = sign_payment("eip3009", now), sign_payment("permit2", now), sign_payment("upto", now, amount=100)
    r = v.verify(settled.header, settled.requirements, now=now)
    assert r.is_valid, r.invalid_reason
    assert v.settle(r, now=now) == 0
    assert v.verify(settled.header, settled.requirements, now=now).invalid_reason == REPLAY_REASON["eip3009"]
    r = v.verify(released.header, released.requirements, now=now)
    assert r.is_valid
    assert v.verify(released.header, released.requirements, now=now).invalid_reason == REPLAY_REASON["permit2"]
    v.release(r, now=now)
    again = v.verify(released.header, released.requirements, now=now)
    assert again.is_valid
    assert v.verify(released.header, released.requirements, now=now).invalid_reason == REPLAY_REASON["permit2"]
    r = v.verify(session.header, session.requirements, now=now)
    assert r.is_valid
    assert v.charge(r, 60, now=now) == 60
    with pytest.raises(xv.ReservationError) as info:
        v.charge(r, 41, now=now)
    assert info.value.code == "invalid_upto_evm_payload_settlement_exceeds_amount"
    assert v.verify(session.header, session.requirements, now=now).invalid_reason == REPLAY_REASON["upto"]
    assert v.settle(r, now=now) == 60
    assert v.verify(session.header, session.requirements, now=now).invalid_reason == REPLAY_REASON["upto"]


def redis_spec(url: str, cluster: bool = False) -> StoreSpec:
    return ("redis", url, cluster, f"c{uuid.uuid4().hex[:12]}:")


# --------------------------------------------------------------------------------------------
# Exactly once, per store
# --------------------------------------------------------------------------------------------


def test_memory_store_threads(thread_pool: ThreadPoolExecutor) -> None:
    # MemoryNonceStore lives in one process (that is its documented scope): threads only.
    check_threads(open_spec(("memory",)), thread_pool)


def test_sqlite_store_threads(tmp_path: Path, thread_pool: ThreadPoolExecutor) -> None:
    store = open_spec(("sqlite", str(tmp_path / "nonces.sqlite3")))
    try:
        check_threads(store, thread_pool)
    finally:
        store.close()


def test_sqlite_store_two_processes(tmp_path: Path, process_pair: ProcessPair) -> None:
    path = str(tmp_path / "nonces.sqlite3")
    xv.SqliteNonceStore(path).close()  # created (and switched to WAL) before the workers open it
    check_processes(("sqlite", path), process_pair)


@pytest.mark.parametrize("skew", SKEWS)
def test_redis_store_threads(shared_redis_server: RedisServer, thread_pool: ThreadPoolExecutor, skew: int) -> None:
    store = open_spec(redis_spec(shared_redis_server.url))
    try:
        check_threads(store, thread_pool, skew)
    finally:
        close_store(store)


@pytest.mark.parametrize("skew", SKEWS)
def test_redis_store_two_processes(shared_redis_server: RedisServer, process_pair: ProcessPair, skew: int) -> None:
    check_processes(redis_spec(shared_redis_server.url), process_pair, skew)


@pytest.mark.parametrize("skew", SKEWS)
def test_redis_store_one_batch_and_lifecycle(shared_redis_server: RedisServer, skew: int) -> None:
    store = open_spec(redis_spec(shared_redis_server.url))
    try:
        check_one_batch(store, skew)
        check_lifecycle(store, skew)
    finally:
        close_store(store)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_local_stores_one_batch_and_lifecycle(tmp_path: Path, kind: str) -> None:
    store = open_spec(("memory",) if kind == "memory" else ("sqlite", str(tmp_path / "nonces.sqlite3")))
    try:
        check_one_batch(store)
        check_lifecycle(store)
    finally:
        close_store(store)


def test_the_check_catches_a_store_without_atomic_reservation(thread_pool: ThreadPoolExecutor) -> None:
    """The harness can fail: a check-then-insert store (the race in security.md §4.2) lets
    more than one of the 50 through in some repetition."""

    class RacyStore:
        def __init__(self) -> None:
            self.seen: set[bytes] = set()

        def reserve_many(self, keys: Any, valid_until: Any, owners: Any, caps: Any = None, *, now: Any = None) -> list[bool | None]:
            out: list[bool | None] = []
            for k in keys:
                fresh = k not in self.seen
                time.sleep(0.001)  # the window between the check and the insert
                self.seen.add(k)
                out.append(fresh)
            return out

    reps, kinds, now = one_header_reps()
    results = run_reps(RacyStore(), reps[:10], now, thread_pool, threading.Barrier(CALLS))
    with pytest.raises(AssertionError, match="not exactly-once"):
        assert_exactly_once(results, kinds[:10])


# --------------------------------------------------------------------------------------------
# Upto sessions: concurrent charges never pass the cap
# --------------------------------------------------------------------------------------------

CAP = 1_000
CHARGERS = 8
CHARGES_PER_THREAD = 40


def check_concurrent_charges(store: Any) -> None:
    key = new_key()
    until = int(time.time()) + 300
    assert store.reserve_many([key], [until], ["session"], [CAP]) == [True]
    barrier = threading.Barrier(CHARGERS)

    def charger(seed: int) -> list[tuple[int, int]]:
        rng = random.Random(seed)
        done: list[tuple[int, int]] = []
        barrier.wait(BARRIER_TIMEOUT)
        for _ in range(CHARGES_PER_THREAD):
            amount = rng.randint(1, 12)
            try:
                done.append((store.charge(key, "session", amount), amount))
            except xv.ReservationError as exc:
                assert exc.code == "invalid_upto_evm_payload_settlement_exceeds_amount"
        return done

    with ThreadPoolExecutor(max_workers=CHARGERS) as pool:
        charged = [c for f in [pool.submit(charger, s) for s in range(CHARGERS)] for c in f.result()]
    total = sum(amount for _, amount in charged)
    final = store.state(key)[2]
    assert total == final <= CAP
    # Every accepted charge moved the total from the previous one: no lost or doubled update.
    running = 0
    for new_total, amount in sorted(charged):
        assert new_total == running + amount, (new_total, running, amount)
        running = new_total
    assert running == final
    # 320 charges of 1..12 (about 2000 in all) against a cap of 1000: the session is used up.
    assert final > CAP - 12
    assert store.settle(key, "session") == final


def test_concurrent_charges_memory() -> None:
    check_concurrent_charges(xv.MemoryNonceStore())


def test_concurrent_charges_sqlite(tmp_path: Path) -> None:
    store = xv.SqliteNonceStore(tmp_path / "nonces.sqlite3")
    try:
        check_concurrent_charges(store)
    finally:
        store.close()


def test_concurrent_charges_redis(shared_redis_server: RedisServer) -> None:
    store = open_store("redis", redis_url=shared_redis_server.url)
    try:
        check_concurrent_charges(store)
    finally:
        close_store(store)


def test_concurrent_charges_through_the_verifier(thread_pool: ThreadPoolExecutor) -> None:
    """The same through ``Verifier.charge`` on a verified upto payment (memory store)."""
    now = int(time.time())
    v = verifier(xv.MemoryNonceStore())
    p = sign_payment("upto", now, amount=CAP)
    r = v.verify(p.header, p.requirements, now=now)
    assert r.is_valid
    barrier = threading.Barrier(CALLS)

    def charge() -> int:
        barrier.wait(BARRIER_TIMEOUT)
        try:
            v.charge(r, 30, now=now)
            return 30
        except xv.ReservationError as exc:
            assert exc.code == "invalid_upto_evm_payload_settlement_exceeds_amount"
            return 0

    spent = sum(f.result() for f in [thread_pool.submit(charge) for _ in range(CALLS)])
    assert spent == 990 == v.settle(r, now=now)

