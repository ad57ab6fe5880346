"""A session outlives the request that connected it: a task of its own holds the FastMCP
client's `async with` (`groups.upstream.connect.HeldClient`).

Only FastMCP's public `Client` is used; these fail when a release changes how a client
entered in one task serves others, or whether leaving its context ends its process.
"""

from __future__ import annotations

import anyio
import psutil
import pytest
from conftest import ECHO_SERVER, UPSTREAMS, descendants, python_command, wait_gone
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from groups.upstream.connect import HeldClient
from groups.upstream.failures import is_connection_lost

MISBEHAVING = UPSTREAMS / "misbehaving.py"


def stdio_client(script: str, *args: str) -> Client:
    command, *arguments = python_command(script, *args)
    transport = StdioTransport(command, arguments, keep_alive=False)
    return Client(transport, init_timeout=10)


def started_processes(before: set[int]) -> list[psutil.Process]:
    """This test's child processes that were not there `before` and still run."""
    children = descendants()
    return [p for p in children if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]


async def test_a_client_opened_by_a_request_that_ended_serves_until_closed_then_its_process_ends():
    opened: list[HeldClient] = []

    async def request() -> None:
        opened.append(await HeldClient.open(stdio_client(str(ECHO_SERVER))))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as requests:
            requests.start_soon(request)  # its task ends here; the session must not
        held = opened[0]
        upstream = psutil.Process((await held.client.call_tool("pid", {})).data)
        echoed = await held.client.call_tool("echo", {"text": "still here"})
        await held.close()

    assert echoed.data == "still here"
    assert wait_gone([upstream]) == []


async def test_a_client_whose_upstream_exits_at_start_raises_and_leaves_nothing_running():
    before = {p.pid for p in descendants()}
    client = stdio_client(str(MISBEHAVING), "exit-at-start")

    with anyio.fail_after(20), pytest.raises(Exception) as raised:  # FastMCP's wrapping varies
        await HeldClient.open(client)

    # The connecting task gets the holder's own exception, with the cause that
    # `groups.upstream.failures.classify` reads ("closed the connection while starting").
    assert is_connection_lost(raised.value)
    assert not client.is_connected()
    assert wait_gone(started_processes(before)) == []


async def test_a_connect_cut_short_by_its_time_limit_leaves_nothing_running():
    before = {p.pid for p in descendants()}
    client = stdio_client(str(MISBEHAVING), "slow-start", "30")  # never answers in time

    with pytest.raises(TimeoutError), anyio.fail_after(1):
        await HeldClient.open(client)

    assert not client.is_connected()
    assert wait_gone(started_processes(before)) == []
