"""``averify_batch``: the verifier's batch for event-loop servers (ASGI), with
``AsyncChainReader``s, so chain reads never block the loop.

The offline checks and the store run in a worker thread (they release the GIL or do blocking
I/O); the chain reads are awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from x402_verify._core import VerifyResponse

__all__ = ["averify_batch"]


async def averify_batch(
    verifier: Any,
    items: Iterable[tuple[Any, Any]],
    *,
    now: int | None = None,
    threads: int | None = None,
    idempotency_ids: Sequence[str | None] | None = None,
) -> list[VerifyResponse]:
    """``verifier.verify_batch(items)`` for a verifier whose ``chain_readers`` are
    ``AsyncChainReader``s (sync readers work too, but then block the loop while they read);
    ``idempotency_ids`` as ``verify_batch``'s (the reservations' owners)."""
    pairs = list(items)
    if verifier._chain is None:
        # No chain stage: the whole pipeline (reserve included) is one call off the loop.
        verified: list[VerifyResponse] = await asyncio.to_thread(verifier.verify_batch, pairs, now=now, threads=threads, idempotency_ids=idempotency_ids)
        return verified
    results: list[VerifyResponse] = await asyncio.to_thread(verifier._core.verify_batch, pairs, now=now, threads=threads, idempotency_ids=idempotency_ids)
    store = verifier.nonce_store
    exposure = None
    if verifier._chain is not None:
        results, exposure = await verifier._chain.acheck(results)
    if store is None:
        return results
    from x402_verify.stores import reserve_verified

    return await asyncio.to_thread(reserve_verified, store, results, now, exposure, idempotency_ids)
