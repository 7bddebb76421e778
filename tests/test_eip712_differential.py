"""Differential test of the EIP-712 digest against eth-account, on canonical documents only.

Hypothesis generates random struct graphs (nested structs, arrays of structs, fixed, dynamic and
nested arrays, self-referencing structs through dynamic arrays, every atomic type with its edge
values) under random domain subsets, with and without a declared ``EIP712Domain``. Every document
is hashed as a dict, as a JSON ``str`` and as JSON ``bytes`` and compared with
``_hash_eip191_message(encode_typed_data(full_message=doc))``.

Integers come in every form wallets and libraries write (issue 9): Python ints (so JSON
literals of any size in the text, up to 2**256 - 1), canonical decimal strings, and ``0x`` hex
strings (either case, sometimes zero-padded) for at least 15% of them, the domain's
``chainId`` included. eth-account also takes ``" 100"``, ``"+1"`` and other spellings through
Python's ``int()``; those are refused on purpose and tested in test_strictness.py.

The generator stays inside the input domain where eth-account is a sound oracle (security.md 2.2):
every struct is reachable from ``primaryType`` and nothing else is a root (eth-account derives the
primary type itself), values match their types exactly (fixed-array lengths, bytesN lengths,
integer ranges, EIP-55-valid or single-case addresses, canonical decimal or hex strings), and the
declared ``EIP712Domain`` lists exactly the domain's keys in canonical order.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import SECP256K1_N

SIZES = list(range(8, 257, 8))
ATOMIC_TYPES = (
    ["address", "bool", "string", "bytes"]
    + [f"bytes{n}" for n in range(1, 33)]
    + [f"int{n}" for n in SIZES]
    + [f"uint{n}" for n in SIZES]
)
DOMAIN_FIELDS = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
]

# The 64-bit range: JSON literals beyond it are read exactly too (issue 9), and generated.
JSON_INT_MIN, JSON_INT_MAX = -(2**63), 2**64 - 1

# Names that are, or parse as, atomic types, and eth-account's extra "int"/"uint" aliases: a
# struct of that name is not canonical. Everything else that is an identifier is a valid struct
# name, including names that merely start like an atomic type ("intent", "bytesFoo").
RESERVED_NAME = re.compile(r"^(address|bool|string|bytes|u?int|(bytes|u?int)[0-9]+|EIP712Domain)$")

IDENT_FIRST = string.ascii_letters + "_$"
IDENT_REST = string.ascii_letters + string.digits + "_$"


# --- strategies --------------------------------------------------------------------------------
#
# Built from plain functions taking `draw` and strategies made once at import: constructing and
# validating fresh strategy objects per value made generation the bulk of the runtime.

_PREFIXES = st.sampled_from(["", "", "", "", "", "", "int", "uint", "bytes", "string", "address", "Int"])
_FIRST = st.sampled_from(IDENT_FIRST)
_REST = st.text(IDENT_REST, max_size=5)
_BOOL = st.booleans()
_N_FIELDS = st.integers(0, 4)
_ONE_IN_5 = st.integers(0, 4)
_ONE_IN_15 = st.integers(0, 14)
_ARRAY_SUFFIX = st.sampled_from(
    [""] * 10 + ["[]", "[]", "[]", "[1]", "[2]", "[3]", "[][]", "[2][]", "[][3]", "[1][2]", "[][][]"]
)
_SELF_REF_SUFFIX = st.sampled_from(["[]", "[]", "[][]", "[][2]"])
_ADDRESS_RAW = st.binary(min_size=20, max_size=20)
_ADDRESS_STYLE = st.sampled_from(["lower", "checksum", "checksum", "upper"])
_HEX_CASE = st.integers(0, 3)
_STRING = st.text(max_size=12)
_BYTES = {n: st.binary(min_size=n, max_size=n) for n in range(1, 33)}
_DYN_BYTES = st.binary(max_size=40)
_ARRAY_LEN_ATOMIC = st.integers(0, 3)
_ARRAY_LEN_STRUCT = st.integers(0, 2)


def draw_identifier(draw: st.DrawFn) -> str:
    # A prefix shaped like an atomic type now and then, so names such as "uintFoo" show up.
    prefix = draw(_PREFIXES)
    return (prefix or draw(_FIRST)) + draw(_REST)


def draw_unique_names(draw: st.DrawFn, count: int, *, struct: bool) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = draw_identifier(draw)
        k = 0
        while name in names or (struct and RESERVED_NAME.match(name)):
            name = f"{name}_{k}"
            k += 1
        names.append(name)
    return names


def int_range(type_: str) -> tuple[int, int]:
    if type_.startswith("uint"):
        return 0, 2 ** int(type_[4:]) - 1
    bits = int(type_[3:])
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _int_strategy(type_: str) -> st.SearchStrategy[int]:
    lo, hi = int_range(type_)
    edges = sorted({v for v in (lo, lo + 1, -1, 0, 1, 2, hi - 1, hi) if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


_INTS = {t: _int_strategy(t) for t in ATOMIC_TYPES if "int" in t}
# How an integer is written: an int (a JSON literal in text), a decimal string, or hex.
_INT_FORM = st.sampled_from(["int", "int", "decimal", "hex", "hex"])
_HEX_PAD = st.sampled_from([0, 0, 0, 1, 3, 64])
# Forms drawn so far, by name: test_integer_forms_are_mixed checks the mix.
INT_FORMS: dict[str, int] = {}


def draw_int(draw: st.DrawFn, type_: str) -> int | str:
    value = draw(_INTS[type_])
    form = draw(_INT_FORM)
    if form == "hex" and value < 0:
        form = "decimal"  # hex is a magnitude: negative values are written in decimal
    INT_FORMS[form] = INT_FORMS.get(form, 0) + 1
    if form == "int":
        return value
    if form == "decimal":
        return str(value)
    digits = "0" * draw(_HEX_PAD) + f"{value:x}"
    return "0x" + (digits.upper() if draw(_HEX_CASE) == 0 else digits)


def draw_atomic(draw: st.DrawFn, type_: str) -> Any:
    if type_ == "address":
        raw = draw(_ADDRESS_RAW)
        style = draw(_ADDRESS_STYLE)
        if style == "lower":
            return "0x" + raw.hex()
        if style == "upper":
            return "0x" + raw.hex().upper()
        return to_checksum_address(raw)
    if type_ == "bool":
        return draw(_BOOL)
    if type_ == "string":
        return draw(_STRING)
    if type_.startswith("bytes"):
        raw = draw(_DYN_BYTES) if type_ == "bytes" else draw(_BYTES[int(type_[5:])])
        return "0x" + (raw.hex().upper() if draw(_HEX_CASE) == 0 else raw.hex())
    return draw_int(draw, type_)


def draw_value(draw: st.DrawFn, type_: str, types: dict[str, list[dict[str, str]]], depth: int) -> Any:
    if type_.endswith("]"):
        inner_type, _, dim = type_[:-1].rpartition("[")
        base = type_[: type_.index("[")]
        if dim:
            length = int(dim)
        elif base in types:
            # Self-referencing structs recurse through dynamic arrays only: empty below the top.
            length = 0 if depth >= 2 else draw(_ARRAY_LEN_STRUCT)
        else:
            length = draw(_ARRAY_LEN_ATOMIC)
        return [draw_value(draw, inner_type, types, depth) for _ in range(length)]
    if type_ in types:
        return {f["name"]: draw_value(draw, f["type"], types, depth + 1) for f in types[type_]}
    return draw_atomic(draw, type_)


@st.composite
def typed_documents(draw: st.DrawFn, max_structs: int = 4) -> dict[str, Any]:
    names = draw_unique_names(draw, draw(st.integers(1, max_structs)), struct=True)
    # Struct i may refer to struct j only for j > i (plus itself through a dynamic array), so
    # the graph is acyclic apart from self-loops, and names[0] is the only root.
    parent_of = {j: draw(st.integers(0, j - 1)) for j in range(1, len(names))}
    types: dict[str, list[dict[str, str]]] = {}
    for i, name in enumerate(names):
        field_types = [names[j] + draw(_ARRAY_SUFFIX) for j, p in parent_of.items() if p == i]
        later = names[i + 1:]
        for _ in range(draw(_N_FIELDS)):
            if later and draw(_ONE_IN_5) == 0:
                field_types.append(draw(st.sampled_from(later)) + draw(_ARRAY_SUFFIX))
            else:
                field_types.append(draw(st.sampled_from(ATOMIC_TYPES)) + draw(_ARRAY_SUFFIX))
        if draw(_ONE_IN_15) == 0:
            field_types.append(name + draw(_SELF_REF_SUFFIX))
        field_types = draw(st.permutations(field_types))
        field_names = draw_unique_names(draw, len(field_types), struct=False)
        types[name] = [{"name": n, "type": t} for n, t in zip(field_names, field_types, strict=True)]

    domain: dict[str, Any] = {}
    for key, type_ in DOMAIN_FIELDS:
        if draw(_BOOL):
            domain[key] = draw_atomic(draw, type_)
    all_types: dict[str, Any] = dict(types)
    if draw(_BOOL):
        all_types["EIP712Domain"] = [{"name": k, "type": t} for k, t in DOMAIN_FIELDS if k in domain]
    order = draw(st.permutations(list(all_types)))
    return {
        "types": {k: all_types[k] for k in order},
        "primaryType": names[0],
        "domain": domain,
        "message": draw_value(draw, names[0], types, 0),
    }


# --- oracle and input forms ----------------------------------------------------------------------


def eth_account_digest(doc: dict[str, Any]) -> bytes:
    return bytes(_hash_eip191_message(encode_typed_data(full_message=doc)))


SETTINGS = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)


@SETTINGS
@given(doc=typed_documents(), ensure_ascii=st.booleans())
def test_digest_matches_eth_account(doc: dict[str, Any], ensure_ascii: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ensure_ascii)
    expected = eth_account_digest(doc)

    assert xv.hash_typed_data(doc) == expected
    assert xv.hash_typed_data(text) == expected
    assert xv.hash_typed_data(text.encode("utf-8")) == expected


def test_integer_forms_are_mixed() -> None:
    """At least 15% of the generated integers are hex strings, and JSON literals reach the
    top of uint256 (issue 9's acceptance)."""
    biggest = [0]

    # A fixed sample (derandomize): the mix is a property of the generator, and a random
    # sample of 400 documents missed the one boundary literal in some runs.
    @settings(
        max_examples=400, database=None, phases=[Phase.generate], deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(doc=typed_documents())
    def sample(doc: dict[str, Any]) -> None:
        biggest[0] = max([biggest[0], *(v for v in _leaves(doc) if type(v) is int)])

    INT_FORMS.clear()
    sample()
    total = sum(INT_FORMS.values())
    assert total > 500, INT_FORMS
    assert INT_FORMS.get("hex", 0) / total >= 0.15, INT_FORMS
    assert INT_FORMS.get("int", 0) / total >= 0.15 and INT_FORMS.get("decimal", 0) / total >= 0.15, INT_FORMS
    assert biggest[0] == 2**256 - 1


def _has_self_ref(doc: dict[str, Any]) -> bool:
    return any(f["type"].startswith(name + "[") for name, fs in doc["types"].items() for f in fs)


def _field_types(doc: dict[str, Any]) -> list[str]:
    return [f["type"] for name, fs in doc["types"].items() if name != "EIP712Domain" for f in fs]


GENERATOR_SHAPES = {
    "declared EIP712Domain": lambda d: "EIP712Domain" in d["types"] and len(d["domain"]) >= 3,
    "inferred domain": lambda d: "EIP712Domain" not in d["types"] and len(d["domain"]) >= 3,
    "empty domain": lambda d: d["domain"] == {},
    "all five domain fields": lambda d: len(d["domain"]) == 5,
    "self-referencing struct": _has_self_ref,
    "nested array": lambda d: any(t.count("[") >= 2 for t in _field_types(d)),
    "fixed array of structs": lambda d: any(re.fullmatch(r"[^\[]+\[[123]\]", t) and t.split("[")[0] in d["types"]
                                            for t in _field_types(d)),
    "four struct types": lambda d: len([k for k in d["types"] if k != "EIP712Domain"]) == 4,
    "struct name shaped like an atomic type": lambda d: any(k.startswith(("int", "uint", "bytes")) for k in d["types"]),
    "negative int as string": lambda d: '"-' in json.dumps(d["message"]),
    "int beyond 64 bits": lambda d: any(type(v) is int and v > JSON_INT_MAX for v in _leaves(d["message"])),
    "negative int beyond 64 bits": lambda d: any(type(v) is int and v < JSON_INT_MIN for v in _leaves(d["message"])),
    "hex chainId": lambda d: isinstance(d["domain"].get("chainId"), str) and d["domain"]["chainId"].startswith("0x"),
    "zero-padded hex chainId": lambda d: re.fullmatch(r"0x0[0-9a-fA-F]+", str(d["domain"].get("chainId"))) is not None,
    "checksummed address": lambda d: any(isinstance(v, str) and len(v) == 42 and v != v.lower() and v[2:] != v[2:].upper()
                                         for v in _leaves(d["message"]) + list(d["domain"].values())),
    "non-ASCII string": lambda d: any(isinstance(v, str) and not v.isascii() for v in _leaves(d["message"])),
}


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


@pytest.mark.parametrize("shape", list(GENERATOR_SHAPES))
def test_generator_reaches(shape: str) -> None:
    """The generator is not degenerate: each promised shape shows up."""
    find(typed_documents(), GENERATOR_SHAPES[shape],
         settings=settings(max_examples=1000, phases=[Phase.generate], database=None,
                           suppress_health_check=list(HealthCheck)))


@pytest.mark.parametrize("name", ["intent", "int_", "uintx", "uint256x", "bytesFoo", "bytes32_", "Int8", "string5", "addressBook"])
def test_struct_names_that_start_like_atomic_types(name: str) -> None:
    """Any identifier that is not an atomic type name is a valid struct name (EIP-712), even
    one that starts like ``int``, ``uint`` or ``bytes``."""
    doc = {
        "types": {"Outer": [{"name": "inner", "type": name}, {"name": "more", "type": name + "[]"}],
                  name: [{"name": "flag", "type": "bool"}]},
        "primaryType": "Outer",
        "domain": {"name": "x"},
        "message": {"inner": {"flag": True}, "more": [{"flag": False}]},
    }
    expected = eth_account_digest(doc)
    assert xv.hash_typed_data(doc) == expected
    assert xv.hash_typed_data(json.dumps(doc)) == expected


private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(doc=typed_documents(max_structs=3), key=private_keys)
def test_sign_and_recover_round_trip(doc: dict[str, Any], key: bytes) -> None:
    """eth-account signs, we recover. Keys are drawn by Hypothesis (not ``Account.create()``) so
    a failure replays and shrinks."""
    account = Account.from_key(key)
    signed = Account.sign_typed_data(account.key, full_message=doc)
    signature = bytes(signed.signature)
    assert len(signature) == 65 and signature[64] in (27, 28)

    assert xv.recover_typed_data(doc, signature) == account.address
    assert xv.recover_typed_data(json.dumps(doc), "0x" + signature.hex()) == account.address
    assert xv.recover_typed_data(json.dumps(doc).encode(), signature) == account.address
    assert xv.recover_hash(bytes(signed.message_hash), signature) == account.address
