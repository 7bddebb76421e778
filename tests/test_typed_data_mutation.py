"""An input mutated while the bindings read it (issue 10 item 12).

Reading a dict runs Python code: an int beyond 64 bits is printed through ``int``'s own
methods, and any allocation may start the garbage collector, whose finalizers can do anything.
A finalizer that added a key to the dict being read made pyo3's dict iterator panic: a
``pyo3_runtime.PanicException`` (a ``BaseException``) and a Rust backtrace on stderr, from
``hash_typed_data`` and from ``Verifier.verify`` alike. Now every dict and list is read from a
snapshot, and one that changed by the end of its read is refused as ``invalid_input_type``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import x402_verify as xv
from x402_verify import TypedDataError

SIG = "0x" + "11" * 32 + "22" * 32 + "1b"


class Mutator:
    """Cyclic garbage whose finalizer runs ``action``, then leaves another such object behind:
    with ``eager_gc`` every collection while the input is read (not only the first, which may
    come before the bindings reach the container) changes it again."""

    active = False

    def __init__(self, action: Callable[[], None]) -> None:
        self.me = self
        self.action = action

    def __del__(self) -> None:
        if Mutator.active:
            self.action()
            Mutator(self.action)


@pytest.fixture
def eager_gc() -> Iterator[None]:
    # A collection at every allocation of a container, so the finalizer runs inside the read.
    old = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1)
    Mutator.active = True
    try:
        yield
    finally:
        Mutator.active = False
        gc.set_threshold(*old)
        gc.collect()


def document(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {"T": [{"name": "a", "type": "uint256"}, {"name": "b", "type": "uint256"}, {"name": "c", "type": "uint256[]"}]},
        "primaryType": "T",
        "domain": {"name": "mutation"},
        "message": message,
    }


def outcome(fn: Callable[[], Any]) -> Any:
    """The result, or the exception; a BaseException that is not an Exception fails the test."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        return e


def grow(target: dict[str, Any]) -> Callable[[], None]:
    return lambda: target.__setitem__(f"added{len(target)}", 1)


BIG_INTS = [2**70 + i for i in range(300)]  # each read runs Python code: chances for a collection


def test_a_finalizer_that_grows_the_message_dict(eager_gc: None) -> None:
    message: dict[str, Any] = {"a": 2**70, "b": 2**71, "c": list(BIG_INTS)}
    doc = document(message)
    Mutator(grow(message))
    result = outcome(lambda: xv.hash_typed_data(doc))
    assert isinstance(result, TypedDataError), repr(result)
    assert (result.code, result.path) == ("invalid_input_type", "message"), result
    # The document is as the finalizer left it: refused now for its extra keys, read normally.
    Mutator.active = False
    with pytest.raises(TypedDataError) as info:
        xv.hash_typed_data(doc)
    assert info.value.code == "unknown_field"


def test_a_finalizer_that_shrinks_a_list(eager_gc: None) -> None:
    items = [2**70 + i for i in range(500)]
    doc = document({"a": 1, "b": 2, "c": items})
    Mutator(lambda: items.pop() if items else None)
    result = outcome(lambda: xv.hash_typed_data(doc))
    assert isinstance(result, TypedDataError) and (result.code, result.path) == ("invalid_input_type", "message.c"), repr(result)


def test_in_a_batch_it_is_an_item_error(eager_gc: None) -> None:
    message: dict[str, Any] = {"a": 2**70, "b": 2**71, "c": list(BIG_INTS)}
    Mutator(grow(message))
    results = outcome(lambda: xv.recover_typed_data_batch([(document(message), SIG), (document({"a": 1, "b": 2, "c": []}), SIG)]))
    assert isinstance(results, list) and len(results) == 2, repr(results)
    assert isinstance(results[0], TypedDataError) and results[0].code == "invalid_input_type"
    assert isinstance(results[1], (str, xv.SignatureError))  # untouched: read and hashed as usual


def test_a_finalizer_that_clears_the_dict_mid_read(eager_gc: None) -> None:
    # The snapshot is read whole: whatever the finalizer does, the answer is a verdict on the
    # snapshot or the refusal, never a crash or a digest of a half-old, half-new document.
    for action in ("clear", "replace", "nested"):
        message: dict[str, Any] = {"a": 2**70, "b": 2**71, "c": [2**72]}
        doc = document(message)
        if action == "clear":
            Mutator(message.clear)
        elif action == "replace":
            Mutator(lambda m=message: m.update(a=5))  # same size: not detectable, and harmless
        else:
            Mutator(lambda d=doc: d["types"].clear())
        result = outcome(lambda d=doc: xv.hash_typed_data(d))
        assert isinstance(result, (bytes, TypedDataError)), repr(result)
        if isinstance(result, TypedDataError):
            assert result.code in {"invalid_input_type", "missing_field", "undeclared_type"}, result


def test_verifier_payment_dicts_too(eager_gc: None) -> None:
    # Verifier.verify reads payment dicts with the same converter.
    verifier = xv.Verifier(networks=["eip155:84532"], nonce_store=None)
    requirements = {"scheme": "exact", "network": "eip155:84532", "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                    "amount": "1", "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "maxTimeoutSeconds": 60,
                    "extra": {"name": "USDC", "version": "2"}}  # fmt: skip
    # Many big ints: many chances for a collection while the dict is read.
    payload: dict[str, Any] = {"x402Version": 2**70, **{f"k{i}": 2**70 + i for i in range(200)}}
    Mutator(grow(payload))
    result = outcome(lambda: verifier.verify(payload, requirements))
    assert isinstance(result, xv.VerifyResponse), repr(result)
    assert not result.is_valid and result.invalid_reason == "invalid_input_type", result.to_dict()
