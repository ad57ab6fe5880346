"""Where a group's OAuth tokens live: its scope of the store, one endpoint beside another.

    tokens = oauth_tokens("github", redactor)     # ~/.dynamic-mcp/oauth-servers/github.json
    alices = oauth_tokens("github", redactor, user="alice")   # .../users/alice/oauth-servers/
    stored = await stored_sign_in(tokens, url)    # what `auth --list` shows for url

FastMCP's `OAuth(token_storage=tokens)` keys its entries by endpoint URL inside the
group's scope (`mcp-oauth-token`: `<url>/tokens`, and so on); a gateway's named user has a
scope of their own, the user in front of the group (see `groups.storage.store`), which
holds their tokens, their client registration and their step-up challenge. In a
gateway's shared store the scope's values are encrypted with the operator's key
(`groups.storage.shared`).

Guarantees: every token and client secret read or written through the scope is known to
the `Redactor` first; one user's scope never reads another's, nor the implicit user's; a
file of the older format (one `server` per group file) is carried over only to the
endpoint its `server` names, and one naming no server is never carried over, only
reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastmcp.client.auth.oauth import TokenStorageAdapter
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from groups.storage.default import default_store
from groups.storage.store import Scope, Store
from groups.upstream.transport import endpoint

if TYPE_CHECKING:
    from groups.secrets import Redactor

__all__ = [
    "TOKEN_AREA",
    "StoredSignIn",
    "carry_over_legacy",
    "oauth_tokens",
    "registered_port",
    "stored_sign_in",
]

logger = logging.getLogger(__name__)

TOKEN_AREA = "oauth-servers"  # ~/.dynamic-mcp/oauth-servers/<group>.json, as documented
_SECRET_FIELDS = ("access_token", "refresh_token", "client_secret")


def oauth_tokens(
    group: str, redactor: Redactor, store: Store | None = None, user: str | None = None
) -> Scope:
    """`group`'s part of the store (the process's one store unless given another) for
    `user` (a gateway's named user; None: the implicit one): every endpoint's tokens and
    registration, apart."""

    def learn(collection: str, value: Mapping[str, Any]) -> None:
        for field in _SECRET_FIELDS:
            secret = value.get(field)
            if isinstance(secret, str) and secret:
                redactor.add(secret)

    return (store or default_store()).scope(TOKEN_AREA, group, on_value=learn, user=user)


class StoredSignIn:
    """What the store holds for one group's endpoint, as `auth --list` shows it."""

    def __init__(
        self,
        tokens: OAuthToken | None,
        expires_at: float | None,
        elsewhere: bool,
        unbound: bool,
    ) -> None:
        self.tokens = tokens
        self.expires_at = expires_at
        self.elsewhere = elsewhere  # tokens are stored for another endpoint of the group
        self.unbound = unbound  # an older file that never said which server issued it


async def stored_sign_in(tokens: Scope, url: str | None) -> StoredSignIn:
    """What `tokens` holds for `url` (None: the URL cannot be resolved), and beside it."""
    if url is not None:
        await carry_over_legacy(tokens, url)
    legacy = await tokens.foreign()
    found, expires_at = None, None
    stored = await tokens.keys("mcp-oauth-token")
    endpoint = f"{url.rstrip('/')}/" if url is not None else None
    if url is not None:
        adapter = TokenStorageAdapter(tokens, url.rstrip("/"))
        found, expires_at = await adapter.get_tokens(), await adapter.get_token_expiry()
        # A service account's token is kept under its client's identity too (FastMCP's
        # `<url>/<namespace>/tokens`, `groups.auth.machine`).
        namespaced = [key for key in stored if endpoint and key.startswith(endpoint)]
        if found is None and namespaced:
            namespace = namespaced[0].removeprefix(endpoint or "").removesuffix("/tokens")
            adapter = TokenStorageAdapter(tokens, url.rstrip("/"), cache_namespace=namespace)
            found, expires_at = await adapter.get_tokens(), await adapter.get_token_expiry()
    elsewhere = any(endpoint is None or not key.startswith(endpoint) for key in stored)
    elsewhere = elsewhere or bool(legacy.get("server"))
    unbound = bool(legacy.get("tokens")) and not legacy.get("server")
    return StoredSignIn(found, expires_at, elsewhere, unbound)


async def carry_over_legacy(tokens: Scope, url: str) -> None:
    """Move an older file's tokens into the store if they were issued by `url`'s server.

    The older format kept one `server` (the endpoint without its query) per group file.
    Tokens for another server stay where they are, for the config that points there;
    tokens that never said which server issued them stay unused until a new sign-in.
    """
    legacy = await tokens.foreign()
    if not legacy.get("server") or legacy.get("server") != endpoint(url):
        return
    legacy = await tokens.foreign(take=True)
    if legacy.get("server") != endpoint(url):
        return
    adapter = TokenStorageAdapter(tokens, url.rstrip("/"))
    if legacy.get("client"):
        await adapter.set_client_info(OAuthClientInformationFull.model_validate(legacy["client"]))
    if legacy.get("tokens"):
        token = OAuthToken.model_validate(legacy["tokens"])
        if legacy.get("expires_at") is not None:
            token.expires_in = max(0, int(float(legacy["expires_at"]) - time.time()))
        await adapter.set_tokens(token)
    logger.info("%s: carried tokens over from the older file format", tokens.prefix)


async def registered_port(tokens: Scope, url: str) -> int | None:
    """The loopback port the stored registration redirects to, so a sign-in reuses it."""
    client = await TokenStorageAdapter(tokens, url.rstrip("/")).get_client_info()
    for uri in client.redirect_uris or [] if client is not None else []:
        parts = urlsplit(str(uri))
        if parts.hostname == "127.0.0.1" and parts.port:
            return parts.port
    return None
