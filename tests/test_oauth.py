"""OAuth for remote groups against a real OAuth-protected MCP server on 127.0.0.1.

The server (tests/upstreams/oauth_server.py) is FastMCP with its in-memory OAuth provider:
discovery, dynamic client registration, PKCE, short-lived access tokens, rotated refresh
tokens. The browser is tests/upstreams/follow_browser.py, named by $BROWSER as a user's
would be: it follows the sign-in link at once. Tokens go to a HOME of the test's own.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from conftest import (
    REPO,
    UPSTREAMS,
    dynamic_mcp_command,
    following_browser,
    free_port,
    python_command,
    raw_debug_session,
    serving_http,
    use_browser,
    wait_for_port,
)
from fastmcp import Client

from server import build_server

SIGN_IN_WAIT = 30.0  # seconds for the followed link to reach the callback and tokens to land
SHORT_TOKEN = 5  # seconds an access token lives where refresh is the point


def serve_oauth(
    token_seconds: int = 3600,
    callback_port: int | None = None,
    transport: str = "http",
    port: int | None = None,
) -> Any:
    port = port or free_port()
    command = python_command(UPSTREAMS / "oauth_server.py", str(port), str(token_seconds))
    if callback_port is not None:
        command.append(str(callback_port))
    env = {**os.environ, "OAUTH_TRANSPORT": transport}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A HOME of the test's own, and a browser that signs in at once."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    use_browser(monkeypatch, following_browser())
    return home


@pytest.fixture(scope="session")
def oauth_servers() -> Iterator[Callable[[int], str]]:
    """One OAuth server per token lifetime, shared by the tests that only sign in to it:
    each test has a home of its own, so a registration and tokens of its own (a server's
    start is about a second of CPU). Tests that need a server in another set-up, or whose
    server comes and goes, start their own."""
    started: dict[int, tuple[subprocess.Popen[bytes], str]] = {}

    def url_for(token_seconds: int) -> str:
        if token_seconds not in started:
            started[token_seconds] = serve_oauth(token_seconds)
        return started[token_seconds][1]

    yield url_for
    for process, _ in started.values():
        process.terminate()
        process.wait(10)


@pytest.fixture
def oauth_url(home, oauth_servers) -> str:
    return oauth_servers(3600)


@pytest.fixture
def short_lived_url(home, oauth_servers) -> str:
    return oauth_servers(SHORT_TOKEN)


def token_file(home: Path, group: str = "guarded") -> Path:
    return Path(os.environ["DYNAMIC_MCP_HOME"]) / "oauth-servers" / f"{group}.json"


def stored_tokens(home: Path, url: str) -> dict[str, Any]:
    """The tokens the group's file holds for the endpoint `url`."""
    data = json.loads(token_file(home).read_text())
    return data["mcp-oauth-token"][f"{url}/tokens"]["value"]


def config_for(write_config, url: str, **oauth: Any) -> Path:
    return write_config({"guarded": {"description": "Behind OAuth", "url": url, **oauth}})


async def whoami(client: Client) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "guarded", "name": "whoami", "args": {}}
    )


async def signed_in(client: Client) -> mcp_types.CallToolResult:
    """Call (bounded) until the sign-in the first call started has finished."""
    with anyio.fail_after(SIGN_IN_WAIT):
        while (result := await whoami(client)).is_error:
            assert "needs you to sign in" in result.content[0].text, result.content[0].text
            await anyio.sleep(0.2)
    return result


