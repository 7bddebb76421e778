"""Settlement: who turns a verified payment into a transaction.

A ``Settler`` has one coroutine, ``settle(payload, requirements) -> SettlementResult``, taking
the decoded payment payload and the requirements as dicts (x402's JSON shapes; for upto,
``requirements["amount"]`` is the amount to charge). Two implementations:

- ``HTTPFacilitatorSettler(url)``: any x402 facilitator over HTTP, spoken exactly as the x402
  SDK's ``HTTPFacilitatorClient`` speaks it (``POST {url}/settle`` with
  ``{"x402Version", "paymentPayload", "paymentRequirements"}``, ``GET {url}/supported``; any
  status but 200 is a failure, its body unread).
- ``CallbackSettler(fn)``: a function of ``(payload, requirements)``, sync or async, answering
  a ``SettlementResult`` or the facilitator's JSON dict.

``settle_with_retry`` retries what a facilitator answers ``settlement_pending`` (a broadcast
transaction not yet confirmed) a bounded number of times. A settler that raises becomes a
failed result (``unexpected_settle_error``): settlement failures are reported, never dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CallbackSettler",
    "HTTPFacilitatorSettler",
    "SETTLEMENT_PENDING",
    "SettlementResult",
    "Settler",
    "settle_with_retry",
]

log = logging.getLogger("x402_verify.settlers")

SETTLEMENT_PENDING = "settlement_pending"
UNEXPECTED_SETTLE_ERROR = "unexpected_settle_error"
# A facilitator answer is a small JSON object; anything larger is refused before parsing.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class SettlementResult:
    """A facilitator's settle answer (x402 ``SettleResponse``)."""

    success: bool
    transaction: str = ""
    network: str = ""
    payer: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
    amount: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire shape (``success``, ``transaction`` and ``network`` always present)."""
        out: dict[str, Any] = {"success": self.success}
        if self.error_reason is not None:
            out["errorReason"] = self.error_reason
        if self.error_message is not None:
            out["errorMessage"] = self.error_message
        if self.payer is not None:
            out["payer"] = self.payer
        out["transaction"] = self.transaction
        out["network"] = self.network
        if self.amount is not None:
            out["amount"] = self.amount
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, network: str = "") -> SettlementResult:
        """Reads a facilitator's JSON answer; a malformed one raises ``ValueError``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("success"), bool):
            raise ValueError("a settle answer is an object with a boolean 'success'")

        def text(name: str) -> str | None:
            value = data.get(name)
            if value is None:
                return None
            if not isinstance(value, str):
                raise ValueError(f"settle answer field {name!r} is not a string")
            return value

        known = {"success", "transaction", "network", "payer", "errorReason", "errorMessage", "amount"}
        return cls(
            success=data["success"],
            transaction=text("transaction") or "",
            network=text("network") or network,
            payer=text("payer"),
            error_reason=text("errorReason"),
            error_message=text("errorMessage"),
            amount=text("amount"),
            extra={k: v for k, v in data.items() if k not in known and k in ("extensions", "extra")},
        )

    @classmethod
    def failure(cls, reason: str, message: str, network: str = "") -> SettlementResult:
        return cls(success=False, error_reason=reason, error_message=message, network=network)

    @property
    def pending(self) -> bool:
        """The SDK's rule: ``settlement_pending`` with a transaction to reconcile against."""
        return not self.success and self.error_reason == SETTLEMENT_PENDING and bool(self.transaction)


@runtime_checkable
class Settler(Protocol):
    async def settle(self, payload: Mapping[str, Any], requirements: Mapping[str, Any]) -> SettlementResult: ...


