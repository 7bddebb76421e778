"""The exposure ledger at the store level, for the memory, SQLite and Redis stores:
``reserve_exposed`` is ``reserve_many`` (the same rules: relative Redis lifetimes, no
dead-on-arrival accepts, settled keys kept for ever, the store's value format) with the
payer's outstanding sum decided in the same step. No chain is needed: the readings are made
by hand, as the chain stage would make them."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from x402_verify.chain import exposure as ex
from x402_verify.chain.exposure import EXPOSED, Exposure, MemoryExposureStore, ledger_id

NOW = 1_800_000_000
TOKEN, PAYER = "0x" + "ab" * 20, "0x" + "cd" * 20
LEDGER = ledger_id(8453, TOKEN, PAYER)
HUGE = 2**200


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest, name: str = "a") -> Any:
    if kind == "memory":
        return MemoryExposureStore(xv.MemoryNonceStore())
    if kind == "sqlite":
        return xv.SqliteNonceStore(tmp_path / f"{name}.db")
    server = request.getfixturevalue("shared_redis_server")
    return xv.RedisNonceStore(server.url, prefix=f"e{secrets.token_hex(4)}:")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    s = make_store(kind, tmp_path, request)
    yield s
    s.close()


def reading(amount: int, capacity: int, block: int = 10, ledger: str = LEDGER) -> Exposure:
    return Exposure(ledger, amount, capacity, block)


def key() -> bytes:
    return secrets.token_bytes(32)


def test_dead_on_arrival_is_refused_not_accepted(store: Any) -> None:
    # valid_until + margin (60) is not after now: the store would keep it for no time.
    k = key()
    assert store.reserve_exposed([k], [NOW - 60], ["a"], [None], [reading(1, 10)], now=NOW) == [None]
    assert store.state(k, now=NOW) is None
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW) == 0


def test_a_settled_key_is_a_replay_for_ever(store: Any) -> None:
    k = key()
    assert store.reserve_exposed([k], [NOW + 100], ["a"], [None], [reading(1, 10)], now=NOW) == [True]
    store.settle(k, "a", now=NOW)
    later = NOW + 10**7
    assert store.reserve_exposed([k], [later + 100], ["b"], [None], [reading(1, 10)], now=later) == [False]
    assert store.state(k, now=later)[0] == "settled"
    # Its amount stopped counting at the reservation's expiry (the authorization is dead).
    assert store.outstanding(8453, TOKEN, PAYER, now=later) == 0


def test_retry_by_the_same_owner_is_idempotent_and_counted_once(store: Any) -> None:
    k = key()
    assert store.reserve_exposed([k, k], [NOW + 100] * 2, ["a", "b"], [None] * 2, [reading(3, 10)] * 2, now=NOW) == [True, False]
    assert store.reserve_exposed([k], [NOW + 100], ["a"], [None], [reading(3, 10)], now=NOW) == [True]
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW) == 3


def test_the_reservation_is_the_stores_own(store: Any) -> None:
    """What reserve_exposed wrote, every other store method reads: state, charge, settle."""
    k = key()
    assert store.reserve_exposed([k], [NOW + 100], ["a"], [7], [reading(7, 10)], now=NOW) == [True]
    assert store.state(k, now=NOW)[:3] == ("reserved", "a", 0)
    assert store.charge(k, "a", 5, now=NOW) == 5
    with pytest.raises(xv.ReservationError):
        store.charge(k, "a", 3, now=NOW)
    assert store.settle(k, "a", now=NOW) == 5
    # A settled upto session counts what it charged (the store's total), not its cap, even
    # when the settlement's block was never told.
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW) == 5


def test_release_frees_the_capacity(store: Any) -> None:
    a, b = key(), key()
    assert store.reserve_exposed([a, b], [NOW + 100] * 2, ["a", "b"], [None] * 2, [reading(6, 10)] * 2, now=NOW) == [True, EXPOSED]
    assert store.state(b, now=NOW) is None  # refused: nothing held
    store.release(a, "a", now=NOW)
    assert store.reserve_exposed([b], [NOW + 100], ["b"], [None], [reading(6, 10)], now=NOW) == [True]


def test_a_block_on_an_unsettled_reservation_is_ignored(store: Any) -> None:
    k = key()
    assert store.reserve_exposed([k], [NOW + 100], ["a"], [None], [reading(4, 10)], now=NOW) == [True]
    store.settle_exposure(k, "a", LEDGER, 5, now=NOW)  # not settled: the block must not count
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW, as_of_block=100) == 4
    store.settle(k, "a", now=NOW)
    store.settle_exposure(k, "b", LEDGER, 5, now=NOW)  # another owner: ignored
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW, as_of_block=100) == 4
    store.settle_exposure(k, "a", LEDGER, 5, now=NOW)
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW, as_of_block=5) == 0
    assert store.outstanding(8453, TOKEN, PAYER, now=NOW, as_of_block=4) == 4


def test_entries_per_payer_are_bounded(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "MAX_LEDGER_ENTRIES", 3)
    keys = [key() for _ in range(5)]
    out = store.reserve_exposed(keys, [NOW + 100] * 5, [f"o{i}" for i in range(5)], [None] * 5, [reading(1, HUGE)] * 5, now=NOW)
    assert out == [True, True, True, EXPOSED, EXPOSED]
    other = ledger_id(8453, TOKEN, "0x" + "ee" * 20)
    assert store.reserve_exposed([key()], [NOW + 100], ["x"], [None], [reading(1, HUGE, ledger=other)], now=NOW) == [True]


def test_readings_are_checked(store: Any) -> None:
    k = key()
    with pytest.raises(TypeError):
        store.reserve_exposed([k], [NOW + 100], ["a"], [None], [(LEDGER, 1, 10, 10)], now=NOW)
    with pytest.raises(ValueError):
        store.reserve_exposed([k], [NOW + 100], ["a"], [None], [reading(-1, 10)], now=NOW)
    with pytest.raises(ValueError):
        store.reserve_exposed([k], [NOW + 100], ["a"], [None], [reading(1, 2**256)], now=NOW)
    with pytest.raises(TypeError):
        store.reserve_exposed([k], [NOW + 100], ["a"], [None], [reading(1, 10, block=True)], now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.reserve_exposed([k], [NOW + 100], ["a"], [None], [], now=NOW)
    with pytest.raises(ValueError):
        store.outstanding(8453, "0x12", PAYER, now=NOW)
    with pytest.raises(TypeError):
        store.outstanding(8453, TOKEN, PAYER, now=NOW, as_of_block="7")
    assert store.state(k, now=NOW) is None  # nothing was reserved by any of these


def test_reserve_exposed_follows_reserve_many(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """With capacity to spare, reserve_exposed and reserve_many give the same outcomes for the
    same operations (replays, retries, dead-on-arrival, expiry, settle, release): one set of
    reservation rules."""
    plain, exposed = make_store(kind, tmp_path, request, "plain"), make_store(kind, tmp_path, request, "exposed")
    if kind == "memory":
        plain = plain.inner
    rng = random.Random(14)
    pool = [bytes([i]) * 32 for i in range(40)]
    held: dict[bytes, str] = {}
    now = NOW
    # validBefore - now: dead on arrival (-100, -60: margin 60), then kept for 1, 60, 70, 160 s.
    offsets = [-100, -60, -59, 0, 10, 100]
    if kind == "redis":
        # Redis counts a lifetime down in real seconds while this test's clock moves only by
        # its ticks: a 1 s reservation (-59) would expire between the two stores' calls on a
        # loaded machine. There a kept reservation gets an extra hour, so nothing expires during
        # the run and only the rules can tell the stores apart; the same draws keep the same
        # operations. The 1 s boundary itself: test_the_last_kept_second_is_kept_by_both_entry_points.
        offsets = [o if o <= -60 else o + 3600 for o in offsets]
    try:
        for step in range(300):
            op = rng.choice(["reserve", "reserve", "settle", "release", "tick"])
            if op == "tick":
                now += rng.choice([1, 30, 200])
            elif op == "reserve":
                ks = [rng.choice(pool) for _ in range(rng.randint(1, 3))]
                until = [now + rng.choice(offsets) for _ in ks]
                owners = [f"s{step}:{i}" for i in range(len(ks))]
                a = plain.reserve_many(ks, until, owners, [None] * len(ks), now=now)
                b = exposed.reserve_exposed(ks, until, owners, [None] * len(ks), [reading(1, HUGE)] * len(ks), now=now)
                assert a == b, (step, a, b)
                for k, o, ok in zip(ks, owners, a, strict=True):
                    if ok and k not in held:
                        held[k] = o
            elif held:
                k = rng.choice(sorted(held))
                outcome = []
                for s in (plain, exposed):
                    try:
                        getattr(s, op)(k, held[k], now=now)
                        outcome.append("ok")
                    except xv.ReservationError as exc:
                        outcome.append(exc.code)
                assert outcome[0] == outcome[1], (step, op, outcome)
                if op == "release" or outcome[0] != "ok":
                    held.pop(k)
            for k in pool:
                sa, sb = plain.state(k, now=now), exposed.state(k, now=now)
                assert (sa and sa[:3]) == (sb and sb[:3]), (step, k.hex()[:4], sa, sb)
    finally:
        plain.close()
        exposed.close()


def test_the_last_kept_second_is_kept_by_both_entry_points(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """validBefore + margin one second after ``now``: reserve_many and reserve_exposed both keep
    it (True, not the dead-on-arrival None), for that one second only. Memory and SQLite are
    asked at ``now`` and a second later on the verifier's clock; Redis, which counts the second
    down itself, is asked for the keys' remaining lifetime (its copy may have gone already)."""
    plain, exposed = make_store(kind, tmp_path, request, "plain"), make_store(kind, tmp_path, request, "exposed")
    if kind == "memory":
        plain = plain.inner
    try:
        k = key()
        assert plain.reserve_many([k], [NOW - 59], ["a"], [None], now=NOW) == [True]
        assert exposed.reserve_exposed([k], [NOW - 59], ["a"], [None], [reading(1, HUGE)], now=NOW) == [True]
        if kind == "redis":
            for s, name in ((plain, plain._name(k)), (exposed, exposed._name(k)), (exposed, f"{exposed.prefix}x:{LEDGER}")):
                pttl = s.client.pttl(name)
                assert pttl == -2 or 0 < pttl <= 1000, (name, pttl)  # -2: gone; never -1 (kept for good)
            return
        for s in (plain, exposed):
            assert s.state(k, now=NOW) == ("reserved", "a", 0, NOW + 1)
            assert s.reserve_many([k], [NOW + 100], ["b"], now=NOW) == [False]
            assert s.state(k, now=NOW + 1) is None
        assert plain.reserve_many([k], [NOW + 100], ["b"], now=NOW + 1) == [True]
        assert exposed.reserve_exposed([k], [NOW + 100], ["b"], [None], [reading(1, HUGE)], now=NOW + 1) == [True]
    finally:
        plain.close()
        exposed.close()


