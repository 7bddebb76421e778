"""An authorization's validity is bounded by default (issue 10 item 4): validBefore / deadline
<= now + the requirements' maxTimeoutSeconds + clock_skew_seconds (default 600), so every
unsettled reservation has a bounded life and free signatures cannot fill the nonce store."""

from __future__ import annotations

import pytest

import x402_verify as xv
from payments import requirements, sign_payment

NOW = 1_800_000_000
KINDS = ("eip3009", "permit2", "upto")
TIMEOUT = 300  # the routes' maxTimeoutSeconds (test_stores.requirements)


def test_never_expiring_payments_cannot_fill_the_store_by_default() -> None:
    store = xv.MemoryNonceStore(max_entries=200)
    v = xv.Verifier(nonce_store=store)  # the default configuration
    forever = [sign_payment(KINDS[i % 3], NOW, valid_for=2**64 - 1 - NOW) for i in range(200)]
    out = v.verify_batch([(p.header, requirements(p.kind)) for p in forever], now=NOW)
    assert {r.invalid_reason for r in out} == {"authorization_window_too_long"}
    assert len(store) == 0
    honest = [sign_payment(KINDS[i % 3], NOW) for i in range(200)]
    assert all(r.is_valid for r in v.verify_batch([(p.header, requirements(p.kind)) for p in honest], now=NOW))
    assert len(store) == 200


@pytest.mark.parametrize("kind", KINDS)
def test_the_bound_is_max_timeout_plus_the_skew_allowance(kind: str) -> None:
    at_bound = sign_payment(kind, NOW, valid_for=TIMEOUT + xv.DEFAULT_CLOCK_SKEW_SECONDS)
    past = sign_payment(kind, NOW, valid_for=TIMEOUT + xv.DEFAULT_CLOCK_SKEW_SECONDS + 1)
    v = xv.Verifier(nonce_store=None)
    assert v.verify(at_bound.header, requirements(kind), now=NOW).is_valid
    r = v.verify(past.header, requirements(kind), now=NOW)
    assert r.invalid_reason == "authorization_window_too_long"
    assert r.invalid_message is not None and "maxTimeoutSeconds (300)" in r.invalid_message
    # The requirements' own maxTimeoutSeconds moves the bound.
    longer = {**requirements(kind), "maxTimeoutSeconds": TIMEOUT + 1}
    assert v.verify(past.header, longer, now=NOW).is_valid
    # The allowance is configurable, and max_validity_seconds still caps on top of it.
    assert xv.Verifier(nonce_store=None, clock_skew_seconds=601).verify(past.header, requirements(kind), now=NOW).is_valid
    tight = xv.Verifier(nonce_store=None, clock_skew_seconds=0)
    assert tight.verify(sign_payment(kind, NOW, valid_for=TIMEOUT).header, requirements(kind), now=NOW).is_valid
    assert tight.verify(sign_payment(kind, NOW, valid_for=TIMEOUT + 1).header, requirements(kind), now=NOW).invalid_reason == (
        "authorization_window_too_long"
    )
    capped = xv.Verifier(nonce_store=None, max_validity_seconds=TIMEOUT - 1)
    assert capped.verify(sign_payment(kind, NOW, valid_for=TIMEOUT).header, requirements(kind), now=NOW).invalid_reason == (
        "authorization_window_too_long"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_clock_ahead_by_the_allowance_still_pays(kind: str) -> None:
    # A client whose clock runs `skew` ahead signs validBefore = its now + maxTimeoutSeconds
    # (and, here, validAfter = its now - 60; the SDK's clients use 600, the default allowance).
    v = xv.Verifier(nonce_store=None)
    for skew in (0, 1, 59, 60):
        p = sign_payment(kind, NOW + skew, valid_for=TIMEOUT)
        assert v.verify(p.header, requirements(kind), now=NOW).is_valid, skew