async def test_the_first_call_answers_at_once_with_the_link_and_one_sign_in_follows(
    write_config, oauth_url, home, tmp_path, monkeypatch
):
    hold = tmp_path / "person-signs-in"  # until it exists, the person is still reading
    monkeypatch.setenv("BROWSER_HOLD", str(hold))
    async with Client(build_server(config_for(write_config, oauth_url))) as client:
        first = await whoami(client)
        again = await whoami(client)
        hold.touch()
        after = await signed_in(client)

    text = first.content[0].text
    assert first.is_error
    assert text.startswith("Group 'guarded' needs you to sign in: open this link in a browser")
    link = text.rsplit(" ", 1)[1]
    assert link.startswith(oauth_url.removesuffix("/mcp") + "/authorize?")
    # Asked again while the sign-in waits: the same link, no second sign-in.
    assert again.content[0].text == text
    assert (await anyio.Path(f"{hold}.links").read_text()).splitlines() == [link]
    client_id = after.content[0].text
    assert f"client_id={client_id}" in link  # registered once, signed in with that client


async def test_tokens_are_kept_in_one_private_file_and_reused_after_a_restart(
    write_config, oauth_url, home
):
    config = config_for(write_config, oauth_url)
    async with Client(build_server(config)) as client:
        await whoami(client)
        first = await signed_in(client)
    stored = token_file(home)

    async with Client(build_server(config)) as client:  # a restart: a new dynamic-mcp
        reused = await whoami(client)

    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    data = json.loads(stored.read_text())
    endpoint_keys = {f"{oauth_url}/tokens", f"{oauth_url}/client_info", f"{oauth_url}/token_expiry"}
    assert {key for section in data.values() for key in section} == endpoint_keys
    assert not reused.is_error  # no sign-in asked again
    assert reused.content[0].text == first.content[0].text


async def test_a_token_file_found_open_to_others_is_made_private(write_config, oauth_url, home):
    config = config_for(write_config, oauth_url)
    async with Client(build_server(config)) as client:
        await whoami(client)
        await signed_in(client)
    stored = token_file(home)
    stored.chmod(0o644)
    stored.parent.chmod(0o755)

    async with Client(build_server(config)) as client:
        reused = await whoami(client)

    assert not reused.is_error
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700


async def test_an_expiring_token_is_refreshed_in_the_session_and_the_rotation_kept(
    write_config, short_lived_url, home
):
    async with Client(build_server(config_for(write_config, short_lived_url))) as client:
        await whoami(client)
        await signed_in(client)
        first_refresh = stored_tokens(home, short_lived_url)["refresh_token"]
        calls: list[mcp_types.CallToolResult] = []
        with anyio.fail_after(SIGN_IN_WAIT):
            while stored_tokens(home, short_lived_url)["refresh_token"] == first_refresh:
                calls.append(await whoami(client))
                await anyio.sleep(0.2)
        calls.append(await whoami(client))

    assert calls and not any(call.is_error for call in calls)  # never asked to sign in


async def test_a_refresh_token_rotated_by_one_clients_session_serves_the_others(
    write_config, short_lived_url, home
):
    """Over HTTP each client has an upstream session, and an OAuth client, of its own."""
    with serving_http(config_for(write_config, short_lived_url)) as (url, _):
        async with Client(url, mode="legacy") as first, Client(url, mode="legacy") as second:
            await whoami(first)
            await signed_in(first)
            before = await whoami(second)  # a session of its own, with the stored tokens
            spent = stored_tokens(home, short_lived_url)["refresh_token"]
            with anyio.fail_after(SIGN_IN_WAIT):  # first refreshes; the server rotates
                while stored_tokens(home, short_lived_url)["refresh_token"] == spent:
                    refreshed = await whoami(first)
            after = await whoami(second)  # must not refresh with the refresh token now spent

    answers = [r.content[0].text for r in (before, refreshed, after)]
    assert [r.is_error for r in (before, refreshed, after)] == [False, False, False], answers


async def test_a_revoked_token_leads_back_to_a_sign_in_not_a_loop(write_config, oauth_url, home):
    async with Client(build_server(config_for(write_config, oauth_url))) as client:
        await whoami(client)
        before = await signed_in(client)
        await client.call_tool_mcp(
            "call_dynamic_tool", {"group": "guarded", "name": "revoke_all", "args": {}}
        )
        refused = await whoami(client)
        after = await signed_in(client)

    assert refused.is_error
    assert "needs you to sign in: open this link" in refused.content[0].text
    assert not after.is_error
    assert after.content[0].text == before.content[0].text  # the same registered client


