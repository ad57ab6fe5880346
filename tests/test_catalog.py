"""The schema catalog answers a known group's expansion with nothing started, and idle
stdio upstreams are stopped and started again on their next use."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
from conftest import server_process, stdio_entry, upstream_processes, wait_gone
from fastmcp import Client

from server import build_server

NOTICE_WAIT = 15.0


async def expand(client: Client, group: str = "echo") -> list[str]:
    result = await client.call_tool_mcp("get_dynamic_tools", {"group": group})
    assert not result.is_error, result.content[0].text
    return [tool["name"] for tool in json.loads(result.content[0].text)]


async def pid(client: Client, group: str = "echo") -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": "pid", "args": {}}
    )
    assert not result.is_error, result.content[0].text
    return result.structured_content["result"]


async def test_a_known_group_is_expanded_from_the_catalog_with_nothing_started(
    write_config, connect, dynamic_mcp_home: Path
):
    config = write_config({"echo": stdio_entry()})
    first = await connect(config)
    listed = await expand(first)
    await first.close()

    again = await connect(config)  # a restart: the catalog is all it has
    from_catalog = await expand(again)
    started = upstream_processes(server_process(config))
    await pid(again)  # a call starts the upstream, as ever

    assert from_catalog == listed
    assert started == []
    assert (dynamic_mcp_home / "catalog" / "echo.json").exists()


async def test_an_edited_entry_or_no_catalog_asks_the_upstream(write_config, connect):
    config = write_config({"echo": stdio_entry()})
    warm = await connect(config)
    await expand(warm)
    await warm.close()

    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry(env={"NEW": "1"})}}))
    edited = await connect(config)
    await expand(edited)
    after_edit = upstream_processes(server_process(config))
    await edited.close()

    without = await connect(config, "--no-catalog")
    await expand(without)
    with_no_catalog = upstream_processes(server_process(config))

    assert len(after_edit) == 1  # the edit made the catalog's entry stale
    assert len(with_no_catalog) == 1


async def test_a_catalog_that_differs_from_the_live_tools_is_corrected_and_clients_told(
    write_config, dynamic_mcp_home: Path
):
    config = write_config({"echo": stdio_entry()})
    async with Client(build_server(config)) as client:
        await expand(client)
    kept = dynamic_mcp_home / "catalog" / "echo.json"
    data = json.loads(kept.read_text())
    data["tools"] = [tool for tool in data["tools"] if tool["name"] != "pixel"]
    kept.write_text(json.dumps(data))
    told = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            told.set()

    server = build_server(config)
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        await client.list_tools()
        stale = await expand(client)
        await pid(client)  # connects: the live list is read, and differs
        with anyio.fail_after(NOTICE_WAIT):
            await told.wait()
        fresh = await expand(client)

    assert "pixel" not in stale
    assert "pixel" in fresh
    assert "pixel" in {tool["name"] for tool in json.loads(kept.read_text())["tools"]}


async def test_the_catalog_keeps_no_secret(write_config, dynamic_mcp_home: Path, monkeypatch):
    monkeypatch.setenv("DMCP_TEST_CATALOG_SECRET", "catalog-secret-41f0")
    config = write_config({"echo": stdio_entry(env={"TOKEN": "${DMCP_TEST_CATALOG_SECRET}"})})
    async with Client(build_server(config)) as client:
        await expand(client)
    kept = (dynamic_mcp_home / "catalog" / "echo.json").read_text()
    assert "catalog-secret-41f0" not in kept
    assert '"echo"' in kept


async def test_the_settings_switch_turns_the_catalog_off(write_config, dynamic_mcp_home: Path):
    path = write_config({"echo": stdio_entry()})
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "settings": {"catalog": False}}))
    async with Client(build_server(path)) as client:
        await expand(client)
    assert not (dynamic_mcp_home / "catalog").exists()


async def gone(*pids: int) -> list[psutil.Process]:
    """Wait (bounded) for processes to end, while this event loop serves on; the ones left.

    A process may be gone before it is looked at: on a loaded machine a second's idle
    timeout can pass between a call's answer and this wait.
    """
    processes = []
    for number in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(number))
    return await anyio.to_thread.run_sync(lambda: wait_gone(processes, NOTICE_WAIT))


async def test_an_unused_stdio_upstream_is_stopped_and_started_again_when_needed(write_config):
    servers = {
        "idle": stdio_entry(idle_timeout="1s"),
        "busy": stdio_entry(),  # no timeout of its own, none by default: it stays
    }
    async with Client(build_server(write_config(servers))) as client:
        first = await pid(client, "idle")
        busy = await pid(client, "busy")
        stopped = await gone(first)
        second = await pid(client, "idle")
        still = await pid(client, "busy")

    assert stopped == []
    assert second != first
    assert still == busy


async def test_the_default_idle_timeout_applies_to_groups_without_their_own(write_config):
    path = write_config({"echo": stdio_entry()})
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "settings": {"idle_timeout": "1s"}}))
    async with Client(build_server(path)) as client:
        first = await pid(client)
        stopped = await gone(first)
        second = await pid(client)
    assert stopped == []
    assert second != first


async def test_search_is_a_third_tool_when_the_settings_ask_and_finds_known_tools(write_config):
    path = write_config({"echo": stdio_entry(), "other": stdio_entry(description="Other")})
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "settings": {"search": True}}))
    async with Client(build_server(path)) as client:
        names = [tool.name for tool in await client.list_tools()]
        await expand(client)  # the echo group's tools become known; "other" stays unknown
        found = await client.call_tool_mcp("search_dynamic_tools", {"query": "send text back"})

    assert names == ["get_dynamic_tools", "call_dynamic_tool", "search_dynamic_tools"]
    matches, note = found.content[0].text.split("\n")
    best = json.loads(matches)[0]
    assert best == {"group": "echo", "name": "echo", "description": "Send the text back unchanged."}
    assert note.endswith("(expand them with get_dynamic_tools): other")


async def test_without_the_setting_there_is_no_search_tool(write_config):
    async with Client(build_server(write_config({"echo": stdio_entry()}))) as client:
        names = [tool.name for tool in await client.list_tools()]
        refused = await client.call_tool_mcp("search_dynamic_tools", {"query": "echo"})
    assert names == ["get_dynamic_tools", "call_dynamic_tool"]
    assert refused.is_error
