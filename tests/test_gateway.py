"""A team gateway: every HTTP request names its user (a users file or JWTs), and a group's
`access` decides who sees and uses it.

Each gateway is a real `dynamic-mcp --transport http` on 127.0.0.1, spoken to by the
official client as two different users at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types
import pytest
from conftest import UPSTREAMS, free_port, serving_http, stdio_entry
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from fastmcp.server.auth.providers.jwt import RSAKeyPair
from joserfc import jwk, jwt
from mcp.shared.exceptions import MCPError
from test_http_serving import ACCEPT, INITIALIZE, dynamic_mcp

from groups.access import User, may_use
from groups.config import Config, launch_identity
from groups.serving import http_auth
from groups.serving.users import JwtSettings, UsersFile

ALICE, BOB = "alice-token-5d2a91", "bob-token-0c7e44"
ISSUER, AUDIENCE = "https://id.example.test", "dynamic-mcp-gateway"
WAIT = 30  # a first expansion starts a Python upstream
WATCHED = UPSTREAMS / "watched.py"


def servers() -> dict[str, Any]:
    return {
        "open": stdio_entry(description="Open to everyone"),
        "private": stdio_entry(description="Alice only", access=["alice"]),
        "platform": stdio_entry(description="The platform team", access=["group:platform-team"]),
        "watched": stdio_entry(WATCHED, "Completes and is watched", access=["alice"]),
    }


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gateway") / "dynamic-mcp.json"
    path.write_text(json.dumps({"mcpServers": servers(), "settings": {"search": True}}))
    return path


def private_file(path: Path, data: Any, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def users_file(tmp_path_factory) -> Path:
    """alice's token as given, bob's as the SHA-256 of it."""
    bob = "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()
    return private_file(
        tmp_path_factory.mktemp("users") / "users.json", {"alice": ALICE, "bob": bob}
    )


@contextmanager
def gateway(config: Path, log: Path, *args: str) -> Iterator[str]:
    """`dynamic-mcp CONFIG --transport http ARGS` on a free loopback port, its stderr in
    `log`; yields its URL."""
    without_token = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    with (
        log.open("w") as stderr,
        serving_http(config, "--log-level", "debug", *args, env=without_token, stderr=stderr) as (
            url,
            _,
        ),
    ):
        yield url


@pytest.fixture(scope="module")
def users_log(tmp_path_factory) -> Path:
    """Where the users gateway logs, at debug level."""
    return tmp_path_factory.mktemp("logs") / "users.log"


@pytest.fixture(scope="module")
def users_url(config: Path, users_file: Path, users_log: Path) -> Iterator[str]:
    """A gateway whose users are alice and bob."""
    with gateway(config, users_log, "--users", str(users_file)) as url:
        yield url


def as_user(url: str, token: str, **options: Any) -> Client:
    return Client(url, auth=BearerAuth(token), init_timeout=WAIT, timeout=WAIT, **options)


def headers(token: str, session: str | None = None) -> dict[str, str]:
    """What a raw request to the endpoint sends, as `token`'s holder, on `session`."""
    sent = {**ACCEPT, "Authorization": f"Bearer {token}"}
    return sent | ({"Mcp-Session-Id": session} if session else {})


async def meta_tools(client: Client) -> dict[str, mcp_types.Tool]:
    return {tool.name: tool for tool in await client.list_tools()}


def shown_groups(tools: dict[str, mcp_types.Tool]) -> tuple[list[str], str]:
    """The enum of get_dynamic_tools' `group`, and its description."""
    get_tools = tools["get_dynamic_tools"]
    return get_tools.input_schema["properties"]["group"]["enum"], get_tools.description or ""


def text(result: mcp_types.CallToolResult) -> str:
    return "".join(
        block.text for block in result.content if isinstance(block, mcp_types.TextContent)
    )


# ---- a users file ---------------------------------------------------------------------


