"""Real parts of a team gateway: redis-server, dynamic-mcp replicas, HAProxy.

The tests (tests/test_replicas.py) and the gateway benchmark (bench/gateway.py) both run
them, so there is one launcher, here, importing nothing from the tests.

    with Cluster(directory, config, users_file, replicas=2) as cluster:
        cluster.url                  # HAProxy on 127.0.0.1, round-robin, no stickiness
        cluster.env                  # the replicas' store settings, for `dynamic-mcp admin`
        cluster.replicas[0].kill()   # SIGKILL, by PID
        cluster.redis.client()       # redis-py, to look at what the replicas wrote

Every process is started on a free 127.0.0.1 port and stopped by its PID; every wait is
bounded. Nothing here is a system service: the Debian packages' binaries are run in the
foreground by their caller (`.ci/run` installs them when missing).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil
import redis

__all__ = [
    "HEARTBEAT_KEY",
    "Cluster",
    "HAProxy",
    "RedisProcess",
    "Replica",
    "commands_sent",
    "missing_parts",
    "redis_commands",
]

REPO = Path(__file__).resolve().parent.parent  # the replicas run `-m server` from here

START_WAIT = 20.0  # seconds for a replica to listen: a cold Python import on a busy machine
STOP_WAIT = 10.0  # seconds for a process to end after SIGTERM
STORE_KEY = "replica-test-key-0f3a"  # the operator's key: every replica is given the same


def missing_parts() -> str | None:
    """Why these tests cannot run here, or None."""
    for binary in ("redis-server", "haproxy"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (.ci/run installs it)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Bounded wait until `process` itself listens on `port`.

    Not just "something answers there": the suite runs in parallel, and another test's
    server that took the port between `free_port` and this process's bind would answer
    too, while ours exited (a redis-server of someone else's, then stopped under us).
    """
    deadline = time.monotonic() + START_WAIT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.args[0]} not listening on {port} in {START_WAIT}s")
        time.sleep(0.05)


def _listening(command: list[str], port: int) -> subprocess.Popen[bytes]:
    """A quiet Debian binary run in the foreground, once it listens on `port`."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_listening(process, port)
    except BaseException:
        _stop(process)  # the caller never held it, so its stop() could not end it
        raise
    return process


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_WAIT)


class RedisProcess:
    """A redis-server of the test's own, in memory only."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        self.process = _listening(command, self.port)

    def stop(self) -> None:
        _stop(self.process)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)


def redis_commands(redis_client: redis.Redis) -> int:
    """How many commands Redis has served, not counting the INFO that asks.

    Keep one `redis_client` open across a before and an after: its connection's HELLO is
    then counted once, before."""
    stats = redis_client.info("commandstats")
    return sum(stat["calls"] for name, stat in stats.items() if name != "cmdstat_info")


# What every replica writes every few seconds, whoever asks (groups.serving.heartbeat).
HEARTBEAT_KEY = "gateway/replicas/heartbeats"
MONITOR_WAIT = 30.0  # seconds for Redis's MONITOR to start, and to see its last command


@contextmanager
def commands_sent(server: RedisProcess) -> Iterator[list[str]]:
    """Every command `server` is sent inside the block, as text (its MONITOR): unlike
    counting commands, it tells which ones, so a replica's heartbeat can be told apart."""
    sent: list[str] = []
    end = "end-of-monitoring-7f3a"
    ready = threading.Event()
    ender = server.client()
    ender.ping()  # connected (its HELLO sent) before the monitoring starts

    def monitor() -> None:
        with server.client().monitor() as commands:
            ready.set()
            while end not in (command := commands.next_command()["command"]):
                sent.append(command)

    watching = threading.Thread(target=monitor, daemon=True)
    watching.start()
    if not ready.wait(MONITOR_WAIT):
        raise TimeoutError("Redis's MONITOR did not start")
    try:
        yield sent
    finally:
        ender.echo(end)  # the monitor's last command
        watching.join(MONITOR_WAIT)


