"""Batch law: ``recover_*_batch(xs, threads=t)[i] == recover_*(xs[i])`` for every t.

Valid items are signed with eth-account (typed data) and coincurve (digests); invalid ones are
made from them by one mutation. Order is kept, a bad item yields its error object in place,
and the batch releases the GIL while it works.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import x402_verify as xv
from payments import DELETE, edited, sign_typed_data, spec_eip3009_doc, spec_permit2_doc
from payments import SECP256K1_N as N
from x402_verify import SignaturePolicy, TypedDataError, X402VerifyError

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
THREADS = [1, 2, None]
POLICIES = [None, SignaturePolicy.eip3009(), SignaturePolicy.permit2(), SignaturePolicy(allow_v01=True, require_low_s=False)]

# --------------------------------------------------------------------------------------------
# A pool of valid items, signed once
# --------------------------------------------------------------------------------------------

PRIVATE_KEYS = [keccak(text=f"x402-verify batch test key {i}") for i in range(3)]
ADDRESSES = [Account.from_key(k).address for k in PRIVATE_KEYS]


def _typed_pool() -> list[tuple[dict[str, Any], bytes, str]]:
    pool = []
    for i in range(6):
        key = PRIVATE_KEYS[i % 3]
        signer = ADDRESSES[i % 3]
        if i % 2:
            doc = spec_eip3009_doc(from_=signer, value=10_000 * (i + 1), nonce="0x" + keccak(text=f"nonce {i}").hex())
        else:
            doc = spec_permit2_doc(amount=10_000 * (i + 1), nonce=int.from_bytes(keccak(text=f"nonce {i}"), "big"))
        sig = sign_typed_data(doc, key)
        pool.append((doc, sig, signer))
    return pool


def _hash_pool() -> list[tuple[bytes, bytes, str]]:
    pool = []
    for i in range(12):
        digest = keccak(text=f"digest {i}")
        rsv = PrivateKey(PRIVATE_KEYS[i % 3]).sign_recoverable(digest, hasher=None)
        pool.append((digest, rsv[:64] + bytes([rsv[64] + 27]), ADDRESSES[i % 3]))
    return pool


TYPED_POOL = _typed_pool()
HASH_POOL = _hash_pool()


def test_pool_is_valid() -> None:
    for doc, sig, signer in TYPED_POOL:
        assert xv.recover_typed_data(doc, sig) == signer
    for digest, sig, signer in HASH_POOL:
        assert xv.recover_hash(digest, sig) == signer


# --------------------------------------------------------------------------------------------
# Mutations that make an item invalid (or valid for someone else)
# --------------------------------------------------------------------------------------------


def _with_s(sig: bytes, s: int, v: int | None = None) -> bytes:
    return sig[:32] + s.to_bytes(32, "big") + bytes([sig[64] if v is None else v])


def _compact(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big") | ((sig[64] - 27) << 255)
    return sig[:32] + s.to_bytes(32, "big")


SIG_MUTATIONS: dict[str, Callable[[bytes], Any]] = {
    "as-is": lambda s: s,
    "hex": lambda s: "0x" + s.hex(),
    "bytearray": bytearray,
    "truncated": lambda s: s[:64],
    "compact": _compact,
    "extended": lambda s: s + b"\x00",
    "empty": lambda s: b"",
    "v=0/1": lambda s: s[:64] + bytes([s[64] - 27]),
    "v=29": lambda s: s[:64] + bytes([29]),
    "high-s twin": lambda s: _with_s(s, N - int.from_bytes(s[32:64], "big"), 55 - s[64]),
    "r=0": lambda s: bytes(32) + s[32:],
    "s=n": lambda s: _with_s(s, N),
    "no curve point": lambda s: (5).to_bytes(32, "big") + s[32:],
    "bit flip": lambda s: s[:10] + bytes([s[10] ^ 1]) + s[11:],
    "odd hex": lambda s: "0x" + s.hex()[:-1],
    "no 0x": lambda s: s.hex(),
    "not bytes": lambda s: 65,
    "none": lambda s: None,
}




def _dup_key_text(doc: dict[str, Any]) -> str:
    text = json.dumps(doc)
    return text.replace('"primaryType":', '"primaryType": "X", "primaryType":', 1)


DOC_MUTATIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "as-is": lambda d: d,
    "json str": json.dumps,
    "json bytes": lambda d: json.dumps(d).encode(),
    "json bytearray": lambda d: bytearray(json.dumps(d).encode()),
    "non-canonical": lambda d: edited(d, ("domain", "chainId"), "+84532"),
    "float": lambda d: edited(d, ("domain", "chainId"), 84532.0),
    "negative": lambda d: edited(d, ("domain", "chainId"), -1),
    "missing": lambda d: edited(d, ("domain", "name"), DELETE),
    "unknown": lambda d: edited(d, ("message", "extra"), "1"),
    "other chain": lambda d: edited(d, ("domain", "chainId"), 8453),  # valid, another signer
    "checksum": lambda d: edited(d, ("domain", "verifyingContract"), d["domain"]["verifyingContract"].swapcase().replace("0X", "0x")),
    "duplicate key": _dup_key_text,
    "invalid json": lambda d: json.dumps(d)[:-1],
    "too large": lambda d: json.dumps({**d, "pad": "x" * 300_000}),
    "not a document": lambda d: 12,
    "a list": lambda d: [d],
    "non-str key": lambda d: {**d, 1: 2},
    "a set": lambda d: {1},
    "deep": lambda d: edited(d, ("message",), _deep(300)),
}


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


NOT_PAIRS: list[Callable[[Any, Any], Any]] = [
    lambda a, b: (a,),
    lambda a, b: (a, b, b),
    lambda a, b: [a, b],
    lambda a, b: None,
    lambda a, b: a,
    lambda a, b: "ab",
    lambda a, b: (),
]


@st.composite
def typed_items(draw: st.DrawFn) -> Any:
    doc, sig, _ = draw(st.sampled_from(TYPED_POOL))
    kind = draw(st.sampled_from(["valid", "valid", "sig", "doc", "both", "swap", "not a pair"]))
    if kind == "swap":  # a valid signature of another document: recovers someone else
        _, sig, _ = draw(st.sampled_from(TYPED_POOL))
    if kind == "not a pair":
        return draw(st.sampled_from(NOT_PAIRS))(doc, sig)
    doc_form = draw(st.sampled_from(["as-is", "json str", "json bytes"])) if kind in ("valid", "swap", "sig") else None
    d = DOC_MUTATIONS[doc_form or draw(st.sampled_from(sorted(DOC_MUTATIONS)))](doc)
    s = SIG_MUTATIONS[draw(st.sampled_from(sorted(SIG_MUTATIONS))) if kind in ("sig", "both") else "as-is"](sig)
    return (d, s)


@st.composite
def hash_items(draw: st.DrawFn) -> Any:
    digest, sig, _ = draw(st.sampled_from(HASH_POOL))
    kind = draw(st.sampled_from(["valid", "valid", "sig", "digest", "swap", "not a pair"]))
    if kind == "swap":
        _, sig, _ = draw(st.sampled_from(HASH_POOL))
    if kind == "not a pair":
        return draw(st.sampled_from(NOT_PAIRS))(digest, sig)
    if kind == "digest":
        d: Any = draw(st.sampled_from([digest[:31], digest + b"\x00", "0x" + digest.hex(), digest.hex(), bytearray(digest),
                                        b"", None, 32, "0x" + digest.hex()[:-1], digest[::-1]]))  # fmt: skip
    else:
        d = draw(st.sampled_from([digest, "0x" + digest.hex(), bytearray(digest)]))
    s = SIG_MUTATIONS[draw(st.sampled_from(sorted(SIG_MUTATIONS))) if kind == "sig" else "as-is"](sig)
    return (d, s)


# --------------------------------------------------------------------------------------------
# The law
# --------------------------------------------------------------------------------------------

NOT_A_PAIR = object()


def single(fn: Callable[..., str], item: Any, **kwargs: Any) -> Any:
    """``fn(*item)`` as a value: the address, the library error, or a TypeError."""
    if not (isinstance(item, tuple) and len(item) == 2):
        return NOT_A_PAIR
    try:
        return fn(item[0], item[1], **kwargs)
    except (X402VerifyError, TypeError) as e:
        return e


def assert_same(batch_result: Any, single_result: Any, item: Any) -> None:
    where = f"item {item!r:.200}"
    if single_result is NOT_A_PAIR:
        assert isinstance(batch_result, TypedDataError) and batch_result.code == "invalid_input_type", where
    elif isinstance(single_result, TypeError):
        # The single call raises TypeError for a document of the wrong Python type; in a batch the
        # same refusal is an item error with the same message.
        assert isinstance(batch_result, TypedDataError), (batch_result, single_result, where)
        assert batch_result.code == "invalid_input_type", (batch_result, where)
        assert batch_result.message == str(single_result), (batch_result, single_result, where)
    elif isinstance(single_result, X402VerifyError):
        # Errors compare by type, code, message and path.
        assert type(batch_result) is type(single_result), (batch_result, single_result, where)
        assert batch_result == single_result, (batch_result, single_result, where)
        assert (batch_result.code, batch_result.message, batch_result.path) == (
            single_result.code,
            single_result.message,
            single_result.path,
        )
    else:
        assert isinstance(single_result, str)
        assert batch_result == single_result, (batch_result, single_result, where)


@PROPERTY
@given(items=st.lists(typed_items(), max_size=40), policy=st.sampled_from(POLICIES))
def test_typed_data_batch_equals_single_calls(items: list[Any], policy: SignaturePolicy | None) -> None:
    expected = [single(xv.recover_typed_data, item, policy=policy) for item in items]
    for threads in THREADS:
        got = xv.recover_typed_data_batch(items, policy=policy, threads=threads)
        assert isinstance(got, list) and len(got) == len(items)
        for g, e, item in zip(got, expected, items, strict=True):
            assert_same(g, e, item)
    # Any iterable will do, generators included.
    from_generator = xv.recover_typed_data_batch((item for item in items), policy=policy, threads=2)
    for g, e, item in zip(from_generator, expected, items, strict=True):
        assert_same(g, e, item)


@PROPERTY
@given(items=st.lists(hash_items(), max_size=40), policy=st.sampled_from(POLICIES))
def test_hash_batch_equals_single_calls(items: list[Any], policy: SignaturePolicy | None) -> None:
    expected = [single(xv.recover_hash, item, policy=policy) for item in items]
    for threads in THREADS:
        got = xv.recover_hash_batch(items, policy=policy, threads=threads)
        assert isinstance(got, list) and len(got) == len(items)
        for g, e, item in zip(got, expected, items, strict=True):
            assert_same(g, e, item)
    from_generator = xv.recover_hash_batch((item for item in items), policy=policy, threads=None)
    for g, e, item in zip(from_generator, expected, items, strict=True):
        assert_same(g, e, item)


@PROPERTY
@given(items=st.lists(typed_items(), max_size=20), max_bytes=st.sampled_from([200, 1500, 3000, 10**6]))
def test_typed_data_batch_honours_max_bytes_like_single_calls(items: list[Any], max_bytes: int) -> None:
    expected = [single(xv.recover_typed_data, item, max_bytes=max_bytes) for item in items]
    for threads in THREADS:
        for g, e, item in zip(xv.recover_typed_data_batch(items, max_bytes=max_bytes, threads=threads), expected, items, strict=True):
            assert_same(g, e, item)


def test_every_mutation_in_one_batch() -> None:
    # Deterministic coverage of each mutation (hypothesis samples them; this names them all).
    typed: list[Any] = []
    for doc, sig, _ in TYPED_POOL[:2]:
        typed += [(doc_mut(doc), SIG_MUTATIONS["as-is"](sig)) for doc_mut in DOC_MUTATIONS.values()]
        typed += [(doc, sig_mut(sig)) for sig_mut in SIG_MUTATIONS.values()]
        typed += [make(doc, sig) for make in NOT_PAIRS]
    hashed: list[Any] = []
    for digest, sig, _ in HASH_POOL[:2]:
        hashed += [(digest, sig_mut(sig)) for sig_mut in SIG_MUTATIONS.values()]
        hashed += [make(digest, sig) for make in NOT_PAIRS]
    for policy in POLICIES:
        want_typed = [single(xv.recover_typed_data, item, policy=policy) for item in typed]
        want_hashed = [single(xv.recover_hash, item, policy=policy) for item in hashed]
        for threads in THREADS:
            got_typed = xv.recover_typed_data_batch(typed, policy=policy, threads=threads)
            got_hashed = xv.recover_hash_batch(hashed, policy=policy, threads=threads)
            for g, e, item in zip(got_typed, want_typed, typed, strict=True):
                assert_same(g, e, item)
            for g, e, item in zip(got_hashed, want_hashed, hashed, strict=True):
                assert_same(g, e, item)


def test_order_is_kept_in_large_batches() -> None:
    # Many more items than threads and than rayon's split size; each item's answer is its own.
    items = [(d, s) for d, s, _ in HASH_POOL] * 40
    signers = [a for _, _, a in HASH_POOL] * 40
    bad_at = set(range(3, len(items), 7))
    for i in bad_at:
        items[i] = (items[i][0][:31], items[i][1])
    for threads in THREADS:
        got = xv.recover_hash_batch(items, threads=threads)
        assert len(got) == len(items)
        for i, r in enumerate(got):
            if i in bad_at:
                assert isinstance(r, X402VerifyError) and r.code == "invalid_digest", (i, r)
            else:
                assert r == signers[i], i
    typed = [(d, s) for d, s, _ in TYPED_POOL] * 20
    typed_signers = [a for _, _, a in TYPED_POOL] * 20
    for threads in THREADS:
        assert xv.recover_typed_data_batch(typed, threads=threads) == typed_signers


def test_one_bad_item_does_not_poison_the_others() -> None:
    (d0, s0, a0), (d1, s1, a1) = TYPED_POOL[:2]
    got = xv.recover_typed_data_batch([(d0, s0), ({"types": 1}, s1), (d1, s1), (d1, b""), (d0, s0)], threads=2)
    assert got[0] == a0 and got[2] == a1 and got[4] == a0
    assert isinstance(got[1], TypedDataError) and got[1].code == "invalid_typed_data"
    assert isinstance(got[3], X402VerifyError) and got[3].code == "invalid_signature_length"


@pytest.mark.parametrize("threads", THREADS)
def test_empty_batches(threads: int | None) -> None:
    assert xv.recover_typed_data_batch([], threads=threads) == []
    assert xv.recover_hash_batch([], threads=threads) == []
    assert xv.recover_hash_batch(iter(()), threads=threads) == []
    assert xv.recover_typed_data_batch((x for x in [(b"{}", b"")][:0]), threads=threads) == []


def test_threads_zero_is_a_value_error() -> None:
    for items in ([], [(HASH_POOL[0][0], HASH_POOL[0][1])]):
        with pytest.raises(ValueError) as info:
            xv.recover_hash_batch(items, threads=0)
        assert not isinstance(info.value, X402VerifyError)
    with pytest.raises(ValueError) as info2:
        xv.recover_typed_data_batch([(TYPED_POOL[0][0], TYPED_POOL[0][1])], threads=0)
    assert not isinstance(info2.value, X402VerifyError)


def test_generators_as_items() -> None:
    def typed() -> Iterator[tuple[Any, bytes]]:
        for doc, sig, _ in TYPED_POOL:
            yield doc, sig

    def hashed() -> Iterator[tuple[bytes, bytes]]:
        for digest, sig, _ in HASH_POOL:
            yield digest, sig

    assert xv.recover_typed_data_batch(typed()) == [a for _, _, a in TYPED_POOL]
    assert xv.recover_hash_batch(hashed(), threads=1) == [a for _, _, a in HASH_POOL]
    # The generator's own exception propagates as itself.
    def failing() -> Iterator[tuple[bytes, bytes]]:
        yield HASH_POOL[0][0], HASH_POOL[0][1]
        raise LookupError("from the generator")

    with pytest.raises(LookupError, match="from the generator"):
        xv.recover_hash_batch(failing())


# --------------------------------------------------------------------------------------------
# GIL release
# --------------------------------------------------------------------------------------------
#
# Design. The switch interval is raised to 30 s and the garbage collector is paused, so while
# the main thread holds the GIL no other Python thread can be scheduled by preemption: another
# thread gets the GIL only when the main thread gives it up by itself (blocking I/O, a lock
# wait, or native code releasing it). An observer thread blocks on an Event; the main thread
# sets it and calls the batch. Between `go.set()` and reading `state["ran"]` right after the
# call returns, the main thread runs only the call itself (no lock waits, no I/O, no GC), so
# the observer can have run (and set `ran`) only if the batch released the GIL inside the
# call. With the GIL held throughout, `ran` is necessarily still False when it is read: the
# test cannot pass.
#
# There is no timing threshold. The one way it can fail spuriously is if the OS does not
# schedule the woken observer before the batch finishes; the batch is made long (thousands of
# recoveries, ~0.2 s or more) and each attempt is sound on its own, so a few attempts are made.
# (On a free-threaded build the observer could run anyway; the GIL question does not arise.)

GIL_ATTEMPTS = 3


def _observer_ran_during(call: Callable[[], list[Any]]) -> tuple[bool, list[Any]]:
    go = threading.Event()
    finish = threading.Event()
    state: dict[str, Any] = {"ran": False, "work": 0}

    def observer() -> None:
        go.wait()
        state["ran"] = True  # needs the GIL
        total = 0
        for i in range(10_000):  # some real Python progress
            total += i
        state["work"] = total
        finish.wait()

    old_interval = sys.getswitchinterval()
    gc_was_enabled = gc.isenabled()
    thread = threading.Thread(target=observer, daemon=True)
    thread.start()  # returns once the observer is running; it then blocks on `go`
    sys.setswitchinterval(30.0)
    gc.disable()
    try:
        go.set()
        result = call()
        ran = state["ran"]  # read before anything that could give the GIL away
    finally:
        sys.setswitchinterval(old_interval)
        if gc_was_enabled:
            gc.enable()
        finish.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    if ran:
        assert state["work"] == sum(range(10_000))
    return ran, result


@pytest.mark.parametrize("threads", [1, None])
def test_hash_batch_releases_the_gil(threads: int | None) -> None:
    items = [(d, s) for d, s, _ in HASH_POOL] * 250  # 3000 recoveries
    signers = [a for _, _, a in HASH_POOL] * 250
    outcomes = []
    for _ in range(GIL_ATTEMPTS):
        ran, result = _observer_ran_during(lambda: xv.recover_hash_batch(items, threads=threads))
        assert result == signers
        outcomes.append(ran)
        if ran:
            break
    assert any(outcomes), "another Python thread never ran while recover_hash_batch worked: the GIL was held"


def test_typed_data_batch_releases_the_gil() -> None:
    items = [(json.dumps(d), s) for d, s, _ in TYPED_POOL] * 400  # parsing and hashing happen without the GIL
    signers = [a for _, _, a in TYPED_POOL] * 400
    outcomes = []
    for _ in range(GIL_ATTEMPTS):
        ran, result = _observer_ran_during(lambda: xv.recover_typed_data_batch(items, threads=1))
        assert result == signers
        outcomes.append(ran)
        if ran:
            break
    assert any(outcomes), "another Python thread never ran while recover_typed_data_batch worked: the GIL was held"


def test_gil_probe_detects_a_call_that_holds_the_gil() -> None:
    # The control: a call that keeps the GIL (pure Python busy work) must read as "held".
    def busy() -> list[Any]:
        total = 0
        for i in range(300_000):
            total += i
        return [total]

    ran, _ = _observer_ran_during(busy)
    assert not ran
    # And native code that keeps the GIL (C sorting, C json), however long it runs.
    data = list(range(400_000, 0, -1))
    ran, _ = _observer_ran_during(lambda: [sorted(data), json.dumps(data)])
    assert not ran
