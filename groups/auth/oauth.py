"""OAuth for remote groups: found from a 401, signed in apart from any request, tokens kept.

    tokens = oauth_tokens("github", redactor)          # groups.auth.tokens: the group's store
    auth = GroupOAuth(url, server, tokens)              # one per group and endpoint, shared

FastMCP's OAuth client does the protocol: discovery from the 401 (RFC 9728 protected
resource metadata, RFC 8414 server metadata), dynamic client registration, a
pre-registered `oauth_client_id` (its `oauth_client_secret` sent as the server's metadata
asks: `groups.auth.credentials`) or a client ID metadata document, PKCE, the loopback
callback, refresh. It keeps tokens in the store we hand it as `token_storage`
(`groups.storage.store`), keyed by endpoint URL, so each endpoint a group has pointed at
holds its own tokens inside the group's one file. The browser sign-in runs apart
(`groups.auth.sign_in`), a service account's tokens come from `groups.auth.machine`.
What is ours is when to refresh, how processes share the file, and how a person is asked.

Guarantees:
- a token is sent only to the endpoint it was stored for: the store keys it by URL, and a
  file of the older format is carried over only where its `server` names this endpoint
  (one without `server` is never sent anywhere);
- a session's requests never wait for a person: where FastMCP would open a browser and wait
  for the callback, the session's `GroupOAuth` raises `AuthorizationRequired`, and the group
  starts a `SignIn` instead, at most one at a time, which gives the link at once, writes it
  to stderr, opens a browser where there is one (`webbrowser`, which honours $BROWSER), and
  waits up to `CALLBACK_TIMEOUT` for the callback;
- a request with a fresh token is signed and sent without touching a file or a lock;
- tokens are refreshed before they expire (`REFRESH_MARGIN`), and a 401 mid-session is
  answered with a refresh before any sign-in; a refresh holds the file's lock, and first
  takes up what another process or sign-in stored (a rotated refresh token is never
  spent twice); tokens signed out meanwhile (`dynamic-mcp auth --logout`) are dropped,
  never refreshed or written back;
- configured `oauth_scopes` are registered as well as asked for, beside the server's;
- refresh tokens as SEP-2207 has it: the client registers with the `refresh_token` grant
  (FastMCP's client metadata), and `offline_access` is asked for exactly where the
  authorization server's metadata lists it in `scopes_supported` (the SDK adds it there;
  one in `oauth_scopes` is dropped elsewhere), with `prompt=consent` beside it (OpenID
  Connect Core §11);
- a 403 asking for a scope the token lacks leads to one sign-in for the union of the
  scopes (the SDK's step-up; the challenge kept in the store until a sign-in answers it,
  `groups.auth.step_up`); a 403 for a scope already granted is passed on, not signed in;
- access and refresh tokens and client secrets are known to the `Redactor` from the moment
  they are read or received: no log line, error or result shows them.
"""

from __future__ import annotations

import logging
import threading
import time
import webbrowser
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
from fastmcp.client.auth import OAuth
from fastmcp.client.auth.oauth import ClientNotFoundError
from mcp.client.auth import AuthorizationCodeResult
from mcp.client.auth.utils import create_client_registration_request, union_scopes
from mcp.shared.auth import OAuthToken

from groups.auth.credentials import ClientCredentials, authenticate_as_metadata_says
from groups.auth.handover import HandedOver, Handover
from groups.auth.loopback import loopback_callback
from groups.auth.step_up import StepUp, wants_more_scope
from groups.auth.tokens import carry_over_legacy
from groups.internals import redirect_to, refresh_request, take_refresh_response
from groups.storage.store import Scope
from groups.upstream.failures import AuthorizationRequired

if TYPE_CHECKING:
    from groups.config import HttpServer, SseServer

__all__ = [
    "CALLBACK_TIMEOUT",
    "AuthorizationRequired",
    "GroupOAuth",
]

logger = logging.getLogger(__name__)

