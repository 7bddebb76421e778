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
        {"networks": ["eip155:18446744073709551616"]},
        {"permit2_proxies": {"exakt": [xv.EXACT_PERMIT2_PROXY]}},
        {"permit2_proxies": {"exact": ["0x1234"]}},
        {"facilitator_addresses": ["0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]},  # bad checksum
        {"time_buffer": -1},
        {"time_buffer": 2**64},
        {"clock_skew_seconds": -1},
        {"max_validity_seconds": -1},
        {"max_payload_bytes": -1},
        {"max_payload_bytes": 0},
        {"threads": 0},
        {"threads": -1},
        {"threads": 257},
        {"network_names": {"x": -1}},
        {"network_names": {"x": 0}},
        {"network_names": {"x": 2**64}},
        {"networks": ["\ud800"]},
        {"facilitator_addresses": ["\ud800"]},
    ],
)
def test_bad_option_values_raise_value_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError) as e:
        xv.Verifier(**options)  # type: ignore[arg-type]
    assert not isinstance(e.value, UnicodeError)


@pytest.mark.parametrize(
    "options",
    [
        {"time_buffer": True},
        {"time_buffer": 6.0},
        {"clock_skew_seconds": "600"},
        {"max_validity_seconds": False},
        {"max_payload_bytes": None},
        {"threads": True},
        {"threads": 2.0},
        {"network_names": {"x": True}},
        {"network_names": [("x", 1)]},
        {"networks": "base"},
        {"networks": [8453]},
        {"facilitator_addresses": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
        {"permit2_proxies": [xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY]},
        {"permit2_proxies": {"exact": xv.EXACT_PERMIT2_PROXY}},
        {"eip3009_policy": "eip3009"},
    ],
)
def test_bad_option_types_raise_type_error(options: dict[str, object]) -> None:
    with pytest.raises(TypeError):
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


def test_permit2_proxies_per_scheme() -> None:
    header, req, _ = PERMIT2[0]  # spender: the exact proxy
    only_upto = xv.Verifier(nonce_store=None, permit2_proxies={"exact": [], "upto": [xv.UPTO_PERMIT2_PROXY]})
    assert only_upto.verify(header, req, now=NOW).invalid_reason == "invalid_permit2_spender"
    exact_only = xv.Verifier(nonce_store=None, permit2_proxies={"exact": [xv.EXACT_PERMIT2_PROXY]})
    assert exact_only.verify(header, req, now=NOW).is_valid


def test_flat_permit2_proxies_are_refused_pointing_at_the_mapping() -> None:
    # One list for both schemes accepted exact permits whose spender is the upto proxy (and the
    # reverse): Permit2 hashes the calling proxy with its own witness, so both revert.
    with pytest.raises(TypeError, match=r"\{'exact': \[\.\.\.\], 'upto': \[\.\.\.\]\}"):
        xv.Verifier(permit2_proxies=[xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        xv.Verifier(permit2_proxies=(p for p in [xv.EXACT_PERMIT2_PROXY]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "proxies",
    [{"exact": [xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY]}, {"upto": [xv.EXACT_PERMIT2_PROXY]}, {"exact": [xv.UPTO_PERMIT2_PROXY.lower()]}],
)
def test_a_known_proxy_cannot_be_listed_for_the_other_scheme(proxies: dict[str, list[str]]) -> None:
    with pytest.raises(ValueError, match="proxy"):
        xv.Verifier(permit2_proxies=proxies)


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
