"""The store lifecycle as a Hypothesis state machine, against a plain Python model.

Rules: reserve (a batch of 1-4 items over a small pool of keys and owners, so collisions,
same-owner retries and in-batch duplicates are frequent), settle, release, charge (amounts up to
2**256 - 1 against caps up to 2**256 - 1), advance the clock, sweep. After every step, the
``state()`` of every pooled key must equal the model's. Every answer (True / False / None per
reserved item, each total returned, each ``ReservationError.code``) must equal the model's.

- Memory and SQLite drop keys by the clock handed to them as ``now=``: the machine moves it
  forward, so unsettled entries expire (at valid_until + margin) in the middle of runs; settled
  ones never do. Items that would expire before ``now`` are refused (None) by every store.
- Redis gives each key a lifetime relative to ``now`` and counts it down on its own timer,
  which the machine cannot move: its machine has no advance / sweep rules, its ``now`` is an
  hour behind the real clock (a Redis clock running ahead, as the gateway sees it), and its
  live authorizations are valid far ahead of that ``now``. Redis expiry is checked in
  ``test_stores.py::test_redis_expiry_follows_the_callers_clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import x402_verify as xv
from redis_servers import RedisServer
from test_stores import close_store, open_store
from x402_verify import ReservationError

U256_MAX = 2**256 - 1
KEYS = [bytes([i]) * 32 for i in range(1, 5)]
OWNERS = ["a", "b", "c"]
MARGIN = 5
CAPS = [None, None, 0, 10, 1000, U256_MAX]
AMOUNTS = st.one_of(st.integers(0, 12), st.sampled_from([2**255, U256_MAX]))
# Relative to the machine's clock; negative offsets make authorizations dead on arrival.
OFFSETS = [-100, -MARGIN, -MARGIN + 1, 0, 3, 20, 200]
STEPS = [1, 3, 5, 10, 50, 300]


@dataclass(frozen=True)
class Entry:
    state: str  # "reserved" | "settled"
    owner: str
    cap: int | None
    charged: int
    expires_at: int | None  # None: settled, kept for good


class Refused(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


class Model:
    """The lifecycle of rust/core/src/store/mod.rs, in plain Python."""

    def __init__(self, margin: int) -> None:
        self.margin = margin
        self.entries: dict[bytes, Entry] = {}

    def live(self, key: bytes, now: int) -> Entry | None:
        e = self.entries.get(key)
        return e if e is not None and (e.expires_at is None or e.expires_at > now) else None

    def reserve(self, key: bytes, until: int, owner: str, cap: int | None, now: int) -> bool | None:
        e = self.live(key, now)
        if e is not None:
            return e.state == "reserved" and e.owner == owner
        self.entries.pop(key, None)
        if until + self.margin <= now:
            return None  # it would be kept for no time: refused
        self.entries[key] = Entry("reserved", owner, cap, 0, until + self.margin)
        return True

    def _held(self, key: bytes, owner: str, now: int) -> Entry:
        e = self.live(key, now)
        if e is None:
            raise Refused("reservation_not_found")
        if e.owner != owner:
            raise Refused("reservation_not_owner")
        return e

    def settle(self, key: bytes, owner: str, now: int) -> int:
        e = self._held(key, owner, now)
        self.entries[key] = replace(e, state="settled", expires_at=None)
        return e.charged

    def release(self, key: bytes, owner: str, now: int) -> None:
        e = self._held(key, owner, now)
        if e.state == "settled":
            raise Refused("reservation_closed")
        del self.entries[key]

    def charge(self, key: bytes, owner: str, amount: int, now: int) -> int:
        e = self._held(key, owner, now)
        if e.state == "settled":
            raise Refused("reservation_closed")
        if e.cap is None:
            raise Refused("reservation_not_upto")
        if e.charged + amount > e.cap:
            raise Refused("invalid_upto_evm_payload_settlement_exceeds_amount")
        self.entries[key] = replace(e, charged=e.charged + amount)
        return e.charged + amount

    def state(self, key: bytes, now: int) -> tuple[str, str, int, int | None] | None:
        e = self.live(key, now)
        return None if e is None else (e.state, e.owner, e.charged, e.expires_at)

    def sweep(self, now: int) -> int:
        self.entries = {k: e for k, e in self.entries.items() if e.expires_at is None or e.expires_at > now}
        return len(self.entries)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except (ReservationError, Refused) as exc:
        return ("refused", exc.code)


items = st.lists(
    st.tuples(st.sampled_from(KEYS), st.sampled_from(OWNERS), st.sampled_from(OFFSETS), st.sampled_from(CAPS)),
    min_size=1,
    max_size=4,
)


class StoreMachine(RuleBasedStateMachine):
    """One store against the model. ``local_clock``: the store drops keys by the ``now`` it is
    handed (memory, SQLite), which the machine moves; otherwise (Redis) ``now`` stays an hour
    behind the real clock and live items are valid far ahead of it."""

    def __init__(self, store: Any, local_clock: bool) -> None:
        super().__init__()
        self.store = store
        self.local_clock = local_clock
        self.model = Model(MARGIN)
        self.clock = 1_700_000_000 if local_clock else int(time.time()) - 3600

    # The store's ``now`` and the model's.
    @property
    def now(self) -> int:
        return self.clock

    @property
    def model_now(self) -> int:
        return self.clock

    def _until(self, offset: int) -> int:
        if self.local_clock or offset <= -MARGIN:
            return self.clock + offset
        # Redis: a lifetime far longer than a run, so its timer drops nothing meanwhile.
        return self.clock + 100_000 + offset

    @rule(batch=items)
    def reserve(self, batch: list[tuple[bytes, str, int, int | None]]) -> None:
        keys = [k for k, _, _, _ in batch]
        untils = [self._until(off) for _, _, off, _ in batch]
        owners = [o for _, o, _, _ in batch]
        caps = [c for _, _, _, c in batch]
        got = self.store.reserve_many(keys, untils, owners, caps, now=self.now)
        want = [self.model.reserve(k, u, o, c, self.model_now) for k, u, o, c in zip(keys, untils, owners, caps, strict=True)]
        assert got == want

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS))
    def settle(self, key: bytes, owner: str) -> None:
        got = outcome(lambda: self.store.settle(key, owner, now=self.now))
        assert got == outcome(lambda: self.model.settle(key, owner, self.model_now))

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS))
    def release(self, key: bytes, owner: str) -> None:
        got = outcome(lambda: self.store.release(key, owner, now=self.now))
        assert got == outcome(lambda: self.model.release(key, owner, self.model_now))

    @rule(key=st.sampled_from(KEYS), owner=st.sampled_from(OWNERS), amount=AMOUNTS)
    def charge(self, key: bytes, owner: str, amount: int) -> None:
        got = outcome(lambda: self.store.charge(key, owner, amount, now=self.now))
        assert got == outcome(lambda: self.model.charge(key, owner, amount, self.model_now))

    @precondition(lambda self: self.local_clock)
    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: int) -> None:
        self.clock += step

    @precondition(lambda self: self.local_clock)
    @rule()
    def sweep(self) -> None:
        assert self.store.sweep(now=self.now) == self.model.sweep(self.model_now)

    @invariant()
    def states_agree(self) -> None:
        for k in KEYS:
            assert self.store.state(k, now=self.now) == self.model.state(k, self.model_now), k.hex()[:2]


def run(make: Callable[[], Any], local_clock: bool, examples: int, steps: int, shrink: bool = True) -> None:
    opened: list[Any] = []

    def machine() -> StoreMachine:
        store = make()
        opened.append(store)
        return StoreMachine(store, local_clock)

    try:
        run_state_machine_as_test(
            machine,  # type: ignore[arg-type]  # a factory is accepted
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                phases=list(Phase) if shrink else [Phase.generate],
            ),
        )
    finally:
        for s in opened:
            close_store(s)


def test_memory_store_follows_the_model() -> None:
    run(lambda: xv.MemoryNonceStore(margin_seconds=MARGIN), local_clock=True, examples=200, steps=40)


def test_sqlite_store_follows_the_model(tmp_path: Path) -> None:
    counter = iter(range(10**6))
    run(lambda: open_store("sqlite", path=tmp_path / f"m{next(counter)}.sqlite3", margin_seconds=MARGIN), local_clock=True, examples=150, steps=40)


def test_redis_store_follows_the_model(shared_redis_server: RedisServer) -> None:
    # Non-expiry rules only (the server clock decides expiry); each run gets its own prefix.
    run(lambda: open_store("redis", redis_url=shared_redis_server.url, margin_seconds=MARGIN), local_clock=False, examples=150, steps=40)


class OwnerBlindRelease:
    """A memory store whose release skips the owner check: the machine must catch it."""

    def __init__(self) -> None:
        self.inner = xv.MemoryNonceStore(margin_seconds=MARGIN)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        state = self.inner.state(key, now=now)
        self.inner.release(key, state[1] if state else owner, now=now)


def test_the_machine_catches_a_store_bug() -> None:
    with pytest.raises(AssertionError):
        run(OwnerBlindRelease, local_clock=True, examples=200, steps=40, shrink=False)


class TwoHandles:
    """Two ``SqliteNonceStore`` objects on one file, called in turn: what two processes see.
    Each keeps its own index of the reservation log, so every answer depends on catching up
    with what the other one wrote (reservations, moves into ``reservations``, tombstones).
    The machine's checks of ``state()`` after every step go to a third handle: a ``state()``
    catches its handle up, and checks on the working handles would read each tombstone before
    the next step, hiding one that a step of expiry took first."""

    def __init__(self, path: Path, cls: type[xv.SqliteNonceStore] = xv.SqliteNonceStore) -> None:
        self.handles = [cls(path, margin_seconds=MARGIN), cls(path, margin_seconds=MARGIN)]
        self.checker = cls(path, margin_seconds=MARGIN)
        self.calls = 0

    def _next(self) -> Any:
        self.calls += 1
        return self.handles[self.calls % 2]

    def __getattr__(self, name: str) -> Any:
        if name == "state":
            return self.checker.state
        return getattr(self._next(), name)

    def close(self) -> None:
        for h in [*self.handles, self.checker]:
            h.close()


def test_two_sqlite_handles_on_one_file_follow_the_model(tmp_path: Path) -> None:
    counter = iter(range(10**6))
    run(lambda: TwoHandles(tmp_path / f"two{next(counter)}.sqlite3"), local_clock=True, examples=150, steps=40)


class StaleIndex(xv.SqliteNonceStore):
    """A store that reads the reservation log once and never again: the other handle's writes
    go unseen. The two-handle machine must catch it."""

    def _catch_up(self, conn: Any, at: int | None = None) -> None:
        if not getattr(self, "_read_once", False):
            self._read_once = True
            super()._catch_up(conn, at)


def test_the_machine_catches_a_handle_that_misses_the_others_writes(tmp_path: Path) -> None:
    counter = iter(range(10**6))
    with pytest.raises(AssertionError):
        run(lambda: TwoHandles(tmp_path / f"stale{next(counter)}.sqlite3", StaleIndex), local_clock=True, examples=200, steps=40, shrink=False)
