"""What ``/verify``, ``/settle`` and ``/release`` do, apart from HTTP.

Replay protection and settlement, in one place:

- ``/verify`` verifies and reserves (``Verifier.verify_batch`` through the micro-batcher, so
  concurrent requests share one call): of concurrent verifies of one payment exactly one is
  valid; the others are replays.
- ``/settle`` verifies too (the time window is checked again). A payment that no ``/verify``
  reserved (the SDK's ``paymentFlow: "upfront"``, or a reservation that expired) is reserved
  here first; one that an earlier ``/verify`` reserved is taken over through the store, which
  keeps the reservation's owner token. Then the settlement ledger is claimed (one holder, under
  a lease), an upto charge is checked against the signed maximum by the store, the reservation
  is closed as settled (from here no ``/release`` can free it), and the payment goes to the
  settler. The ledger keeps the answer. Closing before the broadcast fails closed: a payment
  whose settlement failed stays used here, and its payer signs a new one.
- **A retry.** Only the first ``/settle`` of a payment can answer ``success: true``. Any later
  one gets ``success: false, errorReason: "duplicate_settlement"`` with the original
  ``transaction`` and ``network`` (so a resource server that lost the first answer can reconcile
  by the transaction), or, while the first is still running, ``duplicate_settlement`` with an
  empty transaction; a failed settlement answers the same failure again. A replayed request
  can therefore never obtain a fresh success for a payment already settled (x402 #452, #1805).
- ``/release`` (authenticated) frees a reservation that no settlement has claimed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from x402_verify._batching import MicroBatcher
from x402_verify._core import VerifyResponse
from x402_verify.errors import NonceStoreError, ReservationError
from x402_verify.facilitator.envelope import Envelope, bounded, dumps
from x402_verify.facilitator.metrics import Metrics
from x402_verify.ledger import FAILED, SETTLED, SETTLING, Ledger
from x402_verify.settlers import SettlementResult, Settler, settle_with_retry
from x402_verify.verifier import Verifier

__all__ = ["DUPLICATE_SETTLEMENT", "Limits", "Service"]

log = logging.getLogger("x402_verify.facilitator")

T = TypeVar("T")

REPLAY_CODES = frozenset({"permit2_nonce_already_used", "invalid_exact_evm_nonce_already_used"})
DUPLICATE_SETTLEMENT = "duplicate_settlement"
UNEXPECTED_VERIFY_ERROR = "unexpected_verify_error"
UNEXPECTED_SETTLE_ERROR = "unexpected_settle_error"
NO_SETTLER = "no_settler"
# Records outlive the authorization by this much (the stores' default margin).
KEEP_MARGIN = 60.0


@dataclass(frozen=True)
class Limits:
    """Bounds on every request. Sizes in bytes, times in seconds."""

    max_body_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024
    max_json_depth: int = 32
    verify_timeout: float = 10.0
    settle_timeout: float = 60.0
    max_upstream: int = 16  # concurrent calls to the settler
    max_batch: int = 256  # items per verify_batch call
    max_inflight: int = 2  # verify_batch calls running at once per worker (the batcher's threads)
    settle_attempts: int = 3  # calls per settlement while the settler answers settlement_pending

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_header_bytes", "max_json_depth", "max_upstream", "max_batch", "max_inflight", "settle_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("verify_timeout", "settle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


def _verdict(resp: VerifyResponse) -> dict[str, Any]:
    return resp.to_dict()


def _invalid(reason: str, message: str, payer: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"isValid": False, "invalidReason": reason, "invalidMessage": message}
    if payer:
        out["payer"] = payer
    return out


def _failure(reason: str, message: str, network: str, payer: str | None = None, transaction: str = "") -> dict[str, Any]:
    # transaction and network always present: the SDK's SettleResponse requires both.
    out: dict[str, Any] = {"success": False, "errorReason": reason, "errorMessage": message}
    if payer:
        out["payer"] = payer
    out["transaction"] = transaction
    out["network"] = network
    return out


def _amount(value: Any) -> int | None:
    """An atomic amount as x402 writes it (a canonical decimal string), else None."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 78:
        return None
    if len(value) > 1 and value[0] == "0":
        return None
    n = int(value)
    return n if n < 2**256 else None


