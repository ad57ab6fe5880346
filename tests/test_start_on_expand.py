"""An expansion answered from the catalog starts the group's upstream in the background, so
the call the model makes next finds it ready: the same process the call then uses. Nothing
else starts early, a failing group is not started, and nothing outlives the server or, over
HTTP, the client it was started for."""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
import pytest
from conftest import (
    UPSTREAMS,
    process_behind,
    server_process,
    serving_http,
    stdio_entry,
    upstream_processes,
    use_browser,
    wait_gone,
)
from fastmcp import Client
from served_tools import NewChildren, warm_catalog
from test_oauth import serve_oauth

from groups.catalog import Catalog
from groups.config import Config
from groups.config.identity import launch_identity
from server import build_server

MISBEHAVING = UPSTREAMS / "misbehaving.py"
SETTLE_WAIT = 20.0  # for processes to start or end; a loaded machine is slow


def misbehaving(*args: str, **extra: Any) -> dict[str, Any]:
    return stdio_entry(
        MISBEHAVING, "Misbehaving test server", args=[str(MISBEHAVING), *args], **extra
    )


async def expand(client: Client, group: str) -> list[str]:
    result = await client.call_tool_mcp("get_dynamic_tools", {"group": group})
    assert not result.is_error, result.content[0].text
    return [tool["name"] for tool in json.loads(result.content[0].text)]


async def pid(client: Client, group: str) -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": "pid", "args": {}}
    )
    assert not result.is_error, result.content[0].text
    return result.structured_content["result"]


@pytest.fixture
async def in_memory() -> AsyncIterator[Callable[[Path], Any]]:
    """Clients of in-memory dynamic-mcps, closed when the test ends: what starts early is the
    root's doing, not a transport's; the upstreams are real processes (`NewChildren`)."""
    async with contextlib.AsyncExitStack() as clients:

        async def open_client(config: Path) -> Client:
            return await clients.enter_async_context(Client(build_server(config)))

        yield open_client


async def settled(server: psutil.Process | NewChildren, count: int) -> list[psutil.Process]:
    """The server's upstream processes once there are `count`, or when waiting is no use."""
    deadline = time.monotonic() + SETTLE_WAIT
    alive: list[psutil.Process] = []
    for _ in range(1000):
        alive = await anyio.to_thread.run_sync(upstream_processes, server)
        if len(alive) == count or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    return alive


async def test_an_expansion_from_the_catalog_starts_the_process_the_next_call_uses(
    write_config,
):
    config = write_config({"echo": stdio_entry()})
    await warm_catalog(config, "echo")

    server = NewChildren()
    async with Client(build_server(config)) as client:  # a restart: nothing runs yet
        await expand(client, "echo")
        started = await settled(server, 1)  # with no call made
        called = await pid(client, "echo")
    left = wait_gone(started)

    assert [p.pid for p in started] == [called]
    assert left == []


async def test_a_call_during_the_early_start_shares_its_one_attempt(write_config, in_memory):
    config = write_config({"slow": misbehaving("slow-start", "3")})
    await warm_catalog(config, "slow")

    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    client = await in_memory(config)
    await expand(client, "slow")
    starting = await settled(server, 1)  # spawned, not serving for a few seconds yet
    called = await pid(client, "slow")
    running = await anyio.to_thread.run_sync(upstream_processes, server)

    assert [p.pid for p in starting] == [called]
    assert [p.pid for p in running] == [called]


async def test_a_group_set_not_to_start_on_expand_starts_nothing(write_config, in_memory):
    config = write_config({"off": misbehaving("serve", start_on_expand=False), "on": stdio_entry()})
    await warm_catalog(config, "off", "on")

    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    client = await in_memory(config)
    await expand(client, "off")
    await expand(client, "on")  # after "off": its start would be under way first
    started = await settled(server, 1)
    on = await pid(client, "on")  # once "on" serves a call, "off" would have been spawned
    running = {p.pid for p in await anyio.to_thread.run_sync(upstream_processes, server)}
    off = await pid(client, "off")  # a call starts it, as ever

    assert [p.pid for p in started] == [on]
    assert running == {on}
    assert off != on


async def test_the_settings_turn_starting_on_expand_off_for_groups_without_their_own(
    write_config, in_memory
):
    servers = {"off": misbehaving("serve"), "on": stdio_entry(start_on_expand=True)}
    config = write_config(servers)
    config.write_text(json.dumps({"mcpServers": servers, "settings": {"start_on_expand": False}}))
    await warm_catalog(config, "off", "on")

    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    client = await in_memory(config)
    await expand(client, "off")
    await expand(client, "on")
    started = await settled(server, 1)
    on = await pid(client, "on")
    running = {p.pid for p in await anyio.to_thread.run_sync(upstream_processes, server)}

    assert [p.pid for p in started] == [on]
    assert running == {on}


