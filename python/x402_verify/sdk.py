"""A drop-in ``FacilitatorClient`` for the x402 Python SDK (needs ``x402-verify[sdk]``).

    server = x402ResourceServer(LocalFacilitatorClient(HTTPFacilitatorClient(FacilitatorConfig(url))))

``verify`` runs in-process (micro-batched ``Verifier.verify_batch`` off the event loop) and
reserves the payment's nonce, so a payment presented twice, or fifty times at once, is taken
once; ``settle`` and ``get_supported`` go to the wrapped upstream client unchanged (its answers,
failures included, are returned as they are). A settled payment's reservation is marked
settled; a failed settlement keeps it (a transaction may yet land).

The SDK's middleware never tells its facilitator client that the handler failed: without a
call to ``release(payload, requirements)`` a payment whose handler raised or answered >= 400
stays reserved until its validBefore / deadline (plus the store's margin), and the client must
sign a new one to retry. Wire ``release`` into an error handler to free it at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from x402.schemas import SettleResponse, SupportedResponse, VerifyResponse

from x402_verify._batching import MicroBatcher
from x402_verify.errors import NonceStoreError, ReservationError
from x402_verify.verifier import Verifier

__all__ = ["LocalFacilitatorClient"]


def _dump(model: Any) -> dict[str, Any]:
    if isinstance(model, dict):
        return model
    out: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True)
    return out


def _payment_id(payload: dict[str, Any]) -> str:
    """One signed authorization: its signature (and nonce, for the odd signature-less shape)."""
    inner = payload.get("payload")
    if not isinstance(inner, dict):
        inner = {}
    auth = inner.get("authorization") or inner.get("permit2Authorization") or {}
    nonce = auth.get("nonce") if isinstance(auth, dict) else None
    return f"{inner.get('signature')}|{nonce}"


class LocalFacilitatorClient:
    """Satisfies the SDK's ``FacilitatorClient`` protocol: async ``verify`` and ``settle``,
    sync ``get_supported``, the SDK's pydantic models in and out.

    Args:
        upstream: the facilitator client that settles (``HTTPFacilitatorClient``, an
            ``x402Facilitator``, ...).
        verifier: the ``Verifier`` (default: any EVM network, in-process nonce store).
        max_batch / max_wait / max_inflight: the micro-batcher (``x402_verify._batching``).
    """

    def __init__(
        self, upstream: Any, *, verifier: Verifier | None = None, max_batch: int = 256, max_wait: float = 0.0, max_inflight: int = 2
    ) -> None:
        self.upstream = upstream
        self.verifier = verifier if verifier is not None else Verifier()
        self._batcher: MicroBatcher[tuple[dict[str, Any], dict[str, Any]], Any] = MicroBatcher(
            lambda items: self.verifier.verify_batch(items), max_batch=max_batch, max_wait=max_wait, max_inflight=max_inflight,
            on_orphan=lambda _item, r: self.verifier.release(r) if r.is_valid and r.reservation else None,
        )  # fmt: skip
        self._held: dict[str, Any] = {}  # payment id -> the verdict holding its reservation
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    @property
    def identifier(self) -> str:
        return f"x402-verify+{getattr(self.upstream, 'identifier', type(self.upstream).__name__)}"

    def _sweep(self) -> None:
        now = time.time()
        if now - self._last_sweep < 5:
            return
        self._last_sweep = now
        with self._lock:
            for pid in [p for p, r in self._held.items() if (r.valid_until or 0) < now]:
                del self._held[pid]

    async def verify(self, payload: Any, requirements: Any) -> VerifyResponse:
        p, r = _dump(payload), _dump(requirements)
        verdict = await self._batcher.submit((p, r))
        if verdict.is_valid and verdict.reservation is not None:
            self._sweep()
            with self._lock:
                self._held[_payment_id(p)] = verdict
        return VerifyResponse(
            is_valid=verdict.is_valid, invalid_reason=verdict.invalid_reason, invalid_message=verdict.invalid_message, payer=verdict.payer
        )

    async def settle(self, payload: Any, requirements: Any) -> SettleResponse:
        result: SettleResponse = await self.upstream.settle(payload, requirements)
        if result.success:
            with self._lock:
                verdict = self._held.pop(_payment_id(_dump(payload)), None)
            if verdict is not None:
                try:
                    self.verifier.settle(verdict)
                except (ReservationError, NonceStoreError):
                    pass  # settled upstream: the chain now guards the nonce
        return result

    async def release(self, payload: Any, requirements: Any) -> bool:
        """Frees the reservation ``verify`` took (nothing was served, nothing broadcast).
        Returns whether there was one to free."""
        with self._lock:
            verdict = self._held.pop(_payment_id(_dump(payload)), None)
        if verdict is None:
            return False
        try:
            self.verifier.release(verdict)
        except ReservationError:
            return False
        return True

    def get_supported(self) -> SupportedResponse:
        supported: SupportedResponse = self.upstream.get_supported()
        return supported
