"""OAuth for a service account (`"oauth_grant": "client_credentials"`): no person, no link.

    auth = machine_oauth(url, server, credentials, tokens)    # handed to the transport
    async with httpx2.AsyncClient(auth=auth) as http: ...     # a token when first refused

The SDK's client-credentials providers, through FastMCP's (which keep the token's expiry
across restarts, drop refresh tokens so each new token follows a fresh discovery, and keep
a stepped-up scope): the client authenticates with `oauth_client_secret` (as the server's
metadata asks, `groups.auth.credentials`) or with a `private_key_jwt` assertion signed by
`oauth_private_key`.

Guarantees:
- nothing waits for a person: a request the server refuses for want of a token gets one
  from the token endpoint, and a request after it expired gets a new one;
- a 403 asking for more scope gets a token for the larger scope, once per refusal;
- with `oauth_issuer`, the credentials go to that authorization server and no other;
- the token is kept in the group's part of the store, under the endpoint URL and the
  client's identity, like a person's.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from fastmcp.client.auth import ClientCredentialsOAuthProvider, PrivateKeyJWTOAuthProvider
from fastmcp.client.auth.client_credentials import SignedJWTParameters
from mcp.shared.exceptions import MCPDeprecationWarning

from groups.auth.credentials import authenticate_as_metadata_says

if TYPE_CHECKING:
    from groups.auth.credentials import ClientCredentials
    from groups.config import HttpServer, SseServer
    from groups.storage.store import Scope

__all__ = ["DEFAULT_SIGNING_ALGORITHM", "MachineOAuth", "machine_oauth"]

DEFAULT_SIGNING_ALGORITHM = "RS256"  # the SDK's, and what RFC 7523 servers take most widely
MachineOAuth = ClientCredentialsOAuthProvider | PrivateKeyJWTOAuthProvider


def machine_oauth(
    url: str, server: HttpServer | SseServer, credentials: ClientCredentials, tokens: Scope
) -> MachineOAuth:
    """The client-credentials OAuth for `server`'s endpoint `url`, its token in `tokens`.

    The config's model makes sure a `client_credentials` entry has a client id and exactly
    one of a secret and a private key.
    """
    client_id = server.oauth_client_id or ""
    with warnings.catch_warnings():
        if server.oauth_issuer is None:
            # The SDK warns on every construction; the README asks for `oauth_issuer`
            # once, where the setting is documented, and a group connects many times.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
        if credentials.private_key is not None:
            signed = SignedJWTParameters(
                issuer=client_id,
                subject=client_id,
                signing_key=credentials.private_key,
                signing_algorithm=server.oauth_signing_algorithm or DEFAULT_SIGNING_ALGORITHM,
            )
            return PrivateKeyJWTOAuthProvider(
                url,
                client_id=client_id,
                assertion_provider=signed.create_assertion_provider(),
                scopes=server.oauth_scopes,
                issuer=server.oauth_issuer,
                token_storage=tokens,
            )
        auth = ClientCredentialsOAuthProvider(
            url,
            client_id=client_id,
            client_secret=credentials.secret or "",
            scopes=server.oauth_scopes,
            issuer=server.oauth_issuer,
            token_storage=tokens,
        )
    authenticate_as_metadata_says(auth)
    return auth