async def test_a_pre_registered_client_and_its_scopes_are_used(write_config, home, tmp_path):
    callback_port = free_port()
    process, url = serve_oauth(callback_port=callback_port)
    try:
        config = config_for(
            write_config,
            url,
            oauth_client_id="preregistered",
            oauth_scopes=["read"],
            oauth_callback_port=callback_port,
        )
        async with Client(build_server(config)) as client:
            first = await whoami(client)
            after = await signed_in(client)
    finally:
        process.terminate()
        process.wait(10)

    assert "client_id=preregistered" in first.content[0].text
    assert after.content[0].text == "preregistered read"


CONFIDENTIAL_SECRET = "s3cret-of-the-confidential-client"  # as tests/upstreams/oauth_server.py


def secret_file(tmp_path: Path, content: str) -> Path:
    """A file only its owner reads, as `${file:…}` wants it."""
    path = tmp_path / "secret"
    path.touch(mode=0o600)
    path.write_text(content + "\n")
    return path


async def test_a_confidential_client_signs_in_with_its_secret_from_a_file(
    write_config, home, tmp_path
):
    callback_port = free_port()
    process, url = serve_oauth(callback_port=callback_port)
    try:
        config = config_for(
            write_config,
            url,
            oauth_client_id="confidential",
            oauth_client_secret=f"${{file:{secret_file(tmp_path, CONFIDENTIAL_SECRET)}}}",
            oauth_callback_port=callback_port,
        )
        async with Client(build_server(config)) as client:
            first = await whoami(client)
            after = await signed_in(client)
    finally:
        process.terminate()
        process.wait(10)

    assert "client_id=confidential" in first.content[0].text
    assert after.content[0].text.split()[0] == "confidential"  # its token request was accepted


def test_a_client_secret_never_reaches_stderr_even_at_debug(write_config, home, tmp_path):
    callback_port = free_port()
    process, url = serve_oauth(callback_port=callback_port)
    call = {
        "name": "call_dynamic_tool",
        "arguments": {"group": "guarded", "name": "whoami", "args": {}},
    }
    try:
        config = config_for(
            write_config,
            url,
            oauth_client_id="confidential",
            oauth_client_secret=CONFIDENTIAL_SECRET,  # written out, not even a ${VAR}
            oauth_callback_port=callback_port,
        )
        signed = auth_command(home, config, "guarded")
        messages, log = raw_debug_session(config, [call], env={**os.environ, "HOME": str(home)})
    finally:
        process.terminate()
        process.wait(10)

    assert signed.returncode == 0, signed.stderr
    answer = next(m for m in messages if m.get("id") == 1)
    assert answer["result"]["content"][0]["text"].split()[0] == "confidential"
    assert "HTTP Request: POST " + url in log  # the debug log is there
    assert CONFIDENTIAL_SECRET not in log + signed.stdout + signed.stderr


async def test_scopes_alone_are_registered_and_granted(write_config, oauth_url, home):
    config = config_for(write_config, oauth_url, oauth_scopes=["read", "write"])
    async with Client(build_server(config)) as client:
        await whoami(client)
        after = await signed_in(client)

    client_id, *scopes = after.content[0].text.split()
    assert sorted(scopes) == ["read", "write"]
    data = json.loads(token_file(home).read_text())
    assert data["mcp-oauth-client-info"][f"{oauth_url}/client_info"]["value"]["client_id"] == (
        client_id
    )


