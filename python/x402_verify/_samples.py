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
