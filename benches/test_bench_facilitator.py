"""Load benchmark of the facilitator service: ``/verify`` requests/s and p50/p99 under wrk.

Three servers, each under granian with the same workers, on loopback, in the same run:

- ``bare``: an ASGI endpoint that reads the body and answers ``{}`` (the server's own ceiling);
- ``ours``: ``x402-verify serve`` (SQLite store);
- ``sdk``: the x402 SDK's ``x402Facilitator`` (chain signer stubbed, tests/http_servers.py)
  behind its HTTP API (the shape tests/http_servers.facilitator_app serves).

The load generator is wrk (C, one thread a core, a Lua script cycling through a file of distinct
pre-signed bodies; once it wraps, payments repeat, which ours answers as replays after doing the
same checks and the SDK answers as valid again). Bounded: ``BENCH_SECONDS`` a run, loopback only.
Figures are printed and written to ``.benchmarks/facilitator.json``; the >= 5x target is
checked here (benches only) when ``BENCH_ASSERT_RATIO=1``.

    BENCH_SECONDS=5 python -m pytest benches/test_bench_facilitator.py -s -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(TESTS))

from http_servers import ServeProcess, free_port, verify_body  # noqa: E402
from payments import sign_payment  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
BODIES = int(os.environ.get("BENCH_BODIES", "2000"))
KINDS = ("eip3009", "permit2", "upto")

LUA = r"""
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODY_FILE")) do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/verify", {["Content-Type"] = "application/json"}, bodies[i])
end
"""


# --- the apps granian serves (imported by its workers: `test_bench_facilitator:sdk_app`) -----------


def bare_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def sdk_app() -> Any:
    from x402 import x402Facilitator
    from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
    from x402.mechanisms.evm.upto import UptoEvmFacilitatorScheme

    from http_servers import chain, facilitator_app
    from payments import OPG_BASE

    signer = chain()
    signer._contracts.add(OPG_BASE.lower())
    fac = x402Facilitator()
    networks = ["eip155:84532", "eip155:8453"]
    fac.register(networks, ExactEvmFacilitatorScheme(signer))
    fac.register(networks, UptoEvmFacilitatorScheme(signer))
    return facilitator_app(fac)


# --- plumbing ------------------------------------------------------------------------------------


@contextmanager
def granian(target: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(WORKERS), "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--http", "1", "--log-level", "warning", "--backlog", "2048", target]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=HERE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(url + "/verify", json={}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def wrk(url: str, body_file: Path, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=SECONDS + 60, env={**os.environ, "BENCH_BODY_FILE": str(body_file)}, check=True,
    ).stdout  # fmt: skip

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps, out
    return {"rps": float(rps.group(1)), "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": float(non2xx.group(1)) if non2xx else 0.0}


def bodies(kind: str, n: int, path: Path) -> Path:
    now = int(time.time())
    lines = []
    for _ in range(n):
        p = sign_payment(kind, now, valid_for=600)
        lines.append(json.dumps(verify_body(p.payload, p.requirements), separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_facilitator_verify_load(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the load generator wrk is needed (apt-get install wrk)"
    script = tmp_path / "cycle.lua"
    script.write_text(LUA, encoding="utf-8")
    files = {kind: bodies(kind, BODIES, tmp_path / f"{kind}.jsonl") for kind in KINDS}
    results: dict[str, Any] = {"seconds": SECONDS, "workers": WORKERS, "connections": CONNECTIONS, "bodies": BODIES}
    import httpx

    with granian("test_bench_facilitator:bare_app") as url:
        results["bare"] = wrk(url, files["eip3009"], script)
    for kind in KINDS:
        first = json.loads(files[kind].read_text(encoding="utf-8").splitlines()[0])
        server = ServeProcess(["--store", f"sqlite:///{tmp_path / f'{kind}.db'}", "--workers", str(WORKERS)])
        try:
            assert httpx.post(server.url + "/verify", json=first, timeout=10).json()["isValid"] is True
            results[f"ours_{kind}"] = wrk(server.url, files[kind], script)
        finally:
            server.stop()
        with granian("test_bench_facilitator:sdk_app") as url:
            assert httpx.post(url + "/verify", json=first, timeout=10).json()["isValid"] is True
            results[f"sdk_{kind}"] = wrk(url, files[kind], script)
    print()
    print(f"bare ceiling: {results['bare']['rps']:,.0f} req/s  p50 {results['bare']['p50_ms']:.2f} ms  p99 {results['bare']['p99_ms']:.2f} ms")
    print(f"{'scheme':<8} {'ours req/s':>11} {'p50':>7} {'p99':>7} {'sdk req/s':>10} {'p50':>7} {'p99':>8} {'ratio':>6} {'% bare':>7}")
    ratios = {}
    for kind in KINDS:
        o, s = results[f"ours_{kind}"], results[f"sdk_{kind}"]
        ratios[kind] = o["rps"] / s["rps"]
        print(
            f"{kind:<8} {o['rps']:>11,.0f} {o['p50_ms']:>7.2f} {o['p99_ms']:>7.2f} {s['rps']:>10,.0f} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f}"
            f" {ratios[kind]:>5.1f}x {100 * o['rps'] / results['bare']['rps']:>6.0f}%"
        )
    results["ratios"] = ratios
    out = HERE.parent / ".benchmarks"  # gitignored
    out.mkdir(exist_ok=True)
    (out / "facilitator.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    for kind in KINDS:
        assert results[f"ours_{kind}"]["non_2xx"] == 0 and results[f"sdk_{kind}"]["non_2xx"] == 0
    if os.environ.get("BENCH_ASSERT_RATIO") == "1":
        for kind in KINDS:
            assert ratios[kind] >= 5 and results[f"ours_{kind}"]["p99_ms"] <= results[f"sdk_{kind}"]["p99_ms"], (kind, results)
