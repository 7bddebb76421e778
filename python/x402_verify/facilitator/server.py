"""Running the facilitator under an ASGI server (``x402-verify serve``).

granian serves it, by measurement (benches/test_bench_facilitator.py ``test_server_choice``:
the bare app and ours, one worker, the same wrk load, on the shared 2-core host). Two runs:
first granian ~2.5-3.3k requests/s on /verify against uvicorn's (uvloop, httptools)
0.7-1.4k, the bare ceilings level; second, under heavier load from other jobs, level
(ours 1.1k vs 1.3k, bare 2.9k vs 3.4k). Its HTTP layer runs in Rust threads outside the GIL
while our verification releases the GIL, which is where the first run's gap came from; and
with two workers on this host it was never behind. The x402 SDK's facilitator ran faster
under granian too (~400 vs ~190 requests/s), so the benchmark compares both under granian.
Revisit on a quiet machine.

Settings travel to the worker processes as JSON in ``X402_VERIFY__SERVE_CONFIG`` (built from
the same flags and ``X402_VERIFY_*`` variables), so every process builds the same app. The
address is printed once the service answers ``/health``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field, fields

from x402_verify.facilitator import DEFAULT_NETWORKS, DEFAULT_STORE, FacilitatorApp, Limits, create_app

ENV_CONFIG = "X402_VERIFY__SERVE_CONFIG"  # the parsed settings, for worker processes


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8402
    workers: int = 1
    networks: list[str] = field(default_factory=lambda: list(DEFAULT_NETWORKS))
    store: str = DEFAULT_STORE
    upstream: str | None = None
    upstream_token: str | None = None
    facilitator_addresses: list[str] = field(default_factory=list)
    auth_token: str | None = None
    max_body_bytes: int = Limits.max_body_bytes
    max_header_bytes: int = Limits.max_header_bytes
    max_json_depth: int = Limits.max_json_depth
    verify_timeout: float = Limits.verify_timeout
    settle_timeout: float = Limits.settle_timeout
    max_upstream: int = Limits.max_upstream
    max_batch: int = Limits.max_batch
    max_inflight: int = Limits.max_inflight
    max_connections: int = 1024  # requests in progress per worker (granian's backpressure)
    log_level: str = "warning"

    def limits(self) -> Limits:
        names = {f.name for f in fields(Limits)}
        return Limits(**{k: v for k, v in asdict(self).items() if k in names})

    def app(self) -> FacilitatorApp:
        headers = {"Authorization": f"Bearer {self.upstream_token}"} if self.upstream_token else None
        return create_app(
            networks=self.networks, store=self.store, upstream=self.upstream, upstream_headers=headers,
            facilitator_addresses=self.facilitator_addresses, auth_token=self.auth_token, limits=self.limits(),
            workers=self.workers,
        )  # fmt: skip


def app_from_env() -> FacilitatorApp:
    """The factory each worker process calls."""
    return ServeConfig(**json.loads(os.environ[ENV_CONFIG])).app()


def _free_port(host: str) -> int:
    # granian binds in its own process; port 0 is resolved here first (the port is free when
    # picked and taken a moment later; another process could take it in between).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _announce_when_ready(url: str, probe: str, stop: threading.Event) -> None:
    for _ in range(1200):  # bounded: about 60 s
        if stop.is_set():
            return
        try:
            with urllib.request.urlopen(probe + "/health", timeout=1) as r:
                if r.status in (200, 503):
                    print(f"x402-verify facilitator listening on {url}", flush=True)
                    return
        except OSError:
            time.sleep(0.05)
    print("x402-verify facilitator did not answer /health within 60 s", file=sys.stderr, flush=True)


def serve(config: ServeConfig) -> int:
    """Starts granian with ``config.workers`` processes, prints the address once ``/health``
    answers; returns when the server stops."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    # Fail here, in the parent, on what every worker would fail on (a bad store URL, the
    # memory store with several workers, an unknown network, an unreachable Redis).
    app = config.app()
    app.service.batcher.close()
    for s in (app.service.store, app.service.ledger):
        close = getattr(s, "close", None)
        if close is not None:
            close()
    if config.port == 0:
        config.port = _free_port(config.host)
    os.environ[ENV_CONFIG] = json.dumps(asdict(config))
    shown = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{shown}:{config.port}"
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(config.host, shown)
    stop = threading.Event()
    threading.Thread(target=_announce_when_ready, args=(url, f"http://{probe_host}:{config.port}", stop), daemon=True).start()
    server = Granian(
        "x402_verify.facilitator.server:app_from_env", address=config.host, port=config.port, interface=Interfaces.ASGI,
        factory=True, workers=config.workers, http=HTTPModes.http1, websockets=False, loop=Loops.auto,
        backpressure=config.max_connections, http1_settings=HTTP1Settings(max_buffer_size=max(8192, config.max_header_bytes)),
        log_level=LogLevels(config.log_level), log_access=False,
    )  # fmt: skip
    try:
        server.serve()
    finally:
        stop.set()
    return 0
