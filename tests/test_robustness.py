"""Robustness: no input makes a public function fail in any way but the documented ones.

Random bytes, random text, random JSON (huge integers, floats, NaN, deep nesting, long strings),
random typed-data-shaped documents, mutated real documents and arbitrary Python objects go to
every public function. The only exceptions allowed are ``X402VerifyError`` subclasses (with a
catalogue code of the matching kind) and ``TypeError``. A Rust panic would surface as
``pyo3_runtime.PanicException``, which derives from ``BaseException``, so every call catches
``BaseException`` and fails on anything else. Batch functions must never raise for a bad item.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import DELETE, SPEC_PERMIT2_DIGEST, SPEC_PERMIT2_SIG, edited, spec_eip3009_doc, spec_permit2_doc
from payments import SECP256K1_N as N
from x402_verify import SignatureError, SignaturePolicy, TypedDataError, X402VerifyError

CATALOGUE: dict[str, str] = {code: kind for code, kind, _ in xv.error_codes()}
KIND_CLASS: dict[str, type[X402VerifyError]] = {"typed_data": TypedDataError, "signature": SignatureError}
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# --------------------------------------------------------------------------------------------
# The one gate every call goes through
# --------------------------------------------------------------------------------------------


def check_error_value(err: object) -> None:
    """An error object (raised, or placed in a batch) is a well-formed library error."""
    assert isinstance(err, X402VerifyError), repr(err)
    assert err.code in CATALOGUE, f"unknown code in {err!r}"
    assert CATALOGUE[err.code] in KIND_CLASS, f"not a typed-data or signature code: {err!r}"
    assert type(err) is KIND_CLASS[CATALOGUE[err.code]], f"class does not match the kind of {err!r}"
    assert isinstance(err.message, str)
    assert err.path is None or isinstance(err.path, str)
    str(err), repr(err), hash(err)  # noqa: B018 -- must not raise


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Calls ``fn``; returns its result or the allowed exception; fails on anything else."""
    try:
        return fn(*args, **kwargs)
    except X402VerifyError as e:
        check_error_value(e)
        return e
    except TypeError as e:
        return e
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # PanicException, RecursionError, MemoryError, OverflowError, ...
        pytest.fail(f"{getattr(fn, '__name__', fn)} raised {type(e).__module__}.{type(e).__qualname__}: {e!r}")


def check_digest(result: Any) -> None:
    if not isinstance(result, BaseException):
        assert isinstance(result, bytes) and len(result) == 32, repr(result)


def check_address(result: Any) -> None:
    if not isinstance(result, BaseException):
        assert isinstance(result, str) and ADDRESS.fullmatch(result), repr(result)


def check_batch(result: Any, n: int | None) -> None:
    if isinstance(result, TypeError):
        assert n is None, f"a batch raised TypeError for a list of items: {result!r}"
        return
    assert not isinstance(result, X402VerifyError), f"a batch raised for a bad item: {result!r}"
    assert isinstance(result, list)
    if n is not None:
        assert len(result) == n, "every item gets a result"
    for r in result:
        if isinstance(r, str):
            assert ADDRESS.fullmatch(r), r
        else:
            check_error_value(r)


# --------------------------------------------------------------------------------------------
# Known-good inputs to combine with random ones
# --------------------------------------------------------------------------------------------

# The x402 spec's vectors (tests/payments.py): exact Permit2 (§7.5) and EIP-3009 (§7.3).
PERMIT2: dict[str, Any] = spec_permit2_doc()
PERMIT2_SIG = SPEC_PERMIT2_SIG
PERMIT2_DIGEST = SPEC_PERMIT2_DIGEST
EIP3009: dict[str, Any] = spec_eip3009_doc()
BASES = [PERMIT2, EIP3009]
POLICIES = [None, SignaturePolicy(), SignaturePolicy.permit2(), SignaturePolicy(allow_compact=True, require_low_s=False, allow_v01=True)]


def all_paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a member of a JSON-like value (the root included)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from all_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from all_paths(v, (*prefix, i))


BASE_PATHS = [(i, p) for i, base in enumerate(BASES) for p in all_paths(base) if p]


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

