"""Enterprise-managed authorization (SEP-990, `"oauth_grant": "id_jag"`): the user's ID
token from the organisation's identity provider becomes their upstream access, no sign-in.

Against tests/upstreams/enterprise_idp.py (an identity provider, an authorization server
and an MCP server on 127.0.0.1, each checking what it gets): dynamic-mcp over stdio for
one user, whose ID token is a file, and a team gateway whose users sign in with the
organisation's JWTs, each getting their own upstream token from their own ID token.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from conftest import UPSTREAMS, free_port, listening, python_command
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError
from test_gateway import as_user, gateway

from groups.config import Config

SHORT_TOKEN = 3  # seconds an upstream access token lives where its renewal is the point
IDP_CLIENT = "dynamic-mcp"  # the identity provider's client: the ID tokens' audience


@pytest.fixture(scope="module")
def idp_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The identity provider's signing key (PEM, mode 600): the upstream's and the tests'."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("idp") / "idp-key.pem"
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="module")
def enterprise(idp_key: Path) -> Iterator[str]:
    """The identity provider, authorization server and MCP server; its base URL."""
    port = free_port()
    command = python_command(UPSTREAMS / "enterprise_idp.py", str(port), idp_key, SHORT_TOKEN)
    with listening(command, port, stop_wait=10):
        yield f"http://127.0.0.1:{port}"


def id_token(idp_key: Path, base: str, user: str, audience: str = IDP_CLIENT) -> str:
    """An ID token the identity provider issued to `user`, for `audience`, for 10 minutes."""
    now = int(time.time())
    claims = {"iss": f"{base}/idp", "sub": user, "aud": audience, "iat": now, "exp": now + 600}
    return jwt.encode(claims, idp_key.read_text(), algorithm="RS256")


def entry(base: str, **idp: Any) -> dict[str, Any]:
    """A group at the enterprise MCP server, its identity provider as `idp` adds to."""
    return {
        "description": "The organisation's CRM",
        "url": f"{base}/mcp",
        "oauth_grant": "id_jag",
        "oauth_client_id": "mcp-client",
        "oauth_client_secret": "${AS_SECRET}",
        "oauth_idp": {"client_id": IDP_CLIENT, "client_secret": "${IDP_SECRET}", **idp},
    }


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_SECRET", "as-secret")
    monkeypatch.setenv("IDP_SECRET", "idp-secret")


def private(path: Path, text: str) -> str:
    """`text` in a file of mode 600; the `${file:…}` naming it."""
    path.touch(mode=0o600)
    path.write_text(text)
    return f"${{file:{path}}}"


async def call(client: Any, group: str, tool: str = "whoami") -> tuple[bool, str]:
    result = await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": tool, "args": {}}
    )
    return bool(result.is_error), result.content[0].text


def stored_access_tokens() -> dict[str, str]:
    """Every access token in the store, by the file (a user's, a group's) that holds it."""
    found: dict[str, str] = {}
    for path in Path(os.environ["DYNAMIC_MCP_HOME"]).rglob("*.json"):
        text = path.read_text()
        for token in _access_tokens(json.loads(text)) if "access_token" in text else []:
            found[token] = str(path)
    return found


def _access_tokens(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["access_token"]] if isinstance(value.get("access_token"), str) else []
        return own + [token for item in value.values() for token in _access_tokens(item)]
    if isinstance(value, str) and value.startswith("{"):
        try:
            return _access_tokens(json.loads(value))
        except ValueError:
            return []
    return []


async def test_over_stdio_the_users_id_token_becomes_their_access_and_again_on_expiry(
    enterprise, idp_key, write_config, tmp_path, connect
):
    alice = private(tmp_path / "alice.jwt", id_token(idp_key, enterprise, "alice"))
    mallory = private(tmp_path / "mallory.jwt", id_token(idp_key, enterprise, "mallory"))
    # The token endpoint given, or found from the issuer's OpenID configuration.
    config = write_config(
        {
            "crm": entry(enterprise, issuer=f"{enterprise}/idp", id_token=alice),
            "denied": entry(enterprise, token_endpoint=f"{enterprise}/idp/token", id_token=mallory),
            "unnamed": entry(enterprise, issuer=f"{enterprise}/idp"),
            "unknown": {
                **entry(enterprise, issuer=f"{enterprise}/idp", id_token=alice),
                "oauth_client_secret": "not-the-secret",
            },
        }
    )
    client = await connect(config)

    first = await call(client, "crm")
    issued = stored_access_tokens()
    await anyio.sleep(SHORT_TOKEN + 0.5)  # until the upstream's token has expired
    again = await call(client, "crm")
    denied = await call(client, "denied")
    unnamed = await call(client, "unnamed")
    unknown = await call(client, "unknown")

    assert first == (False, "alice 1")  # one token exchange, no link, no person
    # Expired: a new exchange from her ID token (more than one only on a machine so slow
    # that the first token expired before the call).
    assert again[0] is False and again[1].split()[0] == "alice" and again[1] != first[1]
    assert set(stored_access_tokens()) - set(issued)  # and a new token kept
    assert denied[0] and "identity provider (oauth_idp) refused" in denied[1], denied
    assert "access_denied: policy: mallory may not use this MCP server" in denied[1]
    assert unnamed[0] and "oauth_idp.id_token is not set" in unnamed[1], unnamed
    assert unknown[0] and "the authorization server did not take" in unknown[1], unknown
    assert "oauth_client_id 'mcp-client'" in unknown[1] and "not-the-secret" not in unknown[1]


async def test_on_a_gateway_each_user_gets_their_own_upstream_token_from_their_own_id_token(
    enterprise, idp_key, write_config, tmp_path
):
    config = write_config({"crm": entry(enterprise, issuer=f"{enterprise}/idp")})
    public_key = tmp_path / "idp-public.pem"
    public_key.write_text(_public_pem(idp_key))
    log = tmp_path / "gateway.log"
    jwts = ["--jwt-public-key", str(public_key), "--jwt-issuer", f"{enterprise}/idp"]
    jwts += ["--jwt-audience", IDP_CLIENT]
    # Users of their own: the upstream counts each user's exchanges across the module.
    carol = id_token(idp_key, enterprise, "carol")
    dave = id_token(idp_key, enterprise, "dave")
    with gateway(config, log, *jwts) as url:
        async with as_user(url, carol) as as_carol, as_user(url, dave) as as_dave:
            carols = await call(as_carol, "crm")
            daves = await call(as_dave, "crm")
            carols_again = await call(as_carol, "crm")

    assert carols == (False, "carol 1")  # her own identity, no sign-in link
    assert daves == (False, "dave 1")  # his own: not carol's token
    assert carols_again[0] is False and carols_again[1].split()[0] == "carol"
    tokens = stored_access_tokens()
    holders = sorted(
        Path(path).relative_to(os.environ["DYNAMIC_MCP_HOME"]) for path in tokens.values()
    )
    assert [str(path).split("/")[:2] for path in holders] == [["users", "carol"], ["users", "dave"]]
    logged = log.read_text()
    for secret in [carol, dave, *tokens, "as-secret", "idp-secret"]:
        assert secret not in logged


def _public_pem(private_key: Path) -> str:
    key = serialization.load_pem_private_key(private_key.read_bytes(), None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"oauth_idp": None}, "oauth_grant id_jag needs oauth_idp"),
        (
            {"oauth_client_secret": None},
            "oauth_grant id_jag needs oauth_client_id and oauth_client_secret",
        ),
        ({"oauth_grant": "authorization_code"}, "oauth_idp is for oauth_grant id_jag"),
        (
            {"oauth_idp": {"client_id": IDP_CLIENT}},
            "give the identity provider's issuer or its token_endpoint (one)",
        ),
        ({"oauth_idp": {"issuer": "https://id.example"}}, "oauth_idp.client_id"),
    ],
)
def test_an_id_jag_entry_missing_a_setting_is_refused_naming_it(change, problem):
    server = {
        **entry("https://crm.example"),
        "oauth_idp": {"client_id": IDP_CLIENT, "issuer": "https://id.example"},
    }
    server.update(change)
    server = {name: value for name, value in server.items() if value is not None}
    with pytest.raises(ValidationError) as refused:
        Config.model_validate({"mcpServers": {"crm": server}})
    assert problem in str(refused.value).replace("\n  ", ".")
