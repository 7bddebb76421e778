"""Strictness: every class of bad input is refused with its own exception class and stable code.

Base documents are an x402 exact Permit2 ``PermitWitnessTransferFrom`` (x402-permit2.md §3, §7.5),
the x402 spec's EIP-3009 ``TransferWithAuthorization`` (§7.3) and a ``Probe`` type that holds one
field of each atomic kind. Each test mutates one field and checks the class, ``.code`` and, where
it means something, ``.path``. The signature half follows security.md §5.4 items 1-12 as they
apply to the ``recover_*`` functions (the replay and requirement checks live elsewhere).
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

import x402_verify as xv
from payments import (
    ANVIL0,
    DELETE,
    SPEC_EIP3009_DIGEST,
    SPEC_EIP3009_FROM,
    SPEC_EIP3009_SIG,
    SPEC_PERMIT2_DIGEST,
    SPEC_PERMIT2_SIG,
    edited,
    spec_eip3009_doc,
    spec_permit2_doc,
)
from payments import SECP256K1_N as N
from x402_verify import SignatureError, SignaturePolicy, TypedDataError, X402VerifyError

# --------------------------------------------------------------------------------------------
# The catalogue, and the one helper every error check goes through
# --------------------------------------------------------------------------------------------

CATALOGUE: dict[str, str] = {code: kind for code, kind, _ in xv.error_codes()}
KIND_CLASS: dict[str, type[X402VerifyError]] = {"typed_data": TypedDataError, "signature": SignatureError}

ANY = object()  # "do not check the path"

# Every code this file expects; the catalogue test checks it against error_codes().
USED_CODES: set[str] = set()


@contextlib.contextmanager
def expect(cls: type[X402VerifyError], code: str, path: object = ANY) -> Iterator[None]:
    """Asserts the block raises exactly ``cls`` with ``code`` (and ``path`` unless ANY)."""
    USED_CODES.add(code)
    with pytest.raises(X402VerifyError) as info:
        yield
    err = info.value
    # Every code raised anywhere in this file is a catalogue code of the matching kind.
    assert err.code in CATALOGUE, f"{err.code!r} is not in error_codes()"
    assert type(err) is KIND_CLASS[CATALOGUE[err.code]], f"{err!r}: class does not match its code's kind"
    assert type(err) is cls, f"expected {cls.__name__}, got {err!r}"
    assert err.code == code, f"expected {code!r}, got {err!r}"
    if path is not ANY:
        assert err.path == path, f"expected path {path!r}, got {err!r}"
    assert isinstance(err.message, str) and err.message
    assert isinstance(err, ValueError)


# --------------------------------------------------------------------------------------------
# Base documents
# --------------------------------------------------------------------------------------------

# The x402 spec's vectors (tests/payments.py): exact Permit2 (§7.5) and EIP-3009 (§7.3).
PERMIT2: dict[str, Any] = spec_permit2_doc()
PERMIT2_DIGEST = SPEC_PERMIT2_DIGEST
PERMIT2_SIG = SPEC_PERMIT2_SIG

EIP3009: dict[str, Any] = spec_eip3009_doc()
EIP3009_FROM = SPEC_EIP3009_FROM
EIP3009_DIGEST = SPEC_EIP3009_DIGEST
EIP3009_SIG = SPEC_EIP3009_SIG

PROBE: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
        "Probe": [
            {"name": "u8", "type": "uint8"},
            {"name": "i8", "type": "int8"},
            {"name": "i256", "type": "int256"},
            {"name": "u256", "type": "uint256"},
            {"name": "b32", "type": "bytes32"},
            {"name": "b", "type": "bytes"},
            {"name": "flag", "type": "bool"},
            {"name": "s", "type": "string"},
            {"name": "a", "type": "address"},
            {"name": "arr", "type": "uint8[2]"},
            {"name": "dyn", "type": "uint256[]"},
        ],
    },
    "primaryType": "Probe",
    "domain": {"name": "probe", "chainId": 1},
    "message": {
        "u8": 7,
        "i8": -7,
        "i256": "-12345678901234567890123456789",
        "u256": "12345678901234567890123456789",
        "b32": "0x" + "ab" * 32,
        "b": "0x00ff",
        "flag": True,
        "s": "hello",
        "a": ANVIL0,
        "arr": [1, 2],
        "dyn": ["3", 4],
    },
}

BASES = {"permit2": PERMIT2, "eip3009": EIP3009, "probe": PROBE}




RAW = "\u0000raw\u0000"


def text_with(base: dict[str, Any], path: tuple[Any, ...], literal: str) -> str:
    """The JSON text of ``base`` with the value at ``path`` spelled as the raw ``literal``."""
    text = json.dumps(edited(base, path, RAW))
    placeholder = json.dumps(RAW)
    assert text.count(placeholder) == 1
    return text.replace(placeholder, literal)


def text_with_duplicate(base: dict[str, Any], path: tuple[Any, ...], key: str, dup_value: Any) -> str:
    """The JSON text of ``base`` where the object at ``path`` names ``key`` a second time."""
    obj: Any = base
    for k in path:
        obj = obj[k]
    members = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()]
    members.append(f"{json.dumps(key)}: {json.dumps(dup_value)}")
    literal = "{" + ", ".join(members) + "}"
    if not path:
        return literal
    return text_with(base, path, literal)


def eth_account_digest(doc: dict[str, Any]) -> bytes:
    """The oracle: eth-account's EIP-712 signing digest."""
    m = encode_typed_data(full_message=doc)
    return bytes(keccak(b"\x19" + m.version + m.header + m.body))


def test_base_documents_are_valid() -> None:
    assert xv.hash_typed_data(PERMIT2) == PERMIT2_DIGEST
    assert xv.recover_typed_data(PERMIT2, PERMIT2_SIG) == ANVIL0
    assert xv.hash_typed_data(EIP3009) == EIP3009_DIGEST
    assert xv.recover_typed_data(EIP3009, EIP3009_SIG) == EIP3009_FROM
    for base in BASES.values():
        assert xv.hash_typed_data(base) == eth_account_digest(base)
        assert xv.hash_typed_data(json.dumps(base)) == xv.hash_typed_data(base)
        assert xv.hash_typed_data(json.dumps(base).encode()) == xv.hash_typed_data(base)


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

# Hex (issue 9): "0x" and hex digits of either case; not "0X", not empty, no sign, spaces or "_".
NON_CANONICAL = [" 100", "100 ", "+1", "1_0", "1e6", "1E6", "1.0", "١٠٠", "１００", "0100", "00", "", "0X64",
                 "100\n", "\t1", "1,000", "0b1", "0o7", "--1", "-",
                 "0x", "0x1_0", "0xg", "0x 1", " 0x1", "0x1 ", "0x1\n", "-0x1", "+0x1", "0x-1", "0x+1", "0x٠", "0x0x1",
                 "0x1.0", "0x1p4", "x1"]  # fmt: skip

NUMBER_FIELDS = [
    ("permit2", ("message", "permitted", "amount"), "message.permitted.amount"),
    ("permit2", ("message", "nonce"), "message.nonce"),
    ("permit2", ("message", "witness", "validAfter"), "message.witness.validAfter"),
    ("permit2", ("domain", "chainId"), "domain.chainId"),
    ("eip3009", ("message", "value"), "message.value"),
    ("probe", ("message", "u8"), "message.u8"),
    ("probe", ("message", "i8"), "message.i8"),
    ("probe", ("message", "i256"), "message.i256"),
    ("probe", ("message", "dyn", 1), "message.dyn[1]"),
]


@pytest.mark.parametrize("text", NON_CANONICAL, ids=repr)
@pytest.mark.parametrize(("base", "path", "where"), NUMBER_FIELDS, ids=[w for _, _, w in NUMBER_FIELDS])
def test_non_canonical_number_strings(base: str, path: tuple[Any, ...], where: str, text: str) -> None:
    # Python's int() takes most of these (int("١٠٠") == 100), and eth-account hashes them as 100.
    doc = edited(BASES[base], path, text)
    with expect(TypedDataError, "non_canonical_number", where):
        xv.hash_typed_data(doc)
    with expect(TypedDataError, "non_canonical_number", where):
        xv.hash_typed_data(json.dumps(doc))