async def test_each_user_is_shown_only_the_groups_open_to_them(users_url):
    async with as_user(users_url, ALICE) as alice, as_user(users_url, BOB) as bob:
        # Interleaved: one user's listing must not be served to the other from a cache.
        for_alice = shown_groups(await meta_tools(alice))
        for_bob = shown_groups(await meta_tools(bob))
        again_for_alice = shown_groups(await meta_tools(alice))

    assert for_alice[0] == ["open", "private", "watched"]
    assert "- private: Alice only" in for_alice[1]
    assert for_bob[0] == ["open"]
    assert "private" not in for_bob[1] and "Alice only" not in for_bob[1]
    assert "platform" not in for_bob[1] + for_alice[1]
    assert again_for_alice == for_alice


async def test_a_group_hidden_from_a_user_cannot_be_expanded_called_or_searched(users_url):
    async with as_user(users_url, BOB) as bob:
        expanded = await bob.call_tool_mcp("get_dynamic_tools", {"group": "private"})
        called = await bob.call_tool_mcp(
            "call_dynamic_tool", {"group": "private", "name": "echo", "args": {"text": "hi"}}
        )
        by_its_name = await bob.call_tool_mcp("private_echo", {"text": "hi"})
        open_call = await bob.call_tool_mcp(
            "call_dynamic_tool", {"group": "open", "name": "echo", "args": {"text": "hi"}}
        )
    async with as_user(users_url, ALICE) as alice:
        alice_called = await alice.call_tool_mcp(
            "call_dynamic_tool", {"group": "private", "name": "echo", "args": {"text": "hi"}}
        )
        await alice.call_tool_mcp("get_dynamic_tools", {"group": "open"})
    async with as_user(users_url, BOB) as bob:
        searched = await bob.call_tool_mcp("search_dynamic_tools", {"query": "echo"})

    for refused in (expanded, called):
        assert refused.is_error
        # As for a group that does not exist: only the groups bob may use are named.
        assert text(refused) == "Unknown group 'private'. Valid groups: open."
    assert by_its_name.is_error and "private" not in text(by_its_name).replace("'private_echo'", "")
    assert not open_call.is_error and not alice_called.is_error
    assert not searched.is_error
    assert '"group":"private"' not in text(searched) and "private" not in text(searched)


def greet(name: str) -> mcp_types.PromptReference:
    return mcp_types.PromptReference(type="ref/prompt", name=f"{name}_greet")


async def subscribe(client: Client, uri: str) -> None:
    # The SDK's own subscribe_resource is deprecated for the 2026-07-28 era; this is 2025's.
    request = mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri))
    await client.session.send_request(request, mcp_types.EmptyResult)


async def test_a_hidden_groups_resources_prompts_and_completions_are_not_served(users_url):
    # Handshake-era clients: resource subscriptions are theirs.
    alice, bob = as_user(users_url, ALICE, mode="legacy"), as_user(users_url, BOB, mode="legacy")
    async with alice, bob:
        for group in ("private", "watched"):  # alice's use mounts them on the root
            await alice.call_tool_mcp("get_dynamic_tools", {"group": group})
        alice_resources = [str(r.uri) for r in await alice.list_resources()]
        alice_prompts = [p.name for p in await alice.list_prompts()]
        alice_read = await alice.read_resource("memo://private/greeting")
        alice_names = await alice.complete(greet("watched"), {"name": "name", "value": "al"})
        await subscribe(alice, "counter://watched/one")

        bob_resources = [str(r.uri) for r in await bob.list_resources()]
        bob_templates = [t.uri_template for t in await bob.list_resource_templates()]
        bob_prompts = [p.name for p in await bob.list_prompts()]
        with pytest.raises(MCPError) as read:
            await bob.read_resource("memo://private/greeting")
        with pytest.raises(MCPError) as never_there:
            await bob.read_resource("memo://nowhere/greeting")
        with pytest.raises(MCPError) as prompt:
            await bob.get_prompt("private_summarize", {"topic": "x"})
        bob_names = await bob.complete(greet("watched"), {"name": "name", "value": "al"})
        with pytest.raises(MCPError) as subscribed:
            await subscribe(bob, "counter://watched/one")

    assert "memo://private/greeting" in alice_resources and "private_summarize" in alice_prompts
    assert "counter://watched/one" in alice_resources
    assert alice_read[0].text == "hello from the echo upstream"
    assert alice_names.values == ["albert", "alice"]
    assert not [uri for uri in bob_resources + bob_templates if "://private/" in uri]
    assert not [uri for uri in bob_resources + bob_templates if "://watched/" in uri]
    assert not [name for name in bob_prompts if name.startswith(("private_", "watched_"))]
    # Refused as a group that does not exist is: nothing tells bob it is there.
    assert read.value.error.code == never_there.value.error.code
    assert str(read.value).replace("private", "nowhere") == str(never_there.value)
    assert prompt.value.error.code == read.value.error.code
    assert bob_names.values == []
    assert subscribed.value.error.code == mcp_types.INVALID_PARAMS