def call_whoami(config: Path) -> subprocess.CompletedProcess[str]:
    """`dynamic-mcp call guarded whoami` from a terminal."""
    return subprocess.run(
        dynamic_mcp_command("call", "guarded", "whoami", "--config", config),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def auth_command(home: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dynamic_mcp_command("auth", *args, "--config", config),
        cwd=REPO,
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_auth_command_signs_in_lists_and_signs_out(write_config, oauth_url, home):
    config = config_for(write_config, oauth_url)

    signed = auth_command(home, config, "guarded")
    listed = auth_command(home, config, "--list")
    out = auth_command(home, config, "guarded", "--logout")
    after = auth_command(home, config, "--list")

    assert signed.returncode == 0, signed.stderr
    assert "/authorize?" in signed.stdout
    assert (
        signed.stdout.strip()
        .splitlines()[-1]
        .startswith("Signed in to guarded: signed in, access token valid until")
    )
    assert listed.stdout.startswith(f"guarded  {oauth_url}  signed in, access token valid until")
    assert "(refreshable)" in listed.stdout
    assert out.stdout.strip() == f"Signed out of guarded: removed {token_file(home)}."
    assert not token_file(home).exists()
    assert after.stdout.strip() == f"guarded  {oauth_url}  not signed in"


def test_no_token_or_code_reaches_stderr_even_at_debug(write_config, oauth_url, home):
    config = config_for(write_config, oauth_url)
    call = {
        "name": "call_dynamic_tool",
        "arguments": {"group": "guarded", "name": "whoami", "args": {}},
    }
    assert auth_command(home, config, "guarded").returncode == 0
    tokens = stored_tokens(home, oauth_url)

    messages, log = raw_debug_session(config, [call, call], env={**os.environ, "HOME": str(home)})

    answers = [m for m in messages if m.get("id") in (1, 2)]
    assert all(not answer["result"].get("isError") for answer in answers)
    assert "HTTP Request: POST " + oauth_url in log  # the debug log is there
    assert tokens["access_token"] not in log
    assert tokens["refresh_token"] not in log


async def test_a_server_that_asks_for_credentials_without_oauth_says_to_add_a_header(
    write_config, status_url, home
):
    url = status_url(401)
    async with Client(build_server(config_for(write_config, url))) as client:
        result = await whoami(client)
    assert result.content[0].text == (
        f"Group 'guarded' is unavailable: HTTP 401 from {url}: the server wants credentials "
        "and offers no OAuth sign-in; add an Authorization header to this group's entry"
    )


async def test_tokens_are_never_sent_to_a_server_other_than_the_one_that_issued_them(
    write_config, oauth_url, status_url, home
):
    config = config_for(write_config, oauth_url)
    async with Client(build_server(config)) as client:
        await whoami(client)
        await signed_in(client)
    elsewhere = status_url(401)  # the group's url, edited to point at another server

    async with Client(build_server(config_for(write_config, elsewhere))) as client:
        result = await whoami(client)
    listed = auth_command(home, config_for(write_config, elsewhere), "--list")

    assert result.is_error
    assert status_url.received, "the other server was asked"
    assert all("authorization" not in headers for headers in status_url.received)
    assert listed.stdout.strip().endswith("holds a token for another URL: sign in again")


def test_an_sse_group_signs_in_from_the_terminal_and_then_answers(write_config, home):
    process, url = serve_oauth(transport="sse")
    try:
        config = write_config(
            {"guarded": {"description": "Behind OAuth", "type": "sse", "url": url}}
        )
        signed = auth_command(home, config, "guarded")
        answered = call_whoami(config)
    finally:
        process.terminate()
        process.wait(10)

    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "/authorize?" in signed.stdout
    assert (answered.returncode, answered.stderr) == (0, "")
    assert answered.stdout.strip() not in ("", "nobody")


def test_a_terminal_call_says_to_run_auth_instead_of_opening_a_browser(
    write_config, oauth_url, home, tmp_path, monkeypatch
):
    config = config_for(write_config, oauth_url)
    opened = tmp_path / "browser-opened"
    record = f"import pathlib, sys; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    use_browser(monkeypatch, f"{sys.executable} -c {shlex.quote(record)} %s")

    refused = call_whoami(config)
    use_browser(monkeypatch, following_browser())
    signed = auth_command(home, config, "guarded")
    answered = call_whoami(config)

    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        "Group 'guarded' needs you to sign in: run `dynamic-mcp auth guarded`, then try again"
    )
    assert not opened.exists()
    assert signed.returncode == 0, signed.stderr
    assert (answered.returncode, answered.stderr) == (0, "")
    assert answered.stdout.strip() not in ("", "nobody")


async def test_a_401_mid_session_is_answered_with_a_refresh_not_a_sign_in(
    write_config, oauth_url, home
):
    async with Client(build_server(config_for(write_config, oauth_url))) as client:
        await whoami(client)
        before = await signed_in(client)
        spent = stored_tokens(home, oauth_url)["refresh_token"]
        await client.call_tool_mcp(
            "call_dynamic_tool", {"group": "guarded", "name": "revoke_access", "args": {}}
        )
        after = await whoami(client)  # its access token is refused; its refresh token is not

    assert not after.is_error, after.content[0].text
    assert after.content[0].text == before.content[0].text
    assert stored_tokens(home, oauth_url)["refresh_token"] != spent  # refreshed, and kept


async def test_two_endpoints_of_one_group_keep_both_sign_ins(write_config, oauth_url, home):
    process, other_url = serve_oauth()
    try:
        for url in (oauth_url, other_url):  # the group's url edited, then edited back
            async with Client(build_server(config_for(write_config, url))) as client:
                await whoami(client)
                await signed_in(client)
        async with Client(build_server(config_for(write_config, oauth_url))) as client:
            back = await whoami(client)
        async with Client(build_server(config_for(write_config, other_url))) as client:
            again = await whoami(client)
    finally:
        process.terminate()
        process.wait(10)

    assert not back.is_error, back.content[0].text  # no sign-in asked again
    assert not again.is_error, again.content[0].text
    assert stored_tokens(home, oauth_url) != stored_tokens(home, other_url)


def write_older_format(home: Path, **fields: Any) -> None:
    """A token file as dynamic-mcp wrote it before tokens were kept per endpoint."""
    path = token_file(home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))
    path.chmod(0o600)


