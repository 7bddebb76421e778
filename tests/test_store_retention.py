"""What a store keeps, and for how long (issue 10 items 1 and 10; issue 9 §1).

- A settled key is never forgotten while the store lives (memory, SQLite, Redis): a payer who
  re-signs a settled authorization's nonce with a later deadline, after the first one's window
  and the store's margin have passed, gets the replay reason (EIP-3009 and Permit2, exact and
  upto). On-chain that nonce is spent: accepting would serve a request whose settlement reverts.
- An unsettled reservation may be forgotten after its expiry (test_stores.py covers that).
- A memory store full of settled keys refuses new reservations (fails closed).
- Deadlines at and past 2**63 - margin get one answer from every store: kept, their expiry
  clamped to 2**48.
- Redis: a settled key carries no TTL; an unsettled one lives (expiry - now) seconds, however
  far ``now`` lies behind the server's clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

import x402_verify as xv
from redis_servers import RedisServer
from test_stores import KINDS, REPLAY_REASON, close_store, new_key, open_store, sign_payment, verifier

MARGIN = 60
# A2's requirements allow its long validity (the verifier bounds validity by maxTimeoutSeconds).
LONG_TIMEOUT = 20_000
MAX_EXPIRES_AT = 2**48


def same_nonce(kind: str) -> int | bytes:
    return secrets.token_bytes(32) if kind == "eip3009" else secrets.randbits(256)


@pytest.mark.parametrize("kind", KINDS)
def test_a_resigned_authorization_reusing_a_settled_nonce_is_a_replay(store_kind: str, make_store: Callable[..., Any], kind: str) -> None:
    store = make_store(margin_seconds=MARGIN)
    v = verifier(store)
    t1 = int(time.time())
    # A1 ran out (window + margin) before t1. Memory and SQLite drop keys by ``now``; Redis
    # times a key's life itself, from the ``now`` it was made with (t0 lies before t1).
    t0 = t1 - 30 - MARGIN - 100
    nonce = same_nonce(kind)
    a1 = sign_payment(kind, t0, valid_for=30, nonce=nonce)
    r1 = v.verify(a1.header, a1.requirements, now=t0)
    assert r1.is_valid, r1.invalid_reason
    v.settle(r1, now=t0)
    if store_kind != "redis":
        assert store.sweep(now=t1) == 1  # a sweep after A1's expiry keeps the settled key
    a2 = sign_payment(kind, t1, valid_for=10_000, nonce=nonce, max_timeout=LONG_TIMEOUT)
    assert a2.header != a1.header
    r2 = v.verify(a2.header, a2.requirements, now=t1)
    assert r2.replay_key == r1.replay_key
    assert (r2.is_valid, r2.invalid_reason) == (False, REPLAY_REASON[kind])
    # And much later still.
    later = t1 + 10**6
    a3 = sign_payment(kind, later, valid_for=10_000, nonce=nonce, max_timeout=LONG_TIMEOUT)
    assert v.verify(a3.header, a3.requirements, now=later).invalid_reason == REPLAY_REASON[kind]
    assert store.state(r1.replay_key, now=later) == ("settled", r1.reservation, 0, None)


def test_control_a_fresh_nonce_with_the_same_terms_passes(make_store: Callable[..., Any]) -> None:
    """The re-signed payment of the test above is refused for its nonce only."""
    v = verifier(make_store(margin_seconds=MARGIN))
    t1 = int(time.time())
    for kind in KINDS:
        a2 = sign_payment(kind, t1, valid_for=10_000, max_timeout=LONG_TIMEOUT)
        r = v.verify(a2.header, a2.requirements, now=t1)
        assert r.is_valid, r.invalid_reason


def test_redis_settled_keys_carry_no_ttl(shared_redis_server: RedisServer) -> None:
    store = open_store("redis", redis_url=shared_redis_server.url, margin_seconds=MARGIN)
    raw = shared_redis_server.client()
    try:
        now = int(time.time()) - 3600  # an hour behind the server
        settled, reserved = new_key(), new_key()
        assert store.reserve_many([settled, reserved], [now + 30] * 2, ["o", "o"], now=now) == [True, True]
        assert 0 < raw.pttl(store.prefix + reserved.hex()) <= (30 + MARGIN) * 1000
        store.settle(settled, "o", now=now)
        assert raw.pttl(store.prefix + settled.hex()) == -1  # no TTL: kept for good
        assert store.state(settled) == ("settled", "o", 0, None)
        assert store.state(reserved) == ("reserved", "o", 0, now + 30 + MARGIN)
    finally:
        raw.close()
        close_store(store)


def test_a_memory_store_full_of_settled_keys_refuses_new_reservations() -> None:
    store = xv.MemoryNonceStore(3, margin_seconds=0)
    v = verifier(store)
    t0 = int(time.time())
    pays = [sign_payment(kind, t0, valid_for=30) for kind in KINDS]
    for p in pays:
        r = v.verify(p.header, p.requirements, now=t0)
        assert r.is_valid
        v.settle(r, now=t0)
    later = t0 + 10_000  # every authorization long expired
    assert store.sweep(now=later) == 3  # nothing to drop: all settled
    fresh = [sign_payment(kind, later) for kind in KINDS]
    assert [v.verify(p.header, p.requirements, now=later).invalid_reason for p in fresh] == ["nonce_store_unavailable"] * 3
    assert store.reserve_many([new_key()], [later + 100], ["o"], now=later) == [None]
    assert len(store) == 3


@pytest.mark.parametrize("until", [2**48 - 1, 2**63 - MARGIN, 2**63 - 1, 2**63, 2**64 - 1, 2**256, 2**1000])
def test_distant_deadlines_get_one_answer_from_every_store(store: Any, until: int) -> None:
    """Issue 10 item 10: SQLite used to raise OverflowError, Redis to refuse PXAT (both
    ``nonce_store_unavailable``), the memory store to accept. Now every store keeps the key,
    with its expiry clamped to 2**48."""
    k, now = new_key(), int(time.time())
    assert store.reserve_many([k], [until], ["o"], now=now) == [True]
    assert store.reserve_many([k], [until], ["p"], now=now) == [False]
    assert store.state(k, now=now) == ("reserved", "o", 0, MAX_EXPIRES_AT)
    assert store.settle(k, "o", now=now) == 0
    assert store.state(k, now=now) == ("settled", "o", 0, None)


def test_a_now_past_the_latest_expiry_keeps_nothing(store: Any) -> None:
    k = new_key()
    assert store.reserve_many([k], [2**64 - 1], ["o"], now=MAX_EXPIRES_AT) == [None]
    assert store.state(k, now=MAX_EXPIRES_AT) is None


def test_sqlite_expired_log_rows_go_in_steps_sized_by_the_batches_since_the_last(tmp_path: Any) -> None:
    """The reserve path deletes expired log rows once a second per process (nothing more
    expires within a second), as many as the batches since the previous step could have
    added (64 a batch, at most 4096), so the log stays the size of the live reservations
    under load without a delete in every commit; a sweep takes any backlog."""
    store = xv.SqliteNonceStore(tmp_path / "log.sqlite3", margin_seconds=0)
    try:
        conn = store._conn()

        def logged() -> int:
            count: int = conn.execute("SELECT count(*) FROM reservation_log").fetchone()[0]
            return count

        t0 = int(time.time())
        for _ in range(100):  # 100 batches of 4 in one second: one step, at the first
            assert store.reserve_many([new_key() for _ in range(4)], [t0 + 10] * 4, ["o"] * 4, now=t0) == [True] * 4
        assert logged() == 400
        # Later, every one of them expired: the first batch of the new second removes them
        # all (64 x 64 rows may go), not the 64 of a single batch's step.
        t1 = t0 + 100
        fresh = [new_key() for _ in range(4)]
        assert store.reserve_many(fresh, [t1 + 10] * 4, ["o"] * 4, now=t1) == [True] * 4
        assert logged() == 4
        # Within that second no step runs: what expires meanwhile waits for the next one.
        assert store.reserve_many([new_key()], [t1 + 1] * 1, ["o"], now=t1) == [True]
        assert store.reserve_many([new_key()], [t1 + 10], ["o"], now=t1) == [True]
        assert logged() == 6
        assert store.reserve_many([new_key()], [t1 + 20], ["o"], now=t1 + 5) == [True]
        assert logged() == 6  # the one that expired at t1 + 1 went, this one came
        assert [store.state(k, now=t1 + 5) for k in fresh] == [("reserved", "o", 0, t1 + 10)] * 4
    finally:
        store.close()


def test_sqlite_index_holds_only_live_entries_and_stays_out_of_the_gc(tmp_path: Any) -> None:
    """Each process's index of the log drops entries as they expire (in expiry order, whatever
    order the log holds them in), so it stays the size of the live reservations; and neither
    it nor its expiry buckets is tracked by the cyclic GC, whose collections would otherwise
    walk every entry (measured: 2-7 ms collections, hundreds a second, at 300k entries)."""
    import gc

    store = xv.SqliteNonceStore(tmp_path / "index.sqlite3", margin_seconds=0)
    try:
        t0 = int(time.time())
        keys = [new_key() for _ in range(300)]
        expiries = [t0 + 10 + (i * 7919) % 97 for i in range(300)]  # not in log order
        owners = [f"o{i}" for i in range(300)]
        assert store.reserve_many(keys, expiries, owners, now=t0) == [True] * 300
        # One released, then reserved again by another owner with a later expiry.
        store.release(keys[0], "o0", now=t0)
        assert store.reserve_many([keys[0]], [t0 + 200], ["again"], now=t0) == [True]
        gc.collect()
        assert not gc.is_tracked(store._index) and not gc.is_tracked(store._expiring)
        for at in (t0 + 30, t0 + 60, t0 + 106, t0 + 199):
            assert store.reserve_many([new_key()], [t0 + 10_000], ["late"], now=at) == [True]
            live = {k for k, e in zip(keys, expiries, strict=True) if e > at and k != keys[0]}
            assert set(store._index) == live | {keys[0]} | {k for k, e in store._index.items() if e.endswith(" late")}
            assert all(store.state(k, now=at) == ("reserved", owners[keys.index(k)], 0, expiries[keys.index(k)]) for k in live)
        assert store.state(keys[0], now=t0 + 199) == ("reserved", "again", 0, t0 + 200)
        assert store.reserve_many([new_key()], [t0 + 10_000], ["late"], now=t0 + 200) == [True]
        assert keys[0] not in store._index
        gc.collect()
        assert not gc.is_tracked(store._index) and not gc.is_tracked(store._expiring)
    finally:
        store.close()


@pytest.mark.parametrize("handles", [1, 2])
def test_sqlite_a_release_outlives_the_next_step_of_expiry(tmp_path: Any, handles: int) -> None:
    """A release is a tombstone in the log, kept until the entry it cancels expires: a step of
    expiry in a later second must not take it before each process has read it, or that
    process's index would still answer the released payment as reserved (a replay)."""
    path = tmp_path / "release.sqlite3"
    stores = [xv.SqliteNonceStore(path, margin_seconds=0) for _ in range(handles)]
    try:
        t0 = int(time.time())
        key = new_key()
        assert stores[0].reserve_many([key], [t0 + 100], ["first"], now=t0) == [True]
        assert stores[-1].reserve_many([new_key()], [t0 + 100], ["other"], now=t0) == [True]  # the last handle has read it
        stores[0].release(key, "first", now=t0)
        # The next second: each handle's first batch steps through expiry, then reads the log.
        for n, store in enumerate(reversed(stores)):
            assert store.reserve_many([key], [t0 + 100], [f"again{n}"], now=t0 + 1 + n) == [n == 0], n
    finally:
        for store in stores:
            store.close()