@pytest.mark.parametrize(
    "authorization",
    [
        None,  # no token at all
        "Bearer not-a-users-token",
        f"Bearer sha256:{hashlib.sha256(BOB.encode()).hexdigest()}",  # the file's form is no token
        f"Basic {ALICE}",  # not a bearer token
    ],
)
async def test_a_request_without_a_users_token_gets_401(users_url, authorization):
    headers = dict(ACCEPT)
    if authorization:
        headers["Authorization"] = authorization
    async with httpx2.AsyncClient() as http:
        response = await http.post(users_url, json=INITIALIZE, headers=headers)
    assert response.status_code == 401


async def test_no_token_is_ever_written_to_the_log(users_url, users_log):
    # The shared gateway: its log holds this test's requests and any other's so far.
    async with as_user(users_url, BOB) as bob:
        await bob.call_tool_mcp("get_dynamic_tools", {"group": "open"})
    async with httpx2.AsyncClient() as http:
        wrong = {**ACCEPT, "Authorization": f"Bearer {ALICE}x"}
        await http.post(users_url, json=INITIALIZE, headers=wrong)
    written = users_log.read_text()
    assert written  # at debug level it did log, just not them
    assert ALICE not in written and BOB not in written
    assert hashlib.sha256(BOB.encode()).hexdigest() not in written


@pytest.mark.parametrize(
    ("users", "mode", "problem"),
    [
        ({"alice": ALICE}, 0o644, "is readable by others (mode 0644): run chmod 600"),
        (["alice", ALICE], 0o600, "must be a JSON object of user name to token"),
        ({"alice": ""}, 0o600, "gives user 'alice' no token"),
        ({"alice": "sha256:abc"}, 0o600, "gives user 'alice' a sha256: token that is not 64 hex"),
        ({"alice": ALICE, "bob": ALICE}, 0o600, "gives users 'alice' and 'bob' the same token"),
        ({"group:ops": ALICE}, 0o600, "names a user 'group:ops': 'group:' begins a group's"),
    ],
)
def test_an_unsafe_or_malformed_users_file_is_refused_at_start(
    config, tmp_path, users, mode, problem
):
    path = private_file(tmp_path / "users.json", users, mode)
    process = dynamic_mcp(
        config, "--port", str(free_port()), "--users", str(path), output=subprocess.PIPE
    )
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stderr.startswith(f"dynamic-mcp: the users file {path} {problem}")
    assert len(stderr.strip().splitlines()) == 1
    assert ALICE not in stderr + stdout


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["--jwks-url", "https://id.example.test/jwks"], {}, "a users file (--users) and JWTs"),
        ([], {"DYNAMIC_MCP_HTTP_TOKEN": "shared"}, "and one shared token (DYNAMIC_MCP_HTTP_TOKEN)"),
    ],
)
def test_users_and_another_kind_of_auth_at_once_are_refused(config, users_file, args, env, problem):
    process = dynamic_mcp(
        config, "--users", str(users_file), *args, env=env, output=subprocess.PIPE
    )
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stderr.startswith("dynamic-mcp: give one way to check who is asking, not both: ")
    assert problem in stderr


def test_named_users_are_auth_enough_off_loopback(users_file):
    auth = http_auth("0.0.0.0", token_file=None, users=users_file, jwt=JwtSettings())
    assert isinstance(auth, UsersFile)


