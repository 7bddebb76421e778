"""Reservations that count what is promised, against the real EVM: a payer funded with 10
units who signs 100 distinct valid 1-unit authorizations gets exactly 10 accepted, in one batch
and from 2 processes sharing Redis; after 5 settle on-chain and 5 are released, exactly 5 more.
Memory, SQLite and Redis stores alike."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from chain.harness import NETWORK, Chain, Key, eip3009_payment, permit2_payment, settle_eip3009
from redis_servers import RedisServer, shared_redis_server  # noqa: F401  (fixture)

HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield xv.MemoryNonceStore()
    elif request.param == "sqlite":
        s = xv.SqliteNonceStore(tmp_path / "nonces.db")
        yield s
        s.close()
    else:
        server = request.getfixturevalue("shared_redis_server")
        s = xv.RedisNonceStore(server.url, prefix=f"t{secrets.token_hex(4)}:")
        yield s
        s.client.close()


def accepted(results: list[xv.VerifyResponse]) -> list[xv.VerifyResponse]:
    return [r for r in results if r.is_valid]


def test_exposure_counts_what_is_promised(chain: Chain, store: Any) -> None:
    payer = Key.new()
    chain.mint(payer.address, 10)
    with xv.ChainReader(chain.url, timeout=30.0, negative_ttl=0) as reader:
        v = xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: reader}, nonce_store=store)
        payments = [eip3009_payment(chain, payer.address, payer, 1) for _ in range(100)]
        results = v.verify_batch([p.item for p in payments])
        ok = accepted(results)
        assert len(ok) == 10
        assert {r.invalid_reason for r in results if not r.is_valid} == {"payer_exposure_exceeded"}
        assert v.nonce_store.outstanding(8453, chain.token, payer.address) == 10
        # 5 settle on-chain (their blocks told), 5 are released: nothing served.
        by_key = {p.header: p for p in payments}
        picked = [i for i, r in enumerate(results) if r.is_valid]
        for i in picked[:5]:
            receipt = settle_eip3009(chain, by_key[payments[i].header])
            v.settle(results[i], block=int(receipt["blockNumber"], 16))
        for i in picked[5:]:
            v.release(results[i])
        assert chain.balance(payer.address) == 5
        # Settled amounts stay counted until a read one block past their settlement.
        assert v.nonce_store.outstanding(8453, chain.token, payer.address) == 5
        chain.rpc("evm_mine")
        more = [eip3009_payment(chain, payer.address, payer, 1) for _ in range(100)]
        again = v.verify_batch([p.item for p in more])
        assert len(accepted(again)) == 5
        # Read at the head, the 5 settled are gone; read from an older block they still count.
        head = chain.block_number()
        assert v.nonce_store.outstanding(8453, chain.token, payer.address, as_of_block=head) == 5
        assert v.nonce_store.outstanding(8453, chain.token, payer.address) == 10


def test_settled_without_a_block_stays_counted(chain: Chain, store: Any) -> None:
    payer = Key.new()
    chain.mint(payer.address, 4)
    with xv.ChainReader(chain.url, timeout=30.0, negative_ttl=0) as reader:
        v = xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: reader}, nonce_store=store)
        first = eip3009_payment(chain, payer.address, payer, 2)
        r = v.verify(*first.item)
        assert r.is_valid
        settle_eip3009(chain, first)
        v.settle(r)  # no block: the ledger cannot tell when the balance shows it
        chain.rpc("evm_mine")
        # Balance 2 now, 2 still counted: a new 2-unit payment is refused (safe, if costly).
        assert v.verify(*eip3009_payment(chain, payer.address, payer, 2).item).invalid_reason == "payer_exposure_exceeded"


def test_permit2_exposure_is_bounded_by_the_allowance(chain: Chain, store: Any) -> None:
    payer = Key.new()
    chain.add_key(payer)
    chain.mint(payer.address, 10)
    chain.approve_permit2(payer, 3)
    with xv.ChainReader(chain.url, timeout=30.0, negative_ttl=0) as reader:
        v = xv.Verifier(networks=[NETWORK], chain_readers={NETWORK: reader}, nonce_store=store)
        results = v.verify_batch([permit2_payment(chain, payer.address, payer, 1).item for _ in range(10)])
    assert len(accepted(results)) == 3


def test_two_processes_sharing_redis_accept_exactly_the_balance(chain: Chain, shared_redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    payer = Key.new()
    chain.mint(payer.address, 10)
    payments = [eip3009_payment(chain, payer.address, payer, 1) for _ in range(100)]
    prefix = f"p{secrets.token_hex(4)}:"
    workers = []
    for half in (payments[::2], payments[1::2]):
        job = tmp_path / f"job{len(workers)}.json"
        job.write_text(json.dumps({"rpc": chain.url, "redis": shared_redis_server.url, "prefix": prefix, "items": [p.item for p in half]}))
        workers.append(subprocess.Popen([sys.executable, str(HERE / "chain" / "exposure_worker.py"), str(job)], stdout=subprocess.PIPE, text=True))
    counts = []
    for w in workers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0
        counts.append(json.loads(out))
    assert sum(c["accepted"] for c in counts) == 10
    assert all(set(c["refused"]) <= {"payer_exposure_exceeded"} for c in counts)
    store = xv.RedisNonceStore(shared_redis_server.url, prefix=prefix)
    try:
        assert store.outstanding(8453, chain.token, payer.address) == 10
    finally:
        store.client.close()


def test_a_redis_cluster_is_refused_for_chain_checks(chain: Chain) -> None:
    class FakeCluster:  # only the attribute the verifier reads: no server is contacted
        cluster = True

        def reserve_exposed(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("not reached")

    with xv.ChainReader(chain.url) as reader, pytest.raises(ValueError, match="single Redis server"):
        xv.Verifier(chain_readers={NETWORK: reader}, nonce_store=FakeCluster())


def test_a_lagging_read_still_counts_a_settled_amount(store: Any) -> None:
    from x402_verify.chain.exposure import EXPOSED, Exposure, MemoryExposureStore, ledger_id

    s = MemoryExposureStore(store) if isinstance(store, xv.MemoryNonceStore) else store
    token, payer = "0x" + "11" * 20, "0x" + "22" * 20
    ledger = ledger_id(8453, token, payer)
    now = 1_800_000_000
    first, second, third = (secrets.token_bytes(32) for _ in range(3))
    # Balance 10: one payment of 10 is reserved, settles in block 100.
    assert s.reserve_exposed([first], [now + 600], ["a"], [None], [Exposure(ledger, 10, 10, 99)], now=now) == [True]
    s.settle(first, "a", now=now)
    s.settle_exposure(first, "a", ledger, 100, now=now)
    assert s.outstanding(8453, token, payer, now=now, as_of_block=100) == 0
    assert s.outstanding(8453, token, payer, now=now, as_of_block=99) == 10
    # A read at block 101 says the balance is 0: nothing more. A lagging node's read at block 98
    # still shows 10, but the settled 10 counts against it.
    assert s.reserve_exposed([second], [now + 600], ["b"], [None], [Exposure(ledger, 1, 0, 101)], now=now) == [EXPOSED]
    assert s.reserve_exposed([second], [now + 600], ["b"], [None], [Exposure(ledger, 1, 10, 98)], now=now) == [EXPOSED]
    # Once the payer is funded again (a read at 102 shows 5), 5 fit.
    assert s.reserve_exposed([second, third], [now + 600] * 2, ["b", "c"], [None] * 2, [Exposure(ledger, 5, 5, 102)] * 2, now=now) == [True, EXPOSED]
    # Released and expired entries leave; amounts are exact beyond 2**53.
    s.release(second, "b", now=now)
    big = 10**24
    assert s.reserve_exposed([third], [now + 600], ["c"], [None], [Exposure(ledger, big, big, 102)], now=now) == [True]
    assert s.outstanding(8453, token, payer, now=now, as_of_block=102) == big
    assert s.reserve_exposed([secrets.token_bytes(32)], [now + 600], ["d"], [None], [Exposure(ledger, 1, big, 102)], now=now) == [EXPOSED]
    assert s.outstanding(8453, token, payer, now=now + 10_000, as_of_block=102) == 0


def test_an_upto_session_counts_its_cap_until_settled_then_its_charge(store: Any) -> None:
    from x402_verify.chain.exposure import Exposure, MemoryExposureStore, ledger_id

    s = MemoryExposureStore(store) if isinstance(store, xv.MemoryNonceStore) else store
    token, payer = "0x" + "33" * 20, "0x" + "44" * 20
    ledger = ledger_id(8453, token, payer)
    now = 1_800_000_000
    key = secrets.token_bytes(32)
    assert s.reserve_exposed([key], [now + 600], ["a"], [8], [Exposure(ledger, 8, 10, 50)], now=now) == [True]
    s.charge(key, "a", 3, now=now)
    assert s.outstanding(8453, token, payer, now=now, as_of_block=50) == 8  # the cap, until settled
    total = s.settle(key, "a", now=now)
    s.settle_exposure(key, "a", ledger, 60, now=now)
    assert total == 3
    assert s.outstanding(8453, token, payer, now=now, as_of_block=59) == 3  # the charge, until seen
    assert s.outstanding(8453, token, payer, now=now, as_of_block=60) == 0