def test_sqlite_sweep_takes_the_log_in_windows_and_counts_outside_the_write_turn(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep must not hold the write turn for the whole log: as one transaction, 500k entries
    held it 377 ms (339 of them counting), stalling every request behind it. It deletes the
    log's expired rows in windows, a write transaction each, and counts with no turn held;
    what it drops and the count it returns stay exact."""
    from x402_verify.stores import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_SWEEP_WINDOW", 8)
    store = xv.SqliteNonceStore(tmp_path / "sweep.sqlite3", margin_seconds=0)
    try:
        t0 = int(time.time())
        keys = [new_key() for _ in range(100)]
        assert store.reserve_many(keys, [t0 + (5 if i % 2 else 500) for i in range(100)], ["o"] * 100, now=t0) == [True] * 100
        assert store.settle(keys[0], "o", now=t0) == 0  # moved into ``reservations``, still in the log: counted once
        conn = store._conn()
        seen: list[tuple[int, str]] = []
        conn.set_trace_callback(lambda sql: seen.append((getattr(store._local, "turns", 0), sql)))
        assert store.sweep(now=t0 + 10) == 50
        conn.set_trace_callback(None)
        deletes = [turns for turns, sql in seen if sql.startswith("DELETE FROM reservation_log")]
        counts = [turns for turns, sql in seen if sql.startswith("SELECT count(*) FROM reservations")]
        begins = [sql for _, sql in seen if sql.startswith("BEGIN")]
        assert deletes == [1] * 13  # 100 log rows in windows of 8: 12 full, then one of 4
        assert len(begins) == 1 + 13 and counts and set(counts) == {0}
        assert conn.execute("SELECT count(*) FROM reservation_log WHERE expires_at <= ?", (t0 + 10,)).fetchone() == (0,)
        assert [store.state(k, now=t0 + 10) is None for k in keys[1:]] == [bool(i % 2) for i in range(1, 100)]
    finally:
        store.close()


def test_sqlite_sweep_counts_the_moved_entries_from_the_smaller_side(tmp_path: Any) -> None:
    """The sweep's count takes each entry that ``reservations`` and the log's index both hold
    once, looking it up from whichever side is smaller (by IN lists over 600k live entries the
    count took 420 ms of a sweep, every 30 s in each worker): the same count either way."""
    store = xv.SqliteNonceStore(tmp_path / "count.sqlite3", margin_seconds=0)
    try:
        t0 = int(time.time())
        conn = store._conn()
        seen: list[str] = []
        conn.set_trace_callback(seen.append)

        def swept(now: int) -> tuple[int, str]:
            seen.clear()
            n = store.sweep(now=now)
            side = {"SELECT key FROM reservations": "reservations", "SELECT count(*) FROM reservations WHERE key IN": "index"}
            found = {name for sql, name in side.items() for q in seen if q.startswith(sql)}
            assert len(found) == 1, seen
            return n, found.pop()

        # Many live log entries, few rows in ``reservations``: two of them settled (moved, so in
        # both), one more released (its tombstone drops it from the index).
        live = [new_key() for _ in range(50)]
        assert store.reserve_many(live, [t0 + 500] * 50, ["o"] * 50, now=t0) == [True] * 50
        store.settle(live[0], "o", now=t0)
        store.settle(live[1], "o", now=t0)
        store.release(live[2], "o", now=t0)
        assert swept(t0 + 1) == (49, "reservations")
        # Then the other way round: 40 settled rows whose log entries expired and were swept,
        # against 3 live entries of which one is settled.
        old = [new_key() for _ in range(40)]
        assert store.reserve_many(old, [t0 + 5] * 40, ["o"] * 40, now=t0) == [True] * 40
        for key in old:
            store.settle(key, "o", now=t0)
        for key in live[3:]:
            store.release(key, "o", now=t0)
        assert store.sweep(now=t0 + 600) == 42  # the log is empty, 42 settled rows remain
        fresh = [new_key() for _ in range(3)]
        assert store.reserve_many(fresh, [t0 + 1_000] * 3, ["o"] * 3, now=t0 + 600) == [True] * 3
        store.settle(fresh[0], "o", now=t0 + 600)
        assert swept(t0 + 600) == (42 + 3, "index")
        conn.set_trace_callback(None)
    finally:
        store.close()