async def test_without_a_shared_store_a_users_sessions_are_capped_in_the_one_process(
    users_file, tmp_path
):
    config = tmp_path / "dynamic-mcp.json"
    http_settings = {"sessions_per_user": 2}
    config.write_text(json.dumps({"mcpServers": servers(), "settings": {"http": http_settings}}))
    with gateway(config, tmp_path / "capped.log", "--users", str(users_file)) as url:
        async with httpx2.AsyncClient() as http:
            alices = [
                await http.post(url, json=INITIALIZE, headers=headers(ALICE)) for _ in range(3)
            ]
            bobs = await http.post(url, json=INITIALIZE, headers=headers(BOB))

    assert [answer.status_code for answer in alices] == [200, 200, 429]
    assert "settings.http.sessions_per_user" in alices[-1].json()["error"]["message"]
    assert bobs.status_code == 200


LIST_CHANGED = {
    mcp_types.ToolListChangedNotification: "tools",
    mcp_types.ResourceListChangedNotification: "resources",
    mcp_types.PromptListChangedNotification: "prompts",
}


class Hearing:
    """What list_changed notifications one legacy client heard, in order."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    async def __call__(self, message: Any) -> None:
        if type(message) in LIST_CHANGED:
            self.heard.append(LIST_CHANGED[type(message)])


async def test_a_groups_first_mount_and_failure_are_announced_only_to_its_users(
    users_file, tmp_path
):
    broken = stdio_entry(description="Alice only, broken", access=["alice"])
    broken["args"] = [str(tmp_path / "no-such-server.py")]
    entries = {**servers(), "broken": broken}
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": entries}))
    alices, bobs = Hearing(), Hearing()
    with gateway(config, tmp_path / "announced.log", "--users", str(users_file)) as url:
        async with (
            as_user(url, ALICE, mode="legacy", message_handler=alices) as alice,
            as_user(url, BOB, mode="legacy", message_handler=bobs) as bob,
        ):
            await alice.list_tools(), await bob.list_tools()  # both heard from now on
            for group in ("private", "broken", "open"):  # hers, hers, everyone's
                await alice.call_tool_mcp("get_dynamic_tools", {"group": group})
            with anyio.fail_after(WAIT):  # the last announcement, everyone's, reached both
                while alices.heard.count("resources") < 2 or "prompts" not in bobs.heard:  # noqa: ASYNC110 - notifications, no event to wait on
                    await anyio.sleep(0.05)

    assert "tools" in alices.heard  # the failure of hers, told to her
    assert bobs.heard == ["resources", "prompts"]  # of "open" alone


async def test_a_subscription_hears_no_update_once_access_no_longer_lets_its_user_in(
    users_file, tmp_path
):
    watched = stdio_entry(WATCHED, "Watched by alice, then bob's", sessions="shared")
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"watched": {**watched, "access": ["alice"]}}}))
    updates: list[str] = []

    async def heard(message: Any) -> None:
        if isinstance(message, mcp_types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    def touch(client: Client) -> Any:
        arguments = {"group": "watched", "name": "touch", "args": {"uri": "counter://one"}}
        return client.call_tool_mcp("call_dynamic_tool", arguments)

    with gateway(config, tmp_path / "watched.log", "--users", str(users_file)) as url:
        async with (
            as_user(url, ALICE, mode="legacy", message_handler=heard) as alice,
            as_user(url, BOB, mode="legacy") as bob,
        ):
            await alice.call_tool_mcp("get_dynamic_tools", {"group": "watched"})
            await subscribe(alice, "counter://watched/one")
            await touch(alice)
            with anyio.fail_after(WAIT):  # hers while she may use the group
                while not updates:  # noqa: ASYNC110 - a notification, no event to wait on
                    await anyio.sleep(0.05)
            config.write_text(
                json.dumps({"mcpServers": {"watched": {**watched, "access": ["bob"]}}})
            )
            with anyio.fail_after(WAIT):  # the edit applied: the group is bob's now
                while (await touch(bob)).is_error:  # noqa: ASYNC110
                    await anyio.sleep(0.1)
            await alice.list_tools()  # a round trip: an update sent before it has arrived

    assert updates == ["counter://watched/one"]  # the one before the edit, none after


async def test_the_audit_log_has_a_line_per_event_and_never_a_value(users_file, tmp_path):
    config = tmp_path / "dynamic-mcp.json"
    settings = {"audit_log": "audit.jsonl"}  # beside the config
    config.write_text(json.dumps({"mcpServers": servers(), "settings": settings}))
    secret = "ARGUMENT-VALUE-4f1d"
    with gateway(config, tmp_path / "audited.log", "--users", str(users_file)) as url:
        async with as_user(url, ALICE, mode="legacy") as alice:
            await alice.call_tool_mcp("get_dynamic_tools", {"group": "open"})
            await alice.call_tool_mcp(
                "call_dynamic_tool", {"group": "open", "name": "echo", "args": {"text": secret}}
            )
            await alice.read_resource("memo://open/greeting")
        async with as_user(url, BOB) as bob:
            await bob.call_tool_mcp("get_dynamic_tools", {"group": "private"})  # not his
            await bob.call_tool_mcp("get_dynamic_tools", {"group": "nowhere"})
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    seen = [(line["event"], line["user"], line.get("group"), line["outcome"]) for line in lines]

    assert ("session_opened", "alice", None, "ok") in seen
    assert ("expansion", "alice", "open", "ok") in seen
    assert ("tool_call", "alice", "open", "ok") in seen
    assert ("resource_read", "alice", "open", "ok") in seen
    assert ("session_closed", "alice", None, "ok") in seen
    assert ("expansion", "bob", "private", "denied") in seen
    assert ("expansion", "bob", "nowhere", "unknown") in seen
    call = next(line for line in lines if line["event"] == "tool_call")
    assert call["tool"] == "echo" and call["duration_ms"] > 0 and call["replica"]
    assert call["time"].endswith("Z")
    assert secret not in (tmp_path / "audit.jsonl").read_text()


def test_an_audit_log_that_cannot_be_written_is_refused_at_start_in_one_line(tmp_path):
    config = tmp_path / "dynamic-mcp.json"
    settings = {"audit_log": str(tmp_path / "no-such-folder" / "audit.jsonl")}
    config.write_text(json.dumps({"mcpServers": servers(), "settings": settings}))
    process = dynamic_mcp(config, output=subprocess.PIPE)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stderr.startswith(f"dynamic-mcp: {config}: settings.audit_log: cannot append to")
    assert len(stderr.strip().splitlines()) == 1


async def test_a_tool_given_to_some_users_is_seen_searched_and_called_by_them_alone(
    users_file, tmp_path
):
    entry = {**stdio_entry(description="Echo"), "tools": {"access": {"fail": ["bob"]}}}
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": entry}, "settings": {"search": True}}))
    called = {"group": "echo", "name": "fail", "args": {"message": "as asked"}}
    with gateway(config, tmp_path / "tool-access.log", "--users", str(users_file)) as url:
        async with as_user(url, ALICE) as alice, as_user(url, BOB) as bob:
            tools = {}
            for name, client in (("alice", alice), ("bob", bob)):
                expanded = await client.call_tool_mcp("get_dynamic_tools", {"group": "echo"})
                tools[name] = {tool["name"] for tool in json.loads(text(expanded))}
            alices_call = await alice.call_tool_mcp("call_dynamic_tool", called)
            bobs_call = await bob.call_tool_mcp("call_dynamic_tool", called)
            alices_search = await alice.call_tool_mcp("search_dynamic_tools", {"query": "fail"})

    assert "fail" in tools["bob"] and "fail" not in tools["alice"]
    assert tools["alice"] == tools["bob"] - {"fail"}
    assert alices_call.is_error and "tools.access does not give it to you" in text(alices_call)
    assert "as asked" in text(bobs_call)  # the tool's own failure: it ran, for bob
    assert '"fail"' not in text(alices_search)


# ---- the organisation's JWTs ----------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> RSAKeyPair:
    return RSAKeyPair.generate()


def jwt_for(keys: RSAKeyPair, user: str, **options: Any) -> str:
    options.setdefault("issuer", ISSUER)
    options.setdefault("audience", AUDIENCE)
    return keys.create_token(subject=user, kid="test-key", **options)


@pytest.fixture(scope="module")
def jwt_url(config: Path, keys: RSAKeyPair, tmp_path_factory) -> Iterator[str]:
    """A gateway that takes JWTs signed with `keys`, the user in `email`, groups in `groups`."""
    folder = tmp_path_factory.mktemp("jwt")
    public_key = folder / "public.pem"
    public_key.write_text(keys.public_key)
    args = ["--jwt-public-key", str(public_key), "--jwt-issuer", ISSUER]
    args += ["--jwt-audience", AUDIENCE, "--user-claim", "email", "--groups-claim", "groups"]
    args += ["--jwt-max-lifetime", "8h"]
    with gateway(config, folder / "jwt.log", *args) as url:
        yield url


def unexpiring_jwt(keys: RSAKeyPair, user: str) -> str:
    """A JWT signed with `keys` as the identity provider's, with no `exp` at all."""
    claims = {"sub": user, "email": user, "iss": ISSUER, "aud": AUDIENCE, "iat": int(time.time())}
    key = jwk.import_key(keys.private_key.get_secret_value(), "RSA")
    return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)


