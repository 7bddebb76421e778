"""Arguments of the typed-data and recover functions at their edges (issue 10 item 13).

``max_bytes`` and ``threads`` were extracted as ``usize`` by pyo3, which raises OverflowError
for a negative int or one of 2**64 or more. Now: TypeError for a non-int (bool included: a
``max_bytes=True`` is a slip, not 1), ValueError for an int out of range, each naming the
option; text with lone surrogates is a documented error class, never UnicodeEncodeError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import x402_verify as xv
from x402_verify import SignatureError, TypedDataError

DOC = {
    "types": {"T": [{"name": "v", "type": "uint256"}]},
    "primaryType": "T",
    "domain": {"name": "args"},
    "message": {"v": 1},
}
SIG = "0x" + "11" * 32 + "22" * 32 + "1b"
DIGEST = bytes(32)

MAX_BYTES_CALLS: dict[str, Callable[[Any], Any]] = {
    "hash_typed_data": lambda m: xv.hash_typed_data(DOC, max_bytes=m),
    "recover_typed_data": lambda m: xv.recover_typed_data(DOC, SIG, max_bytes=m),
    "recover_typed_data_batch": lambda m: xv.recover_typed_data_batch([(DOC, SIG)], max_bytes=m),
}
THREADS_CALLS: dict[str, Callable[[Any], Any]] = {
    "recover_typed_data_batch": lambda t: xv.recover_typed_data_batch([(DOC, SIG)], threads=t),
    "recover_hash_batch": lambda t: xv.recover_hash_batch([(DIGEST, SIG)], threads=t),
}


def result(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (xv.X402VerifyError, ValueError, TypeError) as e:
        return e


@pytest.mark.parametrize("name", list(MAX_BYTES_CALLS))
@pytest.mark.parametrize(("value", "error"), [
    (-1, ValueError), (-(2**70), ValueError), (2**64, ValueError), (2**200, ValueError),
    (True, TypeError), (False, TypeError), (1.5, TypeError), ("10", TypeError), (None, TypeError),
])  # fmt: skip
def test_bad_max_bytes(name: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_bytes") as info:
        MAX_BYTES_CALLS[name](value)
    assert type(info.value) is error  # not OverflowError (a subclass of ArithmeticError), nor ours


@pytest.mark.parametrize("name", list(MAX_BYTES_CALLS))
def test_max_bytes_edges(name: str) -> None:
    # 0 refuses everything, 2**64 - 1 is no bound at all; both are ints in range.
    zero = result(lambda: MAX_BYTES_CALLS[name](0))
    zero = zero[0] if isinstance(zero, list) else zero
    assert isinstance(zero, TypedDataError) and zero.code == "payload_too_large"
    top = result(lambda: MAX_BYTES_CALLS[name](2**64 - 1))
    top = top[0] if isinstance(top, list) else top
    assert isinstance(top, (bytes, str, SignatureError)), repr(top)


@pytest.mark.parametrize("name", list(THREADS_CALLS))
@pytest.mark.parametrize(("value", "error"), [
    (-1, ValueError), (2**64, ValueError), (2**100, ValueError), (0, ValueError), (10**6, ValueError),
    (True, TypeError), (1.0, TypeError), ("2", TypeError),
])  # fmt: skip
def test_bad_threads(name: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="threads") as info:
        THREADS_CALLS[name](value)
    assert type(info.value) is error


@pytest.mark.parametrize("name", list(THREADS_CALLS))
def test_good_threads(name: str) -> None:
    for t in (None, 1, 2):
        out = THREADS_CALLS[name](t)
        assert isinstance(out, list) and len(out) == 1


SURROGATE = "\ud800"


@pytest.mark.parametrize(("call", "cls", "code"), [
    (lambda: xv.hash_typed_data(json.dumps(DOC).replace("args", SURROGATE)), TypedDataError, "invalid_json"),
    (lambda: xv.hash_typed_data(dict(DOC, domain={"name": SURROGATE})), TypedDataError, "invalid_value_type"),
    (lambda: xv.recover_typed_data(DOC, "0x" + SURROGATE), SignatureError, "invalid_signature_encoding"),
    (lambda: xv.recover_hash("0x" + SURROGATE, SIG), SignatureError, "invalid_digest"),
    (lambda: xv.recover_hash(DIGEST, SURROGATE), SignatureError, "invalid_signature_encoding"),
])  # fmt: skip
def test_lone_surrogates(call: Callable[[], Any], cls: type[Exception], code: str) -> None:
    with pytest.raises(cls) as info:
        call()
    assert info.value.code == code  # type: ignore[attr-defined]


def test_lone_surrogates_in_keys_and_batches() -> None:
    # A dict key that is not UTF-8 text is a key of the wrong kind: TypeError alone, an item
    # error in a batch; never UnicodeEncodeError.
    bad_key = dict(DOC, message={SURROGATE: 1})
    with pytest.raises(TypeError, match="UTF-8"):
        xv.hash_typed_data(bad_key)
    items = xv.recover_typed_data_batch([(bad_key, SIG), (json.dumps(DOC) + SURROGATE, SIG), (DOC, SURROGATE)])
    assert [(type(i), i.code) for i in items] == [
        (TypedDataError, "invalid_input_type"), (TypedDataError, "invalid_json"), (SignatureError, "invalid_signature_encoding"),
    ]  # fmt: skip
    (item,) = xv.recover_hash_batch([(SURROGATE, SIG)])
    assert isinstance(item, SignatureError) and item.code == "invalid_digest"
