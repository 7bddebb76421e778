"""``LocalFacilitatorClient`` under the x402 SDK's own FastAPI middleware (``PaymentMiddlewareASGI``
with an ``x402ResourceServer``), upstream the SDK's ``HTTPFacilitatorClient`` talking to the
SDK's ``x402Facilitator`` (chain stubbed) over loopback HTTP; payments by the SDK's client."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from x402 import x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.middleware.fastapi import PaymentMiddlewareASGI
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse, VerifyResponse

import x402_verify as xv
from http_servers import NETWORK, PAY_TO, account, chain, decode, facilitator_app, pay, sdk_facilitator, serve
from x402_verify.sdk import LocalFacilitatorClient

ROUTES = {"GET /paid": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}}}


@pytest.fixture(scope="module")
def sdk_app() -> Iterator[tuple[str, Counter[str], list[tuple[str, dict[str, Any]]], LocalFacilitatorClient]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    runs: Counter[str] = Counter()
    with serve(facilitator_app(sdk_facilitator(chain()), calls)) as fac_url:
        upstream = HTTPFacilitatorClient(FacilitatorConfig(url=fac_url))
        local = LocalFacilitatorClient(upstream, verifier=xv.Verifier(networks=[NETWORK]))
        server = x402ResourceServer(local)  # the one line an SDK user changes
        server.register(NETWORK, ExactEvmServerScheme())

        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> Any:
            yield
            await upstream.aclose()  # its connection pool lives on the server's loop

        app = FastAPI(lifespan=lifespan)

        @app.get("/paid")
        async def paid() -> dict[str, str]:
            runs["paid"] += 1
            await asyncio.sleep(0.01)
            return {"ok": "paid"}

        app.add_middleware(PaymentMiddlewareASGI, routes=ROUTES, server=server)
        with serve(app) as url:
            yield url, runs, calls, local


def test_the_protocol_shape() -> None:
    local = LocalFacilitatorClient(sdk_facilitator(chain()))
    assert inspect.iscoroutinefunction(local.verify) and inspect.iscoroutinefunction(local.settle)
    assert not inspect.iscoroutinefunction(local.get_supported)
    assert isinstance(local.get_supported(), SupportedResponse)


def test_fifty_concurrent_copies_under_the_sdk_middleware_run_the_handler_once(sdk_app: Any) -> None:
    url, runs, calls, _local = sdk_app
    with httpx.Client() as c:
        r = c.get(url + "/paid")
        assert r.status_code == 402
        header = pay(r.headers["payment-required"], account(200))
    before = runs["paid"]
    n_verify = sum(1 for k, _ in calls if k == "verify")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50), timeout=60) as ac:
            return await asyncio.gather(*(ac.get(url + "/paid", headers={"PAYMENT-SIGNATURE": header}) for _ in range(50)))

    answers = asyncio.run(burst())
    assert Counter(r.status_code for r in answers) == {200: 1, 402: 49}
    assert {decode(r.headers["payment-required"]).get("error") for r in answers if r.status_code == 402} == {"invalid_exact_evm_nonce_already_used"}
    assert runs["paid"] == before + 1
    ok = next(r for r in answers if r.status_code == 200)
    assert decode(ok.headers["payment-response"])["success"] is True
    assert sum(1 for k, _ in calls if k == "verify") == n_verify  # verified locally, never upstream
    assert sum(1 for k, _ in calls if k == "settle") >= 1


def models(seed: int) -> tuple[PaymentPayload, PaymentRequirements]:
    fac = sdk_facilitator(chain())
    server = x402ResourceServer(fac)
    server.register(NETWORK, ExactEvmServerScheme())
    server.initialize()
    from x402.schemas import PaymentRequired, ResourceConfig, ResourceInfo

    from http_servers import sdk_client

    req = server.build_payment_requirements(ResourceConfig(scheme="exact", network=NETWORK, pay_to=PAY_TO, price="$0.01"))[0]
    payload = sdk_client(account(seed)).create_payment_payload(PaymentRequired(x402_version=2, accepts=[req], resource=ResourceInfo(url="http://t/x")))
    return payload, req


def test_verify_settle_release_with_the_sdk_models() -> None:
    signer = chain()
    local = LocalFacilitatorClient(sdk_facilitator(signer), verifier=xv.Verifier(networks=[NETWORK]))
    payload, req = models(201)

    async def flow() -> None:
        v = await local.verify(payload, req)
        assert isinstance(v, VerifyResponse) and v.is_valid and v.payer == account(201).address
        again = await local.verify(payload, req)
        assert not again.is_valid and again.invalid_reason == "invalid_exact_evm_nonce_already_used"
        assert await local.release(payload, req) is True  # the handler failed: free it
        assert (await local.verify(payload, req)).is_valid
        s = await local.settle(payload, req)
        assert isinstance(s, SettleResponse) and s.success and s.transaction
        assert await local.release(payload, req) is False  # settled: nothing to free
        assert (await local.verify(payload, req)).invalid_reason == "invalid_exact_evm_nonce_already_used"

    asyncio.run(flow())


def test_a_failed_settlement_comes_back_as_upstream_said_and_keeps_the_reservation() -> None:
    signer = chain()
    signer.receipt_status = 0
    local = LocalFacilitatorClient(sdk_facilitator(signer), verifier=xv.Verifier(networks=[NETWORK]))
    payload, req = models(202)

    async def flow() -> None:
        assert (await local.verify(payload, req)).is_valid
        s = await local.settle(payload, req)
        assert s.success is False and s.error_reason == "transaction_failed" and s.network == NETWORK
        assert (await local.verify(payload, req)).invalid_reason == "invalid_exact_evm_nonce_already_used"

    asyncio.run(flow())
