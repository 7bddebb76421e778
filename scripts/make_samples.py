"""Writes the signed sample documents bundled with the package (dev-only; needs eth-account;
the documents come from the tests' payment builder, tests/payments.py).

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
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

# The payment builder the tests use (tests/payments.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from payments import (  # noqa: E402
    BASE_CHAIN_ID,
    EXACT_PROXY,
    OPG_BASE,
    PUBLIC_TEST_KEY_LABEL,
    USDC_BASE,
    eip3009_authorization,
    eip3009_typed_data,
    permit2_authorization,
    permit2_typed_data,
    public_test_keys,
    sign_typed_data,
)

OUT = Path(__file__).resolve().parent.parent / "python" / "x402_verify" / "data"
COUNT = 64
N_KEYS = 8
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z; validAfter = now - 600, deadline = now + 3600, so every window holds T0 + 2600

NOTE = (
    "Signed sample documents for `x402-verify bench` and the tests. The signers are PUBLIC TEST "
    f"KEYS: private key i = keccak256(utf8('{PUBLIC_TEST_KEY_LABEL}')) for i in 0..{N_KEYS - 1}. Anyone can "
    "recompute them; never fund their addresses. Regenerate with scripts/make_samples.py."
)


def rand(label: str, i: int) -> int:
    """A deterministic 256-bit value for sample i."""
    return int.from_bytes(keccak(f"x402-verify sample {label} {i}".encode()), "big")


def address(label: str, i: int) -> str:
    return to_checksum_address(keccak(f"x402-verify address {label} {i}".encode())[12:])


def permit2_doc(i: int, signer: str) -> dict[str, Any]:
    now = T0 + 37 * i
    auth = permit2_authorization(
        from_=signer, token=OPG_BASE, amount=10**15 * (1 + rand("amount", i) % 5000), spender=EXACT_PROXY,
        nonce=rand("permit2 nonce", i), deadline=now + 3600, to=address("payTo", i % 5), valid_after=now - 600,
    )  # fmt: skip
    return permit2_typed_data(auth, chain_id=BASE_CHAIN_ID)


def eip3009_doc(i: int, signer: str) -> dict[str, Any]:
    now = T0 + 41 * i
    auth = eip3009_authorization(
        from_=signer, to=address("payTo", i % 5), value=1000 * (1 + rand("value", i) % 10_000), valid_after=now - 600,
        valid_before=now + 3600, nonce="0x" + rand("eip3009 nonce", i).to_bytes(32, "big").hex(),
    )  # fmt: skip
    return eip3009_typed_data(auth, name="USD Coin", chain_id=BASE_CHAIN_ID, token=USDC_BASE)


def sign(doc: dict[str, Any], key: bytes) -> tuple[str, str]:
    return "0x" + sign_typed_data(doc, key).hex(), Account.from_key(key).address


def write(name: str, kind: str, samples: list[dict[str, Any]]) -> None:
    path = OUT / name
    # One sample a line: small, and diffs stay readable.
    head = json.dumps({"note": NOTE, "kind": kind})[:-1]
    lines = ",\n".join(json.dumps(s, separators=(",", ":")) for s in samples)
    path.write_text(f'{head}, "samples": [\n{lines}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(samples)} samples to {path}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ks = public_test_keys(N_KEYS)
    permit2, eip3009 = [], []
    for i in range(COUNT):
        key = ks[i % N_KEYS]
        doc = permit2_doc(i, Account.from_key(key).address)
        sig, signer = sign(doc, key)
        permit2.append({"typed_data": doc, "signature": sig, "signer": signer})
        doc = eip3009_doc(i, Account.from_key(key).address)
        sig, signer = sign(doc, key)
        eip3009.append({"typed_data": doc, "signature": sig, "signer": signer})
    write("permit2_samples.json", "permit2", permit2)
    write("eip3009_samples.json", "eip3009", eip3009)


if __name__ == "__main__":
    main()