async def test_a_jwt_names_the_user_by_its_claim_and_a_groups_claim_gives_access(jwt_url, keys):
    alice = jwt_for(keys, "id-1", additional_claims={"email": "alice"})
    carol = jwt_for(keys, "id-2", additional_claims={"email": "carol", "groups": ["platform-team"]})
    dave = jwt_for(keys, "id-3", additional_claims={"email": "dave", "groups": ["sales"]})
    # A user who takes a group's name as theirs is not let in by `group:platform-team`.
    squatter = jwt_for(keys, "id-4", additional_claims={"email": "platform-team"})
    shown = {}
    named = (("alice", alice), ("carol", carol), ("dave", dave), ("platform-team", squatter))
    for name, token in named:
        async with as_user(jwt_url, token) as client:
            shown[name] = shown_groups(await meta_tools(client))[0]
    async with as_user(jwt_url, carol) as client:
        called = await client.call_tool_mcp(
            "call_dynamic_tool", {"group": "platform", "name": "echo", "args": {"text": "hi"}}
        )
    async with as_user(jwt_url, dave) as client:
        refused = await client.call_tool_mcp(
            "call_dynamic_tool", {"group": "platform", "name": "echo", "args": {"text": "hi"}}
        )

    assert shown == {
        "alice": ["open", "private", "watched"],  # by name
        "carol": ["open", "platform"],  # by group
        "dave": ["open"],
        "platform-team": ["open"],
    }
    assert not called.is_error
    assert refused.is_error and text(refused) == "Unknown group 'platform'. Valid groups: open."


