"""A group's completions and resource subscriptions, forwarded to its upstream: completions
of its prompt and template come from the upstream, an unknown reference answers no values,
subscriptions reach the upstream, and its updates reach the subscribed client alone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from conftest import UPSTREAMS, serving_http, stdio_entry
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from server import build_server

WATCHED = UPSTREAMS / "watched.py"
HEAR_WAIT = 20.0  # for an update to come through; a loaded machine is slow


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """Clients of an in-memory dynamic-mcp per config, closed when the test ends: these tests
    are about what the root forwards to a real upstream process, not about a transport (the
    one over HTTP below serves its clients from a process)."""
    async with contextlib.AsyncExitStack() as clients:

        async def open_client(config: Path, **options: Any) -> Client:
            return await clients.enter_async_context(Client(build_server(config), **options))

        yield open_client


def watched() -> dict[str, Any]:
    return stdio_entry(WATCHED, "Watched test server")


def prompt(name: str) -> mcp_types.PromptReference:
    return mcp_types.PromptReference(type="ref/prompt", name=name)


def template(uri: str) -> mcp_types.ResourceTemplateReference:
    return mcp_types.ResourceTemplateReference(type="ref/resource", uri=uri)


async def tool(client: Client, name: str, **args: Any) -> str:
    """Call one of the watched upstream's tools through call_dynamic_tool; its text."""
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "watched", "name": name, "args": args}
    )
    assert not result.is_error, result.content[0].text
    return result.content[0].text


async def subscribe(client: Client, uri: str) -> None:
    # The SDK's own subscribe_resource is deprecated for the 2026-07-28 era; this is 2025's.
    request = mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri))
    await client.session.send_request(request, mcp_types.EmptyResult)


async def unsubscribe(client: Client, uri: str) -> None:
    request = mcp_types.UnsubscribeRequest(params=mcp_types.UnsubscribeRequestParams(uri=uri))
    await client.session.send_request(request, mcp_types.EmptyResult)


class Updates:
    """The resources/updated notifications one client hears, in order."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._changed = anyio.Event()

    async def __call__(self, message: object) -> None:
        if isinstance(message, mcp_types.ResourceUpdatedNotification):
            self.uris.append(message.params.uri)
            self._changed.set()

    async def until(self, uri: str) -> None:
        """Wait (bounded) until `uri` was heard."""
        with anyio.fail_after(HEAR_WAIT):
            while uri not in self.uris:
                self._changed = anyio.Event()
                await self._changed.wait()


async def test_completions_of_a_groups_prompt_and_template_come_from_its_upstream(
    write_config, connect
):
    client = await connect(write_config({"watched": watched()}))
    declared = client.server_capabilities.completions
    before_use = await client.complete(prompt("watched_greet"), {"name": "name", "value": "al"})
    await client.call_tool("get_dynamic_tools", {"group": "watched"})

    names = await client.complete(prompt("watched_greet"), {"name": "name", "value": "al"})
    styles = await client.complete(
        prompt("watched_greet"), {"name": "style", "value": ""}, {"name": "bob"}
    )
    topics = await client.complete(
        template("notes://watched/{topic}"), {"name": "topic", "value": "t"}
    )

    assert declared is not None
    assert before_use.values == []  # not served before the group is used: an unknown name
    assert names.values == ["albert", "alice"]
    assert styles.values == ["bob-formal", "bob-casual"]  # the context went along
    assert topics.values == ["tea", "travel"]


# One case per reference no group serves; one dynamic-mcp and one upstream answer them all.
REFERENCES_NO_GROUP_SERVES = [
    prompt("nowhere_greet"),  # no such group
    prompt("watched_farewell"),  # the group's upstream has no such prompt
    prompt("greet"),  # the upstream's own name, outside every namespace
    template("notes://nowhere/{topic}"),  # no such group
    template("notes://{topic}"),  # the upstream's own URI, outside every namespace
]


async def test_a_reference_no_group_serves_completes_to_no_values_not_an_error(
    write_config, connect
):
    client = await connect(write_config({"watched": watched()}))
    await client.call_tool("get_dynamic_tools", {"group": "watched"})

    for ref in REFERENCES_NO_GROUP_SERVES:
        completion = await client.complete(ref, {"name": "topic", "value": "t"})

        assert completion.values == [], ref


async def test_an_update_reaches_the_client_subscribed_to_that_resource_and_no_other(
    write_config,
):
    with serving_http(write_config({"watched": watched()})) as (url, _):
        first, second = Updates(), Updates()
        async with (
            # Handshake era: each client has its HTTP session and its own upstream session.
            Client(url, mode="legacy", init_timeout=30, timeout=60, message_handler=first) as a,
            Client(url, mode="legacy", init_timeout=30, timeout=60, message_handler=second) as b,
        ):
            await a.call_tool("get_dynamic_tools", {"group": "watched"})
            await subscribe(a, "counter://watched/one")
            await subscribe(b, "counter://watched/two")
            a_upstream = await tool(a, "subscribed")
            b_upstream = await tool(b, "subscribed")

            # a's upstream changes "two" (b's subscription, not a's), then "one" (a's).
            await tool(a, "touch", uri="counter://two")
            await tool(a, "touch", uri="counter://one")
            await first.until("counter://watched/one")
            # b's own upstream changes "two"; had a's update of it reached b, b's
            # stream would have carried it first.
            await tool(b, "touch", uri="counter://two")
            await second.until("counter://watched/two")

    assert a_upstream == '["counter://one"]'
    assert b_upstream == '["counter://two"]'
    assert first.uris == ["counter://watched/one"]  # not "two": a never subscribed to it
    assert second.uris == ["counter://watched/two"]  # once: its own, never a's


async def test_unsubscribing_reaches_the_upstream_and_ends_the_updates(write_config, connect):
    updates = Updates()
    client = await connect(
        write_config({"watched": watched()}), mode="legacy", message_handler=updates
    )
    declared = client.server_capabilities.resources
    await client.call_tool("get_dynamic_tools", {"group": "watched"})

    await subscribe(client, "counter://watched/one")
    while_subscribed = await tool(client, "subscribed")
    await unsubscribe(client, "counter://watched/one")
    after = await tool(client, "subscribed")
    await tool(client, "touch", uri="counter://one")  # the upstream sends it anyway
    await subscribe(client, "counter://watched/two")
    await tool(client, "touch", uri="counter://two")
    await updates.until("counter://watched/two")

    assert declared is not None and declared.subscribe
    assert while_subscribed == '["counter://one"]'
    assert after == "[]"  # nothing subscribed upstream
    assert updates.uris == ["counter://watched/two"]


async def test_subscribing_to_a_resource_no_group_serves_is_an_invalid_params_error(
    write_config, connect
):
    config = write_config({"watched": watched(), "echo": stdio_entry()})
    client = await connect(config, mode="legacy")
    await client.call_tool("get_dynamic_tools", {"group": "watched"})
    await client.call_tool("get_dynamic_tools", {"group": "echo"})

    refused: list[int] = []
    for uri in (
        "counter://nowhere/one",  # no such group
        "counter://one",  # the upstream's own URI, outside every namespace
        "memo://echo/greeting",  # served, but the echo upstream offers no subscriptions
    ):
        with pytest.raises(MCPError) as raised:
            await subscribe(client, uri)
        refused.append(raised.value.code)
    await unsubscribe(client, "counter://nowhere/one")  # nothing to end: no error

    assert refused == [mcp_types.INVALID_PARAMS] * 3
