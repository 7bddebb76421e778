"""Throwaway Redis servers for the store tests: one ``redis-server`` (or a 3-master Redis
Cluster) on free loopback ports, in a tmp dir, killed at teardown.

Every server runs with ``--save '' --appendonly no`` (nothing is written to disk) and
``--maxmemory-policy noeviction`` (the setting the store's docs require). Ports are never fixed:
each comes from binding port 0; if another process takes it before redis-server binds, the
start is retried on a fresh port.

Test modules take the fixtures by importing them (``from redis_servers import redis_server``);
``redis-server`` / ``redis-cli`` come from Debian (``scripts/test.sh`` installs them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

_STARTED: list[RedisServer] = []


def free_port(highest: int = 65535) -> int:
    """A loopback port nobody listened on a moment ago, no higher than ``highest``."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port <= highest:
            return port
    raise RuntimeError(f"no free loopback port at or below {highest}")


# A cluster node's bus listens 10,000 above its port, so Redis refuses a port above this; the
# kernel's ephemeral range (to 60999) hands one out about one time in five.
CLUSTER_HIGHEST_PORT = 55535


def _ping(port: int, timeout: float = 0.2) -> bool:
    """A raw ``PING`` (no redis-py: this also checks the port belongs to a Redis)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on a loopback port; restartable on the same port."""

    def __init__(self, workdir: Path, *, port: int | None = None, cluster: bool = False, extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = cluster
        self.port = port or free_port(self._highest_port())
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _highest_port(self) -> int:
        return CLUSTER_HIGHEST_PORT if self.cluster else 65535

    def _argv(self) -> list[str]:
        argv = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.workdir / f"redis-{self.port}.log"),
        ]  # fmt: skip
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", str(self.workdir / f"nodes-{self.port}.conf")]
        return argv + list(self.extra_args)

    def start(self, *, fixed_port: bool = False, attempts: int = 5) -> RedisServer:
        """Starts the server and waits until it answers PING. A port taken in the meantime
        is replaced by a fresh one, unless ``fixed_port`` (a restart on the same port)."""
        for _ in range(attempts):
            self.proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self not in _STARTED:
                _STARTED.append(self)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # exited: most likely the port was taken
                if _ping(self.port):
                    return self
                time.sleep(0.01)
            else:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")
            self.proc.wait()
            if fixed_port:
                # The old socket may linger a moment after a kill; retry the same port.
                time.sleep(0.2)
            else:
                self.port = free_port(self._highest_port())
        raise RuntimeError(f"redis-server could not start (last port {self.port}); see {self.workdir}")

    def kill(self) -> None:
        """SIGKILL and wait until the process is gone (so the port no longer answers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown) and wait until the process has exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self) -> RedisServer:
        """Kills the server and starts a new (empty) one on the same port."""
        self.kill()
        return self.start(fixed_port=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kwargs: object):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kwargs)  # type: ignore[arg-type]


class RedisCluster:
    """Three cluster-enabled masters (no replicas), joined with ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [RedisServer(workdir / f"node{i}", cluster=True) for i in range(masters)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def start(self) -> RedisCluster:
        for n in self.nodes:
            n.start()
        addrs = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            infos = [subprocess.run([REDIS_CLI, "-p", str(p), "cluster", "info"], capture_output=True, text=True, timeout=10).stdout for p in self.ports]
            if all("cluster_state:ok" in i for i in infos):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"cluster on {self.ports} did not reach cluster_state:ok")

    def kill(self) -> None:
        for n in self.nodes:
            n.kill()


def kill_all() -> None:
    for s in _STARTED:
        s.kill()


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (tests may kill and restart it); ``DEBUG`` is enabled
    for local connections so a test can stall it (``DEBUG SLEEP``)."""
    server = RedisServer(tmp_path / "redis", extra_args=("--enable-debug-command", "local")).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def shared_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for a whole module; tests isolate themselves with a unique key prefix
    and must not stop it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster on free loopback ports, for a whole module."""
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.kill()
