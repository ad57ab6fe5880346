"""What a careful user relies on: no secret in any message, one way in to upstream tools,
variables read when they are needed, and bookkeeping that stays small and stays put."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from conftest import ECHO_SERVER, raw_debug_session, stdio_entry
from fastmcp import Client
from mcp.server.connection import Connection

from groups.config import interpolate
from groups.errors import GroupUnavailableError
from groups.registry import Registry
from groups.secrets import Redactor, shown_args
from groups.serving.logs import configure_logging
from groups.serving.notifier import SEND_TIMEOUT, Notifier
from groups.upstream import Caller
from server import build_server

SECRETS = {
    "DMCP_TEST_QUERY_SECRET": "query-secret-5f1c",
    "DMCP_TEST_HEADER_SECRET": "header-secret-9a2e",
    "DMCP_TEST_ENV_SECRET": "env-secret-77b0",
    "DMCP_TEST_ARG_SECRET": "arg-secret-3d41",
    "DMCP_TEST_COMMAND_SECRET": "command-secret-c6e8",
}
LITERAL_HEADER = "literal-header-secret-0e5d"


async def call(client: Client, group: str, name: str, args: Any = None) -> mcp_types.CallToolResult:
    payload = {"group": group, "name": name} | ({} if args is None else {"args": args})
    return await client.call_tool_mcp("call_dynamic_tool", payload)


async def expand(client: Client, group: str) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp("get_dynamic_tools", {"group": group})


LITERAL_QUERY = "literal-query-secret-4c2a"
LITERAL_PASSWORD = "literal-password-8e1f"


def literal_url_secrets(echo_url: str) -> dict[str, Any]:
    """Two groups of the HTTP echo upstream: a query value and a password in their URLs."""
    scheme, rest = echo_url.split("://")
    return {
        "query_literal": {"description": "Query", "url": f"{echo_url}?api_key={LITERAL_QUERY}"},
        "password": {"description": "Password", "url": f"{scheme}://me:{LITERAL_PASSWORD}@{rest}"},
    }


def calls_to_echo(groups: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "call_dynamic_tool",
            "arguments": {"group": group, "name": "echo", "args": {"text": "hi"}},
        }
        for group in groups
    ]


# ---- secrets never leave ------------------------------------------------------------------


def test_no_secret_resolved_or_written_in_a_url_reaches_a_result_a_description_or_the_debug_log(
    write_config, status_url, http_echo_url
):
    unavailable = status_url(503)
    config = write_config(
        {
            **literal_url_secrets(http_echo_url),
            "query": {
                "description": "Query",
                "url": f"{unavailable}?key=${{DMCP_TEST_QUERY_SECRET}}",
            },
            "header": {
                "description": "Header",
                "url": unavailable,
                "headers": {
                    "Authorization": "Bearer ${DMCP_TEST_HEADER_SECRET}",
                    "X-Api-Key": LITERAL_HEADER,
                },
            },
            "command": {
                "description": "Command",
                "command": "/nonexistent/${DMCP_TEST_COMMAND_SECRET}/server",
            },
            "local": stdio_entry(
                warm=False,  # an interpreter option in the arguments
                args=["-X", "note=${DMCP_TEST_ARG_SECRET}", str(ECHO_SERVER)],
                env={"API_TOKEN": "${DMCP_TEST_ENV_SECRET}"},
            ),
        }
    )
    calls = [
        {"name": "get_dynamic_tools", "arguments": {"group": group}}
        for group in ("query", "header", "command")
    ] + [
        {
            "name": "call_dynamic_tool",
            "arguments": {"group": "local", "name": "env", "args": {"name": "API_TOKEN"}},
        }
    ]
    calls += calls_to_echo(["query_literal", "password"])

    messages, log = raw_debug_session(config, calls, list_tools=True, env={**os.environ, **SECRETS})

    responses = {m["id"]: m for m in messages if "id" in m}
    errors = [responses[index]["result"]["content"][0]["text"] for index in (1, 2, 3)]
    assert errors[0].startswith(
        f"Group 'query' is unavailable: HTTP 503 from {unavailable}?key=${{DMCP_TEST_QUERY_SECRET}}"
    )
    assert errors[1].startswith(f"Group 'header' is unavailable: HTTP 503 from {unavailable}")
    assert errors[2] == (
        "Group 'command' is unavailable: "
        "command not found: '/nonexistent/${DMCP_TEST_COMMAND_SECRET}/server'"
    )
    # The upstream's own result passes through unchanged: it is the tool's answer.
    assert responses[4]["result"]["content"][0]["text"] == SECRETS["DMCP_TEST_ENV_SECRET"]
    # A query value and a password written in a URL: the calls work, no log line shows them.
    assert [responses[index]["result"]["content"][0]["text"] for index in (5, 6)] == ["hi", "hi"]
    description = responses[7]["result"]["tools"][0]["description"]
    assert "Unavailable groups:" in description
    everything_shown = json.dumps([errors, description]) + log
    for secret in [*SECRETS.values(), LITERAL_HEADER, LITERAL_PASSWORD, LITERAL_QUERY]:
        assert secret not in everything_shown
    assert "HTTP Request: POST" in log  # httpx2's own log line went through the redaction
    assert "${DMCP_TEST_ENV_SECRET}" in log  # the debug preview of the result, hidden


def test_a_query_value_or_password_written_in_a_url_is_in_no_info_log_line(
    http_echo_url, write_config
):
    """At info level too (the debug log's test is the one above)."""
    config = literal_url_secrets(http_echo_url)
    calls = calls_to_echo(config)
    messages, log = raw_debug_session(write_config(config), calls, log_level="info")

    responses = {m["id"]: m for m in messages if "id" in m}
    assert [responses[index]["result"]["content"][0]["text"] for index in (1, 2)] == ["hi", "hi"]
    assert "HTTP Request: POST" in log  # httpx2's line, which shows the URL as sent
    assert LITERAL_PASSWORD not in log
    assert LITERAL_QUERY not in log


def test_oauth_parameters_and_bearer_credentials_are_hidden_in_every_log_line(capfd):
    redactor = Redactor()
    configure_logging("debug", redactor)
    try:
        for name in ("mcp.client.auth", "httpx2", "uvicorn.access", "dynamic_mcp"):
            logging.getLogger(name).debug(
                "GET /callback?code=the-code-4b&state=the-state-9c "
                'token response {"access_token": "at-5e", "refresh_token": "rt-6f"} '
                "client_secret=cs-7a&code_verifier=cv-8b Authorization: Bearer bt-1d2e3f "
                "MCPError(code=-32000)"
            )
    finally:
        logging.getLogger().handlers.clear()

    log = capfd.readouterr().err
    assert log.count("?code=***&state=the-state-9c") == 4  # state is no secret
    assert log.count("MCPError(code=-32000)") == 4  # an error code is no secret
    credentials = ("the-code-4b", "at-5e", "rt-6f", "cs-7a", "cv-8b", "bt-1d2e3f")
    for credential in credentials:
        assert credential not in log


def test_what_the_config_writes_openly_stays_readable_and_literal_credentials_do_not():
    redactor = Redactor()
    level = interpolate("${DMCP_TEST_UNSET_LEVEL:-info}", {}, redactor)
    redactor.add_literal_header("Bearer ${DMCP_TEST_TOKEN}")
    redactor.add_literal_env("API_TOKEN", "${DMCP_TEST_TOKEN}")
    args = [
        "--header",
        "X-Api-Key: literal-key-42",
        "-H=Authorization: ${DMCP_TEST_TOKEN}",
        "https://h.example/mcp?key=literal-q-43",
        "--port",
        "8080",
    ]

    # A default is written in the config for all to see; a reference is how messages name
    # the secret: neither is hidden.
    assert level == "info"
    assert redactor.scrub("info: used as ${DMCP_TEST_TOKEN}") == "info: used as ${DMCP_TEST_TOKEN}"
    assert redactor.scrub("OAuthToken(access_token='at-5e', token_type='Bearer')") == (
        "OAuthToken(access_token='***', token_type='Bearer')"
    )
    assert shown_args(args) == [
        "--header",
        "X-Api-Key: ***",
        "-H=Authorization: ${DMCP_TEST_TOKEN}",
        "https://h.example/mcp?key=***",
        "--port",
        "8080",
    ]
    # What shown_args hides is hidden wherever it appears, once the args are known.
    redactor.add_literal_args([*args, "--api-key=literal-flag-44", "--token", "literal-flag-45"])
    shown = redactor.scrub("literal-key-42 literal-q-43 literal-flag-44 literal-flag-45 8080")
    assert shown == "*** *** *** *** 8080"


# ---- one way in ---------------------------------------------------------------------------


async def test_a_group_tool_called_by_its_namespaced_name_is_refused_with_the_way_in(
    write_config,
):
    async with Client(build_server(write_config({"echo": stdio_entry()}))) as client:
        await expand(client, "echo")  # mounts the group
        direct = await client.call_tool_mcp("echo_echo", {"text": "side door"})
        bare = await client.call_tool_mcp("echo", {"text": "side door"})
        tools = [tool.name for tool in await client.list_tools()]

    assert direct.is_error and bare.is_error
    assert direct.content[0].text == (
        "Unknown tool 'echo_echo': this server's tools are get_dynamic_tools and "
        "call_dynamic_tool; to run 'echo' of group 'echo', call call_dynamic_tool "
        "with group='echo' and name='echo'."
    )
    assert "call a group's tool with call_dynamic_tool(group, name, args)" in bare.content[0].text
    assert tools == ["get_dynamic_tools", "call_dynamic_tool"]


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("get_dynamic_tools", {}, "get_dynamic_tools: 'group' is required."),
        (
            "get_dynamic_tools",
            {"group": 3},
            "get_dynamic_tools: 'group' must be a string, got a number.",
        ),
        (
            "call_dynamic_tool",
            {"group": "echo", "name": "echo", "args": "text"},
            "call_dynamic_tool: 'args' must be an object, got a string.",
        ),
        (
            "get_dynamic_tools",
            {"group": "echo", "tool": "echo"},
            "get_dynamic_tools: 'tool' is not an argument of get_dynamic_tools.",
        ),
    ],
)
async def test_a_meta_tool_called_with_bad_arguments_says_which_and_how(
    write_config, tool, arguments, message
):
    async with Client(build_server(write_config({"echo": stdio_entry()}))) as client:
        result = await client.call_tool_mcp(tool, arguments)
    assert result.is_error
    assert result.content[0].text == message