@pytest.mark.parametrize(
    "options",
    [
        {"audience": "another-service"},  # issued for someone else
        {"issuer": "https://elsewhere.example.test"},
        {"expires_in_seconds": -60},
        {"additional_claims": {}},  # no `email` claim to name the user
        {"additional_claims": {"email": "alice", "nbf": time.time() + 3 * 365 * 86400}},
        {"additional_claims": {"email": "alice", "iat": time.time() + 3600}},
        {"additional_claims": {"email": "alice", "nbf": "tomorrow"}},
        {"expires_in_seconds": 30 * 86400},  # good for a month: past --jwt-max-lifetime
    ],
    ids=["audience", "issuer", "expired", "no user", "nbf ahead", "iat ahead", "nbf text", "long"],
)
async def test_a_jwt_that_fails_a_check_gets_401(jwt_url, keys, options):
    options.setdefault("additional_claims", {"email": "alice"})
    token = jwt_for(keys, "id-1", **options)
    async with httpx2.AsyncClient() as http:
        headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
        response = await http.post(jwt_url, json=INITIALIZE, headers=headers)
    assert response.status_code == 401


async def test_a_jwt_without_exp_gets_401_and_one_within_the_leeway_is_served(jwt_url, keys):
    timely = jwt_for(keys, "id-1", additional_claims={"email": "alice", "nbf": time.time() + 20})
    async with httpx2.AsyncClient() as http:
        answers = [
            await http.post(jwt_url, json=INITIALIZE, headers=headers(token))
            for token in (unexpiring_jwt(keys, "alice"), timely)
        ]

    assert [answer.status_code for answer in answers] == [401, 200]


async def test_two_users_of_one_client_app_never_own_one_legacy_session(jwt_url, keys):
    app = {"azp": "team-chat-app"}  # one client app; `sub` the app's, as some IdPs do
    alice = jwt_for(keys, "team-chat-app", additional_claims={**app, "email": "alice"})
    bob = jwt_for(keys, "team-chat-app", additional_claims={**app, "email": "bob"})
    async with httpx2.AsyncClient() as http:
        opened = await http.post(jwt_url, json=INITIALIZE, headers=headers(alice))
        session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        own = await http.post(jwt_url, json=listing, headers=headers(alice, session))
        taken = await http.post(jwt_url, json=listing, headers=headers(bob, session))

    assert [opened.status_code, own.status_code] == [200, 200]
    assert taken.status_code == 404  # as for a session that does not exist


