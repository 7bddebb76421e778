"""The facilitator's ASGI app: ``POST /verify``, ``POST /settle``, ``GET /supported``,
``GET /health``, ``GET /metrics`` and, with an auth token, ``POST /release``.

The wire is the x402 SDK's (``HTTPFacilitatorClient``): a body ``{"x402Version",
"paymentPayload", "paymentRequirements"}``; HTTP 200 for every verdict and every settlement
outcome; 400 with ``{"error": ..., "message": ...}`` for a fault of the envelope (not JSON, too
large, too deep, a member missing or not an object, an unknown ``x402Version``). Every check is
the ``Verifier``'s; this module moves bytes, batches, and keeps the settlement bookkeeping.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from x402_verify import _core
from x402_verify._batching import MicroBatcher, SerialBatcher
from x402_verify.asgi import Message, Receive, Scope, Send
from x402_verify.errors import NonceStoreError, ReservationError
from x402_verify.facilitator.config import FacilitatorConfig, open_store
from x402_verify.facilitator.metrics import CONTENT_TYPE_LATEST, Metrics
from x402_verify.ledger import FAILED, SETTLED, SETTLING
from x402_verify.settlers import SETTLEMENT_PENDING, UNEXPECTED_SETTLE_ERROR, HTTPFacilitatorSettler, SettlementResult, Settler, settle_with_retry
from x402_verify.verifier import Verifier

__all__ = ["FacilitatorApp", "create_app", "reservation_owner"]

log = logging.getLogger("x402_verify.facilitator")


UNEXPECTED_VERIFY_ERROR = "unexpected_verify_error"  # x402's code for a verify that could not finish
EXCEEDS = "invalid_upto_evm_payload_settlement_exceeds_amount"
MAX_DRAIN_BYTES = 32 * 1024 * 1024  # an oversized body is read (and dropped) this far at most
_JSON = [(b"content-type", b"application/json")]


class EnvelopeFault(Exception):
    """A request the service cannot read: answered 400 with ``{"error": code, "message": ...}``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def read_envelope(body: bytes, max_depth: int) -> tuple[bytes, bytes, int]:
    """``(paymentPayload, paymentRequirements, x402Version)`` of a request body, the two members
    as their JSON text (the verifier reads them as it reads any payment), or ``EnvelopeFault``.
    The rules are the core's (``x402_verify_core::x402::envelope``): the body is read once, in
    Rust, and never built as Python objects on the way to ``/verify``'s checks."""
    out = _core.read_envelope(body, max_depth)
    if len(out) == 2:
        raise EnvelopeFault(out[0], out[1])
    version, payload, requirements = out
    return payload, requirements, version


def reservation_owner(store: Any, key: bytes) -> tuple[str, str] | None:
    """``(state, owner)`` of the reservation the store holds under ``key`` ("reserved" or
    "settled"), else None. The one place the service looks up a reservation another worker or
    process made (``/verify`` there, ``/settle`` or ``/release`` here)."""
    found = store.state(key)
    if found is None:
        return None
    state, owner = found[0], found[1]
    return str(state), str(owner)


class _ItemError:
    """A batch item that made ``verify_batch`` raise: answered as an invalid verdict."""

    def __init__(self, exc: BaseException) -> None:
        self.message = f"{type(exc).__name__}: {exc}"[:300]


def _to_reserve(verdict: Any) -> bool:
    """Whether a verdict of the checks is a valid payment's (one the reserve stage takes)."""
    return not isinstance(verdict, _ItemError) and bool(verdict.is_valid)