@pytest.mark.parametrize("text", ["-0", "-00", "-01", "- 1", "-+1", "-1.0", "-1e3", "-١"], ids=repr)
@pytest.mark.parametrize("field", ["i8", "i256"])
def test_non_canonical_negative_strings_for_int_types(field: str, text: str) -> None:
    with expect(TypedDataError, "non_canonical_number", f"message.{field}"):
        xv.hash_typed_data(edited(PROBE, ("message", field), text))


@pytest.mark.parametrize(("field", "text", "number"), [
    ("u256", "0", 0), ("u256", "10000", 10000), ("u8", "255", 255), ("i8", "-128", -128), ("i8", "127", 127),
    ("i8", "0", 0), ("i256", "-1", -1), ("u256", str(2**256 - 1), 2**256 - 1), ("i256", str(-(2**255)), -(2**255)),
])  # fmt: skip
def test_canonical_numbers_are_accepted_and_equal_ints(field: str, text: str, number: int) -> None:
    as_text = edited(PROBE, ("message", field), text)
    as_int = edited(PROBE, ("message", field), number)
    assert xv.hash_typed_data(as_text) == xv.hash_typed_data(as_int) == eth_account_digest(as_int)


@pytest.mark.parametrize("value", [1.0, 0.0, -1.0, 1e6, 10000.0, float("nan"), float("inf"), float("-inf")], ids=repr)
def test_python_floats_are_refused(value: float) -> None:
    with expect(TypedDataError, "invalid_json_number", "message.permitted.amount"):
        xv.hash_typed_data(edited(PERMIT2, ("message", "permitted", "amount"), value))
    with expect(TypedDataError, "invalid_json_number", "domain.chainId"):
        xv.hash_typed_data(edited(PERMIT2, ("domain", "chainId"), value))


@pytest.mark.parametrize("literal", ["1.0", "1e6", "1E6", "1e+6", "1e-3", "10000.0", "0.0", "-1.0", "1.5", "1e400", "-1e400", "1e-400"])
@pytest.mark.parametrize(("base", "path"), [("permit2", ("message", "permitted", "amount")), ("permit2", ("domain", "chainId")),
                                            ("probe", ("message", "i8"))])  # fmt: skip
def test_json_floats_in_text_are_refused(base: str, path: tuple[Any, ...], literal: str) -> None:
    with expect(TypedDataError, "invalid_json_number"):
        xv.hash_typed_data(text_with(BASES[base], path, literal))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "-NaN", "Inf"])
@pytest.mark.parametrize("path", [("message", "permitted", "amount"), ("domain", "chainId"), ("message", "witness")])
def test_nan_and_infinity_in_text_are_refused(path: tuple[Any, ...], literal: str) -> None:
    # Python's json.loads takes NaN and Infinity by default; the library must not.
    with expect(TypedDataError, "invalid_json_number"):
        xv.hash_typed_data(text_with(PERMIT2, path, literal))


@pytest.mark.parametrize(("field", "text", "number"), [
    ("u256", "0x0", 0), ("u256", "0x00", 0), ("u256", "0x2710", 10000), ("u256", "0xDE0B6B3A7640000", 10**18),
    ("u256", "0xde0b6B3a7640000", 10**18), ("u256", "0x" + "f" * 64, 2**256 - 1), ("u256", "0x" + "0" * 100 + "1", 1),
    ("u8", "0xff", 255), ("u8", "0x0000ff", 255), ("i8", "0x7f", 127), ("i8", "0x0", 0),
    ("i256", "0x" + "7" + "f" * 63, 2**255 - 1), ("dyn", ["0x3", "0x04"], [3, 4]),
])  # fmt: skip
def test_hex_integers_are_accepted_and_equal_ints(field: str, text: Any, number: Any) -> None:
    # eth-account reads 0x strings with int(s, 16); leading zeros are harmless (hex is never octal).
    as_text = edited(PROBE, ("message", field), text)
    as_int = edited(PROBE, ("message", field), number)
    assert xv.hash_typed_data(as_text) == xv.hash_typed_data(as_int) == eth_account_digest(as_text)
    assert xv.hash_typed_data(json.dumps(as_text)) == xv.hash_typed_data(as_int)


def test_hex_integers_in_the_domain_and_the_payment_types() -> None:
    chain = edited(PERMIT2, ("domain", "chainId"), hex(84532))
    assert xv.hash_typed_data(chain) == PERMIT2_DIGEST == eth_account_digest(chain)
    amount = edited(EIP3009, ("message", "value"), "0x2710")
    assert xv.hash_typed_data(amount) == EIP3009_DIGEST == eth_account_digest(amount)
    assert xv.recover_typed_data(json.dumps(amount).encode(), EIP3009_SIG) == EIP3009_FROM


@pytest.mark.parametrize(("field", "text", "code"), [
    # Hex is a magnitude, never two's complement: int8 "0xff" is 255 (eth-account: the same).
    ("i8", "0x80", "number_out_of_range"), ("i8", "0xff", "number_out_of_range"), ("u8", "0x100", "number_out_of_range"),
    ("i256", "0x8" + "0" * 63, "number_out_of_range"), ("u256", "0x1" + "0" * 64, "number_out_of_range"),
    ("u256", "0x" + "f" * 5000, "number_out_of_range"),
])  # fmt: skip
def test_hex_integers_out_of_range(field: str, text: str, code: str) -> None:
    with expect(TypedDataError, code, f"message.{field}"):
        xv.hash_typed_data(edited(PROBE, ("message", field), text))
    with expect(TypedDataError, code, f"message.{field}"):
        xv.hash_typed_data(json.dumps(edited(PROBE, ("message", field), text)))


@pytest.mark.parametrize("number", [2**64, 2**64 + 1, -(2**63) - 1, 10**30, 2**255 - 1, -(2**255)], ids=str)
@pytest.mark.parametrize(("base", "path"), [("permit2", ("message", "permitted", "amount")), ("probe", ("message", "i256")),
                                            ("permit2", ("domain", "chainId"))])  # fmt: skip
def test_json_integers_beyond_64_bits_are_exact(base: str, path: tuple[Any, ...], number: int) -> None:
    # Issue 9: the dict form of the same document holds these ints, so its JSON text must too.
    as_int = edited(BASES[base], path, number)
    text = text_with(BASES[base], path, str(number))
    try:
        want: Any = xv.hash_typed_data(as_int)
    except TypedDataError as e:
        want = (e.code, e.path)
    for form in (text, text.encode()):
        try:
            got: Any = xv.hash_typed_data(form)
        except TypedDataError as e:
            got = (e.code, e.path)
        assert got == want


@pytest.mark.parametrize(("literal", "code"), [
    (str(2**256), "number_out_of_range"), (str(-(2**255) - 1), "number_out_of_range"), ("9" * 79, "number_out_of_range"),
    ("9" * 400, "number_out_of_range"), ("-" + "9" * 400, "number_out_of_range"),
])  # fmt: skip
def test_json_integers_beyond_256_bits_are_out_of_range(literal: str, code: str) -> None:
    # Even past any float (10**400): refused for its range, where it stands, as its dict form is.
    with expect(TypedDataError, code, "message.i256"):
        xv.hash_typed_data(text_with(PROBE, ("message", "i256"), literal))
    with expect(TypedDataError, code, "message.i256"):
        xv.hash_typed_data(edited(PROBE, ("message", "i256"), int(literal)))


def test_json_integers_within_64_bits_are_exact() -> None:
    for field, number in [("u256", 2**64 - 1), ("i256", -(2**63)), ("u8", 0), ("i8", -1)]:
        text = text_with(PROBE, ("message", field), str(number))
        assert xv.hash_typed_data(text) == xv.hash_typed_data(edited(PROBE, ("message", field), str(number)))


def test_json_negative_zero_literal_is_refused() -> None:
    # `-0` is grammatically a JSON integer but not canonical; either number code is acceptable.
    for path in [("message", "u8"), ("message", "i8")]:
        with pytest.raises(TypedDataError) as info:
            xv.hash_typed_data(text_with(PROBE, path, "-0"))
        assert info.value.code in {"invalid_json_number", "non_canonical_number"}


