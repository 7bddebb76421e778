#!/usr/bin/env python3
"""Writes the named seeds of the `x402`, `store` and `envelope` fuzz targets into rust/core/fuzz/corpus/.

    python rust/core/fuzz/seeds/make_seeds.py

Every payment is signed with eth_account by the tests' payment builder, tests/payments.py
(EIP-3009 through ``Account.sign_typed_data``, x402's Permit2 ``PermitWitnessTransferFrom`` by
hand + ``Account.unsafe_sign_hash``), the one tests/test_x402_bad_inputs.py uses. The requirements are the four fixed ones of
``fuzz_checks::x402_requirements()`` (rust/core/tests/common/fuzz_checks.rs) and every
``valid_*`` seed verifies as valid under one of them at ``fuzz_checks::X402_NOW`` (the
``x402_seeds`` test of rust/core/tests/fuzz_corpus.rs checks it). The output is deterministic
(fixed keys, nonces and times; RFC 6979 signatures), so rerunning rewrites identical files.

Seeds: each valid payment as raw JSON and as a base64 header; Permit2 with an EIP-2098 64-byte
signature and with the high-s twin (both valid: Permit2 takes them); and malformed variants
(high-s / v=0/1 EIP-3009, ERC-6492 wrapper, 66-byte signature, another signer, expired,
unknown member, duplicate key, non-canonical number, ambiguous payload, bad base64, wrong
version, upto witness without facilitator). The requirements documents themselves are seeds
too, since the target also reads its input as requirements.
"""

from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode

# The payment builder the tests use (tests/payments.py): one construction for tests and seeds.
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests"))
from payments import ERC6492_MAGIC, FAC, KINDS, NOW, OTHER, PAYER, UPTO_PROXY, USDC_BASE_SEPOLIA, compact, high_s_twin, requirements
from payments import payment as signed_payment

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
OUT = CORPUS / "x402"

assert NOW == 1_750_000_000  # fuzz_checks::X402_NOW
# The same four documents as fuzz_checks::X402_REQUIREMENTS.
REQUIREMENTS: dict[str, dict[str, Any]] = {kind: requirements(kind) for kind in ("eip3009", "permit2", "upto", "eip3009_v1")}
assert set(REQUIREMENTS) == set(KINDS)


def payment(kind: str, acct: Any = PAYER, **over: Any) -> dict[str, Any]:
    return signed_payment(kind, acct=acct, **over)[0]


def with_sig(doc: dict[str, Any], raw: bytes) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["payload"]["signature"] = "0x" + raw.hex()
    return out


