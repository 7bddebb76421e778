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
- expiry at validBefore / deadline + margin: the key is gone from the store and the verifier's
  time check (not the replay check) refuses the payment;
- Permit2 signature twins (high-s, EIP-2098 compact) of an accepted payment are replays, and a
  ``"01"``-style nonce spelling is refused as non-canonical before it reaches the store.

The other store test files import the payment helpers defined here (``sign_payment`` ...).
"""

from __future__ import annotations

import copy
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

import x402_verify as xv
from x402_verify import ReservationError
from redis_servers import RedisServer, shared_redis_server  # noqa: F401  (fixture)

# --------------------------------------------------------------------------------------------
# Shared helpers: signed x402 v2 payments (eth-account signs; no x402 SDK)
# --------------------------------------------------------------------------------------------

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
PRIVATE_KEY = keccak(text="x402-verify store test key 0")
PAYER = Account.from_key(PRIVATE_KEY).address
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
FAC = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil #1
USDC_BASE_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
OPG_BASE = "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"

KINDS = ("eip3009", "permit2", "upto")
REPLAY_REASON = {"eip3009": "invalid_exact_evm_nonce_already_used", "permit2": "permit2_nonce_already_used", "upto": "permit2_nonce_already_used"}
TIME_REASON = {"eip3009": "invalid_exact_evm_payload_authorization_valid_before", "permit2": "permit2_deadline_expired", "upto": "permit2_deadline_expired"}
STORE_KINDS = ("memory", "sqlite", "redis")
# Stores that expire by the ``now`` they are handed (Redis uses its server clock: PXAT).
LOCAL_CLOCK_STORES = ("memory", "sqlite")


def requirements(kind: str, amount: int = 10_000) -> dict[str, Any]:
    """The server's PaymentRequirements (x402 v2) for one kind of payment."""
    if kind == "eip3009":
        return {
            "scheme": "exact", "network": "eip155:84532", "asset": USDC_BASE_SEPOLIA, "amount": str(amount),
            "payTo": PAY_TO, "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"},
        }  # fmt: skip
    extra: dict[str, Any] = {"name": "OpenGradient", "version": "1", "assetTransferMethod": "permit2"}
    if kind == "upto":
        extra["facilitatorAddress"] = FAC
    return {
        "scheme": "upto" if kind == "upto" else "exact", "network": "eip155:8453", "asset": OPG_BASE, "amount": str(amount),
        "payTo": PAY_TO, "maxTimeoutSeconds": 300, "extra": extra,
    }  # fmt: skip


def _typed(fields: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "type": t} for n, t in fields]


@dataclass(frozen=True)
class Payment:
    kind: str
    header: str
    payload: dict[str, Any]
    requirements: dict[str, Any]
    signature: bytes
    valid_until: int

    def _edited(self, edit: Callable[[dict[str, Any]], None]) -> str:
        p = copy.deepcopy(self.payload)
        edit(p)
        return xv.encode_payment_header(p)

    def with_signature(self, sig: bytes) -> str:
        return self._edited(lambda p: p["payload"].update(signature="0x" + sig.hex()))

    def with_nonce_text(self, text: str) -> str:
        member = "authorization" if self.kind == "eip3009" else "permit2Authorization"
        return self._edited(lambda p: p["payload"][member].update(nonce=text))

    @property
    def nonce_text(self) -> str:
        member = "authorization" if self.kind == "eip3009" else "permit2Authorization"
        text: str = self.payload["payload"][member]["nonce"]
        return text


