"""Requirements by the x402 SDK's schemas (issue 9 §3): every member v2 ``PaymentRequirements``
or v1 ``PaymentRequirementsV1`` requires, for every scheme, missing or of the wrong type is
``invalid_payment_requirements`` naming the member; the SDK's own pydantic model refuses each
of these documents too."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError
from x402.schemas import PaymentRequirements
from x402.schemas.v1 import PaymentRequirementsV1

import x402_verify as xv
from payments import FAC, OPG_BASE, PAY_TO, USDC_BASE_SEPOLIA, sign_payment

NOW = 1_800_000_000
V = xv.Verifier(nonce_store=None)


def v2(scheme: str) -> dict[str, Any]:
    if scheme == "exact":
        return {
            "scheme": "exact", "network": "eip155:84532", "asset": USDC_BASE_SEPOLIA, "amount": "10000", "payTo": PAY_TO,
            "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"},
        }  # fmt: skip
    return {
        "scheme": "upto", "network": "eip155:8453", "asset": OPG_BASE, "amount": "10000", "payTo": PAY_TO, "maxTimeoutSeconds": 300,
        "extra": {"name": "OpenGradient", "version": "1", "assetTransferMethod": "permit2", "facilitatorAddress": FAC},
    }  # fmt: skip


def v1() -> dict[str, Any]:
    return {
        "scheme": "exact", "network": "base-sepolia", "maxAmountRequired": "10000", "resource": "https://api.example/x",
        "payTo": PAY_TO, "maxTimeoutSeconds": 300, "asset": USDC_BASE_SEPOLIA, "extra": {"name": "USDC", "version": "2"},
    }  # fmt: skip


# The required members of each schema (x402 2.25 schemas/payments.py, schemas/v1.py) and, for
# each, values of a type the schema does not take.
V2_REQUIRED = ("scheme", "network", "asset", "amount", "payTo", "maxTimeoutSeconds")
V1_REQUIRED = ("scheme", "network", "maxAmountRequired", "resource", "payTo", "maxTimeoutSeconds", "asset")
WRONG: dict[str, list[Any]] = {
    "scheme": [1, None, ["exact"]],
    "network": [84532, None, {"id": 1}],
    "asset": [1, None, [USDC_BASE_SEPOLIA]],
    "amount": [None, True, 1.5, ["10000"]],
    "maxAmountRequired": [None, True, 1.5, ["10000"]],
    "payTo": [1, None, [PAY_TO]],
    "maxTimeoutSeconds": [None, "abc", 1.5, [300], {"s": 300}],
    "resource": [None, 1, {"url": "https://api.example/x"}],
}

Case = tuple[str, int, str, str, dict[str, Any]]  # (id, version, scheme, member, requirements)
CASES: list[Case] = []
for scheme in ("exact", "upto"):
    for member in V2_REQUIRED:
        r = v2(scheme)
        del r[member]
        CASES.append((f"v2-{scheme}-{member}-missing", 2, scheme, member, r))
        for bad in WRONG[member]:
            CASES.append((f"v2-{scheme}-{member}-{bad!r}", 2, scheme, member, {**v2(scheme), member: bad}))
for member in V1_REQUIRED:
    r = v1()
    del r[member]
    CASES.append((f"v1-{member}-missing", 1, "exact", member, r))
    for bad in WRONG[member]:
        CASES.append((f"v1-{member}-{bad!r}", 1, "exact", member, {**v1(), member: bad}))
# Optional members of a type the schema does not take.
CASES += [
    ("v2-exact-extra-null", 2, "exact", "extra", {**v2("exact"), "extra": None}),
    ("v2-upto-extra-list", 2, "upto", "extra", {**v2("upto"), "extra": []}),
    ("v1-extra-string", 1, "exact", "extra", {**v1(), "extra": "x"}),
    ("v1-description-int", 1, "exact", "description", {**v1(), "description": 1}),
    ("v1-mimeType-list", 1, "exact", "mimeType", {**v1(), "mimeType": ["a"]}),
    ("v1-outputSchema-string", 1, "exact", "outputSchema", {**v1(), "outputSchema": "{}"}),
]


def payload_for(version: int, scheme: str) -> str:
    """A payment that is valid under the unbroken requirements of that version and scheme."""
    if version == 1:
        p = sign_payment("eip3009", NOW)
        return xv.encode_payment_header({"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": p.payload["payload"]})
    return sign_payment("upto" if scheme == "upto" else "eip3009", NOW).header


def test_the_unbroken_requirements_accept_their_payments() -> None:
    for version, scheme, r in ((2, "exact", v2("exact")), (2, "upto", v2("upto")), (1, "exact", v1())):
        resp = V.verify(payload_for(version, scheme), r, now=NOW)
        assert resp.is_valid, resp.to_dict()
        assert xv.Requirements(r).x402_version == version
    # v1's optional members may be null; v2's extra may be absent (then no EIP-712 domain).
    nulls = {**v1(), "description": None, "mimeType": None, "outputSchema": None}
    assert V.verify(payload_for(1, "exact"), nulls, now=NOW).is_valid
    no_extra = {k: v for k, v in v2("exact").items() if k != "extra"}
    assert V.verify(payload_for(2, "exact"), no_extra, now=NOW).invalid_reason == "missing_eip712_domain"


@pytest.mark.parametrize(("version", "scheme", "member", "requirements"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_member_the_schema_requires_missing_or_mistyped_is_named(version: int, scheme: str, member: str, requirements: dict[str, Any]) -> None:
    resp = V.verify(payload_for(version, scheme), requirements, now=NOW)
    assert resp.invalid_reason == "invalid_payment_requirements", resp.to_dict()
    assert resp.invalid_message is not None and member in resp.invalid_message
    # The compiled form refuses the same document, naming the same member.
    with pytest.raises(xv.PaymentError) as e:
        xv.Requirements(requirements)
    assert e.value.code == "invalid_payment_requirements" and member in str(e.value)
    # So does the SDK's own model of that version (it picks the schema by the payload's version).
    with pytest.raises(ValidationError):
        (PaymentRequirementsV1 if version == 1 else PaymentRequirements).model_validate(copy.deepcopy(requirements))


def test_upto_requirements_without_max_timeout_seconds_are_refused() -> None:
    # The regression of issue 9 §3: these were verified as valid.
    r = {k: v for k, v in v2("upto").items() if k != "maxTimeoutSeconds"}
    resp = V.verify(sign_payment("upto", NOW).header, r, now=NOW)
    assert resp.invalid_reason == "invalid_payment_requirements"
    assert resp.invalid_message is not None and "maxTimeoutSeconds is missing" in resp.invalid_message


def test_compiled_requirements_read_like_their_dict() -> None:
    r = v2("upto")
    c = xv.Requirements(r)
    assert (c.scheme, c.network, c.amount, c.asset, c.pay_to, c.max_timeout_seconds) == ("upto", "eip155:8453", 10000, OPG_BASE, PAY_TO, 300)
    assert c == xv.Requirements(json.dumps(r)) == xv.Requirements(json.dumps(r).encode()) == xv.Requirements(c)
    assert c != xv.Requirements(v2("exact"))
    with pytest.raises(TypeError):
        xv.Requirements(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        xv.Requirements([r])  # type: ignore[arg-type]
    with pytest.raises(xv.PaymentError):
        xv.Requirements("{")