def _json_safe(obj: Any) -> Any:
    """The SDK's ``_to_json_safe``: integers past 2**53 travel as strings."""
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int) and obj > 2**53:
        return str(obj)
    if isinstance(obj, Mapping):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def request_body(payload: Mapping[str, Any], requirements: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``/verify`` and ``/settle``, as ``HTTPFacilitatorClient`` builds it."""
    version = payload.get("x402Version", 2)
    return {"x402Version": version, "paymentPayload": _json_safe(payload), "paymentRequirements": _json_safe(requirements)}


class HTTPFacilitatorSettler:
    """Settles through an x402 facilitator's HTTP API (needs httpx: ``x402-verify[asgi]``).

    Args:
        url: the facilitator's base URL (``/settle`` and ``/supported`` are appended).
        timeout: seconds per request (the SDK's default is 90).
        headers: extra headers for every request (authentication).
        client: an ``httpx.AsyncClient`` to use (not closed by ``aclose``).
    """

    def __init__(self, url: str, *, timeout: float = 90.0, headers: Mapping[str, str] | None = None, client: Any = None) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("HTTPFacilitatorSettler needs httpx: pip install 'x402-verify[asgi]'") from exc
        self._httpx = httpx
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._client = client
        self._owns_client = client is None

    def _async_client(self) -> Any:
        if self._client is None:
            self._client = self._httpx.AsyncClient(timeout=self.timeout, follow_redirects=True)
        return self._client

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._async_client().post(f"{self.url}{path}", headers=self._headers, json=body)
        if response.status_code != 200:
            raise ValueError(f"facilitator {path} answered HTTP {response.status_code}")
        if len(response.content) > MAX_ANSWER_BYTES:
            raise ValueError(f"facilitator {path} answer is larger than {MAX_ANSWER_BYTES} bytes")
        return json.loads(response.content)

    async def settle(self, payload: Mapping[str, Any], requirements: Mapping[str, Any]) -> SettlementResult:
        network = str(requirements.get("network", ""))
        data = await self._post("/settle", request_body(payload, requirements))
        return SettlementResult.from_dict(data, network=network)

    async def verify(self, payload: Mapping[str, Any], requirements: Mapping[str, Any]) -> dict[str, Any]:
        """The facilitator's own verdict (``{"isValid": ...}``), for callers that want it."""
        data = await self._post("/verify", request_body(payload, requirements))
        if not isinstance(data, dict) or not isinstance(data.get("isValid"), bool):
            raise ValueError("a verify answer is an object with a boolean 'isValid'")
        return data

    def get_supported(self) -> dict[str, Any]:
        """``GET /supported``, synchronously (as the SDK calls it at start-up)."""
        with self._httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
            response = client.get(f"{self.url}/supported", headers=self._headers)
        if response.status_code != 200:
            raise ValueError(f"facilitator /supported answered HTTP {response.status_code}")
        data = json.loads(response.content[:MAX_ANSWER_BYTES])
        if not isinstance(data, dict) or not isinstance(data.get("kinds"), list):
            raise ValueError("a /supported answer is an object with a 'kinds' list")
        return data

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class CallbackSettler:
    """Settles by calling ``fn(payload, requirements)``: sync (run in a worker thread) or async;
    it answers a ``SettlementResult`` or a facilitator-shaped dict."""

    def __init__(self, fn: Callable[[Mapping[str, Any], Mapping[str, Any]], SettlementResult | Mapping[str, Any] | Awaitable[Any]]) -> None:
        self.fn = fn
        self._async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004 (is the instance's __call__ async?)

    async def settle(self, payload: Mapping[str, Any], requirements: Mapping[str, Any]) -> SettlementResult:
        if self._async:
            answer = await self.fn(payload, requirements)  # type: ignore[misc]
        else:
            answer = await asyncio.to_thread(self.fn, payload, requirements)
            if inspect.isawaitable(answer):
                answer = await answer
        if isinstance(answer, SettlementResult):
            return answer
        return SettlementResult.from_dict(answer, network=str(requirements.get("network", "")))


async def settle_with_retry(
    settler: Settler,
    payload: Mapping[str, Any],
    requirements: Mapping[str, Any],
    *,
    attempts: int = 3,
    backoff: float = 0.5,
) -> SettlementResult:
    """Settles, retrying a ``settlement_pending`` answer up to ``attempts`` calls in all (the
    SDK retries once). A settler that raises gives a failed result carrying the error."""
    network = str(requirements.get("network", ""))
    result = SettlementResult.failure(UNEXPECTED_SETTLE_ERROR, "not attempted", network)
    for attempt in range(max(1, attempts)):
        try:
            result = await settler.settle(payload, requirements)
        except Exception as exc:
            log.warning("settlement failed: %s: %s", type(exc).__name__, exc)
            return SettlementResult.failure(UNEXPECTED_SETTLE_ERROR, f"{type(exc).__name__}: {exc}"[:500], network)
        if not result.pending:
            return result
        if attempt + 1 < attempts:
            await asyncio.sleep(backoff * (2**attempt))
    return result
