"""`Verifier`: the call a gateway makes on every paid request, before it spends compute."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from x402_verify._core import DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_PAYER_KEY_CACHE, SignaturePolicy, VerifierCore, VerifyResponse

__all__ = [
    "EXACT_PERMIT2_PROXY",
    "UPTO_PERMIT2_PROXY",
    "V1_NETWORK_NAMES",
    "Verifier",
]

EXACT_PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
UPTO_PERMIT2_PROXY = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"

#: x402 v1 network names (the TypeScript SDK's table). Extend per verifier with ``network_names``.
V1_NETWORK_NAMES: Mapping[str, int] = {
    "ethereum": 1,
    "sepolia": 11155111,
    "base": 8453,
    "base-sepolia": 84532,
    "abstract": 2741,
    "abstract-testnet": 11124,
    "avalanche-fuji": 43113,
    "avalanche": 43114,
    "iotex": 4689,
    "sei": 1329,
    "sei-testnet": 1328,
    "polygon": 137,
    "polygon-amoy": 80002,
    "peaq": 3338,
    "story": 1514,
    "educhain": 41923,
    "skale-base-sepolia": 324705682,
    "megaeth": 4326,
    "monad": 143,
    "stable": 988,
    "stable-testnet": 2201,
}

_CAIP2 = re.compile(r"eip155:([1-9][0-9]{0,18})")

_UNSET: Any = object()


def _chain_id(network: str, names: Mapping[str, int]) -> int:
    m = _CAIP2.fullmatch(network)
    if m:
        return int(m.group(1))
    if network in names:
        return names[network]
    raise ValueError(f"unknown network {network!r}: use eip155:<chainId> or a name from network_names")


def _proxies(value: Iterable[str] | Mapping[str, Iterable[str]] | None) -> tuple[list[str], list[str]]:
    if value is None:
        return [EXACT_PERMIT2_PROXY], [UPTO_PERMIT2_PROXY]
    if isinstance(value, Mapping):
        unknown = set(value) - {"exact", "upto"}
        if unknown:
            raise ValueError(f"permit2_proxies keys are 'exact' and 'upto', not {sorted(unknown)}")
        return list(value.get("exact", ())), list(value.get("upto", ()))
    flat = list(value)
    return flat, flat


class Verifier:
    """Verifies x402 payments (exact with EIP-3009 or Permit2, upto with Permit2).

    Every option is keyword-only; an unknown one raises ``TypeError``.

    Args:
        networks: the networks payments are accepted on (CAIP-2 ``eip155:<id>`` or v1 names);
            ``None`` accepts any EVM network. Others get ``invalid_network``.
        network_names: extra v1 names (``{"my-chain": 12345}``) on top of ``V1_NETWORK_NAMES``.
        permit2_proxies: accepted Permit2 spenders: ``{"exact": [...], "upto": [...]}``, or one
            iterable for both. Default: x402's exact and upto proxies.
        facilitator_addresses: addresses an upto witness may name; when empty, the
            requirements' ``extra.facilitatorAddress`` is the one accepted.
        time_buffer: seconds a deadline / validBefore must lie ahead of now (SDK: 6).
        max_validity_seconds: refuse authorizations valid for longer than this (default: no cap).
        max_payload_bytes: bound on a decoded payload, checked before parsing.
        eip3009_policy: signature rules for EIP-3009 (default: USDC's; 65 bytes, v 27/28, low s).
        permit2_policy: signature rules for Permit2 (default: Permit2's; 64/65 bytes, any s).
        threads: worker threads for ``verify_batch`` (default: every core).
        payer_key_cache: public keys of this many recent payers kept, so that ``verify_batch``
            checks their signatures together instead of recovering each; 0 turns it off.
        nonce_store: replay protection (see ``x402_verify.stores``).
    """

    def __init__(
        self,
        *,
        networks: Iterable[str] | None = None,
        network_names: Mapping[str, int] | None = None,
        permit2_proxies: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
        facilitator_addresses: Iterable[str] = (),
        time_buffer: int = 6,
        max_validity_seconds: int | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        eip3009_policy: SignaturePolicy | None = None,
        permit2_policy: SignaturePolicy | None = None,
        threads: int | None = None,
        payer_key_cache: int = DEFAULT_PAYER_KEY_CACHE,
        nonce_store: Any = _UNSET,
    ) -> None:
        names = dict(V1_NETWORK_NAMES)
        names.update(network_names or {})
        allowed = None if networks is None else sorted({_chain_id(n, names) for n in networks})
        exact, upto = _proxies(permit2_proxies)
        if time_buffer < 0:
            raise ValueError("time_buffer must be >= 0")
        if isinstance(payer_key_cache, bool) or not isinstance(payer_key_cache, int) or not 0 <= payer_key_cache <= 1 << 24:
            raise ValueError("payer_key_cache must be an int from 0 (off) to 16777216")
        self._core = VerifierCore(
            network_names=names,
            allowed_chain_ids=allowed,
            exact_permit2_proxies=exact,
            upto_permit2_proxies=upto,
            facilitator_addresses=list(facilitator_addresses),
            time_buffer=time_buffer,
            max_validity_seconds=max_validity_seconds,
            max_payload_bytes=max_payload_bytes,
            eip3009_policy=eip3009_policy or SignaturePolicy.eip3009(),
            permit2_policy=permit2_policy or SignaturePolicy.permit2(),
            threads=threads,
            payer_key_cache=payer_key_cache,
        )
        self._threads = threads
        if nonce_store is _UNSET:
            from x402_verify.stores import MemoryNonceStore

            nonce_store = MemoryNonceStore()
        self.nonce_store = nonce_store

    def verify(self, payload: str | bytes | dict[str, Any], requirements: str | bytes | dict[str, Any], *, now: int | None = None) -> VerifyResponse:
        """Verifies one payment and, when valid, reserves its nonce.

        ``payload`` is the header value (base64 JSON), JSON text or a dict; ``requirements``
        a PaymentRequirements dict or JSON (v1 or v2). Other mappings are not read: pass a dict. A bad payment is never raised: the
        response says why (``invalid_reason``).
        """
        return self.verify_batch([(payload, requirements)], now=now, threads=1)[0]

    def verify_batch(
        self,
        items: Iterable[tuple[str | bytes | dict[str, Any], str | bytes | dict[str, Any]]],
        *,
        now: int | None = None,
        threads: int | None = None,
    ) -> list[VerifyResponse]:
        """Verifies many payments: order kept, one bad item never fails the others, the GIL
        released and every core busy; then reserves the valid ones' nonces in one store call."""
        results: list[VerifyResponse] = self._core.verify_batch(items, now=now, threads=threads or self._threads)
        if self.nonce_store is not None:
            from x402_verify.stores import reserve_verified

            results = reserve_verified(self.nonce_store, results, now)
        return results

    def stats(self) -> dict[str, int]:
        """Work counters since construction (deterministic, not timings): ``key_cache_hits``,
        ``key_cache_misses``, ``key_cache_size``, ``batch_verified`` and ``recovered``
        signatures, ``batch_checks``, ``failed_checks``, ``bisections``, ``located`` bad items,
        ``points_multiplied``, ``fallbacks`` to recovery, ``session_hits`` (authorizations
        presented again, accepted with no curve work after every other check) and
        ``session_size``."""
        return self._core.stats()

    # --- the reservation's lifecycle -------------------------------------------------------

    def _reservation(self, response: VerifyResponse | bytes, owner: str | None) -> tuple[bytes, str]:
        if self.nonce_store is None:
            raise ValueError("this verifier keeps no replay state (nonce_store=None)")
        if isinstance(response, VerifyResponse):
            key, token = response.replay_key, owner or response.reservation
            if key is None or token is None:
                raise ValueError("this response holds no reservation (it was not valid, or not reserved)")
            return key, token
        if owner is None:
            raise ValueError("settling by key needs the owner token")
        return response, owner

    def settle(self, response: VerifyResponse | bytes, *, owner: str | None = None, now: int | None = None) -> int:
        """Marks the reservation settled (kept until validBefore/deadline plus the store's
        margin); returns what an upto session charged in total (0 for exact payments)."""
        key, token = self._reservation(response, owner)
        total: int = self.nonce_store.settle(key, token, now=now)
        return total

    def release(self, response: VerifyResponse | bytes, *, owner: str | None = None, now: int | None = None) -> None:
        """Frees the reservation: only when nothing was served and nothing was broadcast."""
        key, token = self._reservation(response, owner)
        self.nonce_store.release(key, token, now=now)

    def charge(self, response: VerifyResponse | bytes, amount: int, *, owner: str | None = None, now: int | None = None) -> int:
        """Debits an upto session by ``amount`` and returns the new total; refuses
        (``invalid_upto_evm_payload_settlement_exceeds_amount``) what would pass the signed maximum."""
        key, token = self._reservation(response, owner)
        total: int = self.nonce_store.charge(key, token, amount, now=now)
        return total
