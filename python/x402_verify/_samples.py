"""The signed sample documents bundled with the package (``x402_verify/data``).

They are signed by public test keys (see the ``note`` in each file); ``x402-verify bench`` and
the tests use them. Regenerate with ``scripts/make_samples.py``.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, NamedTuple

from x402_verify._core import SignaturePolicy

KINDS = ("permit2", "eip3009")


class Sample(NamedTuple):
    typed_data: dict[str, Any]
    signature: str
    signer: str


def load(kind: str) -> list[Sample]:
    """The samples of one kind: ``"permit2"`` or ``"eip3009"``."""
    if kind not in KINDS:
        raise ValueError(f"unknown sample kind {kind!r}; expected one of {KINDS}")
    text = (files("x402_verify") / "data" / f"{kind}_samples.json").read_text(encoding="utf-8")
    return [Sample(s["typed_data"], s["signature"], s["signer"]) for s in json.loads(text)["samples"]]


def policy(kind: str) -> SignaturePolicy:
    """The signature policy of the contract that settles samples of ``kind``."""
    return SignaturePolicy.permit2() if kind == "permit2" else SignaturePolicy.eip3009()


#: A unix time inside every bundled sample's validity window.
VALID_AT = 1_767_225_600 + 2600


def x402_items(kind: str) -> list[tuple[str, dict[str, Any], str]]:
    """The samples of ``kind`` as x402 v2 payments: ``(header, requirements, payer)``, all
    valid at ``VALID_AT``."""
    from x402_verify.header import encode_payment_header

    out = []
    for s in load(kind):
        domain, msg = s.typed_data["domain"], s.typed_data["message"]
        network = f"eip155:{domain['chainId']}"
        if kind == "permit2":
            inner = {"signature": s.signature, "permit2Authorization": {"from": s.signer, **msg}}
            req = {
                "scheme": "exact", "network": network, "amount": msg["permitted"]["amount"], "asset": msg["permitted"]["token"],
                "payTo": msg["witness"]["to"], "maxTimeoutSeconds": 3600, "extra": {"assetTransferMethod": "permit2"},
            }
        else:
            inner = {"signature": s.signature, "authorization": msg}
            req = {
                "scheme": "exact", "network": network, "amount": msg["value"], "asset": domain["verifyingContract"],
                "payTo": msg["to"], "maxTimeoutSeconds": 3600, "extra": {"name": domain["name"], "version": domain["version"]},
            }
        payload = {"x402Version": 2, "accepted": {"scheme": "exact", "network": network}, "payload": inner}
        out.append((encode_payment_header(payload), req, s.signer))
    return out