async def test_a_jwt_signed_by_another_key_gets_401(jwt_url):
    forged = jwt_for(RSAKeyPair.generate(), "id-1", additional_claims={"email": "alice"})
    async with httpx2.AsyncClient() as http:
        headers = {**ACCEPT, "Authorization": f"Bearer {forged}"}
        response = await http.post(jwt_url, json=INITIALIZE, headers=headers)
    assert response.status_code == 401


@contextmanager
def jwks_served(keys: RSAKeyPair) -> Iterator[str]:
    """The identity provider's key set, as JSON, on a loopback port."""
    key = jwk.import_key(keys.public_key, "RSA").as_dict()
    body = json.dumps({"keys": [{**key, "kid": "test-key", "use": "sig", "alg": "RS256"}]})

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_jwts_are_checked_against_the_identity_providers_jwks_url(config, keys, tmp_path):
    with jwks_served(keys) as jwks_url:
        args = ["--jwks-url", jwks_url, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
        with gateway(config, tmp_path / "jwks.log", *args) as url:
            async with as_user(url, jwt_for(keys, "alice")) as alice:
                shown = shown_groups(await meta_tools(alice))[0]
            forged = jwt_for(RSAKeyPair.generate(), "alice")
            async with httpx2.AsyncClient() as http:
                headers = {**ACCEPT, "Authorization": f"Bearer {forged}"}
                refused = await http.post(url, json=INITIALIZE, headers=headers)

    assert shown == ["open", "private", "watched"]  # `sub` names the user by default
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE], "JWTs need exactly one key"),
        (
            ["--jwks-url", "https://id.example.test/jwks", "--jwt-issuer", ISSUER],
            "JWTs need --jwt-issuer and --jwt-audience",
        ),
        (
            [
                "--jwks-url",
                "http://id.example.test/jwks",
                "--jwt-issuer",
                ISSUER,
                "--jwt-audience",
                AUDIENCE,
            ],
            "must be https (plain http only on loopback)",
        ),
    ],
)
def test_incomplete_or_unsafe_jwt_options_are_refused_at_start(config, args, problem):
    process = dynamic_mcp(config, *args, output=subprocess.PIPE)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stderr.startswith("dynamic-mcp: ") and problem in stderr
    assert len(stderr.strip().splitlines()) == 1


# ---- `access` in the config -------------------------------------------------------------


@pytest.mark.parametrize("access", [[""], ["group:"], ["alice", "  "]])
def test_an_access_entry_that_names_nobody_is_refused_with_its_path(access):
    entry = {**stdio_entry(description="d"), "access": access}
    with pytest.raises(ValueError, match=r"(?s)private\..*access.*names nobody"):
        Config.model_validate({"mcpServers": {"private": entry}})


def test_a_bare_name_that_is_one_of_a_users_groups_lets_nobody_in_and_is_warned_of(caplog):
    carol = User("carol", frozenset({"platform-team"}))
    squatter = User("platform-team")

    with caplog.at_level(logging.WARNING, logger="groups.access"):
        refused = [may_use(carol, ["platform-team"]) for _ in range(3)]
    allowed = may_use(carol, ["group:platform-team"]), may_use(squatter, ["platform-team"])

    assert refused == [False] * 3 and allowed == (True, True)
    assert len(caplog.records) == 1  # once, not at each request
    assert '"group:platform-team"' in caplog.records[0].getMessage()


def test_access_is_applied_in_place_not_part_of_the_launch_identity():
    entries = servers()
    before = Config.model_validate({"mcpServers": entries}).servers["private"]
    after = Config.model_validate(
        {"mcpServers": {**entries, "private": {**entries["private"], "access": ["bob"]}}}
    ).servers["private"]

    assert before.access == ["alice"] and after.access == ["bob"]
    assert launch_identity(before, {}) == launch_identity(after, {})