def text(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, bytes] = {}
    valid = {kind: payment(kind) for kind in REQUIREMENTS}
    for kind, doc in valid.items():
        seeds[f"valid_{kind}.json"] = text(doc)
        seeds[f"valid_{kind}.b64"] = b64(text(doc))
        seeds[f"requirements_{kind}.json"] = text(REQUIREMENTS[kind])
    sig = {kind: bytes.fromhex(doc["payload"]["signature"][2:]) for kind, doc in valid.items()}

    # Valid variants: Permit2 takes EIP-2098 and high-s; lower-case addresses and pretty JSON.
    seeds["valid_permit2_compact.json"] = text(with_sig(valid["permit2"], compact(sig["permit2"])))
    seeds["valid_upto_high_s.json"] = text(with_sig(valid["upto"], high_s_twin(sig["upto"])))
    seeds["valid_eip3009_pretty.b64"] = b64(json.dumps(valid["eip3009"], indent=2).encode())
    lower = copy.deepcopy(valid["eip3009"])
    lower["payload"]["authorization"]["from"] = lower["payload"]["authorization"]["from"].lower()
    seeds["valid_eip3009_lowercase_from.json"] = b" \n" + text(lower) + b"\n"

    # Malformed or refused variants.
    seeds["bad_eip3009_high_s.json"] = text(with_sig(valid["eip3009"], high_s_twin(sig["eip3009"])))
    seeds["bad_eip3009_compact.json"] = text(with_sig(valid["eip3009"], compact(sig["eip3009"])))
    seeds["bad_eip3009_v01.json"] = text(with_sig(valid["eip3009_v1"], sig["eip3009_v1"][:64] + bytes([sig["eip3009_v1"][64] - 27])))
    erc6492 = abi_encode(["address", "bytes", "bytes"], [FAC, bytes.fromhex("c0ffee"), sig["permit2"]]) + ERC6492_MAGIC
    seeds["bad_permit2_erc6492.json"] = text(with_sig(valid["permit2"], erc6492))
    seeds["bad_upto_66_bytes.json"] = text(with_sig(valid["upto"], sig["upto"] + b"\x00"))
    seeds["bad_eip3009_other_signer.b64"] = b64(text(payment("eip3009", acct=OTHER)))
    seeds["bad_permit2_expired.json"] = text(payment("permit2", valid_before=NOW + 5))
    seeds["bad_eip3009_not_yet.json"] = text(payment("eip3009", valid_after=NOW + 1))
    seeds["bad_upto_no_facilitator.json"] = text(payment("upto", facilitator=None))
    seeds["bad_permit2_amount_zero.json"] = text(payment("permit2", amount=0))
    unknown = copy.deepcopy(valid["eip3009"])
    unknown["payload"]["authorization"]["extra"] = "1"
    seeds["bad_eip3009_unknown_member.json"] = text(unknown)
    seeds["bad_eip3009_duplicate_key.json"] = text(valid["eip3009"]).replace(b'"value":"10000"', b'"value":"10000","value":"1"')
    seeds["bad_permit2_noncanonical.json"] = text(valid["permit2"]).replace(b'"amount":"10000"}', b'"amount":"010000"}')
    both = copy.deepcopy(valid["eip3009"])
    both["payload"]["permit2Authorization"] = valid["permit2"]["payload"]["permit2Authorization"]
    seeds["bad_ambiguous.json"] = text(both)
    seeds["bad_base64_unpadded.b64"] = b64(text(valid["upto"])).rstrip(b"=") or b"x"
    # A resource URL whose base64 has '+' and '/', sent in the URL-safe alphabet (and, valid, in the standard one).
    tilde = dict(valid["permit2"], resource={"url": "https://api.example/x?q=~~~>>>???"})
    assert b"+" in b64(text(tilde)) and b"/" in b64(text(tilde))
    seeds["valid_permit2_plus_slash.b64"] = b64(text(tilde))
    seeds["bad_base64_url_alphabet.b64"] = b64(text(tilde)).replace(b"+", b"-").replace(b"/", b"_")
    seeds["bad_base64_inner_space.b64"] = b64(text(valid["eip3009"]))[:100] + b" " + b64(text(valid["eip3009"]))[100:]
    seeds["bad_version_3.json"] = text(dict(valid["eip3009"], x402Version=3))
    seeds["bad_v1_with_accepted.json"] = text(dict(valid["eip3009_v1"], accepted=REQUIREMENTS["eip3009_v1"]))

    # Signed payments that get past the early checks to a late refusal (also verified against
    # fuzzed requirements: fuzz_checks::X402_FIXED_PAYLOADS).
    seeds["bad_upto_zero_destination.json"] = text(payment("upto", amount=0, to="0x" + "00" * 20))
    seeds["bad_permit2_exact_with_facilitator.json"] = text(payment("permit2", facilitator=FAC))
    seeds["bad_permit2_other_token.json"] = text(payment("permit2", token=USDC_BASE_SEPOLIA))
    seeds["bad_permit2_upto_spender.json"] = text(payment("permit2", spender=UPTO_PROXY))
    # Shapes: members of the wrong kind, missing signatures.
    def edited(kind: str, path: tuple[str, ...], value: Any) -> bytes:
        doc = copy.deepcopy(valid[kind])
        node = doc
        for key in path[:-1]:
            node = node[key]
        if value is None and path[-1] != "signature":
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return text(doc)

    seeds["bad_authorization_not_object.json"] = edited("eip3009", ("payload", "authorization"), [])
    seeds["bad_permit2_authorization_not_object.json"] = edited("upto", ("payload", "permit2Authorization"), "x")
    seeds["bad_payload_not_object.json"] = edited("eip3009_v1", ("payload",), 1)
    seeds["bad_v1_no_scheme.json"] = edited("eip3009_v1", ("scheme",), None)
    seeds["bad_accepted_not_object.json"] = edited("permit2", ("accepted",), "exact")
    seeds["bad_signature_number.json"] = edited("eip3009", ("payload", "signature"), 1)
    seeds["bad_signature_empty.json"] = edited("permit2", ("payload", "signature"), "")
    seeds["bad_signature_null.json"] = edited("eip3009_v1", ("payload", "signature"), None)
    seeds["bad_signature_0x.json"] = edited("upto", ("payload", "signature"), "0x")

    # Requirements variants (the target reads its input as requirements too).
    seeds["requirements_permit2_amount_zero.json"] = text(dict(REQUIREMENTS["permit2"], amount="0"))
    seeds["requirements_upto_zero_pay_to.json"] = text(dict(REQUIREMENTS["upto"], amount="0", payTo="0x" + "00" * 20))
    seeds["requirements_extra_name_number.json"] = text(dict(REQUIREMENTS["eip3009"], extra={"name": 1, "version": "2"}))
    seeds["requirements_bad_facilitator.json"] = text(dict(REQUIREMENTS["upto"], extra=dict(REQUIREMENTS["upto"]["extra"], facilitatorAddress="0x1234")))
    seeds["requirements_both_amounts.json"] = text(dict(REQUIREMENTS["eip3009"], maxAmountRequired="1"))
    seeds["requirements_int_amount.json"] = text(dict(REQUIREMENTS["permit2"], amount=10000))
    seeds["requirements_bad_extra.json"] = text(dict(REQUIREMENTS["upto"], extra=["permit2"]))
    seeds["requirements_negative_timeout.json"] = text(dict(REQUIREMENTS["eip3009_v1"], maxTimeoutSeconds=-1))

    for name, data in seeds.items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")
    store_seeds()
    envelope_seeds(valid["eip3009"], REQUIREMENTS["eip3009"])


