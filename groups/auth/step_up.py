"""Step-up: a server that wants more scope than the token has, kept until a sign-in gives it.

    if wants_more_scope(response, tokens):          # 403 insufficient_scope, a scope not held
        await StepUp(store, url).remember(response)  # for whichever sign-in answers it
    refusal = await StepUp(store, url).asked(tokens, request)   # the sign-in: a 403 to replay

A request that meets a 403 `insufficient_scope` cannot wait for a person; the sign-in that
follows may run in another process (`dynamic-mcp auth`), whose probe the old token still
passes. So the server's challenge is kept in the store beside the endpoint's tokens, and
the sign-in replays it to the SDK's own step-up, which asks for the union of what was
asked before, what was granted and what the server now asks (SEP-2350).

Guarantees: a challenge is acted on only while it asks for a scope the token does not
hold, so a server that refuses even the larger scope is answered with its refusal, not
with another sign-in; it is forgotten once a token holds the scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2
from mcp.client.auth.utils import extract_field_from_www_auth, extract_scope_from_www_auth

if TYPE_CHECKING:
    from mcp.shared.auth import OAuthToken

    from groups.storage.store import Scope

__all__ = ["StepUp", "wants_more_scope"]

_COLLECTION = "dynamic-mcp-step-up"  # beside FastMCP's collections in the group's scope


def wants_more_scope(response: httpx2.Response, tokens: OAuthToken | None) -> bool:
    """Whether `response` refuses for want of a scope that `tokens` were not granted."""
    if response.status_code != 403:
        return False
    if extract_field_from_www_auth(response, "error") != "insufficient_scope":
        return False
    wanted = set((extract_scope_from_www_auth(response) or "").split())
    granted = set((tokens.scope or "").split()) if tokens is not None else set()
    return bool(wanted - granted)


class StepUp:
    """The last call for more scope from one endpoint, kept in the group's store."""

    def __init__(self, tokens: Scope, url: str) -> None:
        self.tokens = tokens
        self.key = f"{url.rstrip('/')}/challenge"

    def __repr__(self) -> str:
        return f"StepUp({self.key!r})"

    async def remember(self, response: httpx2.Response) -> None:
        """Keep the server's challenge (its `WWW-Authenticate`) for the sign-in to answer."""
        challenge = {"www_authenticate": response.headers.get("WWW-Authenticate", "")}
        await self.tokens.put(self.key, challenge, collection=_COLLECTION)

    async def asked(
        self, tokens: OAuthToken | None, request: httpx2.Request
    ) -> httpx2.Response | None:
        """The kept refusal, rebuilt as the answer to `request`, while `tokens` lack its scope."""
        kept = await self.tokens.get(self.key, collection=_COLLECTION)
        if kept is None:
            return None
        refusal = httpx2.Response(
            403, headers={"WWW-Authenticate": str(kept["www_authenticate"])}, request=request
        )
        if not wants_more_scope(refusal, tokens):
            await self.forget()  # granted meanwhile
            return None
        return refusal

    async def forget(self) -> None:
        """The scope was granted: nothing more to ask for."""
        await self.tokens.delete(self.key, collection=_COLLECTION)