# Tool arguments put beside group and name: flattened, they are taken as args; given both
# ways, args wins; given in args alone, as usual. One upstream answers every case.
BESIDE_CASES = [
    ({"group": "echo", "name": "echo", "text": "flat"}, "flat"),
    ({"group": "echo", "name": "echo", "text": "flat", "args": {"text": "in args"}}, "in args"),
    ({"group": "echo", "name": "echo", "args": {"text": "in args"}}, "in args"),
]


async def test_tool_arguments_put_beside_group_and_name_are_taken_as_args(write_config):
    async with Client(build_server(write_config({"echo": stdio_entry()}))) as client:
        for arguments, answer in BESIDE_CASES:
            result = await client.call_tool_mcp("call_dynamic_tool", arguments)
            assert not result.is_error, (arguments, result.content[0].text)
            assert result.content[0].text == answer, arguments


async def test_tools_list_as_sent_carries_no_title_or_fastmcp_meta(write_config):
    async with Client(build_server(write_config({"echo": stdio_entry()}))) as client:
        listed = await client.session.list_tools()

    for tool in listed.tools:
        sent = tool.model_dump(by_alias=True, exclude_none=True)
        assert set(sent) == {"name", "description", "inputSchema"}


# ---- variables are read when needed -----------------------------------------------------


