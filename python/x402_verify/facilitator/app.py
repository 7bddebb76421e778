"""The ASGI app: routing, authentication, bounds, and the x402 facilitator wire.

Pure ASGI (no framework on the hot path). Every answer is JSON; nothing raised inside reaches
the server as a 500: a fault the app did not foresee is logged and answered as a verdict
(``unexpected_verify_error`` / ``unexpected_settle_error``, HTTP 200), which the SDK's client
reads as a refusal, never as an accept.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from x402_verify.facilitator import envelope
from x402_verify.facilitator.envelope import EnvelopeError, bounded, dumps
from x402_verify.facilitator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from x402_verify.facilitator.metrics import Metrics
from x402_verify.facilitator.service import UNEXPECTED_SETTLE_ERROR, UNEXPECTED_VERIFY_ERROR, Service

log = logging.getLogger("x402_verify.facilitator")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]

Supported = Callable[[], Awaitable[dict[str, Any]]]


class FacilitatorApp:
    """``POST /verify``, ``POST /settle``, ``POST /release`` (only with ``auth_token``),
    ``GET /supported``, ``GET /health``, ``GET /metrics``."""

    def __init__(
        self, service: Service, metrics: Metrics, supported: Supported, health: Callable[[], Awaitable[dict[str, Any]]],
        auth_token: str | None = None,
    ) -> None:  # fmt: skip
        self.service = service
        self.metrics = metrics
        self.limits = service.limits
        self._supported = supported
        self._health = health
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._token = None if not auth_token else b"Bearer " + auth_token.encode()
        self._routes: dict[str, tuple[str, Callable[..., Awaitable[dict[str, Any]]] | None, bool]] = {
            "/verify": ("POST", service.verify, True),
            "/settle": ("POST", service.settle, True),
            "/release": ("POST", service.release if self._token else None, True),
            "/supported": ("GET", None, False),
            "/health": ("GET", None, False),
            "/metrics": ("GET", None, False),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets: not served (the server closes the connection)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.service.aclose()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        path: str = scope.get("path", "")
        route = path if path in self._routes else "other"
        status, body, ctype = 500, b"", _JSON
        try:
            status, body, ctype = await self._answer(scope, receive, path)
        except EnvelopeError as exc:
            self.metrics.envelope_errors.labels(exc.code).inc()
            status, body = exc.status, dumps(exc.body())
        except Exception:  # never a 500 or a traceback on the wire
            log.exception("unexpected fault answering %s", path)
            status = 200
            answer = (
                {"success": False, "errorReason": UNEXPECTED_SETTLE_ERROR, "errorMessage": "internal fault; not settled", "transaction": "", "network": ""}
                if path == "/settle"
                else {"isValid": False, "invalidReason": UNEXPECTED_VERIFY_ERROR, "invalidMessage": "internal fault; refused"}
            )
            body = dumps(answer)
        headers = [*ctype, (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        counted = self._children.get((route, status))
        if counted is None:  # labels() takes a lock and builds a key: once per pair
            counted = self._children[(route, status)] = (self.metrics.requests.labels(route, str(status)), self.metrics.latency.labels(route))
        counted[0].inc()
        counted[1].observe(time.perf_counter() - start)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        given = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                given = bytes(value)
                break
        return hmac.compare_digest(given, self._token)

    async def _answer(self, scope: Scope, receive: Receive, path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        entry = self._routes.get(path)
        if entry is None or (entry[0] == "POST" and entry[1] is None):
            raise EnvelopeError(404, "not_found", f"no such endpoint: {path[:100]}")
        method, handler, protected = entry
        if scope.get("method") != method:
            raise EnvelopeError(405, "method_not_allowed", f"{path} takes {method}")
        if sum(len(k) + len(v) for k, v in scope["headers"]) > self.limits.max_header_bytes:
            raise EnvelopeError(400, "headers_too_large", f"the headers are over {self.limits.max_header_bytes} bytes")
        if method == "GET":
            if path == "/metrics":
                return 200, self.metrics.render(), [(b"content-type", METRICS_CONTENT_TYPE.encode())]
            if path == "/health":
                answer = await self._health()
                return (200 if answer.get("status") == "ok" else 503), dumps(answer), _JSON
            return 200, dumps(await self._supported()), _JSON
        if protected and self._token is not None and not self._authorized(scope):
            raise EnvelopeError(401, "unauthorized", "a valid bearer token is required")
        try:
            body = await bounded(envelope.read_body(scope, receive, self.limits.max_body_bytes), self.limits.verify_timeout)
        except asyncio.TimeoutError:
            raise EnvelopeError(400, "body_timeout", f"the body did not arrive within {self.limits.verify_timeout} s") from None
        env = envelope.parse(scope, body, self.limits.max_json_depth)
        assert handler is not None
        return 200, dumps(await handler(env)), _JSON
