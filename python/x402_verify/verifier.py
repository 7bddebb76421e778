"""`Verifier`: the call a gateway makes on every paid request, before it spends compute."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from x402_verify._core import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_PAYER_KEY_CACHE,
    DEFAULT_TIME_BUFFER,
    DEFAULT_VERDICT_CACHE,
    EXACT_PERMIT2_PROXY,
    UPTO_PERMIT2_PROXY,
    V1_NETWORK_NAMES,
    MemoryNonceStore,
    Requirements,
    SignaturePolicy,
    VerifierCore,
    VerifyResponse,
    caip2_chain_id,
    store_refusals,
)
from x402_verify.errors import ReservationError

__all__ = [
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "DEFAULT_TIME_BUFFER",
    "EXACT_PERMIT2_PROXY",
    "UPTO_PERMIT2_PROXY",
    "V1_NETWORK_NAMES",
    "Requirements",
    "Verifier",
]

_MAX_SECONDS = 2**63 - 1  # what the stores (SQLite, Redis) can hold; the core's bound on `now`

_UNSET: Any = object()


def _int(name: str, value: object, lo: int, hi: int) -> int:
    # bool is an int subclass: True would be read as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value}")
    return int(value)


def _cache_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 1 << 24:
        raise ValueError(f"{name} must be an int from 0 (off) to 16777216")
    return int(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid UTF-8 text (lone surrogates): {value!r}") from None
    return str(value)


def _texts(name: str, value: object) -> list[str]:
    # A str is an iterable of one-character strs: almost always a forgotten list.
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be an iterable of str (a list, say), not {type(value).__name__}")
    return [_text(f"{name} item", v) for v in value]


def _names(value: object) -> dict[str, int]:
    names = dict(V1_NETWORK_NAMES)
    if value is None:
        return names
    if not isinstance(value, Mapping):
        raise TypeError(f"network_names must be a mapping of name to chain id, not {type(value).__name__}")
    for k, v in value.items():
        names[_text("a network_names key", k)] = _int(f"network_names[{k!r}]", v, 1, 2**64 - 1)
    return names


def _chain_id(network: object, names: Mapping[str, int]) -> int:
    network = _text("a network", network)
    chain = caip2_chain_id(network)
    if chain is not None:
        return chain
    if network in names:
        return names[network]
    raise ValueError(f"unknown network {network!r}: use eip155:<chainId> or a name from network_names")


def _proxies(value: object) -> tuple[list[str], list[str]]:
    if value is None:
        return [EXACT_PERMIT2_PROXY], [UPTO_PERMIT2_PROXY]
    # Permit2 hashes the calling proxy as spender with that proxy's own witness type, so a proxy
    # of one scheme can never settle the other's permit: one flat list for both would accept
    # permits that revert at settlement. Each scheme names its own.
    if not isinstance(value, Mapping):
        raise TypeError(f"permit2_proxies must be a mapping {{'exact': [...], 'upto': [...]}} (each scheme names its own proxies), not {type(value).__name__}")
    unknown = [k for k in value if k not in ("exact", "upto")]
    if unknown:
        raise ValueError(f"permit2_proxies keys are 'exact' and 'upto', not {unknown!r}")
    exact, upto = _texts("permit2_proxies['exact']", value.get("exact", ())), _texts("permit2_proxies['upto']", value.get("upto", ()))
    for scheme, listed, other in (("exact", exact, UPTO_PERMIT2_PROXY), ("upto", upto, EXACT_PERMIT2_PROXY)):
        if other.lower() in (a.lower() for a in listed):
            raise ValueError(f"permit2_proxies[{scheme!r}] lists {other}, the x402 proxy of the other scheme: it cannot settle {scheme} permits")
    return exact, upto


def _now(now: object) -> int | None:
    return None if now is None else _int("now (unix seconds)", now, 0, _MAX_SECONDS)


def _chain_stage(readers: Mapping[str, Any] | None, enabled: bool | None, names: Mapping[str, int]) -> Any:
    if enabled is None:
        enabled = bool(readers)
    if not enabled:
        return None
    if not readers:
        raise ValueError("chain_checks=True needs chain_readers={network: ChainReader(...)}")
    from x402_verify.chain.checks import ChainChecks

    return ChainChecks({_chain_id(network, names): reader for network, reader in readers.items()})


def _exposure_store(store: Any) -> Any:
    """With chain checks, reservations count what is promised: the store must keep an
    exposure ledger (x402_verify.chain.exposure); the memory store gets one beside it."""
    if isinstance(store, MemoryNonceStore):
        from x402_verify.chain.exposure import MemoryExposureStore

        return MemoryExposureStore(store)
    if getattr(store, "cluster", False):
        raise ValueError("chain checks keep an exposure ledger, which needs a single Redis server, not a cluster (docs/chain.md)")
    if store is not None and not hasattr(store, "reserve_exposed"):
        raise ValueError("chain checks need a nonce store with an exposure ledger (reserve_exposed); see docs/chain.md")
    return store


class Verifier:
    """Verifies x402 payments (exact with EIP-3009 or Permit2, upto with Permit2).

    Every option is keyword-only; an unknown one raises ``TypeError``.

    Args:
        networks: the networks payments are accepted on (CAIP-2 ``eip155:<id>`` or v1 names);
            ``None`` accepts any EVM network. Others get ``invalid_network``.
        network_names: extra v1 names (``{"my-chain": 12345}``) on top of ``V1_NETWORK_NAMES``.
        permit2_proxies: accepted Permit2 spenders per scheme: ``{"exact": [...], "upto": [...]}``
            (a scheme left out accepts none). Default: x402's exact and upto proxies. A spender
            is accepted only for its own scheme: Permit2 hashes the calling proxy with its own
            witness type, so the other scheme's proxy cannot settle it.
        facilitator_addresses: addresses an upto witness may name; when empty, the
            requirements' ``extra.facilitatorAddress`` is the one accepted.
        time_buffer: seconds a deadline / validBefore must lie ahead of now (SDK: 6).
        clock_skew_seconds: how far a client's clock may run ahead of ours: a deadline /
            validBefore later than now + the requirements' ``maxTimeoutSeconds`` + this is
            ``authorization_window_too_long`` (default ``DEFAULT_CLOCK_SKEW_SECONDS``, 600). So
            every unsettled reservation lives at most that long plus the store's margin.
        max_validity_seconds: also refuse authorizations valid for longer than this from now,
            whatever the requirements say (default: no extra cap).
        max_payload_bytes: bound on a decoded payload, checked before parsing.
        eip3009_policy: signature rules for EIP-3009 (default: USDC's; 65 bytes, v 27/28, low s).
        permit2_policy: signature rules for Permit2 (default: Permit2's; 64/65 bytes, any s).
        threads: most worker threads a ``verify_batch`` uses, 1 to 256 (default: every core).
            All verifiers share one pool sized to the cores; this caps a batch's share of it.
        payer_key_cache: public keys of this many recent payers kept, so that ``verify_batch``
            checks their signatures together instead of recovering each; 0 turns it off.
        verdict_cache: verdicts of this many recent payments kept, by their exact bytes and
            requirements (from its second sight), so that one presented again (an upto
            session resumed) needs no
            reading, hashing or curve work: only its time terms are checked again, and the
            store's reservation runs as for any payment (default: ``DEFAULT_VERDICT_CACHE``,
            4,096, or 0 when ``payer_key_cache`` is 0; 0 turns it off).
        nonce_store: replay protection (see ``x402_verify.stores``).
        chain_readers: ``{network: ChainReader}``: payment capability read from the chain for
            payments that passed every offline check, and reservations that count what is
            promised (the store's exposure ledger; docs/chain.md).
        chain_checks: run those reads (default: whenever ``chain_readers`` is given); a
            payment on a chain without a reader is then refused.
    """

    def __init__(
        self,
        *,
        networks: Iterable[str] | None = None,
        network_names: Mapping[str, int] | None = None,
        permit2_proxies: Mapping[str, Iterable[str]] | None = None,
        facilitator_addresses: Iterable[str] = (),
        time_buffer: int = DEFAULT_TIME_BUFFER,
        clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
        max_validity_seconds: int | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        eip3009_policy: SignaturePolicy | None = None,
        permit2_policy: SignaturePolicy | None = None,
        threads: int | None = None,
        payer_key_cache: int = DEFAULT_PAYER_KEY_CACHE,
        verdict_cache: int | None = None,
        nonce_store: Any = _UNSET,
        chain_readers: Mapping[str, Any] | None = None,
        chain_checks: bool | None = None,
    ) -> None:
        names = _names(network_names)
        allowed = None if networks is None else sorted({_chain_id(n, names) for n in _texts("networks", networks)})
        exact, upto = _proxies(permit2_proxies)
        for name, policy in (("eip3009_policy", eip3009_policy), ("permit2_policy", permit2_policy)):
            if policy is not None and not isinstance(policy, SignaturePolicy):
                raise TypeError(f"{name} must be a SignaturePolicy or None, not {type(policy).__name__}")
        payer_key_cache = _cache_size("payer_key_cache", payer_key_cache)
        if verdict_cache is None:
            verdict_cache = DEFAULT_VERDICT_CACHE if payer_key_cache else 0
        verdict_cache = _cache_size("verdict_cache", verdict_cache)
        self._core = VerifierCore(
            network_names=names,
            allowed_chain_ids=allowed,
            exact_permit2_proxies=exact,
            upto_permit2_proxies=upto,
            facilitator_addresses=_texts("facilitator_addresses", facilitator_addresses),
            time_buffer=_int("time_buffer", time_buffer, 0, _MAX_SECONDS),
            clock_skew_seconds=_int("clock_skew_seconds", clock_skew_seconds, 0, _MAX_SECONDS),
            max_validity_seconds=None if max_validity_seconds is None else _int("max_validity_seconds", max_validity_seconds, 0, _MAX_SECONDS),
            max_payload_bytes=_int("max_payload_bytes", max_payload_bytes, 1, _MAX_SECONDS),
            eip3009_policy=eip3009_policy or SignaturePolicy.eip3009(),
            permit2_policy=permit2_policy or SignaturePolicy.permit2(),
            threads=threads,
            payer_key_cache=payer_key_cache,
            verdict_cache=verdict_cache,
        )
        if nonce_store is _UNSET:
            nonce_store = MemoryNonceStore()
        self._chain = _chain_stage(chain_readers, chain_checks, names)
        if self._chain is not None:
            nonce_store = _exposure_store(nonce_store)
        self.nonce_store = nonce_store

    @property
    def chain_checked(self) -> bool:
        """Whether this verifier reads chain state (``chain_readers``): it then reserves as it
        verifies, in one call with the chain stage's reading, and ``reserve`` refuses."""
        return self._chain is not None

    def verify(
        self,
        payload: str | bytes | dict[str, Any],
        requirements: Requirements | str | bytes | dict[str, Any],
        *,
        now: int | None = None,
        reserve: bool = True,
        idempotency_id: str | None = None,
    ) -> VerifyResponse:
        """Verifies one payment and, when valid (and ``reserve``), reserves its nonce.

        ``payload`` is the header value (base64 JSON), JSON text or a dict; ``requirements``
        a PaymentRequirements dict or JSON (v1 or v2), or a compiled ``Requirements`` (read
        once, reusable). Other mappings are not read: pass a dict. A bad payment (or bad
        requirements: ``invalid_payment_requirements``) is never raised: the response says why
        (``invalid_reason``). ``now``: unix seconds (default: the system clock); a bad ``now``
        raises ``TypeError`` / ``ValueError``. ``reserve=False`` verifies only (reserve later
        with ``reserve``). ``idempotency_id``: the caller's name for this payment: a retried
        verify with the same id is the same reservation, not a replay (docs/reservations.md).
        """
        ids = None if idempotency_id is None else [idempotency_id]
        return self.verify_batch([(payload, requirements)], now=now, threads=1, reserve=reserve, idempotency_ids=ids)[0]

    def verify_batch(
        self,
        items: Iterable[tuple[str | bytes | dict[str, Any], Requirements | str | bytes | dict[str, Any]]],
        *,
        now: int | None = None,
        threads: int | None = None,
        reserve: bool = True,
        idempotency_ids: Sequence[str | None] | None = None,
    ) -> list[VerifyResponse]:
        """Verifies many payments: order kept, one bad item never fails the others, the GIL
        released and every core busy; then (``reserve``) reserves the valid ones' nonces in one
        store call (with the in-process store, in the same call as the verification).

        Each item's requirements are read as they are when the item is taken from ``items``
        (a dict edited between two items is read again); ``threads`` overrides the verifier's;
        ``idempotency_ids``: one id (or None) per item, as ``verify``'s ``idempotency_id``."""
        store = self.nonce_store if reserve else None
        if isinstance(store, MemoryNonceStore) and self._chain is None:
            in_core: list[VerifyResponse] = self._core.verify_batch(items, now=now, threads=threads, store=store, idempotency_ids=idempotency_ids)
            return in_core
        results: list[VerifyResponse] = self._core.verify_batch(items, now=now, threads=threads, idempotency_ids=idempotency_ids)
        exposure = None
        if self._chain is not None:
            results, exposure = self._chain.check(results)
        if store is not None:
            from x402_verify.stores import reserve_verified

            results = reserve_verified(store, results, now, exposure, idempotency_ids)
        return results

    def reserve(
        self, responses: Sequence[VerifyResponse], *, now: int | None = None, idempotency_ids: Sequence[str | None] | None = None
    ) -> list[VerifyResponse]:
        """Reserves the nonces of responses verified with ``reserve=False``, in one store call;
        answers each as a reserving ``verify_batch`` would have (a replay is invalid with its
        nonce space's reason). Chain-checked verifiers reserve as they verify only."""
        if self.nonce_store is None:
            raise ValueError("this verifier keeps no replay state (nonce_store=None)")
        if self._chain is not None:
            raise ValueError("a chain-checked verifier reserves as it verifies (the exposure reading belongs to that call)")
        responses = list(responses)
        if any(not isinstance(r, VerifyResponse) for r in responses):
            raise TypeError("reserve takes a sequence of VerifyResponse")
        if isinstance(self.nonce_store, MemoryNonceStore):
            out: list[VerifyResponse] = self._core.reserve_in_memory(responses, self.nonce_store, now=_now(now), idempotency_ids=idempotency_ids)
            return out
        from x402_verify.stores import reserve_verified

        return reserve_verified(self.nonce_store, responses, _now(now), None, idempotency_ids)

    def stats(self) -> dict[str, int]:
        """Work counters since construction (deterministic, not timings): ``key_cache_hits``,
        ``key_cache_misses``, ``key_cache_size``, ``batch_verified`` and ``recovered``
        signatures, ``batch_checks``, ``failed_checks``, ``bisections``, ``located`` bad items,
        ``points_multiplied``, ``fallbacks`` to recovery, ``session_hits`` (authorizations
        presented again, accepted with no curve work after every other check),
        ``session_size``, ``verdict_hits`` (payments whose exact bytes and requirements were
        verified before, taking that verdict after their time terms are checked again) and
        ``verdict_size``."""
        return self._core.stats()

    # --- the reservation's lifecycle -------------------------------------------------------

    def _reservation(self, response: VerifyResponse | bytes, owner: str | None, now: int | None) -> tuple[bytes, str]:
        """The key and owner token a settle / release / charge acts on. The token is the one
        the caller names, else the one this response carries, else the one the store holds
        for the key (a reservation made by another verifier or process): never recomputed
        from the payment."""
        if self.nonce_store is None:
            raise ValueError("this verifier keeps no replay state (nonce_store=None)")
        if owner is not None:
            owner = _text("owner", owner)
        if isinstance(response, VerifyResponse):
            key, token = response.replay_key, owner or response.reservation
            if key is None or not response.is_valid:
                raise ValueError("this response holds no reservation (it was not valid, or not reserved)")
        elif isinstance(response, bytes):
            if len(response) != 32:
                raise ValueError(f"a replay key is 32 bytes, got {len(response)}")
            key, token = bytes(response), owner
        else:
            raise TypeError(f"settle / release / charge take a VerifyResponse or a 32-byte replay key, not {type(response).__name__}")
        if token is None:
            state = self.nonce_store.state(key, now=now)
            if state is None:
                code, message = store_refusals()["not_found"]
                raise ReservationError(code, message)
            token = state[1]
        return key, token

    def settle(self, response: VerifyResponse | bytes, *, owner: str | None = None, now: int | None = None, block: int | None = None) -> int:
        """Marks the reservation settled (kept for as long as the store lives: the nonce is
        spent); returns what an upto session charged in total (0 for exact payments).
        With chain checks, ``block`` (the settlement's block number) lets the payer's exposure
        ledger drop the amount once a read at or after that block has seen it leave."""
        key, token = self._reservation(response, owner, _now(now))
        if block is not None:
            block = _int("block", block, 0, 2**63 - 1)
        total: int = self.nonce_store.settle(key, token, now=_now(now))
        if self._chain is not None and isinstance(response, VerifyResponse):
            from x402_verify.chain.exposure import settle_exposure

            settle_exposure(self.nonce_store, response, token, block, _now(now))
        return total

    def release(self, response: VerifyResponse | bytes, *, owner: str | None = None, now: int | None = None) -> None:
        """Frees the reservation: only when nothing was served and nothing was broadcast."""
        key, token = self._reservation(response, owner, _now(now))
        self.nonce_store.release(key, token, now=_now(now))

    def charge(self, response: VerifyResponse | bytes, amount: int, *, owner: str | None = None, now: int | None = None) -> int:
        """Debits an upto session by ``amount`` and returns the new total; refuses
        (``invalid_upto_evm_payload_settlement_exceeds_amount``) what would pass the signed maximum."""
        key, token = self._reservation(response, owner, _now(now))
        amount = _int("amount", amount, 0, 2**256 - 1)
        total: int = self.nonce_store.charge(key, token, amount, now=_now(now))
        return total