OUT_OF_RANGE = [
    ("u8", 256), ("u8", "256"), ("u8", 2**64), ("i8", -129), ("i8", "-129"), ("i8", 128), ("i8", "128"),
    ("u256", 2**256), ("u256", str(2**256)), ("u256", 2**1000), ("u256", "9" * 79), ("u256", "9" * 5000),
    ("i256", 2**255), ("i256", str(2**255)), ("i256", -(2**255) - 1), ("i256", str(-(2**255) - 1)),
    ("i256", 2**5000), ("i256", -(2**5000)), ("dyn", [1, 2**256]),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE, ids=lambda v: repr(v)[:24])
def test_out_of_range_integers(field: str, value: Any) -> None:
    path = "message.dyn[1]" if field == "dyn" else f"message.{field}"
    with expect(TypedDataError, "number_out_of_range", path):
        xv.hash_typed_data(edited(PROBE, ("message", field), value))


def test_out_of_range_json_text_and_domain() -> None:
    with expect(TypedDataError, "number_out_of_range", "message.u8"):
        xv.hash_typed_data(text_with(PROBE, ("message", "u8"), "256"))
    with expect(TypedDataError, "number_out_of_range", "message.permitted.amount"):
        xv.hash_typed_data(edited(PERMIT2, ("message", "permitted", "amount"), str(2**256)))
    with expect(TypedDataError, "number_out_of_range", "domain.chainId"):
        xv.hash_typed_data(edited(PERMIT2, ("domain", "chainId"), 2**256))


@pytest.mark.parametrize("value", ["-1", -1, "-10000", -(2**64), "-" + str(2**255)], ids=repr)
@pytest.mark.parametrize(("base", "path", "where"), [
    ("permit2", ("message", "permitted", "amount"), "message.permitted.amount"),
    ("permit2", ("message", "nonce"), "message.nonce"),
    ("permit2", ("domain", "chainId"), "domain.chainId"),
    ("eip3009", ("message", "validBefore"), "message.validBefore"),
])  # fmt: skip
def test_negative_unsigned(base: str, path: tuple[Any, ...], where: str, value: Any) -> None:
    with expect(TypedDataError, "negative_unsigned", where):
        xv.hash_typed_data(edited(BASES[base], path, value))


def test_negative_unsigned_json_text() -> None:
    with expect(TypedDataError, "negative_unsigned", "message.permitted.amount"):
        xv.hash_typed_data(text_with(PERMIT2, ("message", "permitted", "amount"), "-1"))
    with expect(TypedDataError, "negative_unsigned", "message.u8"):
        xv.hash_typed_data(text_with(PROBE, ("message", "u8"), "-1"))


def test_int_subclass_is_read_by_its_value() -> None:
    # A Python int subclass whose __str__ (or bit_length) lies must be hashed by its value, or
    # refused; never hashed as the number its __str__ prints.
    class LyingInt(int):
        def __str__(self) -> str:
            return "1"

        __repr__ = __str__

        def bit_length(self) -> int:
            return 1

    value = 2**70
    want = xv.hash_typed_data(edited(PERMIT2, ("message", "permitted", "amount"), value))
    try:
        got = xv.hash_typed_data(edited(PERMIT2, ("message", "permitted", "amount"), LyingInt(value)))
    except TypeError:
        return  # refusing the subclass outright is fine
    except TypedDataError as e:
        assert e.code == "invalid_input_type", repr(e)
        return
    assert got == want, "an int subclass was hashed as the value its __str__ prints"


# --------------------------------------------------------------------------------------------
# Bytes and addresses
# --------------------------------------------------------------------------------------------

NONCE_3009 = EIP3009["message"]["nonce"]


@pytest.mark.parametrize("value", [
    "0x01", "0x", "0x" + "00" * 31, "0x" + "00" * 33, "0x" + "ab" * 64, NONCE_3009 + "00", NONCE_3009[:-2],
    b"\x01", b"\x00" * 31, b"\x00" * 33, bytearray(31), b"",
], ids=lambda v: f"{type(v).__name__}{len(v)}")  # fmt: skip
def test_bytes32_wrong_length(value: Any) -> None:
    with expect(TypedDataError, "invalid_bytes_length", "message.nonce"):
        xv.hash_typed_data(edited(EIP3009, ("message", "nonce"), value))


def test_bytes32_as_python_bytes_is_accepted() -> None:
    raw = bytes.fromhex(NONCE_3009[2:])
    assert xv.hash_typed_data(edited(EIP3009, ("message", "nonce"), raw)) == EIP3009_DIGEST
    assert xv.hash_typed_data(edited(EIP3009, ("message", "nonce"), bytearray(raw))) == EIP3009_DIGEST
    assert xv.hash_typed_data(edited(EIP3009, ("message", "nonce"), NONCE_3009.upper().replace("0X", "0x"))) == EIP3009_DIGEST


BAD_HEX = [
    NONCE_3009[2:],  # no 0x
    "0X" + NONCE_3009[2:],  # capital X
    NONCE_3009[:-1],  # odd length
    "0x" + "zz" * 32,  # not hex
    "0x" + "g0" * 32,
    " " + NONCE_3009,
    NONCE_3009 + " ",
    "0x" + "٠" * 64,  # Arabic-Indic zeros
    "0x-1" + "0" * 62,
    "0x0x" + "00" * 31,
    "x",
]


@pytest.mark.parametrize("value", BAD_HEX, ids=repr)
def test_bad_hex_bytes32(value: str) -> None:
    with expect(TypedDataError, "invalid_bytes", "message.nonce"):
        xv.hash_typed_data(edited(EIP3009, ("message", "nonce"), value))


@pytest.mark.parametrize("value", ["00ff", "0x0ff", "0xgg", "0X00", "0x 0", ""], ids=repr)
def test_bad_hex_dynamic_bytes(value: str) -> None:
    with expect(TypedDataError, "invalid_bytes", "message.b"):
        xv.hash_typed_data(edited(PROBE, ("message", "b"), value))


ADDR = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
FIRST_LETTER = next(i for i, c in enumerate(ADDR) if i >= 2 and c.isalpha())

BAD_ADDRESSES = [
    ADDR[:-2],  # 19 bytes
    ADDR + "00",  # 21 bytes
    ADDR[:-1],  # 39 digits
    ADDR[2:],  # no 0x
    "0X" + ADDR[2:],
    "0x" + "zz" + ADDR[4:],  # not hex
    "0x" + "٠" * 40,
    " " + ADDR,
    ADDR + "\n",
    "0x",
    "",
    "0x" + "0" * 64,  # a bytes32 word, not an address
]


@pytest.mark.parametrize("value", BAD_ADDRESSES, ids=repr)
@pytest.mark.parametrize(("base", "path", "where"), [
    ("permit2", ("message", "witness", "to"), "message.witness.to"),
    ("permit2", ("message", "spender"), "message.spender"),
    ("permit2", ("message", "permitted", "token"), "message.permitted.token"),
    ("permit2", ("domain", "verifyingContract"), "domain.verifyingContract"),
    ("eip3009", ("message", "from"), "message.from"),
])  # fmt: skip
def test_bad_addresses(base: str, path: tuple[Any, ...], where: str, value: str) -> None:
    with expect(TypedDataError, "invalid_address", where):
        xv.hash_typed_data(edited(BASES[base], path, value))


def _flip_case(addr: str, index: int) -> str:
    return addr[:index] + addr[index].swapcase() + addr[index + 1 :]


@pytest.mark.parametrize("value", [
    _flip_case(ADDR, FIRST_LETTER),
    _flip_case(ADDR, len(ADDR) - 1),
    "0x" + ADDR[2:].lower()[:-1] + "C",  # one upper letter in an otherwise lower address
    "0x" + ADDR[2:].upper()[:-1] + "c",
], ids=repr)  # fmt: skip
def test_bad_address_checksum(value: str) -> None:
    assert value.lower() == ADDR.lower() and value != ADDR
    with expect(TypedDataError, "invalid_address_checksum", "message.witness.to"):
        xv.hash_typed_data(edited(PERMIT2, ("message", "witness", "to"), value))
    with expect(TypedDataError, "invalid_address_checksum", "domain.verifyingContract"):
        xv.hash_typed_data(edited(PERMIT2, ("domain", "verifyingContract"), value))


