"""``x402-verify serve`` as a subprocess on a loopback port, for the facilitator's end-to-end
tests: started with ``--port 0``, its address read from the line it prints once ready, stopped
(or ``kill -9``-ed, process group and all) at the end. Every wait is bounded."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY = re.compile(r"x402-verify facilitator listening on (http://\S+)")


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def kill9(self) -> None:
        """SIGKILL to the server and its workers: nothing gets to clean up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._close()


def start(workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Served:
    """Starts the server in ``workdir`` (where the default SQLite store lands) and waits for
    its 'listening on' line."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"serve-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "x402_verify", "serve", "--port", "0", *args]
    with open(log, "w") as err:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            buffer += line
            found = READY.search(line)
            if found:
                return Served(proc, found.group(1), log)
        if proc.poll() is not None:
            break
    Served(proc, "", log).stop()
    raise RuntimeError(f"x402-verify serve did not start: {buffer!r} {log.read_text()[-2000:]!r}")


@contextmanager
def serving(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    served = start(workdir, *args, env=env)
    try:
        yield served
    finally:
        served.stop()
