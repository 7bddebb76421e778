"""The x402 facilitator service: ``/verify``, ``/settle``, ``/supported``, ``/health``,
``/metrics`` (and an authenticated ``/release``), on the x402 SDK's wire, v1 and v2.

    app = create_app(networks=["eip155:8453"], store="sqlite:///var/lib/x402/nonces.db", upstream="https://facilitator.example")

Serve it with any ASGI server (``x402-verify serve`` runs it under uvicorn). The x402 SDK's
``HTTPFacilitatorClient`` and resource server work against it unchanged. See
``x402_verify.facilitator.service`` for replay protection and how a retried ``/settle`` is
answered; ``x402_verify.facilitator.stores`` for store URLs. Needs ``x402-verify[server]``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from x402_verify.facilitator.app import FacilitatorApp
from x402_verify.facilitator.metrics import Metrics
from x402_verify.facilitator.service import DUPLICATE_SETTLEMENT, Limits, Service
from x402_verify.facilitator.stores import DEFAULT_STORE, open_stores
from x402_verify.verifier import V1_NETWORK_NAMES, Verifier, _chain_id

__all__ = ["DEFAULT_NETWORKS", "DEFAULT_STORE", "DUPLICATE_SETTLEMENT", "FacilitatorApp", "Limits", "create_app"]

log = logging.getLogger("x402_verify.facilitator")

DEFAULT_NETWORKS = ("eip155:8453", "eip155:84532")  # Base, Base Sepolia
UPSTREAM_SUPPORTED_TIMEOUT = 5.0


def _upstream_supported(settler: Any) -> dict[str, Any] | None:
    get = getattr(settler, "get_supported", None)
    if get is None:
        return None
    try:
        answer = get()
    except Exception as exc:  # the service still starts; upto is then not offered
        log.warning("upstream /supported failed: %s: %s", type(exc).__name__, exc)
        return None
    return answer if isinstance(answer, dict) else None


def _signers(upstream: Mapping[str, Any] | None) -> list[str]:
    if not upstream or not isinstance(upstream.get("signers"), dict):
        return []
    found = upstream["signers"].get("eip155:*", [])
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


def _supported(networks: Sequence[str], addresses: Sequence[str], upstream: Mapping[str, Any] | None) -> dict[str, Any]:
    """Exact networks only (a wildcard breaks the SDK's requirement building); upto kinds only
    where a facilitator address is known, and then with ``extra.facilitatorAddress``."""
    upto_extra: dict[str, str] = {}
    for kind in (upstream or {}).get("kinds", []) if upstream else []:
        if isinstance(kind, dict) and kind.get("scheme") == "upto" and isinstance(kind.get("extra"), dict):
            address = kind["extra"].get("facilitatorAddress")
            if isinstance(address, str) and isinstance(kind.get("network"), str):
                upto_extra[kind["network"]] = address
    v1_names = {chain: name for name, chain in V1_NETWORK_NAMES.items()}
    chains = list(dict.fromkeys(_chain_id(n, V1_NETWORK_NAMES) for n in networks))
    kinds: list[dict[str, Any]] = []
    for network in (f"eip155:{chain}" for chain in chains):  # v2 names networks by CAIP-2
        kinds.append({"x402Version": 2, "scheme": "exact", "network": network})
        address = upto_extra.get(network) or (addresses[0] if addresses else None)
        if address:
            kinds.append({"x402Version": 2, "scheme": "upto", "network": network, "extra": {"facilitatorAddress": address}})
    for chain in chains:
        name = v1_names.get(chain)
        if name:
            kinds.append({"x402Version": 1, "scheme": "exact", "network": name})
    return {"kinds": kinds, "extensions": [], "signers": {"eip155:*": list(addresses)} if addresses else {}}


def create_app(
    *,
    networks: Iterable[str] = DEFAULT_NETWORKS,
    store: str = DEFAULT_STORE,
    upstream: str | None = None,
    upstream_headers: Mapping[str, str] | None = None,
    settler: Any = None,
    facilitator_addresses: Iterable[str] = (),
    auth_token: str | None = None,
    limits: Limits | None = None,
    workers: int = 1,
    nonce_store: Any = None,
    ledger: Any = None,
    verifier_options: Mapping[str, Any] | None = None,
) -> FacilitatorApp:
    """An ASGI app serving the x402 facilitator API.

    Args:
        networks: the networks accepted and listed in ``/supported`` (CAIP-2 or v1 names).
        store: a store URL (``x402_verify.facilitator.stores``): where reservations and
            settlement outcomes live. Ignored when ``nonce_store`` and ``ledger`` are given.
        upstream: an x402 facilitator's base URL that settles on-chain
            (``HTTPFacilitatorSettler``); its ``/supported`` gives the signers and the upto
            facilitator addresses unless ``facilitator_addresses`` is given.
        settler: any ``x402_verify.settlers.Settler`` instead of ``upstream``. With neither,
            ``/settle`` answers ``no_settler`` (verification and replay protection only).
        facilitator_addresses: the addresses an upto witness may name (and ``signers``).
        auth_token: when set, ``/verify``, ``/settle`` and ``/release`` need
            ``Authorization: Bearer <token>`` (compared in constant time); ``/release`` exists
            only then.
        limits: request bounds (``Limits``).
        workers: how many processes will serve this app (``memory://`` is refused above 1).
        verifier_options: more ``Verifier`` keyword options (``time_buffer``, policies, ...).
    """
    limits = limits or Limits()
    nets = list(networks)
    if not nets:
        raise ValueError("at least one network is needed (/supported lists exact networks)")
    for n in nets:
        _chain_id(n, V1_NETWORK_NAMES)  # a bad name fails here, at start-up
    if settler is None and upstream:
        from x402_verify.settlers import HTTPFacilitatorSettler

        settler = HTTPFacilitatorSettler(upstream, headers=upstream_headers, timeout=limits.settle_timeout)
    addresses = list(facilitator_addresses)
    upstream_answer = _upstream_supported(settler) if settler is not None and not addresses else None
    if not addresses:
        addresses = _signers(upstream_answer)
    if nonce_store is None or ledger is None:
        opened = open_stores(store, workers=workers)
        nonce_store = nonce_store if nonce_store is not None else opened.nonces
        ledger = ledger if ledger is not None else opened.ledger
    verifier = Verifier(networks=nets, facilitator_addresses=addresses, nonce_store=nonce_store, threads=1, **(verifier_options or {}))
    metrics = Metrics()
    service = Service(verifier, ledger, settler, limits, metrics)
    supported = _supported(nets, addresses, upstream_answer)

    async def get_supported() -> dict[str, Any]:
        return supported

    probe_key = bytes(32)

    async def health() -> dict[str, Any]:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.to_thread(nonce_store.state, probe_key), 2.0)
        except Exception as exc:
            return {"status": "unavailable", "store": f"{type(exc).__name__}: {exc}"[:200]}
        return {"status": "ok", "store": "ok", "storeSeconds": round(time.perf_counter() - start, 6), "worker": os.getpid()}

    return FacilitatorApp(service, metrics, get_supported, health, auth_token=auth_token)