async def test_a_failing_group_is_not_started_by_an_expansion(write_config, in_memory, status_url):
    servers = {"locked": {"description": "Refuses everyone", "url": status_url(401)}}
    servers["echo"] = stdio_entry()
    config = write_config(servers)
    await warm_catalog(config, "echo")
    locked = Config.model_validate({"mcpServers": servers}).servers["locked"]
    tool = mcp_types.Tool(name="open", input_schema={"type": "object"})
    await Catalog().put(launch_identity(locked, {}), [tool])  # as if it had once served

    server = NewChildren()  # what the in-memory dynamic-mcp below starts
    client = await in_memory(config)
    failed = await client.call_tool_mcp("call_dynamic_tool", {"group": "locked", "name": "open"})
    attempted = len(status_url.received)  # a permanent failure: next retry in 30 s
    listed = await expand(client, "locked")  # answered from the catalog
    await expand(client, "echo")
    started = await settled(server, 1)
    echo = await pid(client, "echo")  # by now an early start of "locked" would have asked

    assert failed.is_error
    assert listed == ["open"]
    assert [p.pid for p in started] == [echo]  # the healthy group did start early
    assert len(status_url.received) == attempted


async def test_shutting_down_during_an_early_start_leaves_no_process(write_config, connect):
    config = write_config({"slow": misbehaving("slow-start", "3")})
    await warm_catalog(config, "slow")

    client = await connect(config)
    await expand(client, "slow")
    server = server_process(config)
    starting = await settled(server, 1)  # spawned, not serving yet
    await client.close()

    assert len(starting) == 1
    assert wait_gone([server, *starting]) == []


def client_of(url: str) -> Client:
    # Handshake era: a client has its HTTP session, and dynamic-mcp its upstream sessions.
    return Client(url, mode="legacy", init_timeout=30, timeout=60)


async def test_over_http_an_early_start_is_the_clients_own_and_ends_when_it_leaves(
    write_config,
):
    config = write_config({"echo": stdio_entry(), "slow": misbehaving("slow-start", "3")})
    await warm_catalog(config, "echo", "slow")
    with serving_http(config) as (url, process):
        server = process_behind(process)
        async with client_of(url) as first:
            await expand(first, "echo")
            early = await settled(server, 1)
            used = await pid(first, "echo")
            async with client_of(url) as second:  # its own session: a process of its own
                await expand(second, "echo")
                both = await settled(server, 2)
            one_left = await settled(server, 1)
            async with client_of(url) as leaving:
                await expand(leaving, "slow")
                await settled(server, 2)  # it leaves while its upstream is still starting
            after_leaving = await settled(server, 1)
        none_left = await settled(server, 0)
        upstreams = [*both, *after_leaving]
    stopped = wait_gone([server, *upstreams])

    assert [p.pid for p in early] == [used]
    assert len(both) == 2
    assert [p.pid for p in one_left] == [used]
    assert [p.pid for p in after_leaving] == [used]
    assert none_left == []
    assert stopped == []


@pytest.fixture
def oauth_url() -> Iterator[str]:
    """An MCP server behind OAuth on a loopback port, which a client must sign in to."""
    process, url = serve_oauth()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


def early_start_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "groups.upstream.background"]


async def test_a_group_that_wants_a_sign_in_is_not_signed_in_from_the_background(
    write_config, oauth_url: str, tmp_path: Path, monkeypatch, caplog
):
    opened = tmp_path / "browser-opened"
    record = f"import pathlib, sys; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    use_browser(monkeypatch, f"{sys.executable} -c {shlex.quote(record)} %s")
    monkeypatch.setenv("HOME", str(tmp_path))
    caplog.set_level(logging.INFO)
    servers = {"guarded": {"description": "Behind OAuth", "url": oauth_url}}
    config = write_config(servers)
    guarded = Config.model_validate({"mcpServers": servers}).servers["guarded"]
    tool = mcp_types.Tool(name="whoami", input_schema={"type": "object"})
    await Catalog().put(launch_identity(guarded, {}), [tool])  # as if it had once served

    async with Client(build_server(config)) as client:
        await expand(client, "guarded")  # from the catalog: a start is tried, unattended
        with anyio.fail_after(SETTLE_WAIT):
            while not (tried := early_start_records(caplog)):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        links = [r for r in caplog.records if r.name == "groups.auth.oauth"]
        browser_before_the_call = await anyio.Path(opened).exists()
        called = await client.call_tool_mcp(
            "call_dynamic_tool", {"group": "guarded", "name": "whoami", "args": {}}
        )

    assert [r.getMessage() for r in tried] == [
        "group guarded: not started early: it wants a sign-in; the next request gets the link"
    ]
    assert links == []  # no sign-in was started, so no link was written
    assert not browser_before_the_call
    assert called.is_error and "needs you to sign in" in called.content[0].text  # a request's