INTERESTING_INTS = [0, 1, -1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**255, -(2**255), -(2**255) - 1,
                    2**256 - 1, 2**256, -(2**256), N, 10**77, 10**78, 2**300, -(2**300), 10**1000, -(10**1000)]  # fmt: skip
INTERESTING_STRINGS = ["", "0", "-0", "01", " 1", "+1", "1_0", "1e6", "1.0", "١٠٠", "0x", "0x0", "0x00", "0X00", "0x" + "ab" * 32,
                       "0x" + "ab" * 33, str(2**256), str(2**256 - 1), "-" + str(2**255), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                       "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "true", "null", "NaN", "\ud800", "\x00", "é" * 3, "uint256",
                       "Witness", "EIP712Domain", "PermitWitnessTransferFrom", "uint8[2]", "A[]", "uint+8"]  # fmt: skip
KEYS = ["types", "primaryType", "domain", "message", "name", "type", "version", "chainId", "verifyingContract", "salt",
        "permitted", "amount", "token", "to", "nonce", "witness", "a", "b", ""]  # fmt: skip

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**320), max_value=2**320),
    st.sampled_from(INTERESTING_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(INTERESTING_STRINGS),
    st.integers(min_value=0, max_value=300_000).map(lambda n: "a" * n),  # long strings, past max_bytes too
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=6),
    ),
    max_leaves=40,
)


@st.composite
def deeply_nested(draw: st.DrawFn) -> Any:
    """A value wrapped in up to ~220 levels of lists and objects (around the 128 limit too)."""
    value = draw(json_leaves)
    depth = draw(st.one_of(st.integers(0, 220), st.integers(124, 132)))
    shape = draw(st.sampled_from(["list", "dict", "alternate"]))
    key = draw(st.sampled_from(KEYS))
    for level in range(depth):
        wrap_in_list = shape == "list" or (shape == "alternate" and level % 2 == 0)
        value = [value] if wrap_in_list else {key: value}
    return value


any_json = st.one_of(json_values, deeply_nested())

ATOMIC_TYPES = ["address", "bool", "string", "bytes", "bytes1", "bytes32", "uint8", "uint256", "int8", "int256"]
field_types = st.one_of(
    st.sampled_from(ATOMIC_TYPES),
    st.sampled_from(["A", "B", "C", "Node", "EIP712Domain", "Missing", "A[]", "B[2]", "Node[]", "A[0]", "uint256[]", "uint8[3]",
                     "bytes32[1][]", "uint+8", "uint7", "bytes33", "", "[]", "A[", "uint256[65537]", "uint8" + "[]" * 9]),  # fmt: skip
    st.text(max_size=12),
)
type_names = st.one_of(st.sampled_from(["A", "B", "C", "Node", "EIP712Domain", "uint256", "Bad Name", ""]), st.text(max_size=6))
members = st.one_of(
    st.fixed_dictionaries({"name": st.one_of(st.sampled_from(["a", "b", "c", "to", "amount"]), st.text(max_size=5)), "type": field_types}),
    json_values,
)
typed_data_shaped = st.fixed_dictionaries(
    {
        "types": st.one_of(st.dictionaries(type_names, st.lists(members, max_size=4), max_size=5), json_values),
        "primaryType": st.one_of(type_names, json_leaves),
        "domain": st.one_of(
            st.dictionaries(st.sampled_from(["name", "version", "chainId", "verifyingContract", "salt", "x"]), json_leaves, max_size=5),
            json_values,
        ),
        "message": any_json,
    }
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A real document with one to three members replaced by random values or removed."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in all_paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        doc = edited(doc, path, draw(st.one_of(st.just(DELETE), any_json)))
    return doc


documents = st.one_of(any_json, typed_data_shaped, mutated_documents())


def has_wide_int(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_wide_int(v) for v in value.values())
    if isinstance(value, list):
        return any(has_wide_int(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64


def as_text(value: Any) -> str | None:
    try:
        return json.dumps(value)  # NaN and Infinity come out as bare words, as Python writes them
    except (ValueError, RecursionError):
        return None  # ints over Python's 4300-digit str() limit


@st.composite
def document_inputs(draw: st.DrawFn) -> Any:
    """A document as a dict, as JSON str or as JSON bytes."""
    doc = draw(documents)
    form = draw(st.sampled_from(["python", "str", "bytes"]))
    text = as_text(doc)
    if form == "python" or text is None:
        return doc
    return text if form == "str" else text.encode("utf-8", "surrogatepass")


class Opaque:
    pass


class IntSub(int):
    pass


class StrSub(str):
    pass


class BytesSub(bytes):
    pass


class DictSub(dict):  # type: ignore[type-arg]
    pass


class ListSub(list):  # type: ignore[type-arg]
    pass


class RaisingStrInt(int):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class WrongBitLengthInt(int):
    def bit_length(self) -> Any:
        return "many"


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")


hashable_keys = st.one_of(st.text(max_size=6), st.integers(), st.none(), st.booleans(), st.binary(max_size=4),
                          st.tuples(st.integers()), st.floats(allow_nan=False), st.builds(Opaque))  # fmt: skip
python_leaves = st.one_of(
    json_leaves,
    st.binary(max_size=80),
    st.binary(max_size=80).map(bytearray),
    st.binary(max_size=80).map(lambda b: memoryview(b)),
    st.binary(max_size=80).map(BytesSub),
    st.sets(st.integers(), max_size=3),
    st.frozensets(st.text(max_size=3), max_size=3),
    st.complex_numbers(),
    st.builds(Opaque),
    st.builds(object),
    st.builds(Unhashable),
    st.sampled_from([Ellipsis, NotImplemented, int, dict, len, print, range(3), slice(1), math.pi, Exception("x"), sys]),
    st.integers().map(IntSub),
    st.integers(min_value=2**64, max_value=2**400).map(RaisingStrInt),
    st.integers(min_value=2**64, max_value=2**400).map(WrongBitLengthInt),
    st.text(max_size=10).map(StrSub),
    st.decimals(allow_nan=True),
    st.fractions(),
)
python_values = st.recursive(
    python_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.lists(children, max_size=5).map(ListSub),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), hashable_keys), children, max_size=5),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5).map(DictSub),
        st.tuples(children, st.tuples(children, st.tuples(children))),
    ),
    max_leaves=15,
)


