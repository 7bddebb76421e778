"""Chain checks against the real EVM (py-evm behind tests/chain/node.py; no mocked answers):
balances, Permit2 allowances, on-chain nonce state, smart-wallet signatures, RPC faults, round
trips. Each case also shows what the offline verifier alone says, so it could fail without
the chain stage."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

import x402_verify as xv
from chain.faults import fault_proxy
from chain.harness import (
    EXACT_PROXY,
    NETWORK,
    PERMIT2,
    Chain,
    Key,
    calldata,
    checksum,
    eip3009_payment,
    erc6492_wrap,
    permit2_payment,
    settle_eip3009,
    settle_permit2,
)
from x402_verify.chain import AsyncChainReader, averify_batch
from x402_verify.chain.checks import CHAIN_CODES


@pytest.fixture
def reader(chain: Chain) -> Iterator[xv.ChainReader]:
    r = xv.ChainReader(chain.url, timeout=10.0, negative_ttl=0)
    yield r
    r.close()


def verifier(reader: xv.ChainReader) -> xv.Verifier:
    return xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: reader})


def offline() -> xv.Verifier:
    return xv.Verifier(networks=[NETWORK])


def verdict(v: xv.Verifier, payment: object) -> str | None:
    r = v.verify(*payment.item)  # type: ignore[attr-defined]
    return None if r.is_valid else r.invalid_reason


def funded(chain: Chain, amount: int = 100, *, eth: bool = False) -> Key:
    key = Key.new()
    if eth:
        chain.add_key(key)
    chain.mint(key.address, amount)
    return key


# --- balances and allowances ----------------------------------------------------------------------


def test_funded_and_unfunded_eip3009_payers(chain: Chain, reader: xv.ChainReader) -> None:
    rich, poor = funded(chain, 5), funded(chain, 4)
    good = eip3009_payment(chain, rich.address, rich, 5)
    short = eip3009_payment(chain, poor.address, poor, 5)
    assert verdict(offline(), short) is None  # the signature alone is perfect
    v = verifier(reader)
    assert verdict(v, good) is None
    assert verdict(v, short) == "invalid_exact_evm_insufficient_balance"


def test_permit2_allowance_missing_insufficient_and_enough(chain: Chain, reader: xv.ChainReader) -> None:
    payer = funded(chain, 10, eth=True)
    v = verifier(reader)
    p = permit2_payment(chain, payer.address, payer, 5)
    assert verdict(offline(), p) is None
    assert verdict(v, p) == "permit2_allowance_required"
    chain.approve_permit2(payer, 4)
    assert verdict(v, permit2_payment(chain, payer.address, payer, 5)) == "permit2_allowance_required"
    chain.approve_permit2(payer, 10)
    assert verdict(v, permit2_payment(chain, payer.address, payer, 5)) is None
    assert verdict(v, permit2_payment(chain, payer.address, payer, 11)) == "permit2_insufficient_balance"


# --- nonces used on-chain -------------------------------------------------------------------------


def test_eip3009_nonce_used_on_chain(chain: Chain, reader: xv.ChainReader) -> None:
    payer = funded(chain, 10)
    p = eip3009_payment(chain, payer.address, payer, 2)
    settle_eip3009(chain, p)  # settled elsewhere: our store never saw it
    assert verdict(offline(), p) is None
    assert verdict(verifier(reader), p) == "invalid_exact_evm_nonce_already_used"


def test_eip3009_cancelled_authorization(chain: Chain, reader: xv.ChainReader) -> None:
    from eth_abi import encode
    from eth_utils.crypto import keccak

    payer = funded(chain, 10)
    nonce = secrets.token_bytes(32)
    domain = chain.call(chain.token, calldata("DOMAIN_SEPARATOR()", [], []))
    typehash = keccak(text="CancelAuthorization(address authorizer,bytes32 nonce)")
    sig = payer.sign(keccak(b"\x19\x01" + domain + keccak(encode(["bytes32", "address", "bytes32"], [typehash, payer.address, nonce]))))
    chain.send(
        chain.accounts[2], chain.token,
        calldata("cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)", ["address", "bytes32", "uint8", "bytes32", "bytes32"],
                 [payer.address, nonce, sig[64], sig[:32], sig[32:64]]),
    )
    p = eip3009_payment(chain, payer.address, payer, 2, nonce=nonce)
    assert verdict(offline(), p) is None
    assert verdict(verifier(reader), p) == "invalid_exact_evm_nonce_already_used"


def test_permit2_nonce_used_and_invalidated_on_chain(chain: Chain, reader: xv.ChainReader) -> None:
    payer = funded(chain, 10, eth=True)
    chain.approve_permit2(payer, 10)
    used = permit2_payment(chain, payer.address, payer, 1, nonce=(3 << 8) | 17)
    settle_permit2(chain, used)
    chain.send(payer.address, PERMIT2, calldata("invalidateUnorderedNonces(uint256,uint256)", ["uint256", "uint256"], [4, 1 << 9]))
    invalidated = permit2_payment(chain, payer.address, payer, 1, nonce=(4 << 8) | 9)
    neighbour = permit2_payment(chain, payer.address, payer, 1, nonce=(4 << 8) | 8)
    v = verifier(reader)
    for p in (used, invalidated):
        assert verdict(offline(), p) is None
        assert verdict(v, p) == "permit2_nonce_already_used"
    assert verdict(v, neighbour) is None


# --- smart wallets --------------------------------------------------------------------------------


def _long(sig: bytes) -> bytes:
    return sig + b"\x00" * 31  # 96 bytes: no EOA signature has this length


def test_erc1271_wallet_good_and_bad_signatures(chain: Chain, reader: xv.ChainReader) -> None:
    owner = Key.new()
    wallet = chain.deploy_wallet(owner.address)
    chain.mint(wallet, 10)
    good = eip3009_payment(chain, wallet, owner, 3, wrap=_long)
    bad = eip3009_payment(chain, wallet, Key.new(), 3, wrap=_long)
    # 65 bytes from the owner: ECDSA recovers the owner, not the wallet; ERC-1271 accepts it.
    short_form = eip3009_payment(chain, wallet, owner, 3)
    assert verdict(offline(), good) == "needs_chain_check"
    assert verdict(offline(), short_form) == "invalid_exact_evm_payload_signature"
    v = verifier(reader)
    assert verdict(v, good) is None
    assert verdict(v, short_form) is None
    assert verdict(v, bad) == "invalid_exact_evm_payload_signature"
    settle_eip3009(chain, good)  # what was accepted settles
    assert chain.balance(wallet) == 7


def test_erc1271_wallet_permit2(chain: Chain, reader: xv.ChainReader) -> None:
    owner = Key.new()
    chain.add_key(owner)
    wallet = chain.deploy_wallet(owner.address)
    chain.mint(wallet, 10)
    approve = calldata("approve(address,uint256)", ["address", "uint256"], [PERMIT2, 10])
    chain.send(owner.address, wallet, calldata("execute(address,bytes)", ["address", "bytes"], [chain.token, approve]))
    v = verifier(reader)
    good = permit2_payment(chain, wallet, owner, 4, wrap=_long)
    assert verdict(v, good) is None
    assert verdict(v, permit2_payment(chain, wallet, Key.new(), 4, wrap=_long)) == "invalid_permit2_signature"
    settle_permit2(chain, good)
    assert chain.balance(wallet) == 6


def test_erc6492_counterfactual_wallet_good_and_bad(chain: Chain, reader: xv.ChainReader) -> None:
    owner = Key.new()
    salt = secrets.token_bytes(32)
    wallet = chain.counterfactual_wallet(owner.address, salt)
    chain.mint(wallet, 10)  # funds can sit at the address before the wallet exists
    factory, deploy = chain.contracts["factory"], chain.factory_calldata(owner.address, salt)
    good = eip3009_payment(chain, wallet, owner, 2, wrap=lambda s: erc6492_wrap(factory, deploy, s))
    bad = eip3009_payment(chain, wallet, Key.new(), 2, wrap=lambda s: erc6492_wrap(factory, deploy, s))
    wrong_factory_data = eip3009_payment(chain, wallet, owner, 2, wrap=lambda s: erc6492_wrap(factory, chain.factory_calldata(owner.address, b"\x01" * 32), s))
    assert verdict(offline(), good) == "needs_chain_check"
    v = verifier(reader)
    assert verdict(v, good) is None
    assert verdict(v, bad) == "invalid_exact_evm_payload_signature"
    assert verdict(v, wrong_factory_data) == "invalid_exact_evm_payload_signature"
    assert chain.code(wallet) == b""  # verifying deployed nothing
    # Once deployed, the same wrapped signature is judged by the wallet itself.
    chain.send(chain.accounts[0], factory, deploy)
    assert verdict(v, eip3009_payment(chain, wallet, owner, 2, wrap=lambda s: erc6492_wrap(factory, deploy, s))) is None


def test_offline_needs_chain_check_from_an_eoa_is_resolved(chain: Chain, reader: xv.ChainReader) -> None:
    payer = funded(chain, 10, eth=True)
    chain.approve_permit2(payer, 10)
    v = verifier(reader)
    # Permit2 signatures of lengths no EOA signature has, from an address without code.
    for extra in (1, 31, 200):
        p = permit2_payment(chain, payer.address, payer, 1, wrap=lambda s, n=extra: s + b"\x01" * n)  # type: ignore[misc]
        assert verdict(offline(), p) == "needs_chain_check"
        assert verdict(v, p) == "invalid_permit2_signature"
    e = eip3009_payment(chain, payer.address, payer, 1, wrap=_long)
    assert verdict(offline(), e) == "needs_chain_check"
    assert verdict(v, e) == "invalid_exact_evm_payload_undeployed_smart_wallet"


def test_eip7702_delegated_account_is_judged_by_its_delegate(chain: Chain, reader: xv.ChainReader) -> None:
    accepting, refusing = funded(chain, 10), funded(chain, 10)
    chain.set_code(accepting.address, bytes.fromhex("ef0100") + bytes.fromhex(chain.contracts["delegate"][2:]))
    chain.set_code(refusing.address, bytes.fromhex("ef0100") + bytes.fromhex(chain.contracts["wallet_impl"][2:]))
    a = eip3009_payment(chain, accepting.address, accepting, 1)
    r = eip3009_payment(chain, refusing.address, refusing, 1)
    assert verdict(offline(), r) is None  # ECDSA is fine; the token would ask the delegate
    v = verifier(reader)
    assert verdict(v, a) is None
    assert verdict(v, r) == "invalid_exact_evm_payload_signature"


def test_asset_without_code(chain: Chain, reader: xv.ChainReader) -> None:
    payer = funded(chain, 10)
    p = eip3009_payment(chain, payer.address, payer, 1)
    chain.set_code(chain.token, b"")
    assert verdict(verifier(reader), p) == "asset_not_deployed_contract"


def test_every_chain_code_in_one_batch(chain: Chain, reader: xv.ChainReader) -> None:
    """Each refusal the chain stage makes, side by side in one batch: none disturbs another."""
    rich, poor, low = funded(chain, 5), funded(chain, 1), funded(chain, 1, eth=True)
    allowed = funded(chain, 10, eth=True)
    chain.approve_permit2(low, 10)
    not_3009 = chain.contracts["wallet_impl"]  # code, but no authorizationState / balanceOf
    nowhere = "0x" + secrets.token_hex(20)
    no_code_proxy = checksum("0x" + secrets.token_hex(20))
    cases = {
        None: eip3009_payment(chain, rich.address, rich, 5),
        "payer_exposure_exceeded": eip3009_payment(chain, rich.address, rich, 5),
        "invalid_exact_evm_insufficient_balance": eip3009_payment(chain, poor.address, poor, 5),
        "permit2_allowance_required": permit2_payment(chain, rich.address, rich, 1),
        "permit2_insufficient_balance": permit2_payment(chain, low.address, low, 5),
        "invalid_exact_evm_eip3009_not_supported": eip3009_payment(chain, rich.address, rich, 1, asset=not_3009),
        "invalid_exact_evm_payload_undeployed_smart_wallet": eip3009_payment(chain, rich.address, rich, 1, wrap=_long),
        "asset_not_deployed_contract": eip3009_payment(chain, rich.address, rich, 1, asset=checksum(nowhere)),
        "permit2_proxy_not_deployed": permit2_payment(chain, allowed.address, allowed, 1, spender=no_code_proxy),
        "chain_read_failed": permit2_payment(chain, allowed.address, allowed, 1, token=not_3009),  # balanceOf reverts
    }
    v = xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: reader}, permit2_proxies={"exact": [EXACT_PROXY, no_code_proxy]})
    results = v.verify_batch([p.item for p in cases.values()])
    assert [r.invalid_reason for r in results] == list(cases)
    assert set(cases) - {None} == CHAIN_CODES
    assert CHAIN_CODES <= {code for code, kind, _ in xv.error_codes() if kind == "payment"}


# --- RPC faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["down", "slow", "garbage", "error"])
def test_rpc_faults_fail_closed(chain: Chain, mode: str) -> None:
    payer = funded(chain, 10)
    payments = [eip3009_payment(chain, payer.address, payer, 1) for _ in range(3)]
    with fault_proxy(chain.url) as proxy:
        proxy.mode, proxy.delay = mode, 2.0
        with xv.ChainReader(proxy.url, timeout=0.25, retries=1, negative_ttl=0) as r:
            results = verifier(r).verify_batch([p.item for p in payments])
            assert [x.invalid_reason for x in results] == ["chain_read_failed"] * 3
            assert proxy.requests == 2  # one retry, then refused
            proxy.mode = "ok"  # the same reader recovers
            assert [x.is_valid for x in verifier(r).verify_batch([p.item for p in payments])] == [True] * 3


def test_an_answer_over_the_size_bound_fails_closed(chain: Chain) -> None:
    payer = funded(chain, 10)
    payments = [eip3009_payment(chain, payer.address, payer, 1) for _ in range(2)]
    # Every answer of the real node is larger than 64 bytes: refused while it is read.
    with xv.ChainReader(chain.url, retries=0, negative_ttl=0, max_response_bytes=64) as r:
        assert [x.invalid_reason for x in verifier(r).verify_batch([p.item for p in payments])] == ["chain_read_failed"] * 2
    with xv.ChainReader(chain.url, retries=0, negative_ttl=0) as r:
        assert [x.is_valid for x in verifier(r).verify_batch([p.item for p in payments])] == [True] * 2


def test_one_bad_answer_fails_only_its_payment(chain: Chain) -> None:
    payers = [funded(chain, 10) for _ in range(3)]
    payments = [eip3009_payment(chain, k.address, k, 1) for k in payers]
    with fault_proxy(chain.url) as proxy, xv.ChainReader(proxy.url, retries=0, negative_ttl=0) as r:
        proxy.mode = "drop_one"  # the batch answer lacks its last eth_call (the last payment's)
        results = verifier(r).verify_batch([p.item for p in payments])
    assert [x.invalid_reason for x in results] == [None, None, "chain_read_failed"]


def test_a_node_of_another_chain_is_refused(chain: Chain) -> None:
    payer = funded(chain, 10)
    p = eip3009_payment(chain, payer.address, payer, 1)
    with xv.ChainReader(chain.url) as r:
        # Configured for the wrong network: payments on 8453 find no reader; a reader said to
        # serve 8453 must be confirmed by eth_chainId first.
        v = xv.Verifier(networks=[NETWORK, "eip155:1"], chain_readers={"eip155:1": r})
        assert verdict(v, p) == "chain_read_failed"


def test_chain_checks_need_readers() -> None:
    with pytest.raises(ValueError, match="chain_readers"):
        xv.Verifier(chain_checks=True)


def test_chain_checked_says_whether_the_chain_is_read(chain: Chain) -> None:
    # The facilitator asks it to decide where reservations are made (a chain-checked verifier
    # reserves as it verifies, so it gets no reserve stage of its own).
    assert not offline().chain_checked
    with xv.ChainReader(chain.url) as r:
        checked = verifier(r)
        assert checked.chain_checked
        assert not xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: r}, chain_checks=False).chain_checked
        with pytest.raises(ValueError, match="reserves as it verifies"):
            checked.reserve([])


# --- round trips, caches, async -------------------------------------------------------------------


def test_256_payers_cost_a_bounded_number_of_round_trips(chain: Chain) -> None:
    keys = [Key.new() for _ in range(256)]
    chain.mint([k.address for k in keys], 5)
    payments = [eip3009_payment(chain, k.address, k, 5) for k in keys]
    with xv.ChainReader(chain.url, max_batch=500, timeout=60.0, negative_ttl=0) as r:
        before = chain.requests_served()
        results = verifier(r).verify_batch([p.item for p in payments])
        assert all(x.is_valid for x in results)
        # eth_chainId, eth_blockNumber, the asset's code, and per payer: code, balanceOf,
        # authorizationState.
        calls = 1 + 1 + 1 + 3 * 256
        assert r.calls == calls
        served = chain.requests_served() - before - 1  # that question is a request too
        assert r.round_trips == served == -(-calls // 500) == 2
        # The next batch: chain id confirmed and the asset's code cached.
        again = [eip3009_payment(chain, k.address, k, 5) for k in keys]
        r.calls = r.round_trips = 0
        assert all(x.is_valid for x in verifier(r).verify_batch([p.item for p in again]))
        assert (r.calls, r.round_trips) == (1 + 3 * 256, 2)


def test_unfunded_payers_are_remembered_for_refusals_only(chain: Chain) -> None:
    payer = funded(chain, 1)
    with xv.ChainReader(chain.url, negative_ttl=3600) as r:
        v = verifier(r)
        assert verdict(v, eip3009_payment(chain, payer.address, payer, 5)) == "invalid_exact_evm_insufficient_balance"
        trips = r.round_trips
        assert verdict(v, eip3009_payment(chain, payer.address, payer, 5)) == "invalid_exact_evm_insufficient_balance"
        assert r.round_trips == trips  # refused without a read
        assert verdict(v, eip3009_payment(chain, payer.address, payer, 1)) is None  # never used to accept less... or more
        assert r.round_trips == trips + 1


def test_async_reader_gives_the_same_verdicts(chain: Chain) -> None:
    rich, poor = funded(chain, 5), funded(chain, 1)
    owner = Key.new()
    wallet = chain.deploy_wallet(owner.address)
    chain.mint(wallet, 5)
    payments = [
        eip3009_payment(chain, rich.address, rich, 5),
        eip3009_payment(chain, poor.address, poor, 5),
        eip3009_payment(chain, wallet, owner, 2, wrap=_long),
        eip3009_payment(chain, rich.address, rich, 5),  # the same 5 units promised twice
    ]

    async def run() -> list[str | None]:
        r = AsyncChainReader(chain.url, max_batch=2, timeout=30.0, negative_ttl=0)
        try:
            v = xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: r})
            out = await averify_batch(v, [p.item for p in payments])
            with pytest.raises(TypeError, match="averify_batch"):
                v.verify_batch([payments[0].item])
        finally:
            await r.aclose()
        return [x.invalid_reason for x in out]

    assert asyncio.run(run()) == [None, "invalid_exact_evm_insufficient_balance", None, "payer_exposure_exceeded"]
