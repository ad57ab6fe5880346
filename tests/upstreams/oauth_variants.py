"""An MCP server and its authorization server, with discovery laid out in each way the
2025-11-25 authorization spec allows, for the tests.

    python oauth_variants.py PORT LAYOUT [TOKEN_SECONDS [PUBLIC_KEY_PEM_FILE]] [--offline-access]

One process on 127.0.0.1:PORT: the MCP endpoint `/mcp` (tools `whoami`, the caller's
client id and granted scopes, `write`, which needs the scope `write`, and `admin`, which
no token may call), and an
authorization server whose issuer has a path, `http://127.0.0.1:PORT/tenant1` (its
metadata names it exactly, RFC 8414 §3.3). LAYOUT says where the metadata is:

- `root`: protected-resource metadata at `/.well-known/oauth-protected-resource` only;
  server metadata at `/.well-known/oauth-authorization-server/tenant1` (RFC 8414);
- `path`: resource metadata at `/.well-known/oauth-protected-resource/mcp` only; server
  metadata as OpenID configuration, `/.well-known/openid-configuration/tenant1`;
- `header`: resource metadata at `/custom/resource.json`, found only through
  `resource_metadata` in the 401's `WWW-Authenticate`; server metadata at
  `/tenant1/.well-known/openid-configuration` (OpenID Connect Discovery).

Every other well-known URL answers 404. The authorization server registers clients,
authorizes at once (the "browser" only follows the redirect), and grants what is asked:
authorization_code with PKCE (clients registered, or known by an https client ID
metadata document URL, which it takes without fetching), and client_credentials for
`service` with the secret `service-secret` (Basic) or, given PUBLIC_KEY_PEM_FILE, a
private_key_jwt assertion (RFC 7523) signed by its private key, with the issuer as
audience. Access tokens live TOKEN_SECONDS (default 3600). A call of `write` with a
token lacking `write` is refused 403 insufficient_scope, asking for `read write`; a call of
`admin` is refused 403 insufficient_scope to every token, asking for `read`, a scope every
token holds (the account lacks a permission no sign-in can give).

With `--offline-access` it is OpenID-flavoured as SEP-2207 describes: its metadata lists
`offline_access` in `scopes_supported`, and it issues a refresh token only where that
scope was granted to a client registered with the `refresh_token` grant (and honours it).
Without, it lists no `offline_access` and refuses a request for it (`invalid_scope`), as a
server may that does not know the scope.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import base64
import hashlib
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

OFFLINE_ACCESS = "--offline-access" in sys.argv
ARGS = [arg for arg in sys.argv[1:] if arg != "--offline-access"]
PORT = int(ARGS[0])
LAYOUT = ARGS[1]
TOKEN_SECONDS = int(ARGS[2]) if len(ARGS) > 2 else 3600
PUBLIC_KEY = Path(ARGS[3]).read_text() if len(ARGS) > 3 else None
BASE = f"http://127.0.0.1:{PORT}"
ISSUER = f"{BASE}/tenant1"
SERVICE_ID, SERVICE_SECRET = "service", "service-secret"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

RESOURCE_METADATA = {
    "root": "/.well-known/oauth-protected-resource",
    "path": "/.well-known/oauth-protected-resource/mcp",
    "header": "/custom/resource.json",
}[LAYOUT]
SERVER_METADATA = {
    "root": "/.well-known/oauth-authorization-server/tenant1",
    "path": "/.well-known/openid-configuration/tenant1",
    "header": "/tenant1/.well-known/openid-configuration",
}[LAYOUT]

clients: dict[str, dict[str, Any]] = {}
codes: dict[str, dict[str, Any]] = {}  # code -> client, scope, PKCE challenge
tokens: dict[str, dict[str, Any]] = {}  # access token -> client, scopes, expiry
refresh_tokens: dict[str, dict[str, Any]] = {}  # refresh token -> client, scopes
caller: dict[str, Any] = {}  # who the request being served now came from

mcp = FastMCP("oauth-variants")


@mcp.tool
def whoami() -> str:
    """The client id the caller's token was issued to, and its scopes."""
    return " ".join([caller["client_id"], *sorted(caller["scopes"])])


@mcp.tool
def write() -> str:
    """Something only a token with the `write` scope may do."""
    return "written"


@mcp.tool
def admin() -> str:
    """Something no token may do: refused for a scope it already holds."""
    return "administered"


def _challenge(status: int, error: str, scope: str | None = None) -> Response:
    parts = [f'error="{error}"']
    if scope is not None:
        parts.append(f'scope="{scope}"')
    if LAYOUT == "header":  # the only way to find this layout's resource metadata
        parts.append(f'resource_metadata="{BASE}{RESOURCE_METADATA}"')
    headers = {"WWW-Authenticate": "Bearer " + ", ".join(parts)}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