@st.composite
def python_documents(draw: st.DrawFn) -> Any:
    """Arbitrary Python objects: whole, or planted inside a real document."""
    value = draw(python_values)
    if draw(st.booleans()):
        return value
    index, path = draw(st.sampled_from(BASE_PATHS))
    return edited(BASES[index], path, value)


signatures = st.one_of(
    st.binary(max_size=140),
    st.binary(min_size=64, max_size=65),
    st.tuples(st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1), st.integers(0, 255)).map(
        lambda t: t[0].to_bytes(32, "big") + t[1].to_bytes(32, "big") + bytes([t[2]])
    ),
    st.binary(max_size=70).map(lambda b: "0x" + b.hex()),
    st.text(max_size=140),
    st.just(PERMIT2_SIG),
    st.just(PERMIT2_SIG[:64]),
    python_values,
)
digests = st.one_of(st.binary(max_size=40), st.binary(min_size=32, max_size=32), st.just(PERMIT2_DIGEST),
                    st.binary(max_size=40).map(lambda b: "0x" + b.hex()), st.text(max_size=70), python_values)  # fmt: skip
policies = st.one_of(st.sampled_from(POLICIES), python_values)


# --------------------------------------------------------------------------------------------
# Single-item functions
# --------------------------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=4000))
def test_random_bytes(raw: bytes) -> None:
    check_digest(call(xv.hash_typed_data, raw))
    check_digest(call(xv.hash_typed_data, raw, max_bytes=len(raw) // 2))
    check_address(call(xv.recover_typed_data, raw, PERMIT2_SIG))
    check_address(call(xv.recover_typed_data, PERMIT2, raw))
    check_address(call(xv.recover_hash, raw, PERMIT2_SIG))
    check_address(call(xv.recover_hash, PERMIT2_DIGEST, raw))
    check_address(call(xv.recover_hash, raw[:32], raw[32:], policy=SignaturePolicy.permit2()))


@FUZZ
@given(text=st.text(max_size=2000))
def test_random_text(text: str) -> None:
    check_digest(call(xv.hash_typed_data, text))
    check_address(call(xv.recover_typed_data, text, PERMIT2_SIG))
    check_address(call(xv.recover_typed_data, PERMIT2, text))
    check_address(call(xv.recover_hash, text, PERMIT2_SIG))
    check_address(call(xv.recover_hash, PERMIT2_DIGEST, text))
    check_address(call(xv.recover_hash, "0x" + text, "0x" + text))


@FUZZ
@given(doc=document_inputs(), policy=st.sampled_from(POLICIES))
def test_random_json_documents(doc: Any, policy: SignaturePolicy | None) -> None:
    digest = call(xv.hash_typed_data, doc)
    check_digest(digest)
    recovered = call(xv.recover_typed_data, doc, PERMIT2_SIG, policy=policy)
    check_address(recovered)
    if isinstance(digest, bytes):  # the two paths agree
        assert not isinstance(recovered, TypedDataError), recovered
        if isinstance(recovered, str):
            assert recovered == xv.recover_hash(digest, PERMIT2_SIG, policy=policy)


@FUZZ
@given(doc=typed_data_shaped)
def test_typed_data_shaped_documents(doc: dict[str, Any]) -> None:
    check_digest(call(xv.hash_typed_data, doc))
    text = as_text(doc)
    if text is not None:
        check_digest(call(xv.hash_typed_data, text))


@FUZZ
@given(doc=mutated_documents())
def test_mutated_real_documents_hash_the_same_as_dict_and_text(doc: dict[str, Any]) -> None:
    as_dict = call(xv.hash_typed_data, doc)
    check_digest(as_dict)
    text = as_text(doc)
    if text is None:
        return
    as_json = call(xv.hash_typed_data, text)
    check_digest(as_json)
    # One set of rules for dicts and text: what text accepts, the dict accepts with the same
    # digest, and the reverse holds unless an int outside 64 bits (exact in Python, refused as
    # a JSON literal) is in the document.
    if isinstance(as_json, bytes):
        assert as_dict == as_json, (as_dict, as_json)
    if isinstance(as_dict, bytes) and not has_wide_int(doc):
        assert as_json == as_dict, (as_dict, as_json)


@FUZZ
@given(obj=python_documents(), sig=signatures, policy=policies)
def test_random_python_objects(obj: Any, sig: Any, policy: Any) -> None:
    check_digest(call(xv.hash_typed_data, obj))
    check_address(call(xv.recover_typed_data, obj, PERMIT2_SIG))
    check_address(call(xv.recover_typed_data, PERMIT2, sig, policy=policy))
    check_address(call(xv.recover_typed_data, obj, sig, policy=policy))
    check_address(call(xv.recover_hash, obj, sig, policy=policy))
    check_address(call(xv.recover_hash, PERMIT2_DIGEST, obj))


@FUZZ
@given(digest=digests, sig=signatures, policy=policies)
def test_random_signatures_and_digests(digest: Any, sig: Any, policy: Any) -> None:
    check_address(call(xv.recover_hash, digest, sig, policy=policy))
    check_address(call(xv.recover_hash, digest, sig))
    check_address(call(xv.recover_typed_data, PERMIT2, sig, policy=policy))


@FUZZ
@given(
    kwargs=st.dictionaries(st.one_of(st.sampled_from(["allow_compact", "require_low_s", "allow_v01"]), st.text(max_size=8)),
                           python_values, max_size=4),
    args=st.lists(python_values, max_size=2),
)  # fmt: skip
def test_signature_policy_constructor(kwargs: dict[str, Any], args: list[Any]) -> None:
    policy = call(SignaturePolicy, *args, **kwargs)
    if isinstance(policy, SignaturePolicy):
        assert not args
        assert {policy.allow_compact, policy.require_low_s, policy.allow_v01} <= {True, False}
        check_address(call(xv.recover_hash, PERMIT2_DIGEST, PERMIT2_SIG, policy=policy))
    else:
        assert not isinstance(policy, X402VerifyError), policy
    for name in ("eip3009", "permit2"):
        check_address(call(xv.recover_hash, PERMIT2_DIGEST, PERMIT2_SIG, policy=call(getattr(SignaturePolicy, name), *args)))
    codes = call(xv.error_codes, *args, **kwargs)
    assert isinstance(codes, TypeError) if (args or kwargs) else isinstance(codes, list)


# --------------------------------------------------------------------------------------------
# Batches: never raise for a bad item; every item gets a result
# --------------------------------------------------------------------------------------------

# Drawing many composite items is the slow part (not the calls): fewer, smaller examples.
BATCH_FUZZ = settings(FUZZ, max_examples=60)

batch_items = st.one_of(
    st.tuples(st.one_of(document_inputs(), python_documents(), st.sampled_from(BASES)), signatures),
    python_values,  # not a pair at all, or a pair of anything
    st.tuples(python_values, python_values),
    st.tuples(python_values, python_values, python_values),
)
hash_items = st.one_of(st.tuples(digests, signatures), python_values, st.tuples(python_values, python_values))


@BATCH_FUZZ
@given(items=st.lists(batch_items, max_size=8), threads=st.sampled_from([1, 2, None]), policy=st.sampled_from(POLICIES))
def test_typed_data_batch_never_raises_for_bad_items(items: list[Any], threads: int | None, policy: SignaturePolicy | None) -> None:
    check_batch(call(xv.recover_typed_data_batch, items, threads=threads, policy=policy), len(items))
    check_batch(call(xv.recover_typed_data_batch, iter(items), threads=threads, policy=policy), len(items))
    check_batch(call(xv.recover_typed_data_batch, tuple(items), threads=threads, max_bytes=100), len(items))


@BATCH_FUZZ
@given(items=st.lists(hash_items, max_size=8), threads=st.sampled_from([1, 2, None]), policy=st.sampled_from(POLICIES))
def test_hash_batch_never_raises_for_bad_items(items: list[Any], threads: int | None, policy: SignaturePolicy | None) -> None:
    check_batch(call(xv.recover_hash_batch, items, threads=threads, policy=policy), len(items))
    check_batch(call(xv.recover_hash_batch, (x for x in items), threads=threads), len(items))


@FUZZ
@given(items=python_values, policy=policies)
def test_batch_items_argument_of_any_kind(items: Any, policy: Any) -> None:
    # Not a list of pairs, perhaps not iterable at all: a TypeError, or one result per element.
    try:
        n: int | None = len(list(iter(items)))
    except TypeError:
        n = None
    if not isinstance(policy, SignaturePolicy) and policy is not None:
        n = None  # a bad policy is a TypeError before any item is read
    check_batch(call(xv.recover_typed_data_batch, items, policy=policy), n)
    check_batch(call(xv.recover_hash_batch, items, policy=policy), n)


# --------------------------------------------------------------------------------------------
# Depth: no RecursionError, no stack overflow, no crash
# --------------------------------------------------------------------------------------------

DEPTH = 10_000


def nested_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        child: dict[str, Any] = {}
        node["a"] = child
        node = child
    return root


def nested_list(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


DEEP_PYTHON: dict[str, Callable[[], Any]] = {
    "dict": lambda: nested_dict(DEPTH),
    "list-in-message": lambda: {**PERMIT2, "message": nested_list(DEPTH)},
    "dict-in-message": lambda: {**PERMIT2, "message": nested_dict(DEPTH)},
    "dict-in-types": lambda: {**PERMIT2, "types": nested_dict(DEPTH)},
    "tuple-in-amount": lambda: edited(PERMIT2, ("message", "permitted", "amount"), nested_list(DEPTH)),
}


@pytest.mark.parametrize("make", DEEP_PYTHON.values(), ids=DEEP_PYTHON.keys())
def test_ten_thousand_levels_of_python_nesting(make: Callable[[], Any]) -> None:
    doc = make()
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [(xv.hash_typed_data, (doc,)), (xv.recover_typed_data, (doc, PERMIT2_SIG))]
    for fn, args in calls:
        result = call(fn, *args)
        assert isinstance(result, TypedDataError), repr(result)[:200]
        assert result.code == "limit_exceeded", repr(result)[:200]
    (item,) = xv.recover_typed_data_batch([(doc, PERMIT2_SIG)])
    assert isinstance(item, TypedDataError) and item.code == "limit_exceeded"


DEEP_TEXT = {
    "arrays": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    "unclosed": "[" * DEPTH,
    "in-message": json.dumps({**PERMIT2, "message": "@"}).replace('"@"', '{"a":' * DEPTH + "1" + "}" * DEPTH),
    "arrays-100k": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("text", DEEP_TEXT.values(), ids=DEEP_TEXT.keys())
def test_ten_thousand_levels_of_json_text(text: str) -> None:
    for arg in (text, text.encode()):
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [(xv.hash_typed_data, (arg,)), (xv.recover_typed_data, (arg, PERMIT2_SIG))]
        for fn, args in calls:
            result = call(fn, *args, max_bytes=1_000_000)
            assert isinstance(result, TypedDataError), repr(result)[:200]
            assert result.code in {"limit_exceeded", "invalid_json"}, repr(result)[:200]
    (item,) = xv.recover_typed_data_batch([(text, PERMIT2_SIG)], max_bytes=1_000_000)
    assert isinstance(item, TypedDataError) and item.code in {"limit_exceeded", "invalid_json"}


def test_nesting_just_inside_the_limit_still_works() -> None:
    # 100 levels of a recursive struct is deep but legal; it must hash, not overflow anything.
    doc: dict[str, Any] = {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}], "Node": [{"name": "kids", "type": "Node[]"}]},
        "primaryType": "Node",
        "domain": {"name": "deep"},
        "message": {"kids": []},
    }
    node = doc["message"]
    for _ in range(60):  # each level is an object in an array: two levels of nesting
        child: dict[str, Any] = {"kids": []}
        node["kids"].append(child)
        node = child
    digest = call(xv.hash_typed_data, doc)
    assert isinstance(digest, bytes) and len(digest) == 32
    assert xv.hash_typed_data(json.dumps(doc)) == digest


# --------------------------------------------------------------------------------------------
# Python code that runs while the bindings read a document
# --------------------------------------------------------------------------------------------


def _mutating_int(target: Callable[[], dict[str, Any]], action: str) -> type[int]:
    """An int subclass whose str()/bit_length() change a dict while it is being read."""

    def mutate() -> None:
        d = target()
        if action == "add":
            d[f"k{len(d)}"] = 1
        elif action == "pop":
            if d:
                d.pop(next(iter(d)))
        else:
            d.clear()

    class MutatingInt(int):
        def __str__(self) -> str:
            mutate()
            return int.__repr__(self)

        def bit_length(self) -> int:
            mutate()
            return int.bit_length(self)

    return MutatingInt


@pytest.mark.parametrize("action", ["add", "pop", "clear"])
@pytest.mark.parametrize("whose", ["permitted", "message", "root"])
def test_python_callbacks_that_mutate_the_document(whose: str, action: str) -> None:
    # A >64-bit int subclass can make the bindings run Python code (str(), bit_length()); that
    # code can change the very dict being iterated. That must be an error or a digest, never a
    # Rust panic ("dictionary changed size during iteration").
    doc = copy.deepcopy(PERMIT2)
    targets = {"permitted": lambda: doc["message"]["permitted"], "message": lambda: doc["message"], "root": lambda: doc}
    doc["message"]["permitted"]["amount"] = _mutating_int(targets[whose], action)(2**70)
    check_digest(call(xv.hash_typed_data, doc))
    doc2 = copy.deepcopy(PERMIT2)
    targets2 = {"permitted": lambda: doc2["message"]["permitted"], "message": lambda: doc2["message"], "root": lambda: doc2}
    doc2["message"]["permitted"]["amount"] = _mutating_int(targets2[whose], action)(2**70)
    check_batch(call(xv.recover_typed_data_batch, [(doc2, PERMIT2_SIG)]), 1)


def test_python_callbacks_that_raise() -> None:
    for cls in (RaisingStrInt, WrongBitLengthInt):
        doc = edited(PERMIT2, ("message", "permitted", "amount"), cls(2**70))
        result = call(xv.hash_typed_data, doc)
        assert isinstance(result, (bytes, TypeError, TypedDataError)), repr(result)
        check_batch(call(xv.recover_typed_data_batch, [(doc, PERMIT2_SIG)]), 1)


def test_huge_python_ints() -> None:
    # Past Python's 4300-digit str() limit: must be "out of range", never a ValueError from str().
    for value in (10**5000, -(10**5000), 2**100_000, IntSub(10**5000)):
        result = call(xv.hash_typed_data, edited(PERMIT2, ("message", "permitted", "amount"), value))
        assert isinstance(result, TypedDataError) and result.code == "number_out_of_range", repr(result)[:200]