# The `store` target's programs (fuzz_checks::check_store): a capacity byte (% 6), then steps
# of [op % 8, key % 4, owner % 3 ("a", "b", "")] and the op's own bytes:
#   0/1 reserve: count % 3 (+1); first item: expiry % 43 (now - 2 + it), cap % 4 (0/1 none,
#       2 small: + amount index % 6, 3 U256::MAX); further items: key, owner, expiry, cap
#   2 settle, 3 release, 5 sweep: nothing; 4 charge: rarely-MAX % 8 (7 = MAX) else + amount % 6
#   6 clock += byte % 16; 7 clock += 16 * (byte % 8)
def reserve(key: int, owner: int, expiry: int = 30, cap: int = 0, amount: int = 0) -> bytes:
    return bytes([0, key, owner, 0, expiry, cap] + ([amount] if cap == 2 else []))


def charge(key: int, owner: int, amount: int) -> bytes:
    return bytes([4, key, owner, 0, amount]) if amount >= 0 else bytes([4, key, owner, 7])


STORE_SEEDS = {
    "lifecycle": bytes([5]) + reserve(0, 0) + reserve(0, 1) + reserve(0, 0) + bytes([2, 0, 1, 2, 0, 0, 3, 0, 0]) + reserve(0, 0),
    "upto_session": bytes([5]) + reserve(1, 0, cap=2, amount=5) + charge(1, 0, 2) + charge(1, 0, 4) + charge(1, 0, 3)
    + charge(1, 0, -1) + charge(1, 1, 1) + bytes([2, 1, 0]) + charge(1, 0, 1),
    "exact_not_upto": bytes([5]) + reserve(2, 2) + charge(2, 2, 1) + bytes([3, 2, 2, 3, 2, 2]),
    "expiry": bytes([5]) + reserve(0, 0, expiry=5) + bytes([6, 0, 0, 2, 6, 0, 0, 15, 2, 0, 0]) + reserve(0, 1),
    "full_then_sweep": bytes([2]) + reserve(0, 0, expiry=3) + reserve(1, 0, expiry=40) + reserve(2, 0)
    + bytes([6, 0, 0, 3]) + reserve(2, 0) + bytes([5, 0, 0]),
    "capacity_zero": bytes([0]) + reserve(0, 0) + bytes([5, 0, 0]),
    "batch_same_key": bytes([5, 1, 3, 1, 2, 30, 0, 3, 0, 30, 0, 3, 1, 30, 0]),
    "already_expired": bytes([5]) + reserve(0, 0, expiry=1) + reserve(0, 1, expiry=2) + bytes([7, 0, 0, 7]) + reserve(0, 2),
}


