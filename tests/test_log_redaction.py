"""Every line dynamic-mcp writes to stderr goes through the redaction: its own log lines,
its libraries', and what its stdio upstreams print themselves."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import psutil
from conftest import REPO, UPSTREAMS, free_port, raw_debug_session, wait_for_port
from fastmcp import Client
from test_cli import SCRIPT

from server import build_server

CHATTY_SERVER = UPSTREAMS / "chatty_server.py"
ENV_TOKEN = "literal-env-token-6d3b"
ARG_TOKEN = "literal-arg-token-2f9c"
CRASH_SECRET = "literal-crash-secret-91aa"
FASTMCP = str(Path(sys.executable).parent / "fastmcp")
CHATTY = {
    "description": "Prints its credentials at start-up",
    "command": sys.executable,
    "args": [str(CHATTY_SERVER), "--token", ARG_TOKEN],
    "env": {"API_TOKEN": ENV_TOKEN},
}


def test_an_upstreams_stderr_is_logged_under_its_group_with_its_secrets_hidden(write_config):
    call = {
        "name": "call_dynamic_tool",
        "arguments": {"group": "chatty", "name": "echo", "args": {"text": "hi"}},
    }

    messages, log = raw_debug_session(write_config({"chatty": CHATTY}), [call], log_level="info")

    assert [m["result"]["content"][0]["text"] for m in messages if m.get("id") == 1] == ["hi"]
    lines = log.splitlines()
    assert "dynamic-mcp INFO groups.upstream.stderr: chatty: chatty upstream starting" in lines
    assert "dynamic-mcp INFO groups.upstream.stderr: chatty: using API_TOKEN=***" in lines
    assert "dynamic-mcp INFO groups.upstream.stderr: chatty: using --token ***" in lines
    assert ENV_TOKEN not in log
    assert ARG_TOKEN not in log


def _pipe_fds(pid: int | str, inode: str) -> dict[int, int]:
    """The fds of process `pid` on pipe `inode`, each with its access mode (O_RDONLY…)."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != f"pipe:[{inode}]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = int(re.search(r"flags:\s*(\d+)", info.read()).group(1), 8)
        except FileNotFoundError:  # an fd closed while we looked
            continue
        found[int(fd)] = flags & os.O_ACCMODE
    return found


class _Heard(logging.Handler):
    """Sets `event` when a record's message is `message`."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message, self.event = message, anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.event.set()


async def test_an_upstreams_stderr_pipe_is_read_by_us_alone_and_closed_with_its_session(
    write_config, caplog
):
    caplog.set_level(logging.INFO, logger="groups.upstream.stderr")  # its ordinary lines
    started = _Heard("chatty: chatty upstream starting")
    logging.getLogger("groups.upstream.stderr").addHandler(started)
    server = build_server(write_config({"chatty": CHATTY}))
    try:
        async with Client(server) as client:
            await client.call_tool_mcp("get_dynamic_tools", {"group": "chatty"})
            # This worker's other children (a session's shared upstreams) are not it.
            children = psutil.Process().children()
            (child,) = [p for p in children if str(CHATTY_SERVER) in p.cmdline()]
            stderr = os.readlink(f"/proc/{child.pid}/fd/2")
            inode = stderr.removeprefix("pipe:[").removesuffix("]")
            ours, childs = _pipe_fds("self", inode), _pipe_fds(child.pid, inode)
            with anyio.fail_after(5):  # the line is in the pipe: the loop reads it soon
                await started.event.wait()
    finally:
        logging.getLogger("groups.upstream.stderr").removeHandler(started)

    assert stderr.startswith("pipe:[")
    assert list(ours.values()) == [os.O_RDONLY]  # our copy of the write end is closed
    assert set(childs.values()) == {os.O_WRONLY}  # the child never got the read end
    assert _pipe_fds("self", inode) == {}  # nothing of it is left once the session closed


def test_a_warning_and_a_crash_are_written_through_the_redaction():
    script = (
        "import warnings\n"
        "from groups.secrets import Redactor\n"
        "from groups.serving.logs import configure_logging\n"
        "redactor = Redactor()\n"
        f"redactor.add({CRASH_SECRET!r})\n"
        "configure_logging('warning', redactor)\n"
        f"warnings.warn('careless {CRASH_SECRET}')\n"
        f"raise RuntimeError('careless {CRASH_SECRET}')\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1
    assert "dynamic-mcp WARNING py.warnings: " in done.stderr
    assert "dynamic-mcp CRITICAL dynamic_mcp: stopped on an unexpected error" in done.stderr
    assert "RuntimeError: careless ***" in done.stderr
    assert CRASH_SECRET not in done.stderr


def test_fastmcp_run_logs_uvicorn_and_its_own_log_level_through_the_redaction(write_config):
    port = free_port()
    serve = ["--transport", "http", "--no-banner", "--port", str(port), "--log-level", "INFO"]
    process = subprocess.Popen(
        [FASTMCP, "run", "server.py:mcp", *serve],
        cwd=REPO,
        env={**os.environ, "DYNAMIC_MCP_CONFIG": str(write_config({"chatty": CHATTY}))},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        # uvicorn logs each request's path, query included, before the answer is sent.
        answer = httpx2.post(f"http://127.0.0.1:{port}/mcp?access_token={CRASH_SECRET}")
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=15)

    assert answer.is_error
    assert "dynamic-mcp INFO fastmcp.server.mixins.transport: Starting MCP server" in stderr
    assert "dynamic-mcp INFO uvicorn.access: " in stderr
    assert "/mcp?access_token=*** HTTP/1.1" in stderr
    assert CRASH_SECRET not in stdout + stderr


def test_a_terminal_command_shows_an_upstreams_stderr_with_its_secrets_hidden(write_config):
    config = write_config({"chatty": CHATTY})

    call = [SCRIPT, "call", "chatty", "echo", "--args", '{"text": "hi"}', "--config", str(config)]
    done = subprocess.run(
        [*call, "--log-level", "info"],  # an upstream's ordinary stderr is INFO
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr
    assert "chatty: using --token ***" in done.stderr
    assert ARG_TOKEN not in done.stderr
    assert ENV_TOKEN not in done.stderr
