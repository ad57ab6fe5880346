"""Enterprise-managed authorization (SEP-990): the organisation's identity provider, not a
consent screen per server, decides who may use an MCP server.

    id_token = id_token_source(server, variables, redactor, user)   # whose ID token, read when
    auth = enterprise_oauth(url, server, credentials, tokens, id_token, redactor)  # to transport

For `"oauth_grant": "id_jag"`. When the server wants a token:

1. the user's ID token is exchanged at the identity provider's token endpoint for an
   Identity Assertion JWT Authorization Grant (ID-JAG; RFC 8693 token exchange,
   `requested_token_type` id-jag, `audience` the authorization server's issuer, `resource`
   the MCP server's resource URL) — the identity provider's policy decides here;
2. the ID-JAG is presented to the authorization server's token endpoint (RFC 7523
   jwt-bearer grant) by this client, `oauth_client_id` with its secret as Basic
   credentials: the MCP SDK's `IdentityAssertionOAuthProvider`, which fetches the
   server's metadata from the issuer itself and sends the grant and secret nowhere else.

Guarantees:
- no person, no link: a token is fetched when the server refuses a request for want of
  one, and again (a new exchange, from the ID token as it is then) once it has expired or
  is refused; the token is kept in the group's store scope of the user it belongs to;
- the authorization server is `oauth_issuer` where it is set, and is then the only one
  that sees the grant and the secret; without it, the one the MCP server's protected
  resource metadata names (as SEP-990 has it; the identity provider still decides
  whether to issue a grant for that audience);
- ID tokens, grants, access tokens and secrets are known to the `Redactor` before any
  message could show them; a refusal says which side refused and which setting to look
  at, never a token.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx2
from fastmcp.client.auth.oauth import TokenStorageAdapter
from mcp.client.auth import OAuthFlowError, TokenStorage
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    create_oauth_metadata_request,
    extract_resource_metadata_from_www_auth,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    validate_metadata_issuer,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

from groups.config import UnresolvedError, interpolate
from groups.serving.id_tokens import id_token_of
from groups.upstream.failures import AuthorizationRefused

if TYPE_CHECKING:
    from groups.auth.credentials import ClientCredentials
    from groups.config import HttpServer, SseServer
    from groups.config.model import IdentityProvider
    from groups.secrets import Redactor
    from groups.storage.store import Scope

__all__ = [
    "ID_JAG",
    "ID_TOKEN",
    "TOKEN_EXCHANGE",
    "EnterpriseOAuth",
    "EnterpriseSignInError",
    "IdentityProviderClient",
    "enterprise_oauth",
    "id_token_source",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
EXCHANGE_TIMEOUT = 30.0  # one request to the identity provider
_NAMESPACE = "id-jag"  # the store keeps these tokens apart from a person's sign-in's


class EnterpriseSignInError(AuthorizationRefused):
    """No access token from the organisation's identity provider: why, and which setting."""


def enterprise_oauth(
    url: str,
    server: HttpServer | SseServer,
    credentials: ClientCredentials,
    tokens: Scope,
    id_token: Callable[[], str],
    redactor: Redactor,
) -> EnterpriseOAuth:
    """The `id_jag` OAuth for `server`'s endpoint `url`: `id_token` gives the ID token to
    exchange (`id_token_source`), the token is kept in `tokens`.

    The config's model makes sure an `id_jag` entry has `oauth_idp`, a client id and a
    client secret (`credentials.secret`, resolved).
    """
    if server.oauth_idp is None or credentials.secret is None:
        raise TypeError("an id_jag entry without oauth_idp or a secret: the model forbids it")
    idp = IdentityProviderClient(
        server.oauth_idp, credentials.idp_secret, id_token=id_token, redactor=redactor
    )
    return EnterpriseOAuth(url, server, idp, tokens, credentials.secret)


def id_token_source(
    server: HttpServer | SseServer,
    variables: Callable[[], Mapping[str, str]],
    redactor: Redactor,
    user: str | None,
) -> Callable[[], str]:
    """Where `user`'s ID token comes from, read at each exchange: a gateway's named user's
    is the organisation's JWT they last signed in with (`groups.serving.id_tokens`); the
    implicit user's is `oauth_idp.id_token`.
    """
    if user is not None:

        def named() -> str:
            token = id_token_of(user)
            if token is None:
                raise EnterpriseSignInError(
                    f"user {user!r} has signed in with no ID token of the organisation that "
                    "is still good: oauth_grant id_jag on a gateway needs users signed in "
                    "with the organisation's JWTs (--jwks-url or --jwt-public-key)",
                    permanent=True,
                )
            return token

        return named

    def implicit() -> str:
        written = server.oauth_idp.id_token if server.oauth_idp is not None else None
        if written is None:
            raise EnterpriseSignInError(
                "oauth_idp.id_token is not set: name the ID token to exchange, as "
                "${VAR} or ${file:PATH} (on a gateway, each user's JWT is theirs)",
                permanent=True,
            )
        try:
            token = interpolate(written, variables(), redactor).strip()
        except UnresolvedError as exc:
            raise EnterpriseSignInError(f"oauth_idp.id_token: {exc}") from None
        if not token:
            raise EnterpriseSignInError("oauth_idp.id_token is empty")
        return token

    return implicit