class Replica:
    """One `dynamic-mcp --transport http` process behind the load balancer."""

    def __init__(self, name: str, directory: Path, command: list[str], env: dict[str, str]):
        self.name, self.directory = name, directory
        self.port = free_port()
        self.log = directory / f"{name}.log"
        self._command = [*command, "--port", str(self.port)]
        self.env = {**env, "DYNAMIC_MCP_HOME": str(directory / f"{name}-home")}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.launch()
        self.wait_listening()

    def launch(self) -> None:
        with self.log.open("a") as stderr:
            self.process = subprocess.Popen(
                self._command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def wait_listening(self) -> None:
        assert self.process is not None
        wait_listening(self.process, self.port)

    def stop(self) -> None:
        _stop(self.process)

    def kill(self) -> list[psutil.Process]:
        """SIGKILL this replica (no chance to close anything); its children, as they were."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_WAIT)
        return children

    def upstream_pids(self) -> set[int]:
        """The PIDs of the upstream processes this replica has started, alive now."""
        if self.process is None or self.process.poll() is not None:
            return set()
        return {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}

    def logged(self) -> str:
        return self.log.read_text()


HAPROXY_CONFIG = """\
global
    maxconn 256
defaults
    mode http
    balance roundrobin
    # A connection refused by a dead replica is tried again, on another: nothing was sent.
    retries 3
    option redispatch 1
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    # Who the client is, for the replicas: a request through the balancer is not one from
    # their own machine (/metrics answers those without a token).
    option forwardfor
backend replicas
    # A replica that no longer serves (not merely one whose Redis is away: it still
    # serves the sessions it holds) is taken out until it answers again.
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host 127.0.0.1
{servers}
frontend gateway
    bind 127.0.0.1:{port}
    default_backend replicas
"""


class HAProxy:
    """HAProxy in round-robin over the replicas, no stickiness, in the foreground."""

    def __init__(self, directory: Path, replicas: list[Replica]) -> None:
        self.port = free_port()
        self.config = directory / "haproxy.cfg"
        servers = "\n".join(
            f"    server {r.name} 127.0.0.1:{r.port} check inter 500ms fall 1 rise 2"
            for r in replicas
        )
        self.config.write_text(HAPROXY_CONFIG.format(servers=servers, port=self.port))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.process = _listening(["haproxy", "-db", "-f", str(self.config)], self.port)

    def stop(self) -> None:
        _stop(self.process)


class Cluster:
    """redis-server, N replicas of one config with a users file, and HAProxy before them."""

    def __init__(
        self,
        directory: Path,
        config: Path,
        users_file: Path,
        *,
        replicas: int = 2,
        public: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`public`: the balancer's URL is the gateway's public URL (users' sign-ins end
        on its /oauth/callback, through any replica); `extra_env`: more environment for
        the replicas."""
        self.directory = directory
        self.redis = RedisProcess()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DYNAMIC_MCP_HTTP_TOKEN", "DYNAMIC_MCP_HOME")
        }
        env |= {"DYNAMIC_MCP_STORE": self.redis.url, "DYNAMIC_MCP_STORE_KEY": STORE_KEY}
        env |= extra_env or {}
        self.env = env
        command = [sys.executable, "-m", "server", str(config), "--transport", "http"]
        command += ["--users", str(users_file), "--log-level", "info"]
        self.replicas = [
            Replica(f"replica-{n}", directory, command, env) for n in range(1, replicas + 1)
        ]
        self.balancer = HAProxy(directory, self.replicas)
        if public:
            for replica in self.replicas:
                replica.env["DYNAMIC_MCP_PUBLIC_URL"] = self.balancer.url.removesuffix("/mcp")

    @property
    def url(self) -> str:
        return self.balancer.url

    def __enter__(self) -> Self:
        try:
            self.redis.start()
            for replica in self.replicas:  # started side by side, waited for in turn
                replica.launch()
            for replica in self.replicas:
                replica.wait_listening()
            self.balancer.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.balancer.stop()
        for replica in self.replicas:
            replica.stop()
        self.redis.stop()

    def replica_of(self, upstream_pid: int) -> Replica:
        """The replica that started the upstream process `upstream_pid`."""
        for replica in self.replicas:
            if upstream_pid in replica.upstream_pids():
                return replica
        raise LookupError(f"no replica started process {upstream_pid}")
