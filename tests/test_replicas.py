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

import anyio
import httpx2
import mcp_types
import psutil
import pytest
from conftest import UPSTREAMS, stdio_entry, until, wait_gone
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from mcp.shared.exceptions import MCPError

from bench.cluster import HEARTBEAT_KEY, Cluster, commands_sent, missing_parts

pytestmark = [
    pytest.mark.skipif(missing_parts() is not None, reason=str(missing_parts())),
]

ALICE, BOB = "alice-token-7f1c20", "bob-token-93ae5b"
WAIT = 30  # a first expansion starts a Python upstream on a busy machine
RECORDS = "dynamic-mcp__http-sessions/legacy/records::*"  # session records, in Redis
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
WAITING = UPSTREAMS / "waiting.py"
GIVE_UP_AFTER = 2.0  # seconds a client waits for a call before it cancels it
CANCELLED_WITHIN = 10.0  # seconds from a cancellation to the upstream's tool ending


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("replicas")
    config = directory / "dynamic-mcp.json"
    servers = {
        # Cold starts: a replica's upstreams are its own children (cluster.replica_of).
        "echo": stdio_entry(warm=False),
        "private": stdio_entry(description="Alice only", access=["alice"], warm=False),
        # Its calls end only when cancelled, not at the 30 s time limit, within any test.
        "waiting": stdio_entry(
            WAITING, "Waits until cancelled", timeout={"tools": "1h"}, warm=False
        ),
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


async def post(url: str, token: str, message: dict[str, Any], session: str | None = None):
    headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        return await http.post(url, json=message, headers=headers)


async def test_a_legacy_session_is_served_by_every_replica_and_ended_on_all(cluster):
    async with as_user(cluster.url, ALICE, mode="legacy") as alice:
        pids = [await upstream_pid(alice) for _ in range(6)]
        session = alice.transport.get_session_id()
        records = cluster.redis.client().keys(RECORDS)
        serving = {cluster.replica_of(pid).name for pid in pids}
        upstreams = [psutil.Process(pid) for pid in set(pids)]
    ended = [await post(r.url, ALICE, TOOLS_LIST, session) for r in cluster.replicas]
    # A stdio group is one process per replica for every named user (docs/gateway.md):
    # the session's end leaves them serving the others.
    still_running = [upstream for upstream in upstreams if upstream.is_running()]

    assert serving == {replica.name for replica in cluster.replicas}
    assert any("took up session" in replica.logged() for replica in cluster.replicas)
    assert records == [RECORDS.replace("*", session)]
    assert cluster.redis.client().keys(RECORDS) == []  # the client's DELETE ended it
    assert [response.status_code for response in ended] == [404] * len(cluster.replicas)
    assert still_running == upstreams


async def test_warm_calls_on_a_held_legacy_session_make_no_redis_round_trip(cluster):
    async with as_user(cluster.url, ALICE, mode="legacy") as alice:
        warm_up = [await upstream_pid(alice) for _ in range(4)]  # every replica holds it
        with commands_sent(cluster.redis) as sent:
            warm = [await upstream_pid(alice) for _ in range(4)]

    assert {cluster.replica_of(pid).name for pid in warm} == {r.name for r in cluster.replicas}
    assert set(warm) == set(warm_up)
    assert [command for command in sent if HEARTBEAT_KEY not in command] == []  # theirs alone


async def test_a_session_is_taken_up_ready_by_its_own_user_only(cluster):
    opener, other = cluster.replicas[0], cluster.replicas[1]
    opened = await post(opener.url, ALICE, INITIALIZE)
    session = opened.headers["mcp-session-id"]
    by_bob = [await post(r.url, BOB, TOOLS_LIST, session) for r in (opener, other)]
    by_alice = await post(other.url, ALICE, TOOLS_LIST, session)  # no initialize there

    assert opened.status_code == 200
    assert [response.status_code for response in by_bob] == [404, 404]
    assert by_alice.status_code == 200
    assert "get_dynamic_tools" in by_alice.text


async def test_an_elicitation_answered_through_another_replica_reaches_the_waiting_call(
    cluster,
):
    async def elicit(message: str, response_type: Any, params: Any, context: Any) -> Any:
        return mcp_types.ElicitResult(action="accept", content={"value": f"yes to {message}"})

    def forwarded() -> int:
        return sum(r.logged().count("answer went on to replica") for r in cluster.replicas)

    before = forwarded()
    async with as_user(cluster.url, ALICE, mode="legacy", elicitation_handler=elicit) as alice:
        results = [
            await alice.call_tool_mcp(
                "call_dynamic_tool",
                {"group": "echo", "name": "ask", "args": {"question": f"q{n}"}},
            )
            for n in range(4)
        ]

    assert [text(result) for result in results] == [f"q{n} -> yes to q{n}" for n in range(4)]
    assert forwarded() > before  # at least one answer landed on the replica not asking


async def test_two_calls_asking_at_once_on_one_session_each_get_their_own_answer(cluster):
    # Sent together through round-robin, the two calls run on two replicas, each asking
    # the client on the same session id: their requests' ids must not collide.
    asked = {f"q{n}": anyio.Event() for n in range(2)}

    async def elicit(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked[message].set()
        with anyio.fail_after(WAIT):  # both questions are out before either is answered
            for event in asked.values():
                await event.wait()
        return mcp_types.ElicitResult(action="accept", content={"value": f"yes to {message}"})

    results: dict[str, str] = {}
    async with as_user(cluster.url, ALICE, mode="legacy", elicitation_handler=elicit) as alice:

        async def ask(question: str) -> None:
            arguments = {"group": "echo", "name": "ask", "args": {"question": question}}
            results[question] = text(await alice.call_tool_mcp("call_dynamic_tool", arguments))

        async with anyio.create_task_group() as calls:
            for question in asked:
                calls.start_soon(ask, question)

    assert results == {question: f"{question} -> yes to {question}" for question in asked}


async def test_with_redis_down_sessions_fail_naming_it_and_resume_by_themselves(cluster):
    opener, other = cluster.replicas[0], cluster.replicas[1]
    session = (await post(opener.url, ALICE, INITIALIZE)).headers["mcp-session-id"]
    made = opener.logged().count("Created new transport with session ID: ")
    cluster.redis.stop()
    try:
        refused_open = await post(opener.url, ALICE, INITIALIZE)
        refused_take_up = await post(other.url, ALICE, TOOLS_LIST, session)
        held = await post(opener.url, ALICE, TOOLS_LIST, session)  # needs nothing of Redis
    finally:
        cluster.redis.start()  # empty: what the replicas had written is gone
    # Not half made: refused before the SDK made anything (its place could not be counted).
    half_made = opener.logged().count("Created new transport with session ID: ") - made
    with anyio.fail_after(WAIT):
        for replica in cluster.replicas:
            await until(lambda r=replica: "hearing the other replicas again" in r.logged())
    async with as_user(cluster.url, ALICE, mode="legacy") as alice:
        pids = [await upstream_pid(alice) for _ in range(4)]

    for refused in (refused_open, refused_take_up):
        assert refused.status_code == 503
        message = refused.json()["error"]["message"]
        assert message.startswith(f"the store {cluster.redis.url} is unavailable")
    assert held.status_code == 200
    assert half_made == 0
    assert {cluster.replica_of(pid).name for pid in pids} == {opener.name, other.name}


async def test_health_needs_no_token_and_readiness_follows_the_store(cluster):
    replica = cluster.replicas[0]
    base = replica.url.removesuffix("/mcp")
    async with httpx2.AsyncClient(timeout=WAIT) as http:  # no token, as a checker has none
        alive, ready = await http.get(f"{base}/healthz"), await http.get(f"{base}/readyz")
        cluster.redis.stop()
        try:
            still_alive = await http.get(f"{base}/healthz")
            unready = await http.get(f"{base}/readyz")
        finally:
            cluster.redis.start()
        ready_again = await http.get(f"{base}/readyz")
        through_balancer = await http.get(cluster.url.removesuffix("/mcp") + "/healthz")

    assert [alive.status_code, ready.status_code, still_alive.status_code] == [200, 200, 200]
    assert ready.json() == {"status": "ok"}
    assert unready.status_code == 503
    assert unready.json()["reason"].startswith(f"the store {cluster.redis.url} is unavailable")
    assert ready_again.status_code == 200
    assert through_balancer.status_code == 200


async def test_a_call_the_client_cancels_is_cancelled_on_whichever_replica_runs_it(
    cluster, tmp_path
):
    markers = [tmp_path / f"cancelled-{n}" for n in range(2)]
    async with as_user(cluster.url, ALICE, mode="legacy") as alice:
        for _ in range(4):  # both replicas start the group for this session: calls run at once
            await alice.call_tool_mcp(
                "call_dynamic_tool", {"group": "waiting", "name": "pid", "args": {}}
            )
        for marker in markers:
            arguments = {"group": "waiting", "name": "wait", "args": {"marker": str(marker)}}
            with pytest.raises(MCPError):  # timed out: the client cancels it
                await alice.call_tool_mcp("call_dynamic_tool", arguments, timeout=GIVE_UP_AFTER)
        with anyio.fail_after(CANCELLED_WITHIN):  # each call ended, the session still open
            for marker in markers:
                await until(marker.exists)


async def test_with_redis_stalled_taking_up_a_session_fails_naming_it_and_held_ones_answer(
    cluster,
):
    opener, other = cluster.replicas[0], cluster.replicas[1]
    session = (await post(opener.url, ALICE, INITIALIZE)).headers["mcp-session-id"]
    redis = psutil.Process(cluster.redis.process.pid)
    redis.suspend()  # SIGSTOP: connections stay open, nothing is answered
    try:
        held = await post(opener.url, ALICE, TOOLS_LIST, session)
        stalled = await post(other.url, ALICE, TOOLS_LIST, session)
    finally:
        redis.resume()
    taken_up = await post(other.url, ALICE, TOOLS_LIST, session)

    assert held.status_code == 200
    assert stalled.status_code == 503
    message = stalled.json()["error"]["message"]
    assert message.startswith(f"the store {cluster.redis.url} is unavailable")
    assert taken_up.status_code == 200  # once Redis answers again


# Last: it kills a replica, then starts it again for whatever runs after.
async def test_after_a_replica_is_killed_every_users_next_calls_succeed_on_the_others(cluster):
    victim = cluster.replicas[0]
    async with (
        as_user(cluster.url, ALICE, mode="legacy") as alice,
        as_user(cluster.url, BOB) as bob,
    ):
        before = [await upstream_pid(client) for _ in range(2) for client in (alice, bob)]
        assert victim.name in {cluster.replica_of(pid).name for pid in before}
        orphans = victim.kill()
        after = [await upstream_pid(client) for _ in range(3) for client in (alice, bob)]
        serving = {cluster.replica_of(pid).name for pid in after}
    left_running = wait_gone(orphans)
    victim.start()

    assert serving == {r.name for r in cluster.replicas if r is not victim}
    assert orphans  # it had started upstreams: with its stdin closed, each one ends
    assert left_running == []
