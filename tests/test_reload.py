"""Editing dynamic-mcp.json (or its .env) while clients are connected: only what changed
changes, every way editors save works, a bad edit changes nothing, clients are told."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
import pytest
from conftest import REPO, dynamic_mcp_command, stdio_entry, wait_gone
from fastmcp import Client
from mcp.client.subscriptions import listen
from mcp.shared.subscriptions import ToolsListChanged

from groups.config import load_config
from server import build_server

NOTICE_WAIT = 15.0  # seconds for a save to be noticed, applied and announced


class Watching:
    """A client of an in-process dynamic-mcp over `config`, hearing list_changed."""

    def __init__(self, config: Path, client: Client, heard: list[str]) -> None:
        self.config = config
        self.client = client
        self.heard = heard
        self._changed = anyio.Event()

    def save(self, servers: dict[str, Any], how: str = "in place") -> None:
        """Save `servers` the way an editor would."""
        text = json.dumps({"mcpServers": servers}, indent=2)
        if how == "in place":
            self.config.write_text(text)
        elif how == "rename":  # vim, JetBrains: a new file renamed over the old one
            fresh = self.config.with_name(".dynamic-mcp.json.swp")
            fresh.write_text(text)
            os.replace(fresh, self.config)
        elif how == "truncate":  # VS Code: emptied first, then written
            with self.config.open("w") as file:
                file.flush()
                os.fsync(file.fileno())
                file.write(text)
        elif how == "recreate":  # some editors delete, then write anew
            self.config.unlink()
            self.config.write_text(text)

    async def told(self, count: int = 1) -> None:
        """Wait (bounded) until `count` tools/list_changed have been heard in all."""
        with anyio.fail_after(NOTICE_WAIT):
            while self.heard.count("tools") < count:
                self._changed = anyio.Event()
                await self._changed.wait()

    def hear(self, kind: str) -> None:
        self.heard.append(kind)
        self._changed.set()

    async def groups(self) -> list[str]:
        tools = await self.client.list_tools()
        return tools[0].input_schema["properties"]["group"]["enum"]

    async def pid(self, group: str) -> int:
        result = await self.client.call_tool_mcp(
            "call_dynamic_tool", {"group": group, "name": "pid", "args": {}}
        )
        assert not result.is_error, result.content[0].text
        return result.structured_content["result"]


@pytest.fixture
async def watching(write_config):
    """dynamic-mcp serving a config that the test then edits."""
    servers = {"keep": stdio_entry(), "drop": stdio_entry(), "edit": stdio_entry()}
    config = write_config(servers)
    heard: list[str] = []
    holder: list[Watching] = []

    async def on_message(message: Any) -> None:
        kinds = {
            mcp_types.ToolListChangedNotification: "tools",
            mcp_types.ResourceListChangedNotification: "resources",
            mcp_types.PromptListChangedNotification: "prompts",
        }
        kind = kinds.get(type(message))
        if kind and holder:
            holder[0].hear(kind)

    async with Client(build_server(config), mode="legacy", message_handler=on_message) as client:
        await client.list_tools()  # as clients do first: from now on it is told of changes
        holder.append(Watching(config, client, heard))
        yield holder[0]


async def test_a_save_adds_removes_and_changes_only_what_changed(watching: Watching):
    before = {group: await watching.pid(group) for group in ("keep", "drop", "edit")}
    replaced = [psutil.Process(before["drop"]), psutil.Process(before["edit"])]
    await watching.client.list_resources()
    heard_before = len(watching.heard)

    watching.save(
        {
            "keep": stdio_entry(),
            "edit": stdio_entry(env={"EDITED": "yes"}),
            "new": stdio_entry(description="New group"),
        }
    )
    await watching.told()

    assert await watching.groups() == ["keep", "edit", "new"]
    description = (await watching.client.list_tools())[0].description
    assert "- new: New group" in description and "drop" not in description
    assert await watching.pid("keep") == before["keep"]  # the same process
    assert await watching.pid("edit") != before["edit"]  # started anew
    assert await watching.pid("new") not in before.values()
    assert await anyio.to_thread.run_sync(wait_gone, replaced) == []
    removed = await watching.client.call_tool_mcp("get_dynamic_tools", {"group": "drop"})
    assert removed.content[0].text == "Unknown group 'drop'. Valid groups: edit, keep, new."
    # The removed and changed groups' resources were taken away: they were mounted.
    assert {"resources", "prompts"} <= set(watching.heard[heard_before:])
    resources = [str(r.uri) for r in await watching.client.list_resources()]
    assert "memo://drop/greeting" not in resources


@pytest.mark.parametrize("how", ["rename", "truncate", "recreate"])
async def test_every_way_editors_save_is_applied(watching: Watching, how: str):
    watching.save({"keep": stdio_entry(), "saved": stdio_entry(description=how)}, how)
    await watching.told()
    assert await watching.groups() == ["keep", "saved"]


async def test_a_bad_edit_keeps_the_last_good_config_and_the_next_good_one_applies(
    watching: Watching, caplog
):
    pid = await watching.pid("keep")
    watching.config.write_text('{"mcpServers": {"keep": {"description": "x",')  # half saved
    watching.config.write_text(json.dumps({"mcpServers": {"keep": {"command": "x"}}}))
    with anyio.fail_after(NOTICE_WAIT):
        while "still serving the last good config" not in caplog.text:  # noqa: ASYNC110
            await anyio.sleep(0.05)

    assert await watching.groups() == ["keep", "drop", "edit"]
    assert await watching.pid("keep") == pid
    warning = next(r for r in caplog.records if "last good config" in r.getMessage())
    assert warning.getMessage().startswith(f"{watching.config}: mcpServers.keep.description")

    watching.save({"keep": stdio_entry()})
    await watching.told()
    assert await watching.groups() == ["keep"]
    assert await watching.pid("keep") == pid


async def test_a_burst_of_saves_is_applied_once(watching: Watching, caplog):
    caplog.set_level(logging.INFO, logger="groups.reload")
    for index in range(5):
        watching.save({"keep": stdio_entry(), f"burst{index}": stdio_entry()})
    await watching.told(1)  # logged before the clients are told

    reloads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reloaded")]
    assert reloads == [f"reloaded {watching.config}: + burst4, - drop, - edit"]


async def test_filters_timeouts_and_feature_switches_apply_without_a_restart(watching: Watching):
    pid = await watching.pid("keep")
    prompts = [prompt.name for prompt in await watching.client.list_prompts()]
    heard_before = len(watching.heard)
    edited = stdio_entry(
        tools={"exclude": ["pixel"]}, timeout={"tools": "45s"}, features={"prompts": False}
    )
    watching.save({"keep": edited, "drop": stdio_entry(), "edit": stdio_entry()})
    await watching.told()

    expanded = await watching.client.call_tool_mcp("get_dynamic_tools", {"group": "keep"})
    assert await watching.pid("keep") == pid  # the same process
    assert "pixel" not in expanded.content[0].text and '"echo"' in expanded.content[0].text
    assert "keep_summarize" in prompts
    assert "prompts" in watching.heard[heard_before:]  # the switch took a mounted group's away
    assert "keep_summarize" not in [p.name for p in await watching.client.list_prompts()]


async def test_a_description_or_a_setting_alone_restarts_no_upstream_and_search_adds_its_tool(
    watching: Watching,
):
    """A new description is shown; turning search on adds the third tool; clients are told
    of each, and the upstream stays the same process throughout."""
    pid = await watching.pid("keep")
    servers = {"keep": stdio_entry(description="Kept, described anew")}
    watching.save(servers)
    await watching.told()
    description = (await watching.client.list_tools())[0].description
    assert "- keep: Kept, described anew" in description
    assert await watching.pid("keep") == pid
    told_before = watching.heard.count("tools")

    watching.config.write_text(json.dumps({"mcpServers": servers, "settings": {"search": True}}))
    await watching.told(told_before + 1)
    names = [tool.name for tool in await watching.client.list_tools()]
    assert names == ["get_dynamic_tools", "call_dynamic_tool", "search_dynamic_tools"]
    assert await watching.pid("keep") == pid  # a setting restarts no upstream


async def test_a_variable_changed_in_the_env_file_restarts_the_groups_that_use_it(
    write_config, tmp_path: Path, monkeypatch
):
    monkeypatch.delenv("DMCP_TEST_RELOADED", raising=False)
    (tmp_path / ".env").write_text("DMCP_TEST_RELOADED=before\n")
    config = write_config(
        {"uses": stdio_entry(env={"VALUE": "${DMCP_TEST_RELOADED}"}), "other": stdio_entry()}
    )
    async with Client(build_server(config)) as client:

        async def value() -> str:
            result = await client.call_tool_mcp(
                "call_dynamic_tool", {"group": "uses", "name": "env", "args": {"name": "VALUE"}}
            )
            return result.content[0].text

        async def other_pid() -> int:
            result = await client.call_tool_mcp(
                "call_dynamic_tool", {"group": "other", "name": "pid", "args": {}}
            )
            return result.structured_content["result"]

        assert await value() == "before"
        pid = await other_pid()
        (tmp_path / ".env").write_text("DMCP_TEST_RELOADED=after\n")
        with anyio.fail_after(NOTICE_WAIT):
            while await value() != "after":  # noqa: ASYNC110 - the upstream is polled
                await anyio.sleep(0.1)
        assert await other_pid() == pid


async def test_a_variable_first_read_as_its_upstream_started_restarts_it_only_when_it_changes(
    write_config, tmp_path: Path, monkeypatch
):
    # The .env is written after the config was read; the group's first request reads it
    # and starts its upstream with that value: a reload then has nothing to restart.
    monkeypatch.delenv("DMCP_TEST_LATE", raising=False)
    config = write_config({"late": stdio_entry(env={"VALUE": "${DMCP_TEST_LATE}"})})
    server = build_server(config, watch=False)  # reloaded by hand: no race with a watcher
    async with Client(server) as client:

        async def value_and_pid() -> tuple[str, int]:
            call = {"group": "late", "name": "env", "args": {"name": "VALUE"}}
            value = await client.call_tool_mcp("call_dynamic_tool", call)
            pid = await client.call_tool_mcp(
                "call_dynamic_tool", call | {"name": "pid", "args": {}}
            )
            return value.content[0].text, pid.structured_content["result"]

        (tmp_path / ".env").write_text("DMCP_TEST_LATE=first\n")
        value, pid = await value_and_pid()
        unchanged = server.registry.reconfigure(load_config(config))
        assert (value, unchanged.changed) == ("first", ())
        assert await value_and_pid() == ("first", pid)

        (tmp_path / ".env").write_text("DMCP_TEST_LATE=second\n")
        changed = server.registry.reconfigure(load_config(config))
        value, new_pid = await value_and_pid()
        assert (changed.changed, value) == (("late",), "second")
        assert new_pid != pid


async def value_of_v(client: Client) -> str:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "echo", "name": "env", "args": {"name": "V"}}
    )
    return result.content[0].text


async def test_a_call_in_flight_when_its_group_changes_finishes(write_config):
    config = write_config({"echo": stdio_entry()})
    asked = anyio.Event()
    answer = anyio.Event()

    async def elicit(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.set()
        with anyio.fail_after(NOTICE_WAIT):
            await answer.wait()
        return {"value": "after the reload"}

    async with Client(build_server(config), mode="legacy", elicitation_handler=elicit) as client:
        results: list[mcp_types.CallToolResult] = []

        async def ask() -> None:
            results.append(
                await client.call_tool_mcp(
                    "call_dynamic_tool",
                    {"group": "echo", "name": "ask", "args": {"question": "still there?"}},
                )
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ask)
            with anyio.fail_after(NOTICE_WAIT):
                await asked.wait()
            config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry(env={"V": "2"})}}))
            with anyio.fail_after(NOTICE_WAIT):
                while await value_of_v(client) != "2":  # noqa: ASYNC110 - reached anew
                    await anyio.sleep(0.1)
            answer.set()  # only now does the call begun before the reload get its answer

    assert not results[0].is_error, results[0].content[0].text
    assert results[0].content[0].text == "still there? -> after the reload"


async def test_a_2026_07_28_client_hears_the_change_on_its_listen_stream(write_config):
    config = write_config({"keep": stdio_entry()})
    async with Client(build_server(config)) as client:  # "auto": the 2026-07-28 era
        async with listen(client.session, tools_list_changed=True) as subscription:
            config.write_text(
                json.dumps({"mcpServers": {"keep": stdio_entry(), "new": stdio_entry()}})
            )
            with anyio.fail_after(NOTICE_WAIT):
                event = await subscription.__anext__()
        tools = await client.list_tools()

    assert event == ToolsListChanged()
    assert tools[0].input_schema["properties"]["group"]["enum"] == ["keep", "new"]


def test_sighup_reloads_a_config_the_watcher_cannot_see(tmp_path: Path):
    """The config is a link to a file elsewhere: only SIGHUP tells dynamic-mcp it changed."""
    real = tmp_path / "elsewhere" / "real.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"mcpServers": {"before": stdio_entry()}}))
    served = tmp_path / "served"
    served.mkdir()
    (served / "dynamic-mcp.json").symlink_to(real)
    process = subprocess.Popen(
        dynamic_mcp_command(served / "dynamic-mcp.json"),  # SIGHUP reaches it through its launcher
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        wire = RawClient(process)
        wire.request("initialize", INITIALIZE)
        wire.notify("notifications/initialized")
        before = wire.request("tools/list")
        real.write_text(json.dumps({"mcpServers": {"after": stdio_entry()}}))
        os.kill(process.pid, signal.SIGHUP)
        wire.wait_for("notifications/tools/list_changed")
        after = wire.request("tools/list")
    finally:
        process.stdin.close()
        process.wait(15)
        process.stdout.close()

    assert enum_of(before) == ["before"]
    assert enum_of(after) == ["after"]


INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "test", "version": "1"},
}


def enum_of(listing: dict) -> list[str]:
    return listing["tools"][0]["inputSchema"]["properties"]["group"]["enum"]


class RawClient:
    """JSON-RPC lines over a server process's pipes, every read bounded in time."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.next_id = 0

    def notify(self, method: str) -> None:
        self._send({"jsonrpc": "2.0", "method": method})

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        return self._read_until(lambda message: message.get("id") == self.next_id)["result"]

    def wait_for(self, method: str) -> dict:
        return self._read_until(lambda message: message.get("method") == method)

    def _send(self, message: dict) -> None:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def _read_until(self, wanted: Any) -> dict:
        for _ in range(50):
            ready, _, _ = select.select([self.process.stdout], [], [], NOTICE_WAIT)
            if not ready:
                break
            message = json.loads(self.process.stdout.readline())
            if wanted(message):
                return message
        raise AssertionError("the awaited message did not come")


async def test_a_symlinked_config_reloads_when_its_target_is_saved(tmp_path: Path):
    """Dotfile managers link the config to a file kept elsewhere; editors save that file."""
    dotfiles, project = tmp_path / "dotfiles", tmp_path / "project"
    dotfiles.mkdir()
    project.mkdir()
    target = dotfiles / "dynamic-mcp.json"
    target.write_text(json.dumps({"mcpServers": {"keep": stdio_entry()}}))
    link = project / "dynamic-mcp.json"
    link.symlink_to(target)
    holder: list[Watching] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification) and holder:
            holder[0].hear("tools")

    async with Client(build_server(link), mode="legacy", message_handler=on_message) as client:
        await client.list_tools()
        holder.append(watching := Watching(target, client, []))
        watching.save({"keep": stdio_entry(), "linked": stdio_entry()})
        await watching.told()
        assert await watching.groups() == ["keep", "linked"]
