"""Shared fixtures: real upstream processes, real sockets on 127.0.0.1, dynamic-mcp itself.

Every wait here is bounded in time; nothing is mocked.
"""

from __future__ import annotations

import atexit
import compileall
import contextlib
import functools
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

# A raw JSON-RPC initialize, as a client sends it first, and what an HTTP POST accepts.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


REPO = Path(__file__).resolve().parent.parent
UPSTREAMS = Path(__file__).resolve().parent / "upstreams"
ECHO_SERVER = UPSTREAMS / "echo_server.py"
LAUNCHER = UPSTREAMS / "forked.py"  # see python_command
FORKSERVER = UPSTREAMS / "forkserver.py"
FOLLOW_BROWSER = UPSTREAMS / "follow_browser.py"  # a person who follows a sign-in link
PORT_WAIT = 20.0  # seconds for an HTTP upstream to start listening (a cold Python import)

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: twice as many workers as cores. Most tests spend their time waiting on
    processes they started (a replica's start, Redis's timeouts), so four workers on two
    cores keep both busy (2m44s against 3m05s with three and 2m46s with five, for the
    whole suite on two cores, one run each)."""
    return max(2, (os.cpu_count() or 2) * 2)


# Test files whose tests share one costly module fixture (redis-server, two replicas and
# HAProxy): all of a file's tests run on one worker, so the fixture starts once, not once
# per worker. xdist's `--dist loadgroup` would do it from a mark, but it renames node ids
# through an attribute pytest 9.2 no longer reads (`Item._nodeid`).
ONE_WORKER_FILES = frozenset(
    {
        "tests/test_replicas.py",
        "tests/test_admin.py",
        "tests/test_gateway.py",
        "tests/test_gateway_trust.py",
        "tests/test_gateway_operations.py",
        "tests/test_http_serving.py",
        "tests/test_stdio_end_to_end.py",
        "tests/test_code_mode.py",
    }
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Tests spread one at a time, as by xdist's default, but those of `ONE_WORKER_FILES`
    as one unit each."""
    from xdist.scheduler import LoadScopeScheduling

    class FilesOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER_FILES else nodeid

    return FilesOnOneWorker(config, log)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the project's modules once: the tests start it in many processes, and where
    PYTHONDONTWRITEBYTECODE is set each would compile them again (uv compiles the rest)."""
    for source in ("server.py", "groups", "importers", "bench", "tests/upstreams"):
        path = REPO / source
        if path.is_dir():
            compileall.compile_dir(path, quiet=1)
        else:
            compileall.compile_file(path, quiet=1)


@pytest.fixture(autouse=True)
def dynamic_mcp_home(tmp_path: Path, monkeypatch) -> Path:
    """A ~/.dynamic-mcp of each test's own (catalog, tokens), inherited by what it starts."""
    home = tmp_path / "dynamic-mcp-home"
    monkeypatch.setenv("DYNAMIC_MCP_HOME", str(home))
    return home


