"""Replay protection: the same lifecycle from every nonce store, directly and through ``Verifier``.

Each test runs against ``MemoryNonceStore`` (in process), ``SqliteNonceStore`` (a file in a tmp
dir) and ``RedisNonceStore`` (a throwaway redis-server, see ``redis_servers.py``; each test gets
its own key prefix). The lifecycle checked (``rust/core/src/store/mod.rs``):

- reserve: absent -> reserved by the owner; the same owner again -> True (idempotent retry);
  anyone else, or after settle -> False (replay); the same key twice in one batch -> one True;
- only the owner token's holder settles / releases / charges (``reservation_not_owner``);
- settle closes the reservation (idempotent, returns the upto total); release / charge after it
  are ``reservation_closed``; release frees the key;
- upto sessions: charges add up to at most the cap (``..._settlement_exceeds_amount``);
- expiry at validBefore / deadline + margin, for unsettled reservations only: the key is gone
  from the store and the verifier's time check (not the replay check) refuses the payment; a
  settled key stays (``test_store_retention.py``); an item that would expire before ``now`` is
  refused (``None``), never acknowledged;
- Permit2 signature twins (high-s, EIP-2098 compact) of an accepted payment are replays, and a
  ``"01"``-style nonce spelling is refused as non-canonical before it reaches the store.

The other store test files import the payment helpers from here (``sign_payment`` ..., defined in
tests/payments.py).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from payments import FAC, high_s_twin, requirements, sign_payment
from payments import compact as compact_twin
from redis_servers import RedisServer
from x402_verify import ReservationError

# --------------------------------------------------------------------------------------------
# Shared helpers (the signed x402 v2 payments come from tests/payments.py: sign_payment ...)
# --------------------------------------------------------------------------------------------

KINDS = ("eip3009", "permit2", "upto")
REPLAY_REASON = {"eip3009": "invalid_exact_evm_nonce_already_used", "permit2": "permit2_nonce_already_used", "upto": "permit2_nonce_already_used"}
TIME_REASON = {"eip3009": "invalid_exact_evm_payload_authorization_valid_before", "permit2": "permit2_deadline_expired", "upto": "permit2_deadline_expired"}
STORE_KINDS = ("memory", "sqlite", "redis")
# Stores that drop expired keys by the ``now`` they are handed. (Redis gives each key a
# lifetime relative to that ``now``, and its server counts it down in real time.)
LOCAL_CLOCK_STORES = ("memory", "sqlite")


def verifier(store: Any, **kwargs: Any) -> xv.Verifier:
    return xv.Verifier(nonce_store=store, facilitator_addresses=[FAC], **kwargs)


def new_key() -> bytes:
    return secrets.token_bytes(32)


def open_store(kind: str, *, path: Path | None = None, redis_url: str | None = None, margin_seconds: int = 60, **kwargs: Any) -> Any:
    """A fresh store of ``kind``: memory; sqlite at ``path``; redis at ``redis_url`` under a
    unique key prefix (so tests sharing one server never see each other's keys)."""
    if kind == "memory":
        return xv.MemoryNonceStore(margin_seconds=margin_seconds, **kwargs)
    if kind == "sqlite":
        assert path is not None
        return xv.SqliteNonceStore(path, margin_seconds=margin_seconds, **kwargs)
    if kind == "redis":
        assert redis_url is not None
        kwargs.setdefault("prefix", f"t{uuid.uuid4().hex[:12]}:")
        kwargs.setdefault("timeout", 2.0)
        return xv.RedisNonceStore(redis_url, margin_seconds=margin_seconds, **kwargs)
    raise ValueError(kind)


def close_store(store: Any) -> None:
    store.close()


def code_of(call: Callable[[], Any]) -> str:
    """The ``ReservationError.code`` that ``call`` raises (fails if it returns)."""
    with pytest.raises(ReservationError) as info:
        call()
    return info.value.code


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``make_store(margin_seconds=60, **kw)`` -> a fresh store of the parametrized kind."""
    opened: list[Any] = []

    def make(**kwargs: Any) -> Any:
        url = None
        if store_kind == "redis":
            url = request.getfixturevalue("shared_redis_server").url
        store = open_store(store_kind, path=tmp_path / f"nonces-{len(opened)}.sqlite3", redis_url=url, **kwargs)
        opened.append(store)
        return store

    yield make
    for s in opened:
        close_store(s)


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    return make_store()


def _until() -> int:
    return int(time.time()) + 300


# --------------------------------------------------------------------------------------------
# The lifecycle, store by store
# --------------------------------------------------------------------------------------------


def test_reserve_retry_by_the_same_owner_is_idempotent_anyone_else_is_a_replay(store: Any) -> None:
    k, until = new_key(), _until()
    assert store.reserve_many([k], [until], ["owner-a"]) == [True]
    assert store.reserve_many([k], [until], ["owner-a"]) == [True]  # a retried reservation
    assert store.reserve_many([k], [until], ["owner-b"]) == [False]
    state = store.state(k)
    assert state is not None and state[:3] == ("reserved", "owner-a", 0)
    assert state[3] == until + 60


def test_same_key_twice_in_one_batch_is_accepted_once(store: Any) -> None:
    k, other, until = new_key(), new_key(), _until()
    assert store.reserve_many([k, other, k], [until] * 3, ["a", "x", "b"]) == [True, True, False]
    assert store.state(k)[1] == "a"
    # The same owner twice in one batch (a retried item): both acknowledged, one reservation.
    k2 = new_key()
    assert store.reserve_many([k2, k2], [until] * 2, ["a", "a"]) == [True, True]


def test_only_the_holder_settles_or_releases(store: Any) -> None:
    k, until = new_key(), _until()
    assert store.reserve_many([k], [until], ["holder"]) == [True]
    assert code_of(lambda: store.settle(k, "intruder")) == "reservation_not_owner"
    assert code_of(lambda: store.release(k, "intruder")) == "reservation_not_owner"
    assert store.state(k)[:2] == ("reserved", "holder")
    assert store.settle(k, "holder") == 0
    assert code_of(lambda: store.release(k, "intruder")) == "reservation_not_owner"
    assert code_of(lambda: store.settle(k, "intruder")) == "reservation_not_owner"


def test_settle_closes_the_reservation(store: Any) -> None:
    k, until = new_key(), _until()
    assert store.reserve_many([k], [until], ["o"]) == [True]
    assert store.settle(k, "o") == 0
    assert store.settle(k, "o") == 0  # idempotent
    assert code_of(lambda: store.release(k, "o")) == "reservation_closed"
    assert store.state(k)[:2] == ("settled", "o")
    # A settled key is a replay for everyone, its owner included.
    assert store.reserve_many([k, k], [until] * 2, ["o", "p"]) == [False, False]


def test_release_frees_the_key(store: Any) -> None:
    k, until = new_key(), _until()
    assert store.reserve_many([k], [until], ["o"]) == [True]
    store.release(k, "o")
    assert store.state(k) is None
    assert code_of(lambda: store.release(k, "o")) == "reservation_not_found"
    assert store.reserve_many([k], [until], ["p"]) == [True]
    assert store.state(k)[1] == "p"


def test_unknown_keys_are_not_found(store: Any) -> None:
    k = new_key()
    assert store.state(k) is None
    assert code_of(lambda: store.settle(k, "o")) == "reservation_not_found"
    assert code_of(lambda: store.release(k, "o")) == "reservation_not_found"
    assert code_of(lambda: store.charge(k, "o", 1)) == "reservation_not_found"


def test_upto_charges_are_bounded_and_settled_once(store: Any) -> None:
    k, exact, until = new_key(), new_key(), _until()
    cap = 2**256 - 1 - 5  # the full uint256 range is usable
    assert store.reserve_many([k, exact], [until, until], ["o", "o"], [cap, None]) == [True, True]
    assert store.charge(k, "o", 2**255) == 2**255
    assert code_of(lambda: store.charge(k, "o", 2**255)) == "invalid_upto_evm_payload_settlement_exceeds_amount"
    assert store.state(k)[2] == 2**255  # a refused charge changes nothing
    assert store.charge(k, "o", cap - 2**255) == cap  # exactly the cap
    assert code_of(lambda: store.charge(k, "o", 1)) == "invalid_upto_evm_payload_settlement_exceeds_amount"
    assert store.charge(k, "o", 0) == cap
    assert code_of(lambda: store.charge(k, "intruder", 0)) == "reservation_not_owner"
    assert code_of(lambda: store.charge(exact, "o", 1)) == "reservation_not_upto"
    assert store.settle(k, "o") == cap
    assert store.settle(k, "o") == cap
    assert code_of(lambda: store.charge(k, "o", 0)) == "reservation_closed"
    assert code_of(lambda: store.release(k, "o")) == "reservation_closed"
    assert store.state(k) == ("settled", "o", cap, None)  # settled: kept, no expiry


@pytest.mark.parametrize("store_kind", LOCAL_CLOCK_STORES)
def test_expiry_with_the_callers_clock(store_kind: str, make_store: Callable[..., Any]) -> None:
    """Memory and SQLite expire by the ``now`` handed to them: at ``valid_until + margin`` an
    unsettled key is gone (and reservable again); the sweep drops it. A settled key stays.
    Redis: see ``test_redis_expiry_follows_the_callers_clock``."""
    store = make_store(margin_seconds=30)
    k, settled, t0 = new_key(), new_key(), 1_000_000
    assert store.reserve_many([k, settled], [t0 + 100, t0 + 100], ["o", "o"], now=t0) == [True, True]
    store.settle(settled, "o", now=t0)
    expires = t0 + 130
    assert store.state(k, now=expires - 1) == ("reserved", "o", 0, expires)
    assert store.state(k, now=expires) is None
    for at in (expires - 1, expires, 2**62):
        assert store.state(settled, now=at) == ("settled", "o", 0, None)
    assert store.sweep(now=expires - 1) == 2
    assert store.sweep(now=expires) == 1
    if store_kind == "memory":
        assert len(store) == 1
    assert code_of(lambda: store.settle(k, "o", now=expires)) == "reservation_not_found"
    assert store.reserve_many([k, settled], [t0 + 500] * 2, ["new", "new"], now=expires) == [True, False]


@pytest.mark.parametrize("store_kind", LOCAL_CLOCK_STORES)
def test_expired_keys_are_replaced_without_a_sweep(store_kind: str, make_store: Callable[..., Any]) -> None:
    store = make_store(margin_seconds=0)
    k = new_key()
    assert store.reserve_many([k], [100], ["o"], now=50) == [True]
    assert store.reserve_many([k], [200], ["p"], now=99) == [False]
    assert store.reserve_many([k], [200], ["p"], now=100) == [True]
    assert store.state(k, now=150) == ("reserved", "p", 0, 200)


@pytest.mark.parametrize("store_kind", ["memory", "sqlite", "redis"])
def test_a_dead_item_on_a_live_key_is_a_replay(store_kind: str, make_store: Callable[..., Any]) -> None:
    """The lifecycle says: a live key reserved by someone else is a replay, whatever the
    new item's validity. (Same key, another deadline: the replay key does not include it.)"""
    store = make_store(margin_seconds=5)
    now = int(time.time())
    k = new_key()
    assert store.reserve_many([k], [now + 300], ["a"], now=now) == [True]
    assert store.reserve_many([k], [now - 100], ["b"], now=now) == [False]
    assert store.state(k, now=now)[:2] == ("reserved", "a")


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_an_item_that_would_expire_before_now_is_refused_not_acknowledged(store_kind: str, make_store: Callable[..., Any]) -> None:
    """Kept for no time is not kept: the store answers None (the verifier refuses with
    ``nonce_store_unavailable``), and a later copy is not a replay of anything."""
    store = make_store(margin_seconds=5)
    now = int(time.time())
    k = new_key()
    assert store.reserve_many([k, k], [now - 5, now - 100], ["a", "a"], now=now) == [None, None]
    assert store.state(k, now=now) is None
    assert store.reserve_many([k], [now + 100], ["b"], now=now) == [True]


@pytest.mark.parametrize("skew", [0, 600, 3600])
def test_redis_expiry_follows_the_callers_clock(shared_redis_server: RedisServer, skew: int) -> None:
    """Redis keys get a lifetime relative to the verifier's ``now`` (``PX``, ms): with ``now``
    0 s, 10 min or an hour behind the server's clock (a Redis clock running ahead, seen from
    the gateway), a payment valid for 2 s more (+ 1 s margin) is held for 3 s of server time,
    never for nothing; then the server drops it and the time check refuses the payment."""
    store = open_store("redis", redis_url=shared_redis_server.url, margin_seconds=1)
    raw = shared_redis_server.client()
    try:
        v = verifier(store, time_buffer=0)
        now = int(time.time()) - skew
        pays = [sign_payment(kind, now, valid_for=2) for kind in KINDS]
        results = v.verify_batch([(p.header, p.requirements) for p in pays], now=now)
        assert [r.is_valid for r in results] == [True] * 3, [r.invalid_reason for r in results]
        names = [store.prefix + r.replay_key.hex() for r in results]  # type: ignore[union-attr]
        for name in names:
            assert 0 < raw.pttl(name) <= 3000
        assert [store.state(r.replay_key)[3] for r in results] == [now + 3] * 3  # type: ignore[index]
        assert [v.verify(p.header, p.requirements, now=now).invalid_reason for p in pays] == [REPLAY_REASON[k] for k in KINDS]
        deadline = time.monotonic() + 30
        while any(raw.exists(name) for name in names) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [raw.exists(name) for name in names] == [0, 0, 0]
        assert [store.state(r.replay_key) for r in results] == [None, None, None]
        later = now + 4
        assert [v.verify(p.header, p.requirements, now=later).invalid_reason for p in pays] == [TIME_REASON[k] for k in KINDS]
    finally:
        raw.close()
        close_store(store)


# --------------------------------------------------------------------------------------------
# Through the verifier
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_verify_batch_with_one_payment_twice_accepts_it_once(store: Any, kind: str) -> None:
    now = int(time.time())
    p, q = sign_payment(kind, now), sign_payment(kind, now)
    results = verifier(store).verify_batch([(p.header, p.requirements), (q.header, q.requirements), (p.header, p.requirements)], now=now)
    assert [r.is_valid for r in results] == [True, True, False]
    assert results[2].invalid_reason == REPLAY_REASON[kind]
    assert results[0].replay_key == results[2].replay_key != results[1].replay_key
    assert store.state(results[0].replay_key)[:2] == ("reserved", results[0].reservation)


@pytest.mark.parametrize("kind", ["permit2", "upto"])
def test_permit2_signature_twins_cannot_pass_a_second_time(store: Any, make_store: Callable[..., Any], kind: str) -> None:
    now = int(time.time())
    p = sign_payment(kind, now)
    twins = {"high-s": p.with_signature(high_s_twin(p.signature)), "eip-2098": p.with_signature(compact_twin(p.signature))}
    # The twins are valid signatures of the same authorization (Permit2 accepts any s and 64
    # bytes): on their own, each would pass, under the very same replay key.
    for header in twins.values():
        alone = verifier(make_store()).verify(header, p.requirements, now=now)
        assert alone.is_valid, alone.invalid_reason
    v = verifier(store)
    first = v.verify(p.header, p.requirements, now=now)
    assert first.is_valid
    for name, header in twins.items():
        again = v.verify(header, p.requirements, now=now)
        assert (name, again.invalid_reason) == (name, "permit2_nonce_already_used")
        assert again.replay_key == first.replay_key
    # In one batch: the original and both twins, on a fresh store -> one accept.
    q = sign_payment(kind, now)
    batch = [q.header, q.with_signature(high_s_twin(q.signature)), q.with_signature(compact_twin(q.signature))]
    results = v.verify_batch([(h, q.requirements) for h in reversed(batch)], now=now)
    assert [r.invalid_reason for r in results] == [None, "permit2_nonce_already_used", "permit2_nonce_already_used"]


@pytest.mark.parametrize("kind", ["permit2", "upto"])
def test_non_canonical_nonce_spelling_is_refused_before_the_store(store: Any, kind: str) -> None:
    now = int(time.time())
    p = sign_payment(kind, now)
    v = verifier(store)
    zero = p.with_nonce_text("0" + p.nonce_text)  # the same uint256, signed by the same signature
    first = v.verify(zero, p.requirements, now=now)
    assert (first.is_valid, first.invalid_reason) == (False, "non_canonical_number")
    # It reserved nothing: the canonical spelling still passes, once; then "01" is still refused
    # as non-canonical (never accepted, and never mistaken for a fresh key).
    ok = v.verify(p.header, p.requirements, now=now)
    assert ok.is_valid
    assert v.verify(zero, p.requirements, now=now).invalid_reason == "non_canonical_number"
    assert v.verify(p.header, p.requirements, now=now).invalid_reason == "permit2_nonce_already_used"


def test_eip3009_high_s_twin_is_refused_by_the_signature_policy(store: Any) -> None:
    now = int(time.time())
    p = sign_payment("eip3009", now)
    v = verifier(store)
    assert v.verify(p.header, p.requirements, now=now).is_valid
    twin = v.verify(p.with_signature(high_s_twin(p.signature)), p.requirements, now=now)
    assert twin.invalid_reason == "invalid_exact_evm_payload_signature"


def test_upto_session_through_the_verifier(store: Any) -> None:
    now = int(time.time())
    p = sign_payment("upto", now, amount=1000)
    v = verifier(store)
    r = v.verify(p.header, p.requirements, now=now)
    assert r.is_valid and r.scheme == "upto_permit2"
    assert v.charge(r, 300, now=now) == 300
    assert v.charge(r, 700, now=now) == 1000
    with pytest.raises(ReservationError) as info:
        v.charge(r, 1, now=now)
    assert info.value.code == "invalid_upto_evm_payload_settlement_exceeds_amount"
    with pytest.raises(ReservationError) as info:
        v.charge(r, 1, owner="someone-else", now=now)
    assert info.value.code == "reservation_not_owner"
    assert v.settle(r, now=now) == 1000
    assert v.settle(r, now=now) == 1000  # settled once: a retried settle returns the same sum
    for call in (lambda: v.charge(r, 0, now=now), lambda: v.release(r, now=now)):
        with pytest.raises(ReservationError) as info:
            call()
        assert info.value.code == "reservation_closed"
    assert v.verify(p.header, p.requirements, now=now).invalid_reason == "permit2_nonce_already_used"
    # An exact payment has no session.
    e = v.verify(sign_payment("permit2", now).header, requirements("permit2"), now=now)
    with pytest.raises(ReservationError) as info:
        v.charge(e, 1, now=now)
    assert info.value.code == "reservation_not_upto"


def test_owner_tokens_through_the_verifier(store: Any) -> None:
    now = int(time.time())
    v = verifier(store)
    a, b = (v.verify(sign_payment("permit2", now).header, requirements("permit2"), now=now) for _ in range(2))
    assert a.reservation and b.reservation and a.reservation != b.reservation
    # b's token does not open a's reservation, neither for settle nor release.
    for call in (v.settle, v.release):
        with pytest.raises(ReservationError) as info:
            call(a, owner=b.reservation, now=now)
        assert info.value.code == "reservation_not_owner"
    # Settling by key with the right token works; a release by the holder frees b's key.
    assert v.settle(a.replay_key, owner=a.reservation, now=now) == 0  # type: ignore[arg-type]
    v.release(b, now=now)
    assert store.state(b.replay_key) is None
    # A retried reservation of the same key with the same token is idempotent.
    assert store.reserve_many([a.replay_key], [a.valid_until], [a.reservation]) == [False]  # settled: closed
    c = v.verify(sign_payment("permit2", now).header, requirements("permit2"), now=now)
    assert store.reserve_many([c.replay_key, c.replay_key], [c.valid_until] * 2, [c.reservation] * 2) == [True, True]
    assert store.reserve_many([c.replay_key], [c.valid_until], ["other"]) == [False]


@pytest.mark.parametrize("store_kind", LOCAL_CLOCK_STORES)
@pytest.mark.parametrize("kind", KINDS)
def test_after_the_window_the_time_check_refuses_not_the_store(store_kind: str, make_store: Callable[..., Any], kind: str) -> None:
    """Memory/SQLite with the caller's clock (Redis: ``test_redis_expiry_follows_the_callers_clock``):
    inside the window a replay is a replay; after it (+ margin) an unsettled key is gone and
    the verdict is the time reason. The settled one stays, and the verdict is still the time
    reason (the time check comes first)."""
    store = make_store(margin_seconds=60)
    v = verifier(store)
    t0 = int(time.time())
    p, q = sign_payment(kind, t0, valid_for=100), sign_payment(kind, t0, valid_for=100)
    r, unsettled = v.verify(p.header, p.requirements, now=t0), v.verify(q.header, q.requirements, now=t0)
    assert r.is_valid and unsettled.is_valid and r.valid_until == t0 + 100
    v.settle(r, now=t0)
    assert v.verify(p.header, p.requirements, now=t0 + 90).invalid_reason == REPLAY_REASON[kind]
    assert v.verify(q.header, q.requirements, now=t0 + 90).invalid_reason == REPLAY_REASON[kind]
    gone = t0 + 100 + 60
    assert store.state(unsettled.replay_key, now=gone - 1) is not None
    assert store.state(unsettled.replay_key, now=gone) is None
    for later in (t0 + 95, gone, gone + 10_000):  # past the time buffer, at expiry, long after
        assert v.verify(p.header, p.requirements, now=later).invalid_reason == TIME_REASON[kind]
        assert v.verify(q.header, q.requirements, now=later).invalid_reason == TIME_REASON[kind]
    assert store.sweep(now=gone) == 1
    assert store.state(r.replay_key, now=gone + 10_000)[:2] == ("settled", r.reservation)  # type: ignore[index]
