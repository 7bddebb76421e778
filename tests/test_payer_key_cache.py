"""``Verifier(payer_key_cache=N)``: verify_batch checks the signatures of payers whose keys it
has learned together (one randomized multi-scalar multiplication) instead of recovering each,
and must give exactly the verdicts recovery gives, for every kind of bad signature."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import SECP256K1_N as N
from x402_verify._samples import VALID_AT, x402_items

POOL = x402_items("permit2") + x402_items("eip3009")  # 128 payments by the same 8 payers


def _payload(header: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(base64.b64decode(header))
    return out


def _header(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def _with_signature(header: str, sig: bytes) -> str:
    p = _payload(header)
    p["payload"]["signature"] = "0x" + sig.hex()
    return _header(p)


def _sig(header: str) -> bytes:
    return bytes.fromhex(_payload(header)["payload"]["signature"][2:])


def _rsv(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


MUTATIONS = (
    "none",
    "flip_v",  # a valid signature with v flipped: recovers another address
    "other_key",  # a good signature by another payer, claimed for this one
    "other_digest",  # the nonce changed: the terms still pass, the digest differs
    "high_s_twin",  # (r, n - s, !v): Permit2 takes it, EIP-3009's low-s rule does not
    "v_29",
    "r_zero",
    "s_n",
    "r_no_point",  # r = 5 is the x of no curve point
    "compact",  # EIP-2098 64-byte form: Permit2 only
)


def mutate(i: int, how: str) -> tuple[str, dict[str, Any]]:
    header, req, _ = POOL[i % len(POOL)]
    sig = _sig(header)
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if how == "flip_v":
        header = _with_signature(header, _rsv(r, s, v ^ 27 ^ 28))
    elif how == "other_key":
        other = POOL[(i + 9) % len(POOL)][0]  # another payer's signature
        header = _with_signature(header, _sig(other))
    elif how == "other_digest":
        p = _payload(header)
        inner = p["payload"].get("permit2Authorization") or p["payload"]["authorization"]
        if "nonce" in inner and isinstance(inner["nonce"], str) and inner["nonce"].startswith("0x"):
            inner["nonce"] = "0x" + ("%064x" % (int(inner["nonce"], 16) ^ 1))
        else:
            inner["nonce"] = str(int(inner["nonce"]) ^ 1)
        header = _header(p)
    elif how == "high_s_twin":
        header = _with_signature(header, _rsv(r, N - s, v ^ 27 ^ 28))
    elif how == "v_29":
        header = _with_signature(header, _rsv(r, s, 29))
    elif how == "r_zero":
        header = _with_signature(header, _rsv(0, s, v))
    elif how == "s_n":
        header = _with_signature(header, _rsv(r, N, v))
    elif how == "r_no_point":
        header = _with_signature(header, _rsv(5, s, v))
    elif how == "compact":
        vs = s | ((v - 27) << 255)
        header = _with_signature(header, r.to_bytes(32, "big") + vs.to_bytes(32, "big"))
    return header, req


def verdicts(v: xv.Verifier, items: list[tuple[str, dict[str, Any]]], threads: int = 1) -> list[Any]:
    return [(r.is_valid, r.to_dict()) for r in v.verify_batch(items, now=VALID_AT, threads=threads)]


# One payment per payer teaches a verifier every key; the other payments (new to its session
# cache) then take the batch path.
_first: dict[str, int] = {}
for _i, (_, _, _payer) in enumerate(POOL):
    _first.setdefault(_payer, _i)
WARMUP = sorted(_first.values())
OTHERS = [i for i in range(len(POOL)) if i not in WARMUP]


def learned(cache: int) -> xv.Verifier:
    v = xv.Verifier(payer_key_cache=cache, nonce_store=None)
    verdicts(v, [mutate(i, "none") for i in WARMUP])
    return v


def test_every_mutation_is_valid_or_refused_as_by_recovery() -> None:
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    assert all(ok for ok, _ in verdicts(off, [mutate(i, "none") for i in range(len(POOL))]))
    for how in MUTATIONS:
        items = [mutate(i, "none") for i in OTHERS[:60]]
        items[31] = mutate(OTHERS[31], how)
        items[7] = mutate(OTHERS[-7], how)  # an EIP-3009 item too
        want = verdicts(off, items)
        for threads in (1, 2):
            on = learned(64)  # fresh, so its session cache holds none of these
            assert verdicts(on, items, threads=threads) == want, how
            assert on.stats()["batch_verified"] >= 56, (how, on.stats())
        if how in ("flip_v", "other_key", "other_digest", "r_zero", "v_29", "s_n", "r_no_point"):
            assert not want[31][0], how
    s = on.stats()
    assert s["batch_verified"] > 0 and s["key_cache_size"] == 8 and s["key_cache_hits"] > 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.sampled_from(MUTATIONS), st.booleans()), min_size=1, max_size=300),
    st.sampled_from([1, 4, 64]),
)
def test_random_batches_agree_with_recovery(picks: list[tuple[int, str, bool]], cache: int) -> None:
    # Most items intact (the third field), so batches mix mostly-good and mostly-bad shares.
    items = [mutate(i, how if bad else "none") for i, how, bad in picks]
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    want = verdicts(off, items)
    cold = xv.Verifier(payer_key_cache=cache, nonce_store=None)
    assert verdicts(cold, items) == want  # recovers and learns
    assert verdicts(cold, items) == want  # the same payments again: the session cache
    assert verdicts(learned(cache), items) == want  # keys known, payments new: the batch path
    assert cold.stats()["key_cache_size"] <= cache


def test_large_repeat_payer_batch_is_batched_and_counted() -> None:
    on = learned(1024)
    items = [mutate(OTHERS[i % len(OTHERS)], "none") for i in range(1024)]
    assert all(ok for ok, _ in verdicts(on, items))
    s = on.stats()
    # After the warm-up, only the 8 random scouts a new (wary) verifier recovers first.
    assert s["recovered"] == len(WARMUP) + SCOUTS
    # The batch repeats 120 distinct payments: the first time each is batch-verified, its
    # repeats in the same call too (the session cache learns at the end of a call).
    assert s["batch_verified"] == 1024 - SCOUTS and s["failed_checks"] == 0 and s["bisections"] == 0
    # One pass over the batch: each item's R once, each payer's key and G once per check
    # (the probe and one check of the rest).
    assert s["batch_checks"] == 2
    assert s["points_multiplied"] <= 1024 - SCOUTS + 2 * (8 + 1)


def test_an_authorization_presented_again_needs_no_curve_work() -> None:
    # The session cache holds as many signatures as payer_key_cache holds keys. (The verdict
    # cache, off here, would answer first: tests/test_verdict_cache.py.)
    on = xv.Verifier(payer_key_cache=256, verdict_cache=0, nonce_store=None)
    items = [mutate(i, "none") for i in range(len(POOL))]
    first = verdicts(on, items)
    before = on.stats()
    assert verdicts(on, items) == first
    after = on.stats()
    assert after["session_hits"] - before["session_hits"] == len(POOL)
    assert (after["recovered"], after["points_multiplied"]) == (before["recovered"], before["points_multiplied"])
    # Every other check still runs: out of the validity window, refused as without the cache.
    late = [(r.is_valid, r.to_dict()) for r in on.verify_batch(items, now=VALID_AT + 10**8, threads=1)]
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    assert late == [(r.is_valid, r.to_dict()) for r in off.verify_batch(items, now=VALID_AT + 10**8, threads=1)]
    assert not any(ok for ok, _ in late)
    # And the store still refuses a replay.
    stored = xv.Verifier(payer_key_cache=64, verdict_cache=0)
    assert stored.verify_batch(items[:1], now=VALID_AT)[0].is_valid
    again = stored.verify_batch(items[:1], now=VALID_AT)[0]
    assert not again.is_valid and stored.stats()["session_hits"] == 1


def test_off_recovers_everything() -> None:
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    items = [mutate(i, "none") for i in range(128)]
    for _ in range(2):
        verdicts(off, items)
    assert off.stats() == {k: 0 for k in off.stats()}
    assert set(off.stats()) == {
        "key_cache_hits", "key_cache_misses", "key_cache_size", "batch_verified", "recovered", "batch_checks",
        "failed_checks", "bisections", "located", "points_multiplied", "fallbacks", "session_hits", "session_size",
        "verdict_hits", "verdict_size",
    }


@pytest.mark.parametrize("bad", [-1, 1 << 25])
def test_payer_key_cache_out_of_range_is_a_value_error(bad: int) -> None:
    with pytest.raises(ValueError, match="payer_key_cache"):
        xv.Verifier(payer_key_cache=bad)


@pytest.mark.parametrize("bad", [True, 1.5, "8", None])
def test_payer_key_cache_of_another_type_is_a_type_error(bad: Any) -> None:
    # The verifier's rule for every int option: a bool is not an int.
    with pytest.raises(TypeError, match="payer_key_cache"):
        xv.Verifier(payer_key_cache=bad)


@pytest.mark.real_default_payer_key_cache
def test_default_is_on() -> None:
    v = xv.Verifier(nonce_store=None)
    verdicts(v, [mutate(i, "none") for i in WARMUP])
    verdicts(v, [mutate(i, "none") for i in OTHERS])
    # All but the scouts a new verifier recovers first (the batch is over 64 items).
    assert len(OTHERS) >= 64 and v.stats()["batch_verified"] == len(OTHERS) - SCOUTS


def test_a_half_bad_batch_costs_at_most_recovery_plus_ten_percent_in_counts() -> None:
    # Deterministic work counts (not times): recoveries, plus points multiplied at 4 a recovery
    # (a point of a 32-item check costs about a fifth of one; see authenticate/tests.rs).
    on = learned(1024)
    before = on.stats()
    items = [mutate(OTHERS[i % len(OTHERS)], "flip_v" if i % 2 else "none") for i in range(256)]
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    assert verdicts(on, items) == verdicts(off, items)
    s = {k: on.stats()[k] - before[k] for k in ("recovered", "points_multiplied", "bisections", "batch_checks")}
    # Two or more of the 8 random scouts are bad (but for a 9/256 chance), or else the random
    # probe of 32 holds two or more bad items (but for a 33 * 2**-32 chance): at most one failed
    # check, no bisection, everything recovered once.
    assert s["recovered"] == 256 and s["bisections"] == 0 and s["batch_checks"] <= 1, s
    assert 4 * s["recovered"] + s["points_multiplied"] <= 4 * 256 * 1.1, s


# authenticate::SCOUTS and CLEAN_CALLS: items a sampled call recovers first, and clean calls in a
# row before a verifier checks whole batches with no sample.
SCOUTS = 8
CLEAN_CALLS = 8


def test_clean_traffic_is_checked_whole_and_bad_traffic_sampled_again() -> None:
    from payments import sign_payment

    def fresh(n: int, bad: bool = False) -> list[tuple[str, dict[str, Any]]]:
        pays = [sign_payment("permit2", VALID_AT, valid_for=600) for _ in range(n)]
        out = []
        for i, p in enumerate(pays):
            header = p.header
            if bad and i % 2:
                sig = _sig(header)
                header = _with_signature(header, sig[:64] + bytes([sig[64] ^ 27 ^ 28]))
            out.append((header, p.requirements))
        return out

    on = xv.Verifier(payer_key_cache=64, nonce_store=None)
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    verdicts(on, fresh(1))  # the one payer's key

    def run(items: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        before = on.stats()
        assert verdicts(on, items) == verdicts(off, items)
        return {k: v - before[k] for k, v in on.stats().items()}

    # New, hence wary: the scouts and the probe first, then the rest.
    for _ in range(CLEAN_CALLS):
        s = run(fresh(64))
        assert (s["recovered"], s["batch_checks"], s["batch_verified"]) == (SCOUTS, 2, 64 - SCOUTS), s
    # Trusting: the scouts, then one check of the rest, each point once (56 R, the key, G).
    s = run(fresh(64))
    assert (s["recovered"], s["batch_checks"], s["points_multiplied"]) == (SCOUTS, 1, 64 - SCOUTS + 1 + 1), s
    # Bad traffic: the scouts send it to recovery (or else that check fails, and the probe
    # drawn then does).
    s = run(fresh(64, bad=True))
    assert s["recovered"] == 64 and s["batch_verified"] == 0 and s["bisections"] == 0, s
    assert s["points_multiplied"] <= (64 - SCOUTS + 2) + 2 * (32 + 2), s
    # Wary again: the next bad batch is sampled first, as on a new verifier.
    s = run(fresh(64, bad=True))
    assert s["recovered"] == 64 and s["points_multiplied"] <= 2 * (32 + 2), s
