"""Writes the signed sample documents bundled with the package (dev-only; needs eth-account).

    python scripts/make_samples.py

Outputs, under python/x402_verify/data/:
  permit2_samples.json  64 x402 "exact" Permit2 PermitWitnessTransferFrom documents (Base, OPG)
  eip3009_samples.json  64 EIP-3009 TransferWithAuthorization documents (Base, USDC)

Each sample is {"typed_data": <full EIP-712 document>, "signature": "0x..", "signer": <EIP-55>}.
Everything is deterministic: the signing keys, nonces, amounts and times all derive from fixed
labels, so re-running the script reproduces the files byte for byte.

The 8 signing keys are PUBLIC TEST KEYS (keccak256 of a label printed in the files): anyone can
recompute them. Never send funds to their addresses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

OUT = Path(__file__).resolve().parent.parent / "python" / "x402_verify" / "data"
COUNT = 64
KEY_LABEL = "x402-verify public test key #{}"
N_KEYS = 8
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

BASE_CHAIN_ID = 8453
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
X402_EXACT_PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
OPG_TOKEN = "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z; validAfter = now - 600, deadline = now + 3600, so every window holds T0 + 2600

NOTE = (
    "Signed sample documents for `x402-verify bench` and the tests. The signers are PUBLIC TEST "
    f"KEYS: private key i = keccak256(utf8('{KEY_LABEL}')) for i in 0..{N_KEYS - 1}. Anyone can "
    "recompute them; never fund their addresses. Regenerate with scripts/make_samples.py."
)


def rand(label: str, i: int) -> int:
    """A deterministic 256-bit value for sample i."""
    return int.from_bytes(keccak(f"x402-verify sample {label} {i}".encode()), "big")


def address(label: str, i: int) -> str:
    return to_checksum_address(keccak(f"x402-verify address {label} {i}".encode())[12:])


def keys() -> list[bytes]:
    out = []
    for i in range(N_KEYS):
        key = keccak(KEY_LABEL.format(i).encode())
        assert 0 < int.from_bytes(key, "big") < SECP256K1_N
        out.append(key)
    return out


def permit2_doc(i: int) -> dict[str, Any]:
    now = T0 + 37 * i
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "PermitWitnessTransferFrom": [
                {"name": "permitted", "type": "TokenPermissions"},
                {"name": "spender", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
                {"name": "witness", "type": "Witness"},
            ],
            "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
            "Witness": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}],
        },
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": BASE_CHAIN_ID, "verifyingContract": PERMIT2},
        "message": {
            "permitted": {"token": OPG_TOKEN, "amount": str(10**15 * (1 + rand("amount", i) % 5000))},
            "spender": X402_EXACT_PERMIT2_PROXY,
            "nonce": str(rand("permit2 nonce", i)),
            "deadline": str(now + 3600),
            "witness": {"to": address("payTo", i % 5), "validAfter": str(now - 600)},
        },
    }


def eip3009_doc(i: int, signer: str) -> dict[str, Any]:
    now = T0 + 41 * i
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": "USD Coin", "version": "2", "chainId": BASE_CHAIN_ID, "verifyingContract": USDC_BASE},
        "message": {
            "from": signer,
            "to": address("payTo", i % 5),
            "value": str(1000 * (1 + rand("value", i) % 10_000)),
            "validAfter": str(now - 600),
            "validBefore": str(now + 3600),
            "nonce": "0x" + rand("eip3009 nonce", i).to_bytes(32, "big").hex(),
        },
    }


def sign(doc: dict[str, Any], key: bytes) -> tuple[str, str]:
    signed = Account.sign_message(encode_typed_data(full_message=doc), private_key=key)
    sig = signed.signature.hex()
    return ("0x" + sig.removeprefix("0x")), Account.from_key(key).address


def write(name: str, kind: str, samples: list[dict[str, Any]]) -> None:
    path = OUT / name
    # One sample a line: small, and diffs stay readable.
    head = json.dumps({"note": NOTE, "kind": kind})[:-1]
    lines = ",\n".join(json.dumps(s, separators=(",", ":")) for s in samples)
    path.write_text(f'{head}, "samples": [\n{lines}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(samples)} samples to {path}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ks = keys()
    permit2, eip3009 = [], []
    for i in range(COUNT):
        key = ks[i % N_KEYS]
        doc = permit2_doc(i)
        sig, signer = sign(doc, key)
        permit2.append({"typed_data": doc, "signature": sig, "signer": signer})
        doc = eip3009_doc(i, Account.from_key(key).address)
        sig, signer = sign(doc, key)
        eip3009.append({"typed_data": doc, "signature": sig, "signer": signer})
    write("permit2_samples.json", "permit2", permit2)
    write("eip3009_samples.json", "eip3009", eip3009)


if __name__ == "__main__":
    main()
