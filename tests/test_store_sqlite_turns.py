"""SqliteNonceStore's batch reserve and its write turn (x402_verify.stores.sqlite)."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import x402_verify as xv

NOW = 1_750_000_000


def test_a_batch_is_answered_as_the_same_calls_one_by_one(tmp_path: Path) -> None:
    a, b, c = (secrets.token_bytes(32) for _ in range(3))
    settled = secrets.token_bytes(32)
    # (key, valid_until, owner): repeats of a key with the same and another owner, a dead one
    # first refused then reserved, a settled key, a live one reserved earlier by someone else.
    items = [
        (a, NOW + 300, "o1"), (a, NOW + 300, "o1"), (a, NOW + 300, "o2"), (b, NOW - 3600, "o3"), (b, NOW + 300, "o3"),
        (settled, NOW + 300, "o4"), (c, NOW + 300, "o5"),
    ]  # fmt: skip
    batch, single = xv.SqliteNonceStore(tmp_path / "batch.db"), xv.SqliteNonceStore(tmp_path / "single.db")
    for store in (batch, single):
        assert store.reserve_many([settled, c], [NOW + 300] * 2, ["o4", "other"], now=NOW) == [True, True]
        store.settle(settled, "o4", now=NOW)
    got = batch.reserve_many([k for k, _, _ in items], [v for _, v, _ in items], [o for _, _, o in items], now=NOW)
    want = [single.reserve_many([k], [v], [o], now=NOW)[0] for k, v, o in items]
    assert got == want == [True, True, False, None, True, False, False]
    for key in (a, b, c, settled):
        assert batch.state(key, now=NOW) == single.state(key, now=NOW)
    batch.close()
    single.close()


def test_writers_take_turns_and_the_turn_is_reentrant(tmp_path: Path) -> None:
    store = xv.SqliteNonceStore(tmp_path / "n.db")
    order: list[str] = []
    with store.writer(), store.writer():  # re-entrant: a reserve inside a held turn runs
        assert store.reserve_many([secrets.token_bytes(32)], [NOW + 300], ["o"], now=NOW) == [True]
        other = threading.Thread(target=lambda: (store.reserve_many([secrets.token_bytes(32)], [NOW + 300], ["p"], now=NOW), order.append("other")))
        other.start()
        time.sleep(0.1)
        order.append("holder")  # the other thread's write waited for the turn
    other.join(5)
    assert order == ["holder", "other"]
    assert (tmp_path / "n.db.lock").exists()
    store.close()
