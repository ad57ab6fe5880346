"""Idle stdio upstreams are stopped, and every request counts as use: tools, and the
resources, templates and prompts read through a group's proxy. A request in flight holds
its upstream, however long it takes."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import psutil
from conftest import UPSTREAMS, stdio_entry, wait_gone
from fastmcp import Client

from server import build_server

MISBEHAVING = UPSTREAMS / "misbehaving.py"
NOTICE_WAIT = 15.0  # an idle stop is looked for each second; a loaded machine is slower


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
                if not await anyio.to_thread.run_sync(lambda: wait_gone([other], 0.05)):
                    break
        after = await client.read_resource("pid://read/self")
        seen.add(int(after[0].text))

    assert seen == {first}
