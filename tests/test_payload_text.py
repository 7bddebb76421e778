"""Header text and dict payloads get the same verdict, however the JSON is spelled.

A header's JSON is read by the core's reader for well-formed payloads (rust/core/src/x402/
payload_text.rs), which gives up on anything unexpected so the strict model explains it; a dict
always takes the strict model. So for every payload a dict can express, ``verify(text)`` must
equal ``verify(dict)``: these properties re-spell signed payments (key order, whitespace,
``\\uXXXX`` escapes, members x402 ignores) and break them (wrong types, unknown or missing
members, bad numbers and addresses) and compare the two verdicts. What only text can say
(a repeated key, a float in an ignored member) must be refused with the strict model's code.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import Payment, sign_payment
from test_stores import KINDS

NOW = 1_800_000_000
VERIFIER = xv.Verifier(nonce_store=None)
PAYMENTS: dict[str, list[Payment]] = {k: [sign_payment(k, NOW, valid_for=3600) for _ in range(4)] for k in KINDS}


def verdicts(text: str, payload: Any, requirements: dict[str, Any]) -> tuple[xv.VerifyResponse, xv.VerifyResponse]:
    """The verdicts on the payload as JSON text and as a dict."""
    as_text = VERIFIER.verify(text, requirements, now=NOW)
    as_dict = VERIFIER.verify(payload, requirements, now=NOW)
    return as_text, as_dict


def escaped(s: str, rng: random.Random) -> str:
    """A JSON string literal for ``s`` with some characters written as \\uXXXX escapes."""
    out = []
    for ch in s:
        if rng.random() < 0.2 and ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(json.dumps(ch)[1:-1])
    return '"' + "".join(out) + '"'


def spell(value: Any, rng: random.Random) -> str:
    """JSON text for ``value``: members shuffled, random whitespace, random escapes."""
    ws = lambda: rng.choice(["", "", " ", "\n", "\t ", "\r\n  "])  # noqa: E731
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        body = ",".join(f"{ws()}{escaped(k, rng)}{ws()}:{ws()}{spell(v, rng)}{ws()}" for k, v in items)
        return "{" + body + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + spell(v, rng) + ws() for v in value) + "]"
    if isinstance(value, str):
        return escaped(value, rng)
    return json.dumps(value)


strict_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def members(p: dict[str, Any]) -> list[tuple[str, ...]]:
    """Paths of every member of a payload, parents before children."""
    out: list[tuple[str, ...]] = []

    def walk(v: Any, path: tuple[str, ...]) -> None:
        if isinstance(v, dict):
            for k, child in v.items():
                out.append((*path, k))
                walk(child, (*path, k))

    walk(p, ())
    return out


def get_parent(p: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for k in path[:-1]:
        p = p[k]
    return p


BREAKS = [
    lambda v, r: 7,
    lambda v, r: None,
    lambda v, r: [],
    lambda v, r: {},
    lambda v, r: True,
    lambda v, r: "",
    lambda v, r: " " + v if isinstance(v, str) else v,
    lambda v, r: "0" + v if isinstance(v, str) else v,
    lambda v, r: v.upper() if isinstance(v, str) else v,
    lambda v, r: v[:-1] if isinstance(v, str) else v,
    lambda v, r: v.replace("0x", "") if isinstance(v, str) else v,
    lambda v, r: str(2**256) if isinstance(v, str) else v,
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), which=st.integers(0, 3), seed=st.integers(0, 2**32), extra=st.dictionaries(st.text(max_size=6), strict_json, max_size=3))
def test_respelled_payments_get_the_dict_verdict(kind: str, which: int, seed: int, extra: dict[str, Any]) -> None:
    rng = random.Random(seed)
    p = PAYMENTS[kind][which]
    payload = copy.deepcopy(p.payload)
    payload["accepted"] = {**payload["accepted"], **{k: v for k, v in extra.items() if k not in ("scheme", "network")}}
    if rng.random() < 0.5:
        payload["resource"] = extra
    text = spell(payload, rng)
    as_text, as_dict = verdicts(text, payload, p.requirements)
    assert as_dict.is_valid, as_dict.to_dict()
    assert as_text == as_dict, (text, as_text.to_dict(), as_dict.to_dict())
    # And base64 of the same text, as a header carries it.
    assert VERIFIER.verify(xv.encode_payment_header(payload), p.requirements, now=NOW) == as_dict


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32), mode=st.sampled_from(["break", "drop", "add"]))
def test_broken_payments_get_the_dict_verdict(kind: str, seed: int, mode: str) -> None:
    rng = random.Random(seed)
    p = PAYMENTS[kind][0]
    payload = copy.deepcopy(p.payload)
    path = rng.choice(members(payload))
    parent = get_parent(payload, path)
    if mode == "break":
        parent[path[-1]] = rng.choice(BREAKS)(parent[path[-1]], rng)
    elif mode == "drop":
        del parent[path[-1]]
    else:
        parent["x" + path[-1]] = "1"
    text = spell(payload, rng)
    as_text, as_dict = verdicts(text, payload, p.requirements)
    assert as_text == as_dict, (path, mode, text, as_text.to_dict(), as_dict.to_dict())


def splice(text: str, anchor: str, insert: str) -> str:
    """``text`` with ``insert`` placed right after the first ``anchor``."""
    i = text.index(anchor) + len(anchor)
    return text[:i] + insert + text[i:]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("anchor", "insert", "code"),
    [
        ('"accepted":{', '"extra2":1.5,', "invalid_json_number"),
        ('"accepted":{', '"maxTimeoutSeconds":300,"maxTimeoutSeconds":300,', "duplicate_key"),
        ('"accepted":{', '"x":{"a":1,"a":1},', "duplicate_key"),
        ('"accepted":{', '"x":[1e3],', "invalid_json_number"),
        ('"x402Version":2,', '"resource":{},"resource":{},', "duplicate_key"),
        ('"x402Version":2,', '"extensions":{"n":NaN},', "invalid_json_number"),
        ('"payload":{', '"signature":"0x","signature":"0x",', "duplicate_key"),
    ],
)
def test_what_only_text_can_say_gets_the_strict_code(kind: str, anchor: str, insert: str, code: str) -> None:
    p = PAYMENTS[kind][0]
    text = splice(json.dumps(p.payload, separators=(",", ":")), anchor, insert)
    r = VERIFIER.verify(text, p.requirements, now=NOW)
    assert (r.is_valid, r.invalid_reason) == (False, code), r.to_dict()
