"""Faults fail closed: when the nonce store cannot answer, a valid payment is refused with
``nonce_store_unavailable`` (never accepted unreserved), and the verifier recovers once the
store is back.

- Redis killed (SIGKILL) or shut down (SIGTERM) mid-run, with verifications running in
  threads the whole time: after the process has exited, not one accept; settle / release raise
  ``NonceStoreError``; a restart on the same port -> a fresh payment is accepted again.
- Redis answering past the store's timeout (0.2 s): ``CLIENT PAUSE`` and ``DEBUG SLEEP`` from
  another connection -> refused within about the timeout; accepted again after.
- Redis refusing writes (``OOM`` under ``maxmemory`` + ``noeviction``) -> refused.
- SQLite locked by another writer past the store's timeout -> refused; an unusable path raises.
- SQLite durability: a subprocess reserves batches (and verifies and settles payments),
  printing each acknowledgement after the call returns, and is killed with SIGKILL mid-run;
  after reopening the file, every acknowledged key is still reserved (settled ones settled) and
  every acknowledged payment is refused as a replay.
- Any store that raises anything, or answers nonsense -> refused.
- ``MemoryNonceStore`` full -> refused (``None`` from the store); room again after expiry.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from redis_servers import RedisServer
from test_stores import FAC, REPLAY_REASON, close_store, requirements, sign_payment, verifier
from x402_verify import NonceStoreError

UNAVAILABLE = "nonce_store_unavailable"
FIXED_UNAVAILABLE = "replay protection could not answer; refused"
TIMEOUT = 0.2


def fresh(v: xv.Verifier, kind: str = "permit2") -> xv.VerifyResponse:
    now = int(time.time())
    p = sign_payment(kind, now)
    return v.verify(p.header, p.requirements, now=now)


@pytest.fixture
def redis_store(redis_server: RedisServer) -> Any:
    store = xv.RedisNonceStore(redis_server.url, timeout=TIMEOUT)
    yield store
    close_store(store)


# --------------------------------------------------------------------------------------------
# Redis down
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_redis_stopped_mid_run_refuses_and_recovers_after_restart(redis_server: RedisServer, redis_store: Any, how: str) -> None:
    v = verifier(redis_store)
    held = fresh(v)
    assert held.is_valid
    # Payments signed ahead of time, so the threads below only verify.
    now = int(time.time())
    pool = [sign_payment(("eip3009", "permit2", "upto")[i % 3], now) for i in range(600)]
    log: list[tuple[float, float, str | None]] = []  # (started, ended, reason)
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(worker: int) -> None:
        for p in pool[worker::3]:
            if stop.is_set():
                return
            started = time.monotonic()
            r = v.verify(p.header, p.requirements, now=now)
            with lock:
                log.append((started, time.monotonic(), r.invalid_reason))
            time.sleep(0.002)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.15)
    if how == "sigkill":
        redis_server.kill()
    else:
        redis_server.stop()
    exited = time.monotonic()  # the process has exited: nothing can have reserved after this
    assert not redis_server.running
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    before = [reason for started, ended, reason in log if ended < exited]
    after = [reason for started, ended, reason in log if started > exited]
    assert before and None in before  # it was accepting while Redis was up
    assert after, "no verification ran after the server exited"
    assert set(after) == {UNAVAILABLE}, sorted(map(str, set(after)))
    # Every answer at all is an accept or the store's refusal, never anything else.
    assert {reason for *_, reason in log} <= {None, UNAVAILABLE}
    # The lifecycle calls raise rather than pretend.
    with pytest.raises(NonceStoreError):
        v.settle(held)
    with pytest.raises(NonceStoreError):
        v.release(held)
    with pytest.raises(NonceStoreError):
        redis_store.state(held.replay_key)
    # Back on the same port (empty: this server keeps nothing on disk): accepted again.
    redis_server.start(fixed_port=True)
    results = [fresh(v, kind) for kind in ("eip3009", "permit2", "upto")]
    assert [r.invalid_reason for r in results] == [None, None, None]


def test_redis_never_started_refuses() -> None:
    from redis_servers import free_port

    store = xv.RedisNonceStore(f"redis://127.0.0.1:{free_port()}/0", timeout=TIMEOUT)
    try:
        r = fresh(verifier(store))
        assert (r.is_valid, r.invalid_reason) == (False, UNAVAILABLE)
        assert r.reservation is None
    finally:
        close_store(store)


# --------------------------------------------------------------------------------------------
# Redis slow
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stall", ["client-pause", "debug-sleep"])
def test_redis_slower_than_the_timeout_refuses_and_recovers(redis_server: RedisServer, redis_store: Any, stall: str) -> None:
    v = verifier(redis_store)
    assert fresh(v).is_valid  # the store's connection is open before the stall
    other = redis_server.client()
    staller = None
    try:
        if stall == "client-pause":
            other.execute_command("CLIENT", "PAUSE", 1500)  # every client's commands wait 1.5 s
        else:
            staller = threading.Thread(target=other.execute_command, args=("DEBUG", "SLEEP", 1.5))
            staller.start()
            time.sleep(0.1)  # the server is now asleep
        stalled_until = time.monotonic() + 1.3
        for kind in ("eip3009", "permit2", "upto"):
            started = time.monotonic()
            r = fresh(v, kind)
            took = time.monotonic() - started
            assert (kind, r.invalid_reason) == (kind, UNAVAILABLE)
            assert took < TIMEOUT + 0.3  # the store's timeout holds
            assert time.monotonic() < stalled_until  # still inside the stall
        with pytest.raises(NonceStoreError):
            redis_store.state(b"\x00" * 32)
        if staller is not None:
            staller.join()
        while time.monotonic() < stalled_until + 0.4:
            time.sleep(0.05)
        assert [fresh(v, kind).invalid_reason for kind in ("eip3009", "permit2", "upto")] == [None, None, None]
    finally:
        if staller is not None:
            staller.join()
        other.close()


def test_redis_refusing_writes_oom_refuses(redis_server: RedisServer, redis_store: Any, caplog: pytest.LogCaptureFixture) -> None:
    v = verifier(redis_store)
    assert fresh(v).is_valid
    admin = redis_server.client()
    try:
        admin.config_set("maxmemory", 1)  # below what the server already uses: writes get OOM
        assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        with caplog.at_level("WARNING", logger="x402_verify.stores"):
            r = fresh(v)
        assert r.invalid_reason == UNAVAILABLE
        # The client gets the fixed text; the operator's log gets the detail.
        assert r.invalid_message == FIXED_UNAVAILABLE
        assert "OutOfMemoryError" in caplog.text
        admin.config_set("maxmemory", 0)
        assert fresh(v).is_valid
    finally:
        admin.close()


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------


def test_sqlite_locked_past_its_timeout_refuses(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite3"
    store = xv.SqliteNonceStore(path, timeout=TIMEOUT)
    v = verifier(store)
    assert fresh(v).is_valid
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        r = fresh(v)
        assert r.invalid_reason == UNAVAILABLE
        assert time.monotonic() - started < TIMEOUT + 1.0
        blocker.execute("COMMIT")
        assert fresh(v).is_valid
    finally:
        blocker.close()
        store.close()


# The crashing writer: acknowledges on stdout only after the store call returned.
DURABILITY_CHILD = r"""
import json, secrets, sys
import x402_verify as xv
path, pays_file = sys.argv[1], sys.argv[2]
pays = json.load(open(pays_file))
store = xv.SqliteNonceStore(path)
v = xv.Verifier(nonce_store=store, facilitator_addresses=[pays["fac"]])
i = 0
while True:
    keys = [secrets.token_bytes(32) for _ in range(16)]
    owners = [f"w{i}:{j}" for j in range(16)]
    assert store.reserve_many(keys, [pays["until"]] * 16, owners) == [True] * 16
    print("R", i, ",".join(k.hex() for k in keys), flush=True)
    store.settle(keys[0], owners[0])
    print("S", i, keys[0].hex(), flush=True)
    if i < len(pays["items"]):
        header, req = pays["items"][i]
        r = v.verify(header, req, now=pays["now"])
        assert r.is_valid, r.invalid_reason
        print("V", i, r.replay_key.hex(), r.reservation, flush=True)
        if i % 2:
            v.settle(r, now=pays["now"])
            print("P", i, flush=True)
    i += 1
