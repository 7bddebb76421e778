"""Streamed responses through PaymentMiddleware over real HTTP: unbuffered pass-through, and
settlement at the stream's end (default) or before its first byte (``streamSettle: "start"``).

"Unbuffered" is shown without timing: the handler sends its second chunk only once the client
has read the first, so a middleware holding the body back would deadlock (bounded: it fails)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import x402_verify as xv
from http_servers import NETWORK, PAY_TO, account, chain, decode, facilitator_app, pay, sdk_facilitator, serve
from x402_verify.asgi import PaymentMiddleware
from x402_verify.settlers import HTTPFacilitatorSettler

EXACT = {"scheme": "exact", "network": NETWORK, "payTo": PAY_TO, "price": "$0.01"}
ROUTES = {
    "GET /sse": {"accepts": EXACT, "mimeType": "text/event-stream"},
    "GET /chunked": {"accepts": EXACT},
    "GET /sse-start": {"accepts": EXACT, "streamSettle": "start"},
}


class Handshake:
    """The client's side says "read the first chunk"; the handler waits for it (bounded)."""

    def __init__(self) -> None:
        self.read_first = threading.Event()
        self.settles_at_start: list[int] = []


@pytest.fixture(scope="module")
def gw() -> Iterator[tuple[str, Handshake, Any, list[tuple[str, dict[str, Any]]]]]:
    hs = Handshake()
    signer = chain()
    calls: list[tuple[str, dict[str, Any]]] = []

    def n_settles() -> int:
        return sum(1 for k, _ in calls if k == "settle")

    async def stream(request: Request) -> StreamingResponse:
        sse = request.url.path.startswith("/sse")

        async def gen() -> Any:
            hs.settles_at_start.append(n_settles())
            yield b"data: first\n\n" if sse else b"first\n"
            deadline = time.monotonic() + 20
            while not hs.read_first.is_set():  # the client must have the first chunk already
                if time.monotonic() > deadline:
                    raise RuntimeError("the first chunk never reached the client")
                await asyncio.sleep(0.005)
            yield b"data: second\n\n" if sse else b"second\n"

        return StreamingResponse(gen(), media_type="text/event-stream" if sse else "text/plain")

    app = Starlette(routes=[Route(p, stream) for p in ("/sse", "/chunked", "/sse-start")])
    with serve(facilitator_app(sdk_facilitator(signer), calls)) as fac_url:
        mw = PaymentMiddleware(app, routes=ROUTES, verifier=xv.Verifier(networks=[NETWORK]), settler=HTTPFacilitatorSettler(fac_url))
        with serve(mw) as url:
            yield url, hs, signer, calls


def settles(calls: list[tuple[str, dict[str, Any]]]) -> int:
    return sum(1 for k, _ in calls if k == "settle")


@pytest.mark.parametrize("path", ["/sse", "/chunked"])
def test_a_stream_passes_through_unbuffered_and_settles_at_its_end(gw: Any, path: str) -> None:
    url, hs, _signer, calls = gw
    hs.read_first.clear()
    with httpx.Client(timeout=30) as c:
        header = pay(c.get(url + path).headers["payment-required"], account(500 + len(path)))
        before = settles(calls)
        with c.stream("GET", url + path, headers={"PAYMENT-SIGNATURE": header}) as r:
            assert r.status_code == 200
            assert "payment-response" not in r.headers  # headers left before settlement
            chunks = r.iter_raw()
            first = next(chunks)
            assert first.startswith(b"data: first" if path == "/sse" else b"first")
            assert settles(calls) == before  # not settled while streaming
            hs.read_first.set()
            rest = b"".join(chunks)
        assert b"second" in first + rest
        deadline = time.monotonic() + 20
        while settles(calls) == before:
            assert time.monotonic() < deadline, "the stream's end was not settled"
            time.sleep(0.01)
        assert settles(calls) == before + 1
        # settled: the same payment is a replay now
        assert c.get(url + path, headers={"PAYMENT-SIGNATURE": header}).status_code == 402


def test_stream_settle_start_settles_before_the_first_byte(gw: Any) -> None:
    url, hs, _signer, calls = gw
    hs.read_first.set()
    with httpx.Client(timeout=30) as c:
        header = pay(c.get(url + "/sse-start").headers["payment-required"], account(520))
        before = settles(calls)
        r = c.get(url + "/sse-start", headers={"PAYMENT-SIGNATURE": header})
    assert r.status_code == 200 and r.text == "data: first\n\ndata: second\n\n"
    assert decode(r.headers["payment-response"])["success"] is True
    # The handler starts producing before the middleware sees the first chunk; what is
    # settled-before is every byte the client receives.
    assert settles(calls) == before + 1


def test_stream_settle_start_failure_is_a_402_instead_of_the_stream(gw: Any) -> None:
    url, hs, signer, calls = gw
    hs.read_first.set()
    with httpx.Client(timeout=30) as c:
        header = pay(c.get(url + "/sse-start").headers["payment-required"], account(521))
        signer.receipt_status = 0
        try:
            r = c.get(url + "/sse-start", headers={"PAYMENT-SIGNATURE": header})
        finally:
            signer.receipt_status = 1
    assert r.status_code == 402 and b"data:" not in r.content
    assert decode(r.headers["payment-response"])["success"] is False
