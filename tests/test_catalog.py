"""The schema catalog answers a known group's expansion with nothing started, and idle
stdio upstreams are stopped and started again on their next use."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
from conftest import (
    ECHO_SERVER,
    UPSTREAMS,
    server_process,
    stdio_entry,
    upstream_processes,
    wait_gone,
)
from fastmcp import Client
from served_tools import NewChildren, warm_catalog

from groups.catalog import Catalog
from server import build_server

NOTICE_WAIT = 15.0


async def expand(client: Client, group: str = "echo") -> list[str]:
    result = await client.call_tool_mcp("get_dynamic_tools", {"group": group})
    assert not result.is_error, result.content[0].text
    return [tool["name"] for tool in json.loads(result.content[0].text)]


def catalog_files(home: Path) -> list[Path]:
    return sorted((home / "catalog").glob("*.json"))


async def kept_names(kept: Path) -> set[str]:
    """The tool names the store keeps in a catalog file, read afresh (nothing in memory)."""
    return {tool.name for tool in await Catalog().get(kept.stem) or []}


async def pid(client: Client, group: str = "echo") -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": "pid", "args": {}}
    )
    assert not result.is_error, result.content[0].text
    return result.structured_content["result"]


async def test_a_known_group_is_expanded_from_the_catalog_with_nothing_started(
    write_config, dynamic_mcp_home: Path
):
    # Not started meanwhile either (tests/test_start_on_expand.py: by default it would be).
    config = write_config({"echo": stdio_entry(start_on_expand=False)})
    async with Client(build_server(config)) as first:  # the catalog learns the tools
        listed = await expand(first)

    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    async with Client(build_server(config)) as again:  # a restart: the catalog is all it has
        from_catalog = await expand(again)
        started = upstream_processes(server)
        await pid(again)  # a call starts the upstream, as ever

    assert from_catalog == listed
    assert started == []
    assert len(catalog_files(dynamic_mcp_home)) == 1


async def test_an_edited_entry_or_no_catalog_asks_the_upstream(write_config, connect):
    config = write_config({"echo": stdio_entry()})
    await warm_catalog(config, "echo")

    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry(env={"NEW": "1"})}}))
    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    async with Client(build_server(config)) as edited:
        await expand(edited)
        after_edit = upstream_processes(server)

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
    [kept] = catalog_files(dynamic_mcp_home)
    catalog = Catalog()  # another process's catalog, from this one's view
    kept_tools = await catalog.get(kept.stem) or []
    await catalog.put(kept.stem, [tool for tool in kept_tools if tool.name != "pixel"])
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
    assert "pixel" in await kept_names(kept)


async def test_the_catalog_keeps_no_secret(write_config, dynamic_mcp_home: Path, monkeypatch):
    monkeypatch.setenv("DMCP_TEST_CATALOG_SECRET", "catalog-secret-41f0")
    config = write_config({"echo": stdio_entry(env={"TOKEN": "${DMCP_TEST_CATALOG_SECRET}"})})
    async with Client(build_server(config)) as client:
        await expand(client)
    [kept_file] = catalog_files(dynamic_mcp_home)
    kept = kept_file.read_text()
    assert "catalog-secret-41f0" not in kept
    assert '"echo"' in kept  # the tool's name: the entry was written


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
    other = stdio_entry(description="Other", env={"OTHER": "1"})  # another upstream
    path = write_config({"echo": stdio_entry(), "other": other})
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


GROWING_SERVER = UPSTREAMS / "growing.py"


def project(root: Path, script: Path) -> Path:
    """A project folder whose config starts its own `server.py` by a relative path."""
    root.mkdir()
    shutil.copy(script, root / "server.py")
    shutil.copy(UPSTREAMS / "lean.py", root)  # which the test upstreams import first
    config = root / "dynamic-mcp.json"
    entry = {"description": "This project's server", "command": sys.executable}
    config.write_text(json.dumps({"mcpServers": {"local": {**entry, "args": ["server.py"]}}}))
    return config


async def test_two_projects_starting_server_py_by_the_same_words_keep_their_own_tools(
    tmp_path: Path, monkeypatch
):
    first = project(tmp_path / "a", ECHO_SERVER)
    second = project(tmp_path / "b", GROWING_SERVER)
    monkeypatch.chdir(first.parent)  # a client starts dynamic-mcp in its project
    async with Client(build_server(first)) as client:
        in_first = await expand(client, "local")
    monkeypatch.chdir(second.parent)
    async with Client(build_server(second)) as client:
        in_second = await expand(client, "local")
        grown = await client.call_tool_mcp(
            "call_dynamic_tool", {"group": "local", "name": "grow", "args": {"name": "x"}}
        )

    assert "echo" in in_first
    assert in_second == ["grow", "add_note"]
    assert not grown.is_error, grown.content[0].text


async def test_groups_named_alike_but_for_letter_case_never_share_a_file(
    write_config, dynamic_mcp_home: Path
):
    config = write_config({"Echo": stdio_entry(), "echo": stdio_entry(GROWING_SERVER)})
    async with Client(build_server(config)) as client:
        await expand(client, "Echo")
        await expand(client, "echo")
    async with Client(build_server(config)) as client:  # a restart: from the catalog
        upper = await expand(client, "Echo")
        lower = await expand(client, "echo")

    names = [path.name.lower() for path in catalog_files(dynamic_mcp_home)]
    assert len(set(names)) == 2  # distinct on a file system that ignores case, too
    assert "echo" in upper
    assert lower == ["grow", "add_note"]


async def test_editing_a_filter_or_a_timeout_keeps_the_catalog_entry(write_config):
    config = write_config({"echo": stdio_entry()})
    await warm_catalog(config, "echo")

    edited = stdio_entry(
        tools={"exclude": ["pixel"]},
        timeout={"tools": "45s"},
        idle_timeout="1h",
        start_on_expand=False,  # nothing starts meanwhile, so the expansion alone shows
    )
    config.write_text(json.dumps({"mcpServers": {"echo": edited}}))
    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    async with Client(build_server(config)) as again:  # a restart on the edited entry
        listed = await expand(again)
        started = upstream_processes(server)

    assert started == []  # answered from the catalog
    assert "pixel" not in listed and "echo" in listed  # with the new filter


KINDS = {
    mcp_types.ToolListChangedNotification: "tools",
    mcp_types.ResourceListChangedNotification: "resources",
    mcp_types.PromptListChangedNotification: "prompts",
}


class Heard:
    """The list_changed notifications a client has heard, by kind, and a way to wait for them."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self._changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if kind := KINDS.get(type(message)):
            self.kinds.append(kind)
            self._changed.set()

    async def until(self, kind: str, count: int) -> None:
        with anyio.fail_after(NOTICE_WAIT):
            while self.kinds.count(kind) < count:
                self._changed = anyio.Event()
                await self._changed.wait()


