"""The facilitator end to end over real HTTP: ``x402-verify serve`` as a subprocess on a
loopback port, in front of a settling x402 facilitator (the SDK's own ``x402Facilitator``, its
chain signer stubbed, behind its HTTP API); a FastAPI resource server under the SDK's own
``PaymentMiddlewareASGI`` and ``x402ResourceServer`` with the SDK's ``HTTPFacilitatorClient``
pointed at us, unchanged; payments made by the SDK's own client. v2 goes through the
middleware (it speaks only v2); v1 through ``HTTPFacilitatorClient`` directly."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from x402 import x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.middleware.fastapi import PaymentMiddlewareASGI, set_settlement_overrides
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.mechanisms.evm.upto import UptoEvmServerScheme
from x402.schemas import SupportedResponse
from x402.schemas.v1 import PaymentRequiredV1, PaymentRequirementsV1

import facilitator_proc
from http_servers import FAC, NETWORK, PAY_TO, USDC, account, chain, decode, facilitator_app, pay, sdk_client, sdk_facilitator, serve

ROUTES: dict[str, Any] = {
    "GET /eip3009": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}, "description": "d"},
    "GET /permit2": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.02", "extra": {"assetTransferMethod": "permit2"}}},
    "GET /upto": {"accepts": {"scheme": "upto", "network": NETWORK, "payTo": PAY_TO, "price": "$0.05"}},
    # The SDK's client signs validBefore = now + maxTimeoutSeconds: inside our 6 s buffer.
    "GET /expired": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01", "maxTimeoutSeconds": 2}},
}
UPTO_CHARGE = "12345"


class World:
    def __init__(self, signer: Any, calls: list[tuple[str, dict[str, Any]]], ours: facilitator_proc.Served, resource: str) -> None:
        self.signer, self.calls, self.ours, self.resource = signer, calls, ours, resource
        self.runs: Counter[str] = Counter()

    def upstream_settles(self) -> list[dict[str, Any]]:
        return [b for kind, b in self.calls if kind == "settle"]


def resource_app(facilitator_url: str, runs: Counter[str]) -> FastAPI:
    facilitator = HTTPFacilitatorClient(FacilitatorConfig(url=facilitator_url))
    server = x402ResourceServer(facilitator)
    server.register(NETWORK, ExactEvmServerScheme())
    server.register(NETWORK, UptoEvmServerScheme())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await facilitator.aclose()  # its keep-alive connection, before the server's loop closes

    app = FastAPI(lifespan=lifespan)
    lock = threading.Lock()

    def handler(name: str) -> Any:
        async def run() -> Any:
            with lock:
                runs[name] += 1
            response = JSONResponse({"ok": name})
            if name == "upto":
                set_settlement_overrides(response, {"amount": UPTO_CHARGE})
            return response

        return run

    for name in ("eip3009", "permit2", "upto", "expired"):
        app.add_api_route(f"/{name}", handler(name), methods=["GET"])
    app.add_middleware(PaymentMiddlewareASGI, routes=ROUTES, server=server)
    return app


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("facilitator-e2e")
    signer = chain()
    calls: list[tuple[str, dict[str, Any]]] = []
    with serve(facilitator_app(sdk_facilitator(signer), calls)) as upstream:
        with facilitator_proc.serving(tmp, "--store", f"sqlite://{tmp}/nonces.db", "--network", NETWORK, "--upstream", upstream) as ours:
            runs: Counter[str] = Counter()
            with serve(resource_app(ours.url, runs)) as resource:
                w = World(signer, calls, ours, resource)
                w.runs = runs
                yield w


def test_supported_through_the_sdk_client(world: World) -> None:
    supported = HTTPFacilitatorClient(FacilitatorConfig(url=world.ours.url)).get_supported()
    assert isinstance(supported, SupportedResponse)
    kinds = {(k.x402_version, k.scheme, k.network): k.extra for k in supported.kinds}
    # The upstream's signer is ours to list; upto carries the facilitator address it names.
    assert kinds == {(2, "exact", NETWORK): None, (2, "upto", NETWORK): {"facilitatorAddress": FAC}, (1, "exact", "base-sepolia"): None}
    assert supported.signers == {"eip155:*": [FAC]}


def paid(world: World, path: str, client: httpx.Client) -> tuple[httpx.Response, str]:
    r = client.get(world.resource + path)
    assert r.status_code == 402, r.text
    header = pay(r.headers["payment-required"], account(7))
    return client.get(world.resource + path, headers={"PAYMENT-SIGNATURE": header}), header


@pytest.mark.parametrize("path", ["/eip3009", "/permit2", "/upto"])
def test_v2_good_then_replayed_through_the_sdk_middleware(world: World, path: str) -> None:
    name = path.strip("/")
    with httpx.Client(timeout=30) as c:
        before_runs, before_settles, before_writes = world.runs[name], len(world.upstream_settles()), len(world.signer.writes)
        r, header = paid(world, path, c)
        assert r.status_code == 200, (r.status_code, r.headers.get("payment-response"), r.text)
        assert r.json() == {"ok": name}
        receipt = decode(r.headers["payment-response"])
        assert receipt["success"] is True and receipt["transaction"].startswith("0x") and receipt["network"] == NETWORK
        assert world.runs[name] == before_runs + 1
        settles = world.upstream_settles()[before_settles:]
        assert len(settles) == 1 and len(world.signer.writes) == before_writes + 1
        if name == "upto":
            assert settles[0]["paymentRequirements"]["amount"] == UPTO_CHARGE
        # The same header again: our /verify refuses it as a replay; the handler does not run.
        again = c.get(world.resource + path, headers={"PAYMENT-SIGNATURE": header})
        assert again.status_code == 402
        replay = "invalid_exact_evm_nonce_already_used" if name == "eip3009" else "permit2_nonce_already_used"
        assert decode(again.headers["payment-required"])["error"] == replay
        assert world.runs[name] == before_runs + 1
        assert len(world.upstream_settles()) == before_settles + 1


def test_v2_bad_payment_through_the_sdk_middleware(world: World) -> None:
    with httpx.Client(timeout=30) as c:
        r = c.get(world.resource + "/eip3009")
        header = pay(r.headers["payment-required"], account(8))
        doc = decode(header)
        sig = doc["payload"]["signature"]
        doc["payload"]["signature"] = sig[:-4] + ("1c" if sig[-2:] != "1c" else "1b") + sig[-2:]
        bad = base64.b64encode(json.dumps(doc).encode()).decode()
        before = world.runs["eip3009"]
        r = c.get(world.resource + "/eip3009", headers={"PAYMENT-SIGNATURE": bad})
        assert r.status_code == 402
        assert decode(r.headers["payment-required"])["error"] == "invalid_exact_evm_payload_signature"
        assert world.runs["eip3009"] == before


def test_v2_expired_payment_through_the_sdk_middleware(world: World) -> None:
    with httpx.Client(timeout=30) as c:
        before = world.runs["expired"]
        r, _ = paid(world, "/expired", c)
        assert r.status_code == 402
        assert decode(r.headers["payment-required"])["error"] == "invalid_exact_evm_payload_authorization_valid_before"
        assert world.runs["expired"] == before


def v1_requirements(**changes: Any) -> PaymentRequirementsV1:
    req = {
        "scheme": "exact", "network": "base-sepolia", "maxAmountRequired": "10000", "resource": "http://t/v1", "description": "v1",
        "mimeType": "application/json", "payTo": PAY_TO, "maxTimeoutSeconds": 300, "asset": USDC, "extra": {"name": "USDC", "version": "2"},
    }  # fmt: skip
    req.update(changes)
    return PaymentRequirementsV1.model_validate(req)


def test_v1_through_the_sdk_facilitator_client(world: World) -> None:
    requirements = v1_requirements()
    payload = sdk_client(account(9)).create_payment_payload(PaymentRequiredV1(x402_version=1, error="", accepts=[requirements]))
    assert payload.x402_version == 1
    client = HTTPFacilitatorClient(FacilitatorConfig(url=world.ours.url))

    async def flow() -> list[Any]:
        try:
            return [
                await client.verify(payload, v1_requirements(payTo="0x" + "22" * 20)),  # bad: another recipient
                await client.verify(payload, requirements),  # good: reserved
                await client.verify(payload, requirements),  # replayed
                await client.settle(payload, requirements),  # settles the reservation
                await client.settle(payload, requirements),  # a retry: never a second success
            ]
        finally:
            await client.aclose()

    before = len(world.signer.writes)
    bad, good, replayed, settled, retried = asyncio.run(flow())
    assert (bad.is_valid, bad.invalid_reason) == (False, "invalid_exact_evm_payload_recipient_mismatch")
    assert good.is_valid and good.payer == account(9).address
    assert (replayed.is_valid, replayed.invalid_reason) == (False, "invalid_exact_evm_nonce_already_used")
    assert settled.success and settled.transaction.startswith("0x") and settled.network == "base-sepolia"
    assert (retried.success, retried.error_reason, retried.transaction) == (False, "duplicate_settlement", settled.transaction)
    assert len(world.signer.writes) == before + 1


def test_v1_expired_and_upfront_settle(world: World) -> None:
    """An expired v1 payment is refused at /settle; a fresh one settled with no /verify first
    (the SDK's upfront flow) is reserved by the settle, so a later /verify is a replay."""
    client = HTTPFacilitatorClient(FacilitatorConfig(url=world.ours.url))
    short = v1_requirements(maxTimeoutSeconds=2)
    expired = sdk_client(account(10)).create_payment_payload(PaymentRequiredV1(x402_version=1, error="", accepts=[short]))
    fresh_req = v1_requirements()
    fresh = sdk_client(account(11)).create_payment_payload(PaymentRequiredV1(x402_version=1, error="", accepts=[fresh_req]))

    async def flow() -> list[Any]:
        try:
            return [await client.settle(expired, short), await client.settle(fresh, fresh_req), await client.verify(fresh, fresh_req)]
        finally:
            await client.aclose()

    refused, settled, verified = asyncio.run(flow())
    assert (refused.success, refused.error_reason, refused.transaction, refused.network) == (
        False, "invalid_exact_evm_payload_authorization_valid_before", "", "base-sepolia"
    )  # fmt: skip
    assert settled.success
    assert (verified.is_valid, verified.invalid_reason) == (False, "invalid_exact_evm_nonce_already_used")


def test_metrics_count_what_happened(world: World) -> None:
    text = httpx.get(world.ours.url + "/metrics", timeout=10).text
    assert 'x402_facilitator_settlements_total{outcome="success"}' in text
    assert 'reason="permit2_nonce_already_used",scheme="exact_permit2"' in text
