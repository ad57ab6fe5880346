"""Running a team gateway without restarts: the users file watched on every replica, and
`dynamic-mcp admin` listing and revoking across replicas from the store.

Two real replicas behind HAProxy (round-robin, no stickiness) on a real redis-server, with
a users file, an audit log, the echo upstream over stdio (a process per user on each
replica) and test_oauth's OAuth server as two remote groups; the real `dynamic-mcp`
command; the person in a browser is httpx following the gateway's sign-in page.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types
import psutil
import pytest
from conftest import stdio_entry, wait_gone
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from test_gateway_sign_in import sign_in_page
from test_oauth import oauth_servers
from test_per_user import link_in

from bench.cluster import Cluster, missing_parts

__all__ = ["oauth_servers"]  # test_oauth's fixture, used here by name

pytestmark = [
    pytest.mark.skipif(missing_parts() is not None, reason=str(missing_parts())),
]

SCRIPT = shutil.which("dynamic-mcp") or str(Path(os.__file__).parents[2] / "bin" / "dynamic-mcp")
TOKENS = {
    "alice": "alice-admin-token-5b1e",
    "bob": "bob-admin-token-c03d",
    "carol": "carol-admin-token-9e27",
    "erin": "erin-admin-token-41fa",
    "frank": "frank-admin-token-d6b8",
}
EVERYONE = ("alice", "bob", "erin", "frank")  # the users file as the cluster starts
WAIT = 30.0  # a first call starts a Python upstream on a busy machine; a heartbeat is 5 s
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


class UsersFile:
    """The cluster's users file, saved the way an editor that renames saves it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, users: dict[str, str], *, mode: int = 0o600, text: str | None = None) -> None:
        fresh = self.path.with_name(".users.json.swp")
        fresh.write_text(text if text is not None else json.dumps(users))
        fresh.chmod(mode)
        os.replace(fresh, self.path)

    def of(self, *names: str) -> dict[str, str]:
        """The file naming `names`, bob's token as its digest (both forms are read)."""
        return {
            name: "sha256:" + hashlib.sha256(TOKENS[name].encode()).hexdigest()
            if name == "bob"
            else TOKENS[name]
            for name in names
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, oauth_servers) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("admin")
    config = directory / "dynamic-mcp.json"
    oauth = oauth_servers(3600)
    servers = {
        "echo": stdio_entry(warm=False),  # each user's own process, on each replica
        "guarded": {"description": "Behind OAuth", "url": oauth},
        "guarded-too": {"description": "Behind OAuth as well", "url": oauth},
    }
    settings = {"start_on_expand": False, "audit_log": "audit.jsonl"}
    config.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    users = UsersFile(directory / "users.json")
    users.save(users.of(*EVERYONE))
    with Cluster(directory, config, users.path, public=True) as running:
        yield running


@pytest.fixture
async def users(cluster) -> AsyncIterator[UsersFile]:
    """The users file, as the cluster started with it again once the test is done, on
    every replica."""
    users = UsersFile(cluster.directory / "users.json")
    yield users
    users.save(users.of(*EVERYONE))

    async def as_started() -> bool:
        refused = all(status == 401 for status in await statuses(cluster, "carol"))
        return refused and all([await accepted(cluster, name) for name in EVERYONE])

    await eventually(as_started)


def as_user(url: str, name: str, **options: Any) -> Client:
    return Client(url, auth=BearerAuth(TOKENS[name]), init_timeout=WAIT, timeout=WAIT, **options)


def text(result: mcp_types.CallToolResult) -> str:
    return result.content[0].text


async def call(client: Client, group: str, tool: str) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": tool, "args": {}}
    )


async def post(url: str, name: str, session: str | None = None) -> httpx2.Response:
    """A tools/list as `name`, on the session `session` if given."""
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKENS[name]}"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        return await http.post(url, json=TOOLS_LIST, headers=headers)


async def statuses(cluster: Cluster, name: str, session: str | None = None) -> list[int]:
    """What each replica answers `name`'s tools/list (on `session`): 401 for a token not
    accepted; with one, 404 for a session it does not know, 400 without a session."""
    return [(await post(r.url, name, session)).status_code for r in cluster.replicas]


async def accepted(cluster: Cluster, name: str) -> bool:
    """Whether every replica accepts `name`'s token."""
    return all(status != 401 for status in await statuses(cluster, name))


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Until `check()` holds, asked again every tenth of a second, for `within` at most."""
    with anyio.fail_after(within):
        while not await check():  # noqa: ASYNC110 - other processes' state: no event to wait on
            await anyio.sleep(0.1)


async def on_every_replica(client: Client, cluster: Cluster) -> list[psutil.Process]:
    """Calls through the balancer until each replica runs the user's own echo process."""
    pids: set[int] = set()
    with anyio.fail_after(WAIT):
        while {cluster.replica_of(pid).name for pid in pids} != {r.name for r in cluster.replicas}:
            result = await call(client, "echo", "pid")
            assert not result.is_error, text(result)
            pids.add(int(text(result)))
    return [psutil.Process(pid) for pid in pids]


