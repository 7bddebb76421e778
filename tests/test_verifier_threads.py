"""``threads`` never grows the process (issue 10 item 6): every batch shares one pool sized to
the cores; ``threads=n`` caps a batch at n tasks of it. (A pool per distinct n, never freed,
left 32,452 OS threads after n = 2..256.)"""

from __future__ import annotations

import os

import pytest

import x402_verify as xv
from x402_verify import _samples

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc/self/task (Linux)")


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_varying_threads_does_not_grow_the_thread_count() -> None:
    items = [(h, r) for h, r, _ in _samples.x402_items("permit2")][:16]
    pairs = [(bytes(32), bytes(65))] * 16
    v = xv.Verifier(nonce_store=None)
    # Warm up: the shared pool is built on first use.
    v.verify_batch(items, now=_samples.VALID_AT, threads=2)
    before = os_threads()
    for n in range(2, 257):
        out = v.verify_batch(items, now=_samples.VALID_AT, threads=n)
        assert all(r.is_valid for r in out)
        xv.recover_hash_batch(pairs, threads=n)
        xv.Verifier(nonce_store=None, threads=n).verify_batch(items[:9], now=_samples.VALID_AT)
    after = os_threads()
    # The pool has at most one thread per core, all there since the warm-up; allow a few for
    # anything else the interpreter may start meanwhile.
    assert after - before <= 4, (before, after)
