"""Running the facilitator under an ASGI server (``x402-verify serve``).

uvicorn (with uvloop and httptools) serves it: measured against granian on this app (benches/
test_bench_facilitator.py), uvicorn answered /verify at the same rate or better at one and two
workers, and it takes an already-bound socket, so the address is known (port 0 included) and
printed only once the service answers ``/health``.

Settings travel to worker processes as ``X402_VERIFY_*`` environment variables (the same ones
the command reads), so ``--workers N`` builds the same app in every process.
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
from typing import Any

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
    max_connections: int = 2048
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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _announce_when_ready(url: str, probe: str, stop: threading.Event) -> None:
    for _ in range(600):  # bounded: 60 s
        if stop.is_set():
            return
        try:
            with urllib.request.urlopen(probe + "/health", timeout=1) as r:
                if r.status in (200, 503):
                    print(f"x402-verify facilitator listening on {url}", flush=True)
                    return
        except OSError:
            time.sleep(0.1)
    print("x402-verify facilitator did not answer /health within 60 s", file=sys.stderr, flush=True)


def serve(config: ServeConfig) -> int:
    """Binds, starts uvicorn, prints the address once ``/health`` answers; returns when the
    server stops."""
    import uvicorn

    # Fail here, in the parent, on what every worker would fail on (a bad store URL, the
    # memory store with several workers, an unknown network).
    if config.workers == 1:
        app: Any = config.app()
    else:
        from x402_verify.facilitator.stores import open_stores

        opened = open_stores(config.store, workers=config.workers)
        for s in (opened.nonces, opened.ledger):
            close = getattr(s, "close", None)
            if close is not None:
                close()
        os.environ[ENV_CONFIG] = json.dumps(asdict(config))
        app = "x402_verify.facilitator.server:app_from_env"
    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, shown)
    stop = threading.Event()
    threading.Thread(target=_announce_when_ready, args=(url, f"http://{probe_host}:{port}", stop), daemon=True).start()
    uv = uvicorn.Config(
        app, fd=sock.fileno(), workers=config.workers, factory=config.workers > 1, log_level=config.log_level,
        access_log=False, limit_concurrency=config.max_connections, h11_max_incomplete_event_size=config.max_header_bytes,
        timeout_keep_alive=30, lifespan="on",
    )  # fmt: skip
    try:
        if config.workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(uv, sockets=[sock]).run()
        else:
            uvicorn.Server(uv).run(sockets=[sock])
    finally:
        stop.set()
        sock.close()
    return 0
