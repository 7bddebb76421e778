"""PaymentMiddleware's upto sessions end to end over real HTTP: one signed upto Permit2
authorization (made by the SDK's client) opens a session that later requests resume; each is
charged; the reaper settles the session once, upstream, through the SDK's own facilitator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import x402_verify as xv
from http_servers import FAC, NETWORK, PAY_TO, account, chain, decode, facilitator_app, pay, sdk_facilitator, serve
from x402_verify.asgi import PaymentMiddleware, SessionConfig
from x402_verify.settlers import HTTPFacilitatorSettler

COST = 10_000
UPTO = {"scheme": "upto", "network": NETWORK, "payTo": PAY_TO, "price": "$0.20", "cost": COST}  # cap: 20 requests
ROUTES: dict[str, Any] = {
    "POST /chat": {"accepts": UPTO},
    "POST /other": {"accepts": UPTO},
    "POST /idle": {"accepts": {**UPTO, "price": "$1"}},
    "POST /metered": {"accepts": {**UPTO, "price": "$1", "hold": 5000, "cost": lambda info: 1234 if info["status"] == 200 else 0}},
    "POST /tokens": {"accepts": {**UPTO, "price": "$0.0025", "cost": None, "streamCost": lambda chunk: 100 * chunk.count(b"tok")}},
}


def wait_for(pred: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def gw() -> Iterator[tuple[Any, list[tuple[str, dict[str, Any]]], Counter[str], str]]:
    signer = chain()
    calls: list[tuple[str, dict[str, Any]]] = []
    runs: Counter[str] = Counter()

    async def handler(request: Request) -> Any:
        runs[request.url.path] += 1
        if request.url.path == "/metered" and request.headers.get("x-fail"):
            return JSONResponse({"error": "model down"}, status_code=503)
        if request.url.path == "/tokens":

            async def gen() -> Any:
                for _ in range(50):  # 100 per "tok": the cap (2500) cuts it after 25
                    yield b"tok\n"
                    await asyncio.sleep(0)

            return StreamingResponse(gen(), media_type="text/plain")
        return JSONResponse({"n": runs[request.url.path]})

    app = Starlette(routes=[Route(p, handler, methods=["POST"]) for p in ("/chat", "/other", "/idle", "/tokens", "/metered")])
    with serve(facilitator_app(sdk_facilitator(signer), calls)) as fac_url:
        mw = PaymentMiddleware(
            app, routes=ROUTES, verifier=xv.Verifier(networks=[NETWORK]), settler=HTTPFacilitatorSettler(fac_url),
            facilitator_address=FAC, sessions=SessionConfig(idle_timeout=1.0, reap_interval=0.05),
        )  # fmt: skip
        with serve(mw) as url:
            yield signer, calls, runs, url


def settles(calls: list[tuple[str, dict[str, Any]]], header: str | None = None) -> list[dict[str, Any]]:
    """Settle bodies, or those of one session's payment (other tests' sessions settle meanwhile)."""
    return [b for k, b in calls if k == "settle" and (header is None or b["paymentPayload"] == decode(header))]


def open_session(c: httpx.Client, url: str, path: str, seed: int) -> str:
    r = c.post(url + path)
    assert r.status_code == 402
    return pay(r.headers["payment-required"], account(seed))


def test_twenty_requests_charged_the_21st_refused_one_settle_with_the_total(gw: Any) -> None:
    signer, calls, runs, url = gw
    with httpx.Client() as c:
        header = open_session(c, url, "/chat", 100)
        r = c.post(url + "/chat", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 200
        session = r.headers["x-upto-session"]
        for i in range(19):  # resumed both ways: the same header again, or only the session id
            headers = {"PAYMENT-SIGNATURE": header} if i % 2 else {"X-Upto-Session": session}
            r = c.post(url + "/chat", headers=headers)
            assert r.status_code == 200, (i, decode(r.headers["payment-required"]).get("error"))
            assert r.headers["x-upto-session"] == session
        assert runs["/chat"] == 20
        r = c.post(url + "/chat", headers={"X-Upto-Session": session})
        assert r.status_code == 402
        assert decode(r.headers["payment-required"])["error"] == "invalid_upto_evm_payload_settlement_exceeds_amount"
        assert runs["/chat"] == 20
        wait_for(lambda: len(settles(calls, header)) > 0)
        r = c.post(url + "/chat", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 402
    time.sleep(0.3)  # a few reaper passes: still one settlement
    new = settles(calls, header)
    assert len(new) == 1
    assert new[0]["paymentRequirements"]["amount"] == str(20 * COST)
    # the chain write: settle(permit, amount, owner, witness, sig) on the upto proxy
    nonce = int(decode(header)["payload"]["permit2Authorization"]["nonce"])

    def writes() -> list[int]:
        return [w[2][1] for w in signer.writes if w[0] == xv.UPTO_PERMIT2_PROXY and w[2][0][1] == nonce]

    wait_for(lambda: bool(writes()))
    assert writes() == [20 * COST]


def test_an_idle_session_is_settled_once_with_what_it_was_charged(gw: Any) -> None:
    _signer, calls, runs, url = gw
    with httpx.Client() as c:
        header = open_session(c, url, "/idle", 101)
        for _ in range(3):
            assert c.post(url + "/idle", headers={"PAYMENT-SIGNATURE": header}).status_code == 200
        wait_for(lambda: len(settles(calls, header)) > 0)
        r = c.post(url + "/idle", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 402 and decode(r.headers["payment-required"])["error"] == "reservation_closed"
    assert [b["paymentRequirements"]["amount"] for b in settles(calls, header)] == [str(3 * COST)]


def test_a_session_is_bound_to_its_route(gw: Any) -> None:
    _signer, _calls, runs, url = gw
    with httpx.Client() as c:
        header = open_session(c, url, "/chat", 102)
        r = c.post(url + "/chat", headers={"PAYMENT-SIGNATURE": header})
        session = r.headers["x-upto-session"]
        n = runs["/other"]
        r = c.post(url + "/other", headers={"X-Upto-Session": session})
        assert r.status_code == 402 and decode(r.headers["payment-required"])["error"] == "invalid_payment_requirements"
        r = c.post(url + "/other", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 402
        r = c.post(url + "/chat", headers={"X-Upto-Session": "no-such-session"})
        assert r.status_code == 402 and decode(r.headers["payment-required"])["error"] == "reservation_not_found"
        assert runs["/other"] == n


def test_a_stream_is_cut_at_the_cap(gw: Any) -> None:
    _signer, calls, _runs, url = gw
    with httpx.Client() as c:
        header = open_session(c, url, "/tokens", 103)
        r = c.post(url + "/tokens", headers={"PAYMENT-SIGNATURE": header})
        assert r.status_code == 200
        assert r.content == b"tok\n" * 25  # 25 chunks paid (2500 of 2500), not one more
        wait_for(lambda: len(settles(calls, header)) > 0)
    assert [b["paymentRequirements"]["amount"] for b in settles(calls, header)] == ["2500"]


def test_holds_are_trued_down_to_the_cost_and_refunded_on_failure(gw: Any) -> None:
    _signer, calls, runs, url = gw
    with httpx.Client() as c:
        header = open_session(c, url, "/metered", 104)
        for _ in range(3):
            assert c.post(url + "/metered", headers={"PAYMENT-SIGNATURE": header}).status_code == 200
        r = c.post(url + "/metered", headers={"PAYMENT-SIGNATURE": header, "X-Fail": "1"})
        assert r.status_code == 503  # passed through; its hold refunded
        wait_for(lambda: len(settles(calls, header)) > 0)  # idle (1 s) then settled
    assert [b["paymentRequirements"]["amount"] for b in settles(calls, header)] == [str(3 * 1234)]


def test_a_session_near_its_deadline_is_settled_and_refused() -> None:
    from x402_verify.settlers import CallbackSettler, SettlementResult

    settled: list[str] = []

    def settle(payload: Any, requirements: Any) -> SettlementResult:
        settled.append(requirements["amount"])
        return SettlementResult(success=True, transaction="0x1", network=NETWORK)

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({})

    # The SDK's client signs a 300 s deadline; a 295 s margin puts it "near" at once.
    mw = PaymentMiddleware(
        Starlette(routes=[Route("/chat", ok, methods=["POST"])]), routes={"POST /chat": ROUTES["POST /chat"]},
        settler=CallbackSettler(settle), facilitator_address=FAC,
        sessions=SessionConfig(idle_timeout=3600, deadline_margin=295, reap_interval=3600),
    )  # fmt: skip

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://gw") as c:
            header = pay((await c.post("/chat")).headers["payment-required"], account(105))
            assert (await c.post("/chat", headers={"PAYMENT-SIGNATURE": header})).status_code == 200
            await asyncio.sleep(5.5)  # past deadline - margin
            r = await c.post("/chat", headers={"PAYMENT-SIGNATURE": header})
            assert r.status_code == 402 and decode(r.headers["payment-required"])["error"] == "permit2_deadline_expired"
            assert await mw.reap() == 1  # due: its deadline is near
        await mw.aclose()

    asyncio.run(go())
    assert settled == [str(COST)]
