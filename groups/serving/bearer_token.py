"""One shared bearer token for dynamic-mcp served over HTTP (`http_access.http_auth`)."""

from __future__ import annotations

import hmac

from fastmcp.server.auth import AccessToken, TokenVerifier

__all__ = ["BearerToken"]


class BearerToken(TokenVerifier):
    """Accepts exactly one token: the one dynamic-mcp was started with."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    def __repr__(self) -> str:
        return "BearerToken(***)"

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token="***", client_id="dynamic-mcp-client", scopes=[])