async def admin(cluster: Cluster, *args: str) -> tuple[int, str, str]:
    """`dynamic-mcp admin ARGS --config …`, with the replicas' store settings."""
    config = cluster.directory / "dynamic-mcp.json"
    done = await anyio.run_process(
        [SCRIPT, "admin", *args, "--config", str(config)], env=cluster.env, check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def admin_json(cluster: Cluster, *args: str) -> Any:
    status, out, err = await admin(cluster, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def audit_lines(cluster: Cluster, event: str, user: str) -> list[dict[str, Any]]:
    path = cluster.directory / "audit.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["event"] == event and line["user"] == user]


def logs(cluster: Cluster) -> str:
    return "".join(replica.logged() for replica in cluster.replicas)


def redis_keys(cluster: Cluster, pattern: str) -> list[str]:
    return cluster.redis.client().keys(f"dynamic-mcp__{pattern}")


# ---- the users file -------------------------------------------------------------------------


async def test_a_user_added_to_the_users_file_is_served_by_every_replica_within_seconds(
    cluster, users
):
    before = await statuses(cluster, "carol")
    users.save(users.of(*EVERYONE, "carol"))
    await eventually(lambda: accepted(cluster, "carol"))

    assert before == [401, 401]
    assert len(audit_lines(cluster, "user_added", "carol")) == len(cluster.replicas)


# Each way a save can be refused at start is refused while serving too: bob is left out
# of each broken file, and must be served all the same.
@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ({"mode": 0o644}, "is readable by others (mode 0644): run chmod 600"),
        ({"text": '{"alice": "alice-admin-token-5b1e",'}, "is not JSON"),
        ({"twin": True}, "gives users 'alice' and 'carol' the same token"),
    ],
)
async def test_a_broken_users_file_keeps_the_last_good_users_and_says_why_never_a_token(
    cluster, users, broken, said
):
    refusals = logs(cluster).count("(still serving the last good users)")
    kept = users.of("alice", "erin", "frank")
    broken = dict(broken)  # the case's own: a rerun finds it whole
    if broken.pop("twin", False):
        kept["carol"] = TOKENS["alice"]
    users.save(kept, **broken)
    await eventually(
        lambda: _true(logs(cluster).count("(still serving the last good users)") >= refusals + 2)
    )
    bob_still = await accepted(cluster, "bob")
    carol_still = await statuses(cluster, "carol")
    users.save(users.of("alice", "erin", "frank"))  # a good save applies again
    await eventually(lambda: _all(statuses(cluster, "bob"), 401))
    told = [  # each replica's last refusal: this save's
        [line for line in r.logged().splitlines() if "still serving the last good" in line][-1]
        for r in cluster.replicas
    ]

    assert bob_still
    assert carol_still == [401, 401]
    assert all(f"the users file {users.path} " in line and said in line for line in told)
    assert not any(token in logs(cluster) for token in TOKENS.values())


async def test_a_removed_user_is_refused_and_their_sessions_end_on_every_replica(cluster, users):
    async with as_user(cluster.url, "erin", mode="legacy") as erin:
        processes = await on_every_replica(erin, cluster)
        session = erin.transport.get_session_id()
        async with as_user(cluster.url, "alice", mode="legacy") as alice:
            alices = await on_every_replica(alice, cluster)
            users.save(users.of("alice", "bob", "frank"))
            await eventually(lambda: _all(statuses(cluster, "erin", session), 401))
            records = redis_keys(cluster, f"http-sessions/legacy/records::{session}")
            left = wait_gone(processes)
            users.save(users.of(*EVERYONE))  # back, with the same token
            await eventually(lambda: accepted(cluster, "erin"))
            old_session = await statuses(cluster, "erin", session)
            alice_after = await call(alice, "echo", "pid")

    assert records == []  # no replica can take the session up again
    assert left == []  # her own processes ended, on both replicas
    assert old_session == [404, 404]  # as the SDK answers for a session it never knew
    assert int(text(alice_after)) in {p.pid for p in alices}  # hers ran on, untouched
    assert all(p.is_running() for p in alices)
    removed = audit_lines(cluster, "user_removed", "erin")
    assert len(removed) == len(cluster.replicas)  # each replica read the file itself
    assert max(line["upstreams"] for line in removed) >= 1


# ---- dynamic-mcp admin ----------------------------------------------------------------------