def use_browser(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """`command` (with `%s` for the URL) as the browser of this test: $BROWSER for the
    processes it starts, and the preferred browser of sign-ins run in this process, since
    Python's webbrowser reads $BROWSER once per process and a worker runs many tests."""
    monkeypatch.setenv("BROWSER", command)
    webbrowser.register(
        command, None, webbrowser.GenericBrowser(shlex.split(command)), preferred=True
    )


def following_browser() -> str:
    """$BROWSER for a person who signs in at once (`FOLLOW_BROWSER`)."""
    return shlex.join(python_command(FOLLOW_BROWSER)) + " %s"


def stdio_entry(
    script: Path = ECHO_SERVER,
    description: str = "Echo test server",
    *,
    warm: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A config entry that starts a Python upstream over stdio: `python script`, or
    `python ARGS...` given `args`, warm (`python_command`) unless told otherwise: a test
    that looks at the process from outside (its parent, its command line) wants it cold."""
    args = extra.pop("args", [str(script)])
    command, *args = python_command(*args) if warm else [sys.executable, *args]
    return {"description": description, "command": command, "args": args, **extra}


def python_command(*argv: str | Path) -> list[str]:
    """`python SCRIPT ARGS...` (or `python -m MODULE ARGS...`) as a fork of this worker's
    forkserver (tests/upstreams/forkserver.py): the same process to whoever starts it,
    without a second of importing FastMCP."""
    return [sys.executable, "-S", str(LAUNCHER), _forkserver().args[-1], *map(str, argv)]


def dynamic_mcp_command(*args: str | Path) -> list[str]:
    """`python -m server ARGS...`, warm (`python_command`). What is about the process's own
    start (its imports, its output before serving, its signals) starts it cold."""
    return python_command("-m", "server", *args)


@functools.cache
def _forkserver() -> subprocess.Popen[bytes]:
    """This worker's forkserver, started at first use and ended with the worker (its stdin
    closes); its socket is its last argument."""
    folder = tempfile.mkdtemp(prefix="forkserver-")
    path = os.path.join(folder, "socket")
    forkserver = subprocess.Popen(
        [sys.executable, str(FORKSERVER), path], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )

    @atexit.register
    def stop() -> None:
        forkserver.stdin.close()  # type: ignore[union-attr]
        forkserver.wait(PORT_WAIT)
        shutil.rmtree(folder, ignore_errors=True)

    deadline = time.monotonic() + PORT_WAIT
    while not os.path.exists(path):  # it listens before it imports: within milliseconds
        if forkserver.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the forkserver did not start ({forkserver.poll()})")
        time.sleep(0.01)
    return forkserver


def descendants(process: psutil.Process | None = None) -> list[psutil.Process]:
    """The processes `process` (this one by default) started, directly or not, with a
    forked upstream in its launcher's place: the process that serves, as if started there
    (this worker's forkserver is left out)."""
    found = []
    for child in (process or psutil.Process()).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            command = _executed(child)
            if str(FORKSERVER) in command:  # it, or a fork of it (which shows its command line)
                continue
            if str(LAUNCHER) not in command:
                found.append(child)
            elif upstream := _forked(child):
                found.append(upstream)
    return found


def _executed(child: psutil.Process) -> list[str]:
    """The command line of `child` once it runs its own program: between fork and exec it
    has its parent's, then none, which would hide a launcher (for milliseconds)."""
    parent = child.parent()
    deadline = time.monotonic() + PORT_WAIT
    while time.monotonic() < deadline:
        command = child.cmdline()  # empty while the exec is under way
        forked = str(FORKSERVER) in command  # the forkserver's forks never exec
        if command and (forked or not (parent and command == parent.cmdline())):
            return command
        time.sleep(0.01)
    return child.cmdline()


def process_behind(process: subprocess.Popen[Any]) -> psutil.Process:
    """The process that runs what `process` started: itself, or the fork its launcher
    stands for (`python_command`)."""
    launched = psutil.Process(process.pid)
    forked = _forked(launched) if str(LAUNCHER) in _executed(launched) else None
    return forked or launched


def _forked(launcher: psutil.Process) -> psutil.Process | None:
    """The process a launcher stands for, once forked (`None` if the launcher ends first)."""
    record = Path(launcher.cmdline()[3]).with_name(str(launcher.pid))
    deadline = time.monotonic() + PORT_WAIT
    while launcher.is_running() and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, psutil.NoSuchProcess):
            return psutil.Process(int(record.read_text()))
        time.sleep(0.01)  # the forkserver writes it as it forks: within milliseconds
    return None


async def until(condition: Callable[[], bool]) -> None:
    """Until `condition()` holds, the event loop running meanwhile (the client may still
    have something to send); callers bound the wait with `anyio.fail_after`."""
    while not condition():  # noqa: ASYNC110 - another process's file: no event to wait on
        await anyio.sleep(0.05)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write `{"mcpServers": servers}` to a dynamic-mcp.json in tmp_path and return its path."""

    def write(servers: dict[str, Any]) -> Path:
        path = tmp_path / "dynamic-mcp.json"
        path.write_text(json.dumps({"mcpServers": servers}))
        return path

    return write


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PORT_WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"upstream exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {PORT_WAIT}s")


@contextmanager
def listening(
    command: list[str], port: int, *, stop_wait: float = 15, **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` started (stdin and stdout closed, stderr too unless `popen` says), once it
    listens on 127.0.0.1:`port`; stopped at the end."""
    popen = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL} | popen
    process = subprocess.Popen(command, **{"stderr": subprocess.DEVNULL, **popen})
    try:
        wait_for_port(port, process)
        yield process
    finally:
        process.terminate()
        process.wait(stop_wait)