class FacilitatorApp:
    """The ASGI app (see the module docs); ``create_app`` builds it."""

    def __init__(self, config: FacilitatorConfig, *, verifier: Verifier | None = None, settler: Settler | None = None, claims: Any = None) -> None:
        from x402_verify.facilitator.claims import open_claims

        self.config = config
        self.verifier = verifier if verifier is not None else Verifier(
            networks=list(config.networks), facilitator_addresses=list(config.facilitator_addresses), nonce_store=open_store(config.store),
            threads=config.threads,
        )  # fmt: skip
        self.store = self.verifier.nonce_store
        self.claims = claims if claims is not None else open_claims(config.store)
        self.settler: Settler | None = settler
        if settler is None and config.upstream is not None:
            self.settler = HTTPFacilitatorSettler(config.upstream, timeout=config.upstream_timeout)
        self.metrics = Metrics()
        # A store outside the process (SQLite, Redis) reserves in a stage of its own: one commit
        # at a time, holding every payment verified while the previous one ran, so the checks of
        # the next batch overlap the commit (an fsync) instead of waiting behind it. The checks'
        # threads hand the valid payments to it directly; their callers hear from it alone.
        self.reserver: SerialBatcher[Any, Any] | None = None
        if self.store is not None and not isinstance(self.store, _core.MemoryNonceStore) and not self.verifier.chain_checked:
            self.reserver = SerialBatcher(
                self._reserve_batch, max_batch=config.max_batch * config.max_inflight, gate=getattr(self.store, "writer", None), on_orphan=self._release_orphan
            )  # fmt: skip
        self.batcher: MicroBatcher[tuple[Any, Any], Any] = MicroBatcher(
            self._verify_batch, max_batch=config.max_batch, max_inflight=config.max_inflight, on_orphan=self._release_orphan,
            then=self.reserver, goes_on=_to_reserve, on_loop=self._checks_on_loop(config.checks),
        )  # fmt: skip
        self._token = None if config.auth_token is None else config.auth_token.encode("ascii")
        # POST endpoints but /verify (which has _verify_within); /release only with a token.
        self._handlers: dict[str, Any] = {"/settle": self._settle, **({"/release": self._release} if self._token is not None else {})}
        self._upstream_slots: asyncio.Semaphore | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._holder = secrets.token_hex(8)
        self._supported = self._local_supported(list(config.facilitator_addresses))
        self._supported_body = json.dumps(self._supported).encode()
        self.sweeps = 0

    def _checks_on_loop(self, checks: str) -> bool:
        # Checks that read chain state (and then reserve as they verify) wait on the network and
        # the store: on the loop they would stall every request of the worker.
        if checks == "loop" and self.verifier.chain_checked:
            raise ValueError("checks='loop' with a verifier that reads chain state: its checks wait on the network; use 'threads' or 'auto'")
        return checks != "threads" and not self.verifier.chain_checked

    # --- the verifier's calls ------------------------------------------------------------

    def _verify_batch(self, items: list[tuple[Any, Any]]) -> list[Any]:
        start = time.perf_counter()
        reserve = self.reserver is None  # else the reserve stage reserves the valid ones
        try:
            results: list[Any] = self.verifier.verify_batch(items, reserve=reserve)
        except Exception:
            # One item the verifier could not take must not fail the others: one at a time.
            results = []
            for item in items:
                try:
                    results.append(self.verifier.verify_batch([item], reserve=reserve)[0])
                except Exception as exc:
                    results.append(_ItemError(exc))
        self.metrics.batch_sizes.observe(len(items))
        self.metrics.batch_seconds.observe(time.perf_counter() - start)
        return results

    def _reserve_batch(self, verdicts: list[Any]) -> list[Any]:
        start = time.perf_counter()
        try:
            results: list[Any] = self.verifier.reserve(verdicts)  # a store that fails answers every item refused
        finally:
            self.metrics.store_seconds.labels("reserve").observe(time.perf_counter() - start)
        return results

    def _release_orphan(self, _item: Any, response: Any) -> None:
        if _to_reserve(response) and response.reservation is not None:
            self.verifier.release(response)

    async def _store_call(self, op: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (NonceStoreError, OSError):
            self.metrics.store_errors.labels(op).inc()
            raise
        finally:
            self.metrics.store_seconds.labels(op).observe(time.perf_counter() - start)

    # --- /supported ----------------------------------------------------------------------

    def _local_supported(self, addresses: list[str]) -> dict[str, Any]:
        v1_names = {chain: name for name, chain in _core.V1_NETWORK_NAMES.items()}
        kinds: list[dict[str, Any]] = []
        for network in self.config.networks:
            kinds.append({"x402Version": 2, "scheme": "exact", "network": network})
            if addresses:
                kinds.append({"x402Version": 2, "scheme": "upto", "network": network, "extra": {"facilitatorAddress": addresses[0]}})
        for network in self.config.networks:
            chain_id = _core.caip2_chain_id(network)
            name = None if chain_id is None else v1_names.get(chain_id)
            if name is not None:
                kinds.append({"x402Version": 1, "scheme": "exact", "network": name})
        return {"kinds": kinds, "extensions": [], "signers": {"eip155:*": addresses} if addresses else {}}

    async def _learn_upstream(self) -> None:
        """Without ``facilitator_addresses``, the upstream's own signers (its ``/supported``)."""
        get = getattr(self.settler, "get_supported", None)
        if self.config.facilitator_addresses or get is None:
            return
        try:
            data = await asyncio.wait_for(asyncio.to_thread(get), self.config.upstream_timeout)
            signers = data.get("signers") if isinstance(data, dict) else None
            found = [a for a in (signers or {}).get("eip155:*", []) if isinstance(a, str)]
            for kind in data.get("kinds", []):
                addr = (kind.get("extra") or {}).get("facilitatorAddress") if isinstance(kind, dict) else None
                if isinstance(addr, str) and addr not in found:
                    found.insert(0, addr)
        except Exception as exc:
            log.warning("upstream /supported unavailable, upto not offered: %s: %s", type(exc).__name__, str(exc)[:200])
            return
        if found:
            self._supported = self._local_supported(found)
            self._supported_body = json.dumps(self._supported).encode()

    # --- lifespan ------------------------------------------------------------------------

    async def startup(self) -> None:
        self._upstream_slots = asyncio.Semaphore(self.config.max_upstream)
        await self._learn_upstream()
        if self.config.sweep_interval > 0 and hasattr(self.store, "sweep"):
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            await self.sweep()

    async def sweep(self) -> None:
        """Frees reservations whose authorization died without a ``/settle``."""
        try:
            await self._store_call("sweep", self.store.sweep)
            self.sweeps += 1
        except Exception as exc:
            log.warning("sweep failed: %s: %s", type(exc).__name__, str(exc)[:200])

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.config.upstream_timeout)
        closer = getattr(self.settler, "aclose", None)
        if closer is not None:
            await closer()
        self.batcher.close()
        if self.reserver is not None:
            self.reserver.close()

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        status, headers, body, endpoint = await self._route(scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.answered(endpoint, status, time.perf_counter() - start)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _json(status: int, obj: Any, endpoint: str) -> tuple[int, list[tuple[bytes, bytes]], bytes, str]:
        return status, _JSON, json.dumps(obj, separators=(",", ":")).encode(), endpoint

    def _fault(self, fault: EnvelopeFault, endpoint: str) -> tuple[int, list[tuple[bytes, bytes]], bytes, str]:
        return self._json(fault.status, {"error": fault.code, "message": fault.message}, endpoint)

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes, str]:
        method, path = scope.get("method", ""), scope.get("path", "")
        handler = self._handlers.get(path)
        if handler is not None or path == "/verify":
            if method != "POST":
                return self._json(405, {"error": "method_not_allowed", "message": f"{path} takes POST"}, path)
            try:
                self._check_headers(scope)
                body = await self._body(scope, receive)
                payload, requirements, version = read_envelope(body, self.config.max_json_depth)
            except EnvelopeFault as fault:
                return self._fault(fault, path)
            if path == "/verify":
                return await self._verify_within(payload, requirements)
            # /settle and /release pass the payment on and keep its terms: they need it built.
            return await self._bounded(handler, json.loads(payload), json.loads(requirements), version, path)
        if path in ("/supported", "/health", "/metrics"):
            if method not in ("GET", "HEAD"):
                return self._json(405, {"error": "method_not_allowed", "message": f"{path} takes GET"}, path)
            if path == "/supported":
                return 200, _JSON, self._supported_body, path
            if path == "/health":
                # The event loop serving it ("uvloop" or "asyncio"): what the server picked.
                loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
                return self._json(200, {"status": "ok", "loop": loop}, path)
            return 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], self.metrics.render(), path
        return self._json(404, {"error": "not_found", "message": f"no endpoint {path[:100]!r}"}, "other")

    def _check_headers(self, scope: Scope) -> None:
        total = 0
        content_type = auth = None
        length = None
        for k, v in scope.get("headers") or ():
            total += len(k) + len(v)
            if k == b"content-type":
                content_type = bytes(v)
            elif k == b"authorization":
                auth = bytes(v)
            elif k == b"content-length":
                length = bytes(v)
        if total > self.config.max_header_bytes:
            raise EnvelopeFault("headers_too_large", f"request headers exceed {self.config.max_header_bytes} bytes")
        if self._token is not None and not hmac.compare_digest(auth or b"", b"Bearer " + self._token):
            raise EnvelopeFault("unauthorized", "a valid 'Authorization: Bearer <token>' header is required", 401)
        if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
            raise EnvelopeFault("unsupported_media_type", "the body must be sent as Content-Type: application/json")
        if length is not None and not length.isdigit():
            raise EnvelopeFault("invalid_envelope", "Content-Length is not a number")

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        limit = self.config.max_body_bytes
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise EnvelopeFault("disconnected", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._drain(receive, message, size)
                raise EnvelopeFault("body_too_large", f"the body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, receive: Receive, message: Message, size: int) -> None:
        """Reads and drops the rest of an oversized body (kept: nothing), so the client gets the
        400 rather than a reset connection; bounded by MAX_DRAIN_BYTES and two seconds."""
        deadline = time.monotonic() + 2.0
        while message.get("more_body", False) and size <= MAX_DRAIN_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                return
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))

    async def _bounded(
        self, handler: Any, payload: dict[str, Any], requirements: dict[str, Any], version: int, path: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, str]:
        # The work runs in its own task: a settlement that outlives the request timeout still
        # finishes its bookkeeping (and its claim keeps others from settling it meanwhile).
        # (/verify has _verify_within: nothing of it outlives its request.)
        task = asyncio.get_running_loop().create_task(handler(payload, requirements, version))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        done, _ = await asyncio.wait({task}, timeout=self.config.request_timeout)
        network = str(requirements.get("network", ""))
        if task in done and task.exception() is None:
            answer: dict[str, Any] = task.result()
            return self._json(200, answer, path)
        if task in done:
            log.error("%s failed: %s", path, task.exception(), exc_info=task.exception())
        else:
            log.warning("%s took longer than %ss", path, self.config.request_timeout)
        if path == "/settle":
            return self._json(
                200,
                {"success": False, "errorReason": UNEXPECTED_SETTLE_ERROR, "errorMessage": "settlement did not finish", "transaction": "", "network": network},
                path,
            )
        return self._json(200, {"released": False, "reason": "release did not finish"}, path)

    async def _verify_within(self, payload: bytes, requirements: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes, str]:
        """``/verify`` bounded by the request timeout as ``_bounded`` bounds the others, with no
        task of its own and one timer: the timer cancels the future being waited on (answered
        by the checks, or by the reserve stage for a valid payment), and a reservation made for
        a cancelled one is undone (on_orphan)."""
        waiting = self.batcher.submit_nowait((payload, requirements))
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            waiting.cancel()

        timer = asyncio.get_running_loop().call_later(self.config.request_timeout, expire)
        verdict: Any = None
        try:
            verdict = await waiting
        except asyncio.CancelledError:
            if not expired:  # the request itself was cancelled
                waiting.cancel()
                raise
            log.warning("/verify took longer than %ss", self.config.request_timeout)
            verdict = None
        except Exception as exc:
            log.error("/verify failed: %s", exc, exc_info=exc)
            verdict = None
        finally:
            timer.cancel()
        if verdict is None:
            return self._json(200, {"isValid": False, "invalidReason": UNEXPECTED_VERIFY_ERROR, "invalidMessage": "verification did not finish"}, "/verify")
        self._count("verify", verdict)
        if isinstance(verdict, _ItemError):
            return self._json(200, {"isValid": False, "invalidReason": "invalid_payload", "invalidMessage": verdict.message}, "/verify")
        return 200, _JSON, verdict.to_json(), "/verify"

    # --- the endpoints -------------------------------------------------------------------

    async def _check(self, endpoint: str, payload: dict[str, Any], requirements: dict[str, Any]) -> Any:
        verdict = await self.batcher.submit((payload, requirements))  # reserved too, when valid
        self._count(endpoint, verdict)
        return verdict

    def _count(self, endpoint: str, verdict: Any) -> None:
        if isinstance(verdict, _ItemError):
            self.metrics.verdict(endpoint, None, "invalid_payload")
        else:
            self.metrics.verdict(endpoint, verdict.scheme, verdict.invalid_reason)
            if verdict.invalid_reason == "nonce_store_unavailable":
                self.metrics.store_errors.labels("reserve").inc()

    def _replayed(self, verdict: Any) -> bool:
        return verdict.invalid_reason in _core.REPLAY_REASONS.values() and verdict.replay_key is not None

    async def _settle(self, payload: dict[str, Any], requirements: dict[str, Any], _version: int) -> dict[str, Any]:
        network = str(requirements.get("network", ""))

        def failed(reason: str, message: str, payer: str | None = None, transaction: str = "") -> dict[str, Any]:
            self.metrics.settlements.labels(reason).inc()
            out: dict[str, Any] = {"success": False, "errorReason": reason, "errorMessage": message, "transaction": transaction, "network": network}
            if payer:
                out["payer"] = payer
            return out

        if self.settler is None:
            return failed(UNEXPECTED_SETTLE_ERROR, "this facilitator has no upstream to settle with (x402-verify serve --upstream URL)")
        verdict = await self._check("settle", payload, self._terms(payload, requirements))
        if isinstance(verdict, _ItemError):
            return failed("invalid_payload", verdict.message)
        if verdict.is_valid:
            key, owner = verdict.replay_key, verdict.reservation  # not reserved before: reserved now (upfront, or after a restart)
        elif self._replayed(verdict):
            key = verdict.replay_key
            try:
                found = await self._store_call("state", reservation_owner, self.store, key)
            except Exception:
                return failed("nonce_store_unavailable", "the nonce store did not answer", verdict.payer)
            if found is None:
                return failed(verdict.invalid_reason, verdict.invalid_message or "", verdict.payer)
            if found[0] == "settled":
                return await self._settled_answer(key.hex(), verdict, failed)
            owner = found[1]
        else:
            return failed(verdict.invalid_reason or "invalid_payload", verdict.invalid_message or "", verdict.payer)
        return await self._settle_reserved(key, owner, verdict, payload, requirements, failed)

    @staticmethod
    def _terms(payload: dict[str, Any], requirements: dict[str, Any]) -> dict[str, Any]:
        """The terms a payment is checked against at settle. For upto, ``amount`` in /settle is
        what to charge, not what was offered: the payment is checked against the amount its
        ``accepted`` offer names (the signed maximum), and the charge against that maximum."""
        accepted = payload.get("accepted")
        if requirements.get("scheme") == "upto" and isinstance(accepted, dict) and "amount" in accepted:
            return {**requirements, "amount": accepted["amount"]}
        return requirements

    async def _settled_answer(self, key: str, verdict: Any, failed: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """A settled payment presented again: never a fresh success (x402 #452, #1805). The replay
        reason, with the transaction of the settlement when it is still on record."""
        transaction = ""
        try:
            record = await self._store_call("claim_get", self.claims.get, key)
        except Exception:
            record = None
        if record is not None and record.get("state") == FAILED and record.get("outcome"):
            earlier: dict[str, Any] = json.loads(record["outcome"])  # a failed settlement answers as it did
            self.metrics.settlements.labels(str(earlier.get("errorReason") or "failed")).inc()
            return earlier
        if record is not None and record.get("outcome"):
            transaction = str(json.loads(record["outcome"]).get("transaction") or "")
        elif record is not None and record.get("state") == SETTLING:
            return failed(SETTLEMENT_PENDING, "another request is settling this payment", verdict.payer)
        reason = _core.REPLAY_REASONS[verdict.nonce_space or "permit2"]
        return failed(reason, "this payment was settled already; see its transaction", verdict.payer, transaction)

    async def _settle_reserved(
        self, key: bytes, owner: str, verdict: Any, payload: dict[str, Any], requirements: dict[str, Any], failed: Callable[..., dict[str, Any]]
    ) -> dict[str, Any]:
        holder = f"{self._holder}:{secrets.token_hex(4)}"
        record = {"owner": owner, "network": str(requirements.get("network", ""))}
        keep_until = float((verdict.valid_until or 0) + 3600)
        lease = self.config.upstream_timeout + 30.0
        try:
            acquired = await self._store_call("claim", self.claims.acquire, key.hex(), holder, lease_seconds=lease, record=record, keep_until=keep_until)
        except Exception:
            return failed("nonce_store_unavailable", "the settlement ledger did not answer", verdict.payer)
        if acquired is None:  # another request settles (or settled) it: its outcome answers
            return await self._settled_answer(key.hex(), verdict, failed)
        if verdict.scheme == "upto_permit2":
            try:
                amount = int(str(requirements.get("amount")))
                await self._store_call("charge", self.verifier.charge, key, amount, owner=owner)
            except ReservationError as exc:
                out = failed(EXCEEDS if "exceed" in exc.code or "cap" in exc.code else exc.code, exc.message, verdict.payer)
                await self._finish(key, holder, FAILED, out)
                return out
            except (ValueError, TypeError, NonceStoreError) as exc:
                out = failed("invalid_payment_requirements", f"the amount to settle: {str(exc)[:200]}", verdict.payer)
                await self._finish(key, holder, FAILED, out)
                return out
        result = await self._upstream(payload, requirements)
        if result.success:
            try:
                await self._store_call("settle", self.verifier.settle, key, owner=owner)
            except (ReservationError, NonceStoreError) as exc:
                log.warning("settled upstream but the nonce store refused to mark it: %s", exc)
        answer = result.to_dict()
        if verdict.payer and "payer" not in answer:
            answer["payer"] = verdict.payer
        self.metrics.settlements.labels("success" if result.success else result.error_reason or "failed").inc()
        await self._finish(key, holder, SETTLED if result.success else FAILED, answer)
        return answer

    async def _finish(self, key: bytes, holder: str, state: str, answer: dict[str, Any]) -> None:
        try:
            await self._store_call("claim_finish", self.claims.finish, key.hex(), holder, state=state, outcome=json.dumps(answer))
        except Exception as exc:
            log.warning("could not record a settlement's outcome (its claim lease runs out): %s", exc)

    async def _upstream(self, payload: dict[str, Any], requirements: dict[str, Any]) -> SettlementResult:
        assert self.settler is not None
        network = str(requirements.get("network", ""))
        slots = self._upstream_slots or asyncio.Semaphore(self.config.max_upstream)
        start = time.perf_counter()
        try:
            async with slots:
                result = await asyncio.wait_for(settle_with_retry(self.settler, payload, requirements, attempts=2, backoff=0.25), self.config.upstream_timeout)
        except asyncio.TimeoutError:
            self.metrics.upstream_errors.inc()
            return SettlementResult.failure(UNEXPECTED_SETTLE_ERROR, f"the upstream did not answer in {self.config.upstream_timeout}s", network)
        finally:
            self.metrics.upstream_seconds.observe(time.perf_counter() - start)
        if not result.success and result.error_reason == UNEXPECTED_SETTLE_ERROR:
            self.metrics.upstream_errors.inc()
        return result

    async def _release(self, payload: dict[str, Any], requirements: dict[str, Any], _version: int) -> dict[str, Any]:
        verdict = await self._check("release", payload, self._terms(payload, requirements))
        if isinstance(verdict, _ItemError):
            return {"released": False, "reason": verdict.message}
        if verdict.is_valid:  # nobody held it: the check just reserved it, so undo that
            await self._store_call("release", self.verifier.release, verdict)
            return {"released": False, "reason": "this payment was not reserved"}
        if not self._replayed(verdict):
            return {"released": False, "reason": verdict.invalid_reason}
        key = verdict.replay_key
        found = await self._store_call("state", reservation_owner, self.store, key)
        if found is None or found[0] != "reserved":
            return {"released": False, "reason": "settled" if found else "this payment was not reserved"}
        if await self._store_call("claim_get", self.claims.get, key.hex()) is not None:
            return {"released": False, "reason": "a settlement of this payment was attempted"}
        try:
            await self._store_call("release", self.verifier.release, key, owner=found[1])
        except ReservationError as exc:
            return {"released": False, "reason": exc.code}
        return {"released": True}


def create_app(
    config: FacilitatorConfig | None = None, *, verifier: Verifier | None = None, settler: Settler | None = None, claims: Any = None, **options: Any
) -> FacilitatorApp:
    """The facilitator as an ASGI app.

    ``config`` (or its fields as keywords: ``create_app(store="sqlite:///x.db", upstream=url)``);
    ``verifier`` / ``settler`` / ``claims`` replace what the config would build (a ``Verifier``
    over the config's store, an ``HTTPFacilitatorSettler`` for ``upstream``, the claim ledger
    that goes with the store: x402_verify.facilitator.claims)."""
    if config is None:
        config = FacilitatorConfig(**options)
    elif options:
        raise TypeError("pass a FacilitatorConfig or its fields as keywords, not both")
    return FacilitatorApp(config, verifier=verifier, settler=settler, claims=claims)
