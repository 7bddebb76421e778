"""Shared data and the ratio bookkeeping for benches/test_bench_core.py.

Each benchmark records its per-item time under a key; TARGETS pairs every "ours" key with the
anchor measured in the same run. At the end of the session a table of ratios is printed, and
the last test in test_bench_core.py fails if a ratio is under its target.

Not part of the test suite: run with `python -m pytest benches/test_bench_core.py --benchmark-enable -p no:cacheprovider`.
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from x402_verify import _samples


class Target(NamedTuple):
    label: str
    ours: str
    anchor: str
    target: float | None  # None: reported, not checked
    note: str = ""


TARGETS = [
    Target("recover_hash_batch, threads=1  vs coincurve+keccak", "recover_hash_t1", "coincurve", 1.1),
    Target("recover_hash_batch, threads=2  vs coincurve+keccak (1 core)", "recover_hash_t2", "coincurve", 2.0),
    Target("hash_typed_data(dict)          vs eth-account", "hash_dict", "eth_account_hash", 20.0),
    Target("hash_typed_data(JSON str)      vs eth-account", "hash_json", "eth_account_hash", 20.0),
    Target(
        "recover_typed_data_batch(JSON), threads=1 vs eth-account",
        "recover_td_json",
        "eth_account_recover",
        6.0,
        "target applies here: JSON text is what a gateway receives",
    ),
    Target("recover_typed_data_batch(dict), threads=1 vs eth-account", "recover_td_dict", "eth_account_recover", None, "reported only"),
]


@dataclass
class Timing:
    min: float  # seconds per item
    median: float
    items_per_call: int


class Recorder:
    def __init__(self) -> None:
        self.timings: dict[str, Timing] = {}
        self.keccak_name = "?"

    def record(self, key: str, benchmark: Any, items_per_call: int) -> None:
        """Stores the benchmark's per-item time (a no-op under --benchmark-disable)."""
        benchmark.extra_info["items_per_call"] = items_per_call
        if not benchmark.stats:
            return
        s = benchmark.stats.stats
        self.timings[key] = Timing(s.min / items_per_call, s.median / items_per_call, items_per_call)

    def ratios(self) -> list[tuple[Target, float, float]]:
        """(target, ratio on min, ratio on median) for every pair whose both sides ran."""
        out = []
        for t in TARGETS:
            ours, anchor = self.timings.get(t.ours), self.timings.get(t.anchor)
            if ours and anchor:
                out.append((t, anchor.min / ours.min, anchor.median / ours.median))
        return out

    def missed(self) -> list[str]:
        """A line for every checked pair whose ratio (on min) is under its target."""
        return [
            f"{t.ours} vs {t.anchor}: {r:.2f}x < {t.target:g}x" for t, r, _ in self.ratios() if t.target is not None and r < t.target
        ]

    def checked(self) -> int:
        return sum(t.target is not None for t, *_ in self.ratios())


RECORDER = Recorder()


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return RECORDER


def _keccak_candidates() -> dict[str, Callable[[bytes], bytes]]:
    out: dict[str, Callable[[bytes], bytes]] = {}
    try:
        from Crypto.Hash import keccak as _k

        out["pycryptodome Crypto.Hash.keccak"] = lambda b: _k.new(data=b, digest_bits=256).digest()
    except ImportError:
        pass
    try:
        from eth_hash.auto import keccak as _eh

        out["eth_hash.auto.keccak"] = _eh
    except ImportError:
        pass
    return out


def _pick_keccak() -> tuple[str, Callable[[bytes], bytes]]:
    """The fastest keccak-256 available, so the coincurve anchor is as strong as it can be."""
    candidates = _keccak_candidates()
    if not candidates:
        pytest.skip("no keccak implementation (pycryptodome or eth-hash) installed")
    data = bytes(range(64))
    best = min(candidates.items(), key=lambda kv: min(timeit.repeat(lambda: kv[1](data), number=2000, repeat=5)))
    return best


@pytest.fixture(scope="session")
def keccak() -> Callable[[bytes], bytes]:
    RECORDER.keccak_name, fn = _pick_keccak()
    return fn


@pytest.fixture(scope="session")
def permit2_samples() -> list[_samples.Sample]:
    return _samples.load("permit2")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ratios = RECORDER.ratios()
    if not ratios:
        if not RECORDER.timings:
            terminalreporter.write_line("x402-verify benches: no timings recorded (run with --benchmark-enable)")
        return
    tr = terminalreporter
    tr.section("x402-verify: ours vs anchor (ratio = anchor time / our time per item; >1 is faster)")
    tr.write_line(f"cores: {os.cpu_count()}; keccak used by the coincurve anchor: {RECORDER.keccak_name}")
    tr.write_line(f"{'pair':<62} {'ours items/s':>13} {'anchor items/s':>15} {'ratio(min)':>11} {'ratio(med)':>11} {'target':>7}  verdict")
    for t, r_min, r_med in ratios:
        ours, anchor = RECORDER.timings[t.ours], RECORDER.timings[t.anchor]
        verdict = "-" if t.target is None else ("ok" if r_min >= t.target else f"MISSED by {(1 - r_min / t.target) * 100:.0f}%")
        target = "-" if t.target is None else f"{t.target:g}x"
        tr.write_line(
            f"{t.label:<62} {1 / ours.min:>13,.0f} {1 / anchor.min:>15,.0f} {r_min:>10.2f}x {r_med:>10.2f}x {target:>7}  {verdict}"
            + (f"  ({t.note})" if t.note else "")
        )
    tr.write_line("targets are checked on the min-time ratio (least disturbed by other load); median shown for honesty")
