"""Settlers and the settlement ledger.

``HTTPFacilitatorSettler`` against the SDK's own ``x402Facilitator`` served over loopback HTTP,
checked against what the SDK's ``HTTPFacilitatorClient`` sends; the callback settler;
``settlement_pending`` retries; the ledger's reserved -> settling (lease) -> settled/failed
machine in memory and in Redis; a gateway that dies mid-session and one that restarts on the
same Redis settling what the first left open.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from x402.http import FacilitatorConfig, HTTPFacilitatorClient

import x402_verify as xv
from http_servers import FAC, NETWORK, PAY_TO, account, chain, facilitator_app, pay, sdk_facilitator, serve
from redis_servers import RedisServer
from test_sdk_dropin import models
from x402_verify.asgi import PaymentMiddleware, SessionConfig
from x402_verify.facilitator.claims import open_claims
from x402_verify.ledger import MemoryLedger, RedisLedger
from x402_verify.settlers import CallbackSettler, HTTPFacilitatorSettler, SettlementResult, settle_with_retry


@pytest.fixture(scope="module")
def facilitator() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    with serve(facilitator_app(sdk_facilitator(chain()), calls)) as url:
        yield url, calls


def test_http_settler_speaks_the_sdk_clients_wire(facilitator: tuple[str, list[tuple[str, dict[str, Any]]]]) -> None:
    url, calls = facilitator
    payload, req = models(300)
    payload_dict, req_dict = payload.model_dump(by_alias=True, exclude_none=True), req.model_dump(by_alias=True, exclude_none=True)

    async def both() -> tuple[Any, SettlementResult]:
        sdk = HTTPFacilitatorClient(FacilitatorConfig(url=url))
        ours = HTTPFacilitatorSettler(url)
        try:
            theirs = await sdk.settle(payload, req)
            mine = await ours.settle(payload_dict, req_dict)
        finally:
            await sdk.aclose()
            await ours.aclose()
        return theirs, mine

    theirs, mine = asyncio.run(both())
    assert calls[-2][0] == calls[-1][0] == "settle"
    assert calls[-1][1] == calls[-2][1]  # the same body, field for field
    assert theirs.success and mine.network == NETWORK
    sdk_supported = HTTPFacilitatorClient(FacilitatorConfig(url=url)).get_supported().model_dump(by_alias=True, exclude_none=True)
    assert HTTPFacilitatorSettler(url).get_supported() == sdk_supported


def test_http_settler_non_200_is_a_reported_failure() -> None:
    app = Starlette(routes=[Route("/settle", lambda r: JSONResponse({"success": True}, status_code=500), methods=["POST"])])
    with serve(app) as url:

        async def go() -> SettlementResult:
            s = HTTPFacilitatorSettler(url)
            try:
                return await settle_with_retry(s, {"x402Version": 2}, {"network": NETWORK})
            finally:
                await s.aclose()

        result = asyncio.run(go())
    assert not result.success and result.error_reason == "unexpected_settle_error" and "500" in (result.error_message or "")
    assert result.to_dict()["transaction"] == "" and result.to_dict()["network"] == NETWORK


def test_settlement_pending_is_retried_a_bounded_number_of_times() -> None:
    pending = {"success": False, "errorReason": "settlement_pending", "transaction": "0xab", "network": NETWORK}
    answers = [pending, pending, {"success": True, "transaction": "0xab", "network": NETWORK}]
    calls: list[int] = []

    def fn(payload: Any, requirements: Any) -> dict[str, Any]:
        calls.append(1)
        return answers[min(len(calls) - 1, len(answers) - 1)]

    result = asyncio.run(settle_with_retry(CallbackSettler(fn), {}, {"network": NETWORK}, attempts=3, backoff=0))
    assert result.success and len(calls) == 3

    async def always_pending(payload: Any, requirements: Any) -> SettlementResult:
        calls.append(1)
        return SettlementResult.from_dict(pending)

    calls.clear()
    result = asyncio.run(settle_with_retry(CallbackSettler(always_pending), {}, {"network": NETWORK}, attempts=4, backoff=0))
    assert result.pending and len(calls) == 4


def test_a_malformed_answer_is_a_failure() -> None:
    result = asyncio.run(settle_with_retry(CallbackSettler(lambda p, r: {"success": "yes"}), {}, {"network": NETWORK}))
    assert not result.success and result.error_reason == "unexpected_settle_error"


@pytest.fixture(params=["memory", "redis"])
def ledger(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield RedisLedger(server.url)
    finally:
        server.stop()


def test_the_ledger_lease_machine(ledger: Any) -> None:
    check_lease_machine(ledger)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def claims(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    """Each ledger the facilitator takes its settlement claims from (claims.open_claims)."""
    if request.param == "redis":
        server = RedisServer(tmp_path / "redis").start()
        try:
            yield open_claims(server.url)
        finally:
            server.stop()
        return
    yield open_claims(f"sqlite:///{tmp_path / 'n.db'}" if request.param == "sqlite" else "memory://")


def test_the_facilitators_settlement_claims(claims: Any) -> None:
    check_claims(claims)


# The checks, shared with test_redis_cluster.py (the same machines on a Redis Cluster)


def check_lease_machine(ledger: Any) -> None:
    """A gateway's record: open -> touched -> due -> settling (a lease) -> taken over once the
    lease ran out -> finished by its holder only -> its answer kept."""
    t = 1_000_000.0
    assert ledger.open("k", {"kind": "upto", "session": "s1", "due_at": repr(t + 100)}, keep_until=4e9)
    assert not ledger.open("k", {"kind": "upto"}, keep_until=4e9)
    assert ledger.find_session("s1")["state"] == "open"
    assert ledger.due(now=t) == []
    ledger.touch("k", due_at=t + 5, credit=7, now=t)
    assert ledger.due(now=t + 5) == ["k"] and ledger.get("k")["credit"] == "7"
    first = ledger.acquire("k", "a", lease_seconds=30, now=t)
    assert first is not None and first["state"] == "settling" and first["holder"] == "a"
    assert ledger.acquire("k", "b", lease_seconds=30, now=t + 10) is None  # a's lease holds
    assert ledger.due(now=t + 29) == []
    assert ledger.due(now=t + 31) == ["k"]  # a died: its lease ran out
    taken = ledger.acquire("k", "b", lease_seconds=30, now=t + 31)
    assert taken is not None and taken["holder"] == "b" and taken["attempts"] == "2"
    assert not ledger.finish("k", "a", state="settled", outcome="{}")  # a holds nothing now
    assert ledger.finish("k", "b", state="settled", outcome='{"success": true}')
    rec = ledger.get("k")
    assert rec["state"] == "settled" and rec["outcome"] == '{"success": true}' and "payload" not in rec
    assert ledger.acquire("k", "c", lease_seconds=30, now=t + 99) is None  # finished: the answer is stored
    assert ledger.due(now=t + 1000) == []
    created = ledger.acquire("e", "a", lease_seconds=30, now=t, record={"kind": "exact"}, keep_until=4e9)
    assert created is not None and created["state"] == "settling"


def check_claims(claims: Any) -> None:
    """The facilitator's use (app._settle_reserved): a claim made by ``acquire`` with a record,
    held by one of many concurrent takers, taken over once its lease ran out, finished by its
    holder only, its outcome kept, and no second settlement after it."""
    t = time.time()
    rec, keep = {"owner": "o1", "network": NETWORK}, t + 3600
    key = secrets.token_hex(32)
    barrier = threading.Barrier(16)

    def take(i: int) -> Any:
        barrier.wait()
        return claims.acquire(key, f"h{i}", lease_seconds=30, now=t, record=rec, keep_until=keep)

    with ThreadPoolExecutor(16) as pool:
        taken = [c for c in pool.map(take, range(16)) if c is not None]
    assert len(taken) == 1, taken
    first = taken[0]
    assert first["state"] == "settling" and first["owner"] == "o1" and first["network"] == NETWORK
    assert claims.get(key)["holder"] == first["holder"]
    assert claims.acquire(key, "late", lease_seconds=30, now=t + 29, record=rec, keep_until=keep) is None  # the lease holds
    again = claims.acquire(key, "heir", lease_seconds=30, now=t + 31, record=rec, keep_until=keep)  # its holder died
    assert again is not None and again["holder"] == "heir" and again["owner"] == "o1"
    assert not claims.finish(key, first["holder"], state="settled", outcome='{"transaction": "0x1"}')  # holds nothing now
    assert claims.finish(key, "heir", state="settled", outcome='{"transaction": "0x2"}')
    assert not claims.finish(key, "heir", state="failed", outcome="{}")  # finished: not rewritten
    done = claims.get(key)
    assert done["state"] == "settled" and done["outcome"] == '{"transaction": "0x2"}'
    for late in (t + 32, t + 1000):  # no lease makes a finished claim settleable again
        assert claims.acquire(key, "x", lease_seconds=30, now=late, record=rec, keep_until=keep) is None
    assert claims.get(key)["outcome"] == '{"transaction": "0x2"}'
    assert claims.get(secrets.token_hex(32)) is None


def test_a_restarted_gateway_settles_what_the_first_left_open(redis_server: RedisServer, facilitator: Any) -> None:  # noqa: F811
    url, calls = facilitator
    routes = {"POST /chat": {"accepts": {"scheme": "upto", "network": NETWORK, "payTo": PAY_TO, "price": "$1", "cost": 1000}}}

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(routes=[Route("/chat", ok, methods=["POST"])])

    def gateway() -> PaymentMiddleware:
        return PaymentMiddleware(
            app, routes=routes, settler=HTTPFacilitatorSettler(url), facilitator_address=FAC,
            verifier=xv.Verifier(networks=[NETWORK], nonce_store=xv.RedisNonceStore(redis_server.url)),
            ledger=RedisLedger(redis_server.url), sessions=SessionConfig(idle_timeout=3600, reap_interval=3600),
        )  # fmt: skip

    async def first_life() -> None:
        mw = gateway()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://gw") as c:
            r = await c.post("/chat")
            header = pay(r.headers["payment-required"], account(301))
            for _ in range(3):
                assert (await c.post("/chat", headers={"PAYMENT-SIGNATURE": header})).status_code == 200
        # the process dies here: no shutdown, nothing settled
        assert mw._reaper is not None
        mw._reaper.cancel()
        await mw.settler.aclose()  # type: ignore[attr-defined]

    asyncio.run(first_life())
    before = len([c for c in calls if c[0] == "settle"])

    async def second_life() -> int:
        mw = gateway()
        try:
            return await mw.reap(everything=True)
        finally:
            await mw.aclose()

    assert asyncio.run(second_life()) == 1
    new = [b for k, b in calls if k == "settle"][before:]
    assert [b["paymentRequirements"]["amount"] for b in new] == ["3000"]


def test_a_record_kept_for_no_time_is_refused_alike(claims: Any) -> None:
    """Creating a record whose ``keep_until`` has passed is a caller's fault, refused by every
    ledger before it writes anything: Redis would expire it at once and then recreate it, field
    by field, with no expiry at all (a record kept for ever)."""
    t = time.time()
    rec = {"owner": "o1", "network": NETWORK}
    for keep in (t - 1, t, 0.0):
        with pytest.raises(ValueError, match="kept for no time"):
            claims.acquire("k-past", "h", lease_seconds=30, now=t, record=rec, keep_until=keep)
    with pytest.raises(TypeError):
        claims.acquire("k-past", "h", lease_seconds=30, now=t, record=rec, keep_until=float("nan"))
    assert claims.get("k-past") is None
    client = getattr(claims, "client", None)
    if client is not None:  # nothing of it on the server either
        assert not client.keys("*k-past*")
    # Without a record nothing is created, so a past keep_until does not matter.
    assert claims.acquire("k-past", "h", lease_seconds=30, now=t, keep_until=t - 1) is None
    if hasattr(claims, "open"):
        with pytest.raises(ValueError, match="kept for no time"):
            claims.open("k-open", {"kind": "upto", "session": "s-past"}, keep_until=t - 5)
        assert claims.get("k-open") is None and claims.find_session("s-past") is None
    created = claims.acquire("k-live", "h", lease_seconds=30, now=t, record=rec, keep_until=t + 60)
    assert created is not None and created["holder"] == "h"
    if client is not None:  # the record expires when its authorization is dead
        ttl = [client.pttl(k) for k in client.keys("*k-live*")]
        assert ttl and all(0 < x <= 61_000 for x in ttl), ttl
