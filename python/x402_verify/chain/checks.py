"""The chain stage: payment capability, read from the chain, for payments that passed every
offline check. It sits between verification and reservation (``Verifier(chain_readers=...)``).

Per payment (reads of one batch gathered per chain, duplicates read once):

- the asset has code (``asset_not_deployed_contract``); Permit2 and the proxy the payment names
  as spender have code (``permit2_proxy_not_deployed``);
- the signature as the settling contract judges it: a payer with code (a contract, or an
  EIP-7702 delegated account, code ``0xef0100 || delegate``) only by its ERC-1271
  ``isValidSignature`` (magic ``0x1626ba7e``), whatever ECDSA says; an ERC-6492 wrapper by
  deploying through its factory and asking ``isValidSignature``, in one creation-code
  ``eth_call``; a payer without code by the offline ECDSA verdict;
- the nonce is unused on-chain: EIP-3009 ``authorizationState(from, nonce)``
  (``invalid_exact_evm_nonce_already_used``; a revert: ``invalid_exact_evm_eip3009_not_supported``),
  Permit2 ``nonceBitmap(owner, nonce >> 8)`` bit ``nonce & 255`` (``permit2_nonce_already_used``);
- ``balanceOf(payer) >= amount`` (``invalid_exact_evm_insufficient_balance`` /
  ``permit2_insufficient_balance``); Permit2: the token's ``allowance(payer, Permit2) >= amount``
  (``permit2_allowance_required``).

A read that fails (down, slow, garbage, one odd answer) refuses the payments that needed it
with ``chain_read_failed``; the others get their verdicts. Round trips per batch and chain:
``ceil(calls / max_batch)``, plus ``ceil(k / max_batch)`` when ``k`` payers whose offline ECDSA
signature was valid turn out to have code (their ERC-1271 answer is a second read).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from x402_verify._core import REPLAY_REASONS, VerifyResponse
from x402_verify.chain.abi import AbiError, address_word, word
from x402_verify.chain.erc6492 import unwrap, validator_call, validator_verdict
from x402_verify.chain.exposure import Exposure, ledger_id
from x402_verify.chain.reader import AsyncChainReader, Call, ChainReadError

__all__ = ["CHAIN_CODES", "ChainChecks", "PERMIT2_ADDRESS", "WALLET_ROUTE_REASONS"]

PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
DELEGATION_PREFIX = bytes.fromhex("ef0100")
MAGIC_1271 = bytes.fromhex("1626ba7e")

_BALANCE_OF = bytes.fromhex("70a08231")
_ALLOWANCE = bytes.fromhex("dd62ed3e")
_AUTHORIZATION_STATE = bytes.fromhex("e94a0102")
_NONCE_BITMAP = bytes.fromhex("4fe02b44")
_IS_VALID_SIGNATURE = bytes.fromhex("1626ba7e")

#: Offline verdicts a chain check may turn into valid: the signature is one only the chain can
#: judge, or an ECDSA signature that does not recover to a payer which may be a contract.
WALLET_ROUTE_REASONS = frozenset({"needs_chain_check", "invalid_exact_evm_payload_signature", "invalid_permit2_signature"})

#: Every verdict the chain stage and the exposure ledger can give (docs/reason-codes.md); the
#: signature codes they share with the offline checks are not listed.
CHAIN_CODES = frozenset({
    "asset_not_deployed_contract",
    "chain_read_failed",
    "invalid_exact_evm_eip3009_not_supported",
    "invalid_exact_evm_insufficient_balance",
    "invalid_exact_evm_payload_undeployed_smart_wallet",
    "payer_exposure_exceeded",
    "permit2_allowance_required",
    "permit2_insufficient_balance",
    "permit2_proxy_not_deployed",
})

_MEMORY_ENTRIES = 100_000


class _Memory:
    """What a reader's chain may remember between batches: deployed code (cannot change), and
    refusal-only facts for ``negative_ttl`` (a balance seen too low, a payer seen without code).
    Bounded; the oldest entries go first."""

    def __init__(self) -> None:
        # verify_batch may run on several threads at once; reads are single dict lookups.
        self._lock = threading.Lock()
        self.chain_id_ok = False
        self.code: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.low_balance: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self.no_code: OrderedDict[str, float] = OrderedDict()

    def remember(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > _MEMORY_ENTRIES:
                table.popitem(last=False)

    def get_code(self, address: str, now: float) -> bytes | None:
        hit = self.code.get(address)
        return hit[0] if hit is not None and hit[1] > now else None

    def remember_code(self, address: str, code: bytes, now: float, ttl: float) -> None:
        # Only a deployed contract's code: "no code" can become a delegation (EIP-7702) before
        # settlement, and a delegation can be replaced.
        if ttl > 0 and code and not code.startswith(DELEGATION_PREFIX):
            self.remember(self.code, address, (code, now + ttl))


def _memory(reader: Any) -> _Memory:
    if not isinstance(getattr(reader, "memory", None), _Memory):
        reader.memory = _Memory()
    mem: _Memory = reader.memory
    return mem


@dataclass
class _Item:
    index: int
    response: VerifyResponse
    kind: str  # eip3009 | permit2
    payer: str
    asset: str
    amount: int
    nonce: int
    spender: str | None
    digest: bytes
    signature: bytes
    wallet_route: bool
    calls: dict[str, int] = field(default_factory=dict)
    verdict: tuple[str, str] | None = None  # (reason, message) once refused
    payer_code: bytes | None = None
    capacity: int | None = None  # what the chain says this payer can pay (balance, allowance)
    read_block: int = -1


class _Plan:
    """The calls of one chain's batch, each read once."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._index: dict[str, int] = {}
        self.block_at: int | None = None

    def add(self, method: str, params: list[Any]) -> int:
        key = method + repr(params)
        at = self._index.get(key)
        if at is None:
            at = self._index[key] = len(self.calls)
            self.calls.append((method, params))
        return at


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _eth_call(to: str | None, data: bytes) -> Call:
    tx: dict[str, str] = {"data": _hex(data)}
    if to is not None:
        tx["to"] = to
    return ("eth_call", [tx, "latest"])


