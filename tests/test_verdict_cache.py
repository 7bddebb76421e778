"""The verdict cache (issue 15, resumed upto sessions): a payment presented again in exactly the
same bytes under the same requirements takes its remembered verdict with no reading, hashing
or curve work, and must answer exactly what a verifier without the cache answers, at any clock
and under any time options; only verdicts that passed authentication are kept (from a
payment's second sight: the first only marks it seen), never past the authorization's deadline,
and the store's reservation runs on every presentation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import sign_payment
from x402_verify._samples import VALID_AT, x402_items

T0 = 1_800_000_000
UPTO = [sign_payment("upto", T0, valid_for=300 + 60 * i) for i in range(4)]
EXACT = [sign_payment("eip3009", T0, valid_for=300), sign_payment("permit2", T0, valid_for=900)]
# (header, requirements, the clock it was signed for)
POOL: list[tuple[str, dict[str, Any], int]] = (
    [(h, r, VALID_AT) for h, r, _ in x402_items("permit2")[:24] + x402_items("eip3009")[:24]]
    + [(p.header, p.requirements, T0) for p in UPTO + EXACT]
)  # fmt: skip


def _window(header: str) -> tuple[int, int]:
    p = json.loads(base64.b64decode(header))["payload"]
    if "authorization" in p:
        return int(p["authorization"]["validAfter"]), int(p["authorization"]["validBefore"])
    a = p["permit2Authorization"]
    return int(a["witness"]["validAfter"]), int(a["deadline"])


def _clocks(header: str, req: dict[str, Any], buffer: int, skew: int, cap: int | None) -> list[int]:
    """The clocks at which a time check turns, and either side of each."""
    after, until = _window(header)
    turns = [after, until - buffer, until, until - req["maxTimeoutSeconds"] - skew] + ([until - cap] if cap is not None else [])
    return sorted({t + d for t in turns for d in (-1, 0, 1)})


def _pair(**options: Any) -> tuple[xv.Verifier, xv.Verifier]:
    cached = xv.Verifier(payer_key_cache=64, nonce_store=None, **options)
    plain = xv.Verifier(payer_key_cache=0, nonce_store=None, **options)
    return cached, plain


@settings(max_examples=120, deadline=None)
@given(
    pick=st.integers(0, len(POOL) - 1),
    buffer=st.sampled_from([0, 1, 6, 120]),
    skew=st.sampled_from([0, 30, 600]),
    cap=st.sampled_from([None, 0, 299, 3600]),
    data=st.data(),
)
def test_a_remembered_verdict_is_what_the_uncached_verifier_says_at_any_clock(
    pick: int, buffer: int, skew: int, cap: int | None, data: st.DataObject
) -> None:
    header, req, signed_at = POOL[pick]
    cached, plain = _pair(time_buffer=buffer, clock_skew_seconds=skew, max_validity_seconds=cap)
    turns = _clocks(header, req, buffer, skew, cap)
    later = data.draw(st.lists(st.one_of(st.sampled_from(turns), st.integers(min(turns) - 10, max(turns) + 10)), min_size=1, max_size=8))
    _, until = _window(header)
    seen = remembered = False
    for now in [signed_at, signed_at, *later]:
        hits = cached.stats()["verdict_hits"]
        got = cached.verify(header, req, now=now, reserve=False)
        assert got == plain.verify(header, req, now=now, reserve=False), now
        # Used while its deadline holds, dropped once found past it.
        hit = remembered and now <= until
        assert cached.stats()["verdict_hits"] - hits == int(hit)
        if not hit:
            remembered = False
            if got.is_valid:  # its terms and signature passed: seen, and kept on a second sight
                remembered, seen = seen, True
        assert cached.stats()["verdict_size"] == int(remembered)


@pytest.mark.parametrize("turn", ["not_yet_valid", "expired", "window_too_long"])
def test_each_time_check_refuses_a_remembered_payment_as_without_the_cache(turn: str) -> None:
    buffer, skew = 6, 30
    for header, req, signed_at in (POOL[0], POOL[30], POOL[-3]):
        cached, plain = _pair(time_buffer=buffer, clock_skew_seconds=skew)
        for _ in range(2):  # seen, then kept
            assert cached.verify(header, req, now=signed_at, reserve=False).is_valid
        after, until = _window(header)
        now = {"not_yet_valid": after - 1, "expired": until - buffer + 1, "window_too_long": until - req["maxTimeoutSeconds"] - skew - 1}[turn]
        got = cached.verify(header, req, now=now, reserve=False)
        want = plain.verify(header, req, now=now, reserve=False)
        assert got == want and not got.is_valid and cached.stats()["verdict_hits"] == 1
        assert got.signature is None and got.replay_key == want.replay_key is not None


def test_batches_with_repeats_agree_on_two_threads() -> None:
    cached, plain = _pair()
    items = [(h, r) for h, r, at in POOL if at == VALID_AT]
    cached.verify_batch(items, now=VALID_AT, threads=2, reserve=False)
    assert cached.stats()["verdict_size"] == 0  # seen once: not kept yet
    cached.verify_batch(items, now=VALID_AT, threads=2, reserve=False)
    assert cached.stats()["verdict_size"] == len(items)
    mixed = items * 3
    for now in (VALID_AT, VALID_AT + 1, VALID_AT + 10**6):
        assert cached.verify_batch(mixed, now=now, threads=2, reserve=False) == plain.verify_batch(mixed, now=now, threads=2, reserve=False)
    # Each was used, then dropped once its deadline had passed.
    assert cached.stats()["verdict_hits"] >= 2 * len(mixed) and cached.stats()["verdict_size"] == 0


def test_other_requirements_or_other_bytes_are_not_the_remembered_payment() -> None:
    header, req, _ = POOL[0]
    cached, plain = _pair()
    for _ in range(2):
        assert cached.verify(header, req, now=VALID_AT, reserve=False).is_valid
    assert cached.stats()["verdict_size"] == 1
    for other in ({**req, "amount": str(int(req["amount"]) + 1)}, {**req, "maxTimeoutSeconds": 60}, {**req, "payTo": "0x" + "11" * 20}):
        got = cached.verify(header, other, now=VALID_AT, reserve=False)
        assert not got.is_valid and got == plain.verify(header, other, now=VALID_AT, reserve=False)
    # The same payment in other bytes (re-encoded JSON) is read again, not looked up.
    respelled = base64.b64encode(json.dumps(json.loads(base64.b64decode(header)), indent=1).encode()).decode()
    for _ in range(2):
        assert cached.verify(respelled, req, now=VALID_AT, reserve=False).is_valid
        # A dict is always read (it has no bytes to key by).
        assert cached.verify(json.loads(base64.b64decode(header)), req, now=VALID_AT, reserve=False).is_valid
    assert cached.stats()["verdict_hits"] == 0


def test_a_payment_is_kept_on_its_second_sight() -> None:
    # Many payments seen once each (exact payments, sessions opened) never fill the cache.
    cached, _ = _pair()
    items = [(h, r) for h, r, at in POOL if at == VALID_AT]
    cached.verify_batch(items, now=VALID_AT, reserve=False)
    assert (cached.stats()["verdict_size"], cached.stats()["verdict_hits"]) == (0, 0)
    cached.verify_batch(items[:10], now=VALID_AT, reserve=False)
    cached.verify_batch(items[:10], now=VALID_AT, reserve=False)
    assert (cached.stats()["verdict_size"], cached.stats()["verdict_hits"]) == (10, 10)


def test_a_refused_payment_is_never_remembered() -> None:
    header, req, _ = POOL[0]
    p = json.loads(base64.b64decode(header))
    sig = bytearray.fromhex(p["payload"]["signature"][2:])
    sig[64] ^= 27 ^ 28  # recovers another address
    p["payload"]["signature"] = "0x" + sig.hex()
    bad = base64.b64encode(json.dumps(p).encode()).decode()
    cached, plain = _pair()
    for _ in range(3):
        got = cached.verify(bad, req, now=VALID_AT, reserve=False)
        assert got == plain.verify(bad, req, now=VALID_AT, reserve=False) and got.invalid_reason == "invalid_permit2_signature"
    s = cached.stats()
    assert (s["verdict_hits"], s["verdict_size"], s["recovered"]) == (0, 0, 3)


def test_the_store_still_decides_every_presentation() -> None:
    # In-process store in the core's call, and SQLite through the Python stores.
    for store in (xv.MemoryNonceStore(), xv.SqliteNonceStore(":memory:")):
        v = xv.Verifier(payer_key_cache=64, nonce_store=store)
        p = UPTO[0]
        first, *again = [v.verify(p.header, p.requirements, now=T0 + i) for i in range(3)]
        assert first.is_valid and all(not r.is_valid and r.is_replay for r in again), type(store).__name__
        assert v.stats()["verdict_hits"] == 1  # the third, from the verdict the second kept
        # A retry under its own idempotency id is the same reservation, remembered or not.
        retry = [v.verify(UPTO[1].header, UPTO[1].requirements, now=T0 + i, idempotency_id="job-7") for i in range(3)]
        assert all(r.is_valid and r.reservation == retry[0].reservation for r in retry) and v.stats()["verdict_hits"] == 2


def test_a_verdict_is_dropped_once_its_deadline_passed() -> None:
    p = UPTO[0]
    cached, plain = _pair()
    for _ in range(2):
        assert cached.verify(p.header, p.requirements, now=T0, reserve=False).is_valid
    assert cached.stats()["verdict_size"] == 1
    late = T0 + 10**6
    assert cached.verify(p.header, p.requirements, now=late, reserve=False) == plain.verify(p.header, p.requirements, now=late, reserve=False)
    assert (cached.stats()["verdict_size"], cached.stats()["verdict_hits"]) == (0, 0)


def test_size_is_bounded_and_zero_turns_it_off() -> None:
    items = [(h, r) for h, r, at in POOL if at == VALID_AT]
    small = xv.Verifier(payer_key_cache=64, verdict_cache=5, nonce_store=None)
    for _ in range(3):
        small.verify_batch(items, now=VALID_AT, reserve=False)
    assert small.stats()["verdict_size"] == 5
    off = xv.Verifier(payer_key_cache=64, verdict_cache=0, nonce_store=None)
    for _ in range(3):
        off.verify_batch(items, now=VALID_AT, reserve=False)
    assert (off.stats()["verdict_hits"], off.stats()["verdict_size"]) == (0, 0)
    # It follows the key cache unless named: off with it, on by itself.
    assert xv.Verifier(payer_key_cache=0, nonce_store=None)._core.stages == ["authenticate"]
    assert xv.Verifier(payer_key_cache=0, verdict_cache=8, nonce_store=None)._core.stages == ["authenticate", "remember"]


@pytest.mark.parametrize("bad", [-1, 1 << 25])
def test_verdict_cache_out_of_range_is_a_value_error(bad: int) -> None:
    with pytest.raises(ValueError, match="verdict_cache"):
        xv.Verifier(verdict_cache=bad)


@pytest.mark.parametrize("bad", [True, 1.5, "8"])
def test_verdict_cache_of_another_type_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="verdict_cache"):
        xv.Verifier(verdict_cache=bad)
