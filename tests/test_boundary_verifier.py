"""The Verifier and header boundary (issue 10 item 13 and the acceptance's property test):
whatever Python value reaches a public function, what comes out is a verdict, a value, or a
documented exception (``TypeError``, ``ValueError`` and its ``X402VerifyError`` subclasses,
``NonceStoreError``) with a message; never ``OverflowError``, ``UnicodeError``, a pyo3
``PanicException`` or anything else, and the verifier (with its store) still works afterwards."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from x402_verify import _samples

SAMPLES = _samples.x402_items("permit2")
HEADER, REQ, _PAYER = SAMPLES[0]
NOW = _samples.VALID_AT


def documented(exc: BaseException) -> bool:
    """A documented exception: TypeError / ValueError (X402VerifyError is one) / NonceStoreError,
    but not the raw conversion errors that happen to subclass them."""
    if isinstance(exc, (UnicodeError, OverflowError)):
        return False
    return isinstance(exc, (TypeError, ValueError, xv.NonceStoreError))


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # a PanicException is a BaseException: it fails the test as it is
        assert documented(exc), f"undocumented {type(exc).__name__}: {exc}"
        assert str(exc), f"{type(exc).__name__} without a message"
        return exc


# --- item 13, one by one -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda: xv.Verifier(nonce_store=None).verify(HEADER, REQ, now=-1), ValueError),
        (lambda: xv.Verifier(nonce_store=None).verify(HEADER, REQ, now=2**64), ValueError),
        (lambda: xv.Verifier(nonce_store=None).verify(HEADER, REQ, now=True), TypeError),
        (lambda: xv.Verifier(nonce_store=None).verify(HEADER, REQ, now=1.5), TypeError),
        (lambda: xv.Verifier(nonce_store=None).verify_batch([(HEADER, REQ)], now=-1), ValueError),
        (lambda: xv.Verifier(nonce_store=None).verify_batch([(HEADER, REQ)], threads=-1), ValueError),
        (lambda: xv.Verifier(nonce_store=None).verify_batch([(HEADER, REQ)], threads=0), ValueError),
        (lambda: xv.Verifier(nonce_store=None).verify_batch([(HEADER, REQ)], threads=True), TypeError),
        (lambda: xv.Verifier(threads=-1), ValueError),
        (lambda: xv.Verifier(time_buffer=2**64), ValueError),
        (lambda: xv.Verifier(max_validity_seconds=-1), ValueError),
        (lambda: xv.Verifier(max_payload_bytes=-1), ValueError),
        (lambda: xv.Verifier(network_names={"x": -1}), ValueError),
        (lambda: xv.Verifier(time_buffer=True), TypeError),
        (lambda: xv.decode_payment_header("\ud800"), xv.PaymentError),
        (lambda: xv.decode_payment_header(5), TypeError),  # type: ignore[arg-type]
        (lambda: xv.encode_payment_header({"a": "\ud800"}), ValueError),
        (lambda: xv.encode_payment_header({"a": math.nan}), ValueError),
        (lambda: xv.encode_payment_header([1]), TypeError),  # type: ignore[arg-type]
        (lambda: xv.Requirements(REQ, max_bytes=-1), ValueError),
        (lambda: xv.recover_hash_batch([], threads=-1), ValueError),
        (lambda: xv.recover_typed_data_batch([], threads=2**64), ValueError),
        (lambda: xv.Verifier().settle(b"\0" * 32, owner="\ud800"), ValueError),
        (lambda: xv.Verifier().settle(b"\0" * 32, owner="o", now=-1), ValueError),
        (lambda: xv.Verifier().charge(b"\0" * 32, 1.5, owner="o"), TypeError),  # type: ignore[arg-type]
        (lambda: xv.Verifier().charge(b"\0" * 32, -1, owner="o"), ValueError),
        (lambda: xv.Verifier().release("key", owner="o"), TypeError),  # type: ignore[arg-type]
    ],
)
def test_boundary_faults_are_clear_python_errors(call: Callable[[], Any], exc: type[Exception]) -> None:
    with pytest.raises(exc) as e:
        call()
    assert documented(e.value) and str(e.value)


def test_now_true_is_not_read_as_one() -> None:
    v = xv.Verifier(nonce_store=None)
    with pytest.raises(TypeError, match="bool"):
        v.verify(HEADER, REQ, now=True)
    assert v.verify(HEADER, REQ, now=NOW).is_valid


def test_a_header_with_a_huge_integer_is_a_documented_error() -> None:
    import base64

    for digits in (30, 100):
        with pytest.raises(xv.X402VerifyError):
            xv.decode_payment_header(base64.b64encode(b'{"x402Version":' + b"9" * digits + b"}").decode())


# --- the property test --------------------------------------------------------------------------


class Odd:
    """An object no public function takes."""

    def __repr__(self) -> str:
        return "Odd()"


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 0, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**256, -(2**64)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "a\udfffb", "eip155:8453", "base", xv.EXACT_PERMIT2_PROXY, HEADER, "0x" + "00" * 32])
    | st.binary(max_size=40)
    | st.builds(bytearray, st.binary(max_size=8))
    | st.builds(Odd)
    | st.just(REQ)
    | st.just(HEADER)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["\ud800", "amount", "scheme"]), inner, max_size=4)
    | st.dictionaries(st.integers(), inner, max_size=2)
    | st.frozensets(st.integers(), max_size=3),
    max_leaves=12,
)
OPTIONS = (
    "networks", "network_names", "permit2_proxies", "facilitator_addresses", "time_buffer", "clock_skew_seconds",
    "max_validity_seconds", "max_payload_bytes", "eip3009_policy", "permit2_policy", "threads",
)  # fmt: skip
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def still_works(v: xv.Verifier, sample: int = 0) -> None:
    """The verifier (and its store) answers an honest payment correctly afterwards."""
    header, req, _ = SAMPLES[sample]
    first = v.verify(header, req, now=NOW)
    assert first.is_valid, first.to_dict()
    if v.nonce_store is not None:
        assert v.verify(header, req, now=NOW).invalid_reason == "permit2_nonce_already_used"
        v.release(first, now=NOW)


@PROPERTY
@given(st.dictionaries(st.sampled_from(OPTIONS), values, max_size=3))
def test_constructor_takes_any_values(options: dict[str, Any]) -> None:
    got = outcome(lambda: xv.Verifier(nonce_store=None, **options))
    if isinstance(got, xv.Verifier):
        outcome(lambda: got.verify(HEADER, REQ, now=NOW))


@PROPERTY
@given(values, values, values)
def test_verify_takes_any_values(payload: Any, requirements: Any, now: Any) -> None:
    v = xv.Verifier()
    got = outcome(lambda: v.verify(payload, requirements, now=now))
    # Only a bad `now` may raise; any payload or requirements get a verdict.
    if now is None or (type(now) is int and 0 <= now < 2**63):
        assert isinstance(got, xv.VerifyResponse), got
        if got.is_valid:
            v.release(got, now=NOW)
    still_works(v)


@PROPERTY
@given(values, st.lists(st.tuples(values, values) | values, max_size=4), values, values)
def test_verify_batch_takes_any_values(items: Any, listed: list[Any], now: Any, threads: Any) -> None:
    v = xv.Verifier()
    for batch in (items, listed, [*listed, (HEADER, REQ)]):
        got = outcome(lambda batch=batch: v.verify_batch(batch, now=now, threads=threads))
        if isinstance(got, list):
            assert all(isinstance(r, xv.VerifyResponse) for r in got)
            for r in got:
                if r.is_valid:
                    v.release(r, now=NOW)
    still_works(v)


@PROPERTY
@given(values, values, values, values, st.sampled_from(["settle", "release", "charge"]), st.booleans())
def test_reservation_calls_take_any_values(response: Any, owner: Any, amount: Any, now: Any, method: str, use_real: bool) -> None:
    v = xv.Verifier()
    if use_real:
        response = v.verify(HEADER, REQ, now=NOW)
        assert response.is_valid
    kwargs: dict[str, Any] = {"owner": owner, "now": now}
    if method == "charge":
        outcome(lambda: v.charge(response, amount, **kwargs))
    else:
        outcome(lambda: getattr(v, method)(response, **kwargs))
    # The store that saw any of that still reserves, refuses the replay and releases.
    still_works(v, sample=1)


@PROPERTY
@given(values, values)
def test_header_helpers_take_any_values(value: Any, payload: Any) -> None:
    got = outcome(lambda: xv.decode_payment_header(value))
    assert isinstance(got, (dict, Exception))
    encoded = outcome(lambda: xv.encode_payment_header(payload))
    if isinstance(encoded, str):
        back = outcome(lambda: xv.decode_payment_header(encoded))
        assert isinstance(back, (dict, Exception))


@PROPERTY
@given(values, values, values)
def test_requirements_and_responses_take_any_values(value: Any, max_bytes: Any, text: Any) -> None:
    got = outcome(lambda: xv.Requirements(value))
    assert isinstance(got, (xv.Requirements, Exception))
    outcome(lambda: xv.Requirements(REQ, max_bytes=max_bytes))
    r = xv.Verifier(nonce_store=None).verify(HEADER, REQ, now=NOW)
    outcome(lambda: r.with_invalid(text, text))
    outcome(lambda: r.with_invalid("invalid_payload", text))
    outcome(lambda: r.with_reservation(text))
    outcome(lambda: r == value)
    outcome(lambda: r.to_dict())


@PROPERTY
@given(values, values, values)
def test_recover_batches_take_any_thread_counts(items: Any, threads: Any, pair: Any) -> None:
    outcome(lambda: xv.recover_hash_batch([(bytes(32), bytes(65)), pair], threads=threads))
    outcome(lambda: xv.recover_typed_data_batch(items, threads=threads))
