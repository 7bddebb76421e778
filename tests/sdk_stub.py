"""The x402 SDK's chain access, stubbed: a healthy chain whose reads answer at once.

Shared by the SDK differential (tests/test_x402_differential.py) and the verify benchmark
(benches/test_bench_verify.py), so the oracle and the timed anchor run the same SDK path.
"""

from __future__ import annotations

from typing import Any

from x402.mechanisms.evm import verify as sdk_verify
from x402.mechanisms.evm.types import TransactionReceipt

from payments import FAC  # the stub's own address

U256_MAX = 2**256 - 1


class StubChainSigner:
    """A ``FacilitatorEvmSigner`` (x402/mechanisms/evm/signer.py) over a healthy stub chain.

    Payers have no code; the assets, Permit2 and the proxies do. ``balanceOf`` and ERC-20
    ``allowance`` are ample, no EIP-3009 authorization is used, and every ``eth_call``
    simulation (``transferWithAuthorization``, the proxies' ``settle``) succeeds. Nothing is
    ever written: verify must not send transactions.
    """

    CODE = bytes.fromhex("6080604052")

    def __init__(self, contracts: list[str]) -> None:
        self._contracts = {a.lower() for a in contracts}

    def get_addresses(self) -> list[str]:
        return [FAC]

    def get_code(self, address: str) -> bytes:
        return self.CODE if str(address).lower() in self._contracts else b""

    def read_contract(self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any) -> Any:
        if function_name in ("balanceOf", "allowance"):
            return U256_MAX
        if function_name == "authorizationState":
            return False
        if function_name == "nonceBitmap":
            return 0
        return None  # an eth_call simulation that did not revert

    def verify_typed_data(
        self, address: str, domain: Any, types: Any, primary_type: str, message: dict[str, Any], signature: bytes
    ) -> bool:
        # The SDK's own strict verifier (code-routed: ecrecover for code-less signers).
        return sdk_verify.verify_typed_data_strict(self, address, domain, types, primary_type, message, signature)

    def write_contract(self, *args: Any, **kwargs: Any) -> str:
        raise AssertionError("verify must not write")

    def send_transaction(self, to: str, data: bytes) -> str:
        raise AssertionError("verify must not send transactions")

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        raise AssertionError("verify must not wait for receipts")

    def get_balance(self, address: str, token_address: str) -> int:
        return U256_MAX

    def get_chain_id(self) -> int:
        raise AssertionError("verify takes the chain id from the network string")