@pytest.mark.parametrize("spelling", [ADDR, ADDR.lower(), "0x" + ADDR[2:].upper()], ids=["checksummed", "lower", "upper"])
def test_all_lower_and_all_upper_addresses_are_accepted(spelling: str) -> None:
    assert xv.hash_typed_data(edited(PERMIT2, ("message", "witness", "to"), spelling)) == PERMIT2_DIGEST


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "value", "where"), [
    (("types", "Witness", 0, "type"), "Foo", "types.Witness[0].type"),
    (("types", "Witness", 0, "type"), "Foo[]", "types.Witness[0].type"),
    (("types", "Witness", 0, "type"), "Foo[2][]", "types.Witness[0].type"),
    (("types", "PermitWitnessTransferFrom", 4, "type"), "witness", "types.PermitWitnessTransferFrom[4].type"),
    (("types", "PermitWitnessTransferFrom", 0, "type"), "tokenPermissions", "types.PermitWitnessTransferFrom[0].type"),
    (("primaryType",), "Foo", "primaryType"),
    (("primaryType",), "permitWitnessTransferFrom", "primaryType"),
    (("primaryType",), "", "primaryType"),
])  # fmt: skip
def test_undeclared_types(path: tuple[Any, ...], value: str, where: str) -> None:
    with expect(TypedDataError, "undeclared_type", where):
        xv.hash_typed_data(edited(PERMIT2, path, value))


def test_undeclared_type_when_its_definition_is_removed() -> None:
    doc = edited(PERMIT2, ("types", "Witness"), DELETE)
    with expect(TypedDataError, "undeclared_type", "types.PermitWitnessTransferFrom[4].type"):
        xv.hash_typed_data(doc)


@pytest.mark.parametrize("type_str", [
    "uint7", "uint0", "uint264", "uint08", "uint+8", "uint 8", "uint8 ", " uint8", "int+16", "int",
    "bytes0", "bytes33", "bytes+32", "bytes032", "uint256[01]", "uint256[+2]", "uint256[-1]", "uint256[ 2]",
    "uint256[", "uint256]", "uint256[]x", "uint256[2", "[]", "", "1Foo", "Foo-Bar", "uint256[0x2]",
])  # fmt: skip
def test_invalid_type_names(type_str: str) -> None:
    with expect(TypedDataError, "invalid_type_name", "types.Probe[0].type"):
        xv.hash_typed_data(edited(PROBE, ("types", "Probe", 0, "type"), type_str))


@pytest.mark.parametrize(("path", "value", "where"), [
    (("types", "Witness", 0, "name"), "1to", "types.Witness[0].name"),
    (("types", "Witness", 0, "name"), "", "types.Witness[0].name"),
    (("types", "Witness", 0, "name"), "to x", "types.Witness[0].name"),
])  # fmt: skip
def test_invalid_field_names(path: tuple[Any, ...], value: str, where: str) -> None:
    with expect(TypedDataError, "invalid_type_name", where):
        xv.hash_typed_data(edited(PERMIT2, path, value))


def test_invalid_struct_name() -> None:
    doc = copy.deepcopy(PERMIT2)
    doc["types"]["Bad Name"] = [{"name": "x", "type": "uint8"}]
    with expect(TypedDataError, "invalid_type_name", "types.Bad Name"):
        xv.hash_typed_data(doc)


def test_invalid_type_definitions() -> None:
    with expect(TypedDataError, "invalid_type_definition", "types.Witness[1]"):
        xv.hash_typed_data(edited(PERMIT2, ("types", "Witness", 1, "name"), "to"))
    for atomic in ["uint256", "address", "bytes32", "string", "uint7"]:
        doc = copy.deepcopy(PERMIT2)
        doc["types"][atomic] = [{"name": "x", "type": "uint8"}]
        with expect(TypedDataError, "invalid_type_definition", f"types.{atomic}"):
            xv.hash_typed_data(doc)
    # The domain type must list the standard fields in the standard order with standard types.
    with expect(TypedDataError, "invalid_type_definition", "types.EIP712Domain[0]"):
        xv.hash_typed_data(edited(PERMIT2, ("types", "EIP712Domain", 0, "type"), "bytes32"))
    swapped = copy.deepcopy(PERMIT2)
    swapped["types"]["EIP712Domain"].reverse()
    with expect(TypedDataError, "invalid_type_definition"):
        xv.hash_typed_data(swapped)


def _cyclic(types: dict[str, Any], primary: str) -> dict[str, Any]:
    return {"types": {"EIP712Domain": [{"name": "name", "type": "string"}], **types}, "primaryType": primary,
            "domain": {"name": "cycle"}, "message": {}}  # fmt: skip


@pytest.mark.parametrize("types", [
    {"A": [{"name": "b", "type": "B"}], "B": [{"name": "a", "type": "A"}]},
    {"A": [{"name": "a", "type": "A[2]"}]},
    {"A": [{"name": "a", "type": "A"}]},
    {"A": [{"name": "b", "type": "B[1][3]"}], "B": [{"name": "c", "type": "C"}], "C": [{"name": "a", "type": "A"}]},
    {"A": [{"name": "x", "type": "uint8"}, {"name": "b", "type": "B"}], "B": [{"name": "b", "type": "B"}]},
], ids=["A-B-A", "A[2]-self", "A-self", "A-B[1][3]-C-A", "reaches-B-self"])  # fmt: skip
def test_cyclic_types(types: dict[str, Any]) -> None:
    with expect(TypedDataError, "cyclic_type", "types"):
        xv.hash_typed_data(_cyclic(types, "A"))


def test_recursion_through_dynamic_array_is_accepted() -> None:
    doc = _cyclic({"Node": [{"name": "kids", "type": "Node[]"}, {"name": "v", "type": "uint8"}]}, "Node")
    doc["message"] = {"kids": [{"kids": [], "v": 2}, {"kids": [{"kids": [], "v": 4}], "v": 3}], "v": 1}
    assert xv.hash_typed_data(doc) == eth_account_digest(doc)
    # A cycle through a zero-length fixed array also bottoms out.
    doc0 = _cyclic({"A": [{"name": "a", "type": "A[0]"}, {"name": "v", "type": "uint8"}]}, "A")
    doc0["message"] = {"a": [], "v": 1}
    assert len(xv.hash_typed_data(doc0)) == 32


@pytest.mark.parametrize(("path", "value", "where"), [
    (("types",), {f"T{i}": [] for i in range(300)} | {"P": [{"name": "x", "type": "uint8"}]}, "types"),
    (("types", "Probe"), [{"name": f"f{i}", "type": "uint8"} for i in range(300)], "types.Probe"),
    (("types", "Probe", 0, "type"), "uint8" + "[]" * 9, "types.Probe[0].type"),
    (("types", "Probe", 0, "type"), "uint8[65537]", "types.Probe[0].type"),
    (("types", "Probe", 0, "type"), "uint8[99999999999999999999]", "types.Probe[0].type"),
])  # fmt: skip
def test_limits(path: tuple[Any, ...], value: Any, where: str) -> None:
    with pytest.raises(TypedDataError) as info:
        xv.hash_typed_data(edited(PROBE, path, value))
    # A length too long for a machine word may also be reported as an unparsable type name.
    allowed = {"limit_exceeded", "invalid_type_name"} if "99999" in str(value) else {"limit_exceeded"}
    assert info.value.code in allowed and info.value.path == where, repr(info.value)


def test_nesting_limit_of_python_values() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    with expect(TypedDataError, "limit_exceeded"):
        xv.hash_typed_data(edited(PROBE, ("message", "dyn"), deep))


