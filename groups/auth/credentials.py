"""A confidential OAuth client's credentials: read when a group connects, never shown, and
presented to the token endpoint the way the authorization server's metadata asks.

    credentials = client_credentials(server, variables, redactor)   # secret, private key
    authenticate_as_metadata_says(oauth)     # Basic or form, chosen from the server's metadata

Guarantees:
- a client secret or private key is known to the `Redactor` before anything can show it:
  as `${VAR}` / `${file:PATH}` where the config refers to one, as `***` where the config
  writes it out, and so is the Basic credential made from the secret;
- a client with a secret authenticates to the token endpoint with a method the server's
  metadata lists (`client_secret_basic` first, as RFC 8414 makes it the default; then
  `client_secret_post`); without metadata, as the client's record says.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING
from urllib.parse import quote

from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.oauth2 import OAuthContext

from groups.config import interpolate

if TYPE_CHECKING:
    from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata

    from groups.config import HttpServer, SseServer
    from groups.secrets import Redactor

__all__ = ["ClientCredentials", "authenticate_as_metadata_says", "client_credentials"]

# How a client holding a secret may present it, in the order we prefer (RFC 8414 §2:
# a server that lists no methods takes client_secret_basic).
_SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class ClientCredentials:
    """A group's client secret and private key as resolved for one connection."""

    secret: str | None = None
    private_key: str | None = None
    idp_secret: str | None = None  # `oauth_idp.client_secret`: at the identity provider

    def __repr__(self) -> str:  # never the values, wherever an object is shown
        has = {"secret": self.secret is not None, "key": self.private_key is not None}
        has["idp secret"] = self.idp_secret is not None
        return f"ClientCredentials({', '.join(name for name, held in has.items() if held)})"


def client_credentials(
    server: HttpServer | SseServer, variables: Mapping[str, str], redactor: Redactor
) -> ClientCredentials:
    """The entry's `oauth_client_secret`, `oauth_private_key` and `oauth_idp.client_secret`,
    `${...}` resolved.

    Raises:
        UnresolvedError: a `${VAR}` is unset or a `${file:PATH}` unusable.
    """
    secret = _resolved(server.oauth_client_secret, variables, redactor)
    if secret is not None and server.oauth_client_id is not None:
        # The SDK sends id:secret URL-encoded, base64'd, as Basic credentials.
        pair = f"{quote(server.oauth_client_id, safe='')}:{quote(secret, safe='')}"
        redactor.add(base64.b64encode(pair.encode()).decode())
    key = _resolved(server.oauth_private_key, variables, redactor)
    idp = server.oauth_idp
    idp_secret = _resolved(idp.client_secret, variables, redactor) if idp is not None else None
    if idp is not None and idp_secret is not None:
        pair = f"{quote(idp.client_id, safe='')}:{quote(idp_secret, safe='')}"
        redactor.add(base64.b64encode(pair.encode()).decode())
    return ClientCredentials(secret, key, idp_secret)


def _resolved(written: str | None, variables: Mapping[str, str], redactor: Redactor) -> str | None:
    if written is None:
        return None
    if "${" not in written:
        redactor.add(written)  # written out in the config: shown as ***
    return interpolate(written, variables, redactor)


class _MetadataAuthContext(OAuthContext):
    """The SDK's OAuth context, presenting a client secret as the server's metadata asks.

    The SDK authenticates token requests (`prepare_token_auth`) by the method in the
    client's record, fixed before the server's metadata is known; the metadata is known
    by the time a token is asked for.
    """

    def prepare_token_auth(
        self, data: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        info = self.client_info
        method = _method_for(self.oauth_metadata, info)
        if info is not None and method is not None:
            self.client_info = info.model_copy(update={"token_endpoint_auth_method": method})
        return super().prepare_token_auth(data, headers)


def authenticate_as_metadata_says(oauth: OAuthClientProvider) -> None:
    """Make `oauth` present its client secret the way the server's metadata asks."""
    context = oauth.context
    state = {field.name: getattr(context, field.name) for field in fields(context)}
    oauth.context = _MetadataAuthContext(**state)


def _method_for(
    metadata: OAuthMetadata | None, info: OAuthClientInformationFull | None
) -> str | None:
    """The secret method to use instead of the record's, or None to keep the record's."""
    if metadata is None or info is None or not info.client_secret:
        return None
    if info.token_endpoint_auth_method not in (None, *_SECRET_METHODS):
        return None  # not a secret-based client (private_key_jwt, none): not ours to change
    supported = metadata.token_endpoint_auth_methods_supported or ["client_secret_basic"]
    if info.token_endpoint_auth_method in supported:
        return None
    return next((method for method in _SECRET_METHODS if method in supported), None)
