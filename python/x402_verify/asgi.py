"""``PaymentMiddleware``: a pure ASGI middleware that verifies x402 payments before the app
spends compute, settles them after, and runs upto sessions.

    app.add_middleware(PaymentMiddleware, routes=ROUTES, verifier=Verifier(...), settler=HTTPFacilitatorSettler(url))
    app = PaymentMiddleware(app, routes=ROUTES, settler=...)            # or wrap any ASGI app

Per paid request (routes: ``x402_verify.routes``):

- No payment: 402 with ``PAYMENT-REQUIRED`` (base64 v2 ``PaymentRequired``) and a v1
  ``PaymentRequirementsResponse`` JSON body, so v1 and v2 clients both learn the terms.
- ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1): verified in a micro-batch
  (``x402_verify._batching``) off the event loop, and its nonce reserved. A bad one: 402 with
  ``error`` set to the reason code (v2: in ``PAYMENT-REQUIRED``, body ``{}``; v1: in the JSON
  body).
- exact: the handler runs; if it raises, or answers >= 400, the reservation is released (the
  same payment may be presented again). Otherwise the payment is settled when the handler has
  answered and before its body is sent (the response then carries ``PAYMENT-RESPONSE`` /
  ``X-PAYMENT-RESPONSE``; a failed settlement answers 402 with the failure in that header and the
  body is not sent). ``"settle": "before"`` settles before the handler instead.
- Streamed bodies (``text/event-stream``, or a first body message with ``more_body``) pass
  through unbuffered. By default they are settled when the stream ends: the client has the
  status and headers already, so it sees no ``PAYMENT-RESPONSE``; the outcome goes to
  ``on_settlement`` and the ledger. ``"streamSettle": "start"`` settles before the first byte
  (the header is then present, and a failure is a 402 instead of the stream).
- upto: the first request opens a session (answered with ``X-Upto-Session: <id>``); later
  requests resume it by presenting the same header again or only ``X-Upto-Session``. Each
  request charges the option's ``hold`` before the handler (402
  ``invalid_upto_evm_payload_settlement_exceeds_amount`` past the signed maximum) and is trued
  down to its ``cost`` after; a ``streamCost`` charges each chunk before it is sent and the
  stream is cut at the cap. A background reaper settles each session once, with the total
  charged, when it has been idle for ``idle_timeout``, is exhausted, or nears its deadline.
  A refunded hold is credited at settlement but still counts against the signed maximum
  (the stores only add), so a session whose requests were refunded ends a little early.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from x402_verify._batching import MicroBatcher
from x402_verify._core import REPLAY_REASONS
from x402_verify.errors import NonceStoreError, ReservationError
from x402_verify.header import decode_payment_header
from x402_verify.ledger import FAILED, OPEN, SETTLED, Ledger, MemoryLedger
from x402_verify.routes import PaymentOption, Route, RouteTable
from x402_verify.settlers import CallbackSettler, SettlementResult, Settler, settle_with_retry
from x402_verify.stores import MemoryNonceStore
from x402_verify.verifier import Verifier

__all__ = ["BatchConfig", "PaymentMiddleware", "SessionConfig"]

log = logging.getLogger("x402_verify.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXCEEDS = "invalid_upto_evm_payload_settlement_exceeds_amount"
REPLAY_CODES = tuple(REPLAY_REASONS.values())  # a replay's reason, whichever nonce space
MAX_SESSION_ID = 64


@dataclass(frozen=True)
class BatchConfig:
    """The micro-batcher: most items per ``verify_batch`` call, how long a batch may wait for
    more while another runs (seconds; a request finding the pipeline idle never waits), and how
    many batches run at once."""

    max_batch: int = 256
    max_wait: float = 0.0
    max_inflight: int = 2


@dataclass(frozen=True)
class SessionConfig:
    """Upto sessions and the reaper (seconds)."""

    idle_timeout: float = 100.0  # og-x402's gateway default
    deadline_margin: float = 30.0  # settle this long before the authorization's deadline
    reap_interval: float = 1.0
    lease_seconds: float = 60.0  # a settling worker's hold on a record
    settle_on_shutdown: bool | None = None  # None: when the ledger is in memory (nothing survives)
    resume_wait: float = 0.05  # a resume racing the session's opening waits this long at most


@dataclass
class _Exchange:
    """One paid request's progress through the send wrapper."""

    held_start: Message | None = None
    started: bool = False  # status and headers went to the client
    body_started: bool = False
    streamed: bool = False
    settled: SettlementResult | None = None
    released: bool = False
    refused: bool = False  # a failed settlement replaced the response: swallow the app's body
    status: int = 0
    body_bytes: int = 0
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class _StreamCut(Exception):
    """Raised into the app's ``send`` when an upto stream reaches its cap."""


