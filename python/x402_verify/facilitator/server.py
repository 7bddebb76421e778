"""``x402-verify serve``: the app under granian, in worker processes.

The parent process only parses the configuration and hands it to the workers through the
environment (``X402_VERIFY_SERVE_CONFIG``); each worker builds its own app (``app_from_env``),
its verifier and its store connection. The parent starts no thread of its own before granian
forks the workers (a thread alive at fork time can hold a lock, an import lock say, that the
child then waits on for ever): the readiness check that prints the listening address runs in a
separate process.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import urllib.request

from x402_verify.facilitator.app import FacilitatorApp, create_app
from x402_verify.facilitator.config import FacilitatorConfig, store_scheme

__all__ = ["ENV_CONFIG", "app_from_env", "serve"]

ENV_CONFIG = "X402_VERIFY_SERVE_CONFIG"
READY_PREFIX = "x402-verify listening on "


def app_from_env() -> FacilitatorApp:
    """The worker's app, from the configuration the parent left in the environment.

    The objects that exist once it is built (modules, classes, the app) live as long as the
    worker, so they are moved out of the cyclic GC's reach (``gc.freeze``): its full
    collections, a few a second under load, then walk what the requests made rather than
    everything imported (at 15k req/s: 30 ms of collections in 20 s instead of 400 ms, the
    longest 11-17 ms instead of 17-19; docs/facilitator.md). A worker process is ours to tune;
    ``create_app`` leaves the GC of an embedding process alone."""
    app = create_app(FacilitatorConfig.from_json(os.environ[ENV_CONFIG]))
    gc.collect()
    gc.freeze()
    return app


def check_workers(config: FacilitatorConfig, workers: int) -> None:
    if workers > 1 and store_scheme(config.store) == "memory":
        raise ValueError(
            "memory:// keeps reservations per process: with more than one worker a payment could be accepted once per worker; use sqlite:// or redis://"
        )


def serve(config: FacilitatorConfig, *, host: str = "127.0.0.1", port: int = 8402, workers: int = 1, ready_timeout: float = 60.0) -> None:
    """Serves until interrupted; prints ``x402-verify listening on http://HOST:PORT`` once
    ``/health`` answers."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    check_workers(config, workers)
    os.environ[ENV_CONFIG] = config.to_json()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    probe_url = f"http://{'[' + probe_host + ']' if ':' in probe_host else probe_host}:{port}/health"
    # A process, not a thread: nothing of ours runs in this process when granian forks.
    subprocess.Popen([sys.executable, "-m", "x402_verify.facilitator.server", probe_url, url, str(ready_timeout)], stdin=subprocess.DEVNULL)  # noqa: S603
    server = Granian(
        "x402_verify.facilitator.server:app_from_env", factory=True, address=host, port=port, workers=workers, interface=Interfaces.ASGI,
        http=HTTPModes.http1, http1_settings=HTTP1Settings(max_buffer_size=max(8192, config.max_header_bytes + config.max_body_bytes)),
        log_level=LogLevels.warning, backlog=2048, workers_kill_timeout=10,
        # uvloop when it is installed (the [server] extra installs it), else asyncio's own loop.
        loop=Loops.auto,
    )  # fmt: skip
    server.serve()


def _probe(health_url: str, shown_url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    while time.monotonic() < deadline:
        try:
            with opener.open(health_url, timeout=1.0) as r:
                if r.status == 200 and json.loads(r.read()).get("status") == "ok":
                    print(READY_PREFIX + shown_url, flush=True)
                    return 0
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    print(f"x402-verify: {health_url} did not answer within {timeout}s", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    raise SystemExit(_probe(sys.argv[1], sys.argv[2], float(sys.argv[3])))
