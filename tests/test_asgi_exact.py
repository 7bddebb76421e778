"""PaymentMiddleware end to end over real HTTP, exact payments.

The gateway (a Starlette app under ``PaymentMiddleware``) and the settling facilitator (the
x402 SDK's ``x402Facilitator`` with its chain signer stubbed, behind its HTTP API) each run
under uvicorn on a loopback port; payments are signed by the SDK's own client from the 402's
``PAYMENT-REQUIRED``; settlement goes through ``HTTPFacilitatorSettler``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from x402 import x402ResourceServer
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.schemas import ResourceConfig

import x402_verify as xv
from http_servers import NETWORK, PAY_TO, USDC, account, chain, decode, facilitator_app, pay, pay_v1, sdk_facilitator, serve
from x402_verify.asgi import PaymentMiddleware
from x402_verify.settlers import HTTPFacilitatorSettler

ROUTES: dict[str, Any] = {
    "GET /paid": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}, "description": "paid"},
    "GET /permit2": {
        "accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.02", "extra": {"assetTransferMethod": "permit2"}},
    },
    "GET /flaky": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}},
    "GET /error": {"accepts": {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}},
    "GET /before": {
        "accepts": {
            "scheme": "exact",
            "network": NETWORK,
            "payTo": PAY_TO,
            "price": {"amount": "1234", "asset": USDC, "extra": {"name": "USDC", "version": "2"}},
        },
        "settle": "before",
    },
    "GET /two": {
        "accepts": [
            {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"},
            {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01", "extra": {"assetTransferMethod": "permit2"}},
        ]
    },
}


class Gateway:
    def __init__(self) -> None:
        self.signer = chain()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.runs: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.fail_next: set[str] = set()
        self.settles_seen_by_handler: list[int] = []

    def app(self) -> Any:
        async def handler(request: Request) -> Any:
            name = request.url.path.strip("/")
            with self.lock:
                self.runs[name] += 1
                self.fail_next.discard(name)
            await asyncio.sleep(0.01)  # long enough for concurrent copies to overlap
            if name == "error":
                return JSONResponse({"error": "upstream"}, status_code=503)
            if name == "before":
                self.settles_seen_by_handler.append(sum(1 for c in self.calls if c[0] == "settle"))
            return JSONResponse({"ok": name})

        paths = ["/paid", "/permit2", "/flaky", "/error", "/before", "/two"]
        inner = Starlette(routes=[Route(p, handler) for p in paths] + [Route("/free", lambda r: PlainTextResponse("free"))])

        async def app(scope: Any, receive: Any, send: Any) -> None:
            # A bare ASGI failure (no framework answering 500 first): nothing reaches the client.
            if scope["type"] == "http" and scope["path"] == "/flaky" and "flaky" in self.fail_next:
                with self.lock:
                    self.runs["flaky"] += 1
                    self.fail_next.discard("flaky")
                raise RuntimeError("the model fell over")
            await inner(scope, receive, send)

        return app


@pytest.fixture(scope="module")
def gw() -> Iterator[tuple[Gateway, str]]:
    g = Gateway()
    fac = sdk_facilitator(g.signer)
    with serve(facilitator_app(fac, g.calls)) as fac_url:
        verifier = xv.Verifier(networks=[NETWORK])
        app = PaymentMiddleware(g.app(), routes=ROUTES, verifier=verifier, settler=HTTPFacilitatorSettler(fac_url))
        with serve(app) as url:
            yield g, url


def settles(g: Gateway) -> list[dict[str, Any]]:
    return [body for kind, body in g.calls if kind == "settle"]


def required(client: httpx.Client, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 402
    return r.headers["payment-required"]


def test_unpaid_402_carries_the_sdk_requirements(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        r = c.get(url + "/paid")
        assert r.status_code == 402
        assert r.headers["cache-control"] == "no-store"
        doc = decode(r.headers["payment-required"])
        # v1 clients read the body
        body = r.json()
        assert body["x402Version"] == 1 and body["accepts"][0]["network"] == "base-sepolia" and body["accepts"][0]["maxAmountRequired"] == "10000"
        assert c.get(url + "/free").text == "free"
    assert doc["x402Version"] == 2 and doc["error"] == "Payment required"
    assert doc["resource"]["url"] == url + "/paid" and doc["resource"]["description"] == "paid"
    # The same terms the SDK's own resource server builds for this route config
    sdk = x402ResourceServer(sdk_facilitator(chain()))
    sdk.register(NETWORK, ExactEvmServerScheme())
    sdk.initialize()
    want = sdk.build_payment_requirements(ResourceConfig(scheme="exact", network=NETWORK, pay_to=PAY_TO, price="$0.01"))
    assert doc["accepts"] == [w.model_dump(by_alias=True, exclude_none=True) for w in want]


@pytest.mark.parametrize("path", ["/paid", "/permit2"])
def test_paid_request_runs_the_handler_and_settles_upstream(gw: tuple[Gateway, str], path: str) -> None:
    g, url = gw
    before_runs, before_settles = g.runs[path[1:]], len(settles(g))
    with httpx.Client() as c:
        offered = required(c, url + path)
        header = pay(offered, account(10 + len(path)))
        r = c.get(url + path, headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 200, r.headers.get("payment-required")
    assert r.json() == {"ok": path[1:]}
    receipt = decode(r.headers["payment-response"])
    assert receipt["success"] is True and receipt["transaction"].startswith("0x") and receipt["network"] == NETWORK
    assert g.runs[path[1:]] == before_runs + 1
    new = settles(g)[before_settles:]
    assert len(new) == 1
    # The wire shape of the SDK's HTTPFacilitatorClient: version, the payload as signed, the requirements
    sent = decode(header)
    assert set(new[0]) == {"x402Version", "paymentPayload", "paymentRequirements"}
    assert new[0]["x402Version"] == 2 and new[0]["paymentPayload"] == sent
    assert new[0]["paymentRequirements"] == decode(offered)["accepts"][0]


def test_a_bad_payment_gets_402_with_the_reason_code(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/paid"), account(3))
        payload = decode(header)
        payload["payload"]["authorization"]["value"] = "20000"
        forged = base64.b64encode(json.dumps(payload).encode()).decode()
        runs = g.runs["paid"]
        r = c.get(url + "/paid", headers={"PAYMENT-SIGNATURE": forged})
        assert r.status_code == 402
        assert decode(r.headers["payment-required"])["error"] == "invalid_exact_evm_payload_authorization_value_mismatch"
        r = c.get(url + "/paid", headers={"PAYMENT-SIGNATURE": "not base64!"})
        assert decode(r.headers["payment-required"])["error"] == "invalid_base64"
    assert g.runs["paid"] == runs


def test_fifty_concurrent_copies_of_one_header_run_the_handler_once(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/paid"), account(4))
    runs, n_settles = g.runs["paid"], len(settles(g))

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=60) as ac:
            return await asyncio.gather(*(ac.get(url + "/paid", headers={"PAYMENT-SIGNATURE": header}) for _ in range(50)))

    answers = asyncio.run(burst())
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 1, 402: 49}
    reasons = {decode(r.headers["payment-required"])["error"] for r in answers if r.status_code == 402}
    assert reasons == {"invalid_exact_evm_nonce_already_used"}
    assert g.runs["paid"] == runs + 1
    assert len(settles(g)) == n_settles + 1


def test_a_raising_handler_releases_the_reservation(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/flaky"), account(5))
        g.fail_next.add("flaky")
        runs, n_settles = g.runs["flaky"], len(settles(g))
        r = c.get(url + "/flaky", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 500
        assert len(settles(g)) == n_settles  # nothing settled for a failed handler
        r = c.get(url + "/flaky", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 200 and decode(r.headers["payment-response"])["success"] is True
        r = c.get(url + "/flaky", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 402  # settled now: a replay
    assert g.runs["flaky"] == runs + 2
    assert len(settles(g)) == n_settles + 1


def test_an_error_status_releases_and_passes_through(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/error"), account(6))
        n_settles = len(settles(g))
        for _ in range(2):  # released each time, so the same payment is taken again
            r = c.get(url + "/error", headers={"PAYMENT-SIGNATURE": header})
            assert r.status_code == 503 and r.json() == {"error": "upstream"}
            assert "payment-response" not in r.headers
    assert len(settles(g)) == n_settles


def test_settle_before_serving(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/before"), account(7))
        n_settles = len(settles(g))
        r = c.get(url + "/before", headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 200 and decode(r.headers["payment-response"])["success"] is True
    assert g.settles_seen_by_handler[-1] == n_settles + 1  # settled before the handler ran
    assert settles(g)[-1]["paymentRequirements"]["amount"] == "1234"


def test_v1_x_payment(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        r = c.get(url + "/paid")
        header = pay_v1(r.content, account(8))
        r = c.get(url + "/paid", headers={"X-PAYMENT": header})
        assert r.status_code == 200, r.content
        receipt = decode(r.headers["x-payment-response"])
        assert receipt["success"] is True
        assert "payment-response" not in r.headers
        r = c.get(url + "/paid", headers={"X-PAYMENT": header})
        assert r.status_code == 402 and r.json()["error"] == "invalid_exact_evm_nonce_already_used"
    assert settles(g)[-1]["x402Version"] == 1


def test_the_option_the_client_chose_is_the_one_verified(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/two"), account(9), pick=1)
        r = c.get(url + "/two", headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 200
    assert settles(g)[-1]["paymentRequirements"]["extra"]["assetTransferMethod"] == "permit2"


def test_a_failed_settlement_is_a_402_with_the_failure(gw: tuple[Gateway, str]) -> None:
    g, url = gw
    with httpx.Client() as c:
        header = pay(required(c, url + "/paid"), account(11))
        g.signer.receipt_status = 0
        try:
            r = c.get(url + "/paid", headers={"PAYMENT-SIGNATURE": header})
        finally:
            g.signer.receipt_status = 1
        assert r.status_code == 402
        receipt = decode(r.headers["payment-response"])
        assert receipt["success"] is False and receipt["errorReason"] == "transaction_failed"
        assert r.content == b"{}"
        # the reservation is kept (a transaction may yet land): the payment is not taken twice
        r = c.get(url + "/paid", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 402 and decode(r.headers["payment-required"])["error"] == "invalid_exact_evm_nonce_already_used"
