"""secp256k1 recovery against libsecp256k1 (coincurve) and the Wycheproof p1363 vectors.

Wycheproof (C2SP/wycheproof, ``ecdsa_secp256k1_sha256_p1363_test.json``) tests the curve
arithmetic and range checks with SHA-256 message digests; an Ethereum signature is the same
``r || s`` plus a recovery byte, so each 64-byte vector is tried as ``r || s || 27`` and
``r || s || 28`` and compared with the address of the group's public key. Expected counts are
those of security.md 3.1 (measured there with coincurve): 95 accepted (valid, low s), 72 high-s
(valid, s > n/2), 85 invalid (18 of them not 64 bytes long).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import coincurve
import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

import x402_verify as xv
from payments import SECP256K1_N as N
from x402_verify import SignatureError, SignaturePolicy, X402VerifyError

HALF_N = N // 2
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
ZERO_ADDRESS = "0x" + "00" * 20

DEFAULT = SignaturePolicy()
RELAXED = SignaturePolicy(require_low_s=False)
PERMIT2 = SignaturePolicy.permit2()
V01 = SignaturePolicy(allow_v01=True)
EVERYTHING = SignaturePolicy(allow_compact=True, require_low_s=False, allow_v01=True)
ALL_POLICIES = [DEFAULT, RELAXED, PERMIT2, V01, EVERYTHING, SignaturePolicy.eip3009()]


def address_of(public_key: bytes) -> str:
    """EIP-55 address of a 65-byte uncompressed SEC1 public key."""
    assert len(public_key) == 65 and public_key[0] == 4
    return to_checksum_address(keccak(public_key[1:])[12:])


def sig65(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def outcome(digest: bytes, sig: bytes, policy: SignaturePolicy | None) -> str | X402VerifyError:
    """recover_hash as a value: the address, or the error it raised."""
    try:
        return xv.recover_hash(digest, sig, policy=policy)
    except X402VerifyError as e:
        assert isinstance(e, SignatureError), e
        return e


def code(result: str | X402VerifyError) -> str | None:
    return result.code if isinstance(result, X402VerifyError) else None


def coincurve_recover(digest: bytes, r: int, s: int, recid: int) -> str | None:
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid]), digest, hasher=None
        )
    except ValueError:
        return None
    return address_of(pub.format(compressed=False))


# --- coincurve: signatures made by libsecp256k1 ---------------------------------------------------

SIGNING_ROUNDS = 2000


def signed_cases(seed: int, count: int) -> list[tuple[bytes, bytes, str]]:
    """(digest, r||s||recid, address) for random keys and digests, signed by libsecp256k1."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        key = rng.randrange(1, N) if i % 10 else rng.choice([1, 2, N - 1, N - 2, HALF_N, HALF_N + 1])
        digest = rng.randbytes(32) if i % 17 else rng.choice([b"\x00" * 32, b"\xff" * 32, N.to_bytes(32, "big")])
        private = coincurve.PrivateKey(key.to_bytes(32, "big"))
        sig = private.sign_recoverable(digest, hasher=None)
        cases.append((digest, sig, address_of(private.public_key.format(compressed=False))))
    return cases


@pytest.fixture(scope="module")
def coincurve_cases() -> list[tuple[bytes, bytes, str]]:
    return signed_cases(seed=402, count=SIGNING_ROUNDS)


