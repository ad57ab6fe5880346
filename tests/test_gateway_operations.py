"""What a platform team running the gateway sees and limits (issue "Gateway operations"),
on real processes: two replicas of dynamic-mcp behind HAProxy, a real redis-server, users
with their own tokens, and over stdio for one user without a store.

One cluster serves the module; each test uses users of its own, so no test's counts meet
another's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types
import pytest
from conftest import UPSTREAMS, stdio_entry, until
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from mcp.shared.exceptions import MCPError

from bench.cluster import Cluster, missing_parts

ALICE, BOB = "alice-token-31be07", "bob-token-c5d920"
CAROL, DAVE, ERIN = "carol-token-8e4f11", "dave-token-27aa6c", "erin-token-90c3d5"
USERS = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": DAVE, "erin": ERIN}
RATE = 3  # calls a minute each user may make to the group "limited"
WAIT = 30  # seconds: a first request reaches a cold replica on a busy machine
GIVE_UP_AFTER = 6.0  # seconds a client waits for a call that never ends, then cancels it

cluster_parts = pytest.mark.skipif(missing_parts() is not None, reason=str(missing_parts()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("operations")
    config = directory / "dynamic-mcp.json"
    servers = {
        "limited": stdio_entry(
            description="Echo, a few calls a minute",
            rate_limit=f"{RATE}/minute",
            tools={"rate_limit": {"fai*": "1/minute"}},
        ),
        # Its calls end only when cancelled, not at a time limit, within any test.
        "waiting": stdio_entry(
            UPSTREAMS / "waiting.py",
            "Waits until cancelled",
            max_concurrent_calls=1,
            timeout={"tools": "1h"},
        ),
    }
    settings = {"start_on_expand": False, "audit_log": "audit.jsonl"}
    config.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    users = directory / "users.json"
    users.write_text(json.dumps(USERS))
    users.chmod(0o600)
    with Cluster(directory, config, users) as running:
        yield running


def as_user(url: str, token: str) -> Client:
    return Client(url, auth=BearerAuth(token), init_timeout=WAIT, timeout=WAIT)


def text(result: mcp_types.CallToolResult) -> str:
    return "".join(part.text for part in result.content if isinstance(part, mcp_types.TextContent))


async def call(client: Client, group: str, name: str, **args: Any) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": name, "args": args}
    )


def audited(cluster: Cluster) -> list[dict[str, Any]]:
    audit = cluster.replicas[0].directory / "audit.jsonl"  # both replicas append to it
    return [json.loads(line) for line in audit.read_text().splitlines()]


# ---- 4. limits ----------------------------------------------------------------------------


@cluster_parts
async def test_a_users_rate_limit_counts_on_every_replica_and_for_that_user_alone(cluster):
    first, second = (replica.url for replica in cluster.replicas)
    async with (
        as_user(first, ALICE) as alice_1,
        as_user(second, ALICE) as alice_2,
        as_user(second, BOB) as bob,
    ):
        allowed = [
            await call(client, "limited", "echo", text="hi")
            for client in (alice_1, alice_2, alice_1)
        ]
        refused = await call(alice_2, "limited", "echo", text="one too many")
        bobs = await call(bob, "limited", "echo", text="mine")

    assert [result.is_error for result in allowed] == [False, False, False]
    assert refused.is_error
    assert "user 'alice' reached the limit of 3 calls a minute" in text(refused)
    assert "(mcpServers.limited.rate_limit)" in text(refused)
    assert "try again in" in text(refused)
    assert not bobs.is_error and text(bobs) == "mine"
    limited = [line for line in audited(cluster) if line["outcome"] == "limited"]
    assert [(line["event"], line["user"], line["group"]) for line in limited] == [
        ("tool_call", "alice", "limited")
    ]


@cluster_parts
async def test_a_tool_patterns_rate_limit_counts_on_top_of_the_groups(cluster):
    async with as_user(cluster.url, CAROL) as carol:
        first = await call(carol, "limited", "fail", message="as asked")
        second = await call(carol, "limited", "fail", message="again")
        other_tool = await call(carol, "limited", "echo", text="still fine")

    assert first.is_error and text(first).endswith("as asked")  # the tool's own failure
    assert second.is_error
    assert "reached the limit of 1 calls a minute" in text(second)
    assert "mcpServers.limited.tools.rate_limit['fai*']" in text(second)
    assert not other_tool.is_error


@cluster_parts
async def test_a_users_calls_at_once_are_capped_across_replicas_and_freed_when_one_ends(
    cluster, tmp_path
):
    first, second = (replica.url for replica in cluster.replicas)
    marker = tmp_path / "cancelled"
    async with (
        as_user(first, DAVE) as dave_1,
        as_user(second, DAVE) as dave_2,
        as_user(second, ERIN) as erin,
    ):

        async def wait_on_first() -> None:
            arguments = {"group": "waiting", "name": "wait", "args": {"marker": str(marker)}}
            with pytest.raises(MCPError):  # timed out: the client cancels it
                for _ in range(100):
                    waited = await dave_1.call_tool_mcp(
                        "call_dynamic_tool", arguments, timeout=GIVE_UP_AFTER
                    )
                    # Refused: a probe of dave's below held the one place at that moment.
                    assert "at once" in text(waited)
                    await anyio.sleep(0.05)

        async with anyio.create_task_group() as calls:
            calls.start_soon(wait_on_first)
            with anyio.fail_after(GIVE_UP_AFTER):
                refused = await call(dave_2, "waiting", "pid")
                while not refused.is_error:  # until the first call holds its place
                    await anyio.sleep(0.05)
                    refused = await call(dave_2, "waiting", "pid")
                erins = await call(erin, "waiting", "pid")
        with anyio.fail_after(WAIT):
            await until(marker.exists)  # the upstream saw the cancellation
            after = await call(dave_2, "waiting", "pid")
            while after.is_error and "at once" in text(after):  # its place is being given back
                await anyio.sleep(0.1)
                after = await call(dave_2, "waiting", "pid")

    assert "user 'dave' reached the limit of 1 call at once" in text(refused)
    assert "(mcpServers.waiting.max_concurrent_calls)" in text(refused)
    assert "try again when one of them has finished" in text(refused)
    assert not erins.is_error
    assert not after.is_error


async def test_without_a_store_one_users_calls_are_counted_in_the_process(tmp_path, connect):
    config = tmp_path / "dynamic-mcp.json"
    settings = {"rate_limit": "2 per minute"}
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}, "settings": settings}))
    client = await connect(config)
    results = [await call(client, "echo", "echo", text=str(n)) for n in range(3)]

    assert [result.is_error for result in results] == [False, False, True]
    assert text(results[2]).startswith(
        "Call to group 'echo' refused: this client reached the limit of 2 calls a minute "
        "(settings.rate_limit); try again in"
    )


def test_a_rate_that_is_not_one_is_a_config_error_naming_the_field(write_config):
    from groups.config import load_config
    from groups.errors import ConfigError

    config = write_config({"echo": stdio_entry(rate_limit="5 per fortnight")})
    with pytest.raises(ConfigError) as raised:
        load_config(config)

    assert "mcpServers.echo.rate_limit" in str(raised.value)
    assert "expected a rate such as '5/minute'" in str(raised.value)
