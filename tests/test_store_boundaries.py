"""Every store method at its boundary (issue 10 items 8, 9, 11 and the store parts of 13):
bad values get a ``TypeError`` or ``ValueError`` with a clear message, the same from every
store, and leave the store as it was.

- ``charge()`` takes ints in [0, 2**256) only (not bool, float, NaN, Decimal or str) in every
  store; a refused charge changes nothing, and the reservation can still be settled.
- ``RedisNonceStore(client=redis.Redis(...))`` without ``decode_responses`` works.
- A negative (or huge, or bool) ``margin_seconds`` is refused by every store's constructor;
  so are negative / huge ``max_entries`` and bad timeouts.
- ``now``: negative, >= 2**63 or a bool is refused by every method (``sweep(now=-1)``,
  ``now=True``); owner tokens with lone surrogates are refused; a Redis owner token containing
  ``|`` works like any other.
- ``close()`` and ``with``: a closed store refuses (``NonceStoreError``), so the verifier
  answers ``nonce_store_unavailable``.
- The refusal texts come from the core's catalogue (``_core.store_refusals()``), the same from
  every store; stores.py spells none of them out.
- A property test (Hypothesis) drives every store method with arbitrary Python values: only
  ``TypeError`` / ``ValueError`` (``ReservationError`` is one) come out, answers have the
  documented shape, and the store still works afterwards.
"""

from __future__ import annotations

import inspect
import math
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
import x402_verify.stores
from redis_servers import RedisServer
from test_stores import STORE_KINDS, code_of, new_key, sign_payment, verifier
from x402_verify import NonceStoreError, ReservationError, _core

NOW = int(time.time())
UNTIL = NOW + 300
REFUSALS = _core.store_refusals()


def bad_amounts() -> list[Any]:
    return [1.0, math.nan, math.inf, Decimal(5), Decimal("NaN"), Fraction(1, 2), True, False, "10", b"10", None, [5], -1, 2**256, -(2**300)]


@pytest.mark.parametrize("amount", bad_amounts(), ids=repr)
def test_charge_takes_ints_in_range_only(store: Any, amount: Any) -> None:
    k = new_key()
    assert store.reserve_many([k], [UNTIL], ["o"], [100], now=NOW) == [True]
    expected = ValueError if isinstance(amount, int) and not isinstance(amount, bool) else TypeError
    with pytest.raises(expected) as info:
        store.charge(k, "o", amount, now=NOW)
    assert type(info.value) is expected  # not a ReservationError: the amount, not the state
    assert store.state(k, now=NOW) == ("reserved", "o", 0, UNTIL + 60)
    assert store.charge(k, "o", 5, now=NOW) == 5
    assert store.settle(k, "o", now=NOW) == 5
    assert store.state(k, now=NOW) == ("settled", "o", 5, None)


@pytest.mark.parametrize("cap", [1.5, math.nan, Decimal(10), True, "10", -1, 2**256], ids=repr)
def test_caps_follow_the_same_rules(store: Any, cap: Any) -> None:
    k = new_key()
    with pytest.raises((TypeError, ValueError)):
        store.reserve_many([k], [UNTIL], ["o"], [cap], now=NOW)
    assert store.state(k, now=NOW) is None


def test_redis_client_without_decode_responses(shared_redis_server: RedisServer) -> None:
    client = redis.Redis(host="127.0.0.1", port=shared_redis_server.port)  # bytes replies
    store = xv.RedisNonceStore(client=client, prefix=f"b{uuid.uuid4().hex[:12]}:")
    try:
        k, e = new_key(), new_key()
        assert store.reserve_many([k, k, e], [UNTIL] * 3, ["o", "p", "o"], [100, 100, None], now=NOW) == [True, False, True]
        assert store.charge(k, "o", 40, now=NOW) == 40
        assert code_of(lambda: store.charge(k, "o", 61, now=NOW)) == "invalid_upto_evm_payload_settlement_exceeds_amount"
        assert store.state(k) == ("reserved", "o", 40, UNTIL + 60)
        assert store.settle(k, "o", now=NOW) == 40
        assert store.state(k) == ("settled", "o", 40, None)
        store.release(e, "o", now=NOW)
        assert store.state(e) is None
        v = verifier(store)
        p = sign_payment("permit2", NOW)
        assert v.verify(p.header, p.requirements, now=NOW).is_valid
        assert v.verify(p.header, p.requirements, now=NOW).invalid_reason == "permit2_nonce_already_used"
    finally:
        store.close()
        client.close()


