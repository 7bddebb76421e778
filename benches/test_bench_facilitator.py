"""Load benchmark of the facilitator service: ``/verify`` requests/s and p50/p99 under wrk.

Servers, each under granian with the same workers, on loopback, measured in alternating rounds
of the same run:

- ``bare``: an ASGI endpoint that reads the body and answers ``{}`` (the server's own ceiling);
- ``ours``: ``x402-verify serve`` (SQLite store, its default);
- ``redis``: ``x402-verify serve`` on a Redis store (a redis-server started here, no
  persistence), so the figures show what the store stage costs (``BENCH_REDIS=0`` leaves it out);
- ``inproc``, a diagnostic and not a deployment: ours with an in-process memory store in each
  worker (``app_from_env`` under granian directly, since ``serve`` refuses it with two workers:
  each worker would accept a payment once). It has no store stage (the core reserves as it
  verifies) and so shows what the checks and the server cost without one, in the same run
  (``BENCH_INPROCESS=0`` leaves it out; the target is never checked on it);
- ``floor``, a diagnostic too (``BENCH_FLOOR=0`` leaves it out): the durable floor. Ours on
  the in-process store seen as a store outside the process (``FlushedMemoryStore``), so it gets
  that store's reserve stage, which before any answer writes each batch's reservations into a
  log of the worker's own and ``fdatasync``s it: what a store must do to acknowledge a
  reservation that survives a power cut, with nothing shared between the workers and no store's
  own work. A store that is durable and shared does all of that and more, so its figure bounds
  what such a store can reach on this machine;
- ``sdk``: the x402 SDK's ``x402Facilitator`` (chain signer stubbed, tests/http_servers.py)
  behind its HTTP API (the shape tests/http_servers.facilitator_app serves).

All of them run on the same event loop: uvloop when this interpreter has it (granian's automatic
choice; the [server] and test extras install it), and ours is checked to report it on /health.

The whole set of rounds runs at each concurrency of ``BENCH_CONNECTIONS`` (default ``64,256``
wrk connections), ours on fresh stores each time: ours batches what arrives together, so its
cost per request falls as concurrency rises, and the SDK's does not (each level is reported,
and the target checked, on its own). Every round runs bare, then per scheme ours, ours on Redis,
the in-process diagnostic and the SDK (the order rotates by round), ``BENCH_SECONDS`` each; the
ratio per scheme is the median of the same-round ratios, so drift of this shared machine between
rounds cancels out. Each run of ours gets its own file of distinct
freshly signed bodies, sized from the bare ceiling so that no payment is sent twice (a repeated
payment is a replay to ours, and its signature is one the verifier has already seen: cheaper work
the SDK would not get); the Lua script gives each wrk thread its own lines and the run reports
how many requests repeated a body (0 is asserted). The payments come from ``BENCH_PAYERS`` payer
keys (a gateway sees the same customers again; the verifier's payer-key cache then checks their
signatures in batches). The load generator is wrk (C, requests pre-formatted in Lua); its CPU
time per run is reported beside the servers' figures. Bounded: a few runs of ``BENCH_SECONDS``,
loopback only. Figures are printed and written to ``.benchmarks/facilitator.json``; the >= 5x
target (at equal or better p99, in the median round, at every level) is checked when
``BENCH_ASSERT_RATIO=1``.

    BENCH_SECONDS=5 python -m pytest benches/test_bench_facilitator.py -s -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(TESTS))

from http_servers import ServeProcess, free_port, verify_body  # noqa: E402
from payments import (  # noqa: E402
    CHAIN_ID,
    auth_member,
    authorization,
    eip3009_typed_data,
    envelope,
    fields,
    permit2_typed_data,
    public_test_keys,
    random_nonce,
    requirements,
    sign,
)
from redis_servers import RedisServer  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
# Each level is a full set of rounds, with fresh stores. Ours batches what arrives together, so
# its cost per request falls as concurrency rises (docs/facilitator.md); the SDK's does not.
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "64,256").split(",")]
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAYERS = int(os.environ.get("BENCH_PAYERS", "16"))
REDIS = os.environ.get("BENCH_REDIS", "1") != "0"
INPROCESS = os.environ.get("BENCH_INPROCESS", "1") != "0"
FLOOR = os.environ.get("BENCH_FLOOR", "1") != "0"
KINDS = ("eip3009", "permit2", "upto")
# Ours on SQLite (its default), on Redis, and the two diagnostics (see the module docs).
OURS = ("ours", *(("redis",) if REDIS else ()), *(("inproc",) if INPROCESS else ()), *(("floor",) if FLOOR else ()))
STORE_LABELS = {"ours": "sqlite", "redis": "redis", "inproc": "inproc", "floor": "floor"}
ENV_FLOOR_DIR = "BENCH_FLOOR_DIR"

# Each thread keeps every THREADS-th line from its own offset, so the threads never send the same
# body; "sent" against "count" tells how many requests repeated one.
LUA = r"""
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local stride = tonumber(os.getenv("BENCH_THREADS"))
  local headers = {["Content-Type"] = "application/json"}
  reqs = {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_BODY_FILE")) do
    if n % stride == id then reqs[#reqs + 1] = wrk.format("POST", "/verify", headers, line) end
    n = n + 1
  end
  count = #reqs
  sent = 0
end
request = function()
  sent = sent + 1
  return reqs[(sent - 1) % count + 1]
end
function done(summary, latency, requests)
  local repeats = 0
  for _, t in ipairs(threads) do
    local extra = t:get("sent") - t:get("count")
    if extra > 0 then repeats = repeats + extra end
  end
  io.write(string.format("repeated bodies: %d\n", repeats))
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


class FlushedMemoryStore:
    """The durable floor's store (a diagnostic, see the module docs): the core's in-process store,
    seen by the facilitator as a store outside the process (so it gets the reserve stage such a
    store gets), whose ``reserve_many`` writes 100 bytes a new reservation into a log of this
    worker's own and ``fdatasync``s it before it returns.

    The log is allocated and flushed at start and then overwritten in place, round and round,
    so a flush carries the data alone and no change of the file's size (an append's flush also
    commits the file system's journal: 15.4-15.9k req/s against 15.8-16.3k in place, EIP-3009, 64
    connections). Both workers writing one file measured the same as a file each, and the checks
    in threads, each flushing after its own batch, did worse (14.3-14.7k): this is the cheapest
    shape of a durable acknowledgment measured here."""

    SIZE = 64 << 20

    def __init__(self, path: Path) -> None:
        from x402_verify import MemoryNonceStore

        self._inner = MemoryNonceStore()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(self._fd, bytes(self.SIZE))
        os.fsync(self._fd)
        self._at = 0

    def reserve_many(self, keys: Any, valid_until: Any, owners: Any, caps: Any = None, *, now: int | None = None) -> list[bool | None]:
        outcomes: list[bool | None] = self._inner.reserve_many(keys, valid_until, owners, caps, now=now)
        size = 100 * sum(1 for o in outcomes if o is True)
        if size:
            if self._at + size > self.SIZE:
                self._at = 0
            os.pwrite(self._fd, b"\1" * size, self._at)
            self._at += size
            os.fdatasync(self._fd)
        return outcomes

    def __getattr__(self, name: str) -> Any:  # settle, release, state, sweep...: the inner store's
        return getattr(self._inner, name)


def floor_app() -> Any:
    """Ours on the durable floor's store (``FlushedMemoryStore``), built as ``app_from_env``
    builds ours but for the store."""
    import gc

    from x402_verify import Verifier
    from x402_verify.facilitator import create_app
    from x402_verify.facilitator.config import FacilitatorConfig
    from x402_verify.facilitator.server import ENV_CONFIG

    config = FacilitatorConfig.from_json(os.environ[ENV_CONFIG])
    store = FlushedMemoryStore(Path(os.environ[ENV_FLOOR_DIR]) / f"worker-{os.getpid()}.log")
    verifier = Verifier(networks=list(config.networks), facilitator_addresses=list(config.facilitator_addresses), nonce_store=store, threads=config.threads)
    app = create_app(config, verifier=verifier)
    assert app.reserver is not None  # the stage a store outside the process gets
    gc.collect()  # as app_from_env does for ours
    gc.freeze()
    return app


# --- plumbing ------------------------------------------------------------------------------------


@contextmanager
def granian(target: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(TESTS), os.environ.get("PYTHONPATH", "")]), **(extra_env or {})}
    cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(WORKERS), "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--http", "1", "--log-level", "warning", "--backlog", "2048", target]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=HERE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/supported", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def wrk(url: str, body_file: Path, script: Path, connections: int) -> dict[str, float]:
    start = os.times()
    out = subprocess.run(
        ["wrk", "-t", str(THREADS), "-c", str(connections), "-d", f"{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=SECONDS + 120, check=True,
        env={**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_THREADS": str(THREADS)},
    ).stdout  # fmt: skip
    end = os.times()

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    repeats = re.search(r"repeated bodies: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    assert rps and repeats, out
    # wrk's CPU (children's times: its loading of the bodies included) per second of the run.
    wrk_cpu = (end.children_user + end.children_system - start.children_user - start.children_system) / SECONDS
    return {
        "rps": float(rps.group(1)), "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "repeats": float(repeats.group(1)), "wrk_cpu": round(wrk_cpu, 3), "socket_errors": errors.group(1) if errors else "",
    }  # fmt: skip


def payment_body(kind: str, now: int, key: bytes, address: str) -> str:
    """A fresh payment of ``kind`` by ``key``, valid for 10 minutes: the digest from the EIP-712
    document tests/payments.py builds, hashed by the core, signed with coincurve (RFC 6979, low s:
    the signature eth-account makes, which check_signer confirms)."""
    import coincurve

    from x402_verify import _core

    f = fields(kind, from_=address, amount=10_000, valid_after=now - 60, valid_before=now + 600, nonce=random_nonce(kind))
    auth = authorization(kind, f)
    doc = eip3009_typed_data(dict(auth)) if kind == "eip3009" else permit2_typed_data(auth, chain_id=CHAIN_ID[kind])
    rsv = coincurve.PrivateKey(key).sign_recoverable(_core.hash_typed_data(doc), hasher=None)
    req = requirements(kind, 10_000, max_timeout=600)
    payload = envelope(kind, req, {"signature": "0x" + rsv[:64].hex() + f"{rsv[64] + 27:02x}", auth_member(kind): authorization(kind, f)}, resource=False)
    return json.dumps(verify_body(payload, req), separators=(",", ":"))


def check_signer(kind: str, now: int, key: bytes) -> None:
    """payment_body's signature is eth-account's for the same fields (tests/payments.sign)."""
    from eth_account import Account

    acct = Account.from_key(key)
    body = json.loads(payment_body(kind, now, key, acct.address))
    inner = body["paymentPayload"]["payload"]
    auth = inner[auth_member(kind)]
    f = fields(kind, from_=acct.address, amount=10_000, valid_after=now - 60, valid_before=now + 600)
    f["nonce"] = auth["nonce"] if kind == "eip3009" else int(auth["nonce"])
    assert inner["signature"] == sign(kind, f, acct=acct), kind


def _sign_chunk(args: tuple[str, int, int, int]) -> list[str]:
    from eth_account import Account

    kind, now, first, n = args
    keys = public_test_keys(PAYERS)
    addresses = [Account.from_key(k).address for k in keys]
    return [payment_body(kind, now, keys[i % PAYERS], addresses[i % PAYERS]) for i in range(first, first + n)]


def write_bodies(kind: str, n: int, now: int, path: Path, pool: Any) -> Path:
    chunk = 2_000
    jobs = [(kind, now, first, min(chunk, n - first)) for first in range(0, n, chunk)]
    with path.open("w", encoding="utf-8") as out:
        for lines in pool.imap(_sign_chunk, jobs):
            out.write("\n".join(lines) + "\n")
    return path


def first_valid(url: str, body: str) -> None:
    import httpx

    answer = httpx.post(url + "/verify", content=body, headers={"content-type": "application/json"}, timeout=10).json()
    assert answer["isValid"] is True, answer


def run_level(
    connections: int, now: int, tmp_path: Path, script: Path, bare_url: str, sdk_url: str, loop: str, pool: Any
) -> tuple[dict[str, list[dict[str, float]]], dict[str, float]]:
    """The rounds at one concurrency: bare, then per scheme ours (SQLite), ours on Redis and
    the SDK, the order rotating by round; ours on fresh stores of their own. Returns the runs
    and how the body files were sized."""
    runs: dict[str, list[dict[str, float]]] = {"bare": [], **{f"{who}_{kind}": [] for who in (*OURS, "sdk") for kind in KINDS}}
    level = tmp_path / f"c{connections}"
    level.mkdir()
    # Sizing: a run of ours never sends more bodies than the bare server answers in the time.
    probe = write_bodies("eip3009", 20_000, now, level / "probe.jsonl", pool)
    ceiling = wrk(bare_url, probe, script, connections)["rps"]
    per_run = int(ceiling * SECONDS * 1.2) + 1_000
    files = {(kind, r): write_bodies(kind, per_run + 1, now, level / f"{kind}-{r}.jsonl", pool) for r in range(ROUNDS) for kind in KINDS}
    # Each server keeps its own replay state, so one file serves all of them in a round: each
    # sees every payment once.
    redis = RedisServer(level / "redis").start() if REDIS else None
    servers = {"ours": ServeProcess(["--store", f"sqlite:///{level / 'ours.db'}", "--workers", str(WORKERS)])}
    urls = {"ours": servers["ours"].url}
    stack = contextlib.ExitStack()
    try:
        import httpx

        from x402_verify.facilitator.config import FacilitatorConfig
        from x402_verify.facilitator.server import ENV_CONFIG

        if redis is not None:
            servers["redis"] = ServeProcess(["--store", redis.url, "--workers", str(WORKERS)])
            urls["redis"] = servers["redis"].url
        # The diagnostics: serve's defaults but the store (fresh per level, as the others' are).
        config = FacilitatorConfig(store="memory://").to_json()
        if INPROCESS:
            urls["inproc"] = stack.enter_context(granian("x402_verify.facilitator.server:app_from_env", {ENV_CONFIG: config}))
        if FLOOR:
            (level / "floor").mkdir()
            urls["floor"] = stack.enter_context(granian("test_bench_facilitator:floor_app", {ENV_CONFIG: config, ENV_FLOOR_DIR: str(level / "floor")}))
        for url in urls.values():
            assert httpx.get(url + "/health", timeout=10).json()["loop"] == loop  # ours on the loop the others get
        for r in range(ROUNDS):
            runs["bare"].append(wrk(bare_url, files[("eip3009", r)], script, connections))
            for kind in KINDS:
                path = files[(kind, r)]
                lines = path.read_text(encoding="utf-8").splitlines()
                sanity, rest = lines[0], lines[1:]  # checked by every server, then left out of the run
                path.write_text("\n".join(rest) + "\n", encoding="utf-8")
                order = [*urls.items(), ("sdk", sdk_url)]
                for _who, url in order:
                    first_valid(url, sanity)
                shift = r % len(order)
                for who, url in order[shift:] + order[:shift]:
                    runs[f"{who}_{kind}"].append(wrk(url, path, script, connections))
    finally:
        stack.close()
        for server in servers.values():
            server.stop()
        if redis is not None:
            redis.kill()
    return runs, {"probe_bare_rps": ceiling, "bodies_per_run": per_run}


def summarize(connections: int, runs: dict[str, list[dict[str, float]]], sizing: dict[str, float], loop: str) -> dict[str, Any]:
    """One level's medians and same-round ratios, printed as a table per store."""
    med = {name: {k: statistics.median(run[k] for run in rs) for k in ("rps", "p50_ms", "p99_ms", "wrk_cpu")} for name, rs in runs.items()}
    results: dict[str, Any] = {"connections": connections, "runs": runs, "sizing": sizing, "median": med}

    def same_round(who: str, measure: Any) -> dict[str, list[Any]]:
        return {kind: [measure(o, s) for o, s in zip(runs[f"{who}_{kind}"], runs[f"sdk_{kind}"], strict=True)] for kind in KINDS}

    ratios = {who: same_round(who, lambda o, s: o["rps"] / s["rps"]) for who in OURS}
    p99_ok = {who: same_round(who, lambda o, s: o["p99_ms"] <= s["p99_ms"]) for who in OURS}
    for who in OURS:
        figures = {"ratios": ratios[who], "median_ratio": {kind: statistics.median(v) for kind, v in ratios[who].items()}}
        figures["p99_better_rounds"] = {kind: sum(v) for kind, v in p99_ok[who].items()}
        if who == "ours":  # the default store's figures at the level's top
            results.update(figures)
        else:
            results[who] = figures
    print()
    b = med["bare"]
    print(f"{connections} connections, event loop {loop} for every server")
    print(f"{ROUNDS} rounds of {SECONDS} s; medians. bare ceiling: {b['rps']:,.0f} req/s  p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms")
    print(f"{'scheme':<8} {'store':<7} {'ours req/s':>11} {'p50':>7} {'p99':>7} {'sdk req/s':>10} {'p50':>7} {'p99':>8} {'ratio':>6}", end="")
    print(f" {'rounds':>22} {'% bare':>7} {'p99 ok':>6}")
    for who in OURS:
        for kind in KINDS:
            o, s = med[f"{who}_{kind}"], med[f"sdk_{kind}"]
            per_round = " ".join(f"{x:.1f}" for x in ratios[who][kind])
            print(
                f"{kind:<8} {STORE_LABELS[who]:<7} {o['rps']:>11,.0f} {o['p50_ms']:>7.2f} {o['p99_ms']:>7.2f} {s['rps']:>10,.0f}"
                f" {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {statistics.median(ratios[who][kind]):>5.1f}x {per_round:>22}"
                f" {100 * o['rps'] / b['rps']:>6.0f}% {sum(p99_ok[who][kind])}/{ROUNDS:<4}"
            )
    print(f"wrk CPU (cores, median of runs): bare {b['wrk_cpu']:.2f}, " + ", ".join(f"{n} {m['wrk_cpu']:.2f}" for n, m in med.items() if n != "bare"))
    return results


# A round is about 50 s of runs and signing at 4 s a run: the project's 600 s per test would cut
# a run of more rounds or levels short.
@pytest.mark.timeout(300 + len(CONNECTIONS) * ROUNDS * (len(KINDS) * (len(OURS) + 1) + 1) * (SECONDS + 8))
def test_facilitator_verify_load(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the load generator wrk is needed (apt-get install wrk)"
    script = tmp_path / "cycle.lua"
    script.write_text(LUA, encoding="utf-8")
    now = int(time.time())
    for kind in KINDS:
        check_signer(kind, now, public_test_keys(1)[0])
    # granian picks uvloop when this interpreter has it, for every server alike.
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    results: dict[str, Any] = {"seconds": SECONDS, "workers": WORKERS, "wrk_threads": THREADS, "rounds": ROUNDS, "payers": PAYERS, "loop": loop, "levels": []}
    ctx = multiprocessing.get_context("fork")
    with granian("test_bench_facilitator:bare_app") as bare_url, granian("test_bench_facilitator:sdk_app") as sdk_url, ctx.Pool(os.cpu_count() or 2) as pool:
        for connections in CONNECTIONS:
            # Bodies are signed per level, valid for 10 minutes from their signing.
            runs, sizing = run_level(connections, int(time.time()), tmp_path, script, bare_url, sdk_url, loop, pool)
            results["levels"].append(summarize(connections, runs, sizing, loop))
    out = HERE.parent / ".benchmarks"  # gitignored
    out.mkdir(exist_ok=True)
    (out / "facilitator.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    for level in results["levels"]:
        for name, rs in level["runs"].items():
            for run in rs:
                assert run["non_2xx"] == 0 and (name == "bare" or run["repeats"] == 0), (level["connections"], name, run)  # bare reads no payment
    if os.environ.get("BENCH_ASSERT_RATIO") == "1":  # at every level
        for level in results["levels"]:
            med = level["median"]
            for kind in KINDS:
                o, s = med[f"ours_{kind}"], med[f"sdk_{kind}"]
                assert level["median_ratio"][kind] >= 5 and o["p99_ms"] <= s["p99_ms"], (level["connections"], kind, level["median_ratio"], med)
