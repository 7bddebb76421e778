"""Bad x402 payments: security.md §5.4 items 13-32 and 39, as they apply to ``Verifier.verify``.

Every payment here is signed by this file (eth_account): EIP-3009 ``TransferWithAuthorization``
through ``Account.sign_typed_data``, and x402's Permit2 ``PermitWitnessTransferFrom`` (exact
witness ``Witness(address to,uint256 validAfter)``, upto witness ``Witness(address to,address
facilitator,uint256 validAfter)``) through a digest built here by hand and
``Account.unsafe_sign_hash``; that digest is checked against the published vectors
(x402-permit2.md §7.5) and against eth_account's own typed-data encoder. Each bad case either
changes one field of a correctly signed payment, or signs a payment whose only defect is the one
under test, so the code asserted is the one the defect earns, not a side effect of a broken
signature.

Every rejection is one row of ``CASES`` (item, expected ``invalid_reason``, and where useful a
fragment ``invalid_message`` must contain, usually the field's dotted path). The boundary values
that must be *accepted* are separate tests. ``test_every_payment_code_is_produced`` re-runs the
whole table, so it does not depend on test order or selection, and checks that every
``payment``-kind code in ``error_codes()`` is produced by verify, except the ones in
``NOT_PRODUCED_BY_VERIFY`` (each with its reason).

Item -> code, as the code decides it (``verify.rs``, ``payload.rs``, ``primitives.rs``):

13  "-1" -> non_canonical_number (no sign is canonical); 2**256 -> number_out_of_range.
14  every non-canonical spelling -> non_canonical_number.
15  a JSON integer (any size that parses) where a decimal string is due -> invalid_value_type
    (x402 sends numbers as strings); a float, an exponent, NaN, Infinity, or an integer literal
    beyond 64 bits in JSON text -> invalid_json_number (the strict parser refuses them before
    any field is read); a Python float in a dict -> invalid_json_number.
16  EIP-3009 value != amount -> invalid_exact_evm_payload_authorization_value_mismatch;
    Permit2 permitted.amount != amount (exact and upto) -> permit2_amount_mismatch.
17  to != payTo -> invalid_exact_evm_payload_recipient_mismatch; witness.to != payTo ->
    invalid_permit2_recipient_mismatch.
18  EIP-3009: the token is the domain's verifyingContract, built from requirements.asset, so a
    signature made for another token -> invalid_exact_evm_payload_signature. Permit2:
    permitted.token != asset -> permit2_token_mismatch.
19  spender not the scheme's proxy -> invalid_permit2_spender.
20  signed for chain 8453, presented for 84532 (and the reverse) -> the signature code.
21  USDC name "USD Coin" where the deployment is "USDC" (or another version) -> the signature code.
22  not applicable: verify takes no domain from the client; the Permit2 domain is built
    server-side without ``version``. Instead: a signature over a domain *with* version ->
    invalid_permit2_signature, a ``domain`` member anywhere in the payload -> unknown_field, and
    a client's ``accepted`` copy naming another domain does not change the verdict.
23  validBefore < now + 6 -> invalid_exact_evm_payload_authorization_valid_before (so == now,
    == now + 5 refused; == now + 6 accepted, the SDK's ``>=`` rule); Permit2 deadline the same
    with permit2_deadline_expired.
24  validAfter > now -> invalid_exact_evm_payload_authorization_valid_after / permit2_not_yet_valid;
    validAfter == now is accepted (the SDK's rule ``validAfter <= now``; USDC itself wants
    now > validAfter, the clients' -600 s offset keeps real payments clear of it).
25  validAfter >= validBefore gets the time codes above (no window can pass both checks); a
    validBefore / deadline beyond ``max_validity_seconds`` -> authorization_window_too_long.
26  EIP-3009 nonce of 0/31/33 bytes or "0x01" -> invalid_bytes_length, not hex / no 0x / odd ->
    invalid_bytes; Permit2 nonce >= 2**256 -> number_out_of_range, negative or non-canonical
    -> non_canonical_number.
27  19/21 bytes, non-hex, no 0x -> invalid_address; mixed case with a bad EIP-55 checksum ->
    invalid_address_checksum; all-lower and all-upper accepted.
28  a duplicate key anywhere in the header's JSON -> duplicate_key.
29  an unknown member -> unknown_field (including ``facilitator`` in an exact witness); a missing
    member -> missing_field (a missing or null ``signature`` is an empty signature, which gets
    the signature code, as in the SDK).
30  both authorizations -> ambiguous_payload; a scheme that differs from the requirements ->
    unsupported_scheme (exact), invalid_upto_evm_scheme (upto), unsupported_payload_type (an
    EIP-3009 payload for upto).
31  not applicable as an input (the server builds the type string itself); a signature over
    the wrong-order type string -> invalid_permit2_signature.
32  a ReceiveWithAuthorization signature -> invalid_exact_evm_payload_signature.
39  over ``max_payload_bytes`` -> payload_too_large, before decoding or parsing.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

import x402_verify as xv
from payments import (
    AUTH_PATHS,
    DELETE,
    EIP3009_KINDS,
    ERC6492_MAGIC,
    EXACT_PROXY,
    FAC,
    KINDS,
    NOW,
    OTHER,
    OTHER_ADDRESS,
    OTHER_FAC,
    PAY_TO,
    PAYER,
    PERMIT2,
    PERMIT2_KINDS,
    UPTO_PROXY,
    USDC_BASE,
    USDC_BASE_SEPOLIA,
    ZERO_ADDRESS,
    auth_member,
    authorization,
    edited,
    envelope,
    fields,
    header,
    payment,
    permit2_digest,
    permit2_typed_data,
    requirements,
    sign,
)
from x402_verify.chain.checks import CHAIN_CODES

# --------------------------------------------------------------------------------------------
# Constants (the payments themselves are built by tests/payments.py)
# --------------------------------------------------------------------------------------------

SIG_CODE = {
    "eip3009": "invalid_exact_evm_payload_signature",
    "eip3009_v1": "invalid_exact_evm_payload_signature",
    "permit2": "invalid_permit2_signature",
    "upto": "invalid_permit2_signature",
}
VALUE_CODE = {
    "eip3009": "invalid_exact_evm_payload_authorization_value_mismatch",
    "eip3009_v1": "invalid_exact_evm_payload_authorization_value_mismatch",
    "permit2": "permit2_amount_mismatch",
    "upto": "permit2_amount_mismatch",
}
RECIPIENT_CODE = {
    "eip3009": "invalid_exact_evm_payload_recipient_mismatch",
    "eip3009_v1": "invalid_exact_evm_payload_recipient_mismatch",
    "permit2": "invalid_permit2_recipient_mismatch",
    "upto": "invalid_permit2_recipient_mismatch",
}
EXPIRED_CODE = {
    "eip3009": "invalid_exact_evm_payload_authorization_valid_before",
    "eip3009_v1": "invalid_exact_evm_payload_authorization_valid_before",
    "permit2": "permit2_deadline_expired",
    "upto": "permit2_deadline_expired",
}
NOT_YET_CODE = {
    "eip3009": "invalid_exact_evm_payload_authorization_valid_after",
    "eip3009_v1": "invalid_exact_evm_payload_authorization_valid_after",
    "permit2": "permit2_not_yet_valid",
    "upto": "permit2_not_yet_valid",
}

CATALOGUE: dict[str, str] = {code: kind for code, kind, _ in xv.error_codes()}
PAYMENT_CODES = {code for code, kind in CATALOGUE.items() if kind == "payment"}

# Payment-kind codes verify cannot return, each with the reason; checked in both directions.
NOT_PRODUCED_BY_VERIFY = {
    # A store outcome: only Verifier.charge / NonceStore.charge on an upto reservation give it.
    "invalid_upto_evm_payload_settlement_exceeds_amount": "produced by charge() on an upto reservation, never by verify",
    # Only a verifier with chain_readers gives these, against a chain
    # (tests/test_chain_checks.py::test_every_chain_code_in_one_batch produces each).
    **{code: "produced by the chain stage (Verifier(chain_readers=...))" for code in CHAIN_CODES},
}

V = xv.Verifier(nonce_store=None)


@functools.cache
def _base(kind: str) -> tuple[str, str]:
    p, r = payment(kind)
    return json.dumps(p), json.dumps(r)


def base(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh copy of the untouched, valid payment of ``kind`` and its requirements."""
    p, r = _base(kind)
    return json.loads(p), json.loads(r)


