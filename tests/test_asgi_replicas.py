"""Two gateway processes sharing Redis charge one upto session without passing its cap, and
settle it once (the ledger's lease keeps the two reapers from settling it twice)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from http_servers import UPTO_COST, account, chain, decode, facilitator_app, pay, replica, sdk_facilitator, serve
from redis_servers import RedisServer


def test_two_replicas_never_pass_the_cap_and_settle_once(redis_server: RedisServer) -> None:  # noqa: F811
    calls: list[tuple[str, dict[str, Any]]] = []
    with serve(facilitator_app(sdk_facilitator(chain()), calls)) as fac_url:
        with replica(fac_url, redis_server.url) as a, replica(fac_url, redis_server.url) as b:
            with httpx.Client() as c:
                header = pay(c.post(a + "/chat").headers["payment-required"], account(400))
                first = c.post(a + "/chat", headers={"PAYMENT-SIGNATURE": header})
                assert first.status_code == 200
                session = first.headers["x-upto-session"]

            async def storm() -> list[httpx.Response]:
                async with httpx.AsyncClient(limits=httpx.Limits(max_connections=40), timeout=60) as ac:
                    reqs = []
                    for i in range(40):  # the cap allows 19 more; each replica gets 20 tries
                        base = a if i % 2 else b
                        headers = {"PAYMENT-SIGNATURE": header} if i % 4 < 2 else {"X-Upto-Session": session}
                        reqs.append(ac.post(base + "/chat", headers=headers))
                    return await asyncio.gather(*reqs)

            answers = asyncio.run(storm())
            codes = Counter(r.status_code for r in answers)
            assert codes == {200: 19, 402: 21}
            assert {decode(r.headers["payment-required"])["error"] for r in answers if r.status_code == 402} == {
                "invalid_upto_evm_payload_settlement_exceeds_amount"
            }
            deadline = time.monotonic() + 30
            while not any(k == "settle" for k, _ in calls):
                assert time.monotonic() < deadline, "the exhausted session was not settled"
                time.sleep(0.05)
            time.sleep(0.5)  # both reapers get several passes
    settles = [body for k, body in calls if k == "settle"]
    assert len(settles) == 1
    assert settles[0]["paymentRequirements"]["amount"] == str(20 * UPTO_COST)
