"""OAuth discovery laid out every way the spec allows, service accounts (client_credentials,
by secret and by private key), and step-up, against tests/upstreams/oauth_variants.py: an
MCP server and an authorization server whose issuer has a path, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from conftest import UPSTREAMS, dynamic_mcp_command, free_port, python_command, wait_for_port
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastmcp import Client
from test_oauth import SIGN_IN_WAIT, auth_command, config_for, home, signed_in, whoami  # noqa: F401

from server import build_server

SHORT_TOKEN = 2  # seconds a service account's token lives where its renewal is the point
EXPIRY_WAIT = 30.0  # bound on waiting for such a token to expire


def serve_variants(
    tmp_path: Path,
    layout: str,
    token_seconds: int = 3600,
    public_key: Path | None = None,
    offline_access: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = python_command(UPSTREAMS / "oauth_variants.py", str(port), layout)
    command += [str(token_seconds)] + ([str(public_key)] if public_key else [])
    command += ["--offline-access"] if offline_access else []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="session")
def shared_variants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server per layout and token lifetime, shared by the tests: each test has a home
    of its own, so a registration and tokens of its own (a start is about a second of CPU)."""
    started: dict[tuple[str, int], tuple[subprocess.Popen[bytes], str]] = {}

    def url_for(layout: str, token_seconds: int) -> str:
        if (layout, token_seconds) not in started:
            folder = tmp_path_factory.mktemp("variants")
            started[layout, token_seconds] = serve_variants(folder, layout, token_seconds)
        return started[layout, token_seconds][1]

    yield url_for
    for process, _ in started.values():
        process.terminate()
        process.wait(10)