# --------------------------------------------------------------------------------------------
# Paths and mutations
# --------------------------------------------------------------------------------------------

Path = tuple[str, ...]


def auth_path(kind: str, name: str) -> Path:
    """The payload path of a logical authorization field."""
    return ("payload", auth_member(kind), *AUTH_PATHS[kind][name])


def dotted(path: Path) -> str:
    return ".".join(path)




def text_with(doc: dict[str, Any], path: Path, literal: str) -> str:
    """``doc`` as JSON text with the value at ``path`` written as the raw ``literal``."""
    return json.dumps(edited(doc, path, "__LITERAL__")).replace('"__LITERAL__"', literal)


def text_with_duplicate(doc: dict[str, Any], path: Path, dup_value: Any) -> str:
    """``doc`` as JSON text where the object holding ``path`` names its last key twice."""
    *parent, key = path
    text = json.dumps(edited(doc, (*parent, "__DUP__"), 0))
    assert text.count('"__DUP__": 0') == 1
    return text.replace('"__DUP__": 0', f"{json.dumps(key)}: {json.dumps(dup_value)}")


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def raw_sig(doc: dict[str, Any]) -> bytes:
    return bytes.fromhex(doc["payload"]["signature"].removeprefix("0x"))


def with_sig(doc: dict[str, Any], raw: bytes) -> dict[str, Any]:
    return edited(doc, ("payload", "signature"), "0x" + raw.hex())


# --------------------------------------------------------------------------------------------
# The table of rejections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    run: Callable[[], xv.VerifyResponse]
    where: str | None = None  # a fragment the invalid_message must contain


CASES: list[Case] = []


def case(id: str, code: str, make: Callable[[], tuple[Any, Any]], *, where: str | None = None, verifier: xv.Verifier = V, now: int = NOW) -> None:
    """Registers a rejection: ``make`` gives (payload, requirements) for ``verifier.verify``."""
    assert not any(c.id == id for c in CASES), id
    CASES.append(Case(id, code, lambda: verifier.verify(*make(), now=now), where))


def field_case(id: str, kind: str, name: str, value: Any, code: str, *, where: bool = True) -> None:
    """A one-field change of the valid payment of ``kind`` (header form)."""
    path = auth_path(kind, name)

    def make() -> tuple[Any, Any]:
        p, r = base(kind)
        return header(edited(p, path, value)), r

    case(id, code, make, where=dotted(path) if where else None)


def signed_case(id: str, kind: str, code: str, *, where: str | None = None, verifier: xv.Verifier = V, **kw: Any) -> None:
    """A payment correctly signed over the changed values ``kw`` (``payment``'s arguments)."""
    case(id, code, lambda: payment(kind, **kw), where=where, verifier=verifier)


# ---- 13: negative and out-of-range numbers ---------------------------------------------------

for kind in KINDS:
    for name in ("amount", "validAfter", "validBefore"):
        field_case(f"13-{kind}-{name}-negative", kind, name, "-1", "non_canonical_number")
        field_case(f"13-{kind}-{name}-2**256", kind, name, str(2**256), "number_out_of_range")
        field_case(f"13-{kind}-{name}-2**300", kind, name, str(2**300), "number_out_of_range")
    # 2**256 - 1 is in range: it reads, then fails the check that compares it.
    field_case(f"13-{kind}-amount-max-u256-in-range", kind, "amount", str(2**256 - 1), VALUE_CODE[kind], where=False)

# ---- 14: non-canonical spellings --------------------------------------------------------------

NON_CANONICAL = ["1e6", "1.0", " 100", "100 ", "100\n", "+100", "1_00", "١٠٠", "０", "0100", "00", "", "0x64", "0X64", "1,000", "ten"]
for kind in KINDS:
    for name in ("amount", "validAfter", "validBefore") + (() if kind in EIP3009_KINDS else ("nonce",)):
        for i, spelling in enumerate(NON_CANONICAL):
            field_case(f"14-{kind}-{name}-{i}-{spelling!r}", kind, name, spelling, "non_canonical_number")

# ---- 15: numbers that are not decimal strings ------------------------------------------------


def _text_case(id: str, kind: str, name: str, literal: str, code: str, *, where: bool) -> None:
    path = auth_path(kind, name)

    def make() -> tuple[Any, Any]:
        p, r = base(kind)
        return text_with(p, path, literal), r

    case(id, code, make, where=dotted(path) if where else None)


def _dict_case(id: str, kind: str, name: str, value: Any, code: str) -> None:
    path = auth_path(kind, name)

    def make() -> tuple[Any, Any]:
        p, r = base(kind)
        return edited(p, path, value), r

    case(id, code, make, where=dotted(path))