async def test_a_file_that_does_not_name_its_server_is_never_sent_anywhere(
    write_config, status_url, home
):
    url = status_url(401)
    write_older_format(
        home,
        tokens={"access_token": "older-access", "token_type": "Bearer", "refresh_token": "r"},
        expires_at=4102444800,  # 2100: not expired
    )
    async with Client(build_server(config_for(write_config, url))) as client:
        result = await whoami(client)
    listed = auth_command(home, config_for(write_config, url), "--list")

    assert result.is_error
    assert status_url.received, "the server was asked"
    assert all("authorization" not in headers for headers in status_url.received)
    assert listed.stdout.strip() == (
        f"guarded  {url}  holds a token from an older version, bound to no server: sign in again"
    )


async def test_an_older_file_written_for_this_server_is_carried_over(write_config, oauth_url, home):
    config = config_for(write_config, oauth_url)
    async with Client(build_server(config)) as client:
        await whoami(client)
        first = await signed_in(client)
    data = json.loads(token_file(home).read_text())
    write_older_format(
        home,
        server=oauth_url,
        tokens=stored_tokens(home, oauth_url),
        client=data["mcp-oauth-client-info"][f"{oauth_url}/client_info"]["value"],
        expires_at=data["mcp-oauth-token-expiry"][f"{oauth_url}/token_expiry"]["value"][
            "expires_at"
        ],
    )

    async with Client(build_server(config)) as client:
        reused = await whoami(client)

    assert not reused.is_error, reused.content[0].text
    assert reused.content[0].text == first.content[0].text
    assert "server" not in json.loads(token_file(home).read_text())  # converted


