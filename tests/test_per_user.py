"""Each person's own credentials on a team gateway: a remote group's OAuth tokens per user.

A real gateway (`dynamic-mcp --transport http --users FILE`) on 127.0.0.1, spoken to by the
official client as alice and bob; the OAuth upstream is the local FastMCP OAuth server of
test_oauth, whose `whoami` names the OAuth client a token was issued to (each user's
sign-in registers a client of its own, so two users' answers differ). The person in the
browser is tests/upstreams/follow_browser.py, run by the test with the link the user got.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import mcp_types
import pytest
from conftest import FOLLOW_BROWSER, python_command, serving_http
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from test_oauth import auth_command, config_for, home, oauth_servers, oauth_url, signed_in, whoami
from test_shared_store import KEY, redis_server, shared

from groups.auth.step_up import StepUp
from groups.storage import LocalStore

# test_oauth's and test_shared_store's fixtures, used here by name
__all__ = ["home", "oauth_servers", "oauth_url", "redis_server", "shared"]

ALICE, BOB = "alice-token-per-user-1", "bob-token-per-user-2"
WAIT = 30.0  # seconds: a first call registers a client and starts a sign-in


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"alice": ALICE, "bob": BOB}))
    path.chmod(0o600)
    return path


@contextmanager
def gateway(config: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A gateway whose users are alice and bob; its URL and its stderr's file."""
    log = tmp_path / "gateway.log"
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    with (
        log.open("w") as stderr,
        serving_http(config, "--users", str(users_file(tmp_path)), env=env, stderr=stderr) as (
            url,
            _,
        ),
    ):
        yield url, log


def as_user(url: str, token: str, mode: str = "auto") -> Client:
    return Client(url, auth=BearerAuth(token), init_timeout=WAIT, timeout=WAIT, mode=mode)


def text(result: mcp_types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))


def link_in(result: mcp_types.CallToolResult) -> str:
    assert result.is_error and "needs you to sign in" in text(result), text(result)
    return text(result).rsplit(" ", 1)[1]


async def follow(link: str) -> None:
    """The person the link was given to signs in with it, in their browser."""
    env = {k: v for k, v in os.environ.items() if k != "BROWSER_HOLD"}
    with anyio.fail_after(WAIT):
        await anyio.run_process(python_command(FOLLOW_BROWSER, link), env=env)


def token_file(user: str | None) -> Path:
    home = Path(os.environ["DYNAMIC_MCP_HOME"])
    base = home if user is None else home / "users" / user
    return base / "oauth-servers" / "guarded.json"


# A 2026-07-28 client (a connection per request) gets its user's upstream session; a
# client with an HTTP session id, one of its own: neither ever another user's.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_alice_signs_in_and_bob_gets_his_own_link_never_her_tokens(
    mode, write_config, oauth_url, home, tmp_path, monkeypatch
):
    # A browser the gateway might open records the link (and never follows it).
    opened = tmp_path / "gateway-browser"
    monkeypatch.setenv("BROWSER_HOLD", str(opened))
    config = config_for(write_config, oauth_url)
    with gateway(config, tmp_path) as (url, log):
        async with as_user(url, ALICE, mode) as alice, as_user(url, BOB, mode) as bob:
            alices_link = link_in(await whoami(alice))
            # Asked while alice's sign-in waits for her: bob's own, not hers.
            bobs_link = link_in(await whoami(bob))
            bob_again = await whoami(bob)
            await follow(alices_link)
            as_alice = await signed_in(alice)
            bob_still = await whoami(bob)  # alice's tokens are there now: never for bob
            await follow(bobs_link)
            as_bob = await signed_in(bob)
            alice_after = await whoami(alice)

    assert alices_link.startswith(oauth_url.removesuffix("/mcp") + "/authorize?")
    assert bobs_link != alices_link
    assert link_in(bob_again) == bobs_link  # one sign-in per user at a time
    assert link_in(bob_still) == bobs_link
    # Each signed in with a client of their own: bob was never served alice's token.
    alice_client, bob_client = text(as_alice).split()[0], text(as_bob).split()[0]
    assert alice_client != bob_client
    assert f"client_id={alice_client}" in alices_link and f"client_id={bob_client}" in bobs_link
    assert text(alice_after) == text(as_alice)
    assert token_file("alice").exists() and token_file("bob").exists()
    assert not token_file(None).exists()  # the implicit user's holds nothing
    # The links went to each user alone: no browser on the gateway, no link in its log.
    assert not await anyio.Path(f"{opened}.links").exists()
    logged = await anyio.Path(log).read_text()
    assert alices_link not in logged and bobs_link not in logged
    assert "user alice was asked to sign in" in logged