def constructors(tmp_path: Path, server: RedisServer) -> dict[str, Callable[..., Any]]:
    return {
        "memory": lambda **kw: xv.MemoryNonceStore(**kw),
        "sqlite": lambda **kw: xv.SqliteNonceStore(tmp_path / f"{uuid.uuid4().hex}.sqlite3", **kw),
        "redis": lambda **kw: xv.RedisNonceStore(server.url, prefix=f"m{uuid.uuid4().hex[:12]}:", **kw),
    }


@pytest.mark.parametrize(
    ("margin", "error"),
    [
        (-1, ValueError),
        (-60, ValueError),
        (2**32, ValueError),
        (2**64, ValueError),
        (-(2**64), ValueError),
        (True, TypeError),
        (1.5, TypeError),
        ("60", TypeError),
    ],
    ids=repr,
)
def test_every_store_refuses_a_bad_margin(tmp_path: Path, shared_redis_server: RedisServer, margin: Any, error: type[Exception]) -> None:
    for name, make in constructors(tmp_path, shared_redis_server).items():
        with pytest.raises(error, match="margin_seconds"):
            make(margin_seconds=margin)
        with make(margin_seconds=0) as s:  # zero is allowed: no margin
            assert s.margin_seconds == 0, name


def test_a_negative_margin_no_longer_turns_replay_protection_off(tmp_path: Path, shared_redis_server: RedisServer) -> None:
    """Issue 10 item 11: ``margin_seconds=-1000`` made every reservation dead on arrival
    ([True, True, True] for one header). Refused now; with 0 one header passes once."""
    for make in constructors(tmp_path, shared_redis_server).values():
        with pytest.raises(ValueError):
            make(margin_seconds=-1000)
        with make(margin_seconds=0) as s:
            v = verifier(s)
            p = sign_payment("eip3009", NOW)
            assert [r.is_valid for r in v.verify_batch([(p.header, p.requirements)] * 3, now=NOW)] == [True, False, False]


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1, ValueError), (2**64, ValueError), (2**32, ValueError), (True, TypeError), (10.0, TypeError)], ids=repr
)
def test_memory_store_max_entries_bounds(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_entries"):
        xv.MemoryNonceStore(value)


@pytest.mark.parametrize("timeout", [-1, math.nan, math.inf, True, "5", 10**6])
def test_timeouts_are_checked(tmp_path: Path, timeout: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="timeout"):
        xv.SqliteNonceStore(tmp_path / "n.sqlite3", timeout=timeout)
    with pytest.raises((TypeError, ValueError), match="timeout"):
        xv.RedisNonceStore(timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        xv.RedisNonceStore(timeout=0)


BAD_NOWS = [
    (-1, ValueError),
    (2**63, ValueError),
    (2**64, ValueError),
    (-(2**70), ValueError),
    (True, TypeError),
    (False, TypeError),
    (1.0, TypeError),
    ("1", TypeError),
]


@pytest.mark.parametrize(("now", "error"), BAD_NOWS, ids=repr)
def test_every_method_refuses_a_bad_now(store: Any, now: Any, error: type[Exception]) -> None:
    k = new_key()
    assert store.reserve_many([k], [UNTIL], ["o"], [10], now=NOW) == [True]
    calls: list[Callable[[], Any]] = [
        lambda: store.reserve_many([new_key()], [UNTIL], ["o"], now=now),
        lambda: store.settle(k, "o", now=now),
        lambda: store.release(k, "o", now=now),
        lambda: store.charge(k, "o", 1, now=now),
        lambda: store.state(k, now=now),
    ]
    if hasattr(store, "sweep"):
        calls.append(lambda: store.sweep(now=now))
    for call in calls:
        with pytest.raises(error, match="now"):
            call()
    assert store.state(k, now=NOW) == ("reserved", "o", 0, UNTIL + 60)


@pytest.mark.parametrize("owner", ["\ud800", "a\udfffb", "", "x" * 257, "é" * 129], ids=repr)
def test_bad_owner_tokens_are_value_errors(store: Any, owner: str) -> None:
    k = new_key()
    with pytest.raises(ValueError, match="owner token"):
        store.reserve_many([k], [UNTIL], [owner], now=NOW)
    assert store.state(k, now=NOW) is None
    assert store.reserve_many([k], [UNTIL], ["o"], now=NOW) == [True]
    for call in (lambda: store.settle(k, owner, now=NOW), lambda: store.release(k, owner, now=NOW), lambda: store.charge(k, owner, 0, now=NOW)):
        with pytest.raises(ValueError, match="owner token") as info:
            call()
        assert not isinstance(info.value, (UnicodeError, ReservationError))


@pytest.mark.parametrize("owner", ["a|b", "|", "R|x|1|2|3", "a:b|c:d|", "x" * 256, "é" * 128])
def test_any_valid_owner_token_round_trips(store: Any, owner: str) -> None:
    """Issue 10 item 13: a Redis owner token containing ``|`` raised ``ValueError: too many
    values to unpack`` on settle / release / charge / state."""
    k = new_key()
    assert store.reserve_many([k, k], [UNTIL] * 2, [owner, "another owner"], [10] * 2, now=NOW) == [True, False]
    assert store.state(k, now=NOW) == ("reserved", owner, 0, UNTIL + 60)
    assert store.charge(k, owner, 3, now=NOW) == 3
    assert code_of(lambda: store.settle(k, "someone else", now=NOW)) == "reservation_not_owner"
    assert store.settle(k, owner, now=NOW) == 3
    assert store.state(k, now=NOW) == ("settled", owner, 3, None)


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32, bytearray(32), memoryview(bytes(32)), 0, None], ids=repr)
def test_keys_are_32_bytes(store: Any, key: Any) -> None:
    error = ValueError if isinstance(key, bytes) else TypeError
    for call in (
        lambda: store.reserve_many([key], [UNTIL], ["o"], now=NOW),
        lambda: store.settle(key, "o", now=NOW),
        lambda: store.release(key, "o", now=NOW),
        lambda: store.charge(key, "o", 1, now=NOW),
        lambda: store.state(key, now=NOW),
    ):
        with pytest.raises(error):
            call()