def test_recover_matches_coincurve_signatures(coincurve_cases: list[tuple[bytes, bytes, str]]) -> None:
    recids: Counter[int] = Counter()
    for digest, sig, address in coincurve_cases:
        r, s, recid = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
        assert recid in (0, 1) and 1 <= s <= HALF_N  # libsecp256k1 signs low-s
        recids[recid] += 1
        eth_sig = sig[:64] + bytes([27 + recid])

        for policy in ALL_POLICIES:
            assert xv.recover_hash(digest, eth_sig, policy=policy) == address
        assert xv.recover_hash("0x" + digest.hex(), "0x" + eth_sig.hex()) == address

        # v = 0/1 only where the policy allows it.
        assert xv.recover_hash(digest, sig, policy=V01) == address
        assert code(outcome(digest, sig, DEFAULT)) == "invalid_signature_v"
        assert code(outcome(digest, sig, PERMIT2)) == "invalid_signature_v"

        # EIP-2098 compact form: only where the policy allows it.
        compact = sig[:32] + (s | (recid << 255)).to_bytes(32, "big")
        assert xv.recover_hash(digest, compact, policy=PERMIT2) == address
        assert code(outcome(digest, compact, DEFAULT)) == "invalid_signature_length"

        # High-s twin (r, n - s, other parity): the same signer where high s is allowed.
        twin = sig65(r, N - s, 27 + (recid ^ 1))
        assert xv.recover_hash(digest, twin, policy=RELAXED) == address
        assert xv.recover_hash(digest, twin, policy=PERMIT2) == address
        assert code(outcome(digest, twin, DEFAULT)) == "signature_high_s"

        # The other recovery id gives another key (or none), never this one.
        other = outcome(digest, sig[:64] + bytes([27 + (recid ^ 1)]), DEFAULT)
        assert other != address and other != ZERO_ADDRESS
        assert (None if isinstance(other, X402VerifyError) else other) == coincurve_recover(digest, r, s, recid ^ 1)
    assert min(recids.values()) > SIGNING_ROUNDS // 3


def test_recover_hash_batch_matches_coincurve(coincurve_cases: list[tuple[bytes, bytes, str]]) -> None:
    items = [(digest, sig[:64] + bytes([27 + sig[64]])) for digest, sig, _ in coincurve_cases]
    expected = [address for _, _, address in coincurve_cases]
    for threads in (None, 1, 2, 7):
        assert xv.recover_hash_batch(items, threads=threads) == expected
    assert xv.recover_hash_batch(iter(items), policy=PERMIT2) == expected


def random_signature_cases(seed: int, count: int) -> list[tuple[bytes, int, int, int]]:
    """Arbitrary (digest, r, s, recid): about half of random r have no curve point."""
    rng = random.Random(seed)
    special = [1, 2, HALF_N, HALF_N + 1, N - 1, P - N, P - N - 1, P - N + 1]
    cases = []
    for i in range(count):
        r = rng.choice(special) if i % 7 == 0 else rng.randrange(1, N)
        s = rng.choice(special) if i % 5 == 0 else rng.randrange(1, N)
        cases.append((rng.randbytes(32), r, s, i % 2))
    return cases


def test_recover_arbitrary_signatures_matches_coincurve() -> None:
    """Signatures nobody made: we recover what libsecp256k1 recovers, and fail where it fails."""
    failures: Counter[str] = Counter()
    for digest, r, s, recid in random_signature_cases(seed=712, count=3000):
        expected = coincurve_recover(digest, r, s, recid)
        sig = sig65(r, s, 27 + recid)
        got = outcome(digest, sig, RELAXED)
        if expected is None:
            assert code(got) == "signature_recovery_failed", (r, s, recid, got)
            failures["no point"] += 1
        else:
            assert got == expected, (r, s, recid)
        strict = outcome(digest, sig, DEFAULT)
        if s > HALF_N:
            assert code(strict) == "signature_high_s"
        else:
            assert strict == got
    assert 900 < failures["no point"] < 2100


def test_low_s_boundary() -> None:
    digest, sig, address = signed_cases(seed=1, count=1)[0]
    r = int.from_bytes(sig[:32], "big")
    for s in (HALF_N, HALF_N + 1):
        for v in (27, 28):
            got = outcome(digest, sig65(r, s, v), DEFAULT)
            if s == HALF_N:
                assert code(got) in (None, "signature_recovery_failed")
                assert got == outcome(digest, sig65(r, s, v), RELAXED)
            else:
                assert code(got) == "signature_high_s"
                assert code(outcome(digest, sig65(r, s, v), RELAXED)) != "signature_high_s"