@pytest.mark.parametrize("value", [[1], [1, 2, 3], [], "12", {"0": 1, "1": 2}], ids=repr)
def test_fixed_array_length(value: Any) -> None:
    code = "invalid_array_length" if isinstance(value, list) else "invalid_value_type"
    with expect(TypedDataError, code, "message.arr"):
        xv.hash_typed_data(edited(PROBE, ("message", "arr"), value))


# --------------------------------------------------------------------------------------------
# Missing and unknown fields
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "path", "where"), [
    ("permit2", ("message", "permitted", "amount"), "message.permitted.amount"),
    ("permit2", ("message", "permitted"), "message.permitted"),
    ("permit2", ("message", "witness", "to"), "message.witness.to"),
    ("permit2", ("message", "nonce"), "message.nonce"),
    ("eip3009", ("message", "nonce"), "message.nonce"),
    ("permit2", ("domain", "chainId"), "domain.chainId"),
    ("eip3009", ("domain", "version"), "domain.version"),
    ("permit2", ("message",), "message"),
    ("permit2", ("domain",), "domain"),
    ("permit2", ("types",), "types"),
    ("permit2", ("primaryType",), "primaryType"),
    ("permit2", ("types", "Witness", 0, "type"), "types.Witness[0].type"),
    ("permit2", ("types", "Witness", 1, "name"), "types.Witness[1].name"),
])  # fmt: skip
def test_missing_fields(base: str, path: tuple[Any, ...], where: str) -> None:
    with expect(TypedDataError, "missing_field", where):
        xv.hash_typed_data(edited(BASES[base], path, DELETE))


@pytest.mark.parametrize(("base", "path", "where"), [
    ("permit2", ("message", "extra"), "message.extra"),
    ("permit2", ("message", "permitted", "extra"), "message.permitted.extra"),
    ("permit2", ("message", "witness", "facilitator"), "message.witness.facilitator"),
    ("permit2", ("message", "from"), "message.from"),
    ("eip3009", ("message", "signature"), "message.signature"),
    ("permit2", ("domain", "version"), "domain.version"),  # §5.4 item 22: a Permit2 domain has no version
    ("permit2", ("domain", "salt"), "domain.salt"),
    ("eip3009", ("domain", "foo"), "domain.foo"),
    ("permit2", ("extra",), "extra"),
    ("permit2", ("types", "Witness", 0, "extra"), "types.Witness[0].extra"),
])  # fmt: skip
def test_unknown_fields(base: str, path: tuple[Any, ...], where: str) -> None:
    with expect(TypedDataError, "unknown_field", where):
        xv.hash_typed_data(edited(BASES[base], path, "1"))


def test_unknown_domain_field_without_declared_domain_type() -> None:
    doc = edited(PERMIT2, ("types", "EIP712Domain"), DELETE)
    assert xv.hash_typed_data(doc) == PERMIT2_DIGEST  # inferred from the domain object
    doc["domain"]["chain"] = 1
    with expect(TypedDataError, "unknown_field", "domain.chain"):
        xv.hash_typed_data(doc)


def test_paths_through_arrays_of_structs() -> None:
    doc = copy.deepcopy(PROBE)
    doc["types"]["Item"] = [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}]
    doc["types"]["Probe"].append({"name": "items", "type": "Item[][2]"})
    doc["message"]["items"] = [[], [{"to": ANVIL0, "amount": "1"}, {"to": ANVIL0, "amount": "2"}]]
    assert xv.hash_typed_data(doc) == eth_account_digest(doc)
    with expect(TypedDataError, "missing_field", "message.items[1][1].amount"):
        xv.hash_typed_data(edited(doc, ("message", "items", 1, 1, "amount"), DELETE))
    with expect(TypedDataError, "unknown_field", "message.items[1][0].extra"):
        xv.hash_typed_data(edited(doc, ("message", "items", 1, 0, "extra"), 1))
    with expect(TypedDataError, "non_canonical_number", "message.items[1][0].amount"):
        xv.hash_typed_data(edited(doc, ("message", "items", 1, 0, "amount"), "01"))
    with expect(TypedDataError, "invalid_address_checksum", "message.items[1][1].to"):
        xv.hash_typed_data(edited(doc, ("message", "items", 1, 1, "to"), _flip_case(ANVIL0, 2)))
    with expect(TypedDataError, "invalid_array_length", "message.items"):
        xv.hash_typed_data(edited(doc, ("message", "items"), [[]]))
    with expect(TypedDataError, "invalid_value_type", "message.items[0]"):
        xv.hash_typed_data(edited(doc, ("message", "items", 0), {}))


# --------------------------------------------------------------------------------------------
# Duplicate JSON keys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "path", "key"), [
    ("permit2", ("message",), "spender"),
    ("permit2", ("message", "permitted"), "amount"),
    ("permit2", ("message", "witness"), "to"),
    ("eip3009", ("message",), "value"),
    ("permit2", ("domain",), "chainId"),
    ("permit2", (), "primaryType"),
    ("permit2", (), "message"),
    ("permit2", ("types",), "Witness"),
    ("permit2", ("types", "Witness", 0), "type"),
])  # fmt: skip
@pytest.mark.parametrize("same", [True, False], ids=["same-value", "other-value"])
def test_duplicate_json_keys(base: str, path: tuple[Any, ...], key: str, same: bool) -> None:
    obj: Any = BASES[base]
    for k in path:
        obj = obj[k]
    dup = obj[key] if same else ("0x" + "11" * 20 if key in {"to", "spender"} else "1")
    text = text_with_duplicate(BASES[base], path, key, dup)
    # Python's json keeps the last value; the library must refuse rather than pick one.
    json.loads(text)
    with expect(TypedDataError, "duplicate_key"):
        xv.hash_typed_data(text)
    with expect(TypedDataError, "duplicate_key"):
        xv.hash_typed_data(text.encode())


def test_duplicate_key_inside_an_array_element() -> None:
    doc = copy.deepcopy(PROBE)
    doc["types"]["Item"] = [{"name": "x", "type": "uint8"}]
    doc["types"]["Probe"].append({"name": "items", "type": "Item[]"})
    doc["message"]["items"] = [{"x": 1}, RAW]
    text = json.dumps(doc).replace(json.dumps(RAW), '{"x": 1, "x": 2}')
    with expect(TypedDataError, "duplicate_key"):
        xv.hash_typed_data(text)


# --------------------------------------------------------------------------------------------
# Wrong JSON kinds
# --------------------------------------------------------------------------------------------

