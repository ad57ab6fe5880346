"""An upstream's progress, log messages and questions during a call reach the client whose
call caused them, and no other: over HTTP with two clients at once, and over stdio."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import anyio
import mcp_types
import pytest
from conftest import descendants, process_behind, serving_http, stdio_entry, wait_gone
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult

WHO = ("alice", "bob")


class Witness:
    """What one client heard: progress per call, log lines, questions; and a meeting point.

    Each question waits (bounded) until every client has been asked its own, which proves
    the calls were in flight at the same time.
    """

    def __init__(self, name: str, asked: dict[str, anyio.Event]) -> None:
        self.name = name
        self.asked = asked
        self.progress: dict[str, list[str]] = defaultdict(list)
        self.logs: list[str] = []
        self.questions: list[str] = []

    def progress_of(self, call: str) -> Any:
        async def record(progress: float, total: float | None, message: str | None) -> None:
            self.progress[call].append(message or "")

        return record

    async def log(self, message: mcp_types.LoggingMessageNotificationParams) -> None:
        self.logs.append(json.dumps(message.data))

    async def elicit(self, message: str, response_type: Any, params: Any, context: Any) -> Any:
        self.questions.append(message)
        self.asked[message].set()
        with anyio.fail_after(10):
            for event in self.asked.values():
                await event.wait()
        return ElicitResult(action="accept", content={"value": f"answer from {self.name}"})


async def ask(client: Client, witness: Witness, question: str) -> str:
    result = await client.call_tool_mcp(
        "call_dynamic_tool",
        {"group": "echo", "name": "ask", "args": {"question": question}},
        progress_handler=witness.progress_of(question),
    )
    assert not result.is_error, result.content[0].text
    return result.content[0].text


@pytest.fixture
def http_server(write_config):
    """dynamic-mcp serving streamable HTTP on 127.0.0.1 in front of the echo upstream."""
    with serving_http(write_config({"echo": stdio_entry()})) as (url, process):
        yield url, process_behind(process)


async def test_two_http_clients_calling_at_once_each_hear_only_their_own_callbacks(http_server):
    url, _ = http_server
    asked = {who: anyio.Event() for who in WHO}
    witnesses = {who: Witness(who, asked) for who in WHO}
    answers: dict[str, str] = {}
    pids: dict[str, int] = {}

    async def one_client(who: str) -> None:
        witness = witnesses[who]
        async with Client(
            url, mode="legacy", log_handler=witness.log, elicitation_handler=witness.elicit
        ) as client:
            answers[who] = await ask(client, witness, who)
            pid = await client.call_tool_mcp(
                "call_dynamic_tool", {"group": "echo", "name": "pid", "args": {}}
            )
            pids[who] = pid.structured_content["result"]

    with anyio.fail_after(60):
        async with anyio.create_task_group() as clients:
            for who in WHO:
                clients.start_soon(one_client, who)

    for who in WHO:
        witness = witnesses[who]
        assert answers[who] == f"{who} -> answer from {who}"
        assert witness.questions == [who]
        assert dict(witness.progress) == {who: [f"{who}: step 1", f"{who}: step 2"]}
        assert witness.logs and all(f"{who}: asking" in line for line in witness.logs)
    assert pids["alice"] != pids["bob"]  # each client has an upstream session of its own


async def test_an_http_clients_upstream_sessions_end_when_it_leaves(http_server):
    url, server = http_server
    async with Client(url, mode="legacy") as client:
        await client.call_tool_mcp("get_dynamic_tools", {"group": "echo"})
        upstreams = descendants(server)
        assert len(upstreams) == 1

    assert await anyio.to_thread.run_sync(wait_gone, upstreams) == []


async def test_two_calls_at_once_over_stdio_each_get_their_own_progress(write_config, connect):
    asked = {who: anyio.Event() for who in WHO}
    witness = Witness("the client", asked)
    # The handshake era: a 2026-07-28 client takes no questions from the server.
    config = write_config({"echo": stdio_entry()})
    client = await connect(config, mode="legacy", elicitation_handler=witness.elicit)
    answers: dict[str, str] = {}

    async def one_call(question: str) -> None:
        answers[question] = await ask(client, witness, question)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as calls:
            for who in WHO:
                calls.start_soon(one_call, who)

    assert answers == {who: f"{who} -> answer from the client" for who in WHO}
    assert sorted(witness.questions) == sorted(WHO)
    assert dict(witness.progress) == {who: [f"{who}: step 1", f"{who}: step 2"] for who in WHO}