async def test_admin_lists_users_sessions_and_each_replicas_processes_from_the_store(cluster):
    async with as_user(cluster.url, "alice", mode="legacy") as alice:
        processes = await on_every_replica(alice, cluster)
        session = alice.transport.get_session_id()[:8]

        async def listed() -> bool:
            replicas = await admin_json(cluster, "replicas")
            return {use["pid"] for r in replicas for use in r["upstreams"]} >= {
                p.pid for p in processes
            }

        await eventually(listed)  # each replica's next heartbeat, within 5 s
        replicas = await admin_json(cluster, "replicas")
        sessions = await admin_json(cluster, "sessions", "alice")
        known = {row["user"]: row for row in await admin_json(cluster, "users")}
        table_status, table, _ = await admin(cluster, "users")

    by_pid = {use["pid"]: (r["replica"], use) for r in replicas for use in r["upstreams"]}
    for process in processes:
        replica, use = by_pid[process.pid]
        assert use["group"] == "echo" and use["user"] == "alice" and use["kind"] == "stdio"
        assert process.ppid() == next(r["pid"] for r in replicas if r["replica"] == replica)
    assert [row["session"] for row in sessions] == [session]
    assert set(sessions[0]["held_by"]) == {r["replica"] for r in replicas}
    assert sessions[0]["opened_on"] in sessions[0]["held_by"]
    assert known["alice"]["sessions"] == 1 and known["alice"]["upstreams"] >= 2
    assert set(known["alice"]["replicas"]) == {r["replica"] for r in replicas}
    assert table_status == 0
    assert table.splitlines()[0].split()[:3] == ["USER", "LAST", "SEEN"]
    assert any(line.startswith("alice ") for line in table.splitlines())


async def test_admin_revoke_ends_a_users_sessions_everywhere_and_forgets_their_sign_ins(
    cluster,
):
    async with as_user(cluster.url, "frank", mode="legacy") as frank:
        await _sign_in(frank, "frank", "guarded")
        waiting_link = link_in(await call(frank, "guarded-too", "whoami"))
        processes = await on_every_replica(frank, cluster)
        session = frank.transport.get_session_id()
        listed = await admin_json(cluster, "sign-ins", "frank")
        status, said, _ = await admin(cluster, "revoke", "frank")
        old_session = await statuses(cluster, "frank", session)
    left = wait_gone(processes)
    stored = redis_keys(cluster, "users/frank/*")
    async with httpx2.AsyncClient(timeout=WAIT) as browser:
        link_after = await browser.get(waiting_link)
    async with as_user(cluster.url, "frank") as frank_again:
        asked_again = [await call(frank_again, "guarded", "whoami") for _ in cluster.replicas]

    assert {(row["group"], row["state"]) for row in listed} == {
        ("guarded", "signed in"),
        ("guarded-too", "waiting"),
    }
    assert status == 0, said
    assert "session records deleted  1" in said
    assert "sign-ins dropped         1" in said
    assert "signed out of            guarded, guarded-too" in said
    assert said.count("ended 1 session and") == len(cluster.replicas)  # each said it did
    assert old_session == [404, 404]
    assert left == []
    assert stored == []
    assert link_after.status_code == 400  # the waiting sign-in finishes nothing now
    # Every replica asks for a sign-in anew: none still signs with a token it held.
    assert all("needs you to sign in" in text(result) for result in asked_again)
    revoked = audit_lines(cluster, "user_revoked", "frank")
    assert [(line["replica"], line["replicas_confirmed"]) for line in revoked] == [("admin", 2)]
    assert len(audit_lines(cluster, "user_sessions_ended", "frank")) == len(cluster.replicas)
    assert not any(token in said + logs(cluster) for token in TOKENS.values())


async def test_admin_without_a_shared_store_says_what_to_set(cluster, tmp_path):
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    env = {k: v for k, v in cluster.env.items() if not k.startswith("DYNAMIC_MCP_STORE")}
    done = await anyio.run_process(
        [SCRIPT, "admin", "users", "--config", str(config)], env=env, check=False
    )

    assert done.returncode == 2
    assert done.stderr.decode().startswith("dynamic-mcp: admin reads a team gateway's shared")
    assert "DYNAMIC_MCP_STORE" in done.stderr.decode()


async def _sign_in(client: Client, name: str, group: str) -> None:
    """`name` signs in to `group`: their link, the gateway's page with their token, the
    OAuth server, the gateway's callback; then their client's call succeeds."""
    link = link_in(await call(client, group, "whoami"))
    async with httpx2.AsyncClient(timeout=WAIT, follow_redirects=True) as browser:
        finished = await sign_in_page(browser, link, TOKENS[name])
    assert finished.status_code == 200, finished.text
    with anyio.fail_after(WAIT):
        while (await call(client, group, "whoami")).is_error:  # noqa: ASYNC110 - the callback lands elsewhere
            await anyio.sleep(0.2)


async def _all(answers: Awaitable[list[int]], status: int) -> bool:
    return all(answer == status for answer in await answers)


async def _true(value: bool) -> bool:
    return value