@pytest.mark.parametrize("until", [-1, True, 1.0, "1", None, Decimal(1)], ids=repr)
def test_valid_until_is_a_non_negative_int(store: Any, until: Any) -> None:
    with pytest.raises(ValueError if until == -1 and not isinstance(until, bool) else TypeError, match="valid_until"):
        store.reserve_many([new_key()], [until], ["o"], now=NOW)


def test_batch_arguments_line_up(store: Any) -> None:
    with pytest.raises(ValueError, match="same length"):
        store.reserve_many([new_key()], [UNTIL, UNTIL], ["o"], now=NOW)
    with pytest.raises(ValueError, match="same length"):
        store.reserve_many([new_key()], [UNTIL], ["o"], [1, 2], now=NOW)
    for arg in ("keys", "valid_until", "owners"):
        args: dict[str, Any] = {"keys": [new_key()], "valid_until": [UNTIL], "owners": ["o"]}
        args[arg] = "o"
        with pytest.raises(TypeError):
            store.reserve_many(args["keys"], args["valid_until"], args["owners"], now=NOW)
    assert store.reserve_many((k for k in [new_key()]), iter([UNTIL]), ("o",), now=NOW) == [True]  # any iterables


# --------------------------------------------------------------------------------------------
# close() and with
# --------------------------------------------------------------------------------------------


def test_a_closed_store_refuses(make_store: Callable[..., Any]) -> None:
    with make_store() as s:
        k = new_key()
        assert s.reserve_many([k], [UNTIL], ["o"], now=NOW) == [True]
    for call in (
        lambda: s.reserve_many([new_key()], [UNTIL], ["o"], now=NOW),
        lambda: s.settle(k, "o", now=NOW),
        lambda: s.release(k, "o", now=NOW),
        lambda: s.charge(k, "o", 1, now=NOW),
        lambda: s.state(k, now=NOW),
    ):
        with pytest.raises(NonceStoreError, match="closed"):
            call()
    p = sign_payment("permit2", NOW)
    assert verifier(s).verify(p.header, p.requirements, now=NOW).invalid_reason == "nonce_store_unavailable"
    s.close()  # closing twice is harmless


# --------------------------------------------------------------------------------------------
# One catalogue of refusal texts
# --------------------------------------------------------------------------------------------


def test_refusal_texts_come_from_the_core_catalogue(store: Any) -> None:
    assert set(REFUSALS) == {"not_found", "not_owner", "closed", "not_upto", "exceeds_cap", "full", "expired", "unavailable"}
    codes = {c for c, _, _ in xv.error_codes()}
    assert all(code in codes for code, _ in REFUSALS.values())
    k, e = new_key(), new_key()
    assert store.reserve_many([k, e], [UNTIL] * 2, ["o"] * 2, [10, None], now=NOW) == [True, True]

    def refusal(call: Callable[[], Any]) -> tuple[str, str]:
        with pytest.raises(ReservationError) as info:
            call()
        return info.value.code, info.value.message

    assert refusal(lambda: store.settle(new_key(), "o", now=NOW)) == REFUSALS["not_found"]
    assert refusal(lambda: store.settle(k, "x", now=NOW)) == REFUSALS["not_owner"]
    assert refusal(lambda: store.charge(k, "o", 11, now=NOW)) == REFUSALS["exceeds_cap"]
    assert refusal(lambda: store.charge(e, "o", 1, now=NOW)) == REFUSALS["not_upto"]
    store.settle(k, "o", now=NOW)
    assert refusal(lambda: store.release(k, "o", now=NOW)) == REFUSALS["closed"]