@pytest.mark.parametrize(
    ("r", "s", "expected_code"),
    [
        (0, 1, "invalid_signature_r"),
        (N, 1, "invalid_signature_r"),
        (N + 1, 1, "invalid_signature_r"),
        (2**256 - 1, 1, "invalid_signature_r"),
        (1, 0, "invalid_signature_s"),
        (1, N, "invalid_signature_s"),
        (1, 2**256 - 1, "invalid_signature_s"),
    ],
)
def test_r_and_s_out_of_range(r: int, s: int, expected_code: str) -> None:
    digest = hashlib.sha256(b"range").digest()
    for policy in ALL_POLICIES:
        for v in (27, 28):
            assert code(outcome(digest, sig65(r, s, v), policy)) == expected_code


@pytest.mark.parametrize("v", [0, 1, 2, 3, 4, 26, 29, 30, 35, 36, 37, 38, 127, 128, 255])
def test_recovery_byte(v: int) -> None:
    digest, sig, address = signed_cases(seed=2, count=1)[0]
    parity = sig[64]
    for policy in ALL_POLICIES:
        got = outcome(digest, sig[:64] + bytes([v]), policy)
        if v in (0, 1) and policy.allow_v01:
            assert (got == address) == (v == parity)
        else:
            assert code(got) == "invalid_signature_v", (v, policy)


# --- Wycheproof p1363 ----------------------------------------------------------------------------

# Valid vectors whose R has x >= n, so recovery needs recid 2 or 3, which an Ethereum v (27/28)
# cannot express (security.md 3.1). Asserted exactly, so the list cannot silently grow.
NEEDS_RECID_2_OR_3 = {115, 247}


@pytest.fixture(scope="module")
def wycheproof(vectors_dir: Path) -> list[dict[str, Any]]:
    """Every p1363 test, flattened, with its digest and expected address."""
    data = json.loads((vectors_dir / "wycheproof" / "ecdsa_secp256k1_sha256_p1363_test.json").read_text())
    assert data["algorithm"] == "ECDSA"
    tests = []
    for group in data["testGroups"]:
        assert group["sha"] == "SHA-256" and group["publicKey"]["curve"] == "secp256k1"
        address = address_of(bytes.fromhex(group["publicKey"]["uncompressed"]))
        for t in group["tests"]:
            assert t["result"] in ("valid", "invalid"), t  # no "acceptable" in this file
            tests.append({**t, "digest": hashlib.sha256(bytes.fromhex(t["msg"])).digest(),
                          "raw": bytes.fromhex(t["sig"]), "address": address})
    assert len(tests) == data["numberOfTests"] == 252
    return tests


def candidate_signatures(raw: bytes) -> list[bytes]:
    """What an Ethereum verifier would be handed: r||s||27 and r||s||28, or the bytes as they are."""
    if len(raw) == 64:
        return [raw + b"\x1b", raw + b"\x1c"]
    return [raw]


