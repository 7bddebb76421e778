"""Reservation identity (issue 11, docs/reservations.md): owner tokens are opaque and random per
reservation, kept by the store; a settle, release or charge from another Verifier (another
process: same store) acts on the reservation by its replay key, its owner looked up through
the store; a retried verify is a replay unless the caller brings an idempotency id; and 50
concurrent copies of one header still give exactly one valid."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from payments import sign_payment
from redis_servers import RedisServer

KINDS = ("eip3009", "permit2", "upto")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two handles on one store, as two processes would hold (the memory store: one object)."""
    if request.param == "memory":
        s = xv.MemoryNonceStore()
        with s:
            yield s, s
        return
    if request.param == "sqlite":
        a, b = xv.SqliteNonceStore(tmp_path / "n.db"), xv.SqliteNonceStore(tmp_path / "n.db")
    else:
        server: RedisServer = request.getfixturevalue("shared_redis_server")
        prefix = f"identity:{secrets.token_hex(4)}:"
        a, b = xv.RedisNonceStore(server.url, prefix=prefix), xv.RedisNonceStore(server.url, prefix=prefix)
    with a, b:
        yield a, b


def now() -> int:
    return int(time.time())


def test_owner_tokens_are_random_per_reservation() -> None:
    v = xv.Verifier()
    t = now()
    a, b = (sign_payment("eip3009", t) for _ in range(2))
    ra, rb = v.verify_batch([(a.header, a.requirements), (b.header, b.requirements)], now=t)
    assert ra.reservation and rb.reservation and ra.reservation != rb.reservation
    assert ra.reservation.startswith("r:") and len(ra.reservation) == 34
    # Never derived from the payment: the same header, released and reserved again, gets another.
    v.release(ra, now=t)
    again = v.verify(a.header, a.requirements, now=t)
    assert again.is_valid and again.reservation not in (None, ra.reservation)


@pytest.mark.parametrize("kind", KINDS)
def test_settle_from_a_second_verifier_by_key(store_pair: tuple[Any, Any], kind: str) -> None:
    first_store, second_store = store_pair
    first, second = xv.Verifier(nonce_store=first_store), xv.Verifier(nonce_store=second_store)
    t = now()
    p = sign_payment(kind, t)
    r = first.verify(p.header, p.requirements, now=t)
    assert r.is_valid and r.reservation
    key = r.replay_key
    assert key is not None
    if kind == "upto":
        assert second.charge(key, 4000, now=t) == 4000
        with pytest.raises(xv.ReservationError) as info:
            second.charge(key, 6001, now=t)
        assert info.value.code == "invalid_upto_evm_payload_settlement_exceeds_amount"
    assert second.settle(key, now=t) == (4000 if kind == "upto" else 0)
    assert second_store.state(key, now=t)[:2] == ("settled", r.reservation)
    # The reservation is spent for every verifier on the store.
    again = first.verify(p.header, p.requirements, now=t)
    assert not again.is_valid and again.is_replay
    assert again.invalid_reason == xv._core.REPLAY_REASONS["permit2" if kind != "eip3009" else "eip3009"]


def test_release_from_a_second_verifier_frees_the_nonce(store_pair: tuple[Any, Any]) -> None:
    first_store, second_store = store_pair
    first, second = xv.Verifier(nonce_store=first_store), xv.Verifier(nonce_store=second_store)
    t = now()
    p = sign_payment("permit2", t)
    r = first.verify(p.header, p.requirements, now=t)
    assert r.is_valid
    second.release(r.replay_key, now=t)  # type: ignore[arg-type]
    assert second_store.state(r.replay_key, now=t) is None
    assert second.verify(p.header, p.requirements, now=t).is_valid


def test_a_key_with_no_reservation_is_not_found(store_pair: tuple[Any, Any]) -> None:
    v = xv.Verifier(nonce_store=store_pair[1])
    with pytest.raises(xv.ReservationError) as info:
        v.settle(secrets.token_bytes(32), now=now())
    assert info.value.code == "reservation_not_found"