def test_stores_py_spells_out_no_refusal_text() -> None:
    # Every module of the stores package (protocol, pipeline, sqlite, redis).
    package = Path(inspect.getfile(x402_verify.stores)).parent
    modules = sorted(package.glob("*.py"))
    assert {m.stem for m in modules} >= {"__init__", "protocol", "pipeline", "sqlite", "redis"}
    source = "".join(m.read_text(encoding="utf-8") for m in modules)
    assert [msg for _code, msg in REFUSALS.values() if msg in source] == []
    assert 'ReservationError("' not in source


# --------------------------------------------------------------------------------------------
# Arbitrary Python values into every store method
# --------------------------------------------------------------------------------------------

KEY_POOL = [bytes([i]) * 32 for i in range(1, 4)]
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**256 - 1, 2**256, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a|b", "|", "", "x" * 300]),
    st.binary(max_size=40),
    st.sampled_from(KEY_POOL),
    st.just(bytearray(32)),
    st.just(object()),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
keyish = st.one_of(st.sampled_from(KEY_POOL), junk)
ownerish = st.one_of(st.sampled_from(["a", "b|c"]), junk)
nowish = st.one_of(st.none(), st.just(NOW), junk)
untilish = st.one_of(st.just(UNTIL), st.just(NOW - 1000), junk)
amountish = st.one_of(st.integers(0, 20), junk)
capish = st.one_of(st.none(), st.integers(0, 50), junk)
seq = lambda elem: st.one_of(st.lists(elem, max_size=3), junk)  # noqa: E731

CALLS = st.one_of(
    st.tuples(st.just("reserve_many"), st.tuples(seq(keyish), seq(untilish), seq(ownerish), st.one_of(st.none(), seq(capish))), nowish),
    st.tuples(st.just("settle"), st.tuples(keyish, ownerish), nowish),
    st.tuples(st.just("release"), st.tuples(keyish, ownerish), nowish),
    st.tuples(st.just("charge"), st.tuples(keyish, ownerish, amountish), nowish),
    st.tuples(st.just("state"), st.tuples(keyish), nowish),
    st.tuples(st.just("sweep"), st.tuples(), nowish),
)


def drive(store: Any, calls: list[tuple[str, tuple[Any, ...], Any]]) -> None:
    for method, args, now in calls:
        if not hasattr(store, method):
            continue
        try:
            out = getattr(store, method)(*args, now=now)
        except (TypeError, ValueError) as exc:  # ReservationError is a ValueError
            assert not isinstance(exc, (UnicodeError, OverflowError)), repr(exc)
            assert len(str(exc)) < 300, repr(exc)[:400]
            continue
        if method == "reserve_many":
            assert isinstance(out, list) and all(o in (True, False, None) for o in out), out
        elif method == "state":
            assert out is None or (isinstance(out, tuple) and len(out) == 4 and out[0] in ("reserved", "settled")), out
        elif method in ("settle", "charge", "sweep"):
            assert isinstance(out, int) and not isinstance(out, bool) and out >= 0, out
        else:
            assert out is None
    # Still usable: a fresh key goes through the whole lifecycle.
    k = new_key()
    assert store.reserve_many([k, k], [UNTIL] * 2, ["ok", "other"], [7, 7], now=NOW) == [True, False]
    assert store.charge(k, "ok", 7, now=NOW) == 7
    assert store.settle(k, "ok", now=NOW) == 7
    assert store.state(k, now=NOW) == ("settled", "ok", 7, None)


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_arbitrary_values_into_every_store_method(store: Any, store_kind: str) -> None:
    @settings(max_examples=300 if store_kind == "memory" else 120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(CALLS, min_size=1, max_size=6))
    def run(calls: list[tuple[str, tuple[Any, ...], Any]]) -> None:
        drive(store, calls)

    run()


def test_the_property_harness_catches_a_raw_exception() -> None:
    """Control: a store that lets a raw UnicodeEncodeError (a ValueError) out fails the harness."""

    class Leaky:
        def __init__(self) -> None:
            self.inner = xv.MemoryNonceStore()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def settle(self, key: Any, owner: Any, *, now: Any = None) -> int:
            if isinstance(owner, str) and "\ud800" in owner:
                raise UnicodeEncodeError("utf-8", owner, 0, 1, "surrogates not allowed")
            result: int = self.inner.settle(key, owner, now=now)
            return result

    with pytest.raises(AssertionError):
        drive(Leaky(), [("settle", (KEY_POOL[0], "\ud800"), None)])
