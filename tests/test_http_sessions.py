"""Served over HTTP, each client's upstream sessions live exactly as long as the client:
after clients come and go and upstreams fail and recover, the upstream processes alive
are those a live client holds, and no others."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
from conftest import UPSTREAMS, process_behind, serving_http, stdio_entry, upstream_processes
from fastmcp import Client

MISBEHAVING = UPSTREAMS / "misbehaving.py"
SETTLE_WAIT = 20.0  # for processes to start or end; a loaded machine is slow


def misbehaving(*args: str) -> dict[str, Any]:
    return stdio_entry(MISBEHAVING, "Misbehaving test server", args=[str(MISBEHAVING), *args])


def client_of(url: str) -> Client:
    # Handshake era: a client has its HTTP session, and dynamic-mcp its upstream sessions.
    return Client(url, mode="legacy", init_timeout=30, timeout=60)


async def pid(client: Client, group: str) -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": "pid", "args": {}}
    )
    assert not result.is_error, result.content[0].text
    return result.structured_content["result"]


async def settled(server: psutil.Process, expected: set[int]) -> set[int]:
    """The upstream pids alive once they are `expected`, or when waiting longer is no use."""
    deadline = time.monotonic() + SETTLE_WAIT
    alive: set[int] = set()
    for _ in range(1000):
        alive = {p.pid for p in await anyio.to_thread.run_sync(upstream_processes, server)}
        if alive == expected or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    return alive


async def recovered(client: Client) -> bool:
    """Wait (bounded) for the description to list no unavailable group."""
    with anyio.move_on_after(SETTLE_WAIT):
        for _ in range(1000):
            description = (await client.list_tools())[0].description or ""
            if "Unavailable groups" not in description:
                return True
            await anyio.sleep(0.1)
    return False


async def starting(server: psutil.Process, besides: set[int]) -> None:
    """Wait (bounded) until an upstream process runs `besides` those given."""
    with anyio.fail_after(SETTLE_WAIT):
        while True:
            processes = await anyio.to_thread.run_sync(upstream_processes, server)
            if {p.pid for p in processes} - besides:
                return
            await anyio.sleep(0.05)


async def test_over_http_the_upstreams_alive_are_those_live_clients_hold(
    write_config, tmp_path: Path
):
    config = write_config(
        {
            "late": misbehaving("fail-first", "1", str(tmp_path / "runs")),  # then recovers
            "slow": misbehaving("slow-start", "5"),
        }
    )
    # The background retry that finds "late" back comes soon: what it holds is the point.
    retries = {"retry_delays": ["0.2s"]}
    config.write_text(json.dumps(json.loads(config.read_text()) | {"settings": retries}))
    with serving_http(config) as (url, process):
        server = process_behind(process)
        async with client_of(url) as first:
            failed = await first.call_tool_mcp("get_dynamic_tools", {"group": "late"})
            is_back = await recovered(first)  # a background retry found it
            after_retry = await settled(server, set())  # the retry holds nothing of its own

            held = await pid(first, "late")
            async with client_of(url) as reader:  # reads only, through the mounted proxy
                read = await reader.read_resource("pid://late/self")
                both = await settled(server, {held, int(read[0].text)})
            reader_gone = await settled(server, {held})

            async with client_of(url) as impatient, anyio.create_task_group() as calls:
                calls.start_soon(pid, impatient, "slow")
                await starting(server, besides={held})  # "slow", asleep
                calls.cancel_scope.cancel()  # it leaves during its own connection attempt
            impatient_gone = await settled(server, {held})
        all_gone = await settled(server, set())

    assert failed.is_error and is_back
    assert after_retry == set()
    assert both == {held, int(read[0].text)} and len(both) == 2
    assert reader_gone == {held}
    assert impatient_gone == {held}
    assert all_gone == set()