for kind in KINDS:
    for name in ("amount", "validBefore"):
        # A JSON integer that parses is a value of the wrong JSON kind (x402 sends strings).
        _text_case(f"15-{kind}-{name}-json-int", kind, name, "10000", "invalid_value_type", where=True)
        _dict_case(f"15-{kind}-{name}-py-int", kind, name, 10000, "invalid_value_type")
        _dict_case(f"15-{kind}-{name}-py-big-int", kind, name, 10**30, "invalid_value_type")
        _dict_case(f"15-{kind}-{name}-py-bool", kind, name, True, "invalid_value_type")
        _dict_case(f"15-{kind}-{name}-null", kind, name, None, "invalid_value_type")
        # Floats, exponents, NaN, Infinity and integers beyond 64 bits never parse.
        for literal in ("1.5", "10000.0", "1e4", "1E4", "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "100000000000000000000000", "-0.0"):
            _text_case(f"15-{kind}-{name}-json-{literal}", kind, name, literal, "invalid_json_number", where=False)
        for py_float in (1.5, 10000.0, float("nan"), float("inf"), float("-inf")):
            _dict_case(f"15-{kind}-{name}-py-{py_float!r}", kind, name, py_float, "invalid_json_number")

# ---- 16: amount differs from the required amount ---------------------------------------------

for kind in KINDS:
    signed_case(f"16-{kind}-less", kind, VALUE_CODE[kind], amount=9999, where="9999")
    signed_case(f"16-{kind}-more", kind, VALUE_CODE[kind], amount=10001, where="10001")  # exact means equal; upto signs the max
    signed_case(f"16-{kind}-zero", kind, VALUE_CODE[kind], amount=0)

# ---- 17: recipient ----------------------------------------------------------------------------

for kind in KINDS:
    signed_case(f"17-{kind}-to-other", kind, RECIPIENT_CODE[kind], to=OTHER_ADDRESS, where=OTHER_ADDRESS)
    signed_case(f"17-{kind}-to-payer", kind, RECIPIENT_CODE[kind], to=PAYER.address)
    signed_case(f"17-{kind}-to-zero", kind, RECIPIENT_CODE[kind], to=ZERO_ADDRESS)

# ---- 18: token / verifyingContract ------------------------------------------------------------

for kind in EIP3009_KINDS:
    # Signed for Base mainnet USDC's contract (same name, version and chain otherwise).
    signed_case(f"18-{kind}-domain-other-token", kind, SIG_CODE[kind], sign_kw={"token": USDC_BASE}, where="recovers to")
    signed_case(f"18-{kind}-domain-token-is-payto", kind, SIG_CODE[kind], sign_kw={"token": PAY_TO})
for kind in PERMIT2_KINDS:
    signed_case(f"18-{kind}-permitted-token-other", kind, "permit2_token_mismatch", token=USDC_BASE, where=USDC_BASE)
    signed_case(f"18-{kind}-permitted-token-permit2", kind, "permit2_token_mismatch", token=PERMIT2)

# ---- 19: spender ------------------------------------------------------------------------------

for kind in PERMIT2_KINDS:
    other_proxy = UPTO_PROXY if kind == "permit2" else EXACT_PROXY
    signed_case(f"19-{kind}-spender-other-proxy", kind, "invalid_permit2_spender", spender=other_proxy, where=other_proxy)
    signed_case(f"19-{kind}-spender-facilitator", kind, "invalid_permit2_spender", spender=FAC)
    signed_case(f"19-{kind}-spender-permit2", kind, "invalid_permit2_spender", spender=PERMIT2)
    signed_case(f"19-{kind}-spender-historic-proxy", kind, "invalid_permit2_spender", spender="0x4020615294c913F045dc10f0a5cdEbd86c280001")

# ---- 20: chain --------------------------------------------------------------------------------

for kind in EIP3009_KINDS:
    signed_case(f"20-{kind}-signed-for-8453", kind, SIG_CODE[kind], sign_kw={"chain_id": 8453})
    signed_case(f"20-{kind}-signed-for-1", kind, SIG_CODE[kind], sign_kw={"chain_id": 1})
for kind in PERMIT2_KINDS:
    signed_case(f"20-{kind}-signed-for-84532", kind, SIG_CODE[kind], sign_kw={"chain_id": 84532})
    signed_case(f"20-{kind}-signed-for-1", kind, SIG_CODE[kind], sign_kw={"chain_id": 1})

# ---- 21: USDC domain name and version ---------------------------------------------------------

for kind in EIP3009_KINDS:
    signed_case(f"21-{kind}-name-usd-coin", kind, SIG_CODE[kind], sign_kw={"name": "USD Coin"}, where="recovers to")
    signed_case(f"21-{kind}-name-lowercase", kind, SIG_CODE[kind], sign_kw={"name": "usdc"})
    signed_case(f"21-{kind}-version-1", kind, SIG_CODE[kind], sign_kw={"version": "1"})

# ---- 22: a Permit2 domain with version (and client-sent domains) ------------------------------

for kind in PERMIT2_KINDS:
    signed_case(f"22-{kind}-domain-with-version", kind, SIG_CODE[kind], sign_kw={"domain_version": "1"})
for kind in KINDS:
    domain = {"name": "Permit2", "version": "1", "chainId": 1, "verifyingContract": PERMIT2}
    key = "authorization" if kind in EIP3009_KINDS else "permit2Authorization"
    for where_path in (("domain",), ("payload", "domain"), ("payload", key, "domain")):

        def _domain_make(kind: str = kind, where_path: Path = where_path, domain: dict[str, Any] = domain) -> tuple[Any, Any]:
            p, r = base(kind)
            return header(edited(p, where_path, domain)), r

        case(f"22-{kind}-{dotted(where_path)}-member", "unknown_field", _domain_make, where="domain")

# ---- 23: validBefore / deadline ---------------------------------------------------------------

for kind in KINDS:
    for label, before in (("now+5", NOW + 5), ("now+1", NOW + 1), ("now", NOW), ("now-1", NOW - 1), ("zero", 0)):
        signed_case(f"23-{kind}-valid-before-{label}", kind, EXPIRED_CODE[kind], valid_before=before, where=str(before))

# ---- 24: validAfter ---------------------------------------------------------------------------

for kind in KINDS:
    for label, after in (("now+1", NOW + 1), ("now+300", NOW + 300), ("max", 2**256 - 1)):
        signed_case(f"24-{kind}-valid-after-{label}", kind, NOT_YET_CODE[kind], valid_after=after, where=str(after))

# ---- 25: empty windows, and windows longer than max_validity_seconds --------------------------

V_MAX_300 = xv.Verifier(nonce_store=None, max_validity_seconds=300)
for kind in KINDS:
    # validAfter == validBefore ahead of now: the validAfter check refuses it.
    signed_case(f"25-{kind}-empty-window-future", kind, NOT_YET_CODE[kind], valid_after=NOW + 300, valid_before=NOW + 300)
    # validAfter > validBefore, both ahead.
    signed_case(f"25-{kind}-inverted-window-future", kind, NOT_YET_CODE[kind], valid_after=NOW + 400, valid_before=NOW + 300)
    # validAfter == validBefore == now: the validBefore check refuses it first.
    signed_case(f"25-{kind}-empty-window-now", kind, EXPIRED_CODE[kind], valid_after=NOW, valid_before=NOW)
    signed_case(f"25-{kind}-inverted-window-past", kind, EXPIRED_CODE[kind], valid_after=NOW - 10, valid_before=NOW - 20)
    signed_case(f"25-{kind}-window-too-long", kind, "authorization_window_too_long", verifier=V_MAX_300, valid_before=NOW + 301, where="300")
    signed_case(f"25-{kind}-window-u256-max", kind, "authorization_window_too_long", verifier=V_MAX_300, valid_before=2**256 - 1)

# ---- 26: nonces -------------------------------------------------------------------------------

for kind in EIP3009_KINDS:
    for label, nonce in (("31-bytes", "0x" + "5a" * 31), ("33-bytes", "0x" + "5a" * 33), ("0x01", "0x01"), ("empty", "0x"), ("64-bytes", "0x" + "5a" * 64)):
        field_case(f"26-{kind}-nonce-{label}", kind, "nonce", nonce, "invalid_bytes_length")
    for label, nonce in (
        ("no-0x", "5a" * 32), ("0X", "0X" + "5a" * 32), ("odd", "0x" + "5a" * 31 + "5"), ("non-hex", "0x" + "zz" * 32),
        ("decimal", "12345"), ("spaces", "0x" + "5a" * 31 + " 5"), ("empty-string", ""),
    ):  # fmt: skip
        field_case(f"26-{kind}-nonce-{label}", kind, "nonce", nonce, "invalid_bytes")
    field_case(f"26-{kind}-nonce-int", kind, "nonce", 5, "invalid_value_type")
for kind in PERMIT2_KINDS:
    field_case(f"26-{kind}-nonce-2**256", kind, "nonce", str(2**256), "number_out_of_range")
    field_case(f"26-{kind}-nonce-negative", kind, "nonce", "-1", "non_canonical_number")
    for label, nonce in (("hex", "0x01"), ("leading-zero", "01"), ("space", " 1"), ("plus", "+1"), ("bytes32-hex", "0x" + "5a" * 32)):
        field_case(f"26-{kind}-nonce-{label}", kind, "nonce", nonce, "non_canonical_number")
    field_case(f"26-{kind}-nonce-json-int", kind, "nonce", 1, "invalid_value_type")

# ---- 27: addresses ----------------------------------------------------------------------------


def bad_checksum(address: str) -> str:
    """``address`` with the case of its first letter flipped (an EIP-55 checksum error)."""
    for i, c in enumerate(address[2:], start=2):
        if c.isalpha():
            return address[:i] + c.swapcase() + address[i + 1 :]
    raise AssertionError(f"{address} has no letters")


ADDRESS_FIELDS = {
    "eip3009": ("from", "to"),
    "eip3009_v1": ("from", "to"),
    "permit2": ("from", "to", "token", "spender"),
    "upto": ("from", "to", "token", "spender", "facilitator"),
}


def _address_value(kind: str, name: str) -> str:
    f = fields(kind)
    return str(f["from_" if name == "from" else name])


for kind, names in ADDRESS_FIELDS.items():
    for name in names:
        good = _address_value(kind, name)
        for label, bad_address in (
            ("19-bytes", good[:-2]), ("21-bytes", good + "00"), ("non-hex", "0x" + "g" * 40), ("no-0x", good[2:]),
            ("no-0x-42-chars", "00" + good[2:]), ("0X", "0X" + good[2:]), ("empty", ""), ("0x", "0x"),
            ("space", " " + good), ("ens", "vitalik.eth"),
        ):  # fmt: skip
            field_case(f"27-{kind}-{name}-{label}", kind, name, bad_address, "invalid_address")
        field_case(f"27-{kind}-{name}-bad-checksum", kind, name, bad_checksum(good), "invalid_address_checksum")
        field_case(f"27-{kind}-{name}-int", kind, name, 20, "invalid_value_type")
        field_case(f"27-{kind}-{name}-int-160-bits", kind, name, int(good, 16), "invalid_json_number", where=False)  # header JSON: beyond 64 bits

# ---- 28: duplicate JSON keys (in the header's JSON text) ---------------------------------------

for kind in KINDS:
    dup_paths: list[tuple[str, Path, Any]] = [
        ("amount-same", auth_path(kind, "amount"), "10000"),
        ("amount-other", auth_path(kind, "amount"), "1"),
        ("from", auth_path(kind, "from"), OTHER.address),
        ("to", auth_path(kind, "to"), OTHER_ADDRESS),
        ("signature", ("payload", "signature"), "0x"),
        ("x402Version", ("x402Version",), 2),
    ]
    if kind in PERMIT2_KINDS:
        dup_paths.append(("token", auth_path(kind, "token"), OTHER_ADDRESS))
    if kind == "eip3009":
        dup_paths.append(("accepted-network", ("accepted", "network"), "eip155:1"))
    for label, path, dup in dup_paths:
        for form in ("header", "json"):

            def _dup_make(kind: str = kind, path: Path = path, dup: Any = dup, form: str = form) -> tuple[Any, Any]:
                p, r = base(kind)
                text = text_with_duplicate(p, path, dup)
                return (b64(text) if form == "header" else text), r

            case(f"28-{kind}-{label}-{form}", "duplicate_key", _dup_make, where=json.dumps(path[-1]))

# ---- 29: unknown and missing members ----------------------------------------------------------


def _member_case(id: str, kind: str, path: Path, value: Any, code: str, where: str | None) -> None:
    def make() -> tuple[Any, Any]:
        p, r = base(kind)
        return header(edited(p, path, value)), r

    case(id, code, make, where=where)


for kind in KINDS:
    key = "authorization" if kind in EIP3009_KINDS else "permit2Authorization"
    auth = ("payload", key)
    unknown: list[Path] = [auth + ("extra",), auth + ("chainId",), ("payload", "nonce"), ("payload", "scheme")]
    if kind in PERMIT2_KINDS:
        unknown += [auth + ("permitted", "chainId"), auth + ("witness", "extra"), auth + ("witness", "facilitatorAddress")]
    unknown.append(("scheme",) if kind != "eip3009_v1" else ("accepted",))  # the other version's member
    unknown.append(("paymentRequirements",))
    for path in unknown:
        _member_case(f"29-{kind}-unknown-{dotted(path)}", kind, path, "x", "unknown_field", path[-1])

    members = list(authorization(kind, fields(kind)))
    missing: list[Path] = [auth + (m,) for m in members]
    if kind in PERMIT2_KINDS:
        missing += [auth + ("permitted", "token"), auth + ("permitted", "amount"), auth + ("witness", "to"), auth + ("witness", "validAfter")]
    framing: list[Path] = [("scheme",), ("network",)] if kind == "eip3009_v1" else [("accepted",), ("accepted", "scheme"), ("accepted", "network")]
    missing += [("payload",), ("payload", key), *framing]
    for path in missing:
        where = path[-1] if path[-1] != key else "neither"
        _member_case(f"29-{kind}-missing-{dotted(path)}", kind, path, DELETE, "missing_field", where)

    # A missing or null signature is an empty signature (as in the SDK): the signature code.
    _member_case(f"29-{kind}-missing-signature", kind, ("payload", "signature"), DELETE, SIG_CODE[kind], "no signature")
    _member_case(f"29-{kind}-null-signature", kind, ("payload", "signature"), None, SIG_CODE[kind], "no signature")
    _member_case(f"29-{kind}-0x-signature", kind, ("payload", "signature"), "0x", SIG_CODE[kind], "no signature")
    _member_case(f"29-{kind}-int-signature", kind, ("payload", "signature"), 5, "invalid_value_type", "signature")

# The exact witness has no facilitator: an exact payment carrying one is refused outright.
signed_case("29-permit2-exact-witness-with-facilitator", "permit2", "unknown_field", facilitator=FAC, where="witness.facilitator")


def _upto_as_exact() -> tuple[Any, Any]:
    # An upto-shaped authorization (witness with facilitator) for an exact Permit2 route.
    p, _ = payment("upto", spender=EXACT_PROXY)
    req = requirements("permit2")
    return header(edited(p, ("accepted",), req)), req


case("29-upto-payment-for-exact-requirements", "unknown_field", _upto_as_exact, where="facilitator")

# ---- 30: both authorizations; scheme differing from the requirements --------------------------


def _both(kind: str, form: str) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        p3009, _ = base("eip3009")
        p, r = base(kind)
        p = edited(p, ("payload", "authorization"), p3009["payload"]["authorization"]) if kind in PERMIT2_KINDS else p
        other, _ = base("permit2")
        p = edited(p, ("payload", "permit2Authorization"), other["payload"]["permit2Authorization"])
        return (header(p) if form == "header" else p), r

    return make


for kind in KINDS:
    for form in ("header", "dict"):
        case(f"30-{kind}-both-authorizations-{form}", "ambiguous_payload", _both(kind, form), where="both")


def _scheme_case(id: str, kind: str, code: str, *, payload_scheme: str | None = None, req_scheme: str | None = None, where: str | None = None) -> None:
    def make() -> tuple[Any, Any]:
        p, r = base(kind)
        if payload_scheme is not None:
            p = edited(p, ("scheme",) if kind == "eip3009_v1" else ("accepted", "scheme"), payload_scheme)
        if req_scheme is not None:
            r = edited(r, ("scheme",), req_scheme)
        return header(p), r

    case(id, code, make, where=where)


for kind in KINDS:
    # The requirements name a scheme that is neither exact nor upto.
    for s in ("EXACT", "exact ", "", "permit2", "erc7710"):
        _scheme_case(f"30-{kind}-req-scheme-{s!r}", kind, "unsupported_scheme", req_scheme=s, where=repr(s).replace("'", '"'))
for kind in ("eip3009", "eip3009_v1", "permit2"):
    # Requirements exact, payload claims another scheme.
    for s in ("upto", "EXACT", ""):
        _scheme_case(f"30-{kind}-payload-scheme-{s!r}", kind, "unsupported_scheme", payload_scheme=s, where="not exact")
for s in ("exact", "UPTO", ""):
    _scheme_case(f"30-upto-payload-scheme-{s!r}", "upto", "invalid_upto_evm_scheme", payload_scheme=s, where="not upto")
for kind in EIP3009_KINDS:
    # An EIP-3009 payment for an upto route (upto is Permit2 only).
    _scheme_case(f"30-{kind}-for-upto-requirements", kind, "unsupported_payload_type", req_scheme="upto", where="upto")
    _scheme_case(f"30-{kind}-for-upto-both-schemes", kind, "unsupported_payload_type", req_scheme="upto", payload_scheme="upto")

# ---- 31: the Permit2 witness type string in non-canonical order --------------------------------

for kind in PERMIT2_KINDS:
    signed_case(f"31-{kind}-wrong-order-type-string", kind, SIG_CODE[kind], sign_kw={"wrong_order": True}, where="recovers to")


def _upto_signature_as_exact() -> tuple[Any, Any]:
    # Signed over the upto witness type, presented with the exact witness (facilitator dropped).
    f = fields("upto", spender=EXACT_PROXY)
    sig = sign("upto", f)
    f.pop("facilitator")
    inner = {"signature": sig, "permit2Authorization": authorization("permit2", f)}
    req = requirements("permit2")
    return header(envelope("permit2", req, inner)), req


case("31-upto-witness-signature-presented-as-exact", SIG_CODE["permit2"], _upto_signature_as_exact)

# ---- 32: ReceiveWithAuthorization presented as TransferWithAuthorization -----------------------

for kind in EIP3009_KINDS:
    signed_case(f"32-{kind}-receive-with-authorization", kind, SIG_CODE[kind], sign_kw={"primary": "ReceiveWithAuthorization"}, where="recovers to")
    signed_case(f"32-{kind}-cancel-typename", kind, SIG_CODE[kind], sign_kw={"primary": "TransferWithAuthorizationV2"})

# ---- 39: payload too large, checked before anything is decoded ---------------------------------

TEN_MB = 10 * 1024 * 1024
case("39-10MB-base64-header", "payload_too_large", lambda: ("A" * TEN_MB, base("eip3009")[1]), where="payment header")
case("39-10MB-not-base64", "payload_too_large", lambda: ("!" * TEN_MB, base("eip3009")[1]), where="payment header")
case("39-10MB-json-text", "payload_too_large", lambda: ('{"x402Version": 2' + " " * TEN_MB + "}", base("eip3009")[1]))
case("39-10MB-bytes", "payload_too_large", lambda: (b"{" + b" " * TEN_MB + b"}", base("eip3009")[1]))
case("39-10MB-of-quotes", "payload_too_large", lambda: ('{"a":"' + '\\"' * (TEN_MB // 2) + '"}', base("eip3009")[1]))

SMALL_LIMIT = 2048
V_SMALL = xv.Verifier(nonce_store=None, max_payload_bytes=SMALL_LIMIT)


def padded_json(kind: str, size: int) -> str:
    """The valid payment of ``kind`` as JSON text of exactly ``size`` bytes (interior spaces)."""
    text = json.dumps(base(kind)[0], separators=(",", ":"))
    assert len(text) <= size, (len(text), size)
    return "{" + " " * (size - len(text)) + text[1:]


def _one_over(kind: str, as_header: bool) -> tuple[Any, Any]:
    text = padded_json(kind, SMALL_LIMIT + 1)
    return (b64(text) if as_header else text), base(kind)[1]


def with_requirements(payload: Any, kind: str = "eip3009") -> tuple[Any, Any]:
    """``payload`` (given as is) with the valid requirements of ``kind``."""
    return payload, base(kind)[1]


for kind in ("eip3009", "upto"):
    case(f"39-{kind}-json-one-over", "payload_too_large", functools.partial(_one_over, kind, False), verifier=V_SMALL, where=str(SMALL_LIMIT))
    case(f"39-{kind}-header-one-over", "payload_too_large", functools.partial(_one_over, kind, True), verifier=V_SMALL, where=str(SMALL_LIMIT))
case(
    "39-requirements-text-too-large",
    "invalid_payment_requirements",
    lambda: (header(base("eip3009")[0]), json.dumps(base("eip3009")[1]) + " " * 20_000),
    where="requirements",
)

# ---- framing: base64, JSON, version, payload shape ----------------------------------------------

for label, text in (
    ("bang", "!!!!"), ("no-padding", "eyJhIjoxfQ"), ("url-safe-alphabet", "eyJ-Ijox_Q=="), ("inner-space", "eyJh IjoxfQ=="),
    ("data-uri", "data:application/json;base64,eyJhIjoxfQ=="), ("array-text", "[1]"),
    ("truncated-header", None),
):  # fmt: skip
    if text is None:
        case(f"framing-base64-{label}", "invalid_base64", lambda: (header(base("eip3009")[0])[:-1], base("eip3009")[1]), where="base64")
    else:
        case(f"framing-base64-{label}", "invalid_base64", functools.partial(with_requirements, text), where="base64")

for label, raw in (
    ("not-json", b"not json"), ("truncated", b'{"x402Version": 2'), ("trailing-garbage", b'{"x402Version": 2} x'),
    ("single-quotes", b"{'x402Version': 2}"), ("trailing-comma", b'{"x402Version": 2,}'), ("bad-utf8", b'{"a": "\xff"}'),
    ("comment", b'{"x402Version": 2 /* c */}'), ("bom", b'\xef\xbb\xbf{"x402Version": 2}'),
):  # fmt: skip
    case(f"framing-json-{label}-header", "invalid_json", functools.partial(with_requirements, b64(raw)))
case("framing-json-empty-header", "invalid_json", lambda: ("", base("eip3009")[1]))  # base64 of nothing: no JSON
case("framing-json-blank-header", "invalid_json", lambda: ("  \n", base("eip3009")[1]))
case("framing-json-raw-text-truncated", "invalid_json", lambda: ('{"x402Version": 2, "payload": ', base("eip3009")[1]))
case("framing-json-raw-bytes-bad-utf8", "invalid_json", lambda: (b'{"a": "\xff"}', base("eip3009")[1]))

for kind in KINDS:
    versions: tuple[tuple[str, Any], ...] = (("3", 3), ("0", 0), ("minus-1", -1), ("string-2", "2"), ("true", True), ("null", None), ("list", [2]))
    for label, version in versions:
        _member_case(f"framing-version-{kind}-{label}", kind, ("x402Version",), version, "invalid_x402_version", "x402Version")
    _member_case(f"framing-version-{kind}-missing", kind, ("x402Version",), DELETE, "invalid_x402_version", "missing")


def _version_text(literal: str) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        p, r = base("eip3009")
        return text_with(p, ("x402Version",), literal), r

    return make


case("framing-version-json-2.0", "invalid_json_number", _version_text("2.0"))
case("framing-version-json-huge", "invalid_json_number", _version_text("100000000000000000000000"))
case("framing-version-json-2**70-as-int", "invalid_json_number", _version_text(str(2**70)))

for label, text in (("array", "[]"), ("string", '"x"'), ("number", "2"), ("null", "null")):
    case(f"framing-payload-top-level-{label}", "invalid_payload", functools.partial(with_requirements, b64(text)), where="payment payload")
for kind in KINDS:
    key = "authorization" if kind in EIP3009_KINDS else "permit2Authorization"
    shapes: list[tuple[Path, Any]] = [(("payload",), "0x00"), (("payload",), []), (("payload", key), "x"), (("payload", key), [])]
    if kind in PERMIT2_KINDS:
        shapes += [(("payload", key, "permitted"), "x"), (("payload", key, "witness"), None)]
    if kind != "eip3009_v1":
        shapes.append((("accepted",), "exact"))
    for path, shape in shapes:
        _member_case(f"framing-payload-{kind}-{dotted(path)}-{type(shape).__name__}", kind, path, shape, "invalid_payload", path[-1])
case("framing-payload-lone-surrogate-header", "invalid_payload", lambda: ("eyJ\udc00", base("eip3009")[1]), where="UTF-8")

# ---- framing: requirements --------------------------------------------------------------------

for kind in KINDS:
    amount_key = "maxAmountRequired" if kind == "eip3009_v1" else "amount"
    bad_reqs: list[tuple[str, Path, Any]] = [
        ("missing-payTo", ("payTo",), DELETE), ("missing-asset", ("asset",), DELETE), ("missing-network", ("network",), DELETE),
        ("missing-scheme", ("scheme",), DELETE), ("missing-amount", (amount_key,), DELETE),
        ("amount-leading-zero", (amount_key,), "010000"), ("amount-negative", (amount_key,), "-1"),
        ("amount-2**256", (amount_key,), str(2**256)), ("amount-bool", (amount_key,), True), ("amount-null", (amount_key,), None),
        ("asset-bad-checksum", ("asset",), bad_checksum(requirements(kind)["asset"])), ("asset-short", ("asset",), "0x1234"),
        ("payTo-bad-checksum", ("payTo",), bad_checksum(PAY_TO)), ("extra-string", ("extra",), "x"),
        ("extra-name-int", ("extra", "name"), 1), ("maxTimeoutSeconds-string", ("maxTimeoutSeconds",), "300"),
        ("maxTimeoutSeconds-negative", ("maxTimeoutSeconds",), -1), ("network-int", ("network",), 84532),
        ("both-amount-keys", ("maxAmountRequired" if kind != "eip3009_v1" else "amount",), "10000"),
    ]  # fmt: skip
    if kind == "upto":
        bad_reqs.append(("facilitatorAddress-bad", ("extra", "facilitatorAddress"), "0x1234"))
    for label, path, req_value in bad_reqs:

        def _req_make(kind: str = kind, path: Path = path, req_value: Any = req_value) -> tuple[Any, Any]:
            p, r = base(kind)
            return header(p), edited(r, path, req_value)

        where = "both" if label == "both-amount-keys" else ("missing" if label == "missing-amount" else path[-1])
        case(f"framing-requirements-{kind}-{label}", "invalid_payment_requirements", _req_make, where=where)
case("framing-requirements-not-a-mapping", "invalid_payment_requirements", lambda: (header(base("eip3009")[0]), 5))
case("framing-requirements-list", "invalid_payment_requirements", lambda: (header(base("eip3009")[0]), [base("eip3009")[1]]))
case("framing-requirements-json-array-text", "invalid_payment_requirements", lambda: (header(base("eip3009")[0]), "[]"))

# ---- framing: networks ------------------------------------------------------------------------

V_BASE_ONLY = xv.Verifier(nonce_store=None, networks=["eip155:8453"])
V_SEPOLIA_ONLY = xv.Verifier(nonce_store=None, networks=["base-sepolia"])
for kind in EIP3009_KINDS:
    case(f"framing-network-{kind}-not-allowed", "invalid_network", functools.partial(base, kind), verifier=V_BASE_ONLY, where="84532")
for kind in PERMIT2_KINDS:
    case(f"framing-network-{kind}-not-allowed", "invalid_network", functools.partial(base, kind), verifier=V_SEPOLIA_ONLY, where="8453")

NETWORK_MISMATCH = {"eip3009": "network_mismatch", "eip3009_v1": "network_mismatch", "permit2": "network_mismatch", "upto": "invalid_upto_evm_network_mismatch"}
CONFIG_CODE = {
    "eip3009": "invalid_exact_evm_failed_to_get_network_config",
    "eip3009_v1": "invalid_exact_evm_failed_to_get_network_config",
    "permit2": "invalid_exact_evm_failed_to_get_network_config",
    "upto": "invalid_upto_evm_failed_to_get_network_config",
}
for kind in KINDS:
    net_path: Path = ("network",) if kind == "eip3009_v1" else ("accepted", "network")
    for other in ("eip155:1", "eip155:84532 ", "EIP155:8453", "base", "eip155:08453"):
        if other == requirements(kind)["network"]:
            continue
        _member_case(f"framing-network-mismatch-{kind}-{other!r}", kind, net_path, other, NETWORK_MISMATCH[kind], "differs")
    for bad in ("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "eip155:0", "eip155:", "eip155:+8453", "eip155:99999999999999999999", "not-a-chain") + (
        ("base",) if kind != "eip3009_v1" else ()  # v1 names are v1 only
    ):

        def _unknown_network(kind: str = kind, bad: str = bad, net_path: Path = net_path) -> tuple[Any, Any]:
            p, r = base(kind)
            return header(edited(p, net_path, bad)), edited(r, ("network",), bad)

        case(f"framing-network-config-{kind}-{bad!r}", CONFIG_CODE[kind], _unknown_network, where="unknown network")

# ---- framing: EIP-712 domain in the requirements ------------------------------------------------

for kind in EIP3009_KINDS:
    for label, path in (("no-name", ("extra", "name")), ("no-version", ("extra", "version")), ("no-extra", ("extra",))):

        def _no_domain(kind: str = kind, path: Path = path) -> tuple[Any, Any]:
            p, r = base(kind)
            return header(p), edited(r, path, DELETE)

        case(f"framing-missing-domain-{kind}-{label}", "missing_eip712_domain", _no_domain, where="name and version")

# ---- framing: assetTransferMethod ---------------------------------------------------------------

for kind in KINDS:
    methods = ("permit2", "erc7710", "EIP3009", "") if kind in EIP3009_KINDS else ("eip3009", "erc7710", "PERMIT2", "")
    for method in methods:

        def _method(kind: str = kind, method: str = method) -> tuple[Any, Any]:
            p, r = base(kind)
            return header(p), edited(r, ("extra", "assetTransferMethod"), method)

        case(f"framing-transfer-method-{kind}-{method!r}", "unsupported_payload_type", _method, where="assetTransferMethod")

# ---- framing: signatures only a chain can judge -------------------------------------------------


def _sig_make(kind: str, change: Callable[[bytes], bytes]) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        p, r = base(kind)
        return header(with_sig(p, change(raw_sig(p)))), r

    return make


def erc6492(sig: bytes) -> bytes:
    return abi_encode(["address", "bytes", "bytes"], [OTHER_ADDRESS, bytes.fromhex("c0ffee"), sig]) + ERC6492_MAGIC


for kind in KINDS:
    for label, change, where in (
        ("66-bytes", lambda s: s + b"\x00", "66-byte"),
        ("20-bytes", lambda s: s[:20], "20-byte"),
        ("130-bytes", lambda s: s + s, "130-byte"),
        ("1-byte", lambda s: s[:1], "1-byte"),
        ("erc6492-wrapped", erc6492, "ERC-6492"),
        ("65-byte-6492-suffix", lambda s: s[:33] + ERC6492_MAGIC, "65-byte"),
    ):
        case(f"framing-needs-chain-check-{kind}-{label}", "needs_chain_check", _sig_make(kind, change), where=where)

# ---- framing: upto facilitator, zero amounts and recipients -------------------------------------

signed_case("framing-upto-facilitator-other", "upto", "upto_facilitator_mismatch", facilitator=OTHER_FAC, where=OTHER_FAC)
signed_case("framing-upto-facilitator-payer", "upto", "upto_facilitator_mismatch", facilitator=PAYER.address)
signed_case("framing-upto-facilitator-zero", "upto", "upto_facilitator_mismatch", facilitator=ZERO_ADDRESS)
signed_case("framing-upto-facilitator-missing", "upto", "upto_facilitator_mismatch", facilitator=None, where="names no facilitator")


def _upto_without_requirements_facilitator() -> tuple[Any, Any]:
    p, r = base("upto")
    return header(p), edited(r, ("extra", "facilitatorAddress"), DELETE)


case("framing-upto-facilitator-none-configured", "upto_facilitator_mismatch", _upto_without_requirements_facilitator)
# The verifier's own list, when given, replaces the requirements' facilitatorAddress.
case(
    "framing-upto-facilitator-not-in-verifier-list",
    "upto_facilitator_mismatch",
    lambda: base("upto"),
    verifier=xv.Verifier(nonce_store=None, facilitator_addresses=[OTHER_FAC]),
)


def _zero_amount(kind: str) -> tuple[Any, Any]:
    p, r = payment(kind, amount=0)
    return header(p), edited(r, ("amount",), "0")


case("framing-permit2-exact-amount-zero", "permit2_invalid_amount", lambda: _zero_amount("permit2"), where="amount of 0")


def _zero_destination(kind: str) -> tuple[Any, Any]:
    p, r = payment(kind, to=ZERO_ADDRESS)
    return header(p), edited(r, ("payTo",), ZERO_ADDRESS)


for kind in PERMIT2_KINDS:
    case(f"framing-{kind}-zero-destination", "permit2_invalid_destination", functools.partial(_zero_destination, kind), where="zero address")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_signing_helpers_match_the_published_vectors_and_eth_account() -> None:
    """The hand-built Permit2 digest is x402-permit2.md §7.5's, and eth_account's encoder's."""
    assert (EXACT_PROXY, UPTO_PROXY) == (xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY)
    f = {
        "from_": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "token": USDC_BASE_SEPOLIA, "amount": 10_000,
        "spender": EXACT_PROXY, "nonce": 33247007178036348590600198031289925668252061821958005840077069883511451257277,
        "valid_before": 1_740_672_154, "to": PAY_TO, "valid_after": 1_740_672_089,
    }  # fmt: skip
    assert permit2_digest(f, 84532).hex() == "21528e1468aac114016416353e2309329f217dc180b21baa1d81cde941095685"
    upto = dict(f, spender=UPTO_PROXY, amount=5_000_000, facilitator=FAC)
    assert permit2_digest(upto, 84532).hex() == "22340f12e045f90a2bdf0bb39dd61d8c4674579544873480e8af265f383d4837"
    for doc in (f, upto):
        typed = permit2_typed_data(authorization("upto" if "facilitator" in doc else "permit2", doc), chain_id=84532)
        msg = encode_typed_data(full_message=typed)
        assert keccak(b"\x19" + msg.version + msg.header + msg.body) == permit2_digest(doc, 84532)
    # The wrong-order and versioned-domain variants really are different digests.
    assert permit2_digest(f, 84532, wrong_order=True) != permit2_digest(f, 84532)
    assert permit2_digest(f, 84532, domain_version="1") != permit2_digest(f, 84532)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["header", "dict", "json-text", "json-bytes"])
def test_base_payments_are_valid(kind: str, form: str) -> None:
    p, r = base(kind)
    given: Any = {"header": header(p), "dict": p, "json-text": json.dumps(p), "json-bytes": json.dumps(p).encode()}[form]
    resp = V.verify(given, r, now=NOW)
    assert resp.is_valid, (resp.invalid_reason, resp.invalid_message)
    assert resp.invalid_reason is None and resp.payer == PAYER.address


def test_case_ids_are_unique_and_items_covered() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    items = {c.id.split("-")[0] for c in CASES}
    # Items 13-32 (22 and 31 through their verify-side form) and 39 all have rejections.
    assert {str(i) for i in range(13, 33)} | {"39", "framing"} <= items


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_rejected(c: Case) -> None:
    resp = c.run()
    assert resp.is_valid is False
    assert resp.invalid_reason == c.code, (resp.invalid_reason, resp.invalid_message)
    assert resp.invalid_reason in CATALOGUE
    assert resp.invalid_message
    if c.where is not None:
        assert c.where in resp.invalid_message, resp.invalid_message


def test_every_payment_code_is_produced() -> None:
    """Every payment-kind code but the listed ones comes out of verify in this file. Runs the
    whole table itself, so test order and selection do not matter."""
    assert set(NOT_PRODUCED_BY_VERIFY) <= PAYMENT_CODES, "a listed exemption is not a payment code any more"
    observed = {c.run().invalid_reason for c in CASES}
    missing = PAYMENT_CODES - set(NOT_PRODUCED_BY_VERIFY) - observed
    assert not missing, f"payment codes no test here produces: {sorted(missing)}"
    stale = set(NOT_PRODUCED_BY_VERIFY) & observed
    assert not stale, f"listed as not produced by verify, but produced: {sorted(stale)}"
    assert observed <= set(CATALOGUE)


# ---- acceptances: the boundaries of the rejections above -------------------------------------


def assert_valid(resp: xv.VerifyResponse) -> None:
    assert resp.is_valid, (resp.invalid_reason, resp.invalid_message)
    assert resp.invalid_reason is None


@pytest.mark.parametrize("kind", KINDS)
def test_13_amount_at_u256_max_is_read_exactly(kind: str) -> None:
    p, r = payment(kind, amount=2**256 - 1)
    r = edited(r, ("maxAmountRequired" if kind == "eip3009_v1" else "amount",), str(2**256 - 1))
    assert_valid(V.verify(header(p), r, now=NOW))


@pytest.mark.parametrize("kind", KINDS)
def test_16_amount_equal_to_requirements_given_as_json_int(kind: str) -> None:
    # Requirements come from the server: a JSON integer amount is read (payloads must use strings).
    p, r = base(kind)
    r = edited(r, ("maxAmountRequired" if kind == "eip3009_v1" else "amount",), 10000)
    assert_valid(V.verify(header(p), r, now=NOW))


@pytest.mark.parametrize("kind", KINDS)
def test_17_pay_to_compared_as_an_address_not_as_text(kind: str) -> None:
    p, r = base(kind)
    for spelling in (PAY_TO.lower(), "0x" + PAY_TO[2:].upper()):
        assert_valid(V.verify(header(p), edited(r, ("payTo",), spelling), now=NOW))


@pytest.mark.parametrize("kind", ("eip3009", "permit2", "upto"))  # v1 has no accepted copy (an unknown_field there)
def test_22_client_sent_domain_hints_do_not_change_the_digest(kind: str) -> None:
    """Not applicable as such: verify takes no domain from the client. The digest is built from
    the server's requirements only: whatever the client's ``accepted`` copy claims about the
    domain (name, version, chain, asset), the verdict on a correct payment is unchanged."""
    p, r = base(kind)
    lies = {"name": "USD Coin", "version": "1", "chainId": 1, "verifyingContract": PERMIT2, "assetTransferMethod": "permit2"}
    forged = edited(edited(edited(p, ("accepted", "extra"), lies), ("accepted", "asset"), USDC_BASE), ("accepted", "amount"), "1")
    forged = edited(forged, ("accepted", "payTo"), OTHER_ADDRESS)
    assert_valid(V.verify(header(forged), r, now=NOW))
    # And the server's own extra for Permit2 is not part of the Permit2 digest either.
    if kind in PERMIT2_KINDS:
        assert_valid(V.verify(header(p), edited(r, ("extra", "version"), "99"), now=NOW))
        assert_valid(V.verify(header(p), edited(r, ("extra", "name"), "Permit2"), now=NOW))


@pytest.mark.parametrize("kind", KINDS)
def test_23_valid_before_at_now_plus_buffer_is_accepted(kind: str) -> None:
    """The SDK's rule is ``validBefore >= now + 6`` (and ``deadline >= now + 6``): now + 6 passes,
    now + 5 does not (the rejections table has now + 5)."""
    p, r = payment(kind, valid_before=NOW + 6)
    assert_valid(V.verify(header(p), r, now=NOW))
    # One second later the same payment is expired.
    resp = V.verify(header(p), r, now=NOW + 1)
    assert (resp.is_valid, resp.invalid_reason) == (False, EXPIRED_CODE[kind])


@pytest.mark.parametrize("kind", PERMIT2_KINDS)
def test_23_permit2_deadline_equal_to_now_with_no_buffer(kind: str) -> None:
    """Permit2 reverts only when ``block.timestamp > deadline``; with time_buffer=0 the verifier's
    ``deadline >= now`` rule accepts deadline == now and refuses now - 1."""
    v0 = xv.Verifier(nonce_store=None, time_buffer=0)
    p, r = payment(kind, valid_before=NOW)
    assert_valid(v0.verify(header(p), r, now=NOW))
    resp = v0.verify(header(p), r, now=NOW + 1)
    assert (resp.is_valid, resp.invalid_reason) == (False, "permit2_deadline_expired")


@pytest.mark.parametrize("kind", KINDS)
def test_24_valid_after_equal_to_now_is_accepted(kind: str) -> None:
    """Documented rule (the SDK's): ``validAfter <= now`` passes. USDC requires now > validAfter,
    so an EIP-3009 payment made this way would revert if settled in this same second; clients
    sign validAfter = now - 600, which never meets the edge."""
    p, r = payment(kind, valid_after=NOW)
    assert_valid(V.verify(header(p), r, now=NOW))
    resp = V.verify(header(p), r, now=NOW - 1)
    assert (resp.is_valid, resp.invalid_reason) == (False, NOT_YET_CODE[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_25_window_exactly_max_validity_is_accepted(kind: str) -> None:
    p, r = payment(kind, valid_before=NOW + 300)
    assert_valid(V_MAX_300.verify(header(p), r, now=NOW))
    p, r = payment(kind, valid_before=NOW + 301)
    assert_valid(V.verify(header(p), r, now=NOW))  # no cap by default


@pytest.mark.parametrize("kind", PERMIT2_KINDS)
@pytest.mark.parametrize("nonce", [0, 1, 2**256 - 1])
def test_26_permit2_nonce_range_ends_are_accepted(kind: str, nonce: int) -> None:
    p, r = payment(kind, nonce=nonce)
    assert_valid(V.verify(header(p), r, now=NOW))


@pytest.mark.parametrize("kind", EIP3009_KINDS)
@pytest.mark.parametrize("nonce", ["0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "AB" * 32])
def test_26_eip3009_nonce_bytes32_spellings_are_accepted(kind: str, nonce: str) -> None:
    p, r = payment(kind, nonce=nonce.lower())
    p = edited(p, auth_path(kind, "nonce"), nonce)
    assert_valid(V.verify(header(p), r, now=NOW))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case_", ["lower", "upper"])
def test_27_all_lower_and_all_upper_addresses_are_accepted(kind: str, case_: str) -> None:
    p, r = base(kind)
    for name in ADDRESS_FIELDS[kind]:
        good = _address_value(kind, name)
        spelled = good.lower() if case_ == "lower" else "0x" + good[2:].upper()
        resp = V.verify(header(edited(p, auth_path(kind, name), spelled)), r, now=NOW)
        assert_valid(resp)
        assert resp.payer == PAYER.address


@pytest.mark.parametrize("kind", ("eip3009", "permit2", "upto"))  # v1 has no resource / extensions members
def test_29_optional_top_level_members_are_accepted(kind: str) -> None:
    p, r = base(kind)
    assert_valid(V.verify(header(edited(p, ("extensions",), {"payment-identifier": {"id": "pay_x"}})), r, now=NOW))
    assert_valid(V.verify(header(edited(p, ("resource",), DELETE)), r, now=NOW))


def test_framing_upto_amount_zero_is_accepted() -> None:
    """Only the exact proxy refuses 0 (InvalidAmount); an upto session may settle 0."""
    p, r = payment("upto", amount=0)
    assert_valid(V.verify(header(p), edited(r, ("amount",), "0"), now=NOW))


@pytest.mark.parametrize("kind", KINDS)
def test_framing_allowed_networks_accept_their_own(kind: str) -> None:
    v = xv.Verifier(nonce_store=None, networks=["eip155:84532", "base"])
    assert_valid(v.verify(header(base(kind)[0]), base(kind)[1], now=NOW))


@pytest.mark.parametrize("kind", ("eip3009", "upto"))
def test_39_payload_exactly_at_the_limit_is_accepted(kind: str) -> None:
    r = base(kind)[1]
    assert_valid(V_SMALL.verify(padded_json(kind, SMALL_LIMIT), r, now=NOW))
    assert_valid(V_SMALL.verify(b64(padded_json(kind, SMALL_LIMIT)), r, now=NOW))


def test_39_ten_megabytes_is_refused_by_size_alone() -> None:
    """A 10 MB header is refused with payload_too_large whatever it holds: the same code for
    valid base64, for characters base64 never uses, and for JSON text."""
    r = base("eip3009")[1]
    for blob in ("A" * TEN_MB, "!" * TEN_MB, "{" + " " * TEN_MB + "}", b"\xff" * TEN_MB):
        resp = V.verify(blob, r, now=NOW)
        assert (resp.is_valid, resp.invalid_reason) == (False, "payload_too_large")
        assert resp.payer is None and resp.authorization is None
