"""Shared data and the ratio bookkeeping for the benches (test_bench_core.py, test_bench_verify.py,
test_bench_stores.py).

Each benchmark records its per-item time under a key; TARGETS pairs every "ours" key with the
anchor measured in the same run. At the end of the session a table of ratios is printed, and
the last test of each bench file (``test_zz_...``) fails if one of its pairs misses its target:
a ratio (anchor time / our time) under ``target``, or, where the issue states an absolute
figure, our own rate under ``min_rate`` items/s.

Not part of the test suite: run with `python -m pytest benches/<file> --benchmark-enable -p no:cacheprovider`.
"""

from __future__ import annotations

import os
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from x402_verify import _samples

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
# The benches build their data with the tests' helpers (tests/payments.py, tests/redis_servers.py).
sys.path.insert(0, str(TESTS_DIR))


class Target(NamedTuple):
    label: str
    ours: str
    anchor: str
    target: float | None  # None: reported, not checked
    note: str = ""
    min_rate: float | None = None  # absolute target: our items/s (on min time); None: none
    group: str = "core"  # the bench file that checks it: core | verify | stores
    # Timed in alternating rounds (conftest.alternate): the median of the same-round ratios is
    # the one checked and shown as ratio(med); ratio(min) still compares each side's best round.
    paired: bool = False


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
    # --- test_bench_verify.py (issue 4): the whole verify path, per item ---------------------
    *(
        t
        for kind, name in (("permit2", "Permit2"), ("eip3009", "EIP-3009"))
        for t in (
            Target(
                f"Verifier.verify_batch {name}, t=1  vs coincurve+keccak", f"alt_verify_{kind}_t1", "alt_coincurve", 1.0,
                "alternating rounds; checked on the median same-round ratio", group="verify", paired=True,
            ),  # fmt: skip
            Target(
                f"Verifier.verify_batch {name}, t=2  vs coincurve (1 core)", f"alt_verify_{kind}_t2", "alt_coincurve", 1.8,
                "alternating rounds; checked on the median same-round ratio", group="verify", paired=True,
            ),  # fmt: skip
            Target(
                f"Verifier.verify_batch {name}, t=1  vs coincurve+keccak", f"verify_{kind}_t1", "coincurve_v", None,
                "separate pytest-benchmark rounds; reported only", group="verify",
            ),  # fmt: skip
            Target(
                f"Verifier.verify_batch {name}, t=2  vs coincurve (1 core)", f"verify_{kind}_t2", "coincurve_v", None,
                "separate pytest-benchmark rounds; reported only", group="verify",
            ),  # fmt: skip
            Target(
                f"Verifier.verify_batch {name}, t=1  vs x402 SDK verify", f"alt_sdk_verify_{kind}_t1", f"alt_sdk_{kind}", 5.0,
                "alternating rounds, SDK models built outside the timed part", group="verify", paired=True,
            ),  # fmt: skip
            Target(
                f"Verifier.verify_batch {name}, t=1  vs x402 SDK verify", f"verify_{kind}_t1", f"sdk_{kind}", None,
                "separate pytest-benchmark rounds; reported only", group="verify",
            ),  # fmt: skip
            Target(
                f"Verifier.verify_batch {name}, t=1  vs SDK parse+verify",
                f"verify_{kind}_t1",
                f"sdk_{kind}_parsed",
                None,
                "SDK: header decode + pydantic models inside the timed part; reported only",
                group="verify",
            ),
            Target(
                f"+ MemoryNonceStore (default)  vs no store, {name}",
                f"verify_{kind}_mem_t1",
                f"verify_{kind}_t1",
                None,
                "reported only: ratio < 1 is the reservation's cost",
                group="verify",
            ),
        )
    ),
    # --- test_bench_stores.py (issue 5): reservations, batches of 256 -------------------------
    Target(
        "MemoryNonceStore.reserve_many  vs dict+Lock per item", "store_memory", "naive_memory", None,
        "target is absolute: >= 1M reservations/s", min_rate=1_000_000, group="stores",
    ),  # fmt: skip
    Target(
        "RedisNonceStore.reserve_many  vs SET NX PX per item", "store_redis", "naive_redis", None,
        "target is absolute: >= 50k reservations/s", min_rate=50_000, group="stores",
    ),  # fmt: skip
    Target(
        "SqliteNonceStore.reserve_many  vs one transaction per item", "store_sqlite", "naive_sqlite", None,
        "target is absolute: >= 20k reservations/s", min_rate=20_000, group="stores",
    ),  # fmt: skip
    # --- test_bench_batchsig.py (issue 15): verify_batch over cached payer keys, 1 thread ----
    *(
        Target(
            f"verify_batch {label:<26} vs coincurve+keccak", f"bs_{case}", f"bs_{case}_anchor", target, "alternating rounds; median same-round ratio",
            group="batchsig", paired=True,
        )  # fmt: skip
        for case, label, target in (
            ("n256_payers16", "n=256, 16 repeat payers", 3.0),
            ("n256_payers256", "n=256, 256 distinct payers", 2.0),
            ("n1024_payers16", "n=1024, 16 repeat payers", 4.0),
            ("n256_payers16_1bad", "n=256, 1 bad", 2.0),
            ("n256_payers16_halfbad", "n=256, half bad", None),
        )
    ),
    Target("verify_batch n=256 half bad  vs same with payer_key_cache=0", "bs_n256_payers16_halfbad", "bs_off_n256_payers16_halfbad", 1 / 1.1,
           "no slower than per-item recovery + 10%", group="batchsig", paired=True),  # fmt: skip
    *(
        Target(
            f"verify_batch payer_key_cache=0 {case:<22} vs coincurve+keccak", f"bs_off_{case}", f"bs_off_{case}_anchor", None, "reported only",
            group="batchsig", paired=True,
        )  # fmt: skip
        for case in ("n256_payers16", "n256_payers256", "n1024_payers16")
    ),
    *(
        Target(
            f"recover_hash_batch {case:<22} vs coincurve+keccak", f"bs_recover_{case}", f"bs_recover_{case}_anchor", None, "reported only",
            group="batchsig", paired=True,
        )  # fmt: skip
        for case in ("n256_payers16", "n1024_payers16")
    ),
    Target(
        "verify_batch resumed upto sessions, n=256 vs coincurve+keccak", "bs_sessions", "bs_sessions_anchor", 20.0, "alternating rounds",
        group="batchsig", paired=True,
    ),  # fmt: skip
    Target(
        "  the same, requirements as a dict per payment", "bs_sessions_dicts", "bs_sessions_dicts_anchor", None, "reported only",
        group="batchsig", paired=True,
    ),  # fmt: skip
    Target(
        "  the same, answered as replays by the memory store", "bs_sessions_stored", "bs_sessions_stored_anchor", None, "reported only",
        group="batchsig", paired=True,
    ),  # fmt: skip
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
        self.notes: list[str] = []  # printed under the table (how a side was measured, stages)
        self.paired: dict[tuple[str, str], float] = {}  # (ours, anchor) -> median same-round ratio

    def note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    def record(self, key: str, benchmark: Any, items_per_call: int) -> None:
        """Stores the benchmark's per-item time (a no-op under --benchmark-disable)."""
        benchmark.extra_info["items_per_call"] = items_per_call
        if not benchmark.stats:
            return
        s = benchmark.stats.stats
        self.timings[key] = Timing(s.min / items_per_call, s.median / items_per_call, items_per_call)

    def record_times(self, key: str, seconds: list[float], items_per_call: int) -> None:
        """Stores a per-item time from round times measured by hand (see ``alternate``)."""
        ordered = sorted(seconds)
        self.timings[key] = Timing(ordered[0] / items_per_call, ordered[len(ordered) // 2] / items_per_call, items_per_call)

    def record_paired(
        self, ours: str, anchor: str, ours_seconds: list[float], anchor_seconds: list[float], ours_items: int, anchor_items: int
    ) -> None:
        """Stores the median of the same-round per-item ratios of two sides timed by ``alternate``."""
        ratios = sorted((a / anchor_items) / (o / ours_items) for a, o in zip(anchor_seconds, ours_seconds, strict=True))
        self.paired[(ours, anchor)] = ratios[len(ratios) // 2]

    def ratios(self, group: str | None = None) -> list[tuple[Target, float, float]]:
        """(target, ratio on min, ratio on median) for every pair whose both sides ran (only
        ``group``'s pairs when given); for a paired target the median is of same-round ratios."""
        out = []
        for t in TARGETS:
            if group is not None and t.group != group:
                continue
            ours, anchor = self.timings.get(t.ours), self.timings.get(t.anchor)
            if ours and anchor:
                median = self.paired.get((t.ours, t.anchor)) if t.paired else anchor.median / ours.median
                if median is not None:
                    out.append((t, anchor.min / ours.min, median))
        return out

    @staticmethod
    def checked_ratio(t: Target, r_min: float, r_med: float) -> float:
        """The ratio a target is checked on: the median same-round ratio for paired targets (both
        sides saw the same host), else the ratio of best times (least disturbed by other load)."""
        return r_med if t.paired else r_min

    def missed(self, group: str | None = None) -> list[str]:
        """A line for every checked pair whose ratio is under its target, or whose own rate (on
        min) is under its absolute target."""
        out = []
        for t, r_min, r_med in self.ratios(group):
            r = self.checked_ratio(t, r_min, r_med)
            if t.target is not None and r < t.target:
                out.append(f"{t.ours} vs {t.anchor}: {r:.2f}x < {t.target:g}x")
            rate = 1 / self.timings[t.ours].min
            if t.min_rate is not None and rate < t.min_rate:
                out.append(f"{t.ours}: {rate:,.0f}/s < {t.min_rate:,.0f}/s")
        return out

    def checked(self, group: str | None = None) -> int:
        return sum(t.target is not None or t.min_rate is not None for t, *_ in self.ratios(group))


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
        pytest.fail("no keccak implementation (pycryptodome or eth-hash) installed: pip install .[test]")
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


def alternate(
    anchor_halves: tuple[Callable[[], Any], Callable[[], Any]], contenders: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Times every contender once per round (the order rotating from round to round), each one
    between the two halves of the anchor: anchor half, contender, anchor half. Returns each
    contender's round times and the anchor's time around it (both halves, seconds).

    pytest-benchmark times one function's rounds back to back, so when the shared host slows
    down for a few seconds it lands on whichever side was running; here the anchor's time is
    centred on the contender's, so the same weather (and any steady drift) weighs on both sides
    of each ratio."""
    names = list(contenders)
    ours: dict[str, list[float]] = {n: [] for n in names}
    around: dict[str, list[float]] = {n: [] for n in names}
    first, second = anchor_halves
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            first()
            t1 = time.perf_counter()
            contenders[n]()
            t2 = time.perf_counter()
            second()
            t3 = time.perf_counter()
            ours[n].append(t2 - t1)
            around[n].append((t1 - t0) + (t3 - t2))
    return ours, around


def check_targets(recorder: Recorder, group: str) -> None:
    """The body of each bench file's last test: fails if one of ``group``'s pairs misses."""
    if not recorder.timings:
        pytest.skip("benchmarks disabled (pass --benchmark-enable)")
    assert recorder.checked(group), f"no {group} benchmark pair ran completely"
    missed = recorder.missed(group)
    assert not missed, "targets missed: " + "; ".join(missed)


def _target_text(t: Target) -> str:
    parts = []
    if t.target is not None:
        parts.append(f"{t.target:g}x")
    if t.min_rate is not None:
        parts.append(f"{t.min_rate / 1000:g}k/s")
    return ",".join(parts) or "-"


def _verdict(t: Target, ratio: float, rate: float) -> str:
    shortfalls = []
    if t.target is not None and ratio < t.target:
        shortfalls.append(1 - ratio / t.target)
    if t.min_rate is not None and rate < t.min_rate:
        shortfalls.append(1 - rate / t.min_rate)
    if shortfalls:
        return f"MISSED by {max(shortfalls) * 100:.0f}%"
    return "ok" if t.target is not None or t.min_rate is not None else "-"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ratios = RECORDER.ratios()
    if not ratios:
        if not RECORDER.timings:
            terminalreporter.write_line("x402-verify benches: no timings recorded (run with --benchmark-enable)")
        return
    tr = terminalreporter
    tr.section("x402-verify: ours vs anchor (ratio = anchor time / our time per item; >1 is faster)")
    keccak = f"; keccak used by the coincurve anchor: {RECORDER.keccak_name}" if RECORDER.keccak_name != "?" else ""
    load = f"; load average (1/5 min) at the end: {os.getloadavg()[0]:.1f}/{os.getloadavg()[1]:.1f}" if hasattr(os, "getloadavg") else ""
    tr.write_line(f"cores: {os.cpu_count()}{load}{keccak}")
    tr.write_line(f"{'pair':<62} {'ours items/s':>13} {'anchor items/s':>15} {'ratio(min)':>11} {'ratio(med)':>11} {'target':>7}  verdict")
    for t, r_min, r_med in ratios:
        ours, anchor = RECORDER.timings[t.ours], RECORDER.timings[t.anchor]
        verdict = _verdict(t, RECORDER.checked_ratio(t, r_min, r_med), 1 / ours.min)
        tr.write_line(
            f"{t.label:<62} {1 / ours.min:>13,.0f} {1 / anchor.min:>15,.0f} {r_min:>10.2f}x {r_med:>10.2f}x {_target_text(t):>7}  {verdict}"
            + (f"  ({t.note})" if t.note else "")
        )
    tr.write_line(
        "targets are checked on the min-time ratio (least disturbed by other load), except 'alternating rounds' rows: "
        "there on the median of the same-round ratios (both sides timed under the same host load)"
    )
    tr.write_line("absolute targets (k/s) are checked on our items/s at the min time; medians: see the pytest-benchmark table")
    for line in RECORDER.notes:
        tr.write_line(f"note: {line}")
