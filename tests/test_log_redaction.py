"""Every line dynamic-mcp writes to stderr goes through the redaction: its own log lines,
its libraries', and what its stdio upstreams print themselves."""

from __future__ import annotations

import logging
import os
import re
import sys

import anyio
import psutil
from conftest import UPSTREAMS, raw_debug_session
from fastmcp import Client

from server import build_server

CHATTY_SERVER = UPSTREAMS / "chatty_server.py"
ENV_TOKEN = "literal-env-token-6d3b"
ARG_TOKEN = "literal-arg-token-2f9c"
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

    messages, log = raw_debug_session(write_config({"chatty": CHATTY}), [call], log_level="warning")

    assert [m["result"]["content"][0]["text"] for m in messages if m.get("id") == 1] == ["hi"]
    lines = log.splitlines()
    assert "dynamic-mcp WARNING groups.upstream_stderr: chatty: chatty upstream starting" in lines
    assert "dynamic-mcp WARNING groups.upstream_stderr: chatty: using API_TOKEN=***" in lines
    assert "dynamic-mcp WARNING groups.upstream_stderr: chatty: using --token ***" in lines
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
    write_config,
):
    started = _Heard("chatty: chatty upstream starting")
    logging.getLogger("groups.upstream_stderr").addHandler(started)
    server = build_server(write_config({"chatty": CHATTY}))
    try:
        async with Client(server) as client:
            await client.call_tool_mcp("get_dynamic_tools", {"group": "chatty"})
            (child,) = psutil.Process().children()
            stderr = os.readlink(f"/proc/{child.pid}/fd/2")
            inode = stderr.removeprefix("pipe:[").removesuffix("]")
            ours, childs = _pipe_fds("self", inode), _pipe_fds(child.pid, inode)
            with anyio.fail_after(5):  # the line is in the pipe: the loop reads it soon
                await started.event.wait()
    finally:
        logging.getLogger("groups.upstream_stderr").removeHandler(started)

    assert stderr.startswith("pipe:[")
    assert list(ours.values()) == [os.O_RDONLY]  # our copy of the write end is closed
    assert set(childs.values()) == {os.O_WRONLY}  # the child never got the read end
    assert _pipe_fds("self", inode) == {}  # nothing of it is left once the session closed
