"""dynamic-mcp as a user runs it: a subprocess driven by a real MCP client over stdio,
in front of real upstream processes over stdio, streamable HTTP and SSE."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import pytest_asyncio
from conftest import (
    ECHO_SERVER,
    REPO,
    raw_debug_session,
    server_process,
    stdio_entry,
    upstream_processes,
    wait_gone,
)
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

# The tests about what dynamic-mcp answers over its pipes, not about its start, lifetime,
# failures or shutdown, share one dynamic-mcp process (and each upstream it starts): the
# file runs on one xdist worker (conftest.ONE_WORKER_FILES), so it starts once per run.
shared_server = pytest.mark.asyncio(loop_scope="module")


def shared_servers(http_url: str, sse_url: str) -> dict[str, Any]:
    return {
        "echo": stdio_entry(env={"CONFIGURED": "token=${DYNAMIC_MCP_TEST_SECRET}"}),
        "other": stdio_entry(description="Other"),
        "broken": stdio_entry(args=[str(ECHO_SERVER), "${DYNAMIC_MCP_TEST_NEVER_SET}"]),
        "time": {
            "description": "Time",
            "command": sys.executable,
            "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
        },
        "http": {"description": "Remote echo", "type": "http", "url": http_url},
        "sse": {"description": "Remote echo", "type": "sse", "url": sse_url},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory, http_echo_url, sse_echo_url) -> AsyncIterator[Client]:
    """A real MCP client of one `python -m server CONFIG` over stdio, for the whole file,
    with a home of its own and the user's environment plus two variables."""
    folder = tmp_path_factory.mktemp("shared")
    config = folder / "dynamic-mcp.json"
    servers = shared_servers(http_echo_url, sse_echo_url)
    config.write_text(json.dumps({"mcpServers": servers}))
    env = {
        **os.environ,
        "DYNAMIC_MCP_HOME": str(folder / "dynamic-mcp-home"),
        "DYNAMIC_MCP_TEST_INHERITED": "from-the-user",
        "DYNAMIC_MCP_TEST_SECRET": "s3cret",
    }
    env.pop("DYNAMIC_MCP_TEST_NEVER_SET", None)
    transport = StdioTransport(
        sys.executable, ["-m", "server", str(config)], env=env, cwd=str(REPO), keep_alive=False
    )
    async with Client(transport, init_timeout=30, timeout=60) as client:
        yield client


@shared_server
async def test_the_client_sees_exactly_the_two_meta_tools(shared):
    tools = {tool.name: tool for tool in await shared.list_tools()}

    assert sorted(tools) == ["call_dynamic_tool", "get_dynamic_tools"]
    description = tools["get_dynamic_tools"].description
    assert "- echo: Echo test server" in description
    assert "- other: Other" in description
    for tool in tools.values():
        assert tool.input_schema["properties"]["group"]["enum"] == list(shared_servers("", ""))


async def test_no_upstream_runs_before_first_use_and_one_serves_every_call(write_config, connect):
    """Two concurrent first requests start one process, and it serves the calls after."""
    config = write_config({"echo": stdio_entry()})
    client = await connect(config)
    server = server_process(config)
    assert upstream_processes(server) == []
    results = []

    async def call() -> None:
        results.append(
            await client.call_tool_mcp(
                "call_dynamic_tool", {"group": "echo", "name": "pid", "args": {}}
            )
        )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(call)
        tasks.start_soon(call)
    first_pids = {result.structured_content["result"] for result in results}
    for _ in range(5):
        await call()
    pids = {result.structured_content["result"] for result in results}

    assert len(first_pids) == 1
    assert pids == first_pids
    assert [p.pid for p in upstream_processes(server)] == list(pids)


@shared_server
async def test_expansion_is_compact_json_of_name_description_and_input_schema(shared):
    result = await shared.call_tool_mcp("get_dynamic_tools", {"group": "echo"})

    text = result.content[0].text
    assert not result.is_error
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    tools = {tool["name"]: tool for tool in json.loads(text)}
    assert sorted(tools) == ["add", "ask", "echo", "env", "fail", "pid", "pixel"]
    assert tools["echo"] == {
        "name": "echo",
        "description": "Send the text back unchanged.",
        "inputSchema": {
            "additionalProperties": False,
            "properties": {"text": {"description": "Text to send back", "type": "string"}},
            "required": ["text"],
            "type": "object",
        },
    }
    assert all(set(tool) == {"name", "description", "inputSchema"} for tool in tools.values())