async def call(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "echo", "name": name, "args": args}
    )
    assert not result.is_error, result.content[0].text
    return result.content[0].text


async def test_a_tool_the_upstream_adds_at_run_time_reaches_expansion_call_and_catalog(
    write_config, dynamic_mcp_home: Path
):
    config = write_config({"echo": stdio_entry(GROWING_SERVER)})
    async with Client(build_server(config)) as client:
        before = await expand(client)
        await call(client, "grow", {"name": "fresh"})  # the upstream says its tools changed
        with anyio.fail_after(NOTICE_WAIT):
            while "fresh" not in (after := await expand(client)):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        answer = await call(client, "fresh", {})

    [kept] = catalog_files(dynamic_mcp_home)
    assert "fresh" not in before
    assert after == ["grow", "add_note", "fresh"]
    assert answer == "fresh is new"
    assert "fresh" in await kept_names(kept)


async def test_resources_the_upstream_adds_at_run_time_are_announced_to_clients(write_config):
    config = write_config({"echo": stdio_entry(GROWING_SERVER)})
    heard = Heard()
    async with Client(build_server(config), mode="legacy", message_handler=heard) as client:
        await client.list_tools()  # as clients do first: from now on it is told of changes
        await expand(client)  # mounts the group: its resources are announced once
        await heard.until("resources", 1)
        await call(client, "add_note", {"name": "second"})
        await heard.until("resources", 2)
        resources = [str(resource.uri) for resource in await client.list_resources()]

    assert "note://echo/second" in resources
