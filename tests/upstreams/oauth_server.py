"""An MCP server behind OAuth 2.1, for the tests: discovery, registration, PKCE, refresh.

    python oauth_server.py PORT [TOKEN_SECONDS [CALLBACK_PORT]]   # $OAUTH_TRANSPORT: http | sse

FastMCP's in-memory OAuth provider on 127.0.0.1:PORT: it authorizes every request at once
(the "browser" only has to follow the redirect), issues access tokens that live
TOKEN_SECONDS (default 3600) and rotates refresh tokens on every refresh. With
CALLBACK_PORT, a client `preregistered` (scope `read`) is known from the start, redirecting
to 127.0.0.1:CALLBACK_PORT/callback only, and so is `confidential`, which must present its
secret as Basic credentials. Tools: `whoami`
(the client id the token was issued to) and `revoke_all` (every token issued so far stops
working, as when a user revokes access) and `revoke_access` (every access token stops
working; refresh tokens still do, as when a server restarts and forgets its sessions).
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import os
import sys

from fastmcp import FastMCP
from fastmcp.server.auth.auth import ClientRegistrationOptions, RevocationOptions
from fastmcp.server.auth.providers import in_memory
from fastmcp.server.dependencies import get_access_token
from mcp.shared.auth import OAuthClientInformationFull

CONFIDENTIAL_SECRET = "s3cret-of-the-confidential-client"  # tests/test_oauth.py knows it too
port = int(sys.argv[1])
if len(sys.argv) > 2:
    in_memory.DEFAULT_ACCESS_TOKEN_EXPIRY_SECONDS = int(sys.argv[2])

provider = in_memory.InMemoryOAuthProvider(
    base_url=f"http://127.0.0.1:{port}",
    client_registration_options=ClientRegistrationOptions(enabled=True),
    revocation_options=RevocationOptions(enabled=True),
)
if len(sys.argv) > 3:
    provider.clients["preregistered"] = OAuthClientInformationFull.model_validate(
        {
            "client_id": "preregistered",
            "redirect_uris": [f"http://127.0.0.1:{sys.argv[3]}/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "read",
        }
    )
    # A confidential client, as providers issue them: an id and a secret, no registration.
    provider.clients["confidential"] = OAuthClientInformationFull.model_validate(
        {
            "client_id": "confidential",
            "client_secret": CONFIDENTIAL_SECRET,
            "redirect_uris": [f"http://127.0.0.1:{sys.argv[3]}/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "read",
        }
    )
mcp = FastMCP("oauth-upstream", auth=provider)


@mcp.tool
def whoami() -> str:
    """The client id the caller's token was issued to, and its scopes."""
    token = get_access_token()
    return f"{token.client_id} {' '.join(token.scopes)}".strip() if token else "nobody"


@mcp.tool
def revoke_all() -> str:
    """Revoke every access and refresh token issued so far."""
    provider.access_tokens.clear()
    provider.refresh_tokens.clear()
    return "revoked"


@mcp.tool
def revoke_access() -> str:
    """Revoke every access token issued so far; refresh tokens still work."""
    provider.access_tokens.clear()
    return "revoked"


if __name__ == "__main__":
    lean.serving()
    transport = os.environ.get("OAUTH_TRANSPORT", "http")
    mcp.run(transport=transport, host="127.0.0.1", port=port, show_banner=False, log_level="ERROR")