CALLBACK_TIMEOUT = 300.0  # how long a sign-in waits for the person in the browser
REFRESH_MARGIN = 60.0  # refresh an access token this long before it expires (at most)


class GroupOAuth(OAuth):
    """FastMCP's OAuth client for one group's endpoint, its tokens in the group's store scope.

    `interactive=False` (the sessions', one per group and endpoint in a process): where a
    person is needed, raise `AuthorizationRequired` and remember it in `needs_sign_in`.
    `interactive=True` (a `SignIn`'s): hand the link to `on_link`, open a browser (unless
    `browser=False`: a gateway's user signs in on their own machine), and wait for the
    callback.
    """

    def __init__(
        self,
        url: str,
        server: HttpServer | SseServer,
        tokens: Scope,
        *,
        interactive: bool = False,
        on_link: Any = None,
        callback_port: int | None = None,
        credentials: ClientCredentials | None = None,
        browser: bool = True,
        handover: Handover | None = None,
    ) -> None:
        secret = credentials.secret if credentials is not None else None
        super().__init__(
            mcp_url=url,
            scopes=server.oauth_scopes,
            client_name="dynamic-mcp",
            client_id=server.oauth_client_id,
            client_secret=secret,
            # RFC 6749 §2.3.1: every server takes a secret as Basic credentials; a server
            # whose metadata lists only the form gets it there (`authenticate_as_metadata_says`).
            additional_client_metadata={"token_endpoint_auth_method": "client_secret_basic"}
            if secret
            else None,
            client_metadata_url=server.oauth_client_metadata_url,
            token_storage=tokens,
            callback_host="127.0.0.1",
            # The port the client was registered with: a sign-in that redirects
            # elsewhere is refused, and would register the client anew.
            callback_port=server.oauth_callback_port or callback_port,
            callback_timeout=CALLBACK_TIMEOUT,
        )
        if handover is not None:  # the sign-in ends on the gateway's route, not on loopback
            redirect_to(self, handover.callback)
        self.tokens = tokens
        self._handover = handover
        self._configured_scopes = " ".join(server.oauth_scopes or []) or None
        self._interactive = interactive
        self._on_link = on_link
        self._browser = browser  # False: the link goes to a gateway's user, not this machine
        self._loaded = False
        self._registered_now = False  # a client registered in this flow is known to the server
        self.needs_sign_in = False
        self._step_up = StepUp(tokens, self.mcp_url)
        authenticate_as_metadata_says(self)

    def __repr__(self) -> str:
        return f"GroupOAuth({self.tokens.prefix!r}, interactive={self._interactive})"

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if not self._loaded:
            async with self.context.lock:
                await carry_over_legacy(self.tokens, self.mcp_url)
                await self._load_stored()
        # A sign-in answers a call for more scope that a refused request kept (`StepUp`).
        tokens = self.context.current_tokens
        refusal = await self._step_up.asked(tokens, request) if self._interactive else None
        refused = None
        if refusal is None and self._fresh():
            refused = self.context.current_tokens
            response = yield self._signed(request)
            if wants_more_scope(response, refused):
                refusal = await self._more_scope_needed(response)
                if refusal is None:  # another sign-in got it: the token it stored serves
                    response = yield self._signed(request)
            if refusal is None and response.status_code != 401:
                return
        if refusal is not None:
            # The SDK's step-up asks for the union of the scopes; a session's OAuth raises
            # `AuthorizationRequired` there, with the link for the larger scope.
            async with aclosing(self._sdk_flow(request, refusal)) as flow:
                response = None
                while True:
                    try:
                        outgoing = await flow.asend(response)  # type: ignore[arg-type]
                    except StopAsyncIteration:
                        break
                    response = yield outgoing
            await self._step_up.forget()
            return
        # No fresh token, or it was refused: what is stored or a refresh may serve.
        self.needs_sign_in = False
        async with aclosing(self._catch_up(refused)) as flow:
            response = None
            while True:
                try:
                    outgoing = await flow.asend(response)  # type: ignore[arg-type]
                except StopAsyncIteration:
                    break
                response = yield outgoing
        if self._fresh() and self.context.current_tokens is not refused:
            response = yield self._signed(request)
            if response.status_code != 401:
                return
        # Nothing stored serves: FastMCP's whole flow (discovery, registration, a person).
        async with aclosing(self._sdk_flow(request)) as flow:
            response = None
            while True:
                try:
                    outgoing = await flow.asend(response)  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
                response = yield outgoing

    async def _sdk_flow(
        self, request: httpx2.Request, answered: httpx2.Response | None = None
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """FastMCP's (and the SDK's) flow for `request`, where `answered` is the server's
        answer to `request` already in hand (a refusal to step up from): the SDK is given
        it instead of `request` being sent again."""
        async with aclosing(super().async_auth_flow(request)) as flow:
            response = None
            while True:
                try:
                    outgoing = await flow.asend(response)  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
                if answered is not None and outgoing is request:
                    response, answered = answered, None
                    continue
                response = yield self._registering_configured_scopes(outgoing)

    async def _more_scope_needed(self, response: httpx2.Response) -> httpx2.Response | None:
        """`response` (a 403 for more scope) to step up from, or None when the store holds a
        token with that scope already (signed in meanwhile, elsewhere): it is taken up."""
        async with self.context.lock:
            await self._load_stored()
        if not wants_more_scope(response, self.context.current_tokens):
            return None
        await self._step_up.remember(response)
        return response

    async def _catch_up(
        self, refused: OAuthToken | None
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Take up stored tokens, refreshing them if they are not fresh, holding the file.

        `refused`: the tokens a server just refused, which must not be kept.
        """
        async with self.context.lock, self.tokens.locked():
            await self._load_stored()
            tokens = self.context.current_tokens
            if tokens is None:
                return  # never signed in, or signed out meanwhile: nothing to write back
            if self._fresh() and tokens != refused:
                return  # another session, process or sign-in stored fresh ones
            if not tokens.refresh_token or self.context.client_info is None:
                self.context.clear_tokens()
                return
            response = yield await refresh_request(self)
            if not await take_refresh_response(self, response):
                logger.info("%s: the refresh token was refused", self.tokens.prefix)

    async def _load_stored(self) -> None:
        """Take up the store's tokens and registration for this endpoint."""
        adapter = self.token_storage_adapter
        self.context.current_tokens = await adapter.get_tokens()
        # A pre-registered client needs no stored registration (FastMCP stores it later).
        self.context.client_info = await adapter.get_client_info() or self.context.client_info
        self.context.token_expiry_time = await adapter.get_token_expiry()
        self._loaded = True

    def _fresh(self) -> bool:
        """Whether the current access token outlives the refresh margin."""
        tokens = self.context.current_tokens
        if tokens is None or not tokens.access_token:
            return False
        expiry = self.context.token_expiry_time
        return expiry is None or time.time() < expiry - _margin(tokens)

    def _signed(self, request: httpx2.Request) -> httpx2.Request:
        tokens = self.context.current_tokens
        if tokens is not None:
            request.headers["Authorization"] = f"Bearer {tokens.access_token}"
        return request

    def _registering_configured_scopes(self, outgoing: httpx2.Request) -> httpx2.Request:
        """The SDK's registration request, asking for the configured scopes as well.

        The SDK sets the scope to what the server challenged with just before it registers
        the client; the configured scopes are asked for at authorization (`redirect_handler`)
        too, and a server refuses a scope the client was not registered with.
        """
        if outgoing.method != "POST" or self.context.client_info is not None:
            return outgoing
        metadata = self.context.client_metadata
        base = self.context.get_authorization_base_url(self.context.server_url)
        oauth_metadata = self.context.oauth_metadata
        if outgoing.url != create_client_registration_request(oauth_metadata, metadata, base).url:
            return outgoing
        self._registered_now = True
        scope = union_scopes(metadata.scope, self._configured_scopes)
        scope = self._offline_access_where_listed(scope)
        if scope == metadata.scope:
            return outgoing
        metadata.scope = scope
        return create_client_registration_request(oauth_metadata, metadata, base)

    async def redirect_handler(self, authorization_url: str) -> None:
        authorization_url = self._asking_configured_scopes(authorization_url)
        if not self._interactive:
            self.needs_sign_in = True
            raise AuthorizationRequired(authorization_url)
        if not self._registered_now:
            await _check_client_known(authorization_url)
        if self._handover is not None:
            authorization_url = await self._handover.begin(self, authorization_url)
        if self._on_link is not None:
            self._on_link(authorization_url)
        if not self._browser or self._handover is not None:
            return
        # webbrowser waits for a browser command to exit, and a browser may only exit once
        # the callback, which starts after this returns, has answered: do not wait.
        threading.Thread(target=webbrowser.open, args=(authorization_url,), daemon=True).start()

    async def callback_handler(self) -> AuthorizationCodeResult:
        """Wait for the browser on a loopback port (`groups.auth.loopback`), unless the
        gateway's route finishes this sign-in (`groups.auth.handover`): then this flow ends
        here."""
        if self._handover is not None:
            raise HandedOver(self._handover.group)
        return await loopback_callback(self.redirect_port, self.mcp_url, wait=CALLBACK_TIMEOUT)

    async def take_up_stored(self) -> None:
        """Take up the store's tokens and registration for this endpoint (hold the lock)."""
        await self._load_stored()

    def _asking_configured_scopes(self, authorization_url: str) -> str:
        """The link with the configured scopes in its `scope` (a pre-registered client is
        never registered, so the link is the first place they can go), and `offline_access`
        only where the authorization server lists it (`_offline_access_where_listed`)."""
        parts = urlsplit(authorization_url)
        query = dict(parse_qsl(parts.query))
        scope = union_scopes(query.get("scope"), self._configured_scopes)
        scope = self._offline_access_where_listed(scope)
        if scope == query.get("scope"):
            return authorization_url
        query.pop("scope", None)
        if scope:
            query["scope"] = scope
        # OpenID Connect Core §11: offline_access is ignored unless consent is asked for,
        # as the SDK does when the scope it builds has it.
        if "offline_access" in (scope or "").split():
            query["prompt"] = "consent"
        elif query.get("prompt") == "consent":
            del query["prompt"]
        self.context.client_metadata.scope = scope
        return parts._replace(query=urlencode(query)).geturl()

    def _offline_access_where_listed(self, scope: str | None) -> str | None:
        """`scope` without `offline_access` unless the authorization server's metadata lists
        it in `scopes_supported` (SEP-2207): a server that does not list it may refuse the
        whole request for it. Configured, or carried from an older sign-in's scope, it is
        dropped; where the server lists it the SDK has added it already."""
        if scope is None or "offline_access" not in scope.split():
            return scope
        metadata = self.context.oauth_metadata
        if metadata is not None and "offline_access" in (metadata.scopes_supported or []):
            return scope
        logger.info(
            "%s: not asking for offline_access: the authorization server does not list it",
            self.tokens.prefix,
        )
        return " ".join(name for name in scope.split() if name != "offline_access") or None


async def _check_client_known(authorization_url: str) -> None:
    """Ask the authorization page before the person does: a server that forgot a stored
    registration answers 400 (FastMCP then registers again, once). Not for a client
    registered in the same flow: the server knows it, and the check is one more
    authorization request the server sees."""
    async with httpx2.AsyncClient() as http:
        response = await http.get(authorization_url, follow_redirects=False)
    if response.status_code == 400:
        raise ClientNotFoundError("the OAuth server no longer knows this client")
    if response.status_code not in (200, 302, 303, 307, 308):
        raise RuntimeError(f"the authorization page answers HTTP {response.status_code}")


def _margin(token: OAuthToken) -> float:
    """How long before expiry to refresh: a minute, or a third of a short token's life."""
    return min(REFRESH_MARGIN, (token.expires_in or 0) / 3)
