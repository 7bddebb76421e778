"""The test chain itself: the project's Vyper contracts on the real EVM behave as the
contracts a verifier mirrors (USDC's EIP-3009, Permit2's SignatureTransfer, x402's exact proxy,
an ERC-1271 wallet, an ERC-6492 factory)."""

from __future__ import annotations

import secrets

import pytest

from chain.harness import (
    EXACT_PROXY,
    PERMIT2,
    Chain,
    Key,
    RpcFailure,
    calldata,
    eip3009_payment,
    permit2_payment,
    settle_eip3009,
    settle_permit2,
)
from x402_verify.chain.erc6492 import validator_call


def _auth_state(chain: Chain, who: str, nonce: str) -> bool:
    out = chain.call(chain.token, calldata("authorizationState(address,bytes32)", ["address", "bytes32"], [who, bytes.fromhex(nonce[2:])]))
    return out[-1] == 1


def test_canonical_addresses_hold_code(chain: Chain) -> None:
    assert chain.code(PERMIT2) and chain.code(EXACT_PROXY)
    assert int(chain.rpc("eth_chainId"), 16) == 8453


def test_eip3009_both_forms_and_replay(chain: Chain) -> None:
    payer = Key.new()
    chain.mint(payer.address, 10)
    p = eip3009_payment(chain, payer.address, payer, 3)
    settle_eip3009(chain, p)
    assert chain.balance(payer.address) == 7 and _auth_state(chain, payer.address, p.message["nonce"])
    assert settle_eip3009(chain, p, expect_ok=False)["status"] == "0x0"  # used
    # A wallet's signature (65 + 31 bytes) goes through the bytes form and ERC-1271.
    owner = Key.new()
    wallet = chain.deploy_wallet(owner.address)
    chain.mint(wallet, 5)
    w = eip3009_payment(chain, wallet, owner, 2, wrap=lambda s: s + b"\x00" * 31)
    settle_eip3009(chain, w)
    assert chain.balance(wallet) == 3
    bad = eip3009_payment(chain, wallet, Key.new(), 1, wrap=lambda s: s + b"\x00" * 31)
    assert settle_eip3009(chain, bad, expect_ok=False)["status"] == "0x0"


def test_eip3009_cancel(chain: Chain) -> None:
    payer = Key.new()
    chain.add_key(payer)
    nonce = secrets.token_bytes(32)
    from eth_abi import encode
    from eth_utils.crypto import keccak

    import x402_verify as xv

    domain = chain.call(chain.token, calldata("DOMAIN_SEPARATOR()", [], []))
    typehash = keccak(text="CancelAuthorization(address authorizer,bytes32 nonce)")
    digest = keccak(b"\x19\x01" + domain + keccak(encode(["bytes32", "address", "bytes32"], [typehash, payer.address, nonce])))
    sig = payer.sign(digest)
    data = calldata("cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)", ["address", "bytes32", "uint8", "bytes32", "bytes32"],
                    [payer.address, nonce, sig[64], sig[:32], sig[32:64]])
    chain.send(chain.accounts[2], chain.token, data)
    assert _auth_state(chain, payer.address, "0x" + nonce.hex())
    assert xv  # the payment helper is exercised elsewhere


def test_permit2_settles_through_the_proxy_and_burns_the_nonce(chain: Chain) -> None:
    payer = Key.new()
    chain.add_key(payer)
    chain.mint(payer.address, 10)
    p = permit2_payment(chain, payer.address, payer, 4, nonce=(7 << 8) | 3)
    assert settle_permit2(chain, p, expect_ok=False)["status"] == "0x0"  # no allowance yet
    chain.approve_permit2(payer, 10)
    settle_permit2(chain, p)
    assert chain.balance(payer.address) == 6
    word = chain.call(PERMIT2, calldata("nonceBitmap(address,uint256)", ["address", "uint256"], [payer.address, 7]))
    assert int.from_bytes(word, "big") == 1 << 3
    assert settle_permit2(chain, p, expect_ok=False)["status"] == "0x0"  # InvalidNonce
    # EIP-2098 compact form, and invalidateUnorderedNonces.
    q = permit2_payment(chain, payer.address, payer, 1, nonce=5)
    r, s, v = q.signature[:32], int.from_bytes(q.signature[32:64], "big"), q.signature[64]
    q.signature = r + ((v - 27) << 255 | s).to_bytes(32, "big")
    settle_permit2(chain, q)
    chain.send(payer.address, PERMIT2, calldata("invalidateUnorderedNonces(uint256,uint256)", ["uint256", "uint256"], [9, 1 << 200]))
    word = chain.call(PERMIT2, calldata("nonceBitmap(address,uint256)", ["address", "uint256"], [payer.address, 9]))
    assert int.from_bytes(word, "big") == 1 << 200


@pytest.mark.parametrize("good", [True, False])
def test_erc6492_validator_deploys_then_asks(chain: Chain, good: bool) -> None:
    owner = Key.new()
    salt = secrets.token_bytes(32)
    wallet = chain.counterfactual_wallet(owner.address, salt)
    assert chain.code(wallet) == b""
    digest = secrets.token_bytes(32)
    sig = (owner if good else Key.new()).sign(digest)
    out = chain.call(None, validator_call(wallet, digest, chain.contracts["factory"], chain.factory_calldata(owner.address, salt), sig))
    assert int.from_bytes(out[-32:], "big") == (1 if good else 0)
    assert chain.code(wallet) == b""  # an eth_call deploys nothing


def test_reverts_carry_their_data(chain: Chain) -> None:
    with pytest.raises(RpcFailure) as info:
        chain.rpc("eth_call", {"to": chain.token, "data": "0x" + calldata("transfer(address,uint256)", ["address", "uint256"], [PERMIT2, 1]).hex()}, "latest")
    assert info.value.error["code"] == 3 and info.value.error["data"].startswith("0x08c379a0")  # Error(string)
