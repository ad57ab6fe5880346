"""One member of a team against another, on a real gateway: two replicas of dynamic-mcp
behind HAProxy (no stickiness), a real redis-server, two users with their own tokens.

Each test does what an outside review did to the gateway (issue "Gateway trust") and
checks the other users are not touched by it. One cluster serves the module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from conftest import stdio_entry
from mcp_types import INVALID_REQUEST, PARSE_ERROR

from bench.cluster import HEARTBEAT_KEY, Cluster, commands_sent, missing_parts

pytestmark = [
    pytest.mark.skipif(missing_parts() is not None, reason=str(missing_parts())),
]

ALICE, BOB = "alice-token-31be07", "bob-token-c5d920"
CAROL, DAVE = "carol-token-8e4f11", "dave-token-27aa6c"
SESSIONS_PER_USER, OPENS_PER_MINUTE = 5, 8
IDLE = 600  # seconds: settings.http.session_idle_timeout
RECORDS = "dynamic-mcp__http-sessions/legacy/records::*"  # session records, in Redis
WAIT = 30  # seconds: a first request reaches a cold replica on a busy machine
BODY_LIMIT = 64 * 1024  # settings.http.max_request_body, below the 4 MiB default
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
TOO_DEEP = b"[" * 30_000 + b"]" * 30_000  # valid JSON; no JSON-RPC message nests so deep


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("trust")
    config = directory / "dynamic-mcp.json"
    servers = {"echo": stdio_entry(warm=False)}
    http = {
        "max_request_body": "64KiB",
        "sessions_per_user": SESSIONS_PER_USER,
        "session_opens_per_minute": OPENS_PER_MINUTE,
        "session_idle_timeout": f"{IDLE}s",
    }
    settings = {"start_on_expand": False, "http": http}
    config.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    users = directory / "users.json"
    bob = "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()
    users.write_text(json.dumps({"alice": ALICE, "bob": bob, "carol": CAROL, "dave": DAVE}))
    users.chmod(0o600)
    with Cluster(directory, config, users) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=WAIT) as client:
        yield client


def headers(token: str | None = None, session: str | None = None) -> dict[str, str]:
    sent = dict(ACCEPT)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if session is not None:
        sent["Mcp-Session-Id"] = session
    return sent


def logged(cluster: Cluster) -> str:
    return "".join(replica.log.read_text() for replica in cluster.replicas)


def error_of(response: httpx2.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["error"]


# ---- 5. nothing before identity ---------------------------------------------------------


async def test_a_request_without_identity_is_401_its_body_unread_and_the_store_not_asked(
    cluster, http
):
    with commands_sent(cluster.redis) as sent:
        for replica in cluster.replicas:  # each replica, not whichever the balancer picks
            deep = await http.post(replica.url, content=TOO_DEEP, headers=headers())
            made_up = await http.post(
                replica.url, json=INITIALIZE, headers=headers(session="made-up-session-id")
            )
            wrong = await http.post(replica.url, json=INITIALIZE, headers=headers("not-a-token"))
            assert [deep.status_code, made_up.status_code, wrong.status_code] == [401, 401, 401]

    # Only the replicas' heartbeats, which run every few seconds whoever asks.
    assert [command for command in sent if HEARTBEAT_KEY not in command] == []
    assert "Traceback" not in logged(cluster)
    assert "RecursionError" not in logged(cluster)


@pytest.mark.parametrize(
    ("body", "reason"),
    [(TOO_DEEP, "recursion limit"), (b'{"jsonrpc": "2.0", "id": 1, "method": ', "EOF")],
    ids=["too deep", "cut short"],
)
async def test_a_body_that_is_not_json_is_400_with_a_parse_error_and_one_log_line(
    cluster, http, body, reason
):
    lines_before = logged(cluster).count("is not JSON")
    answers = [
        await http.post(replica.url, content=body, headers=headers(ALICE))
        for replica in cluster.replicas
    ]
    lines = [line for line in logged(cluster).splitlines() if "is not JSON" in line]

    assert [answer.status_code for answer in answers] == [400, 400]
    assert all(error_of(answer)["code"] == PARSE_ERROR for answer in answers)
    assert all(reason in error_of(answer)["message"] for answer in answers)
    assert len(lines) == lines_before + 2  # one each
    assert "user 'alice'" in lines[-1]
    assert "Traceback" not in logged(cluster)


async def test_a_body_over_the_limit_is_413_with_a_json_rpc_error_naming_the_setting(cluster, http):
    padding = "x" * (BODY_LIMIT + 1)
    over = {**INITIALIZE, "params": {**INITIALIZE["params"], "padding": padding}}

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        data = json.dumps(over).encode()
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    declared = await http.post(cluster.url, json=over, headers=headers(BOB))
    chunked = await http.post(cluster.url, content=streamed(), headers=headers(BOB))
    under = {**INITIALIZE, "params": {**INITIALIZE["params"], "padding": "x" * 60_000}}
    served = await http.post(cluster.url, json=under, headers=headers(BOB))

    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert error_of(answer)["code"] == INVALID_REQUEST
        assert "65536 bytes (settings.http.max_request_body)" in error_of(answer)["message"]
    assert served.status_code == 200, served.text


# ---- 1. nobody exhausts the gateway for the others --------------------------------------


async def open_session(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    return await http.post(url, json=INITIALIZE, headers=headers(token))


def refused_for(answer: httpx2.Response, setting: str) -> str:
    """The refusal's message, once it is checked to be a 429 that says when to retry."""
    assert answer.status_code == 429, answer.text
    assert 1 <= int(answer.headers["retry-after"]) <= IDLE + IDLE / 3
    message = error_of(answer)["message"]
    assert f"(settings.http.{setting})" in message
    return message


