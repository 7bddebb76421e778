"""A Permit2 spender must be a proxy of the payment's own scheme (issue 10 item 2).

Permit2 hashes the permit with ``msg.sender`` (the calling proxy) as spender and the witness
type that proxy passes: the exact proxy passes ``Witness(address to,uint256 validAfter)``, the
upto proxy ``Witness(address to,address facilitator,uint256 validAfter)``. So an exact-witness
permit naming the upto proxy (or the reverse) verifies nowhere on-chain. The flat
``permit2_proxies=[EXACT, UPTO]`` form accepted both; it is gone, and a known proxy cannot be
listed for the other scheme.
"""

from __future__ import annotations

from typing import Any

import pytest

import x402_verify as xv
from payments import requirements, sign_payment

NOW = 1_800_000_000

# (kind signed, spender named): each permit is signed correctly over what it names.
CROSSED = [("permit2", xv.UPTO_PERMIT2_PROXY), ("upto", xv.EXACT_PERMIT2_PROXY)]

CONFIGS: list[dict[str, Any]] = [
    {},
    {"permit2_proxies": {"exact": [xv.EXACT_PERMIT2_PROXY], "upto": [xv.UPTO_PERMIT2_PROXY]}},
    {"permit2_proxies": {"exact": [xv.EXACT_PERMIT2_PROXY]}},
    {"permit2_proxies": {"upto": [xv.UPTO_PERMIT2_PROXY]}},
]


@pytest.mark.parametrize("options", CONFIGS, ids=["default", "both", "exact-only", "upto-only"])
@pytest.mark.parametrize(("kind", "spender"), CROSSED, ids=["exact-witness-upto-proxy", "upto-witness-exact-proxy"])
def test_a_permit_naming_the_other_schemes_proxy_is_refused(kind: str, spender: str, options: dict[str, Any]) -> None:
    p = sign_payment(kind, NOW, spender=spender)
    r = xv.Verifier(nonce_store=None, **options).verify(p.header, requirements(kind), now=NOW)
    assert r.invalid_reason == "invalid_permit2_spender", r.to_dict()


@pytest.mark.parametrize("kind", ["permit2", "upto"])
def test_a_permit_naming_its_own_schemes_proxy_passes(kind: str) -> None:
    p = sign_payment(kind, NOW)
    for options in CONFIGS[:2]:
        assert xv.Verifier(nonce_store=None, **options).verify(p.header, requirements(kind), now=NOW).is_valid


def test_the_flat_form_that_crossed_them_is_refused() -> None:
    with pytest.raises(TypeError, match="mapping"):
        xv.Verifier(permit2_proxies=[xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY])  # type: ignore[arg-type]
    for crossed in ({"exact": [xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY]}, {"upto": [xv.UPTO_PERMIT2_PROXY, xv.EXACT_PERMIT2_PROXY]}):
        with pytest.raises(ValueError, match="other scheme"):
            xv.Verifier(permit2_proxies=crossed)
