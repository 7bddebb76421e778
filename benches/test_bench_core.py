"""x402-verify vs the Python libraries a gateway would otherwise use, timed in the same run.

    python -m pytest benches/test_bench_core.py --benchmark-enable -p no:cacheprovider

Ours run on 10,000 items a call; anchors on fewer (coincurve 2,000, eth-account 500 or the 64
bundled documents), and everything is normalized per item. Rounds are fixed (pedantic mode) so
the whole run stays under ~3 minutes, and each side's round lasts a comparable time (tenths of
a second): under outside load the minimum of many short rounds would flatter the short side.
The last test fails if a ratio is under its target (conftest.TARGETS); targets and results are
printed in the terminal summary. Outputs are checked after timing, never inside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from x402_verify import SignaturePolicy, _samples, hash_typed_data, recover_hash_batch, recover_typed_data_batch

coincurve = pytest.importorskip("coincurve")
eth_account = pytest.importorskip("eth_account")
from eth_account import Account  # noqa: E402
from eth_account.messages import _hash_eip191_message, encode_typed_data  # noqa: E402

from payments import public_test_keys  # noqa: E402  (tests/, on sys.path through conftest.py)

N_OURS = 10_000
N_ANCHOR = 500  # eth-account items a round
N_COINCURVE = 2_000
N_KEYS = 8
PERMIT2 = SignaturePolicy.permit2()


# --- data -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hash_pairs(keccak: Callable[[bytes], bytes]) -> dict[str, Any]:
    """10,000 distinct (digest, signature) pairs from 8 test keys, in both encodings."""
    keys = [coincurve.PrivateKey(k) for k in public_test_keys(N_KEYS)]
    addrs = [Account.from_key(k.secret).address for k in keys]
    digests, sig_v, sig_recid, signers = [], [], [], []
    for i in range(N_OURS):
        digest = keccak(f"bench digest {i}".encode())
        sig = keys[i % N_KEYS].sign_recoverable(digest, hasher=None)  # r || s || recid
        digests.append(digest)
        sig_recid.append(sig)
        sig_v.append(sig[:64] + bytes([27 + sig[64]]))
        signers.append(addrs[i % N_KEYS])
    return {"ours": list(zip(digests, sig_v, strict=True)), "anchor": list(zip(digests, sig_recid, strict=True)), "signers": signers}


@pytest.fixture(scope="module")
def docs(permit2_samples: list[_samples.Sample]) -> dict[str, Any]:
    """10,000 Permit2 items cycling the 64 bundled samples: dicts, JSON text, hex signatures."""
    n = len(permit2_samples)
    texts = [json.dumps(s.typed_data, separators=(",", ":")) for s in permit2_samples]
    return {
        "dict": [(permit2_samples[i % n].typed_data, permit2_samples[i % n].signature) for i in range(N_OURS)],
        "json": [(texts[i % n], permit2_samples[i % n].signature) for i in range(N_OURS)],
        "signers": [permit2_samples[i % n].signer for i in range(N_OURS)],
    }


# --- recover_hash_batch vs coincurve ------------------------------------------------------


def test_anchor_coincurve(benchmark: Any, recorder: Any, hash_pairs: dict[str, Any], keccak: Callable[[bytes], bytes]) -> None:
    benchmark.group = "recover digest"
    from_sig = coincurve.PublicKey.from_signature_and_message
    items = hash_pairs["anchor"][:N_COINCURVE]

    def anchor() -> list[bytes]:
        return [keccak(from_sig(sig, digest, hasher=None).format(compressed=False)[1:])[12:] for digest, sig in items]

    out = benchmark.pedantic(anchor, rounds=20, warmup_rounds=1)
    recorder.record("coincurve", benchmark, N_COINCURVE)
    assert ["0x" + a.hex() for a in out] == [s.lower() for s in hash_pairs["signers"][:N_COINCURVE]]


@pytest.mark.parametrize("threads", [1, 2])
def test_ours_recover_hash_batch(benchmark: Any, recorder: Any, hash_pairs: dict[str, Any], threads: int) -> None:
    if threads > (os.cpu_count() or 1):
        pytest.fail(f"only {os.cpu_count()} core(s): the 2-thread target cannot be measured")
    benchmark.group = "recover digest"
    items = hash_pairs["ours"]
    out = benchmark.pedantic(lambda: recover_hash_batch(items, threads=threads), rounds=10, warmup_rounds=1)
    recorder.record(f"recover_hash_t{threads}", benchmark, N_OURS)
    assert out == hash_pairs["signers"]


# --- hash_typed_data vs eth-account -------------------------------------------------------


def test_anchor_eth_account_hash(benchmark: Any, recorder: Any, permit2_samples: list[_samples.Sample]) -> None:
    benchmark.group = "hash typed data"
    batch = [s.typed_data for s in permit2_samples]
    out = benchmark.pedantic(lambda: [_hash_eip191_message(encode_typed_data(full_message=d)) for d in batch], rounds=20, warmup_rounds=1)
    recorder.record("eth_account_hash", benchmark, len(batch))
    assert out == [hash_typed_data(d) for d in batch]


@pytest.mark.parametrize("form", ["dict", "json"])
def test_ours_hash_typed_data(benchmark: Any, recorder: Any, permit2_samples: list[_samples.Sample], form: str) -> None:
    benchmark.group = "hash typed data"
    batch: list[Any] = [s.typed_data for s in permit2_samples]
    if form == "json":
        batch = [json.dumps(d, separators=(",", ":")) for d in batch]
    out = benchmark.pedantic(lambda: [hash_typed_data(d) for d in batch], rounds=40, iterations=20, warmup_rounds=1)
    recorder.record(f"hash_{form}", benchmark, len(batch))
    assert len(out) == len(batch)


# --- recover_typed_data_batch vs eth-account ------------------------------------------------


def test_anchor_eth_account_recover(benchmark: Any, recorder: Any, docs: dict[str, Any]) -> None:
    benchmark.group = "recover typed data"
    items = docs["dict"][:N_ANCHOR]

    def anchor() -> list[str]:
        return [Account.recover_message(encode_typed_data(full_message=d), signature=sig) for d, sig in items]

    out = benchmark.pedantic(anchor, rounds=6, warmup_rounds=1)
    recorder.record("eth_account_recover", benchmark, N_ANCHOR)
    assert out == docs["signers"][:N_ANCHOR]


@pytest.mark.parametrize("form", ["json", "dict"])
def test_ours_recover_typed_data_batch(benchmark: Any, recorder: Any, docs: dict[str, Any], form: str) -> None:
    benchmark.group = "recover typed data"
    items = docs[form]
    out = benchmark.pedantic(lambda: recover_typed_data_batch(items, policy=PERMIT2, threads=1), rounds=8, warmup_rounds=1)
    recorder.record(f"recover_td_{form}", benchmark, N_OURS)
    assert out == docs["signers"]


# --- the verdict ----------------------------------------------------------------------------


def test_zz_ratios_meet_targets(recorder: Any) -> None:
    """Runs last: fails if any measured ratio is under its target (the table is in the summary)."""
    if not recorder.timings:
        pytest.skip("benchmarks disabled (pass --benchmark-enable)")
    assert recorder.checked(), "no benchmark pair ran completely"
    missed = recorder.missed()
    assert not missed, "targets missed: " + "; ".join(missed)
