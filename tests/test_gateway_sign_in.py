"""A sign-in that ends on the gateway itself (`--public-url`): the OAuth server sends the
person's browser to `<public URL>/oauth/callback`, and any replica finishes the flow it
finds in the store.

Two real gateways on 127.0.0.1 share one store (the local files of one home, as replicas
share Redis), both with the public URL of the second; the OAuth upstream is test_oauth's
local FastMCP OAuth server; the person is tests/upstreams/follow_browser.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from conftest import free_port, serving_http
from fastmcp.server.auth.providers.jwt import RSAKeyPair
from test_gateway import AUDIENCE, ISSUER, jwt_for
from test_oauth import config_for, home, oauth_servers, oauth_url, signed_in, whoami
from test_per_user import ALICE, BOB, as_user, link_in, text, users_file
from test_shared_store import redis_server, shared

from groups.config.public_url import choose_public_url
from groups.errors import PublicUrlError

# test_oauth's and test_shared_store's fixtures, used here by name
__all__ = ["home", "oauth_servers", "oauth_url", "redis_server", "shared"]


TOKENS = {"alice": ALICE, "bob": BOB}


async def sign_in_page(browser: httpx2.AsyncClient, link: str, token: str) -> httpx2.Response:
    """A person opens a sign-in link and shows they are its user: the page's answer, a
    redirect to the OAuth server (with the browser's cookie) when they are."""
    page = await browser.get(link)
    assert page.status_code == 200, page.text
    parts = urlsplit(link)
    state = parse_qs(parts.query)["state"][0]
    origin = {"Origin": f"{parts.scheme}://{parts.netloc}"}  # as a browser's form sends it
    return await browser.post(link, data={"state": state, "token": token}, headers=origin)


async def follow_as(link: str, user: str) -> httpx2.Response:
    """`user` opens their link, shows their token, and follows the OAuth server back to
    the gateway, in one browser: the callback's page."""
    async with httpx2.AsyncClient(timeout=30, follow_redirects=True) as browser:
        return await sign_in_page(browser, link, TOKENS[user])


@contextmanager
def replica(config: Path, tmp_path: Path, port: int, public_url: str) -> Iterator[str]:
    """`dynamic-mcp CONFIG --transport http --users … --public-url URL` on `port`."""
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    users = ("--users", str(users_file(tmp_path)))
    with (
        (tmp_path / f"replica-{port}.log").open("a") as log,
        serving_http(
            config, *users, "--public-url", public_url, env=env, stderr=log, port=port
        ) as (url, _),
    ):
        yield url


async def test_a_sign_in_started_on_one_replica_ends_on_the_public_route_of_another(
    write_config, oauth_url, home, tmp_path
):
    config = config_for(write_config, oauth_url)
    first_port, second_port = free_port(), free_port()
    public = f"http://127.0.0.1:{second_port}"
    with replica(config, tmp_path, second_port, public) as second:
        with replica(config, tmp_path, first_port, public) as first:
            async with as_user(first, ALICE) as alice:
                link = link_in(await whoami(alice))
            async with as_user(second, ALICE) as alice:
                same = link_in(await whoami(alice))  # another replica: the same flow
        # The first replica is gone; its flow is in the store, finished by the second.
        finished = await follow_as(link, "alice")
        async with as_user(second, ALICE) as alice, as_user(second, BOB) as bob:
            as_alice = await signed_in(alice)
            bobs_link = link_in(await whoami(bob))
        with replica(config, tmp_path, first_port, public) as first:
            async with as_user(first, ALICE) as alice:
                restarted = await whoami(alice)  # her tokens are in the store, not in memory
        async with httpx2.AsyncClient(timeout=10) as browser:
            replayed = await browser.get(link)  # the same link once more: used already

    assert finished.status_code == 200, finished.text
    assert link.startswith(f"{public}/oauth/sign-in?state=")  # the gateway's own page first
    assert finished.history[0].headers["location"].startswith(oauth_url.removesuffix("/mcp"))
    redirect = parse_qs(urlsplit(finished.history[0].headers["location"]).query)["redirect_uri"]
    assert redirect == [f"{public}/oauth/callback"]
    assert same == link
    assert not restarted.is_error and text(restarted) == text(as_alice)
    assert bobs_link != link  # bob's own sign-in, never alice's tokens
    assert replayed.status_code == 400
    assert "unknown, expired or used already" in replayed.text


async def test_a_sign_in_link_finishes_only_for_its_user_in_the_browser_that_opened_it(
    write_config, oauth_url, home, tmp_path
):
    config = config_for(write_config, oauth_url)
    port = free_port()
    with replica(config, tmp_path, port, f"http://127.0.0.1:{port}") as url:
        async with as_user(url, BOB) as bob:
            bobs_link = link_in(await whoami(bob))
        async with httpx2.AsyncClient(timeout=30) as alices_browser:
            page = await alices_browser.get(bobs_link)  # bob sent alice his link
            refused = await sign_in_page(alices_browser, bobs_link, ALICE)  # she is not bob
        async with httpx2.AsyncClient(timeout=30) as bobs_browser:
            onwards = await sign_in_page(bobs_browser, bobs_link, BOB)
            granted = await bobs_browser.get(onwards.headers["location"])
        callback = granted.headers["location"]
        async with httpx2.AsyncClient(timeout=30) as another_browser:  # no cookie of his
            elsewhere = await another_browser.get(callback)
        async with httpx2.AsyncClient(timeout=30, cookies=bobs_browser.cookies) as his_again:
            finished = await his_again.get(callback)
        async with as_user(url, BOB) as bob:
            as_bob = await signed_in(bob)

    assert "gateway user <b>bob</b>" in page.text and "127.0.0.1" in page.text
    assert refused.status_code == 403 and "not the token of this user" in refused.text
    assert onwards.status_code == 303 and "dynamic-mcp-sign-in-" in onwards.headers["set-cookie"]
    assert "HttpOnly" in onwards.headers["set-cookie"]
    assert elsewhere.status_code == 403 and "not started in this browser" in elsewhere.text
    assert finished.status_code == 200, finished.text  # still his to finish
    assert not as_bob.is_error, text(as_bob)


async def test_with_jwts_the_sign_in_page_asks_for_a_jwt_of_the_links_user(
    write_config, oauth_url, home, tmp_path
):
    keys = RSAKeyPair.generate()
    public_key = tmp_path / "idp.pem"
    public_key.write_text(keys.public_key)
    alices, bobs = jwt_for(keys, "alice"), jwt_for(keys, "bob")
    config = config_for(write_config, oauth_url)
    port = free_port()
    jwts = ["--jwt-public-key", str(public_key), "--jwt-issuer", ISSUER]
    jwts += ["--jwt-audience", AUDIENCE, "--public-url", f"http://127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    with serving_http(config, *jwts, env=env, port=port) as (url, _):
        async with as_user(url, alices) as alice:
            link = link_in(await whoami(alice))
        async with httpx2.AsyncClient(timeout=30) as browser:
            with_bobs = await sign_in_page(browser, link, bobs)
            with_hers = await sign_in_page(browser, link, alices)

    assert with_bobs.status_code == 403
    assert with_hers.status_code == 303
    assert with_hers.headers["location"].startswith(oauth_url.removesuffix("/mcp"))


CALLBACKS_AT_ONCE = 8  # half to each replica: enough that two would read the flow at once


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_a_callback_sent_to_two_replicas_at_once_is_finished_by_exactly_one(
    write_config, oauth_url, home, shared, tmp_path
):
    config = config_for(write_config, oauth_url)
    ports = free_port(), free_port()
    public = f"http://127.0.0.1:{ports[0]}"
    with (
        replica(config, tmp_path, ports[0], public) as first,
        replica(config, tmp_path, ports[1], public) as second,
    ):
        async with as_user(first, ALICE) as alice:
            link = link_in(await whoami(alice))
        async with httpx2.AsyncClient(timeout=30) as browser:
            onwards = await sign_in_page(browser, link, ALICE)
            granted = await browser.get(onwards.headers["location"])  # the OAuth server's
            query = urlsplit(granted.headers["location"]).query
            answers: list[httpx2.Response] = []

            async def call_back(url: str) -> None:  # from alice's browser: her cookie
                base = url.removesuffix("/mcp")
                answers.append(await browser.get(f"{base}/oauth/callback?{query}"))

            async with anyio.create_task_group() as all_at_once:  # the same callback, often
                for _ in range(CALLBACKS_AT_ONCE // 2):
                    all_at_once.start_soon(call_back, first)
                    all_at_once.start_soon(call_back, second)

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [400] * (CALLBACKS_AT_ONCE - 1), statuses
    assert all(
        "unknown, expired or used already" in a.text for a in answers if a.status_code == 400
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_in_redis_a_waiting_sign_in_is_encrypted_and_outlives_the_replica_restarted(
    write_config, oauth_url, home, shared, tmp_path
):
    config = config_for(write_config, oauth_url)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with replica(config, tmp_path, port, public) as url:
        async with as_user(url, ALICE) as alice:
            link = link_in(await whoami(alice))
    waiting = shared.values("dynamic-mcp__oauth-pending/*")
    with replica(config, tmp_path, port, public) as url:  # restarted: nothing in memory
        await follow_as(link, "alice")
        async with as_user(url, ALICE) as alice:
            as_alice = await signed_in(alice)

    assert len(waiting) == 1
    assert all("verifier" not in value and "alice" not in value for value in waiting.values())
    assert shared.values("dynamic-mcp__oauth-pending/*") == {}  # taken: used once
    assert not as_alice.is_error, text(as_alice)


async def test_the_callback_route_answers_an_unknown_state_with_a_page_not_a_token(
    write_config, oauth_url, home, tmp_path
):
    port = free_port()
    config = config_for(write_config, oauth_url)
    with replica(config, tmp_path, port, f"http://127.0.0.1:{port}"):
        async with httpx2.AsyncClient(timeout=10) as browser:
            unknown = await browser.get(
                f"http://127.0.0.1:{port}/oauth/callback", params={"code": "c", "state": "nope"}
            )
            outside = await browser.get(
                f"http://127.0.0.1:{port}/oauth/callback", params={"state": "../../x"}
            )

    assert unknown.status_code == 400 and outside.status_code == 400
    assert "Call the tool again for a new sign-in link." in unknown.text


@pytest.mark.parametrize(
    "written",
    [
        "mcp.example.internal",  # no scheme
        "ftp://mcp.example.internal",
        "https://mcp.example.internal/?x=1",
        "https://",
    ],
)
def test_a_public_url_a_browser_cannot_be_sent_to_is_refused(written):
    with pytest.raises(PublicUrlError) as refused:
        choose_public_url(written)
    choose_public_url(None)

    assert refused.value.url == written


def test_without_a_public_url_sign_ins_end_on_loopback_as_before(monkeypatch):
    monkeypatch.delenv("DYNAMIC_MCP_PUBLIC_URL", raising=False)

    assert choose_public_url(None) is None
