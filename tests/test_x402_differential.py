"""Differential: ``x402_verify.Verifier`` against the x402 Python SDK 2.25's own facilitator.

The oracle is the SDK's verify code, unchanged: ``exact.facilitator.ExactEvmScheme``,
``upto.facilitator.UptoEvmScheme`` and ``exact.v1.facilitator.ExactEvmSchemeV1``, picked by the
payload's scheme as ``x402FacilitatorSync._verify_v2`` does (its network-pattern gate is left
out, so the mechanisms' own network checks are what gets compared). They run against a stub
``FacilitatorEvmSigner`` describing a healthy chain: the payer has no code (an EOA), the asset
is a deployed contract, balances and Permit2 allowances are ample, every simulation succeeds,
no nonce is used. Signature checks are real: the SDK routes them through its own
``verify_universal_signature`` / ``verify_typed_data_strict`` -> ``verify_eoa_signature``
(eth_keys recovery), and the stub's ``verify_typed_data`` delegates to the same function. The
SDK's clock (``time.time`` in its facilitator modules) is frozen to the ``now`` given to ours.

Payloads are made by the SDK's client code (``x402ClientSync`` with the exact and upto EVM
client schemes), for EIP-3009 exact, Permit2 exact and Permit2 upto (and the same EIP-3009
authorizations in x402 v1 framing), with a few random keys each; every case is one mutation of
such a payload, its requirements, or the clock.

For every case the verdict *and* the reason must match the SDK, except:

- ``DIVERGENCES``: where our default policy follows the settling contract (USDC FiatToken /
  Permit2) and the SDK does not, where our documented strict parsing refuses what the SDK's
  lenient parsing lets through, where the server's requirements (not the payload) choose the
  flow, where only the label of a refusal differs, and one documented leniency (CAIP-2 in v1).
  Each entry names the rule that decides it; a case diverges if and only if it is listed (so
  the table can neither hide a new divergence nor keep a stale one).
- ``SDK_RAISES``: where the SDK raises instead of answering (its pydantic / ``int()`` /
  base64 parsing fails). Ours must still answer ``is_valid=False``; the code it gives is
  recorded there, and a case is listed if and only if the SDK raises on it.

Also here: the published vectors (x402-permit2.md §7.3, §7.5) verify on both sides; the batch
law ``verify_batch(xs, threads=t)[i] == verify(xs[i])`` over mixes of these cases (Hypothesis);
and our v1 network-name table against the Python SDK's, with every difference listed.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import random
import time as _real_time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from x402 import x402ClientSync
from x402.http.utils import decode_payment_signature_header
from x402.mechanisms.evm.exact import facilitator as sdk_exact_facilitator
from x402.mechanisms.evm.exact import permit2_utils as sdk_exact_permit2
from x402.mechanisms.evm.exact.client import ExactEvmScheme as ExactClient
from x402.mechanisms.evm.exact.v1 import facilitator as sdk_v1_facilitator
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import ExactEIP3009Payload, ExactPermit2Payload, UptoPermit2Payload
from x402.mechanisms.evm.upto import client as sdk_upto_client
from x402.mechanisms.evm.upto import facilitator as sdk_upto_facilitator
from x402.mechanisms.evm.upto import permit2_utils as sdk_upto_permit2
from x402.mechanisms.evm.upto.client import UptoEvmScheme as UptoClient
from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS as SDK_V1_NETWORK_CHAIN_IDS
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo, SchemeNotFoundError
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequirementsV1

import x402_verify as xv
from payments import (
    AUTH_PATHS,
    EIP3009_KINDS,
    ERC6492_MAGIC,
    OPG_BASE,
    OTHER_ADDRESS,
    OTHER_FAC,
    PAY_TO,
    PERMIT2,
    PERMIT2_KINDS,
    USDC_BASE_SEPOLIA,
    auth_member,
    compact,
    high_s_twin,
    requirements,
)
from sdk_stub import FAC, U256_MAX, StubChainSigner

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

KINDS = ("eip3009", "permit2", "upto", "eip3009_v1")
V2_KINDS = ("eip3009", "permit2", "upto")
ALL = KINDS

# A few random keys per kind; the seed is fixed so a failure reproduces (override to explore).
SEED = int(os.environ.get("X402_DIFF_SEED", "402402"))
KEYS_PER_KIND = 3

# --------------------------------------------------------------------------------------------
# The oracle: the SDK's facilitator over a stub chain, with a frozen clock
# --------------------------------------------------------------------------------------------


class FrozenClock:
    """Stands in for the ``time`` module inside the SDK's facilitator modules."""

    def __init__(self) -> None:
        self.now = 0

    def time(self) -> float:
        return float(self.now)

    def __getattr__(self, name: str) -> Any:
        return getattr(_real_time, name)


CLOCK = FrozenClock()
SDK_CLOCK_MODULES = (sdk_exact_facilitator, sdk_exact_permit2, sdk_upto_permit2, sdk_v1_facilitator)


STUB = StubChainSigner([USDC_BASE_SEPOLIA, OPG_BASE, PERMIT2, xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY])
SDK_MECHANISMS: dict[int, dict[str, Any]] = {
    2: {
        "exact": sdk_exact_facilitator.ExactEvmScheme(STUB),
        "upto": sdk_upto_facilitator.UptoEvmScheme(STUB),
    },
    1: {"exact": sdk_v1_facilitator.ExactEvmSchemeV1(STUB)},
}


def sdk_outcome(payload: str | bytes | dict[str, Any], requirements: dict[str, Any], now: int, payers: list[str] | None = None) -> str:
    """The SDK's verdict as ``"valid"``, its invalid reason, or ``"raises:<ExceptionType>"``;
    a valid answer's payer is appended to ``payers``."""
    CLOCK.now = now
    try:
        if isinstance(payload, str):
            pp = decode_payment_signature_header(payload)
        else:
            data: dict[str, Any] = json.loads(payload) if isinstance(payload, bytes) else payload
            pp = (PaymentPayloadV1 if data.get("x402Version", 2) == 1 else PaymentPayload).model_validate(data)
        version = 1 if pp.x402_version == 1 else 2  # x402FacilitatorBase._verify_core's routing
        req = (PaymentRequirementsV1 if version == 1 else PaymentRequirements).model_validate(requirements)
        scheme = pp.get_scheme()
        mechanism = SDK_MECHANISMS[version].get(scheme)
        if mechanism is None:
            raise SchemeNotFoundError(scheme, pp.get_network())
        resp = mechanism.verify(pp, req)
    except ImportError:
        # The environment, not a verdict: an SDK module failed to import. Surface it whole.
        raise
    except Exception as exc:  # the SDK failed to answer
        return f"raises:{type(exc).__name__}"
    if resp.is_valid:
        assert resp.invalid_reason is None
        if payers is not None:
            payers.append(str(resp.payer))
        return "valid"
    assert resp.invalid_reason
    return str(resp.invalid_reason)


VERIFIER = xv.Verifier(nonce_store=None, facilitator_addresses=[FAC])
CATALOGUE = {code for code, _kind, _desc in xv.error_codes()}


def our_outcome(payload: str | bytes | dict[str, Any], requirements: dict[str, Any], now: int, payers: list[str] | None = None) -> str:
    r = VERIFIER.verify(payload, requirements, now=now)
    if r.is_valid:
        assert r.invalid_reason is None and r.payer is not None
        if payers is not None:
            payers.append(r.payer)
        return "valid"
    assert r.invalid_reason in CATALOGUE, r
    return str(r.invalid_reason)


@pytest.fixture(scope="module", autouse=True)
def frozen_sdk_clock() -> Iterator[None]:
    """Freezes the SDK's clock (and quiets its per-payment warning logs) for this module."""
    sdk_log = logging.getLogger("x402")
    level = sdk_log.level
    sdk_log.setLevel(logging.CRITICAL)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for module in SDK_CLOCK_MODULES:
                mp.setattr(module, "time", CLOCK)
            yield
    finally:
        sdk_log.setLevel(level)


