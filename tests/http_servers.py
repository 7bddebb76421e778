"""Real HTTP on loopback for the gateway tests: uvicorn serving an app on a free port in a
thread, the x402 SDK's own ``x402Facilitator`` (chain signer stubbed) behind ``/verify``,
``/settle`` and ``/supported``, and payments signed by the SDK's own client.

Everything binds 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from eth_account import Account
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from x402 import x402ClientSync, x402Facilitator
from x402.http.utils import encode_payment_signature_header
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.mechanisms.evm.exact.client import ExactEvmScheme as ExactClient
from x402.mechanisms.evm.exact.v1.client import ExactEvmSchemeV1 as ExactClientV1
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import TransactionReceipt
from x402.mechanisms.evm.upto import UptoEvmFacilitatorScheme
from x402.mechanisms.evm.upto.client import UptoEvmScheme as UptoClient
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements
from x402.schemas.v1 import PaymentRequiredV1

import x402_verify as xv
from redis_servers import free_port  # one picker of loopback ports for every test server
from sdk_stub import FAC, StubChainSigner

NETWORK = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


@contextmanager
def serve(app: Any, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Runs ``app`` under uvicorn on a loopback port in a thread; yields its base URL."""
    for _attempt in range(5):
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started:
            break
        server.should_exit = True
        thread.join(timeout=5)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class SettlingChainSigner(StubChainSigner):
    """The stub chain, now also settling: every write is a transaction that succeeds. Records
    what was written, so tests count settlements and read their amounts."""

    def __init__(self, contracts: list[str]) -> None:
        super().__init__(contracts)
        self.writes: list[tuple[str, str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self.receipt_status = 1

    def write_contract(self, address: str, abi: Any, function_name: str, *args: Any, **kwargs: Any) -> str:
        with self._lock:
            self.writes.append((str(address), function_name, args))
            return "0x" + f"{len(self.writes):064x}"

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        return TransactionReceipt(status=self.receipt_status, block_number=1, tx_hash=tx_hash)

    def send_transaction(self, to: str, data: bytes) -> str:
        raise AssertionError("no smart-wallet deployments in these tests")


def chain() -> SettlingChainSigner:
    return SettlingChainSigner([USDC, PERMIT2, xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY])


def sdk_facilitator(signer: SettlingChainSigner) -> x402Facilitator:
    """The SDK's facilitator for exact (EIP-3009 and Permit2) and upto on the test network."""
    from x402.mechanisms.evm.exact.v1.facilitator import ExactEvmSchemeV1

    fac = x402Facilitator()
    fac.register([NETWORK], ExactEvmFacilitatorScheme(signer))
    fac.register([NETWORK], UptoEvmFacilitatorScheme(signer))
    fac.register_v1(["base-sepolia"], ExactEvmSchemeV1(signer))
    return fac


def facilitator_app(fac: x402Facilitator, calls: list[tuple[str, dict[str, Any]]] | None = None) -> Starlette:
    """The facilitator's HTTP API over the SDK's ``x402Facilitator``, as its clients call it."""
    from x402.schemas.v1 import PaymentPayloadV1, PaymentRequirementsV1

    def models(body: dict[str, Any]) -> tuple[Any, Any]:
        if body.get("x402Version") == 1:
            return PaymentPayloadV1.model_validate(body["paymentPayload"]), PaymentRequirementsV1.model_validate(body["paymentRequirements"])
        return PaymentPayload.model_validate(body["paymentPayload"]), PaymentRequirements.model_validate(body["paymentRequirements"])

    def endpoint(name: str) -> Any:
        # /verify and /settle differ only in the facilitator method they call.
        async def handle(request: Request) -> JSONResponse:
            body = await request.json()
            if calls is not None:
                calls.append((name, body))
            result = await getattr(fac, name)(*models(body))
            return JSONResponse(result.model_dump(by_alias=True, exclude_none=True))

        return handle

    async def supported(request: Request) -> JSONResponse:
        return JSONResponse(fac.get_supported().model_dump(by_alias=True, exclude_none=True))

    return Starlette(
        routes=[Route("/verify", endpoint("verify"), methods=["POST"]), Route("/settle", endpoint("settle"), methods=["POST"]), Route("/supported", supported)]
    )


def account(seed: int) -> LocalAccount:
    return Account.from_key((seed + 1).to_bytes(32, "big"))


def sdk_client(acct: LocalAccount) -> x402ClientSync:
    client = x402ClientSync()
    client.set_spend_controls(False)
    client.register("eip155:*", ExactClient(EthAccountSigner(acct)))
    client.register("eip155:*", UptoClient(EthAccountSigner(acct)))
    client.register_v1("base-sepolia", ExactClientV1(EthAccountSigner(acct)))
    return client


def pay(payment_required_header: str, acct: LocalAccount, *, pick: int = 0) -> str:
    """A PAYMENT-SIGNATURE value for the ``pick``-th option of a 402's PAYMENT-REQUIRED, made by
    the SDK's client."""
    required = PaymentRequired.model_validate_json(base64.b64decode(payment_required_header))
    chosen = required.model_copy(update={"accepts": [required.accepts[pick]]})
    return encode_payment_signature_header(sdk_client(acct).create_payment_payload(chosen))


def pay_v1(body: bytes, acct: LocalAccount) -> str:
    """An X-PAYMENT value for a v1 402 body, made by the SDK's client."""
    required = PaymentRequiredV1.model_validate_json(body)
    return encode_payment_signature_header(sdk_client(acct).create_payment_payload(required))


def decode(header: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(base64.b64decode(header))
    return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


__all__ = ["FAC", "NETWORK", "PAY_TO", "USDC", "account", "chain", "decode", "facilitator_app", "free_port", "pay", "pay_v1", "sdk_facilitator", "serve"]


# --- a gateway in its own process (two replicas sharing Redis) --------------------------------

UPTO_COST = 10_000
REPLICA_ROUTES: dict[str, Any] = {"POST /chat": {"accepts": {"scheme": "upto", "network": NETWORK, "payTo": PAY_TO, "price": "$0.20", "cost": UPTO_COST}}}


def replica_main(port: int, fac_url: str, redis_url: str) -> None:
    """One gateway replica: upto sessions in Redis (nonce store and ledger), settling upstream."""
    from starlette.responses import PlainTextResponse

    from x402_verify.asgi import PaymentMiddleware, SessionConfig
    from x402_verify.ledger import RedisLedger
    from x402_verify.settlers import HTTPFacilitatorSettler

    async def chat(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.005)
        return PlainTextResponse("ok")

    app = PaymentMiddleware(
        Starlette(routes=[Route("/chat", chat, methods=["POST"])]), routes=REPLICA_ROUTES, facilitator_address=FAC,
        verifier=xv.Verifier(networks=[NETWORK], nonce_store=xv.RedisNonceStore(redis_url, timeout=5.0)),
        ledger=RedisLedger(redis_url, timeout=5.0), settler=HTTPFacilitatorSettler(fac_url),
        sessions=SessionConfig(idle_timeout=3600, reap_interval=0.05),
    )  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


@contextmanager
def replica(fac_url: str, redis_url: str, *, startup_timeout: float = 30.0) -> Iterator[str]:
    """A gateway replica in a child process on a loopback port; yields its URL."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    port = free_port()
    code = f"import http_servers; http_servers.replica_main({port}, {fac_url!r}, {redis_url!r})"
    env = {**os.environ, "PYTHONPATH": str(here)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=here, env=env)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"replica exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("replica did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- the facilitator service as `x402-verify serve` in a child process ---------------------------

READY_PREFIX = "x402-verify listening on "


class ServeProcess:
    """``x402-verify serve`` in its own session (so ``kill()`` takes its workers too)."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, startup_timeout: float = 60.0, cwd: str | None = None) -> None:
        import os
        import subprocess
        import sys

        self.port = free_port()
        cmd = [sys.executable, "-m", "x402_verify", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("X402_VERIFY_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, start_new_session=True, text=True, cwd=cwd)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_line = self._wait_ready(startup_timeout)

    def _wait_ready(self, timeout: float) -> str:
        import selectors

        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.2):
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                return line.strip()
        self.kill()
        err = self.proc.stderr.read() if self.proc.stderr else ""
        raise RuntimeError(f"x402-verify serve did not get ready (exit {self.proc.returncode}): {err[-2000:]}")

    def kill(self, sig: int = 9) -> None:
        """Signals the whole process group (the server and its workers) and reaps it."""
        import os

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=20)
        except Exception:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=5)
        # Orphaned workers of a killed parent: the group is gone only when they are.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to the group, then reaps it and closes the pipes."""
        self.kill(15)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def facilitator_service(args: list[str], **kw: Any) -> Iterator[ServeProcess]:
    """``x402-verify serve ARGS`` on a loopback port until the block ends."""
    server = ServeProcess(args, **kw)
    try:
        yield server
    finally:
        server.stop()


def verify_body(payload: dict[str, Any], requirements: dict[str, Any]) -> dict[str, Any]:
    """The /verify and /settle body, as the SDK's HTTPFacilitatorClient sends it."""
    return {"x402Version": payload.get("x402Version", 2), "paymentPayload": payload, "paymentRequirements": requirements}
