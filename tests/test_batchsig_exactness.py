"""Exactness of the batch signature path (issue 15), by property: for random batches of 1 to
1024 x402 payments, any share of them bad in every way the issue lists, by a few repeat payers
or by many distinct ones, ``verify_batch`` on a verifier that knows the payers' keys gives every
item exactly the verdict (validity, reason code, message, payer) that per-item recovery
(``payer_key_cache=0``) gives it.

The payments are real EIP-3009 (low-s policy) and Permit2 x402 v2 headers, signed with
coincurve by 64 test keys (the digests from the library's own ``hash_typed_data``)."""

from __future__ import annotations

import random
from functools import cache
from typing import Any

import pytest
from eth_utils import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import NOW, SECP256K1_N, authorization, eip3009_typed_data, envelope, fields, header, permit2_typed_data, requirements

coincurve = pytest.importorskip("coincurve")

KEYS = 64
PER_KEY = 9  # payments per key and kind; the last of each teaches the verifier the key
KINDS = ("eip3009", "permit2")

# Every bad kind of the Exactness list, and the valid forms of another encoding.
BAD = (
    "flip_v",  # v flipped on an otherwise valid signature: recovers another address
    "other_key",  # a good signature from another key
    "other_digest",  # the digest corrupted (the nonce changed after signing)
    "high_s",  # (r, n - s, !v): refused under EIP-3009's low-s policy, the same signer for Permit2
    "v_29",  # v outside 27/28
    "v_0",
    "r_zero",  # r or s out of [1, n-1]
    "r_n",
    "s_zero",
    "s_n",
    "r_no_point",  # r = 5 is the x of no curve point
    "compact",  # EIP-2098: valid for Permit2, refused (length) for EIP-3009
)


class Pay:
    def __init__(self, kind: str, key: Any, address: str, j: int) -> None:
        self.kind, self.address = kind, address
        nonce = "0x" + f"{j:064x}" if kind == "eip3009" else j
        f = fields(kind, from_=address, nonce=nonce, valid_after=NOW - 600, valid_before=NOW + 300)
        self.req = requirements(kind)
        self.auth = authorization(kind, f)
        doc = eip3009_typed_data(dict(self.auth)) if kind == "eip3009" else permit2_typed_data(self.auth)
        digest = xv.hash_typed_data(doc)
        raw = key.sign_recoverable(digest, hasher=None)
        self.sig = raw[:64] + bytes([27 + raw[64]])

    def header(self, sig: bytes | None = None, *, nonce_flip: bool = False) -> str:
        auth = dict(self.auth)
        if nonce_flip:
            if self.kind == "eip3009":
                auth["nonce"] = "0x" + f"{int(auth['nonce'], 16) ^ 1:064x}"
            else:
                auth["nonce"] = str(int(auth["nonce"]) ^ 1)
        member = "authorization" if self.kind == "eip3009" else "permit2Authorization"
        inner = {"signature": "0x" + (self.sig if sig is None else sig).hex(), member: auth}
        return header(envelope(self.kind, self.req, inner, resource=False))


@cache
def pool() -> dict[str, list[list[Pay]]]:
    """pool()[kind][key] -> that key's PER_KEY payments of that kind."""
    out: dict[str, list[list[Pay]]] = {k: [] for k in KINDS}
    for i in range(KEYS):
        key = coincurve.PrivateKey(keccak(f"x402-verify batchsig exactness key #{i}".encode()))
        address = to_checksum_address(keccak(key.public_key.format(compressed=False)[1:])[12:])
        for kind in KINDS:
            out[kind].append([Pay(kind, key, address, (i + 1) * 1000 + j) for j in range(PER_KEY)])
    return out


