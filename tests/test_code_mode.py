"""Code mode: `run_dynamic_code` as a client meets it, a real dynamic-mcp over stdio in front
of real upstreams (mcp-server-time, the echo upstream), the sandbox's real workers.

Most tests share one dynamic-mcp process with small limits (the file runs on one xdist
worker, conftest.ONE_WORKER_FILES); those about a start, an exit or other settings start
their own.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
import pytest
import pytest_asyncio
from conftest import (
    REPO,
    UPSTREAMS,
    server_process,
    serving_http,
    stdio_entry,
    until,
    upstream_processes,
    wait_gone,
)
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from fastmcp.client.transports import StdioTransport
from mcp_types import ElicitResult

from groups.serving.audit import EVENTS

shared_server = pytest.mark.asyncio(loop_scope="module")

SECRET = "s3cret-code-4b1e"
LIMITS = {
    "timeout": "20s",  # the first call starts an upstream: seconds on a loaded machine
    "cpu_time": "300ms",
    "memory": "16MiB",
    "recursion": 50,
    "sleep": "200ms",
    "max_calls": 5,
    "max_result": "4KiB",
    "max_printed": "1KiB",
    "max_concurrent_runs": 1,
}
TIME = {
    "description": "Time",
    "command": sys.executable,
    "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
}
FIVE_ZONES = """
zones = ["UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney"]
times = {}
for zone in zones:
    now = await call_tool("time", "get_current_time", {"timezone": zone})
    times[zone] = {"time": now["datetime"][11:16], "dst": now["is_dst"]}
print(len(times), "zones")
return times
"""


class Asker:
    """The client's side of the echo upstream's `ask`: records each question, and holds
    its answer while `hold` is set (a program then waits in its call)."""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.asked = anyio.Event()
        self.hold: anyio.Event | None = None

    async def elicit(self, message: str, response_type: Any, params: Any, context: Any) -> Any:
        self.questions.append(message)
        self.asked.set()
        if self.hold is not None:
            with anyio.fail_after(10):
                await self.hold.wait()
        return ElicitResult(action="accept", content={"value": "yes"})


ASKER = Asker()


def code_servers() -> dict[str, Any]:
    return {
        "time": TIME,
        "echo": stdio_entry(env={"ECHO_TOKEN": "${DYNAMIC_MCP_TEST_SECRET}"}),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory) -> AsyncIterator[tuple[Client, Path]]:
    """A real MCP client of one `python -m server CONFIG` over stdio with code mode on and
    small limits, for the whole file; and the folder of its config (its audit log)."""
    folder = tmp_path_factory.mktemp("code")
    config = folder / "dynamic-mcp.json"
    settings = {"code": LIMITS, "audit_log": "audit.jsonl"}
    config.write_text(json.dumps({"mcpServers": code_servers(), "settings": settings}))
    env = {
        **os.environ,
        "DYNAMIC_MCP_HOME": str(folder / "home"),
        "DYNAMIC_MCP_TEST_SECRET": SECRET,
    }
    transport = StdioTransport(
        sys.executable, ["-m", "server", str(config)], env=env, cwd=str(REPO), keep_alive=False
    )
    client = Client(
        transport, init_timeout=30, timeout=60, mode="legacy", elicitation_handler=ASKER.elicit
    )
    async with client:
        yield client, folder


async def run(client: Client, code: str) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp("run_dynamic_code", {"code": code})


def text(result: mcp_types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def sandbox_workers(server: psutil.Process) -> list[psutil.Process]:
    return [p for p in upstream_processes(server) if p.cmdline()[-1:] == ["subprocess"]]


# ---- the tool, and what comes back ------------------------------------------------------


@pytest.fixture
def secret(monkeypatch) -> str:
    """The variable the echo group's env names, set for the dynamic-mcp a test starts."""
    monkeypatch.setenv("DYNAMIC_MCP_TEST_SECRET", SECRET)
    return SECRET