WRONG_KINDS = [
    ("permit2", ("message", "permitted", "amount"), True, "invalid_value_type", "message.permitted.amount"),
    ("permit2", ("message", "permitted", "amount"), None, "invalid_value_type", "message.permitted.amount"),
    ("permit2", ("message", "permitted", "amount"), ["10000"], "invalid_value_type", "message.permitted.amount"),
    ("permit2", ("message", "permitted", "amount"), {"v": 1}, "invalid_value_type", "message.permitted.amount"),
    ("permit2", ("message", "permitted", "amount"), b"\x27\x10", "invalid_value_type", "message.permitted.amount"),
    ("permit2", ("message", "spender"), 1, "invalid_value_type", "message.spender"),
    ("permit2", ("message", "spender"), None, "invalid_value_type", "message.spender"),
    ("permit2", ("message", "spender"), bytes(20), "invalid_value_type", "message.spender"),
    ("permit2", ("message", "permitted"), "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "invalid_value_type", "message.permitted"),
    ("permit2", ("message", "permitted"), [], "invalid_value_type", "message.permitted"),
    ("permit2", ("message", "witness"), None, "invalid_value_type", "message.witness"),
    ("permit2", ("message",), [], "invalid_value_type", "message"),
    ("permit2", ("message",), "{}", "invalid_value_type", "message"),
    ("permit2", ("domain", "name"), 1, "invalid_value_type", "domain.name"),
    ("permit2", ("domain", "chainId"), True, "invalid_value_type", "domain.chainId"),
    ("eip3009", ("message", "nonce"), 1, "invalid_value_type", "message.nonce"),
    ("eip3009", ("message", "nonce"), None, "invalid_value_type", "message.nonce"),
    ("probe", ("message", "flag"), "true", "invalid_value_type", "message.flag"),
    ("probe", ("message", "flag"), 1, "invalid_value_type", "message.flag"),
    ("probe", ("message", "s"), 1, "invalid_value_type", "message.s"),
    ("probe", ("message", "s"), b"hello", "invalid_value_type", "message.s"),
    ("probe", ("message", "dyn"), "1,2", "invalid_value_type", "message.dyn"),
    ("probe", ("message", "dyn"), {"0": 1}, "invalid_value_type", "message.dyn"),
    ("probe", ("message", "dyn", 0), [3], "invalid_value_type", "message.dyn[0]"),
    ("permit2", ("types",), [], "invalid_typed_data", "types"),
    ("permit2", ("types",), "x", "invalid_typed_data", "types"),
    ("permit2", ("types", "Witness"), {}, "invalid_typed_data", "types.Witness"),
    ("permit2", ("types", "Witness"), "Witness(address to,uint256 validAfter)", "invalid_typed_data", "types.Witness"),
    ("permit2", ("types", "Witness", 0), "address to", "invalid_typed_data", "types.Witness[0]"),
    ("permit2", ("types", "Witness", 0, "name"), 1, "invalid_value_type", "types.Witness[0].name"),
    ("permit2", ("types", "Witness", 0, "type"), None, "invalid_value_type", "types.Witness[0].type"),
    ("permit2", ("primaryType",), 1, "invalid_typed_data", "primaryType"),
    ("permit2", ("primaryType",), ["PermitWitnessTransferFrom"], "invalid_typed_data", "primaryType"),
    ("permit2", ("primaryType",), "EIP712Domain", "invalid_typed_data", "primaryType"),
    ("permit2", ("domain",), [], "invalid_typed_data", "domain"),
    ("permit2", ("domain",), "Permit2", "invalid_typed_data", "domain"),
    ("permit2", ("domain",), None, "invalid_typed_data", "domain"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "path", "value", "code", "where"), WRONG_KINDS, ids=lambda v: repr(v)[:30])
def test_wrong_json_kinds(base: str, path: tuple[Any, ...], value: Any, code: str, where: str) -> None:
    doc = edited(BASES[base], path, value)
    with expect(TypedDataError, code, where):
        xv.hash_typed_data(doc)
    if not isinstance(value, bytes):  # JSON text has no bytes
        with expect(TypedDataError, code, where):
            xv.hash_typed_data(json.dumps(doc))


@pytest.mark.parametrize("text", ["null", "[]", "1", '"x"', "true", "[{}]"])
def test_document_of_the_wrong_kind(text: str) -> None:
    with expect(TypedDataError, "invalid_typed_data"):
        xv.hash_typed_data(text)


@pytest.mark.parametrize("value", [[], (), None, 1, 1.5, {1, 2}, object(), memoryview(b"{}")], ids=repr)
def test_argument_of_the_wrong_python_type(value: Any) -> None:
    with pytest.raises(TypeError):
        xv.hash_typed_data(value)
    # In a batch the same input is an item error, never an exception.
    (item,) = xv.recover_typed_data_batch([(value, PERMIT2_SIG)])
    assert isinstance(item, TypedDataError) and item.code == "invalid_input_type"
    USED_CODES.add("invalid_input_type")


@pytest.mark.parametrize("value", [{1: "x"}, {("a",): 1}, {b"types": 1}, {None: 1}], ids=repr)
def test_non_string_dict_keys(value: Any) -> None:
    with pytest.raises(TypeError):
        xv.hash_typed_data(value)
    with pytest.raises(TypeError):
        xv.hash_typed_data(edited(PERMIT2, ("message",), value))
    (item,) = xv.recover_typed_data_batch([(edited(PERMIT2, ("message",), value), PERMIT2_SIG)])
    assert isinstance(item, TypedDataError) and item.code == "invalid_input_type"


@pytest.mark.parametrize("value", [{1, 2}, object(), 1.5j, range(3), memoryview(b"x"), frozenset()], ids=repr)
def test_unsupported_python_values_inside_a_document(value: Any) -> None:
    with pytest.raises(TypeError):
        xv.hash_typed_data(edited(PERMIT2, ("message", "permitted", "amount"), value))
    (item,) = xv.recover_typed_data_batch([(edited(PERMIT2, ("message", "permitted", "amount"), value), PERMIT2_SIG)])
    assert isinstance(item, TypedDataError) and item.code == "invalid_input_type"
    assert item.path == "message.permitted.amount"


# --------------------------------------------------------------------------------------------
# Framing: size and JSON well-formedness
# --------------------------------------------------------------------------------------------


def test_payload_too_large() -> None:
    text = json.dumps(PERMIT2)
    assert xv.hash_typed_data(text, max_bytes=len(text)) == PERMIT2_DIGEST
    with expect(TypedDataError, "payload_too_large", None):
        xv.hash_typed_data(text, max_bytes=len(text) - 1)
    with expect(TypedDataError, "payload_too_large", None):
        xv.hash_typed_data(text.encode(), max_bytes=len(text) - 1)
    with expect(TypedDataError, "payload_too_large", None):
        xv.recover_typed_data(text, PERMIT2_SIG, max_bytes=10)
    # The limit counts UTF-8 bytes, not characters.
    wide = json.dumps(edited(PROBE, ("message", "s"), "é" * 100), ensure_ascii=False)
    with expect(TypedDataError, "payload_too_large", None):
        xv.hash_typed_data(wide, max_bytes=len(wide))
    assert len(xv.hash_typed_data(wide, max_bytes=len(wide.encode()))) == 32
    # Over the default limit, and refused before parsing (this text is not even JSON).
    with expect(TypedDataError, "payload_too_large", None):
        xv.hash_typed_data("x" * (xv.DEFAULT_MAX_TYPED_DATA_BYTES + 1))
    with expect(TypedDataError, "payload_too_large", None):
        xv.hash_typed_data(b"[" * (xv.DEFAULT_MAX_TYPED_DATA_BYTES + 1))
    (item,) = xv.recover_typed_data_batch([(text, PERMIT2_SIG)], max_bytes=len(text) - 1)
    assert isinstance(item, TypedDataError) and item.code == "payload_too_large"


TEXT = json.dumps(PERMIT2)
INVALID_JSON = [
    "", " ", "{", TEXT[:-1], TEXT + "x", TEXT + "}", TEXT + TEXT, "{'types': {}}", "{types: 1}", '{"a" 1}',
    '{"a": 1,}', "[1,]", '{"a": "\\x"}', '{"a": "\u0001"}', "\u0000", TEXT.replace('"Permit2"', '"Permit2'),
    "\ufeff" + TEXT, "// c\n" + TEXT, '{"a": tru}', '{"a": 0x10}', '{"a": .5}', '{"a": 01}', '{"a": +1}',
    "[" * 10000,
]  # fmt: skip


@pytest.mark.parametrize("text", INVALID_JSON, ids=lambda s: repr(s)[:30])
def test_invalid_json_text(text: str) -> None:
    with expect(TypedDataError, "invalid_json", None):
        xv.hash_typed_data(text)
    with expect(TypedDataError, "invalid_json", None):
        xv.hash_typed_data(text.encode("utf-8"))


@pytest.mark.parametrize("raw", [b"\xff", b'{"a": "\xff"}', b'{"a": "\xc3"}', b"\xed\xa0\x80", TEXT.encode("utf-16")],
                         ids=repr)  # fmt: skip
def test_invalid_utf8_bytes(raw: bytes) -> None:
    with expect(TypedDataError, "invalid_json", None):
        xv.hash_typed_data(raw)


def test_lone_surrogate_text() -> None:
    with expect(TypedDataError, "invalid_json", None):
        xv.hash_typed_data(TEXT.replace("Permit2", "Permit2\ud800"))
    # In a dict the same string is a value of the wrong kind; never a crash.
    with pytest.raises(TypedDataError):
        xv.hash_typed_data(edited(PERMIT2, ("domain", "name"), "Permit2\ud800"))


# --------------------------------------------------------------------------------------------
# Signatures (security.md §5.4 items 1-12)
# --------------------------------------------------------------------------------------------

P = 2**256 - 2**32 - 977
R0 = int.from_bytes(EIP3009_SIG[:32], "big")
S0 = int.from_bytes(EIP3009_SIG[32:64], "big")
V0 = EIP3009_SIG[64]


def rsv(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def compact(sig: bytes) -> bytes:
    """The EIP-2098 64-byte form ``r || (y_parity << 255 | s)``."""
    s = int.from_bytes(sig[32:64], "big") | ((sig[64] - 27) << 255)
    return sig[:32] + s.to_bytes(32, "big")


# The two recover_* entry points share the signature rules; each test runs on both.
Recover = Callable[..., str]
RECOVERERS: dict[str, Recover] = {
    "hash": lambda sig, **kw: xv.recover_hash(EIP3009_DIGEST, sig, **kw),
    "typed": lambda sig, **kw: xv.recover_typed_data(EIP3009, sig, **kw),
}


@pytest.fixture(params=sorted(RECOVERERS))
def recover(request: pytest.FixtureRequest) -> Recover:
    return RECOVERERS[request.param]


def test_valid_signature_recovers(recover: Recover) -> None:
    assert recover(EIP3009_SIG) == EIP3009_FROM
    assert recover("0x" + EIP3009_SIG.hex()) == EIP3009_FROM
    assert recover("0x" + EIP3009_SIG.hex().upper()) == EIP3009_FROM
    assert recover(bytearray(EIP3009_SIG)) == EIP3009_FROM
    assert recover(EIP3009_SIG, policy=SignaturePolicy.eip3009()) == EIP3009_FROM
    assert recover(EIP3009_SIG, policy=SignaturePolicy.permit2()) == EIP3009_FROM


@pytest.mark.parametrize("length", [0, 1, 32, 63, 66, 96, 130])
@pytest.mark.parametrize("policy", [None, SignaturePolicy.permit2(), SignaturePolicy(allow_v01=True)], ids=["default", "permit2", "v01"])
def test_signature_length(recover: Recover, length: int, policy: SignaturePolicy | None) -> None:
    sig = (EIP3009_SIG * 3)[:length]
    with expect(SignatureError, "invalid_signature_length", None):
        recover(sig, policy=policy)
    with expect(SignatureError, "invalid_signature_length", None):
        recover("0x" + sig.hex(), policy=policy)


def test_erc6492_wrapped_signature_is_a_length_error(recover: Recover) -> None:
    # §5.4 item 11: a smart-wallet wrapper is not an ECDSA signature.
    wrapped = EIP3009_SIG + bytes(64) + bytes.fromhex("6492" * 16)
    with expect(SignatureError, "invalid_signature_length", None):
        recover(wrapped)


@pytest.mark.parametrize("text", [
    "0x" + EIP3009_SIG.hex()[:-1], "0x" + EIP3009_SIG.hex() + "0", EIP3009_SIG.hex(), "0X" + EIP3009_SIG.hex(),
    "0x" + "zz" * 65, "0x" + EIP3009_SIG.hex()[:-2] + "g1", " 0x" + EIP3009_SIG.hex(), "0x" + EIP3009_SIG.hex() + "\n",
    "0x" + "٠" * 130, "", "x", "0xé",
], ids=lambda s: repr(s)[:24])  # fmt: skip
def test_signature_encoding(recover: Recover, text: str) -> None:
    with expect(SignatureError, "invalid_signature_encoding", None):
        recover(text)


@pytest.mark.parametrize("value", [None, 5, 1.0, [1, 2], memoryview(EIP3009_SIG), object()], ids=repr)
def test_signature_of_the_wrong_python_type(recover: Recover, value: Any) -> None:
    with pytest.raises((SignatureError, TypeError)) as info:
        recover(value)
    if isinstance(info.value, SignatureError):
        assert info.value.code == "invalid_signature_encoding"


def test_compact_signature_depends_on_policy(recover: Recover) -> None:
    short = compact(EIP3009_SIG)
    assert len(short) == 64
    with expect(SignatureError, "invalid_signature_length", None):
        recover(short)
    with expect(SignatureError, "invalid_signature_length", None):
        recover(short, policy=SignaturePolicy.eip3009())
    assert recover(short, policy=SignaturePolicy.permit2()) == EIP3009_FROM
    assert recover(short, policy=SignaturePolicy(allow_compact=True)) == EIP3009_FROM
    # Permit2's own vector (x402-permit2.md §7.5) in both forms.
    assert xv.recover_hash(PERMIT2_DIGEST, compact(PERMIT2_SIG), policy=SignaturePolicy.permit2()) == ANVIL0


def test_v_zero_or_one_needs_allow_v01(recover: Recover) -> None:
    v01 = EIP3009_SIG[:64] + bytes([V0 - 27])
    for policy in [None, SignaturePolicy.eip3009(), SignaturePolicy.permit2()]:
        with expect(SignatureError, "invalid_signature_v", None):
            recover(v01, policy=policy)
    assert recover(v01, policy=SignaturePolicy(allow_v01=True)) == EIP3009_FROM
    # The other parity recovers someone else, or nothing, but never the signer.
    other = EIP3009_SIG[:64] + bytes([1 - (V0 - 27)])
    try:
        assert recover(other, policy=SignaturePolicy(allow_v01=True)) != EIP3009_FROM
    except SignatureError as e:
        assert e.code == "signature_recovery_failed"


@pytest.mark.parametrize("v", [2, 3, 26, 29, 30, 31, 35, 36, 37, 38, 127, 128, 255])
@pytest.mark.parametrize("policy", [None, SignaturePolicy.permit2(), SignaturePolicy(allow_v01=True, require_low_s=False)],
                         ids=["default", "permit2", "lenient"])  # fmt: skip
def test_invalid_v(recover: Recover, v: int, policy: SignaturePolicy | None) -> None:
    with expect(SignatureError, "invalid_signature_v", None):
        recover(EIP3009_SIG[:64] + bytes([v]), policy=policy)


@pytest.mark.parametrize(("r", "s", "code"), [
    (0, S0, "invalid_signature_r"), (N, S0, "invalid_signature_r"), (N + 1, S0, "invalid_signature_r"),
    (2**256 - 1, S0, "invalid_signature_r"), (P, S0, "invalid_signature_r"),
    (R0, 0, "invalid_signature_s"), (R0, N, "invalid_signature_s"), (R0, N + 1, "invalid_signature_s"),
    (R0, 2**256 - 1, "invalid_signature_s"), (0, 0, "invalid_signature_r"),
], ids=["r=0", "r=n", "r=n+1", "r=max", "r=p", "s=0", "s=n", "s=n+1", "s=max", "r=s=0"])  # fmt: skip
@pytest.mark.parametrize("policy", [None, SignaturePolicy.permit2(), SignaturePolicy(allow_v01=True, require_low_s=False)],
                         ids=["default", "permit2", "lenient"])  # fmt: skip
def test_r_and_s_out_of_range(recover: Recover, r: int, s: int, code: str, policy: SignaturePolicy | None) -> None:
    with expect(SignatureError, code, None):
        recover(rsv(r, s, V0), policy=policy)


def test_r_and_s_out_of_range_in_compact_form() -> None:
    permit2 = SignaturePolicy.permit2()
    for r, s, code in [(0, S0, "invalid_signature_r"), (N, S0, "invalid_signature_r"), (R0, 0, "invalid_signature_s")]:
        with expect(SignatureError, code, None):
            xv.recover_hash(EIP3009_DIGEST, compact(rsv(r, s, V0)), policy=permit2)
    # In EIP-2098 the top bit is the parity and s < 2^255 < n, so s cannot be out of range on
    # the high side; the 64 bytes of an s = n signature read as parity 1 and a small s.


def test_high_s_twin(recover: Recover) -> None:
    twin = rsv(R0, N - S0, 55 - V0)  # (r, n - s, v ^ 1) recovers the same key
    assert S0 <= N // 2 < N - S0
    for policy in [None, SignaturePolicy.eip3009(), SignaturePolicy(allow_v01=True)]:
        with expect(SignatureError, "signature_high_s", None):
            recover(twin, policy=policy)
    assert recover(twin, policy=SignaturePolicy(require_low_s=False)) == EIP3009_FROM
    assert recover(twin, policy=SignaturePolicy.permit2()) == EIP3009_FROM


def test_low_s_boundary() -> None:
    half = N // 2
    assert hex(half) == "0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
    # s = n/2 passes every range rule: recovery yields some address, not an error.
    got = xv.recover_hash(EIP3009_DIGEST, rsv(R0, half, 27))
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", got) and got != EIP3009_FROM
    with expect(SignatureError, "signature_high_s", None):
        xv.recover_hash(EIP3009_DIGEST, rsv(R0, half + 1, 27))
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", xv.recover_hash(EIP3009_DIGEST, rsv(R0, half + 1, 27), policy=SignaturePolicy.permit2()))
    assert xv.recover_hash(EIP3009_DIGEST, rsv(R0, N - 1, 27), policy=SignaturePolicy.permit2())
    assert xv.recover_hash(EIP3009_DIGEST, rsv(R0, 1, 27))


def _no_point_at(x: int) -> bool:
    """True if no y satisfies y^2 = x^3 + 7 (mod p): Euler's criterion."""
    return pow((x**3 + 7) % P, (P - 1) // 2, P) != 1


def test_r_with_no_curve_point(recover: Recover) -> None:
    r = next(x for x in range(1, 100) if _no_point_at(x))
    assert r == 5
    for v in (27, 28):
        for s in (1, S0, N // 2):
            with expect(SignatureError, "signature_recovery_failed", None):
                recover(rsv(r, s, v))
    with expect(SignatureError, "signature_recovery_failed", None):
        recover(compact(rsv(r, S0, 28)), policy=SignaturePolicy.permit2())


def test_one_bit_flipped_digest_recovers_someone_else() -> None:
    for bit in [0, 1, 7, 128, 255]:
        flipped = bytearray(EIP3009_DIGEST)
        flipped[bit // 8] ^= 1 << (bit % 8)
        got = xv.recover_hash(bytes(flipped), EIP3009_SIG)
        assert got != EIP3009_FROM and re.fullmatch(r"0x[0-9a-fA-F]{40}", got)


def test_flipped_signed_field_recovers_someone_else() -> None:
    # §5.4 item 12: signed by A, claimed as from B: the result is A's address, never B's.
    changed = edited(EIP3009, ("message", "value"), "10001")
    assert xv.recover_typed_data(changed, EIP3009_SIG) != EIP3009_FROM
    claimed_by_other = edited(PERMIT2, ("message", "witness", "to"), EIP3009_FROM)
    assert xv.recover_typed_data(claimed_by_other, PERMIT2_SIG) != ANVIL0


def test_garbage_signatures_never_recover_the_zero_address() -> None:
    # §5.4 item 10: whatever garbage comes in, the zero address never comes out.
    rng = random.Random(402)
    lenient = SignaturePolicy(allow_v01=True, require_low_s=False, allow_compact=True)
    for _ in range(300):
        sig = rng.randbytes(rng.choice([64, 65]))
        if len(sig) == 65 and rng.random() < 0.8:
            sig = sig[:64] + bytes([rng.choice([0, 1, 27, 28])])
        for digest in (EIP3009_DIGEST, bytes(32), rng.randbytes(32)):
            try:
                got = xv.recover_hash(digest, sig, policy=lenient)
            except SignatureError as e:
                assert e.code in CATALOGUE and CATALOGUE[e.code] == "signature"
            else:
                assert got != "0x" + "0" * 40


@pytest.mark.parametrize("digest", [b"", bytes(31), bytes(33), bytes(64), "0x" + "00" * 31, "0x" + "00" * 33, "0x"],
                         ids=lambda d: f"{type(d).__name__}{len(d)}")  # fmt: skip
def test_digest_length(digest: Any) -> None:
    with expect(SignatureError, "invalid_digest", None):
        xv.recover_hash(digest, EIP3009_SIG)


@pytest.mark.parametrize("digest", [EIP3009_DIGEST.hex(), "0x" + EIP3009_DIGEST.hex()[:-1], "0x" + "zz" * 32, 5, None],
                         ids=repr)  # fmt: skip
def test_digest_encoding(digest: Any) -> None:
    with pytest.raises((SignatureError, TypeError)) as info:
        xv.recover_hash(digest, EIP3009_SIG)
    if isinstance(info.value, SignatureError):
        assert info.value.code == "invalid_digest"
        USED_CODES.add("invalid_digest")


def test_digest_is_checked_before_the_signature() -> None:
    with expect(SignatureError, "invalid_digest", None):
        xv.recover_hash(bytes(31), b"")


def test_signature_is_checked_before_the_typed_data() -> None:
    # The cheaper refusal first: a bad signature with a bad document reports the signature.
    with expect(SignatureError, "invalid_signature_length", None):
        xv.recover_typed_data(edited(PERMIT2, ("message", "nonce"), "01"), b"\x01")
    with expect(TypedDataError, "non_canonical_number", "message.nonce"):
        xv.recover_typed_data(edited(PERMIT2, ("message", "nonce"), "01"), PERMIT2_SIG)


def test_policy_values() -> None:
    assert SignaturePolicy() == SignaturePolicy.eip3009()
    assert SignaturePolicy.permit2() == SignaturePolicy(allow_compact=True, require_low_s=False)
    assert SignaturePolicy.permit2() != SignaturePolicy.eip3009()
    p = SignaturePolicy(allow_v01=True)
    assert (p.allow_compact, p.require_low_s, p.allow_v01) == (False, True, True)
    assert hash(SignaturePolicy()) == hash(SignaturePolicy.eip3009())
    with pytest.raises(TypeError):
        SignaturePolicy(True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        SignaturePolicy(allow_compact=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        xv.recover_hash(EIP3009_DIGEST, EIP3009_SIG, policy="permit2")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The catalogue itself
# --------------------------------------------------------------------------------------------

# Codes named in the tables above, so this check does not depend on test order.
STATIC_CODES = {
    "non_canonical_number", "invalid_json_number", "number_out_of_range", "negative_unsigned", "invalid_bytes_length",
    "invalid_bytes", "invalid_address", "invalid_address_checksum", "undeclared_type", "invalid_type_name",
    "invalid_type_definition", "cyclic_type", "limit_exceeded", "invalid_array_length", "missing_field", "unknown_field",
    "duplicate_key", "invalid_value_type", "invalid_typed_data", "invalid_input_type", "payload_too_large",
    "invalid_json", "invalid_signature_length", "invalid_signature_encoding", "invalid_signature_v",
    "invalid_signature_r", "invalid_signature_s", "signature_high_s", "signature_recovery_failed", "invalid_digest",
}  # fmt: skip


def test_error_codes_catalogue() -> None:
    entries = xv.error_codes()
    codes = [code for code, _, _ in entries]
    assert len(codes) == len(set(codes)), "duplicate codes"
    for code, kind, description in entries:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code), code
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", kind), (code, kind)
        assert isinstance(description, str) and description.strip(), code
    # Every code used in this file is in the catalogue, as a typed-data or signature code
    # (`expect` also checks each raised error's class against its code's kind).
    assert STATIC_CODES <= set(codes), STATIC_CODES - set(codes)
    assert USED_CODES <= set(codes), USED_CODES - set(codes)
    assert all(CATALOGUE[c] in KIND_CLASS for c in STATIC_CODES | USED_CODES)
    # Every typed-data and signature code in the catalogue is exercised somewhere in this file.
    core_codes = {code for code, kind, _ in entries if kind in KIND_CLASS}
    assert core_codes <= STATIC_CODES, core_codes - STATIC_CODES


def test_error_objects() -> None:
    try:
        xv.hash_typed_data(edited(PERMIT2, ("message", "permitted", "amount"), "+1"))
    except TypedDataError as e:
        err = e
    assert str(err).startswith("non_canonical_number at message.permitted.amount: ")
    assert err == TypedDataError(err.code, err.message, err.path)
    assert err != SignatureError(err.code, err.message, err.path)
    assert hash(err) == hash(TypedDataError(err.code, err.message, err.path))
    assert err.args == (err.code, err.message, err.path)