class Guard(BaseHTTPMiddleware):
    """The MCP endpoint takes only live tokens, and `write` only with the `write` scope."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not request.url.path.startswith("/mcp"):
            return await call_next(request)
        header = request.headers.get("authorization", "")
        token = tokens.get(header.removeprefix("Bearer "))
        if token is None or token["expires_at"] < time.time():
            return _challenge(401, "invalid_token")
        if request.method == "POST":
            body = await request.json()
            params = (body.get("params") or {}) if isinstance(body, dict) else {}
            if params.get("name") == "write" and "write" not in token["scopes"]:
                return _challenge(403, "insufficient_scope", "read write")
            if params.get("name") == "admin":
                return _challenge(403, "insufficient_scope", "read")
        caller.update(client_id=token["client_id"], scopes=token["scopes"])
        return await call_next(request)


async def resource_metadata(request: Request) -> Response:
    return JSONResponse(
        {"resource": f"{BASE}/mcp", "authorization_servers": [ISSUER], "scopes_supported": ["read"]}
    )


async def server_metadata(request: Request) -> Response:
    return JSONResponse(
        {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "registration_endpoint": f"{ISSUER}/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"]
            + (["refresh_token"] if OFFLINE_ACCESS else []),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["read", "write"] + (["offline_access"] if OFFLINE_ACCESS else []),
            "client_id_metadata_document_supported": True,
        }
    )


async def register(request: Request) -> Response:
    metadata = await request.json()
    client_id = f"client-{secrets.token_hex(4)}"
    clients[client_id] = metadata
    return JSONResponse({**metadata, "client_id": client_id}, status_code=201)


async def authorize(request: Request) -> Response:
    query = request.query_params
    # A client ID metadata document's URL is a client id too (a real server fetches it).
    known = query.get("client_id") in clients or query.get("client_id", "").startswith("https:")
    if not known:
        return JSONResponse({"error": "invalid_client"}, status_code=400)
    scopes = query.get("scope", "").split()
    if "offline_access" in scopes and not OFFLINE_ACCESS:
        answer = {"error": "invalid_scope", "state": query["state"]}
        return RedirectResponse(f"{query['redirect_uri']}?{urlencode(answer)}", status_code=302)
    code = secrets.token_urlsafe(16)
    codes[code] = {
        "client_id": query["client_id"],
        "scopes": scopes,
        "challenge": query["code_challenge"],
    }
    answer = {"code": code, "state": query["state"], "iss": ISSUER}
    return RedirectResponse(f"{query['redirect_uri']}?{urlencode(answer)}", status_code=302)


async def token(request: Request) -> Response:
    form = await request.form()
    grant = form.get("grant_type")
    if grant == "authorization_code":
        issued = codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", "")).encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if issued is None or digest.decode() != issued["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return _issue(issued["client_id"], issued["scopes"])
    if grant == "refresh_token" and OFFLINE_ACCESS:
        held = refresh_tokens.pop(str(form.get("refresh_token")), None)  # rotated: used once
        if held is None or held["client_id"] != form.get("client_id"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return _issue(held["client_id"], held["scopes"])
    if grant == "client_credentials" and _service_authenticated(request, form):
        return _issue(SERVICE_ID, str(form.get("scope", "")).split())
    return JSONResponse({"error": "invalid_client"}, status_code=401)


def _service_authenticated(request: Request, form: Any) -> bool:
    """Basic credentials with the service's secret, or an assertion its key signed."""
    basic = request.headers.get("authorization", "").removeprefix("Basic ")
    if basic:
        return base64.b64decode(basic).decode() == f"{SERVICE_ID}:{SERVICE_SECRET}"
    if PUBLIC_KEY is None or form.get("client_assertion_type") != ASSERTION_TYPE:
        return False
    try:
        claims = jwt.decode(
            str(form.get("client_assertion")), PUBLIC_KEY, algorithms=["ES256"], audience=ISSUER
        )
    except jwt.InvalidTokenError:
        return False
    return claims.get("iss") == claims.get("sub") == SERVICE_ID


def _issue(client_id: str, scopes: list[str]) -> Response:
    access = secrets.token_urlsafe(24)
    tokens[access] = {
        "client_id": client_id,
        "scopes": scopes,
        "expires_at": time.time() + TOKEN_SECONDS,
    }
    answer = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "scope": " ".join(scopes),
    }
    registered = clients.get(client_id, {}).get("grant_types", [])
    if "offline_access" in scopes and "refresh_token" in registered:
        answer["refresh_token"] = secrets.token_urlsafe(24)
        refresh_tokens[answer["refresh_token"]] = {"client_id": client_id, "scopes": scopes}
    return JSONResponse(answer)


mcp_app = mcp.http_app(path="/mcp")
app = Starlette(
    routes=[
        Route(RESOURCE_METADATA, resource_metadata),
        Route(SERVER_METADATA, server_metadata),
        Route("/tenant1/register", register, methods=["POST"]),
        Route("/tenant1/authorize", authorize),
        Route("/tenant1/token", token, methods=["POST"]),
        Mount("/", app=mcp_app),
    ],
    lifespan=mcp_app.lifespan,
)
app.add_middleware(Guard)

if __name__ == "__main__":
    lean.serving()
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="error")