def test_wycheproof_p1363(wycheproof: list[dict[str, Any]]) -> None:
    counts: Counter[str] = Counter()
    unexpected: list[str] = []
    needs_high_recid: set[int] = set()

    for t in wycheproof:
        tc, raw, digest, address = t["tcId"], t["raw"], t["digest"], t["address"]
        results = {
            policy: [outcome(digest, sig, policy) for sig in candidate_signatures(raw)] for policy in ALL_POLICIES
        }
        for rs in results.values():
            assert ZERO_ADDRESS not in rs, tc
        relaxed_ok = address in results[RELAXED]
        default_ok = address in results[DEFAULT]

        if len(raw) != 64:
            assert t["result"] == "invalid", tc
            counts["wrong length"] += 1
            for policy, rs in results.items():
                if code(rs[0]) != "invalid_signature_length":
                    unexpected.append(f"tcId {tc}: {len(raw)}-byte signature under {policy!r} gave {rs[0]!r}")
            continue

        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        # Where r or s is out of range, the code says which, under every policy.
        if not 1 <= r < N or not 1 <= s < N:
            allowed = ({"invalid_signature_r"} if not 1 <= r < N else set()) | (
                {"invalid_signature_s"} if not 1 <= s < N else set())
            for policy, rs in results.items():
                for got in rs:
                    if code(got) not in allowed:
                        unexpected.append(f"tcId {tc}: r/s out of range under {policy!r} gave {got!r}")

        # libsecp256k1 agrees with us on recid 0 and 1 (with high s allowed).
        for recid, got in enumerate(results[RELAXED]):
            if 1 <= r < N and 1 <= s < N:
                theirs = coincurve_recover(digest, r, s, recid)
                ours = None if isinstance(got, X402VerifyError) else got
                if ours != theirs:
                    unexpected.append(f"tcId {tc} recid {recid}: coincurve {theirs}, we {got!r}")

        if t["result"] == "invalid":
            counts["invalid"] += 1
            if relaxed_ok or default_ok or address in results[EVERYTHING] or address in results[PERMIT2]:
                unexpected.append(f"tcId {tc}: invalid vector accepted ({t['comment']})")
            continue

        # valid
        if s > HALF_N:
            counts["valid high-s"] += 1
            for policy in (DEFAULT, V01, SignaturePolicy.eip3009()):
                for got in results[policy]:
                    if code(got) != "signature_high_s":
                        unexpected.append(f"tcId {tc}: high s under {policy!r} gave {got!r}")
        else:
            counts["valid low-s"] += 1
            if not default_ok:
                unexpected.append(f"tcId {tc}: valid low-s vector rejected under the default policy: {results[DEFAULT]}")
        if relaxed_ok:
            counts["valid accepted when high s is allowed"] += 1
            for policy in (PERMIT2, EVERYTHING):
                if address not in results[policy]:
                    unexpected.append(f"tcId {tc}: valid vector rejected under {policy!r}")
        else:
            needs_high_recid.add(tc)
            # Confirm the reason: libsecp256k1 finds the key only with recid 2 or 3 (R.x = r + n).
            assert r + N < P, tc
            assert address in (coincurve_recover(digest, r, s, 2), coincurve_recover(digest, r, s, 3)), tc
        if default_ok:
            counts["accepted by default policy"] += 1

    assert not unexpected, "\n".join(unexpected)
    assert needs_high_recid == NEEDS_RECID_2_OR_3
    assert counts == {
        "valid low-s": 95,
        "accepted by default policy": 95,
        "valid high-s": 72,
        "valid accepted when high s is allowed": 167 - len(NEEDS_RECID_2_OR_3),
        "invalid": 85 - 18,
        "wrong length": 18,
    }, counts


def test_wycheproof_as_is_64_bytes_under_compact_policies(wycheproof: list[dict[str, Any]]) -> None:
    """Handed over unchanged, a 64-byte vector is read as EIP-2098 ``r || vs``: an invalid one
    must still not recover the key, and a low-s valid one recovers as ``r || s || 27``."""
    for t in wycheproof:
        raw, digest, address = t["raw"], t["digest"], t["address"]
        if len(raw) != 64:
            continue
        for policy in (PERMIT2, EVERYTHING):
            got = outcome(digest, raw, policy)
            assert got != ZERO_ADDRESS
            if t["result"] == "invalid":
                assert got != address, t["tcId"]
            elif not raw[32] & 0x80:  # top bit clear: vs == s and v == 27
                assert got == outcome(digest, raw + b"\x1b", RELAXED), t["tcId"]
        assert code(outcome(digest, raw, DEFAULT)) == "invalid_signature_length"


@pytest.mark.parametrize("policy", [DEFAULT, RELAXED, PERMIT2, EVERYTHING], ids=["default", "relaxed", "permit2", "all"])
def test_wycheproof_batch_equals_single(wycheproof: list[dict[str, Any]], policy: SignaturePolicy) -> None:
    items = [(t["digest"], sig) for t in wycheproof for sig in candidate_signatures(t["raw"])]
    items += [(t["digest"], t["raw"]) for t in wycheproof if len(t["raw"]) == 64]
    assert len(items) == 2 * 234 + 18 + 234
    single = [outcome(digest, sig, policy) for digest, sig in items]
    assert any(isinstance(x, str) for x in single) and any(isinstance(x, X402VerifyError) for x in single)
    for threads in (None, 1, 2):
        batch = xv.recover_hash_batch(items, policy=policy, threads=threads)
        assert len(batch) == len(items)
        for i, (b, s) in enumerate(zip(batch, single, strict=True)):
            assert type(b) is type(s) and b == s, (i, b, s)
