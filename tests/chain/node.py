"""A real EVM behind a small JSON-RPC server on loopback, for the chain tests.

py-evm (Prague rules) through eth-tester; this file is only the wire layer: JSON-RPC 2.0 over
HTTP/1.1 keep-alive (single requests and batches), the reads a verifier makes, the writes a
settler makes, and test controls. Run as a subprocess by tests/chain/fixtures.py:

    python tests/chain/node.py [--chain-id 8453]

It binds 127.0.0.1 on a free port, deploys the contracts of tests/chain/artifacts.json (Permit2,
the x402 exact proxy and Multicall3 at their canonical addresses, in the genesis state), then prints one
JSON line ``{"url": ..., "contracts": {...}, "accounts": [...]}`` and serves until killed or
until its standard input closes (so a crashed test run never leaves it behind).

Methods: eth_chainId, net_version, eth_blockNumber, eth_accounts, eth_gasPrice,
eth_maxPriorityFeePerGas, eth_getCode, eth_getBalance, eth_getTransactionCount, eth_getStorageAt,
eth_call (block tag or number; no ``to`` runs creation code; a revert answers error code 3 with
``data``), eth_estimateGas, eth_sendTransaction (from an eth-tester account), eth_sendRawTransaction,
eth_getTransactionReceipt, eth_getBlockByNumber; test controls evm_snapshot, evm_revert,
evm_mine, evm_increaseTime, evm_setCode, evm_addAccount, x402test_requests (requests served).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PERMIT2 = "0x000000000022d473030f116ddee9f6b43ac78ba3"
EXACT_PROXY = "0x402085c248eea27d92e8b30b2c58ed07f9e20001"
MULTICALL3 = "0xca11bde05977b3631167028862be2a173976ca11"
MAX_BODY = 8 * 1024 * 1024


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    raise RpcError(-32602, f"not a quantity: {value!r}")


def _hexb(value: Any) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(-32602, f"not hex data: {value!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(-32602, f"not hex data: {value!r}") from None


def _addr(value: Any) -> bytes:
    raw = _hexb(value)
    if len(raw) != 20:
        raise RpcError(-32602, f"not an address: {value!r}")
    return raw


def _q(n: int) -> str:
    return hex(n)


def _h(b: bytes) -> str:
    return "0x" + b.hex()


class Node:
    """The EVM and the JSON-RPC methods over it; one lock, since py-evm is single-threaded."""

    def __init__(self, chain_id: int) -> None:
        from eth.chains.base import ChainContext  # noqa: F401  (import check)
        from eth_tester import EthereumTester, PyEVMBackend
        from eth_tester.backends.pyevm.main import generate_genesis_state_for_keys, get_default_account_keys

        self.lock = threading.Lock()
        self.requests = 0
        self._state_cache: tuple[bytes, Any, Any] | None = None
        self.chain_id = chain_id
        artifacts = json.loads((HERE / "artifacts.json").read_text(encoding="utf-8"))
        self.artifacts = artifacts
        keys = get_default_account_keys(quantity=10)
        state = dict(generate_genesis_state_for_keys(keys))
        # Canonical addresses: runtime code in the genesis state (neither sets anything in a
        # constructor, so the runtime code is the whole contract).
        for address, name in ((PERMIT2, "Permit2"), (EXACT_PROXY, "ExactPermit2Proxy"), (MULTICALL3, "Multicall3")):
            state[bytes.fromhex(address[2:])] = {"balance": 0, "nonce": 1, "code": bytes.fromhex(artifacts[name]["runtime"][2:]), "storage": {}}
        backend = PyEVMBackend(genesis_state=state)
        self.backend = backend
        self._set_chain_id()
        self.tester = EthereumTester(backend)
        self.accounts = [a.lower() for a in self.tester.get_accounts()][:10]

    def _set_chain_id(self) -> None:
        # py-evm reads the chain id from the chain class (CHAINID, EIP-155 signing); eth-tester
        # builds that class with its own id, and makes a new instance on a revert to genesis.
        from eth.chains.base import ChainContext

        chain = self.backend.chain
        type(chain).chain_id = self.chain_id
        chain.chain_context = ChainContext(self.chain_id)

    # --- helpers -------------------------------------------------------------------------------

    def _chain(self) -> Any:
        return self.backend.chain

    def _header(self, tag: Any) -> Any:
        from eth_tester.backends.pyevm.main import _get_block_by_number

        if tag is None:
            tag = "latest"
        if isinstance(tag, str) and tag.startswith("0x"):
            tag = int(tag, 16)
        if tag not in ("latest", "safe", "finalized", "earliest", "pending") and not isinstance(tag, int):
            raise RpcError(-32602, f"bad block tag {tag!r}")
        try:
            return _get_block_by_number(self._chain(), tag).header
        except Exception as exc:
            raise RpcError(-32001, f"header not found: {exc}") from None

    def _state(self, tag: Any) -> Any:
        return self._chain().get_vm(at_header=self._header(tag)).state

    def _head_number(self) -> int:
        return int(self._chain().get_block().number) - 1

    def deploy(self, name: str, args: bytes = b"") -> str:
        code = bytes.fromhex(self.artifacts[name]["bytecode"][2:]) + args
        tx = self.tester.send_transaction({"from": self.accounts[0], "data": _h(code), "gas": 10_000_000})
        receipt = self.tester.get_transaction_receipt(tx)
        if receipt["status"] != 1:
            raise RuntimeError(f"deploying {name} failed")
        return str(receipt["contract_address"]).lower()

    # --- methods -------------------------------------------------------------------------------

    def call(self, method: str, params: list[Any]) -> Any:
        fn = getattr(self, "m_" + method, None)
        if fn is None:
            raise RpcError(-32601, f"method {method!r} not found")
        if not isinstance(params, list):
            raise RpcError(-32602, "params must be an array")
        return fn(*params)

    def m_eth_chainId(self) -> str:
        return _q(self.chain_id)

    def m_net_version(self) -> str:
        return str(self.chain_id)

    def m_eth_blockNumber(self) -> str:
        return _q(self._head_number())

    def m_eth_accounts(self) -> list[str]:
        return list(self.accounts)

    def m_eth_gasPrice(self) -> str:
        return _q(2 * 10**9)

    def m_eth_maxPriorityFeePerGas(self) -> str:
        return _q(10**9)

    def m_eth_getCode(self, address: str, tag: Any = "latest") -> str:
        return _h(self._state(tag).get_code(_addr(address)))

    def m_eth_getBalance(self, address: str, tag: Any = "latest") -> str:
        return _q(self._state(tag).get_balance(_addr(address)))

    def m_eth_getTransactionCount(self, address: str, tag: Any = "latest") -> str:
        return _q(self._state(tag).get_nonce(_addr(address)))

    def m_eth_getStorageAt(self, address: str, slot: str, tag: Any = "latest") -> str:
        return _h(self._state(tag).get_storage(_addr(address), _int(slot)).to_bytes(32, "big"))

    def _spoof(self, tx: dict[str, Any], header: Any) -> Any:
        from eth.vm.spoof import SpoofTransaction

        if not isinstance(tx, dict):
            raise RpcError(-32602, "the call object must be an object")
        sender = _addr(tx["from"]) if tx.get("from") else b"\x00" * 20
        to = _addr(tx["to"]) if tx.get("to") else b""
        data = _hexb(tx.get("input", tx.get("data")))
        gas = _int(tx["gas"]) if tx.get("gas") else header.gas_limit
        value = _int(tx["value"]) if tx.get("value") else 0
        vm, state = self._costless_state(header)
        unsigned = vm.create_unsigned_transaction(nonce=state.get_nonce(sender), gas_price=0, gas=gas, to=to, value=value, data=data)
        return SpoofTransaction(unsigned, from_=sender)

    def _costless_state(self, header: Any) -> Any:
        # py-evm's in_costless_state, built once per block and reused with a snapshot per call:
        # building it is most of an eth_call's cost, and a batch's calls share a block.
        if self._state_cache is not None and self._state_cache[0] == header.hash:
            return self._state_cache[1], self._state_cache[2]
        import itertools

        vm = self._chain().get_vm(at_header=header)
        child = vm.generate_block_from_parent_header_and_coinbase(header, header.coinbase).header
        free = child.copy(base_fee_per_gas=0) if hasattr(child, "base_fee_per_gas") else child
        state = vm.build_state(vm.chaindb.db, free, vm.chain_context, itertools.chain((header.hash,), vm.previous_hashes))
        self._state_cache = (header.hash, vm, state)
        return vm, state

    def _execute(self, tx: dict[str, Any], tag: Any) -> Any:
        header = self._header(tag)
        spoofed = self._spoof(tx, header)
        _vm, state = self._costless_state(header)
        snapshot = state.snapshot()
        try:
            computation = state.costless_execute_transaction(spoofed)
        finally:
            state.revert(snapshot)
        return computation

    def m_eth_call(self, tx: dict[str, Any], tag: Any = "latest", overrides: Any = None) -> str:
        computation = self._execute(tx, tag)
        if computation.is_error:
            error = computation.error
            data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
            raise RpcError(3, f"execution reverted: {type(error).__name__}", _h(data))
        return _h(computation.output)

    def m_eth_estimateGas(self, tx: dict[str, Any], tag: Any = "latest") -> str:
        # A binary search on the cached state (py-evm's estimator rebuilds state per probe).
        computation = self._execute(tx, tag)
        if computation.is_error:
            error = computation.error
            data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
            raise RpcError(3, f"execution reverted: {type(error).__name__}", _h(data))
        low, high = 21_000, int(self._header(tag).gas_limit)
        while low + 1 < high:
            mid = (low + high) // 2
            if self._execute({**tx, "gas": _q(mid)}, tag).is_error:
                low = mid
            else:
                high = mid
        return _q(high)

    def _receipt_hash(self, tx_hash: Any) -> str:
        return str(tx_hash) if isinstance(tx_hash, str) else _h(bytes(tx_hash))

    def m_eth_sendTransaction(self, tx: dict[str, Any]) -> str:
        out: dict[str, Any] = {"from": _h(_addr(tx["from"])), "gas": _int(tx.get("gas", "0x989680"))}
        if tx.get("to"):
            out["to"] = _h(_addr(tx["to"]))
        if tx.get("value"):
            out["value"] = _int(tx["value"])
        data = tx.get("input", tx.get("data"))
        if data:
            out["data"] = _h(_hexb(data))
        try:
            return self._receipt_hash(self.tester.send_transaction(out))
        except Exception as exc:
            raise RpcError(-32000, f"{type(exc).__name__}: {exc}") from None

    def m_eth_sendRawTransaction(self, raw: str) -> str:
        payload = _hexb(raw)
        try:
            from eth_account import Account

            decoded = Account.recover_transaction(raw)  # noqa: F841  (rejects malformed input)
            if payload and payload[0] in (1, 2, 3, 4):
                import rlp

                fields = rlp.decode(payload[1:])
                if int.from_bytes(fields[0], "big") != self.chain_id:
                    raise RpcError(-32000, "invalid chain id")
            return self._receipt_hash(self.tester.send_raw_transaction(raw))
        except RpcError:
            raise
        except Exception as exc:
            raise RpcError(-32000, f"{type(exc).__name__}: {exc}") from None

    def m_eth_getTransactionReceipt(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            r = self.tester.get_transaction_receipt(tx_hash)
        except Exception:
            return None
        if r.get("block_number") is None:
            return None
        return {
            "transactionHash": self._receipt_hash(r["transaction_hash"]),
            "blockNumber": _q(r["block_number"]),
            "status": _q(r["status"]),
            "gasUsed": _q(r["gas_used"]),
            "contractAddress": str(r["contract_address"]).lower() if r.get("contract_address") else None,
            "logs": [
                {"address": str(log["address"]).lower(), "topics": [self._receipt_hash(t) for t in log["topics"]], "data": self._receipt_hash(log["data"])}
                for log in r.get("logs", ())
            ],
        }

    def m_eth_getBlockByNumber(self, tag: Any = "latest", full: bool = False) -> dict[str, Any]:
        header = self._header(tag)
        return {
            "number": _q(header.block_number),
            "hash": _h(header.hash),
            "timestamp": _q(header.timestamp),
            "gasLimit": _q(header.gas_limit),
            "baseFeePerGas": _q(getattr(header, "base_fee_per_gas", 0)),
        }

    def m_evm_snapshot(self) -> str:
        return _q(int(self.tester.take_snapshot()))

    def m_evm_revert(self, snapshot: Any) -> bool:
        self._state_cache = None
        self.tester.revert_to_snapshot(_int(snapshot))
        self._set_chain_id()
        return True

    def m_evm_mine(self, blocks: Any = "0x1") -> str:
        self.tester.mine_blocks(_int(blocks))
        return _q(self._head_number())

    def m_evm_increaseTime(self, seconds: Any) -> str:
        now = int(self._header("latest").timestamp)
        self.tester.time_travel(now + _int(seconds))
        return _q(self._head_number())

    def m_evm_setCode(self, address: str, code: str) -> bool:
        # State changed outside a transaction: mine a block on it at once, or a later revert to
        # a snapshot taken before would not restore it.
        self._state_cache = None
        chain = self._chain()
        vm = chain.get_vm()
        vm.state.set_code(_addr(address), _hexb(code))
        vm.state.persist()
        chain.header = chain.header.copy(state_root=vm.state.state_root)
        self.tester.mine_blocks(1)
        return True

    def m_evm_addAccount(self, private_key: str) -> str:
        return str(self.tester.add_account(private_key)).lower()

    def m_x402test_requests(self) -> int:
        return self.requests


def _answer(node: Node, request: Any) -> dict[str, Any] | None:
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
    rid = request.get("id")
    try:
        with node.lock:
            result = node.call(request["method"], request.get("params", []))
    except RpcError as exc:
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            error["data"] = exc.data
        return {"jsonrpc": "2.0", "id": rid, "error": error}
    except TypeError as exc:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": f"invalid params: {exc}"}}
    except Exception as exc:  # an EVM or eth-tester failure is an answer, not a dead server
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": f"{type(exc).__name__}: {exc}"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def make_handler(node: Node) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # keep-alive answers otherwise wait ~40 ms on delayed ACKs

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            node.requests += 1
            try:
                request = json.loads(body)
            except ValueError:
                out: Any = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
            else:
                if isinstance(request, list):
                    empty = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "empty batch"}}
                    out = [_answer(node, r) for r in request] if request else empty
                else:
                    out = _answer(node, request)
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def setup_contracts(node: Node) -> dict[str, str]:
    from eth_abi import encode

    token = node.deploy("Token", encode(["string", "string", "string", "uint8"], ["USD Coin", "2", "USDC", 6]))
    wallet_impl = node.deploy("Wallet")
    factory = node.deploy("WalletFactory", encode(["address"], [wallet_impl]))
    delegate = node.deploy("Delegate7702")
    return {"token": token, "wallet_impl": wallet_impl, "factory": factory, "delegate": delegate, "permit2": PERMIT2, "exact_proxy": EXACT_PROXY}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain-id", type=int, default=8453)
    args = parser.parse_args()
    node = Node(args.chain_id)
    contracts = setup_contracts(node)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(node))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(json.dumps({"url": f"http://{host}:{port}", "contracts": contracts, "accounts": node.accounts}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Serve until the parent closes our stdin (or kills us).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
