"""The reserve stage for a store outside the core (SQLite, Redis, a store with an exposure
ledger): the core plans the batch's reservations and decides the verdicts; the store answers
one outcome per reservation, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from x402_verify._core import ReservationPlan, VerifyResponse
from x402_verify.errors import NonceStoreError
from x402_verify.stores.protocol import _brief, log

__all__ = ["reserve_verified"]


def reserve_verified(
    store: Any,
    results: list[VerifyResponse],
    now: int | None,
    exposure: Sequence[Any] | None = None,
    idempotency_ids: Sequence[str | None] | None = None,
) -> list[VerifyResponse]:
    """The reserve stage for a store outside the core: the core plans one reservation per
    valid result (``ReservationPlan``: a random owner token each, or ``i:`` + the caller's
    idempotency id), the store takes the batch in one call, and the core decides each verdict
    from the store's answer (replay reasons per nonce space, refusals with fixed messages;
    details go to the log). Only signature-checked payments reach the store, so junk cannot
    fill it. With ``exposure`` (the chain stage's reading per result) the call is
    ``store.reserve_exposed``."""
    plan = ReservationPlan(results, idempotency_ids=idempotency_ids)
    if not len(plan):
        return plan.conclude([])
    keys, until, owners, caps = plan.columns()
    try:
        if exposure is None:
            outcomes: list[Any] = store.reserve_many(keys, until, owners, caps, now=now)
        else:
            readings = [exposure[i] for i in plan.indices]
            if any(e is None for e in readings):
                raise ValueError("a chain-checked payment has no exposure reading")
            outcomes = store.reserve_exposed(keys, until, owners, caps, readings, now=now)
        if len(outcomes) != len(keys):
            raise NonceStoreError(f"store answered {len(outcomes)} outcomes for {len(keys)} keys")
    except Exception as exc:  # fail closed on anything the store raises
        log.warning("nonce store unavailable: %s", _brief(exc))
        return plan.refuse_all()
    return plan.conclude(outcomes)