class IdentityProviderClient:
    """dynamic-mcp as a client of the organisation's identity provider: trades one user's
    ID token for grants (ID-JAGs)."""

    def __init__(
        self,
        settings: IdentityProvider,
        secret: str | None,
        *,
        id_token: Callable[[], str],
        redactor: Redactor,
    ) -> None:
        self._settings = settings
        self._secret = secret
        self._id_token = id_token  # read at each exchange: a fresh one may have come
        self._redactor = redactor
        self._token_endpoint = settings.token_endpoint

    def __repr__(self) -> str:
        return f"IdentityProviderClient({self._settings.issuer or self._settings.token_endpoint})"

    async def grant_for(self, audience: str, resource: str, scope: str | None) -> str:
        """An ID-JAG for `audience` (an authorization server's issuer) and `resource`.

        Raises:
            EnterpriseSignInError: no ID token, or the identity provider refused or could
                not be reached.
        """
        id_token = self._id_token()
        self._redactor.add(id_token)
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "requested_token_type": ID_JAG,
            "audience": audience,
            "resource": resource,
            "subject_token": id_token,
            "subject_token_type": ID_TOKEN,
        }
        if scope:
            form["scope"] = scope
        headers = {"Accept": "application/json"}
        if self._secret is not None:  # RFC 6749 §2.3.1: every server takes Basic
            pair = f"{quote(self._settings.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self._settings.client_id
        try:
            async with httpx2.AsyncClient(timeout=EXCHANGE_TIMEOUT) as http:
                endpoint = await self._endpoint(http)
                response = await http.post(endpoint, data=form, headers=headers)
        except httpx2.HTTPError as exc:
            raise EnterpriseSignInError(
                f"cannot reach the identity provider (oauth_idp): {type(exc).__name__}"
            ) from None
        answer = _json(response)
        if response.status_code != 200:
            raise EnterpriseSignInError(
                f"the identity provider (oauth_idp) refused to issue a grant for {audience}: "
                f"HTTP {response.status_code} {_error(answer)}"
            )
        grant = answer.get("access_token")
        if answer.get("issued_token_type") != ID_JAG or not isinstance(grant, str) or not grant:
            raise EnterpriseSignInError(
                "the identity provider (oauth_idp) answered the token exchange without an "
                f"ID-JAG (issued_token_type {answer.get('issued_token_type')!r})"
            )
        self._redactor.add(grant)
        return grant

    async def _endpoint(self, http: httpx2.AsyncClient) -> str:
        """The token endpoint: configured, or from the issuer's metadata (RFC 8414, then
        OpenID Connect discovery), found once."""
        if self._token_endpoint is not None:
            return self._token_endpoint
        issuer = self._settings.issuer or ""
        for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, issuer):
            ok, metadata = await handle_auth_metadata_response(await http.get(url))
            if not ok:
                break
            if metadata is not None:
                validate_metadata_issuer(metadata, issuer)
                self._token_endpoint = str(metadata.token_endpoint)
                return self._token_endpoint
        raise EnterpriseSignInError(
            f"the identity provider's issuer {issuer} (oauth_idp.issuer) publishes no "
            "metadata naming its token endpoint: give oauth_idp.token_endpoint"
        )