def _is_stream_cut(exc: BaseException) -> bool:
    if isinstance(exc, _StreamCut):
        return True
    inner = getattr(exc, "exceptions", None)  # an exception group from the app's task group
    return isinstance(inner, tuple) and bool(inner) and all(_is_stream_cut(e) for e in inner)


def _b64json(obj: Any) -> bytes:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return bytes(v).decode("latin-1")
    return None


def _url(scope: Scope) -> str:
    host = _header(scope, b"host") or "localhost"
    qs = scope.get("query_string") or b""
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope.get('path', '/')}" + (f"?{qs.decode('latin-1')}" if qs else "")


class PaymentMiddleware:
    """The gateway middleware (see the module docs).

    Args:
        app: the ASGI app to protect.
        routes: paid routes in the SDK's route-config shape (``x402_verify.routes``).
        verifier: a ``Verifier`` (default: one accepting the routes' networks, in-memory store).
        settler: a ``Settler`` (``HTTPFacilitatorSettler(url)``, ``CallbackSettler(fn)``).
        ledger: where settlement state lives (default ``MemoryLedger()``; ``RedisLedger`` to
            share sessions between replicas, with a ``RedisNonceStore`` in the verifier).
        facilitator_address: the upto witness's facilitator, for options that do not name one.
        batch / sessions: ``BatchConfig`` / ``SessionConfig``.
        settle_attempts: settle calls per payment when the facilitator says ``settlement_pending``.
        on_settlement: called with ``(record, SettlementResult)`` after each settlement.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[str, Mapping[str, Any]],
        settler: Settler | Callable[..., Any],
        verifier: Verifier | None = None,
        ledger: Ledger | None = None,
        facilitator_address: str | None = None,
        batch: BatchConfig = BatchConfig(),
        sessions: SessionConfig = SessionConfig(),
        settle_attempts: int = 3,
        on_settlement: Callable[[Mapping[str, str], SettlementResult], Any] | None = None,
    ) -> None:
        self.app = app
        self.routes = RouteTable(routes, facilitator_address=facilitator_address)
        if verifier is None:
            verifier = Verifier(networks=sorted({o.network for r in self.routes.routes for o in r.options}))
        self.verifier = verifier
        self.settler: Settler = settler if isinstance(settler, Settler) else CallbackSettler(settler)
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.sessions = sessions
        self.settle_attempts = settle_attempts
        self.on_settlement = on_settlement
        self.batcher: MicroBatcher[tuple[str, dict[str, Any]], Any] = MicroBatcher(
            self._verify_batch, max_batch=batch.max_batch, max_wait=batch.max_wait, max_inflight=batch.max_inflight,
            on_orphan=self._release_orphan,
        )  # fmt: skip
        # In-memory stores answer in microseconds: calling them on the loop beats a thread hop.
        store = verifier.nonce_store
        self._inline = isinstance(self.ledger, MemoryLedger) and (store is None or isinstance(store, MemoryNonceStore))
        self._reaper: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._holder = secrets.token_hex(8)
        self._settling: set[asyncio.Task[Any]] = set()

    # --- plumbing ---------------------------------------------------------------------------

    def _verify_batch(self, items: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        return self.verifier.verify_batch(items)

    def _release_orphan(self, _item: Any, response: Any) -> None:
        if response.is_valid and response.reservation is not None:
            self.verifier.release(response)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._inline:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        route = self.routes.match(scope.get("method", "GET"), scope.get("path", "/"), raw.decode("latin-1") if raw else None)
        if route is None:
            await self.app(scope, receive, send)
            return
        if self._reaper is None:
            self.start()
        await self._paid(route, scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped

    def start(self) -> None:
        """Starts the reaper on the running loop (lifespan startup does it; so does the first
        paid request)."""
        if self._reaper is None:
            self._wake = asyncio.Event()
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever(), name="x402-reaper")

    async def aclose(self) -> None:
        """Stops the reaper; with an in-memory ledger (or ``settle_on_shutdown``) settles every
        open session first, since nothing would be left to settle them; then closes the
        settler (its ``aclose``, if it has one). Lifespan shutdown calls it."""
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass
            self._reaper = None
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        flush = self.sessions.settle_on_shutdown
        if flush is None:
            flush = isinstance(self.ledger, MemoryLedger)
        if flush:
            for _ in range(10_000):  # bounded: each pass settles up to 100
                if not await self.reap(everything=True):
                    break
        closer = getattr(self.settler, "aclose", None)
        if closer is not None:
            await closer()
        self.batcher.close()

    # --- 402 answers ------------------------------------------------------------------------

    def _payment_required(
        self, route: Route, scope: Scope, error: str, version: int, message: str | None = None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        url = route.resource or _url(scope)
        accepts = [o.requirements for o in route.options]
        required = {
            "x402Version": 2,
            "error": error,
            "resource": {"url": url, "description": route.description, "mimeType": route.mime_type},
            "accepts": accepts,
        }
        v1 = [r for r in (o.requirements_v1(url, route.description, route.mime_type) for o in route.options) if r is not None]
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), (b"payment-required", _b64json(required))]
        if version == 2:  # 0: unpaid, so the body serves v1 clients
            body = b"{}"
        else:
            doc: dict[str, Any] = {"x402Version": 1, "error": error, "accepts": v1}
            if message:
                doc["message"] = message
            body = json.dumps(doc, separators=(",", ":")).encode()
        return 402, headers, body

    async def _answer(self, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _refuse(self, route: Route, scope: Scope, send: Send, error: str, version: int, message: str | None = None) -> None:
        await self._answer(send, *self._payment_required(route, scope, error, version, message))

    @staticmethod
    def _response_header(version: int, result: SettlementResult) -> tuple[bytes, bytes]:
        return (b"payment-response" if version == 2 else b"x-payment-response", _b64json(result.to_dict()))

    # --- the paid request -------------------------------------------------------------------

    async def _paid(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        sig = _header(scope, b"payment-signature")
        xpay = None if sig else _header(scope, b"x-payment")
        header = sig or xpay
        version = 1 if xpay else 2
        session_id = _header(scope, b"x-upto-session")
        if header is None:
            if session_id is not None and any(o.scheme == "upto" for o in route.options):
                await self._resume(route, scope, receive, send, self._lookup_session(session_id), version)
                return
            await self._refuse(route, scope, send, "Payment required", 0)
            return
        option = self._select(route, header)
        requirements = self._requirements(option, route, scope, version)
        try:
            response = await self.batcher.submit((header, requirements))
        except Exception as exc:  # the verifier raising is a server fault: refuse, never serve
            log.exception("verification failed")
            await self._refuse(route, scope, send, "unexpected_verify_error", version, f"{type(exc).__name__}")
            return
        if response.is_valid:
            if response.scheme == "upto_permit2":
                record = await self._open_session(route, option, response, header, requirements, version)
                await self._serve_session(route, option, scope, receive, send, record, version)
            else:
                await self._serve_exact(route, scope, receive, send, response, header, requirements, version)
            return
        if response.scheme == "upto_permit2" and response.invalid_reason in REPLAY_CODES and response.replay_key is not None:
            await self._resume(route, scope, receive, send, self._lookup_key(response.replay_key.hex()), version)
            return
        await self._refuse(route, scope, send, response.invalid_reason or "invalid_payload", version, response.invalid_message)

    def _select(self, route: Route, header: str) -> PaymentOption:
        if len(route.options) == 1:
            return route.options[0]
        try:
            payload = decode_payment_header(header)
        except Exception:  # the verifier reports the reason against the first option
            return route.options[0]
        accepted = payload.get("accepted") if isinstance(payload.get("accepted"), dict) else None
        scheme = (accepted or payload).get("scheme")
        network = (accepted or payload).get("network")
        return route.select(scheme if isinstance(scheme, str) else None, network if isinstance(network, str) else None, accepted)

    @staticmethod
    def _requirements(option: PaymentOption, route: Route, scope: Scope, version: int) -> dict[str, Any]:
        if version == 1:
            v1 = option.requirements_v1(route.resource or _url(scope), route.description, route.mime_type)
            if v1 is not None:
                return v1
        return option.requirements

    # --- exact ------------------------------------------------------------------------------

    async def _settle_exact(self, response: Any, header: str, requirements: dict[str, Any], route: Route) -> SettlementResult:
        key = response.replay_key.hex()
        holder = f"{self._holder}:{secrets.token_hex(4)}"
        record = {
            "kind": "exact", "owner": response.reservation, "route": route.key, "network": str(requirements.get("network")),
            "payload": header, "requirements": json.dumps(requirements), "due_at": "0",
        }  # fmt: skip
        keep_until = float((response.valid_until or 0) + 60)
        acquired = await self._call(self.ledger.acquire, key, holder, lease_seconds=self.sessions.lease_seconds, record=record, keep_until=keep_until)
        if acquired is None:  # another worker settles (or settled) it: its outcome is the answer
            return self._stored_outcome(await self._call(self.ledger.get, key), requirements)
        result = await settle_with_retry(self.settler, decode_payment_header(header), requirements, attempts=self.settle_attempts)
        await self._finish(key, holder, acquired, response.reservation, result)
        return result

    async def _finish(self, key: str, holder: str, record: Mapping[str, str], owner: str | None, result: SettlementResult) -> None:
        if result.success and owner is not None:
            try:
                await self._call(self.verifier.settle, bytes.fromhex(key), owner=owner)
            except (ReservationError, NonceStoreError) as exc:
                # Settled upstream: the chain now guards the nonce; report the store's refusal.
                log.warning("settled upstream but the nonce store refused to mark it: %s", exc)
        await self._call(self.ledger.finish, key, holder, state=SETTLED if result.success else FAILED, outcome=json.dumps(result.to_dict()))
        if not result.success:
            log.warning("settlement failed for %s: %s %s", key, result.error_reason, result.error_message)
        if self.on_settlement is not None:
            try:
                outcome = self.on_settlement(record, result)
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:
                log.exception("on_settlement failed")

    @staticmethod
    def _stored_outcome(record: Mapping[str, str] | None, requirements: Mapping[str, Any]) -> SettlementResult:
        if record is not None and record.get("outcome"):
            return SettlementResult.from_dict(json.loads(record["outcome"]))
        return SettlementResult.failure("settlement_pending", "another worker is settling this payment", str(requirements.get("network", "")))

    async def _serve_exact(
        self, route: Route, scope: Scope, receive: Receive, send: Send, response: Any, header: str, requirements: dict[str, Any], version: int
    ) -> None:
        ex = _Exchange()

        async def release() -> None:
            if not ex.released and ex.settled is None:
                ex.released = True
                try:
                    await self._call(self.verifier.release, response)
                except (ReservationError, NonceStoreError) as exc:
                    log.warning("could not release a reservation (it expires on its own): %s", exc)

        if route.settle == "before":
            ex.settled = await self._settle_exact(response, header, requirements, route)
            if not ex.settled.success:
                status, headers, body = self._payment_required(route, scope, ex.settled.error_reason or "unexpected_settle_error", version)
                await self._answer(send, status, headers + [self._response_header(version, ex.settled)], b"{}" if version == 2 else body)
                return
            ex.extra_headers.append(self._response_header(version, ex.settled))

        async def settle_now() -> bool:
            if ex.settled is None:
                ex.settled = await self._settle_exact(response, header, requirements, route)
                ex.extra_headers.append(self._response_header(version, ex.settled))
            return ex.settled.success

        async def send_start(start: Message) -> None:
            start = dict(start)
            start["headers"] = list(start.get("headers") or []) + ex.extra_headers
            ex.started = True
            await send(start)

        async def wrapped(message: Message) -> None:
            kind = message["type"]
            if ex.refused:
                return
            if kind == "http.response.start":
                ex.status = int(message["status"])
                if ex.status >= 400:
                    await release()
                    await send_start(message)
                    return
                content_type = next((bytes(v) for k, v in message.get("headers") or () if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/event-stream"):
                    ex.streamed = True
                    if route.stream_settle == "start" and not await settle_now():
                        await refuse()
                        return
                    await send_start(message)
                    return
                ex.held_start = message  # until the first body message says whether it streams
                return
            if kind == "http.response.body":
                more = bool(message.get("more_body", False))
                if ex.held_start is not None:
                    start, ex.held_start = ex.held_start, None
                    ex.streamed = more
                    settle_first = ex.status < 400 and (not more or route.stream_settle == "start")
                    if settle_first and not await settle_now():
                        await refuse()
                        return
                    await send_start(start)
                ex.body_started = ex.body_started or bool(message.get("body"))
                await send(message)
                if not more and ex.streamed and ex.status < 400 and ex.settled is None:
                    await settle_detached()
                return
            await send(message)

        async def settle_detached() -> None:
            # Once the last byte is out, frameworks cancel the app's task (Starlette's
            # StreamingResponse does when the server reports the finished response as a
            # disconnect): the settlement runs in its own task and outlives that.
            task = asyncio.get_running_loop().create_task(settle_now())
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            await asyncio.shield(task)

        async def refuse() -> None:
            ex.refused = True
            assert ex.settled is not None
            status, headers, body = self._payment_required(route, scope, ex.settled.error_reason or "unexpected_settle_error", version)
            await self._answer(send, status, headers + [self._response_header(version, ex.settled)], b"{}" if version == 2 else body)

        try:
            await self.app(scope, receive, wrapped)
        except BaseException:
            if not ex.started:
                await release()
            elif ex.status < 400 and ex.settled is None:
                await settle_detached()  # part of the body went out: it was served
            raise
        if ex.held_start is not None:  # a start with no body message: send it as an empty answer
            await wrapped({"type": "http.response.body", "body": b"", "more_body": False})
        elif not ex.started and not ex.refused:
            await release()
        elif ex.status < 400 and ex.settled is None and ex.started:
            await settle_detached()  # a stream the app ended without a final message

    # --- upto sessions ----------------------------------------------------------------------

    def _due(self, deadline: float, now: float) -> float:
        return min(now + self.sessions.idle_timeout, deadline - self.sessions.deadline_margin)

    async def _open_session(
        self, route: Route, option: PaymentOption, response: Any, header: str, requirements: dict[str, Any], version: int
    ) -> dict[str, str]:
        now = time.time()
        deadline = float(response.valid_until or 0)
        record = {
            "kind": "upto", "owner": response.reservation, "session": secrets.token_urlsafe(24), "route": route.key,
            "network": option.network, "pay_to": option.pay_to.lower(), "asset": option.asset.lower(),
            "cap": str(response.authorization.amount), "deadline": repr(deadline), "payload": header,
            "requirements": json.dumps(requirements), "x402_version": str(version), "last_seen": repr(now),
            "due_at": repr(self._due(deadline, now)),
        }  # fmt: skip
        key = response.replay_key.hex()
        record["key"] = key
        await self._call(self.ledger.open, key, record, keep_until=deadline + 60)
        return record

    def _lookup_session(self, session_id: str) -> Callable[[], Awaitable[dict[str, str] | None]]:
        async def find() -> dict[str, str] | None:
            if not session_id or len(session_id) > MAX_SESSION_ID:
                return None
            found: dict[str, str] | None = await self._call(self.ledger.find_session, session_id)
            return found

        return find

    def _lookup_key(self, key: str) -> Callable[[], Awaitable[dict[str, str] | None]]:
        async def find() -> dict[str, str] | None:
            found: dict[str, str] | None = await self._call(self.ledger.get, key)
            return found

        return find

    async def _resume(
        self, route: Route, scope: Scope, receive: Receive, send: Send, find: Callable[[], Awaitable[dict[str, str] | None]], version: int
    ) -> None:
        record = await find()
        waited = 0.0
        while record is None and waited < self.sessions.resume_wait:  # its opener may not have written it yet
            await asyncio.sleep(0.005)
            waited += 0.005
            record = await find()
        if record is None:
            await self._refuse(route, scope, send, "reservation_not_found", version, "no open upto session under this id or payment")
            return
        option = next(
            (
                o
                for o in route.options
                if o.scheme == "upto"
                and (o.pay_to.lower(), o.asset.lower(), o.network) == (record.get("pay_to"), record.get("asset"), record.get("network"))
            ),
            None,
        )
        if record.get("route") != route.key or option is None:
            await self._refuse(route, scope, send, "invalid_payment_requirements", version, "this upto session is bound to another route, payTo or asset")
            return
        if record.get("state") != OPEN:
            exhausted = record.get("exhausted") == "1"
            await self._refuse(route, scope, send, EXCEEDS if exhausted else "reservation_closed", version, "this upto session is settled")
            return
        if time.time() >= float(record["deadline"]) - self.sessions.deadline_margin:
            await self._refuse(route, scope, send, "permit2_deadline_expired", version, "this upto session is past its deadline")
            return
        await self._serve_session(route, option, scope, receive, send, record, version)

    async def _charge(self, record: Mapping[str, str], amount: int) -> int:
        total: int = await self._call(self.verifier.charge, bytes.fromhex(record["key"]), amount, owner=record["owner"])
        return total

    async def _serve_session(
        self, route: Route, option: PaymentOption, scope: Scope, receive: Receive, send: Send, record: dict[str, str], version: int
    ) -> None:
        key, cap = record["key"], int(record["cap"])
        hold = option.hold
        try:
            total = await self._charge(record, hold)
        except ReservationError as exc:
            if exc.code == EXCEEDS:
                await self._mark_exhausted(key)
            # Closed under us: settled because it was exhausted, or for another reason.
            closed_full = exc.code == "reservation_closed" and (await self._call(self.ledger.get, key) or {}).get("exhausted") == "1"
            await self._refuse(route, scope, send, EXCEEDS if closed_full else exc.code, version, exc.message)
            return
        except NonceStoreError as exc:
            await self._refuse(route, scope, send, "nonce_store_unavailable", version, str(exc))
            return
        ex = _Exchange()
        ex.extra_headers.append((b"x-upto-session", record["session"].encode()))
        streamed_cost = 0
        cut = False

        async def wrapped(message: Message) -> None:
            nonlocal total, streamed_cost, cut
            if cut:
                raise _StreamCut()
            kind = message["type"]
            if kind == "http.response.start":
                ex.status = int(message["status"])
                start = dict(message)
                start["headers"] = list(start.get("headers") or []) + ex.extra_headers
                ex.started = True
                await send(start)
                return
            if kind == "http.response.body" and option.stream_cost is not None and ex.status < 400:
                chunk = bytes(message.get("body") or b"")
                price = int(option.stream_cost(chunk)) if chunk else 0
                if price:
                    try:
                        total = await self._charge(record, price)
                        streamed_cost += price
                    except ReservationError:
                        cut = True  # never an unpaid byte: end the body here
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                        raise _StreamCut() from None
            if kind == "http.response.body":
                ex.body_started = ex.body_started or bool(message.get("body"))
                ex.body_bytes += len(message.get("body") or b"")
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, wrapped)
        except BaseException as exc:
            # Our own cut, possibly wrapped by the framework's task group, ends the body quietly.
            if not _is_stream_cut(exc):
                failed = True
                raise
        finally:
            served = ex.started and ex.status < 400 and not (failed and not ex.body_started)
            if not served:
                refund = hold + streamed_cost if not ex.body_started else hold
            elif callable(option.cost):
                info = {"scope": scope, "status": ex.status, "body_bytes": ex.body_bytes, "streamed_cost": streamed_cost}
                actual = max(0, int(option.cost(info)))
                refund = max(0, hold - actual)
            else:
                refund = 0
            now = time.time()
            exhausted = cap - total < max(hold, 1) or cut
            due = 0.0 if exhausted else self._due(float(record["deadline"]), now)
            try:
                await self._call(self.ledger.touch, key, due_at=due, credit=refund, exhausted=exhausted, now=now)
            except NonceStoreError as exc:
                log.warning("ledger update failed for session %s: %s", key, exc)
            if exhausted and self._wake is not None:
                self._wake.set()

    async def _mark_exhausted(self, key: str) -> None:
        await self._call(self.ledger.touch, key, due_at=0.0, exhausted=True, now=time.time())
        if self._wake is not None:
            self._wake.set()

    # --- the reaper -------------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.sessions.reap_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.reap()
            except Exception:
                log.exception("reaper pass failed")

    async def reap(self, *, everything: bool = False, limit: int = 100) -> int:
        """Settles what is due (idle, exhausted or near-deadline sessions; settlements whose
        worker's lease ran out), or with ``everything`` every open record. Returns how many it
        settled."""
        keys: list[str] = await self._call(self.ledger.due, now=1e18 if everything else None, limit=limit)
        done = 0
        for key in keys:
            if await self._settle_record(key):
                done += 1
        return done

    async def _settle_record(self, key: str) -> bool:
        holder = f"{self._holder}:{secrets.token_hex(4)}"
        record: dict[str, str] | None = await self._call(self.ledger.acquire, key, holder, lease_seconds=self.sessions.lease_seconds)
        if record is None:
            return False
        record.setdefault("key", key)
        try:
            payload = decode_payment_header(record["payload"])
            requirements = json.loads(record["requirements"])
        except Exception as exc:
            result = SettlementResult.failure("unexpected_settle_error", f"stored record unreadable: {exc}")
            await self._finish(key, holder, record, None, result)
            return True
        owner = record.get("owner")
        if record.get("kind") == "upto":
            try:
                total: int = await self._call(self.verifier.settle, bytes.fromhex(key), owner=owner)
            except (ReservationError, NonceStoreError) as exc:
                result = SettlementResult.failure("unexpected_settle_error", f"session total unreadable: {exc}", str(requirements.get("network", "")))
                await self._finish(key, holder, record, None, result)
                return True
            net = max(0, total - int(record.get("credit", "0") or 0))
            requirements = {**requirements, "amount": str(net)}
            if "maxAmountRequired" in requirements:
                requirements["maxAmountRequired"] = str(net)
            result = await settle_with_retry(self.settler, payload, requirements, attempts=self.settle_attempts)
            await self._finish(key, holder, record, None, result)
        else:
            result = await settle_with_retry(self.settler, payload, requirements, attempts=self.settle_attempts)
            await self._finish(key, holder, record, owner, result)
        return True