# --------------------------------------------------------------------------------------------
# Payloads, made by the SDK's client
# --------------------------------------------------------------------------------------------


def requirements_for(kind: str, amount: int | str = 10000) -> PaymentRequirements:
    """The v2 requirements a payment of ``kind`` is signed for (v1 payments are signed as v2)."""
    return PaymentRequirements.model_validate(requirements("eip3009" if kind in EIP3009_KINDS else kind, amount))


def sdk_client(acct: LocalAccount) -> x402ClientSync:
    client = x402ClientSync()
    client.set_spend_controls(False)
    client.register("eip155:*", ExactClient(EthAccountSigner(acct)))
    client.register("eip155:*", UptoClient(EthAccountSigner(acct)))
    return client


@dataclass
class Base:
    """One SDK-made payment and what it was made against."""

    kind: str
    key: int
    acct: LocalAccount
    other: LocalAccount  # a second key, for "signed by another key"
    sign_req: PaymentRequirements  # v2 requirements the signature was made for
    payload: dict[str, Any]
    requirements: dict[str, Any]
    now: int  # the second it was made: validAfter <= now, validBefore = now + 300

    @property
    def valid_before(self) -> int:
        return int(field_value(self.kind, self.payload, "validBefore"))


def make_payment(kind: str, acct: LocalAccount, amount: int | str = 10000) -> tuple[PaymentRequirements, dict[str, Any], dict[str, Any]]:
    """(v2 requirements signed for, payload dict, requirements dict) for one kind."""
    req = requirements_for(kind, amount)
    pp = sdk_client(acct).create_payment_payload(PaymentRequired(x402_version=2, accepts=[req], resource=ResourceInfo(url="https://api.example/x")))
    payload = pp.model_dump(by_alias=True, exclude_none=True)
    if kind == "eip3009_v1":
        payload = {"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": payload["payload"]}
        return req, payload, requirements("eip3009_v1", req.amount)
    return req, payload, req.model_dump(by_alias=True, exclude_none=True)


def make_base(kind: str, key: int, rng: random.Random, amount: int | str = 10000) -> Base:
    acct = Account.from_key(rng.randbytes(32))
    other = Account.from_key(rng.randbytes(32))
    req, payload, requirements = make_payment(kind, acct, amount)
    before = int(field_value(kind, payload, "validBefore"))
    return Base(kind, key, acct, other, req, payload, requirements, before - req.max_timeout_seconds)


def resign(b: Base, payload: dict[str, Any], acct: LocalAccount | None = None, req: PaymentRequirements | None = None) -> None:
    """Signs ``payload``'s authorization again in place, with the SDK's own client signing code."""
    acct = acct or b.acct
    req = req or b.sign_req
    inner = payload["payload"]
    if b.kind in EIP3009_KINDS:
        eip3009 = ExactEIP3009Payload.from_dict(inner).authorization
        signature = ExactClient(EthAccountSigner(acct))._sign_authorization(eip3009, req)
    elif b.kind == "permit2":
        exact = ExactPermit2Payload.from_dict(inner).permit2_authorization
        signature = sdk_exact_permit2._sign_permit2_authorization(EthAccountSigner(acct), exact, req)
    else:
        upto = UptoPermit2Payload.from_dict(inner).permit2_authorization
        signature = sdk_upto_client._sign_upto_permit2_authorization(EthAccountSigner(acct), upto, req)
    inner["signature"] = signature


# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------