def with_settings(path: Path, servers: dict[str, Any], settings: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    return path


async def test_code_mode_adds_run_dynamic_code_to_the_listing_and_nothing_without_it(
    tmp_path, connect, secret
):
    code = with_settings(tmp_path / "code.json", code_servers(), {"code": LIMITS})
    client = await connect(code)
    with_code = {tool.name: tool for tool in await client.list_tools()}
    without = await connect(with_settings(tmp_path / "plain.json", code_servers(), {}))
    plain = {tool.name: tool for tool in await without.list_tools()}
    refused = await run(without, "1")

    assert list(with_code) == ["get_dynamic_tools", "call_dynamic_tool", "run_dynamic_code"]
    assert list(plain) == ["get_dynamic_tools", "call_dynamic_tool"]
    tool = with_code["run_dynamic_code"]
    assert tool.description == (
        "Run a short Python program in a sandbox (no files, network or environment). "
        "`await call_tool(group, name, args)` calls a group's tool and returns its "
        "structured result, else its text; a failed call raises an exception the program "
        "can catch. The program's value (a top-level `return`, else its last expression) "
        "comes back as JSON, with what it printed. At most 5 calls and 20s a run. Expand a "
        "group first: its tools say what they return."
    )
    assert with_code["get_dynamic_tools"].description.startswith(
        "Load the tools of one group (an MCP server) on demand; then run one with "
        "call_dynamic_tool, or several in one run_dynamic_code program. Groups:\n- time: Time"
    )
    assert "run_dynamic_code" not in (plain["get_dynamic_tools"].description or "")
    assert tool.input_schema["properties"] == {"code": {"type": "string"}}
    assert tool.input_schema["required"] == ["code"]
    assert refused.is_error and "Unknown tool 'run_dynamic_code'" in text(refused)


@shared_server
async def test_a_program_chains_calls_and_its_value_comes_back_as_json_and_structured(shared):
    client, _ = shared
    result = await run(client, FIVE_ZONES)

    assert not result.is_error, text(result)
    value, printed = result.content[0].text, result.content[1].text
    assert json.loads(value) == result.structured_content
    assert value == json.dumps(result.structured_content, separators=(",", ":"))
    assert list(result.structured_content) == [
        "UTC",
        "Europe/Paris",
        "Asia/Tokyo",
        "America/New_York",
        "Australia/Sydney",
    ]
    assert result.structured_content["UTC"]["dst"] is False
    assert printed == "Printed:\n5 zones\n"


@shared_server
async def test_the_last_expression_is_the_value_and_a_non_object_has_no_structured_content(
    shared,
):
    client, _ = shared
    last = await run(client, "x = await call_tool('echo', 'echo', {'text': 'hi'})\n[x, 2]")
    nothing = await run(client, "y = 1")

    assert last.content[0].text == '[{"result":"hi"},2]'  # FastMCP wraps a str result
    assert last.structured_content is None
    assert nothing.content[0].text == "null" and len(nothing.content) == 1


@shared_server
async def test_an_upstream_error_raises_in_the_program_which_can_catch_it_and_go_on(shared):
    client, _ = shared
    code = """
try:
    await call_tool("echo", "fail", {"message": "as asked"})
except RuntimeError as error:
    caught = str(error)
after = await call_tool("echo", "echo", {"text": "went on"})
return {"caught": caught, "after": after["result"]}
"""
    result = await run(client, code)

    assert not result.is_error, text(result)
    assert result.structured_content["after"] == "went on"
    assert result.structured_content["caught"].startswith("call_tool('echo', 'fail') failed:")
    assert "as asked" in result.structured_content["caught"]


@shared_server
async def test_an_uncaught_failure_is_an_error_with_its_traceback_and_the_calls_made(shared):
    client, _ = shared
    code = """
await call_tool("echo", "echo", {"text": "one"})
await call_tool("echo", "echo", {"text": "two"})
await call_tool("nowhere", "echo", {})
"""
    result = await run(client, code)

    assert result.is_error
    lines = text(result).splitlines()
    assert lines[0] == (
        "run_dynamic_code: RuntimeError: call_tool('nowhere', 'echo') failed: "
        "Unknown group 'nowhere'. Valid groups: echo, time."
    )
    assert 'await call_tool("nowhere", "echo", {})' in text(result)  # the traceback's line
    assert lines[-1] == (
        "Tool calls it made (their effects stand): echo.echo (ok, 2 times), nowhere.echo (error)"
    )


@shared_server
async def test_binary_content_is_attached_only_when_the_value_returns_it(shared):
    client, _ = shared
    returned = await run(client, "await call_tool('echo', 'pixel', {})")
    described = await run(client, "r = await call_tool('echo', 'pixel', {})\nr.splitlines()[1]")

    assert not returned.is_error, text(returned)
    handles = json.loads(returned.content[0].text)
    assert handles == "[image #1 image/png]\na transparent pixel\n[resource #2 memo://pixel]"
    image, resource = returned.content[1:]
    assert image.type == "image" and image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(b"\x89PNG")
    assert resource.type == "resource" and resource.resource.text == "pixel notes"
    assert [block.type for block in described.content] == ["text"]
    assert described.content[0].text == '"a transparent pixel"'


@shared_server
async def test_secrets_are_kept_out_of_a_programs_value_printout_and_errors(shared):
    client, _ = shared
    code = """
token = (await call_tool("echo", "env", {"name": "ECHO_TOKEN"}))["result"]
print("token is", token)
return {"token": token}
"""
    returned = await run(client, code)
    raised = await run(
        client,
        'raise ValueError((await call_tool("echo", "env", {"name": "ECHO_TOKEN"}))["result"])',
    )

    assert not returned.is_error, text(returned)
    assert returned.structured_content == {"token": "${DYNAMIC_MCP_TEST_SECRET}"}
    assert "token is ${DYNAMIC_MCP_TEST_SECRET}" in text(returned)
    assert raised.is_error and "ValueError: ${DYNAMIC_MCP_TEST_SECRET}" in text(raised)
    assert SECRET not in text(returned) + text(raised)


# ---- limits ---------------------------------------------------------------------------

LIMITED = [
    # an endless loop: the sandbox's own time
    ("while True:\n    pass", "settings.code.cpu_time", "TimeoutError"),
    # a huge allocation, and one built up in a loop
    ("x = 'a' * (10 ** 9)", "settings.code.memory", "MemoryError"),
    ("chunks = []\nwhile True:\n    chunks.append('x' * 100000)", "settings.code.memory", None),
    ("def down(n):\n    return down(n + 1)\ndown(0)", "settings.code.recursion", "RecursionError"),
    ("import time\ntime.sleep(5)", "settings.code.sleep", "TimeoutError"),
    # a thousand calls, each failure caught: the run ends all the same
    (
        "for i in range(1000):\n"
        "    try:\n"
        "        await call_tool('echo', 'echo', {'text': str(i)})\n"
        "    except Exception:\n"
        "        pass",
        "settings.code.max_calls",
        None,
    ),
    ("'x' * 5000", "settings.code.max_result", None),
]


@shared_server
async def test_each_limit_ends_a_run_in_an_error_naming_it_and_the_next_run_works(shared):
    client, _ = shared
    for code, setting, kind in LIMITED:
        with anyio.fail_after(15):
            result = await run(client, code)
        assert result.is_error, code
        first = text(result).splitlines()[0]
        assert setting in first, (code, first)
        if kind is not None:
            assert kind in first, (code, first)
        after = await run(client, "1 + 1")
        assert not after.is_error and after.content[0].text == "2", code

    calls = await run(client, LIMITED[5][0])
    assert text(calls).splitlines()[-1] == (
        "Tool calls it made (their effects stand): echo.echo (ok, 5 times)"
    )


NO_ACCESS = [
    # no environment: the os module's functions answer nothing of the host's
    ("import os\nos.environ['HOME']", "RuntimeError: 'os.environ' is not supported"),
    ("import os\nos.getenv('PATH')", "RuntimeError: 'os.getenv' is not supported"),
    ("import os\nos.system('true')", "AttributeError: module 'os' has no attribute 'system'"),
    # no processes, no network
    ("import subprocess", "ModuleNotFoundError: No module named 'subprocess'"),
    ("import socket", "ModuleNotFoundError: No module named 'socket'"),
    ("import urllib.request", "ModuleNotFoundError: No module named 'urllib'"),
    ("__import__('os')", "NameError: name '__import__' is not defined"),
    # no files
    ("open('/etc/passwd').read()", "PermissionError: Permission denied: '/etc/passwd'"),
    ("from pathlib import Path\nPath('/etc/hostname').read_text()", "PermissionError"),
    ("import os\nos.listdir('/')", "PermissionError"),
]


@shared_server
async def test_a_program_reaches_no_file_process_network_or_environment(shared):
    client, _ = shared
    for code, error in NO_ACCESS:
        result = await run(client, code)
        assert result.is_error, code
        assert text(result).startswith(f"run_dynamic_code: {error}"), (code, text(result))


@shared_server
async def test_what_a_program_prints_is_bounded(shared):
    client, _ = shared
    result = await run(client, "for i in range(1000):\n    print('line', i)\n'done'")

    assert not result.is_error, text(result)
    printed = result.content[1].text
    assert printed.startswith("Printed:\nline 0\nline 1\n")
    assert len(printed.encode()) < 1024 + 200
    assert printed.endswith("more characters not shown (settings.code.max_printed)")


@shared_server
async def test_a_runs_state_never_reaches_the_next_on_the_one_warm_worker(shared):
    client, folder = shared
    dynamic_mcp = server_process(folder / "dynamic-mcp.json")
    await run(client, "secret = 42\ndef helper():\n    return secret")
    workers = {p.pid for p in sandbox_workers(dynamic_mcp)}
    results = [await run(client, code) for code in ("secret", "helper()", "secret = 1\nsecret")]

    assert "NameError: name 'secret' is not defined" in text(results[0])
    assert "NameError: name 'helper' is not defined" in text(results[1])
    assert results[2].content[0].text == "1"
    assert len(workers) == 1  # one warm worker, not one per run
    assert {p.pid for p in sandbox_workers(dynamic_mcp)} == workers


@shared_server
async def test_a_user_runs_at_most_max_concurrent_runs_programs_at_once(shared):
    client, _ = shared
    ASKER.hold, ASKER.asked = anyio.Event(), anyio.Event()
    held: list[mcp_types.CallToolResult] = []

    async def run_held() -> None:
        held.append(await run(client, "await call_tool('echo', 'ask', {'question': 'hold'})"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run_held)
            await ASKER.asked.wait()  # the first program waits in its call
            refused = await run(client, "1")
            ASKER.hold.set()
    ASKER.hold = None

    assert refused.is_error
    assert "settings.code.max_concurrent_runs" in text(refused).splitlines()[0]
    # the upstream's question reached the client that ran the program, and its answer back
    assert not held[0].is_error, text(held[0])
    assert json.loads(held[0].content[0].text) == {"result": "hold -> yes"}
    assert "hold" in ASKER.questions


@shared_server
async def test_each_call_of_a_program_is_audited_and_the_run_once(shared):
    client, folder = shared
    log = folder / "audit.jsonl"
    await run(client, "await call_tool('echo', 'echo', {'text': 'AUDITED-VALUE'})\n" * 2)
    await run(client, "await call_tool('echo', 'nope', {})")

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log.read_text().splitlines()]

    with anyio.fail_after(5):  # written by a thread of its own: the last run's line last
        await until(lambda: lines()[-1]["event"] == "code_run" and lines()[-1]["calls"] == 1)
    seen = [
        (line["event"], line.get("tool"), line.get("via"), line.get("calls"), line["outcome"])
        for line in lines()[-5:]
    ]
    assert seen == [
        ("tool_call", "echo", "code", None, "ok"),
        ("tool_call", "echo", "code", None, "ok"),
        ("code_run", None, None, 2, "ok"),
        ("tool_call", "nope", "code", None, "error"),
        ("code_run", None, None, 1, "error"),
    ]
    assert {line["event"] for line in lines()} <= EVENTS
    assert "AUDITED-VALUE" not in log.read_text()


# ---- expansions -----------------------------------------------------------------------


async def test_with_code_mode_an_expansion_says_what_each_tool_returns(tmp_path, connect, secret):
    client = await connect(with_settings(tmp_path / "code.json", code_servers(), {"code": True}))
    with_code = await client.call_tool_mcp("get_dynamic_tools", {"group": "time"})
    without = await connect(with_settings(tmp_path / "plain.json", {"time": TIME}, {}))
    plain = await without.call_tool_mcp("get_dynamic_tools", {"group": "time"})
    echo = await client.call_tool_mcp("get_dynamic_tools", {"group": "echo"})

    tools = {tool["name"]: tool for tool in json.loads(text(with_code))}
    assert tools["get_current_time"]["returns"] == (
        "{timezone: string, datetime: string, day_of_week: string, is_dst: boolean}"
    )
    assert tools["convert_time"]["returns"].startswith("{source: {timezone: string, ")
    plain_tools = {tool["name"]: tool for tool in json.loads(text(plain))}
    assert all("returns" not in tool for tool in plain_tools.values())
    assert {name: {**t, "returns": None} for name, t in tools.items()} == {
        name: {**t, "returns": None} for name, t in plain_tools.items()
    }
    echoes = {tool["name"]: tool for tool in json.loads(text(echo))}
    assert echoes["add"]["returns"] == "{total: integer, count: integer}"
    assert "returns" not in echoes["pixel"]  # it declares no output schema


# ---- a start, an end, and the whole run's time ------------------------------------------


@pytest.mark.parametrize("how", ["stdin closed", "SIGTERM"])
async def test_only_the_groups_a_program_calls_start_and_its_workers_end_with_the_server(
    tmp_path, connect, secret, how
):
    servers = {**code_servers(), "other": stdio_entry(description="Other")}
    config = with_settings(tmp_path / "dynamic-mcp.json", servers, {"code": True})
    client = await connect(config)
    server = server_process(config)
    assert upstream_processes(server) == []  # nothing, not even the sandbox, before a run

    result = await run(client, "await call_tool('echo', 'pid', {})")
    started = upstream_processes(server)
    commands = [" ".join(p.cmdline()) for p in started]
    if how == "stdin closed":
        await client.close()
    else:
        os.kill(server.pid, signal.SIGTERM)

    assert not result.is_error, text(result)
    echo = json.loads(result.content[0].text)["result"]
    # the echo upstream and one sandbox worker: not "time", not "other"
    assert len(started) == 2 and echo in {p.pid for p in started}
    assert sum(command.endswith("monty subprocess") for command in commands) == 1
    assert await anyio.to_thread.run_sync(wait_gone, [server, *started]) == []


async def test_the_whole_runs_time_counts_waits_on_upstreams_and_ends_the_call(tmp_path, connect):
    marker = tmp_path / "cancelled"
    servers = {"waiting": stdio_entry(UPSTREAMS / "waiting.py", "Waits until cancelled")}
    config = tmp_path / "dynamic-mcp.json"
    client = await connect(with_settings(config, servers, {"code": {"timeout": "2s"}}))
    await client.call_tool_mcp("call_dynamic_tool", {"group": "waiting", "name": "pid"})

    with anyio.fail_after(15):
        result = await run(
            client, f"await call_tool('waiting', 'wait', {{'marker': {str(marker)!r}}})"
        )
        await until(marker.exists)  # the upstream was told the call was cancelled
    after = await run(client, "'still serving'")

    assert result.is_error
    assert text(result).splitlines()[0] == (
        "run_dynamic_code: stopped after 2s, settings.code.timeout (the whole run, waits on "
        "upstreams included)"
    )
    assert marker.read_text() == "cancelled"
    assert after.content[0].text == '"still serving"'


# ---- a gateway: each user's program, each user's rules -----------------------------------

ALICE, BOB = "alice-code-token-19af", "bob-code-token-77c0"


@pytest.fixture
def gateway_url(tmp_path) -> Iterator[str]:
    """A gateway over HTTP whose users are alice and bob; "private" is alice's alone."""
    servers = {
        # everyone's, but `add` is alice's alone (issue 30.6: rules per tool, in code too)
        "open": stdio_entry(description="Open to everyone", tools={"access": {"add": ["alice"]}}),
        "private": stdio_entry(description="Alice only", access=["alice"]),
    }
    config = with_settings(tmp_path / "dynamic-mcp.json", servers, {"code": True})
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": ALICE, "bob": BOB}))
    users.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    with serving_http(config, "--users", str(users), env=env) as (url, _):
        yield url


def as_user(url: str, token: str, asker: Asker) -> Client:
    return Client(
        url,
        auth=BearerAuth(token),
        init_timeout=30,
        timeout=30,
        mode="legacy",
        elicitation_handler=asker.elicit,
    )


async def test_over_http_a_program_uses_its_users_groups_sessions_and_callbacks(gateway_url):
    code = """
try:
    private = await call_tool("private", "echo", {"text": "hi"})
except RuntimeError as error:
    private = str(error)
asked = await call_tool("open", "ask", {"question": "whose"})
pid = await call_tool("open", "pid", {})
try:
    added = (await call_tool("open", "add", {"numbers": [1, 2]}))["total"]
except RuntimeError as error:
    added = str(error)
return {"private": private, "asked": asked["result"], "pid": pid["result"], "added": added}
"""
    askers = {"alice": Asker(), "bob": Asker()}
    values: dict[str, Any] = {}

    async def program_of(who: str, token: str) -> None:
        async with as_user(gateway_url, token, askers[who]) as client:
            result = await run(client, code)
            assert not result.is_error, text(result)
            values[who] = result.structured_content

    with anyio.fail_after(60):
        async with anyio.create_task_group() as users:
            users.start_soon(program_of, "alice", ALICE)
            users.start_soon(program_of, "bob", BOB)

    assert values["alice"]["private"] == {"result": "hi"}
    # to bob, as to a group that does not exist: only the groups he may use are named
    assert values["bob"]["private"] == (
        "call_tool('private', 'echo') failed: Unknown group 'private'. Valid groups: open."
    )
    assert values["alice"]["added"] == 3
    assert "tools.access does not give it to you" in values["bob"]["added"]
    for who in ("alice", "bob"):  # each question reached the client whose program asked
        assert values[who]["asked"] == "whose -> yes"
        assert askers[who].questions == ["whose"]
    assert values["alice"]["pid"] != values["bob"]["pid"]  # each user's own process
