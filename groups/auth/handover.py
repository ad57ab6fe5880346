"""A sign-in that ends on the gateway itself: its pending flow kept in the store, finished by
whichever replica the person's browser reaches.

    choose_public_url("https://mcp.example.internal")    # at start-up (groups.config.public_url)
    handover = Handover.configured("linear", "alice", tokens, redactor)   # None: loopback
    link = await handover.begin(oauth, authorization_url)  # the link given to alice
    link = await handover.waiting_link(url)               # asked again meanwhile: the same
    flow = await find_flow(state)                         # her link's page, any replica
    secret = await bind_flow(state, flow)                 # she showed she is alice
    flow = await take_flow(state, secret)                 # the callback, in her browser
    await finish(oauth, flow, code)                       # alice's tokens, in alice's scope

Without a public URL a sign-in ends on a loopback port of the machine that started it,
as on a laptop (`groups.auth.oauth`). With one (`--public-url`, `DYNAMIC_MCP_PUBLIC_URL`:
`groups.config.public_url`),
the OAuth server sends the browser to `<public URL>/oauth/callback`, a route of the
gateway (`groups.auth.callback_route`), which the person's browser can reach wherever it is.

Guarantees:
- the link is the gateway's page (`<public URL>/oauth/sign-in?state=…`), which names the
  user and the upstream, and sends on to the OAuth server only a browser whose person
  showed they are the flow's user (their gateway token or JWT); the flow is then bound
  to that browser, and its callback from any other browser finishes nothing;
- the OAuth server's link carries a `state` and a PKCE challenge of our own; what
  finishing needs (the verifier, whose sign-in it is, the group and endpoint, the
  server's metadata) is kept in the store under that state for `CALLBACK_TIMEOUT`, so any
  replica finishes it and a restart does not lose it; a flow is taken from the store
  once, so a link finishes one sign-in at most;
- the tokens go to the scope of the user the flow was started for: nothing in the
  callback request names a user, so one user's browser can never put tokens in
  another's name by choosing a parameter;
- while a user's flow waits, their requests are given its link, from any replica;
- the verifier is known to the `Redactor` before it is stored (in Redis, the flow's area
  is encrypted like tokens: `groups.storage.shared.SECRET_AREAS`);
- a user whose access ended has their waiting flows dropped (`drop_waiting`): their links
  then finish nothing, and their next request starts a sign-in anew.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
from mcp.client.auth.oauth2 import PKCEParameters
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata

from groups.auth.step_up import StepUp
from groups.config.public_url import CALLBACK_PATH, SIGN_IN_PATH, callback_url
from groups.internals import code_exchange_request, take_code_response
from groups.storage.default import default_store

if TYPE_CHECKING:
    from groups.auth.oauth import GroupOAuth
    from groups.secrets import Redactor
    from groups.storage.store import Scope

__all__ = ["FLOW_AREA", "HandedOver", "Handover", "drop_waiting", "finish", "take_flow"]

FLOW_AREA = "oauth-pending"  # the store's area of flows waiting for a browser, by state
FLOW_LIFETIME = 300.0  # as long as a loopback sign-in waits (`CALLBACK_TIMEOUT`)
TOKEN_WAIT = 30.0  # the token endpoint's answer to a code
_WAITING = "dynamic-mcp-pending"  # in the user's token scope: their flow's state and link


class HandedOver(Exception):
    """The link went to the person; the gateway's route, not this flow, finishes the sign-in."""


def _not_handed_over(record: logging.LogRecord) -> bool:
    """The SDK logs whatever ends its flow as an error with a traceback: a flow handed over
    to the gateway's route ends as meant, and says so in one line (`groups.auth.sign_in`)."""
    return not (record.exc_info and isinstance(record.exc_info[1], HandedOver))


logging.getLogger("mcp.client.auth.oauth2").addFilter(_not_handed_over)


class Handover:
    """One user's sign-in to one group, ending on the gateway's route (see the module)."""

    def __init__(
        self, group: str, user: str | None, tokens: Scope, callback: str, redactor: Redactor
    ) -> None:
        self.group = group
        self.user = user  # a gateway's named user; None: the implicit one
        self.tokens = tokens  # the user's scope, where the flow's tokens will go
        self.callback = callback  # `<public URL>/oauth/callback`
        self._redactor = redactor

    def __repr__(self) -> str:
        return f"Handover({self.group!r}, user={self.user!r})"

    @classmethod
    def configured(
        cls, group: str, user: str | None, tokens: Scope, redactor: Redactor
    ) -> Handover | None:
        """The handover of `user`'s sign-ins to `group`, or None without a public URL."""
        callback = callback_url()
        return None if callback is None else cls(group, user, tokens, callback, redactor)

    async def begin(self, oauth: GroupOAuth, authorization_url: str) -> str:
        """Keep a new flow in the store for the sign-in `authorization_url` starts; the link
        to give the person (the same, with our own state and PKCE challenge)."""
        pkce = PKCEParameters.generate()
        self._redactor.add(pkce.code_verifier)
        state = secrets.token_urlsafe(32)
        parts = urlsplit(authorization_url)
        query = dict(parse_qsl(parts.query))
        query.update(state=state, code_challenge=pkce.code_challenge)
        authorize = parts._replace(query=urlencode(query)).geturl()
        # The person is given the gateway's page, which sends on to `authorize` only the
        # browser of someone who showed they are the flow's user (`callback_route`).
        link = f"{self.callback.removesuffix(CALLBACK_PATH)}{SIGN_IN_PATH}?state={state}"
        context = oauth.context
        flow = {
            "group": self.group,
            "user": self.user,
            "url": oauth.mcp_url,
            "authorize": authorize,
            "verifier": pkce.code_verifier,
            "scope": query.get("scope"),
            "protocol_version": context.protocol_version,
            "oauth_metadata": _dumped(context.oauth_metadata),
            "resource_metadata": _dumped(context.protected_resource_metadata),
        }
        await _flow_scope(state).put("flow", flow, collection="flow", ttl=FLOW_LIFETIME)
        waiting = {"state": state, "link": link}
        await self.tokens.put(
            _waiting_key(oauth.mcp_url), waiting, collection=_WAITING, ttl=FLOW_LIFETIME
        )
        return link

    async def waiting_link(self, url: str) -> str | None:
        """The link of this user's flow for `url` that still waits for the browser, if any."""
        waiting = await self.tokens.get(_waiting_key(url), collection=_WAITING)
        return str(waiting["link"]) if waiting is not None else None