async def test_a_users_sessions_are_capped_across_replicas_and_nobody_else_is_touched(
    cluster, http
):
    first, second = cluster.replicas
    opened = [await open_session(http, first.url, CAROL) for _ in range(3)]
    opened += [await open_session(http, second.url, CAROL) for _ in range(2)]
    refused = await open_session(http, first.url, CAROL)  # 3 here: 5 with the other's
    alices = await open_session(http, first.url, ALICE)
    ended = opened[0].headers["mcp-session-id"]
    deleted = await http.delete(second.url, headers=headers(CAROL, ended))  # the other one
    again = await open_session(http, first.url, CAROL)

    assert [answer.status_code for answer in opened] == [200] * SESSIONS_PER_USER
    assert "user 'carol' holds 5 sessions" in refused_for(refused, "sessions_per_user")
    assert alices.status_code == 200
    assert deleted.status_code == 200
    assert again.status_code == 200, again.text


async def test_a_user_opening_sessions_too_fast_is_slowed_alone(cluster, http):
    answers = []
    for _ in range(OPENS_PER_MINUTE + 1):  # each ended at once: only the rate can refuse
        answers.append(answer := await open_session(http, cluster.url, DAVE))
        if answer.status_code == 200:
            session = answer.headers["mcp-session-id"]
            await http.delete(cluster.url, headers=headers(DAVE, session))
    others = await open_session(http, cluster.url, BOB)

    assert [answer.status_code for answer in answers[:-1]] == [200] * OPENS_PER_MINUTE
    message = refused_for(answers[-1], "session_opens_per_minute")
    assert "user 'dave' opened 8 sessions in the last minute" in message
    assert int(answers[-1].headers["retry-after"]) <= 60
    assert others.status_code == 200


async def test_a_sessions_record_lives_as_long_as_the_session_can_not_a_day(cluster, http):
    opened = await open_session(http, cluster.url, ALICE)
    session = opened.headers["mcp-session-id"]
    redis = cluster.redis.client()
    record = next(key for key in redis.scan_iter(match=RECORDS) if key.endswith(session))

    assert 0 < redis.ttl(record) <= IDLE + IDLE / 3


# ---- 6. the store is not a back door -----------------------------------------------------

TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
ENDED = "http-sessions/ended"  # the channel replicas tell each other a session ended on


async def test_a_session_record_rewritten_in_redis_gives_nobody_the_session(cluster, http):
    opener, other = cluster.replicas
    opened = await open_session(http, opener.url, ALICE)
    session = opened.headers["mcp-session-id"]
    redis = cluster.redis.client()
    record = next(key for key in redis.scan_iter(match=RECORDS) if key.endswith(session))
    # What anyone who can write to Redis can do: make the record say bob opened it.
    redis.set(record, redis.get(record).replace("alice", "bob"), keepttl=True)
    taken = await http.post(other.url, json=TOOLS_LIST, headers=headers(BOB, session))

    assert opened.status_code == 200
    assert taken.status_code == 404  # as for a session that does not exist
    assert "its record in the store was not written by a replica with this" in logged(cluster)


async def test_a_forged_session_ended_message_ends_nothing(cluster, http):
    opener = cluster.replicas[0]
    opened = await open_session(http, opener.url, BOB)
    session = opened.headers["mcp-session-id"]
    redis = cluster.redis.client()
    forged = json.dumps({"text": json.dumps({"session": session}), "mac": "0" * 64})
    channel = f"dynamic-mcp__{ENDED}"  # in Redis, under the store's namespace
    heard = [redis.publish(channel, session), redis.publish(channel, forged)]
    with anyio.fail_after(WAIT):  # both heard and dropped by the replicas listening
        while not all(  # noqa: ASYNC110 - another process's log
            logged(cluster).count(f"dropped a message on {ENDED} {why}") == 2  # each replica
            for why in ("no replica sent", "sealed with another key")
        ):
            await anyio.sleep(0.05)
    still = await http.post(opener.url, json=TOOLS_LIST, headers=headers(BOB, session))

    assert heard == [2, 2]
    assert still.status_code == 200, still.text
