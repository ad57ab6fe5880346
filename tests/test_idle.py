"""Idle stdio upstreams are stopped, and every request counts as use: tools, the
resources, templates and prompts read through a group's proxy, and completions. A request
in flight holds its upstream, however long it takes; so does a client subscribed to one of
its resources."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
from conftest import UPSTREAMS, stdio_entry, wait_gone
from fastmcp import Client

from server import build_server

MISBEHAVING = UPSTREAMS / "misbehaving.py"
NOTICE_WAIT = 15.0  # an idle stop is looked for each second; a loaded machine is slower
REQUEST_GAP = 0.2  # between regular requests: well inside the 1 s idle timeout


def misbehaving(**extra: Any) -> dict[str, Any]:
    return stdio_entry(
        MISBEHAVING, "Misbehaving test server", args=[str(MISBEHAVING), "serve"], **extra
    )


async def pid(client: Client, group: str) -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": "pid", "args": {}}
    )
    assert not result.is_error, result.content[0].text
    return result.structured_content["result"]


async def gone(number: int) -> bool:
    """Wait (bounded) for a process to end, while this event loop serves on."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(number)
        alive = await anyio.to_thread.run_sync(lambda: wait_gone([process], NOTICE_WAIT))
        return alive == []
    return True


async def wait_for_file(path: Path) -> None:
    """Wait (bounded) for a file another process writes."""
    with anyio.fail_after(NOTICE_WAIT):
        while not path.exists():  # noqa: ASYNC110, ASYNC240 - another process writes it
            await anyio.sleep(0.02)


async def test_a_read_in_flight_holds_its_upstream_past_the_idle_timeout(write_config, tmp_path):
    servers = {
        # Listed first: each idle check looks at it before "other".
        "slow": misbehaving(idle_timeout="1s", env={"WAIT_DIR": str(tmp_path)}),
        "other": stdio_entry(idle_timeout="1s"),
    }
    read: list[str] = []

    async def read_held(client: Client) -> None:
        contents = await client.read_resource("wait://slow/held")
        read.append(contents[0].text)

    async with Client(build_server(write_config(servers))) as client:
        before = await pid(client, "slow")  # its last tool call; the read comes after
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_held, client)
            await wait_for_file(tmp_path / "held.started")
            # "other" is used after "slow" was: once an idle check stopped it, the same
            # check or an earlier one found "slow" unused for longer, but for the read.
            other_stopped = await gone(await pid(client, "other"))
            (tmp_path / "held").write_text("go")

    assert other_stopped
    assert read == [str(before)]


async def test_regular_reads_and_prompts_keep_an_upstream_from_being_stopped(write_config):
    servers = {
        "read": misbehaving(idle_timeout="1s"),
        # The clock: stopped once unused for longer than "read" would need to be. Long
        # enough to outlast the start of "read" on a loaded machine.
        "other": stdio_entry(idle_timeout="4s"),
    }
    async with Client(build_server(write_config(servers))) as client:
        await pid(client, "other")
        first = await pid(client, "read")  # the last tool call it gets
        other = psutil.Process(await pid(client, "other"))  # used after it, at once
        seen = {first}
        with anyio.fail_after(NOTICE_WAIT * 2):
            for _ in range(1000):  # until an idle check stopped "other", unused since
                read = await client.read_resource("pid://read/self")
                prompt = await client.get_prompt("read_pid_prompt")
                seen |= {int(read[0].text), int(prompt.messages[0].content.text)}
                if not await anyio.to_thread.run_sync(lambda: wait_gone([other], REQUEST_GAP)):
                    break
        after = await client.read_resource("pid://read/self")
        seen.add(int(after[0].text))

    assert seen == {first}


WATCHED = UPSTREAMS / "watched.py"


async def watched_pid(client: Client) -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "watched", "name": "pid", "args": {}}
    )
    assert not result.is_error, result.content[0].text
    return int(result.content[0].text)


async def test_regular_completions_keep_an_upstream_from_being_stopped(write_config):
    servers = {
        "watched": stdio_entry(WATCHED, "Watched test server", idle_timeout="1s"),
        # The clock, as in the test of reads and prompts above.
        "other": stdio_entry(idle_timeout="4s"),
    }
    greet = mcp_types.PromptReference(type="ref/prompt", name="watched_greet")
    async with Client(build_server(write_config(servers))) as client:
        await pid(client, "other")
        first = await watched_pid(client)  # the last tool call it gets
        other = psutil.Process(await pid(client, "other"))  # used after it, at once
        with anyio.fail_after(NOTICE_WAIT * 2):
            for _ in range(1000):  # until an idle check stopped "other", unused since
                await client.complete(greet, {"name": "name", "value": "a"})
                if not await anyio.to_thread.run_sync(lambda: wait_gone([other], REQUEST_GAP)):
                    break
        after = await watched_pid(client)

    assert after == first


async def test_a_live_subscription_holds_its_upstream_past_the_idle_timeout(write_config):
    servers = {
        "watched": stdio_entry(WATCHED, "Watched test server", idle_timeout="1s"),
        "other": stdio_entry(idle_timeout="1s"),
    }
    uri = "counter://watched/one"
    # Handshake era: resources/subscribe is not on the 2026-07-28 wire.
    async with Client(build_server(write_config(servers)), mode="legacy") as client:
        watched = psutil.Process(await watched_pid(client))
        request = mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri))
        await client.session.send_request(request, mcp_types.EmptyResult)  # its last use
        # "other" is used after "watched" was: once an idle check stopped it, the same
        # check or an earlier one found "watched" unused for longer, but for its subscriber.
        other_stopped = await gone(await pid(client, "other"))
        held = await anyio.to_thread.run_sync(lambda: wait_gone([watched], 0)) == [watched]

        request = mcp_types.UnsubscribeRequest(params=mcp_types.UnsubscribeRequestParams(uri=uri))
        await client.session.send_request(request, mcp_types.EmptyResult)
        watched_stopped = await gone(watched.pid)

    assert other_stopped
    assert held
    assert watched_stopped  # once nobody is subscribed, it may rest