async def test_signing_out_holds_against_a_running_server(
    write_config, short_lived_url, home, tmp_path, monkeypatch
):
    config = config_for(write_config, short_lived_url)
    async with Client(build_server(config)) as client:
        await whoami(client)
        await signed_in(client)
        monkeypatch.setenv("BROWSER_HOLD", str(tmp_path / "never"))  # no second sign-in
        out = auth_command(home, config, "guarded", "--logout")
        with anyio.fail_after(SIGN_IN_WAIT):  # until its access token is due for a refresh
            for _ in range(int(SIGN_IN_WAIT / 0.2)):
                if (after := await whoami(client)).is_error:
                    break
                await anyio.sleep(0.2)

    assert out.returncode == 0, out.stderr
    assert "needs you to sign in" in after.content[0].text
    kept = json.loads(token_file(home).read_text()) if token_file(home).exists() else {}
    assert "mcp-oauth-token" not in kept  # the refresh wrote no token back


async def test_two_servers_refreshing_one_rotating_token_at_once_both_stay_signed_in(
    write_config, short_lived_url, home
):
    """Two dynamic-mcp processes share the token file; the server rotates refresh tokens."""
    config = config_for(write_config, short_lived_url)
    assert auth_command(home, config, "guarded").returncode == 0
    rotations = 3  # each one a race between the two processes' refreshes
    answers: list[mcp_types.CallToolResult] = []
    with serving_http(config) as (one, _), serving_http(config) as (two, _):
        async with Client(one, mode="legacy") as first, Client(two, mode="legacy") as second:

            async def call(client: Client) -> None:
                answers.append(await whoami(client))

            seen = {stored_tokens(home, short_lived_url)["refresh_token"]}
            with anyio.fail_after(SIGN_IN_WAIT * rotations):
                while len(seen) <= rotations and not any(a.is_error for a in answers):
                    async with anyio.create_task_group() as both:
                        both.start_soon(call, first)
                        both.start_soon(call, second)
                    seen.add(stored_tokens(home, short_lived_url)["refresh_token"])
                    await anyio.sleep(0.05)

    errors = [a.content[0].text for a in answers if a.is_error]
    assert errors == []


async def test_a_failed_group_that_comes_back_wanting_a_sign_in_waits_for_a_request(
    write_config, home, tmp_path, monkeypatch, caplog
):
    """The background retry finds the server back behind OAuth: it starts no sign-in and
    opens no browser; the group leaves FAILED, and the next call is given the link."""
    opened = tmp_path / "browser-opened"
    record = f"import pathlib, sys; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    use_browser(monkeypatch, f"{sys.executable} -c {shlex.quote(record)} %s")
    monkeypatch.setattr("groups.upstream.health.QUICK_RETRY_DELAYS", (0.2, 0.2, 0.2))
    monkeypatch.setattr("groups.upstream.health.BACKGROUND_RETRY_INTERVAL", 0.5)
    caplog.set_level(logging.INFO)
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/mcp"

    def quiet_end() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "wants a sign-in" in r.getMessage()]

    def sign_in_started() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith("groups.auth")]

    async with Client(build_server(config_for(write_config, url))) as client:
        down = await whoami(client)
        process, _ = serve_oauth(port=port)  # back, and it wants a sign-in now
        try:
            with anyio.fail_after(SIGN_IN_WAIT):  # the retry ends, one way or the other
                while not (quiet_end() or sign_in_started() or opened.exists()):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            started = sign_in_started()
            browser_before_the_call = opened.exists()
            called = await whoami(client)
        finally:
            process.terminate()
            process.wait(10)

    assert down.is_error and "cannot connect" in down.content[0].text
    assert not browser_before_the_call
    assert started == []  # no sign-in, so no link written
    assert [r.getMessage() for r in quiet_end()] == [
        "group guarded: not reconnected in the background: it wants a sign-in; "
        "the next request gets the link"
    ]
    assert "Task exception was never retrieved" not in caplog.text
    assert called.is_error, called.content[0].text
    assert called.content[0].text.startswith("Group 'guarded' needs you to sign in: open this link")
