"""The facilitator service end to end over real HTTP on loopback.

``x402-verify serve`` runs as a subprocess (SQLite store, two workers), settling through the
x402 SDK's own ``x402Facilitator`` (chain signer stubbed) behind its HTTP API. In front of it,
the SDK's FastAPI middleware (``PaymentMiddlewareASGI`` with an ``x402ResourceServer`` over the
SDK's ``HTTPFacilitatorClient``), unchanged, guards real routes; payments are made by the SDK's
own client from the 402's ``PAYMENT-REQUIRED``: exact EIP-3009, exact Permit2 and upto (v2, the
only version the middleware speaks), and v1 through ``HTTPFacilitatorClient`` directly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from x402 import x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.middleware.fastapi import PaymentMiddlewareASGI, set_settlement_overrides
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.mechanisms.evm.upto import UptoEvmServerScheme
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1

from http_servers import (
    NETWORK,
    PAY_TO,
    USDC,
    account,
    chain,
    decode,
    facilitator_app,
    facilitator_service,
    pay,
    sdk_client,
    sdk_facilitator,
    serve,
    verify_body,
)
from payments import sign_payment
from x402_verify import _core
from x402_verify.facilitator import create_app
from x402_verify.settlers import CallbackSettler

EIP3009_REPLAY = _core.REPLAY_REASONS["eip3009"]
PERMIT2_REPLAY = _core.REPLAY_REASONS["permit2"]
UPTO_CHARGE = "4000"

ROUTES: dict[str, Any] = {
    "GET /eip3009": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}},
    "GET /permit2": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.02", "extra": {"assetTransferMethod": "permit2"}}},
    "GET /upto": {"accepts": {"scheme": "upto", "network": NETWORK, "payTo": PAY_TO, "price": "$0.05"}},
    # validBefore = now + 5 s is inside the verifier's 6 s time buffer: dead on arrival.
    "GET /short": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01", "maxTimeoutSeconds": 5}},
}


class Stack:
    def __init__(self, service_url: str, gateway_url: str, calls: list[tuple[str, dict[str, Any]]], runs: Counter[str], signer: Any) -> None:
        self.service_url, self.url, self.calls, self.runs, self.signer = service_url, gateway_url, calls, runs, signer

    def settles(self) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == "settle"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    calls: list[tuple[str, dict[str, Any]]] = []
    runs: Counter[str] = Counter()
    signer = chain()
    store = tmp_path_factory.mktemp("facilitator") / "nonces.sqlite3"
    with serve(facilitator_app(sdk_facilitator(signer), calls)) as upstream_url:
        args = ["--store", f"sqlite:///{store}", "--workers", "2", "--network", NETWORK, "--upstream", upstream_url]
        with facilitator_service(args) as service:
            client = HTTPFacilitatorClient(FacilitatorConfig(url=service.url))
            server = x402ResourceServer(client)  # the SDK's own resource server, unchanged
            server.register(NETWORK, ExactEvmServerScheme())
            server.register(NETWORK, UptoEvmServerScheme())

            @contextlib.asynccontextmanager
            async def lifespan(_app: FastAPI) -> Any:
                yield
                await client.aclose()

            app = FastAPI(lifespan=lifespan)

            async def handler(name: str) -> dict[str, str]:
                runs[name] += 1
                return {"ok": name}

            @app.get("/eip3009")
            async def eip3009() -> dict[str, str]:
                return await handler("eip3009")

            @app.get("/permit2")
            async def permit2() -> dict[str, str]:
                return await handler("permit2")

            @app.get("/short")
            async def short() -> dict[str, str]:
                return await handler("short")

            @app.get("/upto")
            async def upto(response: Response) -> dict[str, str]:
                set_settlement_overrides(response, {"amount": UPTO_CHARGE})
                return await handler("upto")

            app.add_middleware(PaymentMiddlewareASGI, routes=ROUTES, server=server)
            with serve(app) as gateway_url:
                yield Stack(service.url, gateway_url, calls, runs, signer)


def paid(stack: Stack, path: str, seed: int) -> tuple[str, httpx.Response]:
    with httpx.Client(timeout=30) as c:
        r = c.get(stack.url + path)
        assert r.status_code == 402, r.text
        header = pay(r.headers["payment-required"], account(seed))
        return header, c.get(stack.url + path, headers={"PAYMENT-SIGNATURE": header})


def error_of(r: httpx.Response) -> str | None:
    assert r.status_code == 402, (r.status_code, r.text)
    error: str | None = decode(r.headers["payment-required"]).get("error")
    return error


def test_supported_lists_exact_upto_with_the_upstream_signer_and_v1(stack: Stack) -> None:
    body = httpx.get(stack.service_url + "/supported", timeout=10).json()
    kinds = {(k["x402Version"], k["scheme"], k["network"]): k for k in body["kinds"]}
    assert set(kinds) == {(2, "exact", NETWORK), (2, "upto", NETWORK), (1, "exact", "base-sepolia")}
    signer = stack.signer.get_addresses()[0]
    assert kinds[(2, "upto", NETWORK)]["extra"] == {"facilitatorAddress": signer}  # learnt from the upstream's /supported
    assert body["signers"] == {"eip155:*": [signer]}


@pytest.mark.parametrize(("path", "replay"), [("/eip3009", EIP3009_REPLAY), ("/permit2", PERMIT2_REPLAY)])
def test_exact_good_then_replayed(stack: Stack, path: str, replay: str) -> None:
    seed = 300 if path == "/eip3009" else 301
    before, settled_before = stack.runs[path[1:]], len(stack.settles())
    header, r = paid(stack, path, seed)
    assert r.status_code == 200, r.text
    response = decode(r.headers["payment-response"])
    assert response["success"] is True and response["transaction"].startswith("0x") and response["network"] == NETWORK
    assert response["payer"] == account(seed).address
    assert stack.runs[path[1:]] == before + 1 and len(stack.settles()) == settled_before + 1
    # The same header again: refused at verify, the handler does not run, nothing is settled.
    with httpx.Client(timeout=30) as c:
        again = c.get(stack.url + path, headers={"PAYMENT-SIGNATURE": header})
    assert error_of(again) == replay
    assert stack.runs[path[1:]] == before + 1 and len(stack.settles()) == settled_before + 1


def test_upto_settles_the_overridden_amount_once(stack: Stack) -> None:
    settled_before = len(stack.settles())
    header, r = paid(stack, "/upto", 302)
    assert r.status_code == 200, r.text
    response = decode(r.headers["payment-response"])
    assert response["success"] is True and response["transaction"].startswith("0x")
    new = stack.settles()[settled_before:]
    assert len(new) == 1 and new[0]["paymentRequirements"]["amount"] == UPTO_CHARGE
    with httpx.Client(timeout=30) as c:
        assert error_of(c.get(stack.url + "/upto", headers={"PAYMENT-SIGNATURE": header})) == PERMIT2_REPLAY
    assert len(stack.settles()) == settled_before + 1


def test_bad_signature_is_refused_by_its_reason(stack: Stack) -> None:
    with httpx.Client(timeout=30) as c:
        r = c.get(stack.url + "/eip3009")
        header = pay(r.headers["payment-required"], account(303))
        doc = decode(header)
        sig = doc["payload"]["signature"]
        doc["payload"]["signature"] = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
        bad = base64.b64encode(json.dumps(doc).encode()).decode()
        runs = stack.runs["eip3009"]
        answer = c.get(stack.url + "/eip3009", headers={"PAYMENT-SIGNATURE": bad})
    assert error_of(answer) == "invalid_exact_evm_payload_signature"
    assert stack.runs["eip3009"] == runs


def test_expired_payment_is_refused(stack: Stack) -> None:
    _header, r = paid(stack, "/short", 304)
    assert error_of(r) == "invalid_exact_evm_payload_authorization_valid_before"
    assert stack.runs["short"] == 0


def v1_payment(seed: int) -> tuple[PaymentPayloadV1, PaymentRequirementsV1]:
    req = PaymentRequirementsV1(
        scheme="exact", network="base-sepolia", max_amount_required="10000", resource="http://t/v1", description="v1", mime_type="application/json",
        pay_to=PAY_TO, max_timeout_seconds=300, asset=USDC, extra={"name": "USDC", "version": "2"},
    )  # fmt: skip
    payload = sdk_client(account(seed)).create_payment_payload(PaymentRequiredV1(x402_version=1, accepts=[req], error=""))
    return payload, req


def test_v1_through_the_sdk_client_verify_settle_and_settle_again(stack: Stack) -> None:
    payload, req = v1_payment(305)

    async def flow() -> None:
        client = HTTPFacilitatorClient(FacilitatorConfig(url=stack.service_url))
        try:
            v = await client.verify(payload, req)
            assert v.is_valid and v.payer == account(305).address
            again = await client.verify(payload, req)
            assert not again.is_valid and again.invalid_reason == EIP3009_REPLAY
            s = await client.settle(payload, req)
            assert s.success and s.transaction.startswith("0x")
            # A second settle of a settled payment: never a fresh success; the replay reason, and
            # the first settlement's transaction to reconcile with.
            s2 = await client.settle(payload, req)
            assert s2.success is False and s2.error_reason == EIP3009_REPLAY and s2.transaction == s.transaction
            assert (await client.verify(payload, req)).invalid_reason == EIP3009_REPLAY
        finally:
            await client.aclose()

    settled_before = len(stack.settles())
    asyncio.run(flow())
    assert len(stack.settles()) == settled_before + 1


def test_v1_settle_without_verify_reserves_first_and_settles_once(stack: Stack) -> None:
    # The SDK's "upfront" flow: /settle with no /verify before it. Fifty at once: one settlement.
    payload, req = v1_payment(306)

    async def burst() -> list[Any]:
        client = HTTPFacilitatorClient(FacilitatorConfig(url=stack.service_url))
        try:
            return await asyncio.gather(*(client.settle(payload, req) for _ in range(20)))
        finally:
            await client.aclose()

    settled_before = len(stack.settles())
    answers = asyncio.run(burst())
    assert sum(a.success for a in answers) == 1
    assert {a.error_reason for a in answers if not a.success} <= {EIP3009_REPLAY, "settlement_pending"}
    assert len(stack.settles()) == settled_before + 1


def test_an_expired_reservation_is_refused_at_settle(tmp_path: Path) -> None:
    # /settle re-checks the time window: a payment verified in time but settled too late is refused.
    now = int(time.time())
    p = sign_payment("eip3009", now, valid_for=8)

    async def flow() -> tuple[Any, Any]:
        calls: list[Any] = []

        async def settler_fn(payload: Any, requirements: Any) -> dict[str, Any]:
            calls.append(payload)
            return {"success": True, "transaction": "0x" + "ab" * 32, "network": requirements["network"]}

        app = create_app(store=f"sqlite:///{tmp_path / 's.db'}", settler=CallbackSettler(settler_fn))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            v = (await c.post("/verify", json=verify_body(p.payload, p.requirements))).json()
            await asyncio.sleep(3)  # now within the 6 s time buffer of validBefore
            s = (await c.post("/settle", json=verify_body(p.payload, p.requirements))).json()
        assert not calls
        return v, s

    v, s = asyncio.run(flow())
    assert v["isValid"] is True
    assert s["success"] is False and s["errorReason"] == "invalid_exact_evm_payload_authorization_valid_before" and s["transaction"] == ""