class EnterpriseOAuth(httpx2.Auth):
    """The `httpx2.Auth` of one user's requests to one endpoint of an `id_jag` group."""

    requires_response_body = True

    def __init__(
        self,
        url: str,
        server: HttpServer | SseServer,
        idp: IdentityProviderClient,
        tokens: Scope,
        secret: str,
    ) -> None:
        self.mcp_url = url
        self._server = server
        self._idp = idp
        self._secret = secret
        self._scope = " ".join(server.oauth_scopes) if server.oauth_scopes else None
        self._storage = _StoredTokens(TokenStorageAdapter(tokens, url.rstrip("/"), _NAMESPACE))
        issuer = server.oauth_issuer
        self._sdk = self._provider(issuer) if issuer is not None else None

    def __repr__(self) -> str:
        return f"EnterpriseOAuth({self.mcp_url!r})"

    @property
    def holds_token(self) -> bool:
        """Whether an access token was fetched or found in the store."""
        return self._storage.seen

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        answered: httpx2.Response | None = None
        tried: str | None = None  # the Authorization `answered` was the answer to
        if self._sdk is None:
            # Which authorization server: the one the resource metadata names, asked
            # only once the server has refused us (a token stored before may still do).
            stored = await self._storage.get_tokens()
            if stored is not None and (stored.expires_in is None or stored.expires_in > 0):
                tried = request.headers["Authorization"] = f"Bearer {stored.access_token}"
            answered = yield request
            if answered.status_code != 401:
                return
            discovery = _IssuerDiscovery(answered, self.mcp_url)
            async with aclosing(discovery.requests()) as asks:
                found: Any = None
                while True:
                    try:
                        asked = await asks.asend(found)
                    except StopAsyncIteration:
                        break
                    found = yield asked
            self._sdk = self._sdk or self._provider(discovery.issuer)
        async with aclosing(self._sdk.async_auth_flow(request)) as flow:
            response: Any = None
            while True:
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return
                except OAuthFlowError as exc:  # the SDK's leg: the authorization server's
                    raise EnterpriseSignInError(
                        "the authorization server did not take the identity provider's grant "
                        f"from oauth_client_id {self._server.oauth_client_id!r}: {exc}"
                    ) from None
                if answered is not None and outgoing is request:
                    if outgoing.headers.get("Authorization") == tried:  # refused already
                        response, answered = answered, None
                        continue
                    answered = None
                response = yield outgoing

    def _provider(self, issuer: str) -> IdentityAssertionOAuthProvider:
        async def grant(audience: str, resource: str) -> str:
            return await self._idp.grant_for(audience, resource, self._scope)

        return IdentityAssertionOAuthProvider(
            server_url=self.mcp_url,
            storage=self._storage,
            client_id=self._server.oauth_client_id or "",
            client_secret=self._secret,
            issuer=issuer,
            assertion_provider=grant,
            scope=self._scope,
            # RFC 6749 §2.3.1: every authorization server takes a secret as Basic.
            token_endpoint_auth_method="client_secret_basic",
        )


class _IssuerDiscovery:
    """The authorization server a refused request's resource metadata names (RFC 9728:
    where the 401 points first, then the well-known URLs)."""

    def __init__(self, refused: httpx2.Response, mcp_url: str) -> None:
        self._refused = refused
        self._mcp_url = mcp_url
        self.issuer = ""

    async def requests(self) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The metadata requests, until one answers; `issuer` is then set.

        Raises:
            EnterpriseSignInError: no metadata, or metadata for another resource.
        """
        named = extract_resource_metadata_from_www_auth(self._refused)
        for url in build_protected_resource_metadata_discovery_urls(named, self._mcp_url):
            metadata = await handle_protected_resource_response(
                (yield create_oauth_metadata_request(url))
            )
            if metadata is None:
                continue
            resource = resource_url_from_server_url(self._mcp_url)
            if not check_resource_allowed(resource, str(metadata.resource)):
                raise EnterpriseSignInError(
                    f"the server's resource metadata is for {metadata.resource}, not {resource}"
                )
            self.issuer = str(metadata.authorization_servers[0])
            return
        raise EnterpriseSignInError(
            "the server publishes no resource metadata naming its authorization server: "
            "set oauth_issuer to the authorization server's issuer"
        )


class _StoredTokens(TokenStorage):
    """FastMCP's store adapter, giving the SDK a token's remaining lifetime (the adapter
    keeps its absolute expiry: the stored `expires_in` is the one it was issued with)."""

    def __init__(self, adapter: TokenStorageAdapter) -> None:
        self._adapter = adapter
        self.seen = False

    async def get_tokens(self) -> OAuthToken | None:
        tokens = await self._adapter.get_tokens()
        if tokens is None:
            return None
        self.seen = True
        expires_at = await self._adapter.get_token_expiry()
        if expires_at is not None:
            left = max(0, int(expires_at - time.time()))
            tokens = tokens.model_copy(update={"expires_in": left})
        return tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.seen = True
        await self._adapter.set_tokens(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return None  # the client is pre-registered: its id and secret are configured

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        return None


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _error(answer: dict[str, Any]) -> str:
    """An OAuth error answer (RFC 6749 §5.2) in a few words: its code and description."""
    code = answer.get("error")
    if not isinstance(code, str):
        return "(no OAuth error given)"
    described = answer.get("error_description")
    return f"{code}: {described}" if isinstance(described, str) and described else code
