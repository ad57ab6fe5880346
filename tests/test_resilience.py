"""Upstreams that crash, hang, never start, write junk or answer huge: each fails alone,
with one readable line for the model, and the server keeps serving everything else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
import pytest
from conftest import ECHO_SERVER, UPSTREAMS, descendants, free_port, serve_echo, stdio_entry
from fastmcp import Client
from mcp.shared.exceptions import MCPError as McpError

from server import build_server

MISBEHAVING = UPSTREAMS / "misbehaving.py"


def misbehaving(*args: str, **extra: Any) -> dict[str, Any]:
    return stdio_entry(
        MISBEHAVING, "Misbehaving test server", args=[str(MISBEHAVING), *args], **extra
    )


async def call(client: Client, group: str, name: str, args: Any = None) -> mcp_types.CallToolResult:
    payload = {"group": group, "name": name} | ({} if args is None else {"args": args})
    return await client.call_tool_mcp("call_dynamic_tool", payload)


async def expand(client: Client, group: str) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp("get_dynamic_tools", {"group": group})


@pytest.fixture
def serve(write_config):
    """An in-memory client of a dynamic-mcp built from `servers` (upstreams are real processes)."""

    def make(servers: dict[str, Any], **client_options: Any) -> Client:
        return Client(build_server(write_config(servers)), **client_options)

    return make


async def test_a_crashed_stdio_upstream_is_restarted_by_the_next_request(serve):
    async with serve({"flaky": misbehaving("crash-after", "2")}) as client:
        first = await call(client, "flaky", "pid")
        await call(client, "flaky", "pid")
        in_flight = await call(client, "flaky", "pid")  # the upstream dies on this one
        after = await call(client, "flaky", "pid")

    assert in_flight.is_error
    assert "'flaky'" in in_flight.content[0].text
    assert not after.is_error
    assert after.structured_content["result"] != first.structured_content["result"]


async def test_an_upstream_that_exits_at_start_fails_only_its_group(serve):
    async with serve({"dead": misbehaving("exit-at-start"), "echo": stdio_entry()}) as client:
        dead = await expand(client, "dead")
        again = await expand(client, "dead")
        alive = await call(client, "echo", "echo", {"text": "still here"})
        description = (await client.list_tools())[0].description

    assert dead.is_error and again.is_error
    assert dead.content[0].text.startswith("Group 'dead' is unavailable")
    assert "next attempt in" in again.content[0].text  # answered at once, not after a retry
    assert alive.content[0].text == "still here"
    assert "Unavailable groups:\n- dead: " in description
    assert "- echo: Echo test server" in description


async def test_a_missing_command_is_a_permanent_failure_naming_the_command(serve):
    async with serve({"typo": {"description": "x", "command": "no-such-command-dmcp"}}) as client:
        result = await expand(client, "typo")

    assert result.is_error
    assert result.content[0].text == (
        "Group 'typo' is unavailable: command not found: 'no-such-command-dmcp'"
    )


async def test_a_failed_group_recovers_in_the_background_and_clients_are_told(
    serve, tmp_path: Path
):
    changed = anyio.Event()
    changes = []

    async def on_message(message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            changes.append(message)
            if len(changes) == 2:  # failed, then recovered
                changed.set()

    servers = {"late": misbehaving("fail-first", "1", str(tmp_path / "runs"))}
    async with serve(servers, message_handler=on_message, mode="legacy") as client:
        failed = await expand(client, "late")
        with anyio.fail_after(15):
            await changed.wait()
        recovered = await expand(client, "late")
        description = (await client.list_tools())[0].description

    assert failed.is_error
    assert not recovered.is_error
    assert "Unavailable groups" not in description


async def wait_for_file(path: Path) -> None:
    """Wait (bounded) for a file another process writes."""
    with anyio.fail_after(10):
        while not path.exists():  # noqa: ASYNC110, ASYNC240 - another process writes it
            await anyio.sleep(0.05)


async def test_a_hanging_call_times_out_naming_the_limit_and_cancels_upstream(
    serve, tmp_path: Path, monkeypatch
):
    marker = tmp_path / "hang"
    monkeypatch.setenv("HANG_MARKER", str(marker))
    servers = {
        "slow": misbehaving("slow-start", "0", timeout={"tools": "2s"}),
        "echo": stdio_entry(),
    }
    async with serve(servers) as client:
        await expand(client, "echo")
        results: dict[str, mcp_types.CallToolResult] = {}

        async def hang() -> None:
            results["slow"] = await call(client, "slow", "hang")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hang)
            await wait_for_file(marker.with_suffix(".started"))  # the upstream is hanging
            results["echo"] = await call(client, "echo", "echo", {"text": "meanwhile"})
            # Answered while the hang was still in flight: before the time limit cancelled it.
            answered_during_the_hang = "slow" not in results and not marker.exists()
        await wait_for_file(marker)

    assert answered_during_the_hang
    assert results["echo"].content[0].text == "meanwhile"
    assert results["slow"].is_error
    assert (
        results["slow"]
        .content[0]
        .text.startswith("Tool 'hang' in group 'slow' timed out after 2s.")
    )
    assert marker.read_text() == "cancelled"


async def test_slow_resources_and_prompts_time_out_by_their_own_limits(serve):
    servers = {"slow": misbehaving("slow-start", "0", timeout={"resources": 0.3, "prompts": 0.3})}
    async with serve(servers) as client:
        await expand(client, "slow")  # mounts the group: its resources and prompts appear
        with pytest.raises(McpError) as resource:
            await client.read_resource("slow://slow/forever")
        with pytest.raises(McpError) as prompt:
            await client.get_prompt("slow_slow_prompt")

    assert "Resource 'slow://slow/forever' in group 'slow' timed out after 0.3s" in str(
        resource.value
    )
    assert "Prompt 'slow_slow_prompt' in group 'slow' timed out after 0.3s" in str(prompt.value)


async def test_an_upstream_that_writes_junk_to_stdout_still_works_as_a_process_of_its_own(
    serve,
):
    """Also the guard for the tests here: the script is a real upstream, not code run
    in-process."""
    async with serve({"junk": misbehaving("junk")}) as client:
        result = await call(client, "junk", "echo", {"text": "ok"})
        pid = (await call(client, "junk", "pid")).structured_content["result"]
        ours = {p.pid for p in descendants()}  # a forked upstream in its launcher's place
        commands = [p.cmdline() for p in psutil.Process().children(recursive=True)]
    assert result.content[0].text == "ok"
    assert pid != os.getpid() and pid in ours
    assert any(str(MISBEHAVING) in command for command in commands)


async def test_a_silent_upstream_fails_after_the_connect_timeout(serve, monkeypatch):
    monkeypatch.setattr("groups.upstream.connect.CONNECT_TIMEOUT", 1.0)
    async with serve({"mute": misbehaving("slow-start", "30")}) as client:
        result = await expand(client, "mute")
    assert result.is_error
    assert result.content[0].text == "Group 'mute' is unavailable: no answer within 1s"


async def test_a_result_of_several_megabytes_comes_through_whole(serve):
    async with serve({"big": misbehaving("slow-start", "0")}) as client:
        result = await call(client, "big", "big", {"megabytes": 5})
    assert len(result.content[0].text) == 5 * 1024 * 1024


async def test_a_disabled_group_is_hidden_entirely(serve):
    servers = {"on": stdio_entry(), "off": stdio_entry(description="Off", enabled=False)}
    async with serve(servers) as client:
        tools = await client.list_tools()
        result = await expand(client, "off")

    assert tools[0].input_schema["properties"]["group"]["enum"] == ["on"]
    assert "off" not in tools[0].description
    assert result.content[0].text == "Unknown group 'off'. Valid groups: on."


async def test_features_switch_off_tools_resources_and_prompts(serve):
    servers = {
        "quiet": stdio_entry(features={"tools": False, "resources": False, "prompts": False})
    }
    async with serve(servers) as client:
        expanded = await expand(client, "quiet")
        called = await call(client, "quiet", "echo", {"text": "x"})
        resources = await client.list_resources()
        templates = await client.list_resource_templates()
        prompts = await client.list_prompts()
        with pytest.raises(McpError):
            await client.read_resource("memo://quiet/greeting")
        with pytest.raises(McpError):
            await client.get_prompt("quiet_summarize", {"topic": "MCP"})

    assert expanded.is_error and called.is_error
    assert expanded.content[0].text == (
        "Group 'quiet' does not offer tools: its config sets features.tools to false."
    )
    assert resources == templates == prompts == []


async def test_bad_arguments_are_error_results_naming_the_problem_the_upstreams_unchanged(
    serve,
):
    async with serve({"echo": stdio_entry()}) as client:
        # The meta-tool's own schema refuses a string; the upstream's refuses the wrong key.
        not_an_object = await call(client, "echo", "echo", "not an object")
        wrong = await call(client, "echo", "echo", {"wrong": 1})
    async with Client(ECHO_SERVER) as direct:
        expected = await direct.call_tool_mcp("echo", {"wrong": 1})

    assert not_an_object.is_error
    assert "args" in not_an_object.content[0].text
    assert wrong.is_error
    assert "text" in wrong.content[0].text
    assert wrong.content[0].text == expected.content[0].text  # its own error, unchanged


async def test_an_expanded_groups_resources_and_prompts_reach_the_client(serve):
    async with serve({"echo": stdio_entry()}) as client:
        before = await client.list_resources()
        await expand(client, "echo")
        resources = [str(r.uri) for r in await client.list_resources()]
        text = await client.read_resource("memo://echo/greeting")
        prompts = [p.name for p in await client.list_prompts()]
        rendered = await client.get_prompt("echo_summarize", {"topic": "MCP"})

    assert before == []  # nothing is started just to list resources
    assert resources == ["memo://echo/greeting"]
    assert text[0].text == "hello from the echo upstream"
    assert prompts == ["echo_summarize"]
    assert rendered.messages[0].content.text == "Summarize MCP in one line."


async def test_turning_resources_off_hides_them(serve):
    async with serve({"echo": stdio_entry(features={"resources": False})}) as client:
        await expand(client, "echo")
        resources = await client.list_resources()
        prompts = [p.name for p in await client.list_prompts()]
    assert resources == []
    assert prompts == ["echo_summarize"]


async def test_http_401_is_a_permanent_failure_naming_the_status(serve, status_url):
    async with serve({"locked": {"description": "x", "url": status_url(401)}}) as client:
        result = await expand(client, "locked")
    assert result.is_error
    assert result.content[0].text.startswith("Group 'locked' is unavailable: HTTP 401 from")


async def test_a_refused_connection_is_reported_then_retried_until_it_is_served(serve):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"  # nothing listens there yet
    recovered = anyio.Event()
    changes = 0

    async def on_message(message: Any) -> None:
        nonlocal changes
        if isinstance(message, mcp_types.ToolListChangedNotification):
            changes += 1
            if changes == 2:  # failed, then recovered by a background retry
                recovered.set()

    servers = {"down": {"description": "x", "url": url}}
    async with serve(servers, message_handler=on_message, mode="legacy") as client:
        first = await expand(client, "down")
        again = await expand(client, "down")
        echo = serve_echo("http", port)
        next(echo)  # now something listens: the retry 2 s after the failure finds it
        try:
            with anyio.fail_after(15):
                await recovered.wait()
            after = await expand(client, "down")
        finally:
            echo.close()

    assert first.content[0].text.startswith("Group 'down' is unavailable: cannot connect")
    assert "retrying in the background, next attempt in" in again.content[0].text
    assert not after.is_error


async def test_groups_expanded_at_once_all_come_up_and_fifty_concurrent_calls_get_their_answer(
    serve, monkeypatch
):
    """Cold starts are queued, so a burst of them never times out together and loops; then
    fifty concurrent calls over the five groups each get their own answer."""
    # The machine's own limit grows with its cores: set one every machine queues behind.
    monkeypatch.setattr("groups.registry.STARTS_AT_ONCE", 2)
    groups = {f"g{i}": stdio_entry() for i in range(5)}  # three rounds of starts
    async with serve(groups) as client:
        results: dict[str, mcp_types.CallToolResult] = {}
        answers: dict[tuple[str, int], str] = {}

        async def expand_one(group: str) -> None:
            results[group] = await expand(client, group)

        async def call_one(group: str, index: int) -> None:
            result = await call(client, group, "echo", {"text": f"{group}-{index}"})
            answers[(group, index)] = result.content[0].text

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tasks:
                for group in groups:
                    tasks.start_soon(expand_one, group)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                for index in range(10):
                    for group in groups:
                        tasks.start_soon(call_one, group, index)

    failed = {g: r.content[0].text for g, r in results.items() if r.is_error}
    assert failed == {}
    assert len(answers) == 50
    assert all(text == f"{group}-{index}" for (group, index), text in answers.items())


async def test_a_tool_filter_hides_tools_from_the_expansion_and_refuses_their_calls(serve):
    servers = {"echo": stdio_entry(tools={"include": ["e*", "pid"], "exclude": ["env"]})}
    async with serve(servers) as client:
        expanded = await expand(client, "echo")
        hidden = await call(client, "echo", "env", {"name": "HOME"})
        allowed = await call(client, "echo", "echo", {"text": "shown"})
        unknown = await call(client, "echo", "ech")

    assert [tool["name"] for tool in json.loads(expanded.content[0].text)] == ["pid", "echo"]
    assert hidden.is_error
    assert hidden.content[0].text == (
        "Tool 'env' of group 'echo' is hidden by this group's config (tools.exclude has "
        "'env'). Call get_dynamic_tools('echo') for the tools it offers."
    )
    assert allowed.content[0].text == "shown"
    assert unknown.content[0].text == "Unknown tool 'ech' in group 'echo'. Valid tools: echo, pid."