def test_a_named_owner_must_be_the_holder(store_pair: tuple[Any, Any]) -> None:
    first, second = xv.Verifier(nonce_store=store_pair[0]), xv.Verifier(nonce_store=store_pair[1])
    t = now()
    p = sign_payment("eip3009", t)
    r = first.verify(p.header, p.requirements, now=t)
    with pytest.raises(xv.ReservationError) as info:
        second.settle(r.replay_key, owner="r:someone-else", now=t)  # type: ignore[arg-type]
    assert info.value.code == "reservation_not_owner"


def test_a_retry_is_a_replay_unless_it_brings_an_idempotency_id(store_pair: tuple[Any, Any]) -> None:
    first, second = xv.Verifier(nonce_store=store_pair[0]), xv.Verifier(nonce_store=store_pair[1])
    t = now()
    p = sign_payment("eip3009", t)
    q = sign_payment("eip3009", t)
    assert first.verify(p.header, p.requirements, now=t).is_valid
    retry = second.verify(p.header, p.requirements, now=t)
    assert not retry.is_valid and retry.is_replay
    # With an id: the same reservation, whichever verifier the retry reaches.
    r1 = first.verify(q.header, q.requirements, now=t, idempotency_id="req-42")
    r2 = second.verify(q.header, q.requirements, now=t, idempotency_id="req-42")
    assert r1.is_valid and r2.is_valid and r1.reservation == r2.reservation == "i:req-42"
    # Another id is another caller: a replay.
    r3 = second.verify(q.header, q.requirements, now=t, idempotency_id="req-43")
    assert not r3.is_valid and r3.is_replay


def test_verify_without_reserving_then_reserve(store_pair: tuple[Any, Any]) -> None:
    v = xv.Verifier(nonce_store=store_pair[0])
    t = now()
    p = sign_payment("upto", t)
    r = v.verify(p.header, p.requirements, now=t, reserve=False)
    assert r.is_valid and r.reservation is None and store_pair[1].state(r.replay_key, now=t) is None
    [reserved] = v.reserve([r], now=t)
    assert reserved.is_valid and reserved.reservation
    [twice] = v.reserve([r], now=t)
    assert not twice.is_valid and twice.is_replay and twice.invalid_reason == "permit2_nonce_already_used"


def test_the_response_names_what_the_chain_stage_needs() -> None:
    t = now()
    p = sign_payment("permit2", t)
    r = xv.Verifier(nonce_store=None).verify(p.header, p.requirements, now=t)
    assert r.asset == p.requirements["asset"] and r.signature == p.signature and r.digest is not None and len(r.digest) == 32
    assert r.is_replay is False


@pytest.mark.parametrize("bad", [123, "", "x" * 300, "\ud800"])
def test_idempotency_ids_are_checked(bad: Any) -> None:
    v = xv.Verifier()
    p = sign_payment("eip3009", now())
    with pytest.raises((TypeError, ValueError)):
        v.verify(p.header, p.requirements, idempotency_id=bad)
    with pytest.raises(ValueError, match="entries"):
        v.verify_batch([(p.header, p.requirements)], idempotency_ids=["a", "b"])


def test_fifty_concurrent_copies_give_exactly_one_valid(store_pair: tuple[Any, Any]) -> None:
    verifiers = [xv.Verifier(nonce_store=store_pair[i % 2]) for i in range(2)]
    t = now()
    p = sign_payment("eip3009", t)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: verifiers[i % 2].verify(p.header, p.requirements, now=t), range(50)))
    assert sum(r.is_valid for r in results) == 1
    assert all(r.is_replay for r in results if not r.is_valid)


def test_every_store_closes_and_is_a_context_manager(tmp_path: Path) -> None:
    for store in (xv.MemoryNonceStore(), xv.SqliteNonceStore(tmp_path / "c.db")):
        with store as s:
            assert s is store
        with pytest.raises(xv.NonceStoreError):
            store.settle(b"\x01" * 32, "o", now=1)
        v = xv.Verifier(nonce_store=store)
        p = sign_payment("eip3009", now())
        r = v.verify(p.header, p.requirements)
        assert r.invalid_reason == "nonce_store_unavailable"
