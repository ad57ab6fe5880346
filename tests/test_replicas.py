"""Any replica answers any request: two dynamic-mcp replicas behind HAProxy in round-robin
(no stickiness), sharing a real redis-server, driven by the official client as two users.

One cluster serves the whole module (starting replicas is the expensive part); the test
that kills a replica runs last and brings it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import mcp_types
import pytest
from conftest import stdio_entry
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from replica_parts import Cluster, missing_parts

pytestmark = [
    pytest.mark.skipif(missing_parts() is not None, reason=str(missing_parts())),
    # One cluster for the module: on one worker it is started once.
    pytest.mark.xdist_group("replicas"),
]

ALICE, BOB = "alice-token-7f1c20", "bob-token-93ae5b"
WAIT = 30  # a first expansion starts a Python upstream on a busy machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("replicas")
    config = directory / "dynamic-mcp.json"
    servers = {
        "echo": stdio_entry(),
        "private": stdio_entry(description="Alice only", access=["alice"]),
    }
    # The expansion alone starts nothing where the catalog has the group's tools.
    settings = {"start_on_expand": False}
    config.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    users = directory / "users.json"
    bob = "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()
    users.write_text(json.dumps({"alice": ALICE, "bob": bob}))
    users.chmod(0o600)
    with Cluster(directory, config, users) as running:
        yield running


def as_user(url: str, token: str, **options: Any) -> Client:
    return Client(url, auth=BearerAuth(token), init_timeout=WAIT, timeout=WAIT, **options)


def text(result: mcp_types.CallToolResult) -> str:
    return result.content[0].text


async def expand(client: Client, group: str) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp("get_dynamic_tools", {"group": group})


async def upstream_pid(client: Client) -> int:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "echo", "name": "pid", "args": {}}
    )
    assert not result.is_error, text(result)
    return int(text(result))


async def test_a_group_expanded_on_one_replica_expands_from_the_shared_catalog_on_the_others(
    cluster,
):
    async with as_user(cluster.url, ALICE) as through_balancer:
        first = await expand(through_balancer, "private")
    expansions = []
    for replica in cluster.replicas:
        async with as_user(replica.url, ALICE) as direct:
            expansions.append(await expand(direct, "private"))
    started = [r for r in cluster.replicas if r.upstream_pids()]

    assert not first.is_error, text(first)
    assert all(json.loads(text(e)) == json.loads(text(first)) for e in expansions)
    assert len(started) == 1  # only where it was first expanded: the others read Redis


async def test_modern_clients_of_two_users_are_served_by_every_replica_in_turn(cluster):
    async with as_user(cluster.url, ALICE) as alice, as_user(cluster.url, BOB) as bob:
        pids = [await upstream_pid(client) for _ in range(3) for client in (alice, bob)]
        hidden = await expand(bob, "private")
    serving = {cluster.replica_of(pid).name for pid in pids}

    assert serving == {replica.name for replica in cluster.replicas}
    assert hidden.is_error
    assert "private" in text(hidden)