def authorization(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    inner = payload["payload"]
    auth: dict[str, Any] = inner[auth_member(kind)]
    return auth


def auth_field(kind: str, payload: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """The dict holding an authorization field, and its key."""
    *parents, leaf = AUTH_PATHS[kind][name]
    node: dict[str, Any] = authorization(kind, payload)
    for p in parents:
        node = node[p]
    return node, leaf


def field_value(kind: str, payload: dict[str, Any], name: str) -> Any:
    node, leaf = auth_field(kind, payload, name)
    return node[leaf]


def header(payload: dict[str, Any]) -> str:
    return xv.encode_payment_header(payload)


def sig(payload: dict[str, Any]) -> bytes:
    return bytes.fromhex(payload["payload"]["signature"].removeprefix("0x"))


def set_sig(payload: dict[str, Any], raw: bytes) -> None:
    payload["payload"]["signature"] = "0x" + raw.hex()


def flip_bit(raw: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(raw)
    out[byte] ^= 1 << bit
    return bytes(out)


def accepted(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return payload if kind == "eip3009_v1" else payload["accepted"]


def bad_checksum(address: str) -> str:
    """The address with the case of its first letter flipped (an EIP-55 checksum error)."""
    for i, c in enumerate(address[2:], start=2):
        if c.isalpha():
            return address[:i] + c.swapcase() + address[i + 1 :]
    raise AssertionError(f"{address} has no letters")


Input = tuple[Any, dict[str, Any], int]  # (payload as handed to both, requirements, now)
Mutation = Callable[[Base], Input]
MUTATIONS: dict[str, tuple[tuple[str, ...], Mutation]] = {}


def mutation(*kinds: str) -> Callable[[Mutation], Mutation]:
    def register(fn: Mutation) -> Mutation:
        name = fn.__name__.removeprefix("m_")
        assert name not in MUTATIONS, name
        MUTATIONS[name] = (kinds, fn)
        return fn

    return register


def edit_auth(b: Base, name: str, value: Any) -> dict[str, Any]:
    p = copy.deepcopy(b.payload)
    node, leaf = auth_field(b.kind, p, name)
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value(node[leaf]) if callable(value) else value
    return p


DELETE = object()


def edit_req(b: Base, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    r = copy.deepcopy(b.requirements)
    fn(r)
    return r


def amount_key(b: Base) -> str:
    return "maxAmountRequired" if b.kind == "eip3009_v1" else "amount"


# ---- the untouched payment, in each input form ------------------------------------------------


@mutation(*ALL)
def m_untouched(b: Base) -> Input:
    return header(b.payload), b.requirements, b.now


@mutation(*ALL)
def m_untouched_dict(b: Base) -> Input:
    return copy.deepcopy(b.payload), b.requirements, b.now


@mutation(*V2_KINDS)
def m_untouched_json_bytes(b: Base) -> Input:
    return json.dumps(b.payload).encode(), b.requirements, b.now


# ---- every authorization field changed (the signature no longer matches) ----------------------


@mutation(*ALL)
def m_field_from(b: Base) -> Input:
    return header(edit_auth(b, "from", OTHER_ADDRESS)), b.requirements, b.now


@mutation(*ALL)
def m_field_to(b: Base) -> Input:
    return header(edit_auth(b, "to", OTHER_ADDRESS)), b.requirements, b.now


@mutation(*ALL)
def m_field_amount(b: Base) -> Input:
    return header(edit_auth(b, "amount", lambda v: str(int(v) + 1))), b.requirements, b.now


@mutation(*ALL)
def m_field_valid_after(b: Base) -> Input:
    return header(edit_auth(b, "validAfter", lambda v: str(int(v) + 1))), b.requirements, b.now


@mutation(*ALL)
def m_field_valid_before(b: Base) -> Input:
    return header(edit_auth(b, "validBefore", lambda v: str(int(v) + 1))), b.requirements, b.now


@mutation(*EIP3009_KINDS)
def m_field_nonce_bytes32(b: Base) -> Input:
    return header(edit_auth(b, "nonce", lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"))), b.requirements, b.now


@mutation(*EIP3009_KINDS)
def m_nonce_uppercase_hex(b: Base) -> Input:
    return header(edit_auth(b, "nonce", lambda v: "0x" + v[2:].upper())), b.requirements, b.now


@mutation(*EIP3009_KINDS)
def m_nonce_31_bytes(b: Base) -> Input:
    return header(edit_auth(b, "nonce", lambda v: v[:-2])), b.requirements, b.now


@mutation(*PERMIT2_KINDS)
def m_field_nonce_uint(b: Base) -> Input:
    return header(edit_auth(b, "nonce", lambda v: str((int(v) + 1) % 2**256))), b.requirements, b.now


@mutation(*PERMIT2_KINDS)
def m_field_token(b: Base) -> Input:
    return header(edit_auth(b, "token", USDC_BASE_SEPOLIA)), b.requirements, b.now


@mutation(*PERMIT2_KINDS)
def m_field_spender_other_proxy(b: Base) -> Input:
    other = xv.UPTO_PERMIT2_PROXY if b.kind == "permit2" else xv.EXACT_PERMIT2_PROXY
    return header(edit_auth(b, "spender", other)), b.requirements, b.now


@mutation(*PERMIT2_KINDS)
def m_field_spender_random(b: Base) -> Input:
    return header(edit_auth(b, "spender", OTHER_ADDRESS)), b.requirements, b.now


@mutation(*PERMIT2_KINDS)
def m_field_spender_lowercase(b: Base) -> Input:
    return header(edit_auth(b, "spender", str.lower)), b.requirements, b.now


@mutation("upto")
def m_field_facilitator(b: Base) -> Input:
    return header(edit_auth(b, "facilitator", OTHER_FAC)), b.requirements, b.now


@mutation("upto")
def m_field_facilitator_resigned(b: Base) -> Input:
    p = edit_auth(b, "facilitator", OTHER_FAC)
    resign(b, p)
    return header(p), b.requirements, b.now


@mutation("upto")
def m_field_facilitator_lowercase(b: Base) -> Input:
    return header(edit_auth(b, "facilitator", str.lower)), b.requirements, b.now


@mutation("upto")
def m_field_facilitator_missing(b: Base) -> Input:
    return header(edit_auth(b, "facilitator", DELETE)), b.requirements, b.now


@mutation("upto")
def m_requirements_facilitator_address_other(b: Base) -> Input:
    # The verifier's own facilitator list decides, not the requirements' extra (SDK: get_addresses()).
    return header(b.payload), edit_req(b, lambda r: r["extra"].update(facilitatorAddress=OTHER_FAC)), b.now


@mutation("permit2")
def m_field_facilitator_added(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    authorization(b.kind, p)["witness"]["facilitator"] = FAC
    return header(p), b.requirements, b.now


# ---- signatures ---------------------------------------------------------------------------------


@mutation(*ALL)
def m_sig_other_key(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    resign(b, p, acct=b.other)  # from stays the payer
    return header(p), b.requirements, b.now


for _name, _byte, _bit in [("r_low", 5, 3), ("r_top", 0, 7), ("s_low", 40, 0), ("s_top", 32, 7), ("v_low", 64, 0), ("v_bit1", 64, 1)]:

    def _flip(b: Base, byte: int = _byte, bit: int = _bit) -> Input:
        p = copy.deepcopy(b.payload)
        set_sig(p, flip_bit(sig(p), byte, bit))
        return header(p), b.requirements, b.now

    _flip.__name__ = f"m_sig_flip_{_name}"
    mutation(*ALL)(_flip)


@mutation(*ALL)
def m_sig_truncated_64(b: Base) -> Input:
    # r || s without v. For Permit2 that *is* the compact form when v = 27, so the case makes it
    # invalid either way by forcing the missing parity to be the wrong one.
    p = copy.deepcopy(b.payload)
    raw = sig(p)
    if b.kind in PERMIT2_KINDS and raw[64] == 27:
        raw = raw[:32] + (int.from_bytes(raw[32:64], "big") | 1 << 255).to_bytes(32, "big") + raw[64:]
    set_sig(p, raw[:64])
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_truncated_63(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    set_sig(p, sig(p)[:63])
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_truncated_32(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    set_sig(p, sig(p)[:32])
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_empty(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["payload"]["signature"] = "0x"
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_missing(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    del p["payload"]["signature"]
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_extended_66(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    set_sig(p, sig(p) + b"\x00")
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_erc6492_wrapped(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    wrapped = abi_encode(["address", "bytes", "bytes"], [OTHER_ADDRESS, b"\x12\x34", sig(p)]) + ERC6492_MAGIC
    set_sig(p, wrapped)
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_high_s_twin(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    set_sig(p, high_s_twin(sig(p)))
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_compact_64(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    set_sig(p, compact(sig(p)))
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_v01(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    raw = sig(p)
    set_sig(p, raw[:64] + bytes([raw[64] - 27]))
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_v29(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    set_sig(p, sig(p)[:64] + b"\x1d")
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_no_0x(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["payload"]["signature"] = p["payload"]["signature"][2:]
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_uppercase_hex(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["payload"]["signature"] = "0x" + p["payload"]["signature"][2:].upper()
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_sig_not_hex(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["payload"]["signature"] = "0x" + "zz" * 65
    return header(p), b.requirements, b.now


# ---- the clock ------------------------------------------------------------------------------


@mutation(*ALL)
def m_now_at_buffer_edge(b: Base) -> Input:
    return header(b.payload), b.requirements, b.valid_before - 6


@mutation(*ALL)
def m_now_expired_in_buffer(b: Base) -> Input:
    return header(b.payload), b.requirements, b.valid_before - 5


@mutation(*ALL)
def m_now_expired(b: Base) -> Input:
    return header(b.payload), b.requirements, b.valid_before + 1


@mutation(*ALL)
def m_valid_after_future(b: Base) -> Input:
    return header(edit_auth(b, "validAfter", str(b.now + 100))), b.requirements, b.now


@mutation(*ALL)
def m_resigned_valid_after_edge(b: Base) -> Input:
    p = edit_auth(b, "validAfter", str(b.now - 600))
    resign(b, p)
    return header(p), b.requirements, b.now - 600


@mutation(*ALL)
def m_resigned_not_yet_valid(b: Base) -> Input:
    p = edit_auth(b, "validAfter", str(b.now - 600))
    resign(b, p)
    return header(p), b.requirements, b.now - 601


@mutation(*ALL)
def m_resigned_valid_before_max_uint256(b: Base) -> Input:
    p = edit_auth(b, "validBefore", str(U256_MAX))
    resign(b, p)
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_resigned_window_inverted(b: Base) -> Input:
    # validAfter > validBefore: dead on-chain; the time checks see it whatever now is.
    p = edit_auth(b, "validAfter", str(b.valid_before + 1))
    resign(b, p)
    return header(p), b.requirements, b.now


# ---- networks and schemes -------------------------------------------------------------------


@mutation(*V2_KINDS)
def m_accepted_network_other(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["accepted"]["network"] = "eip155:1"
    return header(p), b.requirements, b.now


@mutation(*V2_KINDS)
def m_requirements_network_other(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r.update(network="eip155:1")), b.now


@mutation(*V2_KINDS)
def m_both_networks_other(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["accepted"]["network"] = "eip155:1"
    return header(p), edit_req(b, lambda r: r.update(network="eip155:1")), b.now


@mutation(*V2_KINDS)
def m_both_networks_v1_name(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    name = "base-sepolia" if b.kind == "eip3009" else "base"
    p["accepted"]["network"] = name
    return header(p), edit_req(b, lambda r: r.update(network=name)), b.now


@mutation(*V2_KINDS)
def m_both_networks_caip2_leading_zero(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    network = "eip155:0" + p["accepted"]["network"].removeprefix("eip155:")
    p["accepted"]["network"] = network
    return header(p), edit_req(b, lambda r: r.update(network=network)), b.now


@mutation("eip3009_v1")
def m_v1_network_other_name(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["network"] = "base"
    return header(p), b.requirements, b.now


@mutation("eip3009_v1")
def m_v1_both_networks_caip2(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["network"] = "eip155:84532"
    return header(p), edit_req(b, lambda r: r.update(network="eip155:84532")), b.now


@mutation("eip3009_v1")
def m_v1_extra_json_string(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r.update(extra=json.dumps(r["extra"]))), b.now


@mutation(*ALL)
def m_accepted_scheme_other(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    accepted(b.kind, p)["scheme"] = "exact" if b.kind == "upto" else "upto"
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_accepted_scheme_unknown(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    accepted(b.kind, p)["scheme"] = "deferred"
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_requirements_scheme_other(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r.update(scheme="exact" if b.kind == "upto" else "upto")), b.now


@mutation(*V2_KINDS)
def m_accepted_amount_and_pay_to_changed(b: Base) -> Input:
    # Only scheme and network of `accepted` are read by either side.
    p = copy.deepcopy(b.payload)
    p["accepted"].update(amount="1", payTo=OTHER_ADDRESS)
    return header(p), b.requirements, b.now


@mutation(*V2_KINDS)
def m_requirements_transfer_method_mismatch(b: Base) -> Input:
    method = "permit2" if b.kind == "eip3009" else "eip3009"
    return header(b.payload), edit_req(b, lambda r: r["extra"].update(assetTransferMethod=method)), b.now


# ---- amounts --------------------------------------------------------------------------------


@mutation(*ALL)
def m_requirements_amount_differs(b: Base) -> Input:
    k = amount_key(b)
    return header(b.payload), edit_req(b, lambda r: r.update({k: str(int(r[k]) + 1)})), b.now


@mutation(*ALL)
def m_amount_2pow256(b: Base) -> Input:
    return header(edit_auth(b, "amount", str(2**256))), b.requirements, b.now


@mutation(*ALL)
def m_amount_negative(b: Base) -> Input:
    return header(edit_auth(b, "amount", "-1")), b.requirements, b.now


@mutation(*ALL)
def m_amount_and_requirements_2pow256(b: Base) -> Input:
    k = amount_key(b)
    return header(edit_auth(b, "amount", str(2**256))), edit_req(b, lambda r: r.update({k: str(2**256)})), b.now


@mutation(*ALL)
def m_amount_and_requirements_negative(b: Base) -> Input:
    k = amount_key(b)
    return header(edit_auth(b, "amount", "-10000")), edit_req(b, lambda r: r.update({k: "-10000"})), b.now


@mutation(*ALL)
def m_amount_leading_zero(b: Base) -> Input:
    return header(edit_auth(b, "amount", lambda v: "0" + v)), b.requirements, b.now


@mutation(*ALL)
def m_amount_underscore(b: Base) -> Input:
    return header(edit_auth(b, "amount", lambda v: v[:1] + "_" + v[1:])), b.requirements, b.now


@mutation(*ALL)
def m_amount_hex(b: Base) -> Input:
    return header(edit_auth(b, "amount", lambda v: hex(int(v)))), b.requirements, b.now


@mutation(*ALL)
def m_amount_json_number(b: Base) -> Input:
    return header(edit_auth(b, "amount", int)), b.requirements, b.now


@mutation(*V2_KINDS)
def m_amount_json_float(b: Base) -> Input:
    text = json.dumps(edit_auth(b, "amount", int))
    k = '"value": ' if b.kind == "eip3009" else '"amount": '
    i = text.index(k, text.index('"payload"')) + len(k)
    j = text.index("0", i)
    end = min(x for x in (text.find(",", i), text.find("}", i)) if x >= 0)
    assert j < end
    return (text[:end] + ".0" + text[end:]).encode(), b.requirements, b.now


@mutation(*V2_KINDS)
def m_json_duplicate_amount_key(b: Base) -> Input:
    text = json.dumps(b.payload)
    k = '"value": ' if b.kind == "eip3009" else '"amount": '
    i = text.index(k, text.index('"payload"'))
    return (text[:i] + k + '"1", ' + text[i:]).encode(), b.requirements, b.now


# ---- addresses ------------------------------------------------------------------------------


@mutation(*ALL)
def m_to_lowercase(b: Base) -> Input:
    return header(edit_auth(b, "to", str.lower)), b.requirements, b.now


@mutation(*ALL)
def m_to_bad_checksum(b: Base) -> Input:
    return header(edit_auth(b, "to", bad_checksum)), b.requirements, b.now


@mutation(*ALL)
def m_to_no_0x(b: Base) -> Input:
    return header(edit_auth(b, "to", lambda v: v[2:])), b.requirements, b.now


@mutation(*ALL)
def m_from_lowercase(b: Base) -> Input:
    return header(edit_auth(b, "from", str.lower)), b.requirements, b.now


@mutation(*ALL)
def m_from_bad_checksum(b: Base) -> Input:
    return header(edit_auth(b, "from", bad_checksum)), b.requirements, b.now


@mutation(*ALL)
def m_from_zero_address(b: Base) -> Input:
    return header(edit_auth(b, "from", "0x" + "00" * 20)), b.requirements, b.now


@mutation(*ALL)
def m_requirements_pay_to_other(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r.update(payTo=OTHER_ADDRESS)), b.now


@mutation(*ALL)
def m_requirements_pay_to_lowercase(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r.update(payTo=r["payTo"].lower())), b.now


@mutation(*ALL)
def m_requirements_pay_to_bad_checksum(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r.update(payTo=bad_checksum(r["payTo"]))), b.now


@mutation(*ALL)
def m_requirements_asset_other(b: Base) -> Input:
    other = OPG_BASE if b.kind in EIP3009_KINDS else USDC_BASE_SEPOLIA
    return header(b.payload), edit_req(b, lambda r: r.update(asset=other)), b.now


@mutation(*EIP3009_KINDS)
def m_requirements_domain_missing(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r["extra"].pop("name")), b.now


@mutation(*EIP3009_KINDS)
def m_requirements_domain_version_missing(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r["extra"].pop("version")), b.now


@mutation(*EIP3009_KINDS)
def m_requirements_domain_name_other(b: Base) -> Input:
    return header(b.payload), edit_req(b, lambda r: r["extra"].update(name="USD Coin")), b.now


# ---- missing and unknown members --------------------------------------------------------------

for _field in ("from", "to", "amount", "validAfter", "validBefore", "nonce", "token", "spender"):

    def _missing(b: Base, field: str = _field) -> Input:
        return header(edit_auth(b, field, DELETE)), b.requirements, b.now

    _missing.__name__ = f"m_missing_{_field}"
    mutation(*(PERMIT2_KINDS if _field in ("token", "spender") else ALL))(_missing)


@mutation(*PERMIT2_KINDS)
def m_missing_permitted(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    del authorization(b.kind, p)["permitted"]
    return header(p), b.requirements, b.now


@mutation(*PERMIT2_KINDS)
def m_missing_witness(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    del authorization(b.kind, p)["witness"]
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_missing_authorization(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["payload"] = {"signature": p["payload"]["signature"]}
    return header(p), b.requirements, b.now


@mutation(*V2_KINDS)
def m_missing_accepted(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    del p["accepted"]
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_missing_payload(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    del p["payload"]
    return header(p), b.requirements, b.now


@mutation(*V2_KINDS)
def m_missing_x402_version(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    del p["x402Version"]
    return header(p), b.requirements, b.now


@mutation(*V2_KINDS)
def m_x402_version_string(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["x402Version"] = "2"
    return header(p), b.requirements, b.now


@mutation(*V2_KINDS)
def m_x402_version_3(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["x402Version"] = 3
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_unknown_authorization_member(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    authorization(b.kind, p)["memo"] = "unsigned"
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_unknown_payload_member(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["payload"]["memo"] = "unsigned"
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_unknown_top_member(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    p["memo"] = "unsigned"
    return header(p), b.requirements, b.now


@mutation(*ALL)
def m_both_authorization_kinds(b: Base) -> Input:
    p = copy.deepcopy(b.payload)
    inner = p["payload"]
    if "authorization" in inner:
        inner["permit2Authorization"] = {"from": inner["authorization"]["from"]}
    else:
        inner["authorization"] = {"from": inner["permit2Authorization"]["from"]}
    return header(p), b.requirements, b.now


# ---- the header itself ------------------------------------------------------------------------


@mutation(*ALL)
def m_header_not_base64(b: Base) -> Input:
    return "!!!!", b.requirements, b.now


@mutation(*ALL)
def m_header_base64_not_json(b: Base) -> Input:
    return base64.b64encode(b"not json").decode(), b.requirements, b.now


@mutation(*ALL)
def m_header_base64_json_array(b: Base) -> Input:
    return base64.b64encode(b"[1, 2]").decode(), b.requirements, b.now


@mutation(*ALL)
def m_header_truncated_1(b: Base) -> Input:
    return header(b.payload)[:-1], b.requirements, b.now


@mutation(*ALL)
def m_header_truncated_4(b: Base) -> Input:
    return header(b.payload)[:-4], b.requirements, b.now


@mutation(*ALL)
def m_header_stray_character(b: Base) -> Input:
    h = header(b.payload)
    return h[:40] + "*" + h[40:], b.requirements, b.now


@mutation(*ALL)
def m_header_line_wrapped(b: Base) -> Input:
    h = header(b.payload)
    return "\n".join(h[i : i + 76] for i in range(0, len(h), 76)), b.requirements, b.now


@mutation(*V2_KINDS)
def m_header_base64url(b: Base) -> Input:
    # '~' in the (unsigned, unread) resource URL puts a '/' or '+' into the base64; then url-encode.
    p = copy.deepcopy(b.payload)
    p["resource"]["url"] += "?q=~~~"
    h = header(p)
    assert "+" in h or "/" in h
    return h.replace("+", "-").replace("/", "_"), b.requirements, b.now


# --------------------------------------------------------------------------------------------
# Special payments: amounts the SDK client signs itself
# --------------------------------------------------------------------------------------------

SPECIAL_AMOUNTS = {"signed_amount_max_uint256": U256_MAX, "signed_amount_zero": 0}


# --------------------------------------------------------------------------------------------
# The case list
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str
    key: int
    name: str
    payload: Any
    requirements: dict[str, Any]
    now: int

    @property
    def id(self) -> str:
        return f"{self.kind}-k{self.key}-{self.name}"


def build_cases() -> list[Case]:
    rng = random.Random(SEED)
    cases: list[Case] = []
    for kind in KINDS:
        for key in range(KEYS_PER_KIND):
            b = make_base(kind, key, rng)
            for name, (kinds, fn) in MUTATIONS.items():
                if kind in kinds:
                    payload, requirements, now = fn(b)
                    cases.append(Case(kind, key, name, payload, requirements, now))
            for name, amount in SPECIAL_AMOUNTS.items():
                s = make_base(kind, key, random.Random(f"{SEED}-{kind}-{key}-{name}"), amount)
                cases.append(Case(kind, key, name, header(s.payload), s.requirements, s.now))
    return cases


CASES = build_cases()
CASE_NAMES = {(c.kind, c.name) for c in CASES}


# --------------------------------------------------------------------------------------------
# Where we and the SDK differ on purpose (the rule that decides each is given)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    case: str
    kinds: tuple[str, ...]
    sdk: str
    ours: str
    why: str


# The rules the entries below cite: the settling contract's, or our documented strictness.
USDC_LOW_S = "USDC FiatToken ECRecover.recover reverts when s > n/2 (\"invalid signature 's' value\"); the SDK's eth_keys recovery takes high s"
USDC_V = "USDC ECRecover.recover requires v in {27, 28}; the SDK maps v 0/1 to a recovery id and accepts them"
PERMIT2_V = "Permit2 SignatureVerification hands v to ecrecover, which returns 0 for v not in {27, 28} (InvalidSignature); the SDK accepts v 0/1"
PERMIT2_COMPACT = (
    "Permit2 SignatureVerification accepts a 64-byte EIP-2098 r||vs signature "
    "from a code-less signer; the SDK's verify_eoa_signature needs 65 bytes"
)
USDC_64 = (
    "USDC v2.2 takes a 64-byte signature only through SignatureChecker -> ERC-1271, "
    "i.e. from a contract wallet: only a chain read decides (needs_chain_check)"
)
SMART_WALLET = "longer than 65 bytes or ERC-6492-wrapped: a smart-wallet form only a chain check can decide (security.md §1.3; needs_chain_check)"
EOA_SHORT = "an empty signature is no signature: invalid (the SDK calls any non-65-byte signature from a code-less payer an undeployed smart wallet)"
SHORT_SIG = (
    "shorter than 64 bytes no ECDSA signature fits, so only an ERC-1271 contract wallet can have "
    "made it; only a chain check decides (security.md §1.3(a), §5.4 #11; needs_chain_check)"
)
PROXY_ZERO = (
    "x402BasePermit2Proxy._settle reverts InvalidAmount() on a zero amount, and the exact "
    "proxy always settles permitted.amount: it cannot settle (permit2_invalid_amount)"
)
SDK_EXC_LABEL = (
    "label only: the signature is invalid (USDC ECRecover reverts on v not in {27, 28} / it is not hex); the "
    "SDK's verify_eoa_signature / hex decoding raises and _verify labels the exception failed_to_verify_signature"
)
STRICT_NUMBER = "strict parsing: a uint256 is a canonical decimal string that fits 256 bits (security.md §2.3, §5.4 #13-15); the SDK takes whatever int() takes"
STRICT_BYTES32 = "strict parsing: the EIP-3009 nonce is exactly 32 bytes (security.md §5.4 #26); the SDK hashes the short value"
STRICT_ADDRESS = (
    "strict parsing: an address is 0x + 40 hex, with a valid EIP-55 checksum when "
    "mixed-case (security.md §5.4 #27), in payloads and requirements; the SDK lower-cases"
)
STRICT_MEMBERS = (
    "strict parsing: a member the payer did not sign is refused, an absent one is missing "
    "(security.md §5.4 #29); the SDK's from_dict ignores extras and defaults absent ones to ''"
)
STRICT_HEX = "strict parsing: a signature is 0x-prefixed hex (x402 spec; legacy zod ^0x[0-9a-fA-F]+$); the SDK strips an optional 0x"
STRICT_JSON = (
    "strict parsing: JSON without duplicate keys or float numbers (security.md "
    "§5.4 #15, #28); Python's json keeps the last duplicate, int() takes 10000.0"
)
STRICT_BASE64 = (
    "strict parsing: standard base64 only (RFC 4648, x402 transports; TS "
    "^[A-Za-z0-9+/]*={0,2}$); the SDK's b64decode drops characters outside the alphabet"
)
STRICT_VERSION = (
    "strict parsing: x402Version is the JSON integer 1 or 2 (InvalidX402Version); "
    "the SDK's model defaults it to 2, coerces \"2\" and routes anything but 1 to v2"
)
STRICT_CAIP2 = "strict CAIP-2: eip155:<decimal without leading zeros> (network.rs parse_caip2); the SDK's int() reads eip155:08453 as chain 8453"
EXACT_WITNESS = (
    "the exact Permit2 witness has no facilitator member (x402ExactPermit2Proxy "
    "WITNESS_TYPEHASH): an unsigned one is an unknown field; the SDK's from_dict drops it"
)
AMBIGUOUS = "a payload carrying both authorization kinds is refused (ambiguous_payload, security.md §5.4 #30); the SDK reads whichever its route expects"
ROUTING = (
    "the server's requirements choose the flow (verify.rs cascade: requirements.scheme, then extra.assetTransferMethod); "
    "the SDK routes by the payload's accepted.scheme, and its exact mechanisms never read requirements.scheme"
)
TRANSFER_METHOD = (
    "requirements.extra.assetTransferMethod names the contract the server settles with; a payment "
    "for the other one is unsupported_payload_type (the SDK verifies whichever shape arrives)"
)
UPTO_NO_FACILITATOR = (
    "label only: under upto requirements a Permit2 witness without facilitator names "
    "no facilitator (upto_facilitator_mismatch); the SDK calls the shape unsupported"
)
WINDOW_BOUND = (
    "validity bound (verify.rs window, issue 10 item 4): validBefore / deadline at most now + maxTimeoutSeconds "
    "+ clock_skew_seconds (600), so a reservation cannot live for ever; the SDK takes any far deadline"
)
V1_CAIP2 = (
    "documented leniency (verify.rs chain_id): a v1 requirements network may also be CAIP-2; the signature "
    "is over that chain id, so it settles there. The SDK's v1 mechanism knows only its name table"
)

D = Divergence
DIVERGENCES: list[Divergence] = [
    # -- signatures: the settling contract's rules ---------------------------------------------
    D("sig_high_s_twin", EIP3009_KINDS, "valid", "invalid_exact_evm_payload_signature", USDC_LOW_S),
    D("sig_v01", EIP3009_KINDS, "valid", "invalid_exact_evm_payload_signature", USDC_V),
    D("sig_v01", PERMIT2_KINDS, "valid", "invalid_permit2_signature", PERMIT2_V),
    D("sig_compact_64", PERMIT2_KINDS, "invalid_permit2_signature", "valid", PERMIT2_COMPACT),
    D("sig_compact_64", EIP3009_KINDS, "invalid_exact_evm_payload_undeployed_smart_wallet", "needs_chain_check", USDC_64),
    D("sig_truncated_64", EIP3009_KINDS, "invalid_exact_evm_payload_undeployed_smart_wallet", "needs_chain_check", USDC_64),
    D("sig_extended_66", EIP3009_KINDS, "invalid_exact_evm_payload_undeployed_smart_wallet", "needs_chain_check", SMART_WALLET),
    D("sig_extended_66", PERMIT2_KINDS, "invalid_permit2_signature", "needs_chain_check", SMART_WALLET),
    D("sig_erc6492_wrapped", EIP3009_KINDS, "eip6492_factory_not_allowed", "needs_chain_check", SMART_WALLET),
    D("sig_erc6492_wrapped", PERMIT2_KINDS, "invalid_permit2_signature", "needs_chain_check", SMART_WALLET),
    D("sig_truncated_63", EIP3009_KINDS, "invalid_exact_evm_payload_undeployed_smart_wallet", "needs_chain_check", SHORT_SIG),
    D("sig_truncated_32", EIP3009_KINDS, "invalid_exact_evm_payload_undeployed_smart_wallet", "needs_chain_check", SHORT_SIG),
    D("sig_truncated_63", PERMIT2_KINDS, "invalid_permit2_signature", "needs_chain_check", SHORT_SIG),
    D("sig_truncated_32", PERMIT2_KINDS, "invalid_permit2_signature", "needs_chain_check", SHORT_SIG),
    D("signed_amount_zero", ("permit2",), "valid", "permit2_invalid_amount", PROXY_ZERO),
    D("sig_empty", EIP3009_KINDS, "invalid_exact_evm_payload_undeployed_smart_wallet", "invalid_exact_evm_payload_signature", EOA_SHORT),
    D("sig_v29", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "invalid_exact_evm_payload_signature", SDK_EXC_LABEL),
    D("sig_flip_v_low", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "invalid_exact_evm_payload_signature", SDK_EXC_LABEL),
    D("sig_flip_v_bit1", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "invalid_exact_evm_payload_signature", SDK_EXC_LABEL),
    D("sig_not_hex", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "invalid_exact_evm_payload_signature", SDK_EXC_LABEL),
    D("sig_no_0x", EIP3009_KINDS, "valid", "invalid_exact_evm_payload_signature", STRICT_HEX),
    D("sig_no_0x", PERMIT2_KINDS, "valid", "invalid_permit2_signature", STRICT_HEX),
    # -- numbers ------------------------------------------------------------------------------------
    D("amount_2pow256", EIP3009_KINDS, "invalid_exact_evm_payload_authorization_value_mismatch", "number_out_of_range", STRICT_NUMBER),
    D("amount_2pow256", PERMIT2_KINDS, "permit2_amount_mismatch", "number_out_of_range", STRICT_NUMBER),
    D("amount_and_requirements_2pow256", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "number_out_of_range", STRICT_NUMBER),
    D("amount_and_requirements_2pow256", PERMIT2_KINDS, "invalid_permit2_signature", "number_out_of_range", STRICT_NUMBER),
    D("amount_negative", EIP3009_KINDS, "invalid_exact_evm_payload_authorization_value_mismatch", "non_canonical_number", STRICT_NUMBER),
    D("amount_negative", PERMIT2_KINDS, "permit2_amount_mismatch", "non_canonical_number", STRICT_NUMBER),
    D("amount_and_requirements_negative", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "non_canonical_number", STRICT_NUMBER),
    D("amount_and_requirements_negative", PERMIT2_KINDS, "invalid_permit2_signature", "non_canonical_number", STRICT_NUMBER),
    D("amount_leading_zero", ALL, "valid", "non_canonical_number", STRICT_NUMBER),
    D("amount_underscore", ALL, "valid", "non_canonical_number", STRICT_NUMBER),
    D("amount_hex", PERMIT2_KINDS, "invalid_permit2_payload_format", "non_canonical_number", STRICT_NUMBER),
    D("amount_json_number", ALL, "valid", "invalid_value_type", STRICT_NUMBER),
    D("amount_json_float", V2_KINDS, "valid", "invalid_json_number", STRICT_JSON),
    D("nonce_31_bytes", EIP3009_KINDS, "invalid_exact_evm_payload_signature", "invalid_bytes_length", STRICT_BYTES32),
    # -- addresses ------------------------------------------------------------------------------------
    D("to_bad_checksum", ALL, "valid", "invalid_address_checksum", STRICT_ADDRESS),
    D("from_bad_checksum", ALL, "valid", "invalid_address_checksum", STRICT_ADDRESS),
    D("to_no_0x", EIP3009_KINDS, "invalid_exact_evm_payload_recipient_mismatch", "invalid_address", STRICT_ADDRESS),
    D("to_no_0x", PERMIT2_KINDS, "valid", "invalid_address", STRICT_ADDRESS),
    D("requirements_pay_to_bad_checksum", ALL, "valid", "invalid_payment_requirements", STRICT_ADDRESS),
    # -- members --------------------------------------------------------------------------------------
    D("unknown_authorization_member", ALL, "valid", "unknown_field", STRICT_MEMBERS),
    D("unknown_payload_member", ALL, "valid", "unknown_field", STRICT_MEMBERS),
    D("unknown_top_member", ALL, "valid", "unknown_field", STRICT_MEMBERS),
    D("field_facilitator_added", ("permit2",), "valid", "unknown_field", EXACT_WITNESS),
    D("missing_from", EIP3009_KINDS, "invalid_exact_evm_failed_to_verify_signature", "missing_field", STRICT_MEMBERS),
    D("missing_from", PERMIT2_KINDS, "invalid_permit2_signature", "missing_field", STRICT_MEMBERS),
    D("missing_to", EIP3009_KINDS, "invalid_exact_evm_payload_recipient_mismatch", "missing_field", STRICT_MEMBERS),
    D("missing_to", PERMIT2_KINDS, "invalid_permit2_recipient_mismatch", "missing_field", STRICT_MEMBERS),
    D("missing_amount", PERMIT2_KINDS, "invalid_permit2_payload_format", "missing_field", STRICT_MEMBERS),
    D("missing_validAfter", PERMIT2_KINDS, "invalid_permit2_payload_format", "missing_field", STRICT_MEMBERS),
    D("missing_validBefore", PERMIT2_KINDS, "invalid_permit2_payload_format", "missing_field", STRICT_MEMBERS),
    D("missing_nonce", EIP3009_KINDS, "invalid_exact_evm_payload_signature", "missing_field", STRICT_MEMBERS),
    D("missing_nonce", PERMIT2_KINDS, "invalid_permit2_signature", "missing_field", STRICT_MEMBERS),
    D("missing_token", PERMIT2_KINDS, "permit2_token_mismatch", "missing_field", STRICT_MEMBERS),
    D("missing_spender", PERMIT2_KINDS, "invalid_permit2_spender", "missing_field", STRICT_MEMBERS),
    D("missing_permitted", PERMIT2_KINDS, "invalid_permit2_payload_format", "missing_field", STRICT_MEMBERS),
    D("missing_witness", ("permit2",), "invalid_permit2_recipient_mismatch", "missing_field", STRICT_MEMBERS),
    D("missing_witness", ("upto",), "unsupported_payload_type", "missing_field", STRICT_MEMBERS),
    D("missing_authorization", ("eip3009", "eip3009_v1", "permit2"), "invalid_exact_evm_payload_recipient_mismatch", "missing_field", STRICT_MEMBERS),
    D("missing_authorization", ("upto",), "unsupported_payload_type", "missing_field", STRICT_MEMBERS),
    D("both_authorization_kinds", ("eip3009",), "invalid_permit2_spender", "ambiguous_payload", AMBIGUOUS),
    D("both_authorization_kinds", ("eip3009_v1", "permit2", "upto"), "valid", "ambiguous_payload", AMBIGUOUS),
    D("field_facilitator_missing", ("upto",), "unsupported_payload_type", "upto_facilitator_mismatch", UPTO_NO_FACILITATOR),
    # -- framing -------------------------------------------------------------------------------------
    D("header_line_wrapped", ALL, "valid", "invalid_base64", STRICT_BASE64),
    D("header_stray_character", ALL, "valid", "invalid_base64", STRICT_BASE64),
    D("json_duplicate_amount_key", V2_KINDS, "valid", "duplicate_key", STRICT_JSON),
    D("missing_x402_version", V2_KINDS, "valid", "invalid_x402_version", STRICT_VERSION),
    D("x402_version_string", V2_KINDS, "valid", "invalid_x402_version", STRICT_VERSION),
    D("x402_version_3", V2_KINDS, "valid", "invalid_x402_version", STRICT_VERSION),
    # -- networks, schemes, routing ------------------------------------------------------------------
    D("both_networks_caip2_leading_zero", ("eip3009", "permit2"), "valid", "invalid_exact_evm_failed_to_get_network_config", STRICT_CAIP2),
    D("both_networks_caip2_leading_zero", ("upto",), "valid", "invalid_upto_evm_failed_to_get_network_config", STRICT_CAIP2),
    D("v1_both_networks_caip2", ("eip3009_v1",), "invalid_exact_evm_failed_to_get_network_config", "valid", V1_CAIP2),
    D("accepted_scheme_other", ("eip3009", "permit2"), "unsupported_payload_type", "unsupported_scheme", ROUTING),
    D("accepted_scheme_other", ("upto",), "invalid_permit2_spender", "invalid_upto_evm_scheme", ROUTING),
    D("requirements_scheme_other", ("eip3009",), "valid", "unsupported_payload_type", ROUTING),
    D("requirements_scheme_other", ("eip3009_v1",), "unsupported_scheme", "unsupported_payload_type", ROUTING),
    D("requirements_scheme_other", ("permit2",), "valid", "invalid_upto_evm_scheme", ROUTING),
    D("requirements_scheme_other", ("upto",), "invalid_upto_evm_scheme", "unsupported_scheme", ROUTING),
    D("requirements_transfer_method_mismatch", V2_KINDS, "valid", "unsupported_payload_type", TRANSFER_METHOD),
    # -- time -------------------------------------------------------------------------------------
    D("resigned_valid_before_max_uint256", ALL, "valid", "authorization_window_too_long", WINDOW_BOUND),
]


@dataclass(frozen=True)
class SdkRaises:
    case: str
    kinds: tuple[str, ...]
    exception: str  # what the SDK raises (its type name)
    ours: str  # the code we answer instead


R = SdkRaises
SDK_RAISES: list[SdkRaises] = [
    # decode_payment_signature_header: base64.b64decode / json.loads / data.get
    R("header_not_base64", ALL, "JSONDecodeError", "invalid_base64"),  # b64decode drops '!' and decodes ''
    R("header_truncated_1", ALL, "Error", "invalid_base64"),  # binascii.Error: incorrect padding
    R("header_base64url", V2_KINDS, "Error", "invalid_base64"),
    R("header_base64_not_json", ALL, "JSONDecodeError", "invalid_json"),
    R("header_truncated_4", ALL, "JSONDecodeError", "invalid_json"),
    R("header_base64_json_array", ALL, "AttributeError", "invalid_payload"),
    # pydantic PaymentPayload / PaymentRequirementsV1
    R("missing_payload", ALL, "ValidationError", "missing_field"),
    R("missing_accepted", V2_KINDS, "ValidationError", "missing_field"),
    R("v1_extra_json_string", ("eip3009_v1",), "ValidationError", "invalid_payment_requirements"),
    # ExactEvmScheme._verify's int() on value / validBefore / validAfter, outside its try
    R("missing_amount", EIP3009_KINDS, "ValueError", "missing_field"),
    R("missing_validBefore", EIP3009_KINDS, "ValueError", "missing_field"),
    R("missing_validAfter", EIP3009_KINDS, "ValueError", "missing_field"),
    R("amount_hex", EIP3009_KINDS, "ValueError", "non_canonical_number"),
    # verify_permit2: get_evm_chain_id outside any try
    R("both_networks_v1_name", ("permit2",), "ValueError", "invalid_exact_evm_failed_to_get_network_config"),
    # no mechanism for the payload's scheme (x402FacilitatorBase: SchemeNotFoundError)
    R("accepted_scheme_unknown", ("eip3009", "eip3009_v1", "permit2"), "SchemeNotFoundError", "unsupported_scheme"),
    R("accepted_scheme_unknown", ("upto",), "SchemeNotFoundError", "invalid_upto_evm_scheme"),
    R("accepted_scheme_other", ("eip3009_v1",), "SchemeNotFoundError", "unsupported_scheme"),
]


def index(entries: list[Any]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for e in entries:
        for kind in e.kinds:
            assert (kind, e.case) not in out, f"{kind}/{e.case} listed twice"
            out[(kind, e.case)] = e
    return out


DIVERGENCE_INDEX = index(DIVERGENCES)
RAISES_INDEX = index(SDK_RAISES)


# --------------------------------------------------------------------------------------------
# The differential
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_differential(case: Case) -> None:
    sdk_payers: list[str] = []
    our_payers: list[str] = []
    sdk = sdk_outcome(case.payload, case.requirements, case.now, sdk_payers)
    ours = our_outcome(case.payload, case.requirements, case.now, our_payers)
    if sdk == ours == "valid":
        assert our_payers[0].lower() == sdk_payers[0].lower(), (our_payers, sdk_payers)
    key = (case.kind, case.name)
    if sdk.startswith("raises:"):
        expected_raise = RAISES_INDEX.get(key)
        assert expected_raise is not None, f"the SDK raises ({sdk}) and the case is not in SDK_RAISES; ours: {ours}"
        assert sdk == f"raises:{expected_raise.exception}", f"SDK_RAISES says {expected_raise.exception}, the SDK now {sdk}"
        assert ours != "valid", "the SDK raises and ours accepts"
        assert ours == expected_raise.ours, f"SDK_RAISES records {expected_raise.ours!r}, ours now {ours!r}"
        return
    assert key not in RAISES_INDEX, f"SDK_RAISES lists this case but the SDK answered {sdk!r} (ours {ours!r})"
    div = DIVERGENCE_INDEX.get(key)
    if div is None:
        assert ours == sdk, f"undocumented divergence: SDK {sdk!r}, ours {ours!r}"
    else:
        assert ours != sdk, f"DIVERGENCES lists this case but both now say {ours!r}"
        assert (sdk, ours) == (div.sdk, div.ours), f"DIVERGENCES records SDK {div.sdk!r} / ours {div.ours!r}; now SDK {sdk!r} / ours {ours!r}"


def test_tables_name_only_generated_cases() -> None:
    stale = [k for k in [*DIVERGENCE_INDEX, *RAISES_INDEX] if k not in CASE_NAMES]
    assert not stale, f"table entries with no such case: {stale}"
    for d in DIVERGENCES:
        assert d.why, d


def test_case_counts() -> None:
    """Every kind runs every mutation meant for it, on every key (the report's numbers)."""
    per_kind = {k: sum(1 for c in CASES if c.kind == k) for k in KINDS}
    expected = {k: KEYS_PER_KIND * (sum(1 for kinds, _ in MUTATIONS.values() if k in kinds) + len(SPECIAL_AMOUNTS)) for k in KINDS}
    assert per_kind == expected
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------------------------
# Published vectors (x402-permit2.md §7.3, §7.5), checked by both sides
# --------------------------------------------------------------------------------------------

SPEC_NOW = 1740672100  # inside validAfter 1740672089 .. validBefore/deadline 1740672154 (- 6 s)


def spec_eip3009() -> tuple[dict[str, Any], dict[str, Any], str]:
    req = {
        "scheme": "exact", "network": "eip155:84532", "asset": USDC_BASE_SEPOLIA, "amount": "10000", "payTo": PAY_TO,
        "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"},
    }  # fmt: skip
    payer = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
    payload = {
        "x402Version": 2,
        "accepted": req,
        "payload": {
            "signature": "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c",
            "authorization": {
                "from": payer,
                "to": PAY_TO,
                "value": "10000",
                "validAfter": "1740672089",
                "validBefore": "1740672154",
                "nonce": "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
            },  # fmt: skip
        },
    }
    return payload, req, payer


def spec_permit2(upto: bool) -> tuple[dict[str, Any], dict[str, Any], str]:
    amount = "5000000" if upto else "10000"
    extra: dict[str, Any] = {"name": "USDC", "version": "2", "assetTransferMethod": "permit2"}
    witness = {"to": PAY_TO, "validAfter": "1740672089"}
    if upto:
        extra["facilitatorAddress"] = FAC
        witness = {"to": PAY_TO, "facilitator": FAC, "validAfter": "1740672089"}
    req = {
        "scheme": "upto" if upto else "exact", "network": "eip155:84532", "asset": USDC_BASE_SEPOLIA, "amount": amount,
        "payTo": PAY_TO, "maxTimeoutSeconds": 60, "extra": extra,
    }  # fmt: skip
    payer = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    signature = (
        "0x95636daf74af6f82c3930e9d3baf3c1cacb37fb79e794b860ee5a2151274cd2e120fbb1a9774ae2a604cd4aeae0696da0c05f0b14e242fd93d0bb0e22ce8f46f1b"
        if upto
        else "0x3b029ad182a14cdb81c9eb44f935279e124e88afdc4043ed1183345aba6781b95cd297107e2808d8ea2722260e88856b5a13a6db23e38a30e2604dca9e1ce1da1b"
    )
    payload = {
        "x402Version": 2,
        "accepted": req,
        "payload": {
            "signature": signature,
            "permit2Authorization": {
                "from": payer,
                "permitted": {"token": USDC_BASE_SEPOLIA, "amount": amount},
                "spender": xv.UPTO_PERMIT2_PROXY if upto else xv.EXACT_PERMIT2_PROXY,
                "nonce": "33247007178036348590600198031289925668252061821958005840077069883511451257277",
                "deadline": "1740672154",
                "witness": witness,
            },
        },
    }
    return payload, req, payer


SPEC_VECTORS = {
    "eip3009_spec_7_3": (spec_eip3009, "exact_eip3009"),
    "permit2_exact_7_5": (lambda: spec_permit2(False), "exact_permit2"),
    "permit2_upto_7_5": (lambda: spec_permit2(True), "upto_permit2"),
}


@pytest.mark.parametrize("name", SPEC_VECTORS)
def test_published_vectors_verify(name: str) -> None:
    make, scheme = SPEC_VECTORS[name]
    payload, req, payer = make()
    for form in (header(payload), payload):
        r = VERIFIER.verify(form, req, now=SPEC_NOW)
        assert r.is_valid, r
        assert r.payer == payer and r.scheme == scheme and r.chain_id == 84532
    assert sdk_outcome(header(payload), req, SPEC_NOW) == "valid"
    # The same vectors just outside their window, and with the domain's chain changed.
    before = int(field_value("eip3009" if scheme == "exact_eip3009" else "permit2", payload, "validBefore"))
    for now in (before - 5, 1740672088):
        assert our_outcome(header(payload), req, now) == sdk_outcome(header(payload), req, now) != "valid"
    moved = copy.deepcopy(payload)
    moved["accepted"]["network"] = "eip155:8453"
    moved_req = dict(req, network="eip155:8453")
    assert our_outcome(header(moved), moved_req, SPEC_NOW) == sdk_outcome(header(moved), moved_req, SPEC_NOW) != "valid"


# --------------------------------------------------------------------------------------------
# Batch law: verify_batch(xs, threads=t)[i] == verify(xs[i])
# --------------------------------------------------------------------------------------------

POOL = [(c.payload, c.requirements) for c in CASES]
BATCH_NOWS = [CASES[0].now, CASES[0].now + 400, CASES[0].now - 700]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.integers(0, len(POOL) - 1), max_size=32), now=st.sampled_from(BATCH_NOWS))
def test_batch_equals_single(picks: list[int], now: int) -> None:
    items = [POOL[i] for i in picks]
    single = [VERIFIER.verify(p, r, now=now) for p, r in items]
    for threads in (1, 2):
        batch = VERIFIER.verify_batch(items, now=now, threads=threads)
        assert len(batch) == len(items)
        for i, (got, want) in enumerate(zip(batch, single, strict=True)):
            assert got == want, f"item {i} ({threads} threads): batch {got!r} != single {want!r}"
            assert got.to_dict() == want.to_dict()


def test_batch_pool_mixes_valid_and_invalid() -> None:
    verdicts = VERIFIER.verify_batch(POOL, now=CASES[0].now, threads=2)
    valid = sum(r.is_valid for r in verdicts)
    assert 0 < valid < len(POOL)


# --------------------------------------------------------------------------------------------
# v1 network names: ours (the TypeScript SDK's table) against the Python SDK's
# --------------------------------------------------------------------------------------------

# name -> (ours, Python SDK 2.25); None = not in that table. Ours follows the TypeScript
# EVM_NETWORK_CHAIN_ID_MAP (x402-permit2.md §2.5); extend with Verifier(network_names=...).
V1_NAME_DIFFERENCES: dict[str, tuple[int | None, int | None]] = {
    "sepolia": (11155111, None),
    "story": (1514, 1513),
    "educhain": (41923, 656476),
    "skale-base-sepolia": (324705682, 1444673419),
    "monad-testnet": (None, 10143),
    "celo": (None, 42220),
    "flare": (None, 14),
}


def test_v1_network_names_against_python_sdk() -> None:
    ours = dict(xv.V1_NETWORK_NAMES)
    differences = {
        name: (ours.get(name), SDK_V1_NETWORK_CHAIN_IDS.get(name))
        for name in sorted(set(ours) | set(SDK_V1_NETWORK_CHAIN_IDS))
        if ours.get(name) != SDK_V1_NETWORK_CHAIN_IDS.get(name)
    }
    assert differences == V1_NAME_DIFFERENCES