async def find_flow(state: str) -> Mapping[str, Any] | None:
    """The flow kept under `state`, left in the store; None if there is none."""
    if not state or not all(c.isalnum() or c in "-_" for c in state):
        return None  # not a state of ours: it could not name a store entry anyway
    return await _flow_scope(state).get("flow", collection="flow")


async def bind_flow(state: str, flow: Mapping[str, Any]) -> str:
    """Bind the flow to one browser: the secret that browser must show at the callback
    (kept in the store only as its digest)."""
    secret = secrets.token_urlsafe(32)
    bound = {**flow, "browser": _digest(secret)}
    await _flow_scope(state).put("flow", bound, collection="flow", ttl=FLOW_LIFETIME)
    return secret


async def take_flow(state: str, browser: str | None) -> Mapping[str, Any] | None:
    """The flow kept under `state`, removed from the store (used once), if `browser` is
    the secret of the browser it was bound to; else None, the flow left for that browser.
    Of two callbacks taking it at once (two replicas, one link opened twice), exactly one
    gets it: the one whose removal, under the scope's lock, found it still there.

    Raises:
        WrongBrowserError: the flow is bound to another browser, or to none yet.
    """
    flow = await find_flow(state)
    if flow is None:
        return None
    bound = flow.get("browser")
    shown = _digest(browser) if browser else ""
    if not isinstance(bound, str) or not hmac.compare_digest(bound, shown):
        raise WrongBrowserError(str(flow["group"]), flow.get("user"))
    if not await _flow_scope(state).remove():
        return None
    return flow


class WrongBrowserError(Exception):
    """A callback from a browser the flow was not bound to (`take_flow`)."""

    def __init__(self, group: str, user: str | None) -> None:
        super().__init__(group, user)
        self.group, self.user = group, user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def finish(oauth: GroupOAuth, flow: Mapping[str, Any], code: str) -> None:
    """Exchange `code` for tokens as the flow's sign-in would have, and keep them in the
    user's scope (`oauth`'s: made for the flow's group, endpoint and user).

    Raises:
        OAuthTokenError: the token endpoint refused the code.
        httpx2.HTTPError: it could not be reached.
    """
    context = oauth.context
    async with context.lock:
        await oauth.take_up_stored()  # the user's client registration, from the sign-in
        if flow.get("oauth_metadata"):
            context.oauth_metadata = OAuthMetadata.model_validate(flow["oauth_metadata"])
        if flow.get("resource_metadata"):
            context.protected_resource_metadata = ProtectedResourceMetadata.model_validate(
                flow["resource_metadata"]
            )
        context.protocol_version = flow.get("protocol_version")
        if flow.get("scope"):
            context.client_metadata.scope = str(flow["scope"])
        request = await code_exchange_request(oauth, code, str(flow["verifier"]))
        async with httpx2.AsyncClient(timeout=TOKEN_WAIT) as http:
            response = await http.send(request)
        await take_code_response(oauth, response)  # stores the tokens
    await StepUp(oauth.tokens, oauth.mcp_url).forget()  # whatever scope it asked is granted
    await oauth.tokens.delete(_waiting_key(oauth.mcp_url), collection=_WAITING)


async def drop_waiting(tokens: Scope) -> int:
    """Drop every sign-in of `tokens`' user that waits for a browser: its flow (its link
    then finishes nothing) and the record that gives the link again; how many flows."""
    dropped = 0
    for key in await tokens.keys(_WAITING):
        waiting = await tokens.get(key, collection=_WAITING)
        state = waiting.get("state") if waiting is not None else None
        if isinstance(state, str) and await _flow_scope(state).remove():
            dropped += 1
        await tokens.delete(key, collection=_WAITING)
    return dropped


def _flow_scope(state: str) -> Scope:
    return default_store().scope(FLOW_AREA, state)


def _waiting_key(url: str) -> str:
    return f"{url.rstrip('/')}/pending"


def _dumped(model: Any) -> dict[str, Any] | None:
    return model.model_dump(mode="json", exclude_none=True) if model is not None else None