class _Fail(Exception):
    """This payment's read failed."""


def _bytes_result(value: Any) -> bytes:
    if isinstance(value, ChainReadError):
        raise _Fail(value.message)
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2 or len(value) > 2 + 2 * 64 * 1024:
        raise _Fail("the RPC answered a value that is not hex data")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise _Fail("the RPC answered a value that is not hex data") from None


def _word_result(value: Any) -> int:
    data = _bytes_result(value)
    if len(data) != 32:
        raise _Fail(f"the call answered {len(data)} bytes, not one word")
    return int.from_bytes(data, "big")


class ChainChecks:
    """The chain stage over ``{chain_id: reader}``; readers are ``ChainReader`` or
    ``AsyncChainReader`` (``check`` needs the first, ``acheck`` either)."""

    def __init__(self, readers: Mapping[int, Any], *, clock: Any = time.monotonic) -> None:
        self.readers = dict(readers)
        self._clock = clock

    # --- planning ------------------------------------------------------------------------------

    def _items(self, results: Sequence[VerifyResponse]) -> tuple[dict[int, list[_Item]], dict[int, tuple[str, str]]]:
        by_chain: dict[int, list[_Item]] = {}
        refused: dict[int, tuple[str, str]] = {}
        for i, r in enumerate(results):
            wallet_route = not r.is_valid and r.invalid_reason in WALLET_ROUTE_REASONS
            if not (r.is_valid or wallet_route) or r.digest is None:
                continue
            auth, asset, signature = r.authorization, r.asset, r.signature
            if auth is None or asset is None or signature is None or r.chain_id is None:
                continue
            if r.chain_id not in self.readers:
                if r.is_valid:
                    refused[i] = ("chain_read_failed", f"no ChainReader is configured for chain {r.chain_id}; refused")
                continue
            by_chain.setdefault(r.chain_id, []).append(
                _Item(
                    index=i, response=r, kind=auth.kind, payer=auth.payer, asset=asset, amount=auth.amount, nonce=auth.nonce,
                    spender=auth.spender, digest=r.digest, signature=signature, wallet_route=wallet_route,
                )
            )
        return by_chain, refused

    def _plan(self, reader: Any, items: list[_Item]) -> _Plan:
        plan = _Plan()
        mem = _memory(reader)
        now = self._clock()
        if not mem.chain_id_ok:
            plan.add("eth_chainId", [])
        for it in items:
            payer_l = it.payer.lower()
            low = mem.low_balance.get((it.asset.lower(), payer_l))
            if low is not None and low[1] > now and low[0] < it.amount:
                code = "permit2_insufficient_balance" if it.kind == "permit2" else "invalid_exact_evm_insufficient_balance"
                it.verdict = (code, f"balance {low[0]} is below {it.amount} (read within the last {reader.negative_ttl} s)")
                continue
            wrapped = it.signature.endswith(bytes.fromhex("6492" * 16))
            if it.wallet_route and not wrapped and it.response.invalid_reason != "needs_chain_check":
                no_code = mem.no_code.get(payer_l)
                if no_code is not None and no_code > now:
                    it.verdict = (str(it.response.invalid_reason), str(it.response.invalid_message))
                    continue
            for address in [it.asset] + ([PERMIT2_ADDRESS, it.spender] if it.kind == "permit2" and it.spender else []):
                if mem.get_code(address.lower(), now) is None:
                    it.calls["code:" + address.lower()] = plan.add("eth_getCode", [address, "latest"])
            if mem.get_code(payer_l, now) is None:
                it.calls["payer_code"] = plan.add("eth_getCode", [it.payer, "latest"])
            it.calls["balance"] = plan.add(*_eth_call(it.asset, _BALANCE_OF + address_word(it.payer)))
            if it.kind == "eip3009":
                it.calls["nonce"] = plan.add(*_eth_call(it.asset, _AUTHORIZATION_STATE + address_word(it.payer) + word(it.nonce)))
            else:
                it.calls["allowance"] = plan.add(*_eth_call(it.asset, _ALLOWANCE + address_word(it.payer) + address_word(PERMIT2_ADDRESS)))
                it.calls["nonce"] = plan.add(*_eth_call(PERMIT2_ADDRESS, _NONCE_BITMAP + address_word(it.payer) + word(it.nonce >> 8)))
            if it.wallet_route:
                # Most likely a contract: ask its signature now rather than in a second read.
                try:
                    parts = unwrap(it.signature)
                except AbiError as exc:
                    it.verdict = (self._bad_signature(it), f"malformed ERC-6492 signature: {exc}")
                    continue
                if parts is not None:
                    factory, factory_calldata, inner = parts
                    data = validator_call(it.payer, it.digest, factory, factory_calldata, inner)
                    it.calls["erc6492"] = plan.add(*_eth_call(None, data))
                else:
                    it.calls["erc1271"] = plan.add(*_eth_call(it.payer, self._is_valid_signature(it.digest, it.signature)))
        if not any(it.calls for it in items):
            return _Plan()  # every payment refused from memory: no read at all
        plan.block_at = plan.add("eth_blockNumber", [])
        return plan

    @staticmethod
    def _is_valid_signature(digest: bytes, signature: bytes) -> bytes:
        padded = signature + b"\x00" * (-len(signature) % 32)
        return _IS_VALID_SIGNATURE + digest + word(64) + word(len(signature)) + padded

    @staticmethod
    def _bad_signature(it: _Item) -> str:
        return "invalid_permit2_signature" if it.kind == "permit2" else "invalid_exact_evm_payload_signature"

    # --- judging -------------------------------------------------------------------------------

    def _judge(self, reader: Any, items: list[_Item], plan: _Plan, answers: list[Any]) -> list[_Item]:
        """Sets each item's verdict; returns those that need a second read (ERC-1271 for a
        payer with code whose ECDSA signature was valid offline)."""
        mem = _memory(reader)
        now = self._clock()
        expected_chain = next(iter(items)).response.chain_id if items else None
        if not mem.chain_id_ok and "eth_chainId" in [c[0] for c in plan.calls[:1]]:
            served = answers[0]
            try:
                if isinstance(served, ChainReadError):
                    raise _Fail(served.message)
                if not isinstance(served, str) or int(served, 16) != expected_chain:
                    raise _Fail(f"the RPC serves chain {served!r}, not {expected_chain}")
            except (_Fail, ValueError) as exc:
                for it in items:
                    if it.verdict is None:
                        it.verdict = ("chain_read_failed", f"the chain id could not be confirmed: {exc}; refused")
                return []
            mem.chain_id_ok = True
        read_block = self._read_block(plan, answers)
        second: list[_Item] = []
        for it in items:
            if it.verdict is not None:
                continue
            it.read_block = read_block
            try:
                if self._judge_one(reader, mem, it, answers, now):
                    second.append(it)
            except _Fail as exc:
                it.verdict = ("chain_read_failed", f"the chain could not be read for this payment ({exc}); refused")
        return second

    @staticmethod
    def _read_block(plan: _Plan, answers: list[Any]) -> int:
        """A block the batch's reads are at or after: the node's head minus one, since a node may
        run the calls of a batch on the block before the one eth_blockNumber names. -1 when
        unknown: then no settled amount leaves a ledger on this read."""
        if plan.block_at is None:
            return -1
        value = answers[plan.block_at]
        try:
            return max(-1, int(value, 16) - 1) if isinstance(value, str) and value.startswith("0x") else -1
        except ValueError:
            return -1

    def _code(self, mem: _Memory, reader: Any, it: _Item, answers: list[Any], key: str, address: str, now: float) -> bytes:
        if key in it.calls:
            code = _bytes_result(answers[it.calls[key]])
            mem.remember_code(address.lower(), code, now, reader.code_ttl)
            return code
        # Planned from the cache: read it again past its expiry (the plan made no call for it).
        hit = mem.code.get(address.lower())
        if hit is None:
            raise _Fail("cached code was evicted during the batch")
        return hit[0]

    def _judge_one(self, reader: Any, mem: _Memory, it: _Item, answers: list[Any], now: float) -> bool:
        if not self._code(mem, reader, it, answers, "code:" + it.asset.lower(), it.asset, now):
            it.verdict = ("asset_not_deployed_contract", f"the asset {it.asset} has no code on this chain")
            return False
        if it.kind == "permit2" and it.spender:
            for address in (PERMIT2_ADDRESS, it.spender):
                if not self._code(mem, reader, it, answers, "code:" + address.lower(), address, now):
                    it.verdict = ("permit2_proxy_not_deployed", f"{address} (Permit2 or the x402 proxy) has no code on this chain")
                    return False
        payer_code = self._code(mem, reader, it, answers, "payer_code", it.payer, now)
        it.payer_code = payer_code
        if not payer_code and reader.negative_ttl > 0:
            mem.remember(mem.no_code, it.payer.lower(), now + reader.negative_ttl)
        # The signature, as the settling contract routes it (by the payer's code).
        if "erc6492" in it.calls:
            answer = answers[it.calls["erc6492"]]
            ok = False if isinstance(answer, ChainReadError) and answer.reverted else self._validator(answer)
            if not ok:
                it.verdict = (self._bad_signature(it), "the ERC-6492 wallet (deployed by its factory if need be) does not accept the signature")
                return False
        elif it.wallet_route:
            if payer_code:
                if not self._magic(answers[it.calls["erc1271"]]):
                    it.verdict = (self._bad_signature(it), "the payer's isValidSignature (ERC-1271) does not accept the signature")
                    return False
            elif it.response.invalid_reason == "needs_chain_check":
                code = "invalid_permit2_signature" if it.kind == "permit2" else "invalid_exact_evm_payload_undeployed_smart_wallet"
                it.verdict = (code, "a smart-wallet signature from an address without code and without ERC-6492 deployment data")
                return False
            else:
                it.verdict = (str(it.response.invalid_reason), str(it.response.invalid_message))
                return False
        elif payer_code:
            # An ECDSA signature from an address with code (a contract, or an EIP-7702
            # delegation): the token and Permit2 ask isValidSignature, so must we.
            self._capability(mem, reader, it, answers, now)
            return it.verdict is None
        self._capability(mem, reader, it, answers, now)
        return False

    def _capability(self, mem: _Memory, reader: Any, it: _Item, answers: list[Any], now: float) -> None:
        nonce_answer = answers[it.calls["nonce"]]
        if it.kind == "eip3009":
            if isinstance(nonce_answer, ChainReadError) and nonce_answer.reverted:
                it.verdict = ("invalid_exact_evm_eip3009_not_supported", "the asset's authorizationState reverts: not an EIP-3009 token")
                return
            if _word_result(nonce_answer):
                it.verdict = (REPLAY_REASONS["eip3009"], "authorizationState(from, nonce) is set on-chain: used or cancelled")
                return
        elif (_word_result(nonce_answer) >> (it.nonce & 255)) & 1:
            it.verdict = (REPLAY_REASONS["permit2"], "the Permit2 nonceBitmap bit of this nonce is set on-chain: used or invalidated")
            return
        balance = _word_result(answers[it.calls["balance"]])
        if balance < it.amount:
            if reader.negative_ttl > 0:
                mem.remember(mem.low_balance, (it.asset.lower(), it.payer.lower()), (balance, now + reader.negative_ttl))
            code = "permit2_insufficient_balance" if it.kind == "permit2" else "invalid_exact_evm_insufficient_balance"
            it.verdict = (code, f"balanceOf(payer) is {balance}, below {it.amount}")
            return
        capacity = balance
        if it.kind == "permit2":
            allowance = _word_result(answers[it.calls["allowance"]])
            if allowance < it.amount:
                it.verdict = ("permit2_allowance_required", f"the token allowance of the payer to Permit2 is {allowance}, below {it.amount}")
                return
            capacity = min(balance, allowance)
        it.capacity = capacity

    @staticmethod
    def _magic(answer: Any) -> bool:
        if isinstance(answer, ChainReadError):
            if answer.reverted:
                return False
            raise _Fail(answer.message)
        data = _bytes_result(answer)
        return len(data) == 32 and data[:4] == MAGIC_1271

    @staticmethod
    def _validator(answer: Any) -> bool:
        data = _bytes_result(answer)
        try:
            return validator_verdict(data)
        except AbiError as exc:
            raise _Fail(str(exc)) from None

    def _second_plan(self, items: list[_Item]) -> _Plan:
        plan = _Plan()
        for it in items:
            it.calls["erc1271"] = plan.add(*_eth_call(it.payer, self._is_valid_signature(it.digest, it.signature)))
        return plan

    def _judge_second(self, items: list[_Item], answers: list[Any]) -> None:
        for it in items:
            try:
                if not self._magic(answers[it.calls["erc1271"]]):
                    it.verdict = (
                        self._bad_signature(it),
                        "the payer has code (a contract or an EIP-7702 delegation) and its isValidSignature does not accept this ECDSA signature",
                    )
            except _Fail as exc:
                it.verdict = ("chain_read_failed", f"the chain could not be read for this payment ({exc}); refused")

    # --- applying ------------------------------------------------------------------------------

    @staticmethod
    def _apply(
        results: Sequence[VerifyResponse], chains: dict[int, list[_Item]], refused: dict[int, tuple[str, str]]
    ) -> tuple[list[VerifyResponse], list[Exposure | None]]:
        out = list(results)
        capacity: list[Exposure | None] = [None] * len(out)
        for i, (reason, message) in refused.items():
            out[i] = out[i].with_invalid(reason, message)
        for items in chains.values():
            for it in items:
                if it.verdict is not None:
                    if it.verdict[0] != it.response.invalid_reason or it.verdict[1] != it.response.invalid_message:
                        out[it.index] = it.response.with_invalid(*it.verdict)
                elif it.capacity is None or it.response.chain_id is None:
                    # Not reached (every accepted payment had its balance read); refused, not
                    # accepted unreserved, if it ever is.
                    out[it.index] = it.response.with_invalid("chain_read_failed", "no capacity was read for this payment; refused")
                else:
                    out[it.index] = it.response if it.response.is_valid else it.response.with_valid()
                    capacity[it.index] = Exposure(ledger_id(it.response.chain_id, it.asset, it.payer), it.amount, it.capacity, it.read_block)
        return out, capacity

    def check(self, results: Sequence[VerifyResponse]) -> tuple[list[VerifyResponse], list[Exposure | None]]:
        """Verdicts after the chain checks, and per accepted payment what the chain says the
        payer can pay (balance; for Permit2 the lesser of balance and allowance) with the block
        it was read at, for the store's exposure ledger."""
        chains, refused = self._items(results)
        for chain_id, items in chains.items():
            reader = self.readers[chain_id]
            if isinstance(reader, AsyncChainReader):
                raise TypeError("an AsyncChainReader serves x402_verify.chain.averify_batch, not verify_batch")
            plan = self._plan(reader, items)
            answers = reader.call_many(plan.calls) if plan.calls else []
            second = self._judge(reader, items, plan, answers)
            if second:
                plan2 = self._second_plan(second)
                self._judge_second(second, reader.call_many(plan2.calls))
        return self._apply(results, chains, refused)

    async def acheck(self, results: Sequence[VerifyResponse]) -> tuple[list[VerifyResponse], list[Exposure | None]]:
        """``check`` for async readers (``AsyncChainReader``); chains are read concurrently."""
        import asyncio

        chains, refused = self._items(results)

        async def one(chain_id: int, items: list[_Item]) -> None:
            reader = self.readers[chain_id]
            plan = self._plan(reader, items)
            answers = await reader.call_many(plan.calls) if plan.calls else []
            second = self._judge(reader, items, plan, answers)
            if second:
                plan2 = self._second_plan(second)
                self._judge_second(second, await reader.call_many(plan2.calls))

        await asyncio.gather(*(one(c, items) for c, items in chains.items()))
        return self._apply(results, chains, refused)
