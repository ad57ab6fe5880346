"""An organisation's identity provider, an MCP server's authorization server and the MCP
server, for the tests of enterprise-managed authorization (SEP-990).

    python enterprise_idp.py PORT PRIVATE_KEY_PEM_FILE [TOKEN_SECONDS]

One process on 127.0.0.1:PORT, three parts, each checking what it gets as a real one would:

- the identity provider, issuer `BASE/idp` (OpenID configuration at
  `/idp/.well-known/openid-configuration`), whose ID tokens and grants are signed (RS256) by
  PRIVATE_KEY_PEM_FILE's key — the tests sign their users' ID tokens with it too. Its token
  endpoint takes only RFC 8693 token exchange, from the client `dynamic-mcp` with the
  secret `idp-secret` (Basic): an ID token (`subject_token_type` id_token) it issued for
  that client, unexpired, for an ID-JAG (`requested_token_type` id-jag) whose `audience`
  is the authorization server's issuer and whose `resource` is the MCP server. Its policy
  refuses the user `mallory` (`access_denied`). The ID-JAG (`typ` oauth-id-jag+jwt) names
  the user, the audience, the resource and the client `mcp-client`, for 5 minutes;
- the authorization server, issuer `BASE/as` (RFC 8414 metadata at
  `/.well-known/oauth-authorization-server/as`), whose token endpoint takes only the
  RFC 7523 jwt-bearer grant from `mcp-client` with the secret `as-secret` (Basic): an
  ID-JAG the identity provider signed, for this issuer, for `mcp-client`, for the MCP
  server. Access tokens live TOKEN_SECONDS (default 3600);
- the MCP server at `/mcp` (protected resource metadata at
  `/.well-known/oauth-protected-resource/mcp`), which takes only live access tokens.
  Tools: `whoami` (the user the caller's token was issued for, and how many token
  exchanges that user's ID tokens went through so far) and `revoke_all`.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import base64
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

PORT = int(sys.argv[1])
PRIVATE_KEY = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
PUBLIC_KEY = PRIVATE_KEY.public_key()  # type: ignore[union-attr]
TOKEN_SECONDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3600
BASE = f"http://127.0.0.1:{PORT}"
IDP, AS, RESOURCE = f"{BASE}/idp", f"{BASE}/as", f"{BASE}/mcp"
IDP_CLIENT, IDP_SECRET = "dynamic-mcp", "idp-secret"
AS_CLIENT, AS_SECRET = "mcp-client", "as-secret"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG, ID_TOKEN = (
    "urn:ietf:params:oauth:token-type:id-jag",
    "urn:ietf:params:oauth:token-type:id_token",
)
DENIED = {"mallory"}  # the identity provider's policy: not for this MCP server

exchanges: Counter[str] = Counter()  # user -> token exchanges done for them
tokens: dict[str, dict[str, Any]] = {}  # access token -> user, expiry
caller: dict[str, Any] = {}

mcp = FastMCP("enterprise-upstream")


@mcp.tool
def whoami() -> str:
    """The user the caller's token was issued for, and their token exchanges so far."""
    return f"{caller['user']} {exchanges[caller['user']]}"


@mcp.tool
def revoke_all() -> str:
    """Every access token issued so far stops working."""
    tokens.clear()
    return "revoked"