@contextmanager
def serving_http(
    config: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stderr: Any = subprocess.DEVNULL,
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`dynamic-mcp CONFIG --transport http ARGS` on `port` (a free 127.0.0.1 port by
    default): its URL and process. `env` replaces the inherited environment; `stderr`
    takes its log."""
    port = port or free_port()
    command = dynamic_mcp_command(config, "--transport", "http", "--port", str(port), *args)
    with listening(command, port, cwd=REPO, env=env, stderr=stderr) as process:
        yield f"http://127.0.0.1:{port}/mcp", process


def serve_echo(
    transport: str, port: int | None = None, script: Path = ECHO_SERVER
) -> Iterator[str]:
    """Run the echo upstream (or another of `script`'s) over `transport` on a loopback
    port; yield its URL."""
    port = port or free_port()
    with listening(python_command(script, transport, "127.0.0.1", str(port)), port, stop_wait=10):
        path = "/mcp" if transport == "http" else "/sse"
        yield f"http://127.0.0.1:{port}{path}"


@pytest.fixture
def status_url() -> Iterator[Callable[[int], str]]:
    """HTTP endpoints on 127.0.0.1 that answer every request with one status (401, 503…).

    `status_url.received` holds the headers of every request they got, in order.
    """
    servers: list[ThreadingHTTPServer] = []
    received: list[dict[str, str]] = []

    def serve(status: int) -> str:
        class Answer(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append({name.lower(): value for name, value in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_DELETE = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/mcp"

    serve.received = received  # type: ignore[attr-defined]
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def http_echo_url() -> Iterator[str]:
    yield from serve_echo("http")


@pytest.fixture(scope="session")
def sse_echo_url() -> Iterator[str]:
    yield from serve_echo("sse")


def dynamic_mcp_client(config: Path, *extra_args: str, **client_options: Any) -> Client:
    """A real MCP client talking to `python -m server CONFIG` over stdio pipes."""
    command, *arguments = dynamic_mcp_command(config, *extra_args)
    transport = StdioTransport(
        command,
        arguments,
        # The whole environment, as an MCP client on a user's machine would pass it.
        env=dict(os.environ),
        cwd=str(REPO),
        keep_alive=False,
    )
    return Client(transport, init_timeout=30, timeout=60, **client_options)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Path], Any]]:
    """Open dynamic-mcp clients for configs; all are closed when the test ends."""
    clients: list[Client] = []

    async def open_client(config: Path, *extra_args: str, **client_options: Any) -> Client:
        client = dynamic_mcp_client(config, *extra_args, **client_options)
        await client.__aenter__()
        clients.append(client)
        return client

    yield open_client
    for client in reversed(clients):
        await client.__aexit__(None, None, None)


async def fill_catalog(config: Path, *groups: str) -> None:
    """Expand `groups` once through an in-memory dynamic-mcp for `config`, so the catalog
    knows their tools, then stop it: a dynamic-mcp started afterwards answers from the
    catalog. The upstreams are real processes; only the warm-up's own server is in memory,
    which spares a test that is about the restart one server process (about a second of CPU)."""
    from server import build_server

    async with Client(build_server(config)) as client:
        for group in groups:
            result = await client.call_tool_mcp("get_dynamic_tools", {"group": group})
            assert not result.is_error, result.content[0].text


def server_process(config: Path) -> psutil.Process:
    """The dynamic-mcp server this test process started for `config`."""
    for child in psutil.Process().children(recursive=True):
        command = child.cmdline()
        if command[1:4] == ["-m", "server", str(config)]:
            return child
        if command[4:7] == ["-m", "server", str(config)] and (server := _forked(child)):
            return server
    raise LookupError(f"no dynamic-mcp process serves {config}")


def upstream_processes(server: psutil.Process) -> list[psutil.Process]:
    """Live processes started, directly or not, by one dynamic-mcp server."""
    return [p for p in descendants(server) if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(processes: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """Wait (bounded) for processes to exit; return those still alive."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if _alive(p)]


def raw_debug_session(
    config: Path,
    tool_calls: list[dict],
    *,
    list_tools: bool = False,
    env: dict | None = None,
    log_level: str = "debug",
) -> tuple[list[dict], str]:
    """Speak raw JSON-RPC to `python -m server CONFIG --log-level LOG_LEVEL` over its pipes.

    Initializes, makes each tools/call in turn (waiting for its response), lists the tools
    if asked, closes stdin, and returns every stdout message and the whole stderr.
    """
    requests = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        *[
            {"jsonrpc": "2.0", "id": index, "method": "tools/call", "params": params}
            for index, params in enumerate(tool_calls, start=1)
        ],
    ]
    if list_tools:
        requests.append({"jsonrpc": "2.0", "id": len(tool_calls) + 1, "method": "tools/list"})
    process = subprocess.Popen(
        [sys.executable, "-m", "server", str(config), "--log-level", log_level],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    messages = []
    for request in requests:
        process.stdin.write((json.dumps(request) + "\n").encode())
        process.stdin.flush()
        if "id" in request:
            messages += read_response(process, request["id"])
    stdout, stderr = process.communicate(timeout=30)
    messages += [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return messages, stderr.decode()


def read_response(process, request_id: int, limit: int = 20) -> list[dict]:
    """Read stdout messages up to the response to `request_id` (notifications may come first)."""
    messages = []
    for _ in range(limit):
        message = json.loads(process.stdout.readline())
        messages.append(message)
        if message.get("id") == request_id:
            return messages
    raise AssertionError(f"no response to request {request_id} in {limit} messages")
