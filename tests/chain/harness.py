"""The test chain for pytest: a session fixture that runs tests/chain/node.py on loopback, a
small JSON-RPC client for the tests' own writes and reads, and signed x402 payments.

Loaded as a plugin by tests/conftest.py. Nothing here is the library under test: the tests
drive the chain with this client, and the library reads it with its own ``ChainReader``.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import payments

HERE = Path(__file__).resolve().parent
CHAIN_ID = 8453
NETWORK = f"eip155:{CHAIN_ID}"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
EXACT_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
ERC6492_MAGIC = bytes.fromhex("6492" * 16)
STARTUP_TIMEOUT = 60.0
# The test token's EIP-712 domain (tests/chain/contracts/Token.vy), as USDC's on Base.
TOKEN_NAME, TOKEN_VERSION = "USD Coin", "2"


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


def checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    return str(to_checksum_address(address))


def selector(signature: str) -> bytes:
    from eth_utils.crypto import keccak

    return bytes(keccak(text=signature))[:4]


def calldata(signature: str, types: list[str], values: list[Any]) -> bytes:
    from eth_abi import encode

    return selector(signature) + encode(types, values)


class Chain:
    """A JSON-RPC client of the test node (one keep-alive connection) plus test controls."""

    def __init__(self, url: str, contracts: dict[str, str], accounts: list[str]) -> None:
        self.url = url
        self.contracts = {k: checksum(v) for k, v in contracts.items()}
        self.accounts = [checksum(a) for a in accounts]
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        self._id = 0

    @property
    def token(self) -> str:
        return self.contracts["token"]

    def post(self, body: Any) -> Any:
        data = json.dumps(body).encode()
        self._conn.request("POST", "/", body=data, headers={"Content-Type": "application/json"})
        return json.loads(self._conn.getresponse().read())

    def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        answer = self.post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)})
        if "error" in answer:
            raise RpcFailure(answer["error"])
        return answer["result"]

    def close(self) -> None:
        self._conn.close()

    def requests_served(self) -> int:
        return int(self.rpc("x402test_requests"))

    def call(self, to: str | None, data: bytes) -> bytes:
        tx: dict[str, Any] = {"data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to
        return bytes.fromhex(self.rpc("eth_call", tx, "latest")[2:])

    def send(self, sender: str, to: str | None, data: bytes, *, value: int = 0, expect_ok: bool = True) -> dict[str, Any]:
        tx: dict[str, Any] = {"from": sender, "data": "0x" + data.hex(), "gas": hex(15_000_000)}
        if to is not None:
            tx["to"] = to
        if value:
            tx["value"] = hex(value)
        receipt = self.rpc("eth_getTransactionReceipt", self.rpc("eth_sendTransaction", tx))
        if expect_ok:
            assert receipt["status"] == "0x1", f"transaction reverted: {receipt}"
        return dict(receipt)

    def code(self, address: str) -> bytes:
        return bytes.fromhex(self.rpc("eth_getCode", address, "latest")[2:])

    def set_code(self, address: str, code: bytes) -> None:
        self.rpc("evm_setCode", address, "0x" + code.hex())

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot: str) -> None:
        self.rpc("evm_revert", snapshot)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def timestamp(self) -> int:
        return int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    # --- the token and its friends --------------------------------------------------------------

    def balance(self, holder: str, token: str | None = None) -> int:
        out = self.call(token or self.token, calldata("balanceOf(address)", ["address"], [holder]))
        return int.from_bytes(out, "big")

    def mint(self, holders: list[str] | str, amount: int, token: str | None = None) -> None:
        many = [holders] if isinstance(holders, str) else holders
        for i in range(0, len(many), 512):
            chunk = many[i : i + 512]
            self.send(self.accounts[0], token or self.token, calldata("mintMany(address[],uint256)", ["address[]", "uint256"], [chunk, amount]))

    def fund_eth(self, address: str, wei: int = 10**18) -> None:
        self.send(self.accounts[0], address, b"", value=wei)

    def add_key(self, key: Key, *, eth: bool = True) -> None:
        self.rpc("evm_addAccount", "0x" + key.secret.hex())
        if eth:
            self.fund_eth(key.address)

    def approve_permit2(self, key: Key, amount: int, token: str | None = None) -> None:
        self.send(key.address, token or self.token, calldata("approve(address,uint256)", ["address", "uint256"], [PERMIT2, amount]))

    def deploy_wallet(self, owner: str, salt: bytes | None = None) -> str:
        """An ERC-1271 wallet through the factory (deployed now)."""
        address = self.counterfactual_wallet(owner, salt or b"\x00" * 32)
        self.send(self.accounts[0], self.contracts["factory"], self.factory_calldata(owner, salt or b"\x00" * 32))
        return address

    def factory_calldata(self, owner: str, salt: bytes) -> bytes:
        return calldata("deploy(address,bytes32)", ["address", "bytes32"], [owner, salt])

    def counterfactual_wallet(self, owner: str, salt: bytes) -> str:
        """Where the factory would deploy (an eth_call of the deployment tells)."""
        out = self.call(self.contracts["factory"], self.factory_calldata(owner, salt))
        return checksum("0x" + out[12:32].hex())


@dataclass(frozen=True)
class Key:
    secret: bytes

    @staticmethod
    def new() -> Key:
        return Key(secrets.token_bytes(32))

    @property
    def address(self) -> str:
        from coincurve import PrivateKey
        from eth_utils.crypto import keccak

        pub = PrivateKey(self.secret).public_key.format(compressed=False)[1:]
        return checksum("0x" + bytes(keccak(pub))[12:].hex())

    def sign(self, digest: bytes) -> bytes:
        """65-byte r || s || v (v 27/28, low s), the form USDC and Permit2 take."""
        from coincurve import PrivateKey

        sig = PrivateKey(self.secret).sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes([sig[64] + 27])


# --- x402 payments ------------------------------------------------------------------------------


@dataclass
class Payment:
    header: str
    requirements: dict[str, Any]
    payer: str
    digest: bytes
    signature: bytes
    message: dict[str, Any]

    @property
    def item(self) -> tuple[str, dict[str, Any]]:
        return (self.header, self.requirements)


def eip3009_payment(
    chain: Chain,
    payer: str,
    signer: Key | None,
    value: int,
    *,
    nonce: bytes | None = None,
    signature: bytes | None = None,
    wrap: Any = None,
    now: int | None = None,
    asset: str | None = None,
) -> Payment:
    """An x402 exact EIP-3009 payment from ``payer``, signed by ``signer`` (an EOA key: the
    payer's own, or a wallet owner's), or carrying ``signature`` as given; ``wrap(sig)`` turns
    the ECDSA signature into a wallet's form. Documents, payload and requirements come from
    tests/payments.py, for the test token on the test chain."""
    import x402_verify as xv

    now = int(time.time()) if now is None else now
    asset = asset or chain.token
    message = payments.eip3009_authorization(
        from_=payer, to=payments.PAY_TO, value=value, valid_after=now - 600, valid_before=now + 3600,
        nonce="0x" + (nonce or secrets.token_bytes(32)).hex(),
    )  # fmt: skip
    digest = xv.hash_typed_data(payments.eip3009_typed_data(message, name=TOKEN_NAME, version=TOKEN_VERSION, chain_id=CHAIN_ID, token=asset))
    sig = signature if signature is not None else signer.sign(digest)  # type: ignore[union-attr]
    if wrap is not None:
        sig = wrap(sig)
    requirements = {
        **payments.requirements("eip3009", value, max_timeout=3600),
        "network": NETWORK, "asset": asset, "extra": {"name": TOKEN_NAME, "version": TOKEN_VERSION},
    }  # fmt: skip
    doc = payments.envelope("eip3009", requirements, {"signature": "0x" + sig.hex(), "authorization": message})
    return Payment(payments.header(doc), requirements, payer, digest, sig, message)


def permit2_payment(
    chain: Chain,
    payer: str,
    signer: Key | None,
    amount: int,
    *,
    nonce: int | None = None,
    signature: bytes | None = None,
    wrap: Any = None,
    now: int | None = None,
    token: str | None = None,
    spender: str = EXACT_PROXY,
) -> Payment:
    """An x402 exact Permit2 payment from ``payer`` (see ``eip3009_payment``)."""
    import x402_verify as xv

    now = int(time.time()) if now is None else now
    token = token or chain.token
    authorization = payments.permit2_authorization(
        from_=payer, token=token, amount=amount, spender=spender, nonce=secrets.randbits(256) if nonce is None else nonce,
        deadline=now + 3600, to=payments.PAY_TO, valid_after=now - 600,
    )  # fmt: skip
    doc = payments.permit2_typed_data(authorization, chain_id=CHAIN_ID)
    digest = xv.hash_typed_data(doc)
    sig = signature if signature is not None else signer.sign(digest)  # type: ignore[union-attr]
    if wrap is not None:
        sig = wrap(sig)
    requirements = {**payments.requirements("permit2", amount, max_timeout=3600), "network": NETWORK, "asset": token}
    payload = payments.envelope("permit2", requirements, {"signature": "0x" + sig.hex(), "permit2Authorization": authorization})
    return Payment(payments.header(payload), requirements, payer, digest, sig, doc["message"])


def erc6492_wrap(factory: str, factory_calldata: bytes, inner: bytes) -> bytes:
    from eth_abi import encode

    return encode(["address", "bytes", "bytes"], [factory, factory_calldata, inner]) + ERC6492_MAGIC


def settle_eip3009(chain: Chain, payment: Payment, *, expect_ok: bool = True) -> dict[str, Any]:
    """Settles through the (v, r, s) form for 65-byte signatures, else the bytes form."""
    m = payment.message
    head = [m["from"], m["to"], int(m["value"]), int(m["validAfter"]), int(m["validBefore"]), bytes.fromhex(m["nonce"][2:])]
    types = ["address", "address", "uint256", "uint256", "uint256", "bytes32"]
    sig = payment.signature
    if len(sig) == 65:
        data = calldata(
            "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
            types + ["uint8", "bytes32", "bytes32"], head + [sig[64], sig[:32], sig[32:64]],
        )
    else:
        data = calldata("transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)", types + ["bytes"], head + [sig])
    return chain.send(chain.accounts[1], chain.token, data, expect_ok=expect_ok)


def settle_permit2(chain: Chain, payment: Payment, *, expect_ok: bool = True) -> dict[str, Any]:
    m = payment.message
    permit = ((m["permitted"]["token"], int(m["permitted"]["amount"])), int(m["nonce"]), int(m["deadline"]))
    witness = (m["witness"]["to"], int(m["witness"]["validAfter"]))
    data = calldata(
        "settle(((address,uint256),uint256,uint256),address,(address,uint256),bytes)",
        ["((address,uint256),uint256,uint256)", "address", "(address,uint256)", "bytes"],
        [permit, payment.payer, witness, payment.signature],
    )
    return chain.send(chain.accounts[1], EXACT_PROXY, data, expect_ok=expect_ok)


# --- the node process ---------------------------------------------------------------------------


class NodeProcess:
    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "node.py"), "--chain-id", str(CHAIN_ID)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, env=env, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the test node did not start")
        info = json.loads(line)
        self.url: str = info["url"]
        self.contracts: dict[str, str] = info["contracts"]
        self.accounts: list[str] = info["accounts"]

    def stop(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.errors.seek(0)
        tail = self.errors.read()[-4000:].decode(errors="replace")
        self.errors.close()
        if self.proc.returncode not in (0, None) and tail:
            sys.stderr.write(f"test node stderr:\n{tail}\n")


@pytest.fixture(scope="session")
def chain_node() -> Iterator[NodeProcess]:
    node = NodeProcess()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def chain(chain_node: NodeProcess) -> Iterator[Chain]:
    """The node, reverted to its deployed state after the test."""
    c = Chain(chain_node.url, chain_node.contracts, chain_node.accounts)
    snap = c.snapshot()
    try:
        yield c
    finally:
        c.revert(snap)
        c.close()
