"""A config dynamic-mcp cannot use, served over stdio anyway: an MCP client shows nothing
of a server that exits ("Connection closed"), so what is wrong is said where it looks, in
`get_dynamic_tools`' description and in every call's error, and a save that fixes it is
served. The server is a real process on real pipes; nothing is started meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import REPO, stdio_entry
from test_reload import INITIALIZE, RawClient

SECRET_ENV = "env-value-never-shown-1"
SECRET_HEADER = "header-value-never-shown-2"
BROKEN = {
    "mcpServers": {
        "time": {
            "description": "Time",
            "comand": sys.executable,
            "args": ["-m", "mcp_server_time"],
            "env": {"TOKEN": SECRET_ENV},
        },
        "web": {
            "url": "https://example.test/mcp",
            "headers": {"Authorization": f"Bearer {SECRET_HEADER}"},
        },
    }
}
INTRO = "dynamic-mcp cannot use its config, so it serves no group until the file is fixed"


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes], RawClient]]:
    """`python -m server CONFIG --log-level debug` on a broken config, initialized."""
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps(BROKEN))
    with (tmp_path / "stderr.log").open("wb") as log:  # a file: a full pipe would block it
        process = subprocess.Popen(
            [sys.executable, "-m", "server", str(config), "--log-level", "debug"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    wire = RawClient(process)
    try:
        yield config, process, wire
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(15)
        process.stdout.close()  # type: ignore[union-attr]


def description(listing: dict) -> str:
    return listing["tools"][0]["description"]


def call(wire: RawClient, tool: str, arguments: dict) -> dict:
    return wire.request("tools/call", {"name": tool, "arguments": arguments})


def test_a_broken_config_is_served_saying_every_problem_and_starts_nothing(broken):
    config, process, wire = broken

    initialized = wire.request("initialize", INITIALIZE)
    wire.notify("notifications/initialized")
    listing = wire.request("tools/list")
    expanded = call(wire, "get_dynamic_tools", {"group": "time"})
    called = call(wire, "call_dynamic_tool", {"group": "time", "name": "get_current_time"})
    children = psutil.Process(process.pid).children(recursive=True)
    process.stdin.close()
    process.wait(15)
    log = (config.parent / "stderr.log").read_text()

    problems = (
        f"{config}: 2 problems:\n"
        "  mcpServers.time.comand: unknown field; did you mean 'command'?\n"
        "  mcpServers.web.description: required field is missing"
    )
    assert initialized["serverInfo"]["name"] == "dynamic-mcp"
    assert [tool["name"] for tool in listing["tools"]] == ["get_dynamic_tools", "call_dynamic_tool"]
    assert description(listing).endswith(
        f"Groups:\n(none) {INTRO} (a fix applies as soon as it is saved).\n{problems}"
    )
    assert listing["tools"][0]["inputSchema"]["properties"]["group"] == {"type": "string"}
    for result in (expanded, called):
        assert result["isError"] is True
        assert (
            result["content"][0]["text"]
            == f"{INTRO} (a fix applies as soon as it is saved).\n{problems}"
        )
    assert children == []  # nothing started: no upstream, for a config nobody can trust yet
    assert f"serving no group until the config is fixed: {problems}" in log
    everything = json.dumps([listing, expanded, called]) + log
    assert SECRET_ENV not in everything and SECRET_HEADER not in everything


def test_saving_a_fix_serves_the_groups_and_a_new_problem_is_shown_meanwhile(broken):
    config, _, wire = broken
    wire.request("initialize", INITIALIZE)
    wire.notify("notifications/initialized")
    wire.request("tools/list")  # as clients do first: from now on it is told of changes

    config.write_text('{"mcpServers": {"echo": {"description": "Echo",}}}')
    wire.wait_for("notifications/tools/list_changed")
    still_broken = description(wire.request("tools/list"))
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    wire.wait_for("notifications/tools/list_changed")
    fixed = wire.request("tools/list")
    echoed = call(
        wire, "call_dynamic_tool", {"group": "echo", "name": "echo", "args": {"text": "hi"}}
    )

    assert still_broken.endswith(
        f"{config}:1:48: invalid JSON: Expecting property name enclosed in double quotes; "
        "likely a trailing comma just before: JSON allows none after the last item"
    )
    assert fixed["tools"][0]["inputSchema"]["properties"]["group"]["enum"] == ["echo"]
    assert "- echo: Echo test server" in description(fixed)
    assert echoed["content"][0]["text"] == "hi"