async def test_a_group_failed_on_an_unset_variable_works_as_soon_as_it_is_set(
    write_config, tmp_path: Path, monkeypatch
):
    monkeypatch.delenv("DMCP_TEST_LATE_FILE", raising=False)
    monkeypatch.delenv("DMCP_TEST_LATE_ENV", raising=False)
    servers = {
        "from_file": stdio_entry(env={"GREETING": "${DMCP_TEST_LATE_FILE}"}),
        "from_env": stdio_entry(env={"GREETING": "${DMCP_TEST_LATE_ENV}"}),
    }
    async with Client(build_server(write_config(servers))) as client:
        before = [await expand(client, group) for group in servers]
        (tmp_path / ".env").write_text("DMCP_TEST_LATE_FILE=from the .env file\n")
        monkeypatch.setenv("DMCP_TEST_LATE_ENV", "from the environment")
        after = {group: await call(client, group, "env", {"name": "GREETING"}) for group in servers}

    assert all(result.is_error for result in before)
    assert "DMCP_TEST_LATE_FILE is not set" in before[0].content[0].text
    assert after["from_file"].content[0].text == "from the .env file"
    assert after["from_env"].content[0].text == "from the environment"


async def test_a_secret_from_a_file_reaches_the_upstream_and_a_file_others_can_read_is_refused(
    write_config, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path))
    secret = tmp_path / "token.txt"
    secret.write_text("file-secret-6b2a\n")
    secret.chmod(0o644)
    servers = {"filed": stdio_entry(env={"TOKEN": "${file:~/token.txt}"}), "echo": stdio_entry()}
    async with Client(build_server(write_config(servers))) as client:
        refused = await call(client, "filed", "env", {"name": "TOKEN"})
        other = await call(client, "echo", "echo", {"text": "unaffected"})
        secret.chmod(0o600)
        read = await call(client, "filed", "env", {"name": "TOKEN"})

    assert refused.is_error
    assert refused.content[0].text == (
        "Group 'filed' is unavailable: the secret file ~/token.txt (used as "
        f"${{file:~/token.txt}}) is readable by others (mode 0644): run chmod 600 {secret}"
    )
    assert other.content[0].text == "unaffected"  # the group failed alone
    assert read.content[0].text == "file-secret-6b2a"  # its trailing newline removed