def _permitted(payload: dict[str, Any]) -> str | None:
    """The signed maximum of an upto payload (``permit2Authorization.permitted.amount``), read
    only to verify the payment against it; the verifier judges it."""
    try:
        value = payload["payload"]["permit2Authorization"]["permitted"]["amount"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


class Service:
    """The facilitator's logic over a ``Verifier`` (with its nonce store), a settlement
    ``Ledger`` and a ``Settler`` (None: ``/settle`` answers ``no_settler``)."""

    def __init__(self, verifier: Verifier, ledger: Ledger, settler: Settler | None, limits: Limits, metrics: Metrics) -> None:
        if verifier.nonce_store is None:
            raise ValueError("the facilitator needs a verifier with a nonce store (replay protection)")
        self.verifier = verifier
        self.store = verifier.nonce_store
        self.ledger = ledger
        self.settler = settler
        self.limits = limits
        self.metrics = metrics
        self._upstream: asyncio.Semaphore | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._requirements: dict[bytes, dict[str, Any]] = {}
        self.batcher: MicroBatcher[tuple[bytes, dict[str, Any]], VerifyResponse] = MicroBatcher(
            self._verify_batch, max_batch=limits.max_batch, max_inflight=limits.max_inflight, on_orphan=self._release_orphan
        )

    # --- verification -------------------------------------------------------------------------

    def _verify_batch(self, items: list[tuple[bytes, dict[str, Any]]]) -> list[VerifyResponse]:
        self.metrics.batch_size.observe(len(items))
        return self.verifier.verify_batch(items)

    def _release_orphan(self, _item: Any, resp: VerifyResponse) -> None:
        # A request that timed out (or whose client left) while its batch ran: the reservation
        # it would have answered valid is freed, so the payment is not lost to nobody.
        if resp.is_valid and resp.reservation is not None:
            try:
                self.verifier.release(resp)
            except (ReservationError, NonceStoreError) as exc:
                log.warning("could not free an orphaned reservation: %s", exc)

    async def _verify_one(self, payload: dict[str, Any], requirements: dict[str, Any]) -> VerifyResponse | None:
        """The verdict, or None when it did not come within the verify timeout. The payload
        goes to the verifier as JSON bytes: the core copies bytes and parses them with the GIL
        released, in parallel, where a dict is walked under the GIL, stalling the event loop."""
        try:
            return await bounded(self.batcher.submit((dumps(payload), self._shared(requirements))), self.limits.verify_timeout)
        except asyncio.TimeoutError:
            return None

    def _shared(self, requirements: dict[str, Any]) -> dict[str, Any]:
        """One object for equal requirements: a route's requirements arrive as a fresh dict on
        every request, and the verifier reads each distinct object once per batch (under the
        GIL), so equal ones are handed over as the same object. Bounded: cleared when full."""
        key = dumps(requirements)
        found = self._requirements.get(key)
        if found is None:
            if len(self._requirements) >= 1024:
                self._requirements.clear()
            found = self._requirements[key] = requirements
        return found

    def _count(self, endpoint: str, resp: VerifyResponse) -> None:
        key = (endpoint, resp.scheme or "unknown", "valid" if resp.is_valid else (resp.invalid_reason or ""))
        child = self._counted.get(key)
        if child is None:  # reasons are a closed catalogue: the cache stays small
            child = self._counted[key] = self.metrics.verifications.labels(*key)
        child.inc()

    async def _store(self, op: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking store / ledger call, off the event loop, timed and counted."""
        start = time.perf_counter()
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (NonceStoreError, OSError):
            self.metrics.store_errors.labels(op).inc()
            raise
        finally:
            self.metrics.store_latency.labels(op).observe(time.perf_counter() - start)

    @staticmethod
    def _version_mismatch(env: Envelope) -> str | None:
        inner = env.payload.get("x402Version")
        if type(inner) is int and inner != env.version:
            return f"x402Version is {env.version} in the request but {inner} in paymentPayload"
        return None

    async def verify(self, env: Envelope) -> dict[str, Any]:
        mismatch = self._version_mismatch(env)
        if mismatch:
            return _invalid("invalid_x402_version", mismatch)
        resp = await self._verify_one(env.payload, env.requirements)
        if resp is None:
            self.metrics.verifications.labels("verify", "unknown", UNEXPECTED_VERIFY_ERROR).inc()
            return _invalid(UNEXPECTED_VERIFY_ERROR, f"verification did not finish within {self.limits.verify_timeout} s")
        self._count("verify", resp)
        return _verdict(resp)

    # --- settlement ---------------------------------------------------------------------------

    def _upto_terms(self, env: Envelope) -> tuple[dict[str, Any], int | None] | str:
        """For upto: the requirements to verify against (the signed maximum as ``amount``) and
        the amount to charge; otherwise the requirements as given. A string: what is wrong."""
        if env.requirements.get("scheme") != "upto":
            return env.requirements, None
        charge = _amount(env.requirements.get("amount"))
        if charge is None:
            return "paymentRequirements.amount (the amount to settle) is not a canonical decimal amount"
        permitted = _permitted(env.payload)
        verify_req = env.requirements if permitted is None else {**env.requirements, "amount": permitted}
        return verify_req, charge

    async def settle(self, env: Envelope) -> dict[str, Any]:
        network = env.requirements.get("network")
        network = network if isinstance(network, str) else ""
        mismatch = self._version_mismatch(env)
        if mismatch:
            return self._settled(_failure("invalid_x402_version", mismatch, network), "invalid")
        terms = self._upto_terms(env)
        if isinstance(terms, str):
            return self._settled(_failure("invalid_payment_requirements", terms, network), "invalid")
        verify_req, charge = terms
        resp = await self._verify_one(env.payload, verify_req)
        if resp is None:
            return self._settled(_failure(UNEXPECTED_SETTLE_ERROR, f"verification did not finish within {self.limits.verify_timeout} s", network), "timeout")
        self._count("settle", resp)
        payer = resp.payer
        try:
            if resp.is_valid:
                owner = resp.reservation
            elif resp.invalid_reason in REPLAY_CODES and resp.replay_key is not None:
                found = await self._reserved_owner(resp, network)
                if isinstance(found, dict):
                    return found
                owner = found
            else:
                return self._settled(_failure(resp.invalid_reason or "invalid_payload", resp.invalid_message or "", network, payer), "invalid")
            assert owner is not None and resp.replay_key is not None
            return await self._settle_reserved(env, resp, owner, charge, network)
        except NonceStoreError as exc:
            log.warning("settle: store unavailable: %s", exc)
            return self._settled(_failure("nonce_store_unavailable", f"replay protection could not answer ({exc}); not settled", network, payer), "store_error")

    async def _reserved_owner(self, resp: VerifyResponse, network: str) -> str | dict[str, Any]:
        """The owner of the reservation an earlier request made (read from the store, which
        keeps it), or the answer when there is nothing left to settle."""
        assert resp.replay_key is not None
        record = await self._store("ledger_get", self.ledger.get, resp.replay_key.hex())
        if record is not None and record.get("state") in (SETTLED, FAILED, SETTLING):
            return self._again(record, network, resp.payer)
        state = await self._store("store_state", self.store.state, resp.replay_key)
        if state is None:
            # The reservation expired between the verdict and now: the authorization is dead.
            return self._settled(_failure(resp.invalid_reason or "", resp.invalid_message or "", network, resp.payer), "invalid")
        if state[0] == "settled":
            return self._settled(
                _failure(DUPLICATE_SETTLEMENT, "this payment's nonce is already settled", network, resp.payer), "duplicate"
            )
        owner: str = state[1]
        return owner

    def _again(self, record: dict[str, str], network: str, payer: str | None) -> dict[str, Any]:
        """The answer to a ``/settle`` of a payment whose settlement was claimed before."""
        state = record.get("state")
        if state == SETTLING:
            return self._settled(_failure(DUPLICATE_SETTLEMENT, "another request is settling this payment", network, payer), "duplicate")
        try:
            outcome = json.loads(record.get("outcome") or "{}")
        except ValueError:
            outcome = {}
        if state == FAILED and isinstance(outcome, dict) and outcome.get("success") is False:
            # The same answer as the first time: a failure stays a failure.
            answer = {**outcome, "transaction": str(outcome.get("transaction") or ""), "network": str(outcome.get("network") or network)}
            return self._settled(answer, "failed_again")
        tx = str(outcome.get("transaction") or "") if isinstance(outcome, dict) else ""
        where = str(outcome.get("network") or network) if isinstance(outcome, dict) else network
        message = f"this payment was settled already (transaction {tx or 'none'}); a settlement is reported successful once"
        return self._settled(_failure(DUPLICATE_SETTLEMENT, message, where, payer or outcome.get("payer"), transaction=tx), "duplicate")

    async def _settle_reserved(self, env: Envelope, resp: VerifyResponse, owner: str, charge: int | None, network: str) -> dict[str, Any]:
        key = resp.replay_key
        assert key is not None
        holder = secrets.token_hex(12)
        keep_until = float(resp.valid_until or time.time()) + KEEP_MARGIN
        record = await self._store(
            "ledger_acquire", self.ledger.acquire, key.hex(), holder,
            lease_seconds=self.limits.settle_timeout * self.limits.settle_attempts + 30,
            record={"network": network, "payer": resp.payer or ""}, keep_until=keep_until,
        )  # fmt: skip
        if record is None:
            again = await self._store("ledger_get", self.ledger.get, key.hex())
            return self._again(again or {"state": SETTLING}, network, resp.payer)
        if self.settler is None:
            answer = _failure(NO_SETTLER, "this facilitator has no upstream settler configured; nothing was broadcast", network, resp.payer)
            await self._store("ledger_finish", self.ledger.finish, key.hex(), holder, state=FAILED, outcome=json.dumps(answer))
            return self._settled(answer, "failed")
        try:
            if charge is not None:
                await self._store("store_charge", self.verifier.charge, key, charge, owner=owner)
            # Closed before anything is broadcast: from here no /release can free it.
            await self._store("store_settle", self.verifier.settle, key, owner=owner)
        except ReservationError as exc:
            answer = _failure(exc.code, exc.message, network, resp.payer)
            await self._store("ledger_finish", self.ledger.finish, key.hex(), holder, state=FAILED, outcome=json.dumps(answer))
            return self._settled(answer, "failed")
        task = asyncio.ensure_future(self._upstream_settle(env, key.hex(), holder, network, resp.payer))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            # Shielded: a request that gives up does not abandon a broadcast half-way; the
            # outcome is still stored for whoever asks next.
            return await asyncio.wait_for(asyncio.shield(task), self.limits.settle_timeout * self.limits.settle_attempts)
        except asyncio.TimeoutError:
            return self._settled(
                _failure(UNEXPECTED_SETTLE_ERROR, "the settlement did not finish in time; it goes on, and its outcome is kept", network, resp.payer),
                "timeout",
            )

    async def _upstream_settle(self, env: Envelope, key: str, holder: str, network: str, payer: str | None) -> dict[str, Any]:
        assert self.settler is not None
        if self._upstream is None:
            self._upstream = asyncio.Semaphore(self.limits.max_upstream)
        start = time.perf_counter()
        async with self._upstream:
            try:
                result = await asyncio.wait_for(
                    settle_with_retry(self.settler, env.payload, env.requirements, attempts=self.limits.settle_attempts),
                    self.limits.settle_timeout * self.limits.settle_attempts,
                )
            except asyncio.TimeoutError:
                self.metrics.upstream_errors.inc()
                result = SettlementResult.failure(UNEXPECTED_SETTLE_ERROR, "the settler did not answer in time", network)
        self.metrics.upstream_latency.observe(time.perf_counter() - start)
        if not result.success and result.error_reason == UNEXPECTED_SETTLE_ERROR:
            self.metrics.upstream_errors.inc()
        answer = result.to_dict()
        answer["network"] = answer.get("network") or network
        if payer and not answer.get("payer"):
            answer["payer"] = payer
        try:
            await self._store("ledger_finish", self.ledger.finish, key, holder, state=SETTLED if result.success else FAILED, outcome=json.dumps(answer))
        except NonceStoreError as exc:  # the answer still goes out; the lease runs out later
            log.warning("settle: could not record the outcome: %s", exc)
        return self._settled(answer, "success" if result.success else "failed")

    def _settled(self, answer: dict[str, Any], outcome: str) -> dict[str, Any]:
        self.metrics.settlements.labels(outcome).inc()
        return answer

    # --- release --------------------------------------------------------------------------

    async def release(self, env: Envelope) -> dict[str, Any]:
        terms = self._upto_terms(env)
        verify_req = terms[0] if not isinstance(terms, str) else env.requirements
        resp = await self._verify_one(env.payload, verify_req)
        if resp is None:
            return {"released": False, "reason": UNEXPECTED_VERIFY_ERROR, "message": "verification did not finish in time"}
        try:
            if resp.is_valid:
                # Nobody held it: the verify just reserved it, so undo that.
                await self._store("store_release", self.verifier.release, resp)
                return {"released": False, "reason": "not_reserved", "message": "no reservation was held for this payment"}
            if resp.invalid_reason not in REPLAY_CODES or resp.replay_key is None:
                return {"released": False, "reason": resp.invalid_reason, "message": resp.invalid_message}
            record = await self._store("ledger_get", self.ledger.get, resp.replay_key.hex())
            if record is not None:
                return {"released": False, "reason": "reservation_closed", "message": f"a settlement of this payment is {record.get('state')}"}
            state = await self._store("store_state", self.store.state, resp.replay_key)
            if state is None:
                return {"released": False, "reason": "reservation_not_found", "message": "no live reservation under this key"}
            await self._store("store_release", self.verifier.release, resp.replay_key, owner=state[1])
        except ReservationError as exc:
            return {"released": False, "reason": exc.code, "message": exc.message}
        except NonceStoreError as exc:
            return {"released": False, "reason": "nonce_store_unavailable", "message": str(exc)}
        return {"released": True}

    async def aclose(self) -> None:
        for task in list(self._background):
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except (asyncio.TimeoutError, Exception):
                pass
        self.batcher.close()
        close = getattr(self.settler, "aclose", None)
        if close is not None:
            await close()
