"""The reserve stage's cost per item against the verification itself, in the same run (issue 11).

    python -m pytest benches/test_bench_reserve.py -p no:cacheprovider -s

Batches of 256 fresh x402 headers (exact EIP-3009, one payer; signed before timing), 1 thread,
warm payer-key cache, the in-process ``MemoryNonceStore``. Timed in alternating rounds on fresh
keys each time:

- ``verify``: ``verify_batch(..., reserve=False)``: every stage but the reservation;
- ``verify+reserve``: ``verify_batch(...)``: the same call with the reserve stage in it (GIL
  released, one store lock per batch); the stage's cost is the difference of the two;
- ``reserve alone``: ``Verifier.reserve(responses)`` on responses verified with
  ``reserve=False``: the stage plus its own call from Python (an upper bound on the stage).

Target: the reserve stage (the difference, median of the paired rounds) under 1 µs per item;
``reserve alone`` is reported (it adds a Python call, a copy of each verdict and a new response).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

import x402_verify as xv
from payments import sign_payment

BATCH = 256
ROUNDS = 12
NOW = int(time.time())
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def rounds() -> list[list[tuple[str, Any]]]:
    out = []
    for _ in range(ROUNDS * 3 + 1):
        ps = [sign_payment("eip3009", NOW) for _ in range(BATCH)]
        req = xv.Requirements(ps[0].requirements)
        out.append([(p.header, req) for p in ps])
    return out


def per_item(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, (time.perf_counter() - t0) / BATCH * 1e6


def test_reserve_stage_against_verification(rounds: list[list[tuple[str, Any]]]) -> None:
    store = xv.MemoryNonceStore()
    v = xv.Verifier(nonce_store=store, threads=1)
    warm = rounds.pop()
    assert all(r.is_valid for r in v.verify_batch(warm, now=NOW, reserve=False))  # the payer's key is cached
    only, both, alone = [], [], []
    for i in range(ROUNDS):
        a, b, c = rounds[3 * i], rounds[3 * i + 1], rounds[3 * i + 2]
        r_only, t = per_item(v.verify_batch, a, now=NOW, threads=1, reserve=False)
        only.append(t)
        r_both, t = per_item(v.verify_batch, b, now=NOW, threads=1)
        both.append(t)
        verified = v.verify_batch(c, now=NOW, threads=1, reserve=False)
        r_alone, t = per_item(v.reserve, verified, now=NOW)
        alone.append(t)
        assert all(r.is_valid and r.reservation is None for r in r_only)
        assert all(r.is_valid and r.reservation for r in r_both)
        assert all(r.is_valid and r.reservation for r in r_alone)
    RESULTS["verify"] = statistics.median(only)
    RESULTS["verify+reserve"] = statistics.median(both)
    RESULTS["stage (difference)"] = statistics.median(b - a for a, b in zip(only, both, strict=True))
    RESULTS["reserve alone"] = statistics.median(alone)
    print()
    for k, val in RESULTS.items():
        print(f"  {k:<20} {val:8.3f} µs/item")
    print(f"  verify / reserve alone: {RESULTS['verify'] / RESULTS['reserve alone']:.1f}x")


def test_zz_reserve_stage_is_under_a_microsecond() -> None:
    assert RESULTS, "run the bench above first"
    assert RESULTS["stage (difference)"] < 1.0, RESULTS
