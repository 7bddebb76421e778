"""Replay protection of the service across worker processes and restarts: ``x402-verify serve``
with two workers, fifty concurrent ``/verify`` of one payment from two client processes (SQLite,
Redis, a Redis Cluster), ``kill -9`` of the server after a valid ``/verify``, and on the Redis
Cluster ``/release`` freeing a reservation, concurrent ``/settle`` of one payment settling it
once, then the cluster killed: every answer a refusal."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from http_servers import chain, facilitator_app, facilitator_service, sdk_facilitator, serve, verify_body
from payments import sign_payment
from x402_verify import _core

CLIENT = r"""
import asyncio, json, sys, time
import httpx
url, body, n, start_at = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
async def main():
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=n), timeout=60) as c:
        while time.time() < start_at:
            await asyncio.sleep(0.005)
        answers = await asyncio.gather(*(c.post(url + "/verify", json=body) for _ in range(n)))
    print(json.dumps([[a.status_code, a.json()] for a in answers]))
asyncio.run(main())
"""


def burst_from_two_processes(url: str, body: dict[str, Any], per_process: int = 25) -> list[tuple[int, dict[str, Any]]]:
    start_at = time.time() + 1.5  # both processes fire at the same moment
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, url, json.dumps(body), str(per_process), repr(start_at)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    out: list[tuple[int, dict[str, Any]]] = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        out += [(status, answer) for status, answer in json.loads(stdout)]
    return out


@pytest.mark.parametrize("kind", ["eip3009", "permit2", "upto"])
def test_fifty_concurrent_verifies_from_two_processes_sqlite_two_workers(tmp_path: Path, kind: str) -> None:
    with facilitator_service(["--store", f"sqlite:///{tmp_path / 'n.db'}", "--workers", "2"]) as service:
        p = sign_payment(kind, int(time.time()))
        answers = burst_from_two_processes(service.url, verify_body(p.payload, p.requirements))
    assert len(answers) == 50 and {s for s, _ in answers} == {200}
    assert Counter(a["isValid"] for _, a in answers) == {True: 1, False: 49}
    assert {a["invalidReason"] for _, a in answers if not a["isValid"]} == {_core.REPLAY_REASONS["eip3009" if kind == "eip3009" else "permit2"]}


def test_fifty_concurrent_verifies_from_two_processes_redis_two_workers(redis_server: Any) -> None:
    with facilitator_service(["--store", redis_server.url, "--workers", "2"]) as service:
        p = sign_payment("eip3009", int(time.time()))
        answers = burst_from_two_processes(service.url, verify_body(p.payload, p.requirements))
    assert {s for s, _ in answers} == {200}
    assert Counter(a["isValid"] for _, a in answers) == {True: 1, False: 49}


def cluster_store(cluster: Any) -> str:
    return f"redis+cluster://127.0.0.1:{cluster.ports[0]}"


@pytest.mark.parametrize("kind", ["eip3009", "upto"])
def test_fifty_concurrent_verifies_from_two_processes_redis_cluster_two_workers(redis_cluster: Any, kind: str) -> None:
    with facilitator_service(["--store", cluster_store(redis_cluster), "--workers", "2"]) as service:
        p = sign_payment(kind, int(time.time()))
        answers = burst_from_two_processes(service.url, verify_body(p.payload, p.requirements))
    assert len(answers) == 50 and {s for s, _ in answers} == {200}
    assert Counter(a["isValid"] for _, a in answers) == {True: 1, False: 49}
    assert {a["invalidReason"] for _, a in answers if not a["isValid"]} == {_core.REPLAY_REASONS["eip3009" if kind == "eip3009" else "permit2"]}


def test_kill_9_after_a_valid_verify_keeps_the_reservation_and_settle_finds_its_owner(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    store = ["--store", f"sqlite:///{tmp_path / 'n.db'}"]
    p = sign_payment("eip3009", int(time.time()))
    body = verify_body(p.payload, p.requirements)
    with facilitator_service(store) as first:
        assert httpx.post(first.url + "/verify", json=body, timeout=30).json()["isValid"] is True
        first.kill(9)  # SIGKILL, the whole process group: no shutdown, no flush
    with serve(facilitator_app(sdk_facilitator(chain()), calls)) as upstream:
        with facilitator_service([*store, "--upstream", upstream]) as second:
            again = httpx.post(second.url + "/verify", json=body, timeout=30).json()
            assert again["isValid"] is False and again["invalidReason"] == _core.REPLAY_REASONS["eip3009"]
            # The restarted process settles the reservation the killed one made (its owner is
            # read from the store), once.
            settled = httpx.post(second.url + "/settle", json=body, timeout=30).json()
            assert settled["success"] is True and settled["transaction"].startswith("0x")
            twice = httpx.post(second.url + "/settle", json=body, timeout=30).json()
            assert twice["success"] is False and twice["errorReason"] == _core.REPLAY_REASONS["eip3009"]
            assert twice["transaction"] == settled["transaction"]
    assert [name for name, _ in calls] == ["settle"]


def test_more_than_one_worker_with_the_memory_store_is_refused() -> None:
    p = subprocess.run([sys.executable, "-m", "x402_verify", "serve", "--store", "memory://", "--workers", "2"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "memory://" in p.stderr and "per process" in p.stderr


def test_on_a_redis_cluster_a_payment_settles_once_and_a_dead_cluster_fails_closed(redis_cluster: Any) -> None:
    """Last in this module: it kills the module's cluster."""
    calls: list[tuple[str, dict[str, Any]]] = []
    now = int(time.time())
    # EIP-3009 payments: the ones the stub chain behind the SDK's facilitator settles.
    verified, upfront, late, freed = (sign_payment("eip3009", now) for _ in range(4))
    bodies = [verify_body(p.payload, p.requirements) for p in (verified, upfront, late)]
    replay = _core.REPLAY_REASONS["eip3009"]
    auth = {"authorization": "Bearer t0ken"}  # /release needs one

    async def settle_concurrently(url: str, body: dict[str, Any], n: int) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=n), timeout=60, headers=auth) as c:
            answers = await asyncio.gather(*(c.post(url + "/settle", json=body) for _ in range(n)))
        assert {a.status_code for a in answers} == {200}
        return [a.json() for a in answers]

    def post(service: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.post(service.url + path, json=body, headers=auth, timeout=30).json()
        return answer

    with serve(facilitator_app(sdk_facilitator(chain()), calls)) as upstream:
        args = ["--store", cluster_store(redis_cluster), "--workers", "2", "--upstream", upstream, "--auth-token", "t0ken"]
        with facilitator_service(args) as service:
            # /release frees a reservation on the cluster (the owner read by store.state).
            free_body = verify_body(freed.payload, freed.requirements)
            assert post(service, "/verify", free_body)["isValid"] is True
            assert post(service, "/release", free_body) == {"released": True}
            assert post(service, "/verify", free_body)["isValid"] is True  # free again, and reserved again
            assert post(service, "/verify", bodies[0])["isValid"] is True
            # One verified, one never verified (the SDK's upfront flow): 10 concurrent /settle each,
            # spread over both workers, settle each once; the rest wait or are replays.
            for body in bodies[:2]:
                answers = asyncio.run(settle_concurrently(service.url, body, 10))
                wins = [a for a in answers if a["success"]]
                assert len(wins) == 1 and wins[0]["transaction"].startswith("0x"), answers
                assert {a["errorReason"] for a in answers if not a["success"]} <= {"settlement_pending", replay}
                again = post(service, "/settle", body)
                assert again["success"] is False and again["errorReason"] == replay
                assert again["transaction"] == wins[0]["transaction"]
            assert [name for name, _ in calls] == ["settle", "settle"]
            redis_cluster.kill()
            v = post(service, "/verify", bodies[2])
            assert v["isValid"] is False and v["invalidReason"] == "nonce_store_unavailable"
            for body in bodies:  # neither a fresh settlement nor a success reported again
                s = httpx.post(service.url + "/settle", json=body, headers=auth, timeout=30)
                assert s.status_code == 200 and s.json()["success"] is False
            assert post(service, "/release", free_body)["released"] is False
    assert [name for name, _ in calls] == ["settle", "settle"]