def test_redis_lifetimes_are_relative_to_the_verifiers_clock(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A verifier whose clock is far from the server's: the reservation and the ledger live
    validBefore + margin - now, never an absolute instant the server has passed."""
    s = make_store("redis", tmp_path, request)
    try:
        k = key()
        long_ago = 1_000_000  # 1970: the server's clock is decades past this instant
        assert s.reserve_exposed([k], [long_ago + 100], ["a"], [None], [reading(2, 10)], now=long_ago) == [True]
        assert 0 < s.client.pttl(s._name(k)) <= 160_000
        ledger_key = f"{s.prefix}x:{LEDGER}"
        assert 0 < s.client.pttl(ledger_key) <= 160_000
        assert s.outstanding(8453, TOKEN, PAYER, now=long_ago) == 2
        # And the value is the store's own format.
        assert s.client.get(s._name(k)) == s._value("R", None, 0, long_ago + 160, "a")
        assert s.reserve_exposed([k], [long_ago + 100], ["b"], [None], [reading(2, 10)], now=long_ago) == [False]
    finally:
        s.close()


def test_a_redis_cluster_store_refuses_exposure(redis_cluster: Any) -> None:
    s = xv.RedisNonceStore(redis_cluster.url, cluster=True, prefix=f"c{secrets.token_hex(4)}:")
    try:
        with pytest.raises(ValueError, match="single Redis server"):
            s.reserve_exposed([key()], [NOW + 100], ["a"], [None], [reading(1, 10)], now=NOW)
        with pytest.raises(ValueError, match="single Redis server"):
            s.outstanding(8453, TOKEN, PAYER, now=NOW)
    finally:
        s.close()


def test_memory_wrappers_of_one_store_share_its_ledger() -> None:
    inner = xv.MemoryNonceStore()
    one, two = MemoryExposureStore(inner), MemoryExposureStore(inner)
    assert one.reserve_exposed([key()], [NOW + 100], ["a"], [None], [reading(6, 10)], now=NOW) == [True]
    assert two.reserve_exposed([key()], [NOW + 100], ["b"], [None], [reading(6, 10)], now=NOW) == [EXPOSED]
    assert two.outstanding(8453, TOKEN, PAYER, now=NOW) == 6


def test_memory_ledger_forgets_dead_entries() -> None:
    s = MemoryExposureStore(xv.MemoryNonceStore())

    def one(i: int, now: int) -> None:
        payer = ledger_id(1, TOKEN, "0x" + f"{i:040x}")
        assert s.reserve_exposed([key()], [now + 10], ["a"], [None], [reading(1, 1, ledger=payer)], now=now) == [True]

    for i in range(5000):
        one(i, NOW)
    # Long after those expired, as many new payers: the ledger is bounded by what is live (it
    # sweeps once it has doubled), not by every payer ever seen.
    for i in range(5000, 10_000):
        one(i, NOW + 9_000)
    assert s._state.size == 5000


def test_verifier_settle_checks_the_block_before_settling() -> None:
    import time

    from payments import sign_payment

    v = xv.Verifier()
    now = int(time.time())
    p = sign_payment("eip3009", now)
    r = v.verify(p.header, p.requirements, now=now)
    assert r.is_valid
    for bad, error in ((True, TypeError), ("7", TypeError), (-1, ValueError), (2**63, ValueError)):
        with pytest.raises(error):
            v.settle(r, block=bad, now=now)  # type: ignore[arg-type]
    assert v.nonce_store.state(r.replay_key, now=now)[0] == "reserved"
    assert v.settle(r, block=7, now=now) == 0