def store_seeds() -> None:
    out = CORPUS / "store"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in STORE_SEEDS.items():
        (out / name).write_bytes(data)
    print(f"wrote {len(STORE_SEEDS)} seeds to {out}")


# The `envelope` target's inputs (fuzz_checks::check_envelope): a depth byte (% 40), then a
# facilitator request body.
def envelope_seeds(payload: dict[str, Any], reqs: dict[str, Any]) -> None:
    body = text({"x402Version": 2, "paymentPayload": payload, "paymentRequirements": reqs})
    empty = b'"paymentPayload":{},"paymentRequirements":{}'
    seeds = {
        "valid_v2": bytes([32]) + body,
        "valid_v1_spaced": bytes([8]) + b' { "x402Version" : 1 , "paymentPayload" : { "a" : [ 1 , "}" ] } , "paymentRequirements" : { } } ',
        "truncated": bytes([32]) + body[:100],
        "duplicate_key": bytes([8]) + b'{"x402Version":2,"x402Version":2,' + empty + b"}",
        "duplicate_long_key": bytes([8]) + b'{"x402Version":2,"' + b"k" * 300 + b'":1,"' + b"k" * 300 + b'":2}',
        "duplicate_escaped_key": bytes([8]) + b'{"x402Version":2,"' + b"\x7f" * 60 + b'":1,"' + b"\x7f" * 60 + b'":2}',
        "duplicate_hides_depth": bytes([3]) + b'{"x402Version":1,"paymentPayload":{"a":{"b":[]},"a":1},"paymentRequirements":{}}',
        "version_float": bytes([8]) + b'{"x402Version":2.0,' + empty + b"}",
        "version_string": bytes([8]) + b'{"x402Version":"2",' + empty + b"}",
        "member_list": bytes([8]) + b'{"x402Version":2,"paymentPayload":[],"paymentRequirements":{}}',
        "member_missing": bytes([8]) + b'{"x402Version":2,"paymentPayload":{}}',
        "too_deep": bytes([4]) + b'{"x402Version":2,"paymentPayload":{"a":[[[{}]]]},"paymentRequirements":{}}',
        "brackets_in_strings": bytes([3]) + b'{"x402Version":2,"paymentPayload":{"a":"\\\\\\"[[[["},"paymentRequirements":{"b":"\\u00e9"}}',
        "lone_surrogate": bytes([8]) + b'{"x402Version":2,"paymentPayload":{"a":"\\ud929"},"paymentRequirements":{}}',
        "not_an_object": bytes([8]) + b"[1,2]",
        "number_beyond_floats": bytes([8]) + b'{"x402Version":2,"paymentPayload":{"a":1e400},"paymentRequirements":{}}',
        "not_utf8": bytes([8]) + b'{"x402Version":2,"paymentPayload":{"a":"\xff"},"paymentRequirements":{}}',
    }
    out = CORPUS / "envelope"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
