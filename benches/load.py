"""Load-test plumbing for the facilitator benchmark: fast pre-signed request bodies, servers on
loopback ports, and wrk (Debian's ``wrk``) driving them with a Lua script that rotates the
bodies. Everything binds 127.0.0.1; every run is bounded in time; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import coincurve

import x402_verify as xv

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ROOT / "benches"
sys.path.insert(0, str(ROOT / "tests"))

from test_stores import FAC, OPG_BASE, PAY_TO, PAYER, PERMIT2, PRIVATE_KEY, USDC_BASE_SEPOLIA, requirements  # noqa: E402

CONTRACTS = [USDC_BASE_SEPOLIA, OPG_BASE, PERMIT2]
KINDS = ("eip3009", "permit2", "upto")
_KEY = coincurve.PrivateKey(PRIVATE_KEY)


def _typed(fields: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "type": t} for n, t in fields]


def _document(kind: str, auth: dict[str, Any]) -> dict[str, Any]:
    if kind == "eip3009":
        return {
            "types": {
                "EIP712Domain": _typed([("name", "string"), ("version", "string"), ("chainId", "uint256"), ("verifyingContract", "address")]),
                "TransferWithAuthorization": _typed(
                    [("from", "address"), ("to", "address"), ("value", "uint256"), ("validAfter", "uint256"), ("validBefore", "uint256"), ("nonce", "bytes32")]
                ),
            },
            "primaryType": "TransferWithAuthorization",
            "domain": {"name": "USDC", "version": "2", "chainId": 84532, "verifyingContract": USDC_BASE_SEPOLIA},
            "message": auth,
        }
    witness = [("to", "address")] + ([("facilitator", "address")] if kind == "upto" else []) + [("validAfter", "uint256")]
    return {
        "types": {
            "EIP712Domain": _typed([("name", "string"), ("chainId", "uint256"), ("verifyingContract", "address")]),
            "TokenPermissions": _typed([("token", "address"), ("amount", "uint256")]),
            "Witness": _typed(witness),
            "PermitWitnessTransferFrom": _typed(
                [("permitted", "TokenPermissions"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256"), ("witness", "Witness")]
            ),
        },
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2},
        "message": {k: v for k, v in auth.items() if k != "from"},
    }


def signed_bodies(kind: str, n: int, now: int, valid_for: int = 3600) -> list[bytes]:
    """``n`` distinct /verify bodies of one kind (random nonces), signed with coincurve over our
    digest (the same bytes eth-account signs; the tests check those with eth-account)."""
    req = requirements(kind)
    after, until = str(now - 60), str(now + valid_for)
    out = []
    for _ in range(n):
        if kind == "eip3009":
            auth: dict[str, Any] = {"from": PAYER, "to": PAY_TO, "value": req["amount"], "validAfter": after, "validBefore": until, "nonce": "0x" + secrets.token_hex(32)}
            member = "authorization"
        else:
            upto = kind == "upto"
            witness = {"to": PAY_TO, "facilitator": FAC, "validAfter": after} if upto else {"to": PAY_TO, "validAfter": after}
            auth = {
                "from": PAYER, "permitted": {"token": OPG_BASE, "amount": req["amount"]},
                "spender": xv.UPTO_PERMIT2_PROXY if upto else xv.EXACT_PERMIT2_PROXY,
                "nonce": str(secrets.randbits(256)), "deadline": until, "witness": witness,
            }  # fmt: skip
            member = "permit2Authorization"
        raw = _KEY.sign_recoverable(xv.hash_typed_data(_document(kind, auth)), hasher=None)
        sig = "0x" + (raw[:64] + bytes([27 + raw[64]])).hex()
        payload = {"x402Version": 2, "accepted": req, "payload": {"signature": sig, member: auth}}
        body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": req}
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer /health in {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCHES), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


@contextmanager
def ours(workers: int, store: str | None = None, server: str = "granian") -> Iterator[str]:
    """``x402-verify serve`` (granian); ``server="uvicorn"`` runs the same app factory under
    uvicorn instead, for the server choice."""
    tmp = tempfile.mkdtemp(prefix="x402-bench-")
    store = store or f"sqlite://{tmp}/nonces.db"
    args = ["--workers", str(workers), "--store", store, "--network", "eip155:84532", "--network", "eip155:8453", "--facilitator-address", FAC]
    port = free_port()
    if server == "granian":
        cmd = [sys.executable, "-m", "x402_verify", "serve", "--port", str(port), *args]
        env = _env()
    else:
        from dataclasses import asdict

        from x402_verify.cli import _parser, _serve_config

        config = _serve_config(_parser().parse_args(["serve", "--port", str(port), *args]))
        env = {**_env(), "X402_VERIFY__SERVE_CONFIG": json.dumps(asdict(config))}
        cmd = _uvicorn("x402_verify.facilitator.server:app_from_env", port, workers)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp)
    try:
        _wait_health(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _uvicorn(target: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning", "--backlog", "2048"]  # fmt: skip


def _granian(target: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--loop", "uvloop", "--http", "1", "--no-ws", "--backpressure", "1024",
            "--no-access-log", "--log-level", "warning", target]  # fmt: skip


@contextmanager
def anchor(factory: str, workers: int, server: str = "granian") -> Iterator[str]:
    """``facilitator_apps:<factory>`` under the same server and worker count as ours."""
    port = free_port()
    target = f"facilitator_apps:{factory}"
    cmd = _uvicorn(target, port, workers) if server == "uvicorn" else _granian(target, port, workers)
    proc = subprocess.Popen(cmd, env=_env(), cwd=BENCHES, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_health(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


LUA = r"""
local bodies, threads = {}, {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  step = tonumber(args[2])
  idx = id + 1
  valid, invalid, other = 0, 0, 0
end
function request()
  local body = bodies[idx]
  idx = idx + step
  if idx > #bodies then idx = (idx - 1) % #bodies + 1 end
  return wrk.format("POST", "/verify", {["Content-Type"] = "application/json"}, body)
end
function response(status, headers, body)
  if status ~= 200 then other = other + 1
  elseif string.find(body, '"isValid": true', 1, true) or string.find(body, '"isValid":true', 1, true) then valid = valid + 1
  else invalid = invalid + 1 end
end
function done(summary, latency, requests)
  local v, i, o = 0, 0, 0
  for _, t in ipairs(threads) do v = v + t:get("valid"); i = i + t:get("invalid"); o = o + t:get("other") end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "seconds": %.6f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "valid": %d, "invalid": %d, "non200": %d, "socket_errors": %d, "bodies": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90), latency:percentile(99), v, i, o,
    e.connect + e.read + e.write + e.timeout, #bodies))
end
"""


def wrk(url: str, bodies: Sequence[bytes], *, seconds: int, connections: int, threads: int = 1) -> dict[str, Any]:
    """One bounded wrk run against ``url/verify`` rotating ``bodies``; the figures as a dict."""
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="x402-wrk-") as tmp:
        script, data = Path(tmp) / "rotate.lua", Path(tmp) / "bodies.txt"
        script.write_text(LUA)
        data.write_bytes(b"\n".join(bodies) + b"\n")
        proc = subprocess.run(
            [wrk_bin, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s",
             "-s", str(script), url, "--", str(data), str(threads)],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
    line = next(line for line in proc.stdout.splitlines() if line.startswith("WRKJSON "))
    out: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    out["rps"] = out["requests"] / out["seconds"]
    return out
