"""The facilitator's request body, read in the core (``read_envelope``), and the ``/verify``
answer, written by it (``VerifyResponse.to_json``): properties against Python's own reading
and writing of the same JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import FAC, sign_payment
from x402_verify.facilitator.app import EnvelopeFault, read_envelope

MEMBERS = ("paymentPayload", "paymentRequirements")

# JSON values as the core reads them: no floats (refused inside a member, by the verifier).
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
objects = st.dictionaries(st.text(max_size=4), values, max_size=4)


def depth(v: Any) -> int:
    """What the bound counts: containers nested, the body object being 1."""
    if isinstance(v, dict):
        return 1 + max(map(depth, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(depth, v), default=0)
    return 0


def fault(body: bytes, max_depth: int = 32) -> tuple[str, str]:
    with pytest.raises(EnvelopeFault) as info:
        read_envelope(body, max_depth)
    return info.value.code, info.value.message


@settings(max_examples=300, deadline=None)
@given(payload=objects, requirements=objects, version=st.sampled_from([1, 2]), extra=objects, bound=st.integers(1, 12), ascii_only=st.booleans())
def test_the_members_come_back_as_text_that_reads_to_the_same_objects(
    payload: dict[str, Any], requirements: dict[str, Any], version: int, extra: dict[str, Any], bound: int, ascii_only: bool
) -> None:
    doc = {k: v for k, v in extra.items() if k not in ("x402Version", *MEMBERS)}
    doc.update({"x402Version": version, "paymentPayload": payload, "paymentRequirements": requirements})
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    if depth(doc) > bound:
        assert fault(body, bound) == ("too_deep", f"the body nests deeper than {bound} levels")
        return
    p, r, v = read_envelope(body, bound)
    assert (json.loads(p), json.loads(r), v) == (payload, requirements, version)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"", "invalid_json", None),
        (b'{"x402Version": 2, ', "invalid_json", None),
        (b'{"x402Version": 2, "paymentPayload": {}, "paymentRequirements": {}} {}', "invalid_json", None),
        (b'{"x402Version": 2, "x402Version": 2}', "invalid_json", 'the body is not JSON: a key appears more than once: "x402Version" at line 1 column 32'),
        (b'\xff{"x402Version": 2}', "invalid_json", "the body is not JSON: not UTF-8 at byte 0"),
        (b"[]", "invalid_envelope", "the body must be a JSON object, not list"),
        (b"null", "invalid_envelope", "the body must be a JSON object, not NoneType"),
        (b'{"paymentPayload": {}, "paymentRequirements": {}}', "invalid_envelope", "x402Version is missing"),
        (b'{"x402Version": 2.0, "paymentPayload": {}, "paymentRequirements": {}}', "unsupported_x402_version", "x402Version must be 1 or 2, got 2.0"),
        (b'{"x402Version": true, "paymentPayload": {}, "paymentRequirements": {}}', "unsupported_x402_version", "x402Version must be 1 or 2, got true"),
        (b'{"x402Version": "2", "paymentPayload": {}, "paymentRequirements": {}}', "unsupported_x402_version", 'x402Version must be 1 or 2, got "2"'),
        (b'{"x402Version": 2, "paymentRequirements": {}}', "invalid_envelope", "paymentPayload is missing"),
        (b'{"x402Version": 2, "paymentPayload": {}, "paymentRequirements": "x"}', "invalid_envelope", "paymentRequirements must be an object, not str"),
        (b"[" * 100_000, "too_deep", "the body nests deeper than 32 levels"),
    ],
)
def test_faults_of_the_envelope_are_named(body: bytes, code: str, message: str | None) -> None:
    got = fault(body)
    assert got[0] == code and (message is None or got[1] == message), got


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = json.dumps({"x402Version": 2, "paymentPayload": {"a": "[[[[{{{{" * 10, "b": '\\"[['}, "paymentRequirements": {}}).encode()
    assert json.loads(read_envelope(body, 2)[0]) == {"a": "[[[[{{{{" * 10, "b": '\\"[['}


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["eip3009", "permit2", "upto"]), damage=st.sampled_from([None, "amount", "payTo", "network", "signature", "unicode"]))
def test_the_verify_answer_as_json_is_to_dict(kind: str, damage: str | None) -> None:
    p = sign_payment(kind, 1_700_000_000)
    payload, requirements = json.loads(json.dumps(p.payload)), dict(p.requirements)
    if damage == "signature":
        payload["payload"]["signature"] = "0x" + "ab" * 65
    elif damage == "unicode":
        requirements["network"] = "eip155:\u00e9\u2028\U0001f600\x00"
    elif damage is not None:
        requirements[damage] = "1" if damage == "amount" else "0x" + "00" * 20 if damage == "payTo" else "eip155:1"
    verifier = xv.Verifier(networks=["eip155:8453", "eip155:84532"], nonce_store=None, facilitator_addresses=[FAC])
    verdict = verifier.verify(payload, requirements, now=1_700_000_000 + 10, reserve=False)
    assert (damage is None) == verdict.is_valid, verdict.to_dict()
    assert json.loads(verdict.to_json()) == verdict.to_dict()
    assert b" " not in verdict.to_json().split(b'"invalidMessage"')[0]  # compact, as the SDK's clients read it
