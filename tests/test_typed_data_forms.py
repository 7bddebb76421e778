"""One document, one answer: a typed-data document given as a dict, as a JSON ``str`` and as
JSON ``bytes`` gets the same digest, or the same error code (issue 9).

Documents come from the differential test's generator; then a few leaves of the message or the
domain are replaced by number-like values in every form, good and bad: ints of any size (JSON
literals in the text, out of range included), decimal and hex strings (canonical or not),
floats, NaN and Infinity, bools and None. Python's ``json.dumps`` writes the text; it prints
floats as JSON floats and NaN/Infinity as the bare words, which are refused either way.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from test_eip712_differential import typed_documents
from x402_verify import TypedDataError

_BIG = st.integers(-(2**1000), 2**1000)
_EDGE = st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**255 - 1, -(2**255),
                         2**255, 2**256 - 1, 2**256, -(2**256), 127, 128, -128, -129, 255, 256])  # fmt: skip
_INT = st.one_of(_EDGE, _BIG, st.integers(-1000, 1000))
_SPELLING = st.sampled_from(["{}", "0x{:x}", "0x{:X}", "0x000{:x}", " {}", "+{}", "{} ", "0{}", "{}.0", "{}e0", "0X{:x}",
                             "0x{:x}_0", "-0x{:x}", "0x", "", "-0", "1_000", "0x1g", "١٠٠"])  # fmt: skip


@st.composite
def number_like(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["int", "int", "text", "text", "float", "other"]))
    if kind == "int":
        return draw(_INT)
    if kind == "text":
        n = draw(_INT)
        spelling = draw(_SPELLING)
        if "x" in spelling.lower() and "{" in spelling:
            n = abs(n)
        return spelling.format(n)
    if kind == "float":
        return draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1.0, 0.0, -0.0, 1e6, math.nan])))
    return draw(st.sampled_from([True, False, None, "0x" + "ab" * 32, [], {}]))


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*path, i))]
    return [path]


def replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(doc, dict):
        return {k: replaced(v, tuple(rest), new) if k == head else v for k, v in doc.items()}
    return [replaced(v, tuple(rest), new) if i == head else v for i, v in enumerate(doc)]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(typed_documents(max_structs=3))
    for _ in range(draw(st.integers(0, 3))):
        part = draw(st.sampled_from(["message", "domain"]))
        paths = leaf_paths(doc[part])
        if paths:
            doc = dict(doc, **{part: replaced(doc[part], draw(st.sampled_from(paths)), draw(number_like()))})
    return doc


def answer(form: Any) -> Any:
    try:
        return xv.hash_typed_data(form, max_bytes=1 << 22)
    except TypedDataError as e:
        return e.code


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])  # fmt: skip
@given(doc=mutated_documents(), ensure_ascii=st.booleans())
def test_dict_str_and_bytes_give_one_answer(doc: dict[str, Any], ensure_ascii: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ensure_ascii)
    want = answer(doc)
    assert answer(text) == want, text
    assert answer(text.encode()) == want, text
    assert answer(bytearray(text.encode())) == want


def test_the_forms_of_issue_9() -> None:
    # The examples of the issue: chainId and value as hex, a literal beyond 64 bits in text.
    doc = {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
                  "T": [{"name": "value", "type": "uint256"}]},
        "primaryType": "T",
        "domain": {"name": "x", "chainId": 8453},
        "message": {"value": 10**18},
    }  # fmt: skip
    want = xv.hash_typed_data(doc)
    hexed = dict(doc, domain={"name": "x", "chainId": "0x2105"}, message={"value": "0xde0b6b3a7640000"})
    for form in (hexed, json.dumps(hexed), json.dumps(hexed).encode(), json.dumps(doc), json.dumps(doc).encode()):
        assert xv.hash_typed_data(form) == want
    big = dict(doc, message={"value": 2**200})
    assert xv.hash_typed_data(json.dumps(big)) == xv.hash_typed_data(big) == xv.hash_typed_data(dict(big, message={"value": hex(2**200)}))
