"""The server's own requirements: every fault in them is reported as a requirements fault."""

from __future__ import annotations

from typing import Any

import pytest

import x402_verify as xv

A = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
AUTH = {"from": A, "to": A, "value": "1", "validAfter": "0", "validBefore": "9999999999", "nonce": "0x" + "00" * 32}
PAYLOAD = {"x402Version": 2, "accepted": {"scheme": "exact", "network": "eip155:84532"}, "payload": {"signature": "0x", "authorization": AUTH}}
REQ = {"scheme": "exact", "network": "eip155:84532", "asset": A, "amount": "1", "payTo": A, "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"}}


@pytest.mark.parametrize(
    ("requirements", "cause"),
    [
        ('{"scheme": ', "invalid_json"),
        ('{"amount":"1","amount":"2"}', "duplicate_key"),
        ('{"amount": 1.5}', "invalid_json_number"),
        (dict(REQ, amount=1.5), "invalid_json_number"),
        (dict(REQ, extra={1, 2}), "invalid_input_type"),
        (dict(REQ, amount=True), "invalid_value_type"),
        ({k: v for k, v in REQ.items() if k != "amount"}, "missing_field"),
        (dict(REQ, payTo=A.lower()[:-1]), "invalid_address"),
        (42, "dict or JSON text"),
    ],
)
def test_requirements_faults_are_named_as_such(requirements: Any, cause: str) -> None:
    r = xv.Verifier(nonce_store=None).verify(PAYLOAD, requirements, now=1)
    assert r.invalid_reason == "invalid_payment_requirements"
    assert r.invalid_message is not None and cause in r.invalid_message


def test_missing_amount_names_both_versions() -> None:
    r = xv.Verifier(nonce_store=None).verify(PAYLOAD, {k: v for k, v in REQ.items() if k != "amount"}, now=1)
    assert r.invalid_message is not None and "maxAmountRequired" in r.invalid_message and "amount" in r.invalid_message


def test_eip3009_valid_before_equal_to_now_is_expired_even_without_a_buffer() -> None:
    # USDC requires block.timestamp < validBefore; the check holds with time_buffer=0 too.
    v = xv.Verifier(nonce_store=None, time_buffer=0)
    auth = dict(AUTH, validBefore="100")
    payload = {**PAYLOAD, "payload": {"signature": "0x" + "11" * 65, "authorization": auth}}
    assert v.verify(payload, REQ, now=100).invalid_reason == "invalid_exact_evm_payload_authorization_valid_before"
    assert v.verify(payload, REQ, now=99).invalid_reason != "invalid_exact_evm_payload_authorization_valid_before"