@pytest.fixture
def variants(tmp_path: Path, home: Path, shared_variants) -> Iterator[Any]:  # noqa: F811
    """The server as a test asks: shared, or with a key of the test's own, its own (stopped
    after the test)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(layout: str = "path", token_seconds: int = 3600, **options: Any) -> str:
        if not options:
            return shared_variants(layout, token_seconds)
        process, url = serve_variants(tmp_path, layout, token_seconds, **options)
        started.append(process)
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


async def call(client: Client, tool: str) -> Any:
    return await client.call_tool_mcp(
        "call_dynamic_tool", {"group": "guarded", "name": tool, "args": {}}
    )


@pytest.mark.parametrize(
    "layout",
    [
        # resource metadata at the root well-known URL; RFC 8414 server metadata for an
        # issuer with a path (/.well-known/oauth-authorization-server/tenant1)
        "root",
        # path-suffixed resource metadata; OpenID configuration, path inserted
        "path",
        # resource metadata only where WWW-Authenticate's resource_metadata names it;
        # OpenID configuration appended to the issuer's path
        "header",
    ],
)
async def test_each_discovery_layout_leads_to_registration_and_a_token(
    write_config, variants, layout
):
    url = variants(layout)
    async with Client(build_server(config_for(write_config, url))) as client:
        first = await whoami(client)
        after = await signed_in(client)

    assert "/tenant1/authorize?" in first.content[0].text
    client_id, *scopes = after.content[0].text.split()
    assert client_id.startswith("client-")  # registered with the tenant's server
    assert scopes == ["read"]


async def test_a_client_id_metadata_document_is_the_client_id_where_the_server_takes_them(
    write_config, variants
):
    document = "https://client.example/dynamic-mcp.json"
    config = config_for(write_config, variants(), oauth_client_metadata_url=document)
    async with Client(build_server(config)) as client:
        await whoami(client)
        after = await signed_in(client)

    assert after.content[0].text.split()[0] == document  # no registration


async def test_offline_access_is_asked_for_where_the_server_lists_it_and_the_token_refreshes(
    write_config, variants
):
    # An OpenID-flavoured server (SEP-2207): a refresh token only for offline_access, and
    # only to a client registered with the refresh_token grant.
    url = variants(token_seconds=SHORT_TOKEN, offline_access=True)
    async with Client(build_server(config_for(write_config, url))) as client:
        first = await whoami(client)
        after = await signed_in(client)
        issued = stored_access_tokens()
        await until_the_stored_token_expired()
        again = await whoami(client)

    link = first.content[0].text.rsplit(" ", 1)[1]
    assert link_scope(link) == "read offline_access"
    assert parse_qs(urlsplit(link).query)["prompt"] == ["consent"]  # OpenID Connect Core §11
    assert after.content[0].text.split()[1:] == ["offline_access", "read"]
    assert (again.is_error, again.content[0].text) == (False, after.content[0].text)
    assert stored_access_tokens() != issued  # refreshed, not signed in again


async def test_offline_access_in_oauth_scopes_is_not_asked_of_a_server_that_does_not_list_it(
    write_config, variants
):
    # This server refuses a sign-in that asks for offline_access (invalid_scope).
    config = config_for(write_config, variants(), oauth_scopes=["offline_access", "read"])
    async with Client(build_server(config)) as client:
        first = await whoami(client)
        after = await signed_in(client)

    link = first.content[0].text.rsplit(" ", 1)[1]
    assert link_scope(link) == "read"
    assert "prompt" not in parse_qs(urlsplit(link).query)
    assert after.content[0].text.split()[1:] == ["read"]


async def test_a_service_account_gets_a_token_without_a_person_and_a_new_one_on_expiry(
    write_config,
    variants,
    monkeypatch,
    home,  # noqa: F811
):
    url = variants(token_seconds=SHORT_TOKEN)
    monkeypatch.setenv("SERVICE_SECRET", "service-secret")
    config = config_for(
        write_config,
        url,
        oauth_grant="client_credentials",
        oauth_client_id="service",
        oauth_client_secret="${SERVICE_SECRET}",
    )
    async with Client(build_server(config)) as client:
        first = await whoami(client)
        issued = stored_access_tokens()
        await until_the_stored_token_expired()
        again = await whoami(client)

    assert (first.is_error, first.content[0].text) == (False, "service read")
    assert (again.is_error, again.content[0].text) == (False, "service read")
    assert stored_access_tokens() != issued  # a new token, fetched for the expired one


def test_a_service_account_signs_with_its_private_key_and_auth_just_fetches_a_token(
    write_config,
    variants,
    tmp_path,
    home,  # noqa: F811
):
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private = tmp_path / "private.pem"
    private.touch(mode=0o600)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    url = variants(public_key=public)
    config = config_for(
        write_config,
        url,
        oauth_grant="client_credentials",
        oauth_client_id="service",
        oauth_private_key=f"${{file:{private}}}",
        oauth_signing_algorithm="ES256",
    )

    fetched = auth_command(home, config, "guarded")
    called = subprocess.run(
        dynamic_mcp_command("call", "guarded", "whoami", "--config", config),
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.startswith("Fetched a token for guarded (client_credentials):")
    assert "authorize" not in fetched.stdout + fetched.stderr  # no link, no browser
    assert (called.returncode, called.stdout.strip()) == (0, "service read"), called.stderr
    assert "PRIVATE KEY" not in fetched.stderr + called.stderr


async def test_a_call_refused_for_more_scope_leads_to_one_sign_in_for_the_larger_scope(
    write_config, variants
):
    url = variants()
    async with Client(build_server(config_for(write_config, url))) as client:
        await whoami(client)
        await signed_in(client)
        refused = await call(client, "write")
        with anyio.fail_after(SIGN_IN_WAIT):  # until the sign-in the refusal started is done
            for _ in range(int(SIGN_IN_WAIT / 0.2)):
                if not (written := await call(client, "write")).is_error:
                    break
                await anyio.sleep(0.2)
        after = await whoami(client)

    text = refused.content[0].text
    assert refused.is_error
    assert "needs you to sign in: open this link" in text
    assert link_scope(text) == "read write"  # the union: what was held, and what was asked
    assert written.content[0].text == "written"
    assert after.content[0].text.split()[1:] == ["read", "write"]


def test_from_a_terminal_auth_asks_for_the_scope_a_refused_call_wanted(
    write_config,
    variants,
    home,  # noqa: F811
):
    config = config_for(write_config, variants())
    command = dynamic_mcp_command("call", "guarded", "write", "--config", config)

    def call_write() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(home)}
        return subprocess.run(
            command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        )

    first = auth_command(home, config, "guarded")
    refused = call_write()
    again = auth_command(home, config, "guarded")
    written = call_write()

    assert first.returncode == 0, first.stderr
    assert link_scope(first.stdout) == "read"
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("run `dynamic-mcp auth guarded`, then try again")
    assert again.returncode == 0, again.stderr
    assert link_scope(again.stdout) == "read write"  # not the old scope again: no loop
    assert (written.returncode, written.stdout.strip()) == (0, "written"), written.stderr


async def test_a_refusal_for_a_scope_already_held_is_an_error_naming_the_group_not_a_sign_in(
    write_config,
    variants,
    monkeypatch,
    home,  # noqa: F811
):
    monkeypatch.setenv("SERVICE_SECRET", "service-secret")
    config = config_for(
        write_config,
        variants(),
        oauth_grant="client_credentials",
        oauth_client_id="service",
        oauth_client_secret="${SERVICE_SECRET}",
    )
    async with Client(build_server(config)) as client:
        refused = await call(client, "admin")
        after = await whoami(client)  # the session is still good
    with anyio.fail_after(60):
        called = await anyio.run_process(
            dynamic_mcp_command("call", "guarded", "admin", "--config", config),
            env={**os.environ, "HOME": str(home)},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    stderr = called.stderr.decode()

    text = refused.content[0].text
    assert refused.is_error
    assert "'guarded'" in text
    assert "HTTP 403 insufficient_scope" in text
    assert "oauth_scopes" in text
    assert "sign in" not in text
    assert (after.is_error, after.content[0].text) == (False, "service read")
    assert called.returncode in (1, 2)
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [text], stderr


def link_scope(text: str) -> str:
    """The scope the sign-in link in `text` asks for."""
    link = next(word for word in text.split() if "/authorize?" in word)
    return parse_qs(urlsplit(link).query)["scope"][0]


def _stored() -> dict[str, Any]:
    path = Path(os.environ["DYNAMIC_MCP_HOME"]) / "oauth-servers" / "guarded.json"
    return json.loads(path.read_text())


def stored_access_tokens() -> set[str]:
    return {entry["value"]["access_token"] for entry in _stored()["mcp-oauth-token"].values()}


async def until_the_stored_token_expired() -> None:
    with anyio.fail_after(EXPIRY_WAIT):
        for _ in range(int(EXPIRY_WAIT / 0.1)):
            if stored_expired():
                return
            await anyio.sleep(0.1)


def stored_expired() -> bool:
    expiries = _stored()["mcp-oauth-token-expiry"].values()
    return all(entry["value"]["expires_at"] < time.time() for entry in expiries)