def sign_payment(
    kind: str, now: int, *, valid_for: int = 300, amount: int = 10_000, nonce: int | bytes | None = None, spender: str | None = None
) -> Payment:
    """A fresh, valid x402 v2 payment of ``kind`` (``eip3009`` | ``permit2`` | ``upto``) at
    ``now``, valid until ``now + valid_for``, with a random nonce unless one is given (and, for
    Permit2, ``spender`` instead of the scheme's proxy when given)."""
    # A client signs validBefore / deadline = now + maxTimeoutSeconds: the route allows what it signs.
    req = {**requirements(kind, amount), "maxTimeoutSeconds": max(300, valid_for)}
    valid_after, valid_until = str(now - 60), now + valid_for
    if kind == "eip3009":
        n = nonce if isinstance(nonce, bytes) else secrets.token_bytes(32)
        auth: dict[str, Any] = {
            "from": PAYER, "to": PAY_TO, "value": str(amount), "validAfter": valid_after, "validBefore": str(valid_until),
            "nonce": "0x" + n.hex(),
        }  # fmt: skip
        doc: dict[str, Any] = {
            "types": {
                "EIP712Domain": _typed([("name", "string"), ("version", "string"), ("chainId", "uint256"), ("verifyingContract", "address")]),
                "TransferWithAuthorization": _typed(
                    [("from", "address"), ("to", "address"), ("value", "uint256"), ("validAfter", "uint256"), ("validBefore", "uint256"), ("nonce", "bytes32")]
                ),
            },
            "primaryType": "TransferWithAuthorization",
            "domain": {"name": "USDC", "version": "2", "chainId": 84532, "verifyingContract": USDC_BASE_SEPOLIA},
            "message": auth,
        }
        member = "authorization"
    else:
        upto = kind == "upto"
        n_int = nonce if isinstance(nonce, int) else secrets.randbits(256)
        witness: dict[str, Any] = {"to": PAY_TO, "facilitator": FAC, "validAfter": valid_after} if upto else {"to": PAY_TO, "validAfter": valid_after}
        auth = {
            "from": PAYER,
            "permitted": {"token": OPG_BASE, "amount": str(amount)},
            "spender": spender or (xv.UPTO_PERMIT2_PROXY if upto else xv.EXACT_PERMIT2_PROXY),
            "nonce": str(n_int),
            "deadline": str(valid_until),
            "witness": witness,
        }
        witness_fields = [("to", "address")] + ([("facilitator", "address")] if upto else []) + [("validAfter", "uint256")]
        doc = {
            "types": {
                "EIP712Domain": _typed([("name", "string"), ("chainId", "uint256"), ("verifyingContract", "address")]),
                "TokenPermissions": _typed([("token", "address"), ("amount", "uint256")]),
                "Witness": _typed(witness_fields),
                "PermitWitnessTransferFrom": _typed(
                    [("permitted", "TokenPermissions"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256"), ("witness", "Witness")]
                ),
            },
            "primaryType": "PermitWitnessTransferFrom",
            "domain": {"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2},
            "message": {k: v for k, v in auth.items() if k != "from"},
        }
        member = "permit2Authorization"
    sig = bytes(Account.sign_typed_data(PRIVATE_KEY, full_message=doc).signature)
    payload = {"x402Version": 2, "accepted": req, "payload": {"signature": "0x" + sig.hex(), member: auth}}
    return Payment(kind, xv.encode_payment_header(payload), payload, req, sig, valid_until)


def high_s_twin(sig: bytes) -> bytes:
    """The other valid signature of the same digest: (r, n - s) with the parity flipped."""
    return sig[:32] + (N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])


def compact_twin(sig: bytes) -> bytes:
    """EIP-2098: 64 bytes, the parity in the top bit of s."""
    return sig[:32] + (int.from_bytes(sig[32:64], "big") | ((sig[64] - 27) << 255)).to_bytes(32, "big")


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
    if isinstance(store, xv.SqliteNonceStore):
        store.close()
    elif isinstance(store, xv.RedisNonceStore):
        store.client.close()


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
    assert store.state(k) == ("settled", "o", cap, until + 60)


@pytest.mark.parametrize("store_kind", LOCAL_CLOCK_STORES)
def test_expiry_with_the_callers_clock(store_kind: str, make_store: Callable[..., Any]) -> None:
    """Memory and SQLite expire by the ``now`` handed to them: at ``valid_until + margin`` a
    key is gone (and reservable again); the memory store's sweep drops it. Redis expires by
    its own clock: see ``test_redis_expiry_on_the_server_clock``."""
    store = make_store(margin_seconds=30)
    k, settled, t0 = new_key(), new_key(), 1_000_000
    assert store.reserve_many([k, settled], [t0 + 100, t0 + 100], ["o", "o"], now=t0) == [True, True]
    store.settle(settled, "o", now=t0)
    expires = t0 + 130
    for key, name in ((k, "reserved"), (settled, "settled")):
        assert store.state(key, now=expires - 1) == (name, "o", 0, expires)
        assert store.state(key, now=expires) is None
    assert store.sweep(now=expires - 1) == 2
    assert store.sweep(now=expires) == 0
    if store_kind == "memory":
        assert len(store) == 0
    assert code_of(lambda: store.settle(k, "o", now=expires)) == "reservation_not_found"
    assert store.reserve_many([settled], [t0 + 500], ["new"], now=expires) == [True]


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


def test_redis_expiry_on_the_server_clock(shared_redis_server: RedisServer) -> None:
    """Redis keys carry an absolute expiry (PXAT, ms) of valid_until + margin; the server
    drops them then, and the verifier's time check refuses the payment afterwards."""
    store = open_store("redis", redis_url=shared_redis_server.url, margin_seconds=1)
    raw = shared_redis_server.client()
    try:
        v = verifier(store, time_buffer=0)
        now = int(time.time())
        pays = [sign_payment(kind, now, valid_for=2) for kind in KINDS]
        results = v.verify_batch([(p.header, p.requirements) for p in pays], now=now)
        assert [r.is_valid for r in results] == [True] * 3, [r.invalid_reason for r in results]
        names = [store.prefix + r.replay_key.hex() for r in results]  # type: ignore[union-attr]
        for name in names:
            assert raw.pexpiretime(name) == (now + 2 + 1) * 1000
        assert [v.verify(p.header, p.requirements, now=now).invalid_reason for p in pays] == [REPLAY_REASON[k] for k in KINDS]
        deadline = (now + 3) + 0.3
        while time.time() < deadline:
            time.sleep(0.05)
        assert [raw.exists(name) for name in names] == [0, 0, 0]
        assert [store.state(r.replay_key) for r in results] == [None, None, None]
        later = int(time.time())
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
    """Memory/SQLite with the caller's clock (Redis: ``test_redis_expiry_on_the_server_clock``):
    inside the window a replay is a replay; after it (+ margin) the key is gone and the verdict
    is the time reason."""
    store = make_store(margin_seconds=60)
    v = verifier(store)
    t0 = int(time.time())
    p = sign_payment(kind, t0, valid_for=100)
    r = v.verify(p.header, p.requirements, now=t0)
    assert r.is_valid and r.valid_until == t0 + 100
    v.settle(r, now=t0)
    assert v.verify(p.header, p.requirements, now=t0 + 90).invalid_reason == REPLAY_REASON[kind]
    gone = t0 + 100 + 60
    assert store.state(r.replay_key, now=gone - 1) is not None
    assert store.state(r.replay_key, now=gone) is None
    for later in (t0 + 95, gone, gone + 10_000):  # past the time buffer, at expiry, long after
        assert v.verify(p.header, p.requirements, now=later).invalid_reason == TIME_REASON[kind]
    assert store.sweep(now=gone) == 0