# ---- bookkeeping ------------------------------------------------------------------------


async def test_client_connections_are_kept_once_per_client_never_per_request(write_config):
    """A 2026-07-28 client ("auto" here) opens a connection per request: none is kept; a
    legacy client's one connection is kept while it stays. One server serves both."""
    notifier = Notifier()
    server = build_server(write_config({"echo": stdio_entry()}), notifier=notifier)
    kept = {}
    async with Client(server, mode="auto") as auto:
        for _ in range(5):
            await auto.list_tools()
            await expand(auto, "echo")
        kept["auto"] = len(notifier)
        async with Client(server, mode="legacy") as legacy:
            for _ in range(5):
                await legacy.list_tools()
                await expand(legacy, "echo")
            kept["legacy"] = len(notifier)
        left = len(notifier)  # the legacy client left; the auto one is still connected
    assert kept == {"auto": 0, "legacy": 1}
    assert left == 0  # a client that left is forgotten
    assert len(notifier) == 0


async def test_a_late_error_from_a_replaced_session_leaves_its_successor_alone(write_config):
    registry = Registry()
    server = build_server(write_config({"echo": stdio_entry()}), registry=registry)
    async with Client(server) as client:
        first = await call(client, "echo", "pid")
        old = await registry.upstream("echo").session()
        old_sdk_session = old.client.session  # held past the session's replacement
        os.kill(first.structured_content["result"], 9)
        crashed = await call(client, "echo", "pid")
        second = await call(client, "echo", "pid")
        # The dead session answers one more request, late: a real "Connection closed".
        with pytest.raises(GroupUnavailableError), old.bounded("Tool 'pid'", 5):
            await old_sdk_session.send_ping()
        third = await call(client, "echo", "pid")

    assert crashed.is_error
    assert second.structured_content["result"] != first.structured_content["result"]
    assert third.structured_content["result"] == second.structured_content["result"]


class _NeverReads:
    """A client's outbound stream that takes nothing: a client that stopped reading."""

    def __init__(self) -> None:
        self.given_up = anyio.Event()  # the sender stopped waiting on it

    async def notify(self, method: str, params: Any, opts: Any = None) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.given_up.set()


class _Records:
    """A client's outbound stream that takes every notification at once."""

    def __init__(self) -> None:
        self.received = anyio.Event()

    async def notify(self, method: str, params: Any, opts: Any = None) -> None:
        self.received.set()


async def test_a_client_that_stopped_reading_delays_no_other_client():
    notifier = Notifier()
    stuck, listening = _NeverReads(), _Records()
    for outbound in (stuck, listening):
        connection = Connection.for_loop(outbound)  # type: ignore[arg-type]
        # What a tools/call tells the notifier; only the connection matters to it.
        notifier.see(Caller(None, None, connection))  # type: ignore[arg-type]
    assert len(notifier) == 2

    with anyio.fail_after(SEND_TIMEOUT / 2):
        notifier.announce("tools")  # returns at once: nothing waits on clients
        await listening.received.wait()
    with anyio.fail_after(SEND_TIMEOUT * 2):
        await stuck.given_up.wait()  # the stuck send ends at its own limit
