"""Chain-checked verify against the x402 SDK's, on the same local node, in the same run.

Both sides verify the same N funded EIP-3009 payments from N payers against tests/chain/node.py
(py-evm behind JSON-RPC on loopback), each through a counting proxy so the HTTP requests are
counted alike:

- ours: ``Verifier(chain_readers={network: ChainReader(...)}).verify_batch(items)`` (offline
  checks, then the reads of the whole batch in JSON-RPC batches; no nonce store, so rounds can
  repeat the same payments);
- SDK: x402 2.25 ``ExactEvmScheme.verify`` per payment, its ``FacilitatorEvmSigner`` reading the
  node with web3 (``eth_getCode`` of the payer, the ``transferWithAuthorization`` simulation).

Rounds alternate (ours, SDK, ours, ...). Prints per-batch seconds (min and median) and HTTP
round trips per batch for both; fails only if a verdict is wrong. The py-evm node is the
bottleneck of both sides (a few ms per eth_call), so the figures say more about round trips
than about either library's own speed. Run:

    python -m pytest benches/test_bench_chain.py -p no:cacheprovider -s
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from conftest import TESTS_DIR

sys.path.insert(0, str(TESTS_DIR))

import x402_verify as xv  # noqa: E402
from chain.faults import fault_proxy  # noqa: E402
from chain.harness import NETWORK, Chain, Key, NodeProcess, eip3009_payment  # noqa: E402

N = 64
ROUNDS = 5


class Web3Signer:
    """A ``FacilitatorEvmSigner`` (x402/mechanisms/evm/signer.py) over JSON-RPC with web3."""

    def __init__(self, url: str) -> None:
        from web3 import HTTPProvider, Web3

        self.w3 = Web3(HTTPProvider(url))

    def get_addresses(self) -> list[str]:
        return ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]

    def get_code(self, address: str) -> bytes:
        return bytes(self.w3.eth.get_code(self.w3.to_checksum_address(address)))

    def read_contract(self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any) -> Any:
        contract = self.w3.eth.contract(address=self.w3.to_checksum_address(address), abi=abi)
        return contract.functions[function_name](*args).call()

    def verify_typed_data(self, address: str, domain: Any, types: Any, primary_type: str, message: dict[str, Any], signature: bytes) -> bool:
        from x402.mechanisms.evm import verify as sdk_verify

        return bool(sdk_verify.verify_typed_data_strict(self, address, domain, types, primary_type, message, signature))

    def get_balance(self, address: str, token_address: str) -> int:
        raise AssertionError("not used by verify")

    def get_chain_id(self) -> int:
        return int(self.w3.eth.chain_id)


def test_chain_checked_verify_vs_sdk() -> None:
    from x402.mechanisms.evm.exact import facilitator as sdk_exact_facilitator
    from x402.schemas import PaymentPayload, PaymentRequirements

    node = NodeProcess()
    try:
        chain = Chain(node.url, node.contracts, node.accounts)
        keys = [Key.new() for _ in range(N)]
        chain.mint([k.address for k in keys], 10)
        payments = [eip3009_payment(chain, k.address, k, 5) for k in keys]
        items = [p.item for p in payments]
        with fault_proxy(chain.url) as ours_proxy, fault_proxy(chain.url) as sdk_proxy:
            reader = xv.ChainReader(ours_proxy.url, timeout=60.0, negative_ttl=0)
            ours = xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: reader}, nonce_store=None)
            sdk = sdk_exact_facilitator.ExactEvmScheme(Web3Signer(sdk_proxy.url))
            # The SDK's models want the full accepted requirements (ours read scheme and network).
            models = [
                (
                    PaymentPayload.model_validate({**xv.decode_payment_header(p.header), "accepted": p.requirements}),
                    PaymentRequirements.model_validate(p.requirements),
                )
                for p in payments
            ]
            times: dict[str, list[float]] = {"ours": [], "sdk": []}
            trips: dict[str, list[int]] = {"ours": [], "sdk": []}
            for _ in range(ROUNDS):
                before = ours_proxy.requests
                t = time.perf_counter()
                out = ours.verify_batch(items)
                times["ours"].append(time.perf_counter() - t)
                trips["ours"].append(ours_proxy.requests - before)
                assert all(r.is_valid for r in out), [r.invalid_reason for r in out if not r.is_valid][:3]
                before = sdk_proxy.requests
                t = time.perf_counter()
                verdicts = [sdk.verify(payload, req) for payload, req in models]
                times["sdk"].append(time.perf_counter() - t)
                trips["sdk"].append(sdk_proxy.requests - before)
                assert all(v.is_valid for v in verdicts), [v.invalid_reason for v in verdicts if not v.is_valid][:3]
            reader.close()
            sdk.__dict__.clear()  # drops web3's session before the proxies close
        chain.close()
        lines = [f"chain-checked verify, {N} EIP-3009 payments from {N} payers, {ROUNDS} alternating rounds (py-evm node on loopback)"]
        for side in ("ours", "sdk"):
            lo, med = min(times[side]), statistics.median(times[side])
            lines.append(
                f"  {side:4}: batch min {lo * 1000:8.1f} ms  median {med * 1000:8.1f} ms  "
                f"{N / med:7.1f} payments/s  HTTP round trips per batch {statistics.median(trips[side]):.0f}"
            )
        lines.append(f"  ratio (SDK median / ours median): {statistics.median(times['sdk']) / statistics.median(times['ours']):.1f}x")
        print("\n" + "\n".join(lines))
    finally:
        node.stop()


MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"


def test_json_rpc_batch_vs_multicall3_aggregate3() -> None:
    """The measurement behind ChainReader's choice: 256 ``balanceOf`` reads as one JSON-RPC
    batch of 256 ``eth_call`` against one ``eth_call`` of Multicall3 ``aggregate3`` with 256
    sub-calls (tests/chain/contracts/Multicall3.vy at its canonical address), alternating rounds.
    Both are one HTTP round trip."""
    from eth_abi import decode, encode

    node = NodeProcess()
    try:
        chain = Chain(node.url, node.contracts, node.accounts)
        assert chain.code(MULTICALL3)
        holders = [Key.new().address for _ in range(256)]
        chain.mint(holders[:128], 7)
        words = [bytes.fromhex("70a08231") + bytes(12) + bytes.fromhex(h[2:]) for h in holders]
        batch = [("eth_call", [{"to": chain.token, "data": "0x" + w.hex()}, "latest"]) for w in words]
        aggregate = "0x82ad56cb" + encode(["(address,bool,bytes)[]"], [[(chain.token, True, w) for w in words]]).hex()
        with xv.ChainReader(chain.url, timeout=60.0, max_batch=1000) as reader:
            times: dict[str, list[float]] = {"batch": [], "aggregate3": []}
            for _ in range(ROUNDS):
                t = time.perf_counter()
                answers = reader.call_many(batch)
                times["batch"].append(time.perf_counter() - t)
                assert [int(a, 16) for a in answers] == [7] * 128 + [0] * 128
                t = time.perf_counter()
                (answer,) = reader.call_many([("eth_call", [{"to": MULTICALL3, "data": aggregate}, "latest"])])
                times["aggregate3"].append(time.perf_counter() - t)
                (results,) = decode(["(bool,bytes)[]"], bytes.fromhex(answer[2:]))
                assert [int.from_bytes(r[1], "big") for r in results] == [7] * 128 + [0] * 128
        chain.close()
        lines = [f"256 balanceOf reads, {ROUNDS} alternating rounds (py-evm node on loopback), one HTTP round trip each"]
        for side in ("batch", "aggregate3"):
            lines.append(f"  {side:10}: min {min(times[side]) * 1000:7.1f} ms  median {statistics.median(times[side]) * 1000:7.1f} ms")
        print("\n" + "\n".join(lines))
    finally:
        node.stop()