# One case per kind of result; one dynamic-mcp and one direct client serve them all. The
# direct client asks the same echo script over HTTP: the one the shared server's http group
# reaches, already running.
RESULT_CASES = [
    ("echo", {"text": "héllo"}),  # plain text
    ("add", {"numbers": [1, 2, 3]}),  # structuredContent beside its text
    ("pixel", {}),  # image, text and an embedded resource
    ("fail", {"message": "broken on purpose"}),  # the upstream's own isError result
    ("echo", {}),  # arguments that break the schema: the upstream's own error
]


@shared_server
async def test_results_come_back_exactly_as_the_upstream_sent_them(shared, http_echo_url):
    async with Client(http_echo_url) as direct:
        for tool, args in RESULT_CASES:
            expected = await direct.call_tool_mcp(tool, args)
            actual = await shared.call_tool_mcp(
                "call_dynamic_tool", {"group": "echo", "name": tool, "args": args}
            )

            case = f"{tool}({args})"
            assert actual.is_error == expected.is_error, case
            assert actual.structured_content == expected.structured_content, case
            assert [block.model_dump() for block in actual.content] == [
                block.model_dump() for block in expected.content
            ], case


@shared_server
async def test_an_unknown_group_is_an_error_result_listing_the_valid_groups(shared):
    for tool, args in [
        ("get_dynamic_tools", {"group": "ehco"}),
        ("call_dynamic_tool", {"group": "ehco", "name": "echo", "args": {}}),
    ]:
        result = await shared.call_tool_mcp(tool, args)
        assert result.is_error
        assert result.content[0].text == (
            "Unknown group 'ehco'. Valid groups: broken, echo, http, other, sse, time."
        )


@shared_server
async def test_an_unknown_tool_is_an_error_result_listing_the_groups_tools(shared):
    result = await shared.call_tool_mcp(
        "call_dynamic_tool", {"group": "echo", "name": "ecko", "args": {}}
    )

    assert result.is_error
    assert result.content[0].text == (
        "Unknown tool 'ecko' in group 'echo'. Valid tools: add, ask, echo, env, fail, pid, pixel."
    )


@shared_server
async def test_a_stdio_upstream_sees_the_whole_environment_plus_its_env(shared):
    # The shared server's environment has DYNAMIC_MCP_TEST_INHERITED=from-the-user and
    # DYNAMIC_MCP_TEST_SECRET=s3cret; echo's config sets CONFIGURED from the second.
    async def env(name: str) -> str:
        result = await shared.call_tool_mcp(
            "call_dynamic_tool", {"group": "echo", "name": "env", "args": {"name": name}}
        )
        return result.content[0].text

    assert await env("DYNAMIC_MCP_TEST_INHERITED") == "from-the-user"
    assert await env("CONFIGURED") == "token=s3cret"


@shared_server
async def test_an_unset_variable_fails_only_its_own_group(shared):
    broken = await shared.call_tool_mcp("get_dynamic_tools", {"group": "broken"})
    working = await shared.call_tool_mcp("get_dynamic_tools", {"group": "echo"})

    assert broken.is_error
    assert "DYNAMIC_MCP_TEST_NEVER_SET" in broken.content[0].text
    assert not working.is_error


@shared_server
@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_remote_groups_expand_and_call_over_their_transport(shared, transport):
    expanded = await shared.call_tool_mcp("get_dynamic_tools", {"group": transport})
    pids = set()
    for _ in range(3):
        result = await shared.call_tool_mcp(
            "call_dynamic_tool", {"group": transport, "name": "pid", "args": {}}
        )
        pids.add(result.structured_content["result"])

    assert "echo" in {tool["name"] for tool in json.loads(expanded.content[0].text)}
    assert len(pids) == 1


@shared_server
async def test_the_published_time_server_works_through_dynamic_mcp(shared):
    expanded = await shared.call_tool_mcp("get_dynamic_tools", {"group": "time"})
    result = await shared.call_tool_mcp(
        "call_dynamic_tool",
        {"group": "time", "name": "get_current_time", "args": {"timezone": "Europe/Helsinki"}},
    )

    assert {t["name"] for t in json.loads(expanded.content[0].text)} >= {"get_current_time"}
    assert json.loads(result.content[0].text)["timezone"] == "Europe/Helsinki"


EVERYTHING = "@modelcontextprotocol/server-everything"


def in_npx_cache(package: str) -> bool:
    """Whether npx can start `package` offline: the project does not install npm packages."""
    cache = Path(os.environ.get("npm_config_cache") or Path.home() / ".npm")  # noqa: SIM112 - npm reads it lower case
    cached = cache.glob(f"_npx/*/node_modules/{package}/package.json")
    return shutil.which("npx") is not None and next(cached, None) is not None