def _rsv(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def mutated(p: Pay, how: str, other: Pay) -> str:
    r, s, v = int.from_bytes(p.sig[:32], "big"), int.from_bytes(p.sig[32:64], "big"), p.sig[64]
    sig = {
        "flip_v": lambda: _rsv(r, s, v ^ 27 ^ 28),
        "other_key": lambda: other.sig,
        "high_s": lambda: _rsv(r, SECP256K1_N - s, v ^ 27 ^ 28),
        "v_29": lambda: _rsv(r, s, 29),
        "v_0": lambda: _rsv(r, s, 0),
        "r_zero": lambda: _rsv(0, s, v),
        "r_n": lambda: _rsv(SECP256K1_N, s, v),
        "s_zero": lambda: _rsv(r, 0, v),
        "s_n": lambda: _rsv(r, SECP256K1_N, v),
        "r_no_point": lambda: _rsv(5, s, v),
        "compact": lambda: p.sig[:32] + (s | ((v - 27) << 255)).to_bytes(32, "big"),
    }
    if how == "other_digest":
        return p.header(nonce_flip=True)
    return p.header(sig[how]())


def build(seed: int, n: int, bad_share: float, payers: int) -> tuple[list[tuple[str, dict[str, Any]]], list[int]]:
    """n payments by `payers` keys (each payment at most a few times), a `bad_share` of them
    mutated in a random bad way; and the keys used."""
    rng = random.Random(seed)
    used = rng.sample(range(KEYS), payers)
    items = []
    for _ in range(n):
        k = rng.choice(used)
        kind = rng.choice(KINDS)
        p = pool()[kind][k][rng.randrange(PER_KEY - 1)]
        if rng.random() < bad_share:
            other = pool()[kind][rng.choice([x for x in range(KEYS) if x != k])][rng.randrange(PER_KEY - 1)]
            items.append((mutated(p, rng.choice(BAD), other), p.req))
        else:
            items.append((p.header(), p.req))
    return items, used


def verdicts(v: xv.Verifier, items: list[tuple[str, dict[str, Any]]], threads: int = 1) -> list[dict[str, Any]]:
    return [r.to_dict() for r in v.verify_batch(items, now=NOW, threads=threads)]


def learned(used: list[int]) -> xv.Verifier:
    """A verifier that has verified one other payment of each payer (so knows its key, and no
    payment of the batch is in its session cache)."""
    v = xv.Verifier(payer_key_cache=4096, nonce_store=None)
    warm = [(pool()[kind][k][PER_KEY - 1].header(), pool()[kind][k][PER_KEY - 1].req) for k in used for kind in KINDS]
    assert all(r["isValid"] for r in verdicts(v, warm))
    return v


def test_the_pool_is_valid_and_every_bad_kind_is_judged_as_by_recovery() -> None:
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    for kind in KINDS:
        items = [(p.header(), p.req) for p in pool()[kind][0] + pool()[kind][1]]
        assert all(r["isValid"] for r in verdicts(off, items)), kind
        for how in BAD:
            batch = [(p.header(), p.req) for p in pool()[kind][0][:8] * 4]
            batch[13] = (mutated(pool()[kind][0][5], how, pool()[kind][3][0]), pool()[kind][0][5].req)
            want = verdicts(off, batch)
            on = learned([0, 3])
            got = verdicts(on, batch)
            assert got == want, (kind, how)
            # The mutation is refused unless it is an encoding the kind's policy accepts.
            assert want[13]["isValid"] == (kind == "permit2" and how in ("high_s", "compact")), (kind, how, want[13])
            assert on.stats()["batch_verified"] >= 31, (kind, how, on.stats())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(1, 64), st.integers(1, 1024)),
    bad_share=st.sampled_from([0.0, 1 / 1024, 0.01, 0.05, 0.2, 0.5, 0.9, 1.0]),
    payers=st.sampled_from([1, 2, 16, 64]),
    threads=st.sampled_from([1, 2]),
)
def test_random_batches_agree_with_per_item_recovery(seed: int, n: int, bad_share: float, payers: int, threads: int) -> None:
    items, used = build(seed, n, bad_share, payers)
    off = xv.Verifier(payer_key_cache=0, nonce_store=None)
    want = verdicts(off, items)
    on = learned(used)
    before = on.stats()
    assert verdicts(on, items, threads) == want
    s = on.stats()
    # Items batch-verified or recovered once each; none learned from a bad signature.
    assert s["key_cache_size"] == len(used)
    # All good, one thread's share (verify_batch splits 2 threads' work only past 256 items, and
    # a share below 8 is recovered): every item batch-verified, but for the 8 random scouts a new
    # verifier recovers first in a batch of 64 or more.
    if bad_share == 0.0 and n >= 8 and (threads == 1 or n <= 256):
        scouts = 8 if n >= 64 else 0
        assert s["recovered"] - before["recovered"] == scouts and s["batch_verified"] - before["batch_verified"] == n - scouts, s
