"""Verifier options: keyword-only, validated, and each one changes what it says."""

from __future__ import annotations

import pytest

import x402_verify as xv
from payments import high_s_twin
from x402_verify import _samples

PERMIT2 = _samples.x402_items("permit2")
EIP3009 = _samples.x402_items("eip3009")
NOW = _samples.VALID_AT


def test_unknown_or_positional_options_raise_type_error() -> None:
    with pytest.raises(TypeError):
        xv.Verifier(nonce_sotre=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        xv.Verifier(None)  # type: ignore[misc]


@pytest.mark.parametrize(
    "options",
    [
        {"networks": ["not-a-chain"]},
        {"networks": ["eip155:0"]},
        {"permit2_proxies": {"exakt": [xv.EXACT_PERMIT2_PROXY]}},
        {"permit2_proxies": ["0x1234"]},
        {"facilitator_addresses": ["0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]},  # bad checksum
        {"time_buffer": -1},
        {"threads": 0},
        {"max_payload_bytes": 0},
    ],
)
def test_bad_option_values_raise_value_error(options: dict[str, object]) -> None:
    with pytest.raises((ValueError, OverflowError)):
        xv.Verifier(**options)  # type: ignore[arg-type]


def test_default_keeps_replay_state_and_none_keeps_none() -> None:
    header, req, _ = PERMIT2[0]
    guarded = xv.Verifier()
    assert isinstance(guarded.nonce_store, xv.MemoryNonceStore)
    assert [r.is_valid for r in guarded.verify_batch([(header, req)] * 2, now=NOW)] == [True, False]
    stateless = xv.Verifier(nonce_store=None)
    assert [r.is_valid for r in stateless.verify_batch([(header, req)] * 2, now=NOW)] == [True, True]
    with pytest.raises(ValueError):
        stateless.settle(stateless.verify(header, req, now=NOW))


def test_networks_restrict_and_names_extend() -> None:
    header, req, _ = PERMIT2[0]  # eip155:8453
    assert xv.Verifier(nonce_store=None, networks=["base"]).verify(header, req, now=NOW).is_valid
    assert xv.Verifier(nonce_store=None, networks=["eip155:84532"]).verify(header, req, now=NOW).invalid_reason == "invalid_network"
    custom = xv.Verifier(nonce_store=None, networks=["my-base"], network_names={"my-base": 8453})
    assert custom.verify(header, req, now=NOW).is_valid


def test_permit2_proxies_per_scheme_or_flat() -> None:
    header, req, _ = PERMIT2[0]  # spender: the exact proxy
    only_upto = xv.Verifier(nonce_store=None, permit2_proxies={"exact": [], "upto": [xv.UPTO_PERMIT2_PROXY]})
    assert only_upto.verify(header, req, now=NOW).invalid_reason == "invalid_permit2_spender"
    flat = xv.Verifier(nonce_store=None, permit2_proxies=[xv.EXACT_PERMIT2_PROXY])
    assert flat.verify(header, req, now=NOW).is_valid


def test_time_buffer_and_max_validity() -> None:
    header, req, _ = EIP3009[0]
    auth = xv.Verifier(nonce_store=None).verify(header, req, now=NOW).authorization
    assert auth is not None
    valid_before = auth.valid_before
    assert xv.Verifier(nonce_store=None, time_buffer=valid_before - NOW).verify(header, req, now=NOW).is_valid
    late = xv.Verifier(nonce_store=None, time_buffer=valid_before - NOW + 1).verify(header, req, now=NOW)
    assert late.invalid_reason == "invalid_exact_evm_payload_authorization_valid_before"
    capped = xv.Verifier(nonce_store=None, max_validity_seconds=valid_before - NOW - 1).verify(header, req, now=NOW)
    assert capped.invalid_reason == "authorization_window_too_long"


def test_signature_policies_are_options() -> None:
    header, req, _ = EIP3009[0]
    payload = xv.decode_payment_header(header)
    sig = bytes.fromhex(payload["payload"]["signature"][2:])
    twin = high_s_twin(sig)
    payload["payload"]["signature"] = "0x" + twin.hex()
    twin_header = xv.encode_payment_header(payload)
    assert xv.Verifier(nonce_store=None).verify(twin_header, req, now=NOW).invalid_reason == "invalid_exact_evm_payload_signature"
    lenient = xv.Verifier(nonce_store=None, eip3009_policy=xv.SignaturePolicy(require_low_s=False))
    assert lenient.verify(twin_header, req, now=NOW).is_valid


def test_response_exposes_the_terms() -> None:
    header, req, payer = PERMIT2[0]
    r = xv.Verifier(nonce_store=None).verify(header, req, now=NOW)
    assert r.is_valid and r.payer == payer and r.scheme == "exact_permit2" and r.x402_version == 2 and r.chain_id == 8453
    auth = r.authorization
    assert auth is not None
    assert auth.kind == "permit2" and auth.amount == int(req["amount"]) and auth.pay_to == req["payTo"]
    assert auth.token == req["asset"] and auth.spender == xv.EXACT_PERMIT2_PROXY and auth.facilitator is None
    assert r.to_dict() == {"isValid": True, "payer": payer}
    assert r.replay_key is not None and len(r.replay_key) == 32 and r.nonce_space == "permit2" and r.valid_until == auth.valid_before