@pytest.mark.skipif(
    not in_npx_cache(EVERYTHING),
    reason=f"needs npx and {EVERYTHING} in its cache: run `npx -y {EVERYTHING}` once",
)
async def test_the_published_everything_server_works_through_dynamic_mcp(write_config, connect):
    config = write_config(
        {
            "everything": {
                "description": "MCP reference server",
                "command": "npx",
                "args": ["--offline", "-y", EVERYTHING],
            }
        }
    )
    client = await connect(config)

    expanded = await client.call_tool_mcp("get_dynamic_tools", {"group": "everything"})
    echoed = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "everything", "name": "echo", "args": {"message": "hi"}}
    )

    assert not expanded.is_error, expanded.content[0].text
    assert "echo" in {tool["name"] for tool in json.loads(expanded.content[0].text)}
    assert echoed.content[0].text == "Echo: hi"


@pytest.mark.parametrize("how", ["stdin closed", "SIGTERM", "SIGINT"])
async def test_no_upstream_process_outlives_the_server(write_config, connect, how):
    config = write_config({"echo": stdio_entry(), "second": stdio_entry(description="Two")})
    client = await connect(config)
    for group in ("echo", "second"):  # a call starts each upstream (an expansion may not)
        await client.call_tool_mcp("call_dynamic_tool", {"group": group, "name": "pid"})
    server = server_process(config)
    upstreams = upstream_processes(server)
    assert len(upstreams) == 2

    if how == "stdin closed":
        await client.close()
    else:
        os.kill(server.pid, signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)

    assert wait_gone([server, *upstreams]) == []


def test_with_debug_logs_stdout_carries_only_protocol_and_no_log_line_a_secret_value(
    write_config, http_echo_url, monkeypatch
):
    """Every stdout line is a JSON-RPC message, even with debug logging on; the debug log
    shows upstream exchanges, never a secret's value."""
    monkeypatch.setenv("DYNAMIC_MCP_TEST_ENV_SECRET", "env-secret-value-1")
    monkeypatch.setenv("DYNAMIC_MCP_TEST_TOKEN", "header-secret-value-2")
    config = write_config(
        {
            "local": stdio_entry(env={"API_KEY": "${DYNAMIC_MCP_TEST_ENV_SECRET}"}),
            "remote": {
                "description": "Remote",
                "url": http_echo_url,
                "headers": {"Authorization": "Bearer ${DYNAMIC_MCP_TEST_TOKEN}"},
            },
        }
    )
    calls = [{"name": "get_dynamic_tools", "arguments": {"group": "local"}}] + [
        {
            "name": "call_dynamic_tool",
            "arguments": {"group": group, "name": "echo", "args": {"text": "hi"}},
        }
        for group in ("local", "remote")
    ]

    messages, log = raw_debug_session(config, calls)

    assert [m["id"] for m in messages if "id" in m] == [0, 1, 2, 3]
    assert all(m["jsonrpc"] == "2.0" for m in messages)
    assert "connecting group local" in log
    assert "→ local tools/call echo {'text': 'hi'}" in log
    assert "← remote tools/call echo" in log
    assert "env-secret-value-1" not in log
    assert "header-secret-value-2" not in log


async def test_over_stdio_a_dead_upstream_fails_its_group_and_a_crash_is_recovered(
    write_config, connect
):
    from conftest import UPSTREAMS

    misbehaving = UPSTREAMS / "misbehaving.py"
    config = write_config(
        {
            "dead": stdio_entry(misbehaving, "Dead", args=[str(misbehaving), "exit-at-start"]),
            "crashy": stdio_entry(
                misbehaving, "Crashy", args=[str(misbehaving), "crash-after", "1"]
            ),
        }
    )
    client = await connect(config)

    dead = await client.call_tool_mcp("get_dynamic_tools", {"group": "dead"})
    first = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "crashy", "name": "echo", "args": {"text": "one"}}
    )
    crashed = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "crashy", "name": "echo", "args": {"text": "two"}}
    )
    recovered = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "crashy", "name": "echo", "args": {"text": "three"}}
    )
    description = (await client.list_tools())[0].description

    assert dead.is_error
    assert dead.content[0].text.startswith("Group 'dead' is unavailable: the upstream closed")
    assert "Unavailable groups:\n- dead: the upstream closed" in description
    assert first.content[0].text == "one"
    assert crashed.is_error and "'crashy'" in crashed.content[0].text
    assert recovered.content[0].text == "three"
