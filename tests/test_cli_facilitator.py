"""`x402-verify verify`, `x402-verify serve` (flags, environment, the embedded default) and
`x402-verify bench --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from http_servers import ServeProcess
from payments import sign_payment


def run(*args: str, stdin: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "x402_verify", *args], input=stdin, capture_output=True, text=True, timeout=300, check=False, cwd=cwd, env=env)


def test_verify_valid_invalid_and_usage(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    req = tmp_path / "req.json"
    req.write_text(json.dumps(p.requirements), encoding="utf-8")
    ok = run("verify", p.header, "--requirements", str(req))
    assert ok.returncode == 0 and ok.stdout.startswith("valid: exact_eip3009 payment of 10000 from 0x"), ok
    as_json = run("verify", p.header, "--requirements", "-", "--json", stdin=json.dumps(p.requirements))
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["isValid"] is True
    wrong = run("verify", p.header, "--requirements", "-", stdin=json.dumps({**p.requirements, "amount": "20000"}))
    assert wrong.returncode == 1 and wrong.stdout.startswith("invalid: ") and "authorization.value" in wrong.stdout, wrong.stdout
    late = run("verify", p.header, "--requirements", str(req), "--json", "--now", str(int(time.time()) + 3600))
    assert late.returncode == 1 and json.loads(late.stdout)["invalidReason"] == "invalid_exact_evm_payload_authorization_valid_before"
    net = run("verify", p.header, "--requirements", str(req), "--network", "eip155:8453")
    assert net.returncode == 1 and "invalid_network" in net.stdout
    assert run("verify", p.header, "--requirements", "-", stdin="{not json").returncode == 2
    assert run("verify", p.header, "--requirements", str(tmp_path / "missing.json")).returncode == 2
    assert run("verify", p.header).returncode == 2  # --requirements is required


def test_serve_help_lists_every_flag_with_its_environment_variable() -> None:
    out = run("serve", "--help").stdout
    for flag in ("--host", "--port", "--workers", "--network", "--store", "--upstream", "--auth-token", "--max-body-bytes", "--request-timeout", "--checks"):
        assert flag in out
        assert "X402_VERIFY_" + flag[2:].upper().replace("-", "_") in out
    assert "sqlite:///x402-verify.sqlite3" in out


def test_serve_starts_on_the_embedded_default_and_reads_the_environment(tmp_path: Path) -> None:
    # No store flag: the durable SQLite file in the working directory; the port from the environment.
    server = ServeProcess([], env={"X402_VERIFY_NETWORK": "eip155:84532", "X402_VERIFY_AUTH_TOKEN": "tok"}, cwd=str(tmp_path))
    try:
        assert server.ready_line == f"x402-verify listening on {server.url}"
        kinds = httpx.get(server.url + "/supported", timeout=10).json()["kinds"]
        assert {k["network"] for k in kinds} == {"eip155:84532", "base-sepolia"}
        assert httpx.post(server.url + "/verify", json={}, timeout=10).status_code == 401
    finally:
        server.stop()
    assert (tmp_path / "x402-verify.sqlite3").is_file()


def test_serve_refuses_bad_flags_and_environment() -> None:
    assert run("serve", "--store", "mysql://x").returncode == 2
    assert run("serve", "--network", "eip155:*").returncode == 2
    import os

    p = run("serve", env={**os.environ, "X402_VERIFY_PORT": "not-a-port"})
    assert p.returncode == 2 and "X402_VERIFY_PORT" in p.stderr
    assert run("serve", "--checks", "sideways").returncode == 2
    p = run("serve", env={**os.environ, "X402_VERIFY_CHECKS": "sideways"})
    assert p.returncode == 2 and "X402_VERIFY_CHECKS" in p.stderr


def test_serve_hands_its_flags_to_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from x402_verify import cli
    from x402_verify.facilitator import server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve", lambda config, **kw: seen.update(config=config, **kw))
    monkeypatch.setenv("X402_VERIFY_MAX_BATCH", "32")
    assert cli.main(["serve", "--store", "memory://", "--checks", "threads", "--port", "9999"]) == 0
    config = seen["config"]
    assert (config.checks, config.max_batch, config.store, seen["port"], seen["workers"]) == ("threads", 32, "memory://", 9999, 1)
    assert cli.main(["serve", "--store", "memory://", "--port", "9999"]) == 0
    assert seen["config"].checks == "auto"


def test_bench_json() -> None:
    p = run("bench", "--items", "200", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["wrong_verdicts"] == 0 and report["items"] == 200
    assert {r["kind"] for r in report["recover"]} == {"permit2", "eip3009"}
    assert all(r["items_per_second"] > 0 for r in report["recover"] + report["verify"])
    assert all(rate is not None and rate > 0 for rate in report["sdk_recover_items_per_second"].values())
