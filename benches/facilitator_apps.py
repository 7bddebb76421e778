"""The two comparison apps of the facilitator load benchmark, as ASGI factories a server's
worker processes import (``uvicorn --factory facilitator_apps:sdk_app``).

Both read the body and answer JSON through the same minimal ASGI code, so the difference from
ours is what happens in between:

- ``sdk_app``: the x402 SDK's own ``x402Facilitator`` (exact EIP-3009 / Permit2 and upto on
  the bench networks), its chain signer stubbed (tests/sdk_stub.py: reads answer at once,
  simulations succeed); ``/verify`` validates the SDK's pydantic models and awaits
  ``x402Facilitator.verify``, as an SDK-based facilitator does.
- ``bare_app``: no verification at all (reads the body, parses the JSON, answers
  ``{"isValid": true}``): the server's own ceiling.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

NETWORKS = ["eip155:84532", "eip155:8453"]


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Any, status: int, doc: Any) -> None:
    body = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def sdk_app() -> Any:
    import x402_verify as xv
    from sdk_stub import StubChainSigner
    from x402 import x402Facilitator
    from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
    from x402.mechanisms.evm.upto import UptoEvmFacilitatorScheme
    from x402.schemas import PaymentPayload, PaymentRequirements

    from load import CONTRACTS

    signer = StubChainSigner([*CONTRACTS, xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY])
    fac = x402Facilitator()
    fac.register(NETWORKS, ExactEvmFacilitatorScheme(signer))
    fac.register(NETWORKS, UptoEvmFacilitatorScheme(signer))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["path"] == "/health":
            return await _answer(send, 200, {"status": "ok"})
        doc = json.loads(await _body(receive))
        try:
            result = await fac.verify(PaymentPayload.model_validate(doc["paymentPayload"]), PaymentRequirements.model_validate(doc["paymentRequirements"]))
            answer = result.model_dump(by_alias=True, exclude_none=True)
        except Exception as exc:  # an SDK facilitator answers its exceptions as invalid
            answer = {"isValid": False, "invalidReason": "unexpected_verify_error", "invalidMessage": str(exc)[:200]}
        await _answer(send, 200, answer)

    return app


def bare_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["path"] == "/health":
            return await _answer(send, 200, {"status": "ok"})
        json.loads(await _body(receive))
        await _answer(send, 200, {"isValid": True})

    return app