def _refuse(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _client(request: Request) -> str | None:
    """The client id whose Basic credentials the request carries, if they hold."""
    basic = request.headers.get("authorization", "").removeprefix("Basic ")
    try:
        client, _, secret = base64.b64decode(basic).decode().partition(":")
    except ValueError:
        return None
    known = {IDP_CLIENT: IDP_SECRET, AS_CLIENT: AS_SECRET}
    return client if known.get(client) == secret and secret else None


async def idp_metadata(request: Request) -> Response:
    return JSONResponse(
        {
            "issuer": IDP,
            "authorization_endpoint": f"{IDP}/authorize",
            "token_endpoint": f"{IDP}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": [TOKEN_EXCHANGE],
        }
    )


async def idp_token(request: Request) -> Response:
    form = await request.form()
    if _client(request) != IDP_CLIENT:
        return _refuse("invalid_client", "the identity provider knows no such client", 401)
    if form.get("grant_type") != TOKEN_EXCHANGE:
        return _refuse("unsupported_grant_type", "only token exchange")
    wanted = {
        "subject_token_type": ID_TOKEN,
        "requested_token_type": ID_JAG,
        "audience": AS,
        "resource": RESOURCE,
    }
    for name, value in wanted.items():
        if form.get(name) != value:
            return _refuse("invalid_request", f"{name} must be {value}, got {form.get(name)}")
    try:
        claims = jwt.decode(
            str(form.get("subject_token")),
            PUBLIC_KEY,
            algorithms=["RS256"],
            audience=IDP_CLIENT,
            issuer=IDP,
            options={"require": ["exp", "sub"]},
        )
    except jwt.InvalidTokenError as exc:
        return _refuse("invalid_grant", f"the ID token does not hold: {exc}")
    user = claims["sub"]
    if user in DENIED:
        return _refuse("access_denied", f"policy: {user} may not use this MCP server")
    exchanges[user] += 1
    now = int(time.time())
    grant = jwt.encode(
        {
            "iss": IDP,
            "sub": user,
            "aud": AS,
            "resource": RESOURCE,
            "client_id": AS_CLIENT,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
        },
        PRIVATE_KEY,  # type: ignore[arg-type]
        algorithm="RS256",
        headers={"typ": "oauth-id-jag+jwt"},
    )
    return JSONResponse(
        {"access_token": grant, "issued_token_type": ID_JAG, "token_type": "N_A", "expires_in": 300}
    )


async def as_metadata(request: Request) -> Response:
    return JSONResponse(
        {
            "issuer": AS,
            "authorization_endpoint": f"{AS}/authorize",
            "token_endpoint": f"{AS}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": [JWT_BEARER],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }
    )


async def as_token(request: Request) -> Response:
    form = await request.form()
    client = _client(request)
    if client != AS_CLIENT:
        return _refuse("invalid_client", "the authorization server knows no such client", 401)
    if form.get("grant_type") != JWT_BEARER:
        return _refuse("unsupported_grant_type", "only jwt-bearer")
    assertion = str(form.get("assertion"))
    try:
        if jwt.get_unverified_header(assertion).get("typ") != "oauth-id-jag+jwt":
            return _refuse("invalid_grant", "not an ID-JAG")
        claims = jwt.decode(assertion, PUBLIC_KEY, algorithms=["RS256"], audience=AS, issuer=IDP)
    except jwt.InvalidTokenError as exc:
        return _refuse("invalid_grant", f"the ID-JAG does not hold: {exc}")
    if claims.get("client_id") != client or claims.get("resource") != RESOURCE:
        return _refuse("invalid_grant", "the ID-JAG is for another client or resource")
    access = secrets.token_urlsafe(24)
    tokens[access] = {"user": claims["sub"], "expires_at": time.time() + TOKEN_SECONDS}
    return JSONResponse(
        {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_SECONDS}
    )


async def resource_metadata(request: Request) -> Response:
    return JSONResponse({"resource": RESOURCE, "authorization_servers": [AS]})


class Guard(BaseHTTPMiddleware):
    """The MCP endpoint takes only live access tokens."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not request.url.path.startswith("/mcp"):
            return await call_next(request)
        header = request.headers.get("authorization", "")
        token = tokens.get(header.removeprefix("Bearer "))
        if token is None or token["expires_at"] < time.time():
            metadata = f"{BASE}/.well-known/oauth-protected-resource/mcp"
            challenge = f'Bearer error="invalid_token", resource_metadata="{metadata}"'
            return JSONResponse(
                {"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": challenge}
            )
        caller.update(user=token["user"])
        return await call_next(request)


mcp_app = mcp.http_app(path="/mcp")
app = Starlette(
    routes=[
        Route("/idp/.well-known/openid-configuration", idp_metadata),
        Route("/idp/token", idp_token, methods=["POST"]),
        Route("/.well-known/oauth-authorization-server/as", as_metadata),
        Route("/as/token", as_token, methods=["POST"]),
        Route("/.well-known/oauth-protected-resource/mcp", resource_metadata),
        Mount("/", app=mcp_app),
    ],
    lifespan=mcp_app.lifespan,
)
app.add_middleware(Guard)

if __name__ == "__main__":
    lean.serving()
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="error")