"""


@pytest.mark.parametrize("round_", range(3))
def test_sqlite_reservations_survive_sigkill(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "nonces.sqlite3"
    now = int(time.time())
    items = [sign_payment(("eip3009", "permit2", "upto")[i % 3], now) for i in range(400)]
    pays_file = tmp_path / "pays.json"
    pays_file.write_text(json.dumps({"fac": FAC, "now": now, "until": now + 3600, "items": [(p.header, p.requirements) for p in items]}))
    child = subprocess.Popen([sys.executable, "-c", DURABILITY_CHILD, str(path), str(pays_file)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    lines: list[str] = []
    try:
        # Let it write for a while (a different number of acknowledgements each round), then
        # kill it with no warning while it is in the middle of its next call.
        target = 40 + 37 * round_
        while len(lines) < target:
            line = child.stdout.readline()
            assert line, f"the writer died early (exit {child.poll()})"
            lines.append(line)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        lines += child.stdout.readlines()  # what it acknowledged before it died
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    acked = [line.split() for line in lines if line.endswith("\n")]
    reserved = {bytes.fromhex(k): f"w{i}:{j}" for tag, i, keys in (a for a in acked if a[0] == "R") for j, k in enumerate(keys.split(","))}
    settled = {bytes.fromhex(a[2]) for a in acked if a[0] == "S"}
    verified = {int(a[1]): (bytes.fromhex(a[2]), a[3]) for a in acked if a[0] == "V"}
    paid = {int(a[1]) for a in acked if a[0] == "P"}
    assert len(reserved) >= 16 * 3 and verified and paid

    # "Restart": a new store object, new connections, on the same file.
    store = xv.SqliteNonceStore(path)
    try:
        conn = store._conn()  # the store's own connection: its durability settings
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: fsync per commit
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        missing = [k.hex() for k, owner in reserved.items() if (store.state(k) or ("", "", 0, 0))[1] != owner]
        assert not missing, f"{len(missing)} acknowledged reservations lost: {missing[:3]}"
        for k in settled:
            assert store.state(k)[0] == "settled"  # type: ignore[index]
        for i, (key, owner) in verified.items():
            assert store.state(key)[:2] == ("settled" if i in paid else "reserved", owner)  # type: ignore[index]
        v = verifier(store)
        replays = [v.verify(items[i].header, items[i].requirements, now=now).invalid_reason for i in verified]
        assert replays == [REPLAY_REASON[items[i].kind] for i in verified]
    finally:
        store.close()


def test_sqlite_unusable_path_raises(tmp_path: Path) -> None:
    with pytest.raises(NonceStoreError):
        xv.SqliteNonceStore(tmp_path / "no-such-dir" / "nonces.sqlite3")


# --------------------------------------------------------------------------------------------
# Any store failure
# --------------------------------------------------------------------------------------------


class Broken:
    """A store whose reserve_many raises ``exc`` or answers ``answer(keys)``."""

    def __init__(self, exc: BaseException | None = None, answer: Callable[[list[bytes]], Any] | None = None) -> None:
        self.exc, self.answer = exc, answer

    def reserve_many(self, keys: Any, valid_until: Any, owners: Any, caps: Any = None, *, now: Any = None) -> Any:
        if self.exc is not None:
            raise self.exc
        assert self.answer is not None
        return self.answer(list(keys))


FAULTS = {
    "NonceStoreError": Broken(NonceStoreError("down")),
    "RuntimeError": Broken(RuntimeError("bug")),
    "KeyError": Broken(KeyError("k")),
    "ValueError": Broken(ValueError("v")),
    "TimeoutError": Broken(TimeoutError()),
    "ConnectionError": Broken(ConnectionError()),
    "OSError": Broken(OSError(5, "EIO")),
    "sqlite3.Error": Broken(sqlite3.OperationalError("database is locked")),
    "ReservationError": Broken(xv.ReservationError("reservation_not_found", "odd")),
    "None (full)": Broken(answer=lambda keys: [None] * len(keys)),
    "too few answers": Broken(answer=lambda keys: [True] * (len(keys) - 1)),
    "too many answers": Broken(answer=lambda keys: [True] * (len(keys) + 1)),
    "not a list": Broken(answer=lambda keys: None),
    "truthy non-bool": Broken(answer=lambda keys: [1] * len(keys)),
    "string": Broken(answer=lambda keys: ["True"] * len(keys)),
    "generator": Broken(answer=lambda keys: (True for _ in keys)),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_failing_store_fails_closed(fault: str) -> None:
    v = verifier(FAULTS[fault])
    now = int(time.time())
    pays = [sign_payment(kind, now) for kind in ("eip3009", "permit2", "upto")]
    junk = (pays[0].header, requirements("eip3009", amount=1))  # invalid before the store
    results = v.verify_batch([(p.header, p.requirements) for p in pays] + [junk], now=now)
    assert [r.invalid_reason for r in results] == [UNAVAILABLE] * 3 + ["invalid_exact_evm_payload_authorization_value_mismatch"]
    assert all(not r.is_valid and r.reservation is None for r in results)


def test_a_correct_answer_still_passes_through_the_fault_harness() -> None:
    """Control for the test above: the same harness with a well-behaved answer accepts."""
    v = verifier(Broken(answer=lambda keys: [True] * len(keys)))
    assert fresh(v).is_valid


# --------------------------------------------------------------------------------------------
# Memory store full
# --------------------------------------------------------------------------------------------


def test_memory_store_full_refuses_then_makes_room_after_expiry() -> None:
    store = xv.MemoryNonceStore(3, margin_seconds=10)
    v = verifier(store)
    now = int(time.time())
    short = [sign_payment("permit2", now, valid_for=20) for _ in range(2)]
    long = sign_payment("eip3009", now, valid_for=300)
    assert [v.verify(p.header, p.requirements, now=now).is_valid for p in [*short, long]] == [True] * 3
    assert len(store) == 3
    extra = [sign_payment(kind, now) for kind in ("eip3009", "permit2", "upto")]
    results = [v.verify(p.header, p.requirements, now=now) for p in extra]
    assert [r.invalid_reason for r in results] == [UNAVAILABLE] * 3
    assert store.reserve_many([b"\x01" * 32], [now + 100], ["o"], now=now) == [None]
    # A full store still answers replays of what it holds as replays.
    assert v.verify(long.header, long.requirements, now=now).invalid_reason == REPLAY_REASON["eip3009"]
    assert len(store) == 3
    # The two short entries expire at now + 30: reservations sweep them and fit again.
    later = now + 30
    results = [v.verify(p.header, p.requirements, now=later) for p in extra]
    assert [r.invalid_reason for r in results] == [None, None, UNAVAILABLE]
    assert len(store) == 3


def test_memory_store_rejects_a_zero_bound() -> None:
    with pytest.raises(ValueError):
        xv.MemoryNonceStore(0)


# --------------------------------------------------------------------------------------------
# What a client is told (issue 10 item 7)
# --------------------------------------------------------------------------------------------


def _client_text(results: list[xv.VerifyResponse]) -> str:
    return json.dumps([r.to_dict() for r in results])


def test_client_facing_messages_carry_no_store_internals(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``invalidMessage`` (which the README says to return to clients) is fixed text: no file
    path, host, port, script SHA, exception class name or echoed input. The operator's log
    gets the detail, truncated."""
    from redis_servers import free_port

    port = free_port()
    path = tmp_path / "secret-dir" / "nonces.sqlite3"
    path.parent.mkdir()
    sqlite_store = xv.SqliteNonceStore(path, timeout=TIMEOUT)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    long_key = "k" * 12_000
    stores = {
        "redis down": xv.RedisNonceStore(f"redis://127.0.0.1:{port}/0", timeout=TIMEOUT),
        "sqlite locked": sqlite_store,
        "store raising a long message": Broken(NonceStoreError(f"cannot reach {path} at 10.1.2.3:6379 for {long_key}")),
        "store raising anything": Broken(KeyError(long_key)),
    }
    try:
        for name, store in stores.items():
            caplog.clear()
            with caplog.at_level("WARNING", logger="x402_verify.stores"):
                now = int(time.time())
                pays = [sign_payment(kind, now) for kind in ("eip3009", "permit2", "upto")]
                results = verifier(store).verify_batch([(p.header, p.requirements) for p in pays], now=now)
            assert [r.invalid_reason for r in results] == [UNAVAILABLE] * 3, name
            assert {r.invalid_message for r in results} == {FIXED_UNAVAILABLE}, name
            text = _client_text(results)
            for secret in (str(port), "127.0.0.1", "secret-dir", "10.1.2.3", "kkkk", "Error", "sqlite", "redis"):
                assert secret not in text, (name, secret)
            assert caplog.records, name  # the detail went to the log ...
            assert all(len(rec.getMessage()) < 1_000 for rec in caplog.records), name  # ... bounded
    finally:
        blocker.execute("COMMIT")
        blocker.close()
        for store in stores.values():
            if hasattr(store, "close"):
                store.close()


def test_replay_verdicts_carry_the_catalogue_text() -> None:
    store = xv.MemoryNonceStore()
    v = verifier(store)
    now = int(time.time())
    descriptions = {code: text for code, _kind, text in xv.error_codes()}
    for kind in ("eip3009", "permit2"):
        p = sign_payment(kind, now)
        assert v.verify(p.header, p.requirements, now=now).is_valid
        again = v.verify(p.header, p.requirements, now=now)
        assert again.invalid_message == descriptions[REPLAY_REASON[kind]]