async def test_auth_user_signs_one_user_in_from_a_terminal_and_the_gateway_serves_them(
    write_config, oauth_url, home, tmp_path
):
    config = config_for(write_config, oauth_url)

    signed = auth_command(home, config, "guarded", "--user", "alice")
    with gateway(config, tmp_path) as (url, _):
        async with as_user(url, ALICE) as alice, as_user(url, BOB) as bob:
            as_alice = await whoami(alice)
            as_bob = await whoami(bob)

    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip().endswith(f"kept in {token_file('alice')}.")
    assert "Sign in to guarded for user alice in a browser" in signed.stdout
    assert not as_alice.is_error, text(as_alice)  # no sign-in asked of her
    link_in(as_bob)  # bob has signed in nowhere


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_a_users_sign_in_from_a_terminal_reaches_the_gateway_through_redis_encrypted(
    write_config, oauth_url, home, shared, tmp_path, dynamic_mcp_home
):
    config = config_for(write_config, oauth_url)

    signed = auth_command(home, config, "guarded", "--user", "alice")
    raw = shared.values("dynamic-mcp__users/alice/oauth-servers/guarded/*")
    with gateway(config, tmp_path) as (url, _):
        async with as_user(url, ALICE) as alice, as_user(url, BOB) as bob:
            as_alice = await whoami(alice)
            as_bob = await whoami(bob)

    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip().endswith(
        f"kept in {shared.url} (users/alice/oauth-servers/guarded)."
    )
    assert {key.rsplit("/", 1)[1] for key in raw} == {"tokens", "client_info", "token_expiry"}
    assert all(KEY not in value and "access_token" not in value for value in raw.values())
    assert shared.values("dynamic-mcp__oauth-servers/*") == {}  # not the implicit user's
    assert not dynamic_mcp_home.exists() or not any(dynamic_mcp_home.rglob("*.json"))
    assert not as_alice.is_error, text(as_alice)
    link_in(as_bob)


def test_auth_user_logout_forgets_only_that_users_tokens(write_config, oauth_url, home):
    config = config_for(write_config, oauth_url)
    written = json.loads(config.read_text())
    config.write_text(json.dumps({**written, "settings": {"audit_log": "audit.jsonl"}}))
    for who in (("--user", "alice"), ("--user", "bob"), ()):
        assert auth_command(home, config, "guarded", *who).returncode == 0

    out = auth_command(home, config, "guarded", "--user", "alice", "--logout")
    listed = {
        who: auth_command(home, config, "--list", *who).stdout
        for who in (("--user", "alice"), ("--user", "bob"), ())
    }

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"Signed out of guarded for user alice: removed {token_file('alice')}."
    )
    assert not token_file("alice").exists()
    assert token_file("bob").exists() and token_file(None).exists()
    audited = [
        json.loads(line) for line in (config.parent / "audit.jsonl").read_text().splitlines()
    ]
    assert [(line["event"], line["user"], line["group"], line["outcome"]) for line in audited] == [
        ("logout", "alice", "guarded", "ok")
    ]
    assert listed["--user", "alice"].strip().endswith("not signed in")
    assert "signed in, access token valid until" in listed["--user", "bob"]
    assert "signed in, access token valid until" in listed[()]


def test_auth_user_needs_a_name(write_config, oauth_url, home):
    refused = auth_command(home, config_for(write_config, oauth_url), "guarded", "--user", "")

    assert refused.returncode == 2
    assert refused.stderr.strip() == "dynamic-mcp: --user needs a user's name"


async def test_each_users_scope_is_a_file_of_its_own_whatever_the_name(tmp_path):
    store = LocalStore(tmp_path)
    names = ["alice", "bob@example.com", "../escape", "..", "a/b", "a%2Fb"]
    for name in names:
        await store.scope("oauth-servers", "guarded", user=name).put("k", {"who": name})
    await store.scope("oauth-servers", "guarded").put("k", {"who": "implicit"})

    read = [await store.scope("oauth-servers", "guarded", user=n).get("k") for n in names]
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))

    assert read == [{"who": name} for name in names]
    assert await store.scope("oauth-servers", "guarded").get("k") == {"who": "implicit"}
    assert len(files) == len(names) + 1
    assert all(f.startswith("users/") or f == "oauth-servers/guarded.json" for f in files)
    assert all(f.count("/") == 3 for f in files if f.startswith("users/"))


async def test_a_call_for_more_scope_kept_for_one_user_is_not_anothers(tmp_path):
    store = LocalStore(tmp_path)
    url = "https://mcp.example.test/mcp"
    alices = StepUp(store.scope("oauth-servers", "guarded", user="alice"), url)
    bobs = StepUp(store.scope("oauth-servers", "guarded", user="bob"), url)
    challenge = 'Bearer error="insufficient_scope", scope="read write"'
    request = httpx2.Request("POST", url)

    await alices.remember(httpx2.Response(403, headers={"WWW-Authenticate": challenge}))

    assert (await alices.asked(None, request)) is not None  # her next sign-in asks for it
    assert (await bobs.asked(None, request)) is None  # bob's signs in as he was
