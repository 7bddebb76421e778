"""Replay protection of ``x402-verify serve`` across processes, over real HTTP on loopback:
50 concurrent ``/verify`` of one payment from 2 client processes against 2 worker processes
give exactly 1 valid, with the SQLite store and with Redis; a valid ``/verify`` survives
``kill -9`` of the server (the payment is still reserved after a restart)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import facilitator_proc
import x402_verify as xv
from redis_servers import RedisServer, redis_server  # noqa: F401  (fixture)
from test_stores import REPLAY_REASON, sign_payment

PER_PROCESS = 25

# A client process: waits for a common start instant, then sends its copies of one body all
# at once (one thread each) and prints the verdicts.
CLIENT = r"""
import json, sys, threading, time, urllib.request
url, start_at, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
body = sys.stdin.buffer.read()
out = [None] * n
def send(i):
    req = urllib.request.Request(url + "/verify", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out[i] = [r.status, json.loads(r.read())]
threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
time.sleep(max(0.0, start_at - time.time()))
for t in threads: t.start()
for t in threads: t.join(90)
print(json.dumps(out))
"""


def fifty_at_once(url: str, body: bytes) -> list[list[object]]:
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, url, str(start_at), str(PER_PROCESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    answers: list[list[object]] = []
    for p in procs:
        out, _ = p.communicate(body, timeout=120)
        assert p.returncode == 0
        answers += json.loads(out)
    return answers


def one_valid(answers: list[list[object]], kind: str) -> None:
    assert len(answers) == 2 * PER_PROCESS and all(a is not None and a[0] == 200 for a in answers), answers
    verdicts = [a[1] for a in answers]
    assert sum(v["isValid"] for v in verdicts) == 1, verdicts  # type: ignore[index]
    assert {v.get("invalidReason") for v in verdicts if not v["isValid"]} == {REPLAY_REASON[kind]}  # type: ignore[index, union-attr]


def workers_seen(url: str) -> int:
    """How many worker processes answer (/health names its process)."""
    seen: set[int] = set()
    for _ in range(200):  # bounded; new connections land on either worker
        seen.add(httpx.get(url + "/health", timeout=10).json()["worker"])
        if len(seen) == 2:
            break
    return len(seen)


@pytest.mark.parametrize("kind", ["eip3009", "permit2"])
def test_fifty_concurrent_verifies_two_workers_sqlite(tmp_path: Path, kind: str) -> None:
    p = sign_payment(kind, int(time.time()))
    body = json.dumps({"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}).encode()
    with facilitator_proc.serving(tmp_path, "--workers", "2", "--store", f"sqlite://{tmp_path}/n.db", "--network", p.requirements["network"]) as s:
        one_valid(fifty_at_once(s.url, body), kind)
        assert workers_seen(s.url) == 2


def test_fifty_concurrent_verifies_two_workers_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    p = sign_payment("permit2", int(time.time()))
    body = json.dumps({"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}).encode()
    with facilitator_proc.serving(tmp_path, "--workers", "2", "--store", redis_server.url, "--network", "eip155:8453") as s:
        one_valid(fifty_at_once(s.url, body), "permit2")
        assert workers_seen(s.url) == 2
    # The reservation is Redis's: a second server on the same Redis sees it.
    with facilitator_proc.serving(tmp_path, "--store", redis_server.url, "--network", "eip155:8453") as s:
        again = httpx.post(s.url + "/verify", content=body, headers={"content-type": "application/json"}, timeout=30).json()
        assert (again["isValid"], again["invalidReason"]) == (False, "permit2_nonce_already_used")


def test_memory_store_refused_with_two_workers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "x402_verify", "serve", "--port", "0", "--workers", "2", "--store", "memory://"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "per process" in proc.stderr and proc.stdout == ""


def test_kill9_after_a_valid_verify_keeps_the_reservation(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    doc = {"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}
    args = ("--store", f"sqlite://{tmp_path}/n.db", "--network", "eip155:84532")
    served = facilitator_proc.start(tmp_path, *args)
    try:
        assert httpx.post(served.url + "/verify", json=doc, timeout=30).json()["isValid"] is True
    finally:
        served.kill9()
    key = xv.Verifier(nonce_store=None).verify(p.payload, p.requirements).replay_key
    assert key is not None
    state = xv.SqliteNonceStore(tmp_path / "n.db").state(key)
    assert state is not None and state[0] == "reserved"
    with facilitator_proc.serving(tmp_path, *args) as again:
        answer = httpx.post(again.url + "/verify", json=doc, timeout=30).json()
        assert (answer["isValid"], answer["invalidReason"]) == (False, "invalid_exact_evm_nonce_already_used")
        # With no upstream the settle finds the reservation (taken over through the store) and
        # reports that nothing can broadcast it; it is never accepted as a fresh payment.
        settled = httpx.post(again.url + "/settle", json=doc, timeout=30).json()
        assert (settled["success"], settled["errorReason"]) == (False, "no_settler")


def test_no_flags_at_all_starts_on_the_embedded_default(tmp_path: Path) -> None:
    with facilitator_proc.serving(tmp_path) as s:
        assert s.url.startswith("http://127.0.0.1:")
        assert httpx.get(s.url + "/health", timeout=10).json()["status"] == "ok"
        networks = {k["network"] for k in httpx.get(s.url + "/supported", timeout=10).json()["kinds"]}
        assert networks == {"eip155:8453", "eip155:84532", "base", "base-sepolia"}
    assert (tmp_path / "x402-verify.sqlite3").exists()  # the durable default, in the working directory


def test_flags_come_from_the_environment(tmp_path: Path) -> None:
    env = {"X402_VERIFY_NETWORKS": "eip155:1", "X402_VERIFY_STORE": f"sqlite://{tmp_path}/env.db", "X402_VERIFY_AUTH_TOKEN": "t0ken"}
    with facilitator_proc.serving(tmp_path, env=env) as s:
        networks = {k["network"] for k in httpx.get(s.url + "/supported", timeout=10).json()["kinds"]}
        assert networks == {"eip155:1", "ethereum"}
        assert httpx.post(s.url + "/verify", json={}, timeout=10).status_code == 401
        assert httpx.post(s.url + "/verify", json={}, headers={"Authorization": "Bearer t0ken"}, timeout=10).status_code == 400
    assert (tmp_path / "env.db").exists()
    # A flag wins over its variable.
    with facilitator_proc.serving(tmp_path, "--network", "base", env=env) as s:
        assert {k["network"] for k in httpx.get(s.url + "/supported", timeout=10).json()["kinds"]} == {"eip155:8453", "base"}
