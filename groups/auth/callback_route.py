"""The gateway's OAuth callback, `GET <public URL>/oauth/callback`: where a person's browser
ends a sign-in, on whichever replica it reaches.

    add_callback_route(server, registry)     # server.py, when the gateway has a public URL

Guarantees:
- every request is answered with a short plain-text page for the person (never a
  traceback), and no page or log line shows the code, the state, the verifier or a token;
- a flow is finished at most once (`groups.auth.handover.take_flow`), into the tokens of
  the user it was started for, with the group's config as it is now; a group removed
  meanwhile, a refused or unknown flow each say so, and that a new call gives a new link;
- it needs no bearer token, since a browser sends none: what a request can do is bounded
  by the unguessable state, used once, and the PKCE verifier only the store holds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx2
from mcp.client.auth.exceptions import OAuthFlowError, OAuthTokenError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from groups.auth.handover import take_flow
from groups.config import UnresolvedError
from groups.config.public_url import CALLBACK_PATH
from groups.errors import StoreUnavailableError, UnknownGroupError

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from groups.registry import Registry

__all__ = ["add_callback_route"]

logger = logging.getLogger(__name__)

_AGAIN = "Call the tool again for a new sign-in link."


def add_callback_route(server: FastMCP, registry: Registry) -> None:
    """Serve the OAuth callback of sign-ins that end on this gateway (see the module)."""

    @server.custom_route(CALLBACK_PATH, methods=["GET"])
    async def oauth_callback(request: Request) -> Response:
        return await _finish(request, registry)


async def _finish(request: Request, registry: Registry) -> Response:
    params = request.query_params
    code = params.get("code")
    if code:
        registry.redactor.add(code)
    try:
        flow = await take_flow(params.get("state", ""))
    except StoreUnavailableError as exc:
        logger.warning("a sign-in could not be finished: %s", exc)
        return _page(503, f"The sign-in cannot be finished now: {exc}. Open the link again soon.")
    if flow is None:
        return _page(400, f"This sign-in link is unknown, expired or used already. {_AGAIN}")
    group, user = str(flow["group"]), flow.get("user")
    whom = f" as {user}" if user is not None else ""
    if params.get("error") or not code:
        refusal = params.get("error") or "no code was given"
        logger.warning("group %s: the sign-in%s was refused: %s", group, whom, refusal)
        return _page(400, f"The sign-in to {group}{whom} was refused ({refusal}). {_AGAIN}")
    try:
        upstream = registry.upstream(group)
    except UnknownGroupError:
        return _page(404, f"The group {group} is no longer served here.")
    try:
        await upstream.sign_in.finish(flow, code)
    # Each is a sign-in that did not finish, said to the person; none is a bug of ours.
    except (OAuthFlowError, OAuthTokenError, httpx2.HTTPError, UnresolvedError) as exc:
        cause = registry.redactor.scrub(str(exc) or type(exc).__name__)
        logger.warning("group %s: the sign-in%s did not finish: %s", group, whom, cause)
        return _page(502, f"The sign-in to {group}{whom} did not finish: {cause}. {_AGAIN}")
    except StoreUnavailableError as exc:
        logger.warning("group %s: the sign-in%s was not kept: %s", group, whom, exc)
        return _page(503, f"The sign-in to {group}{whom} could not be kept: {exc}. {_AGAIN}")
    logger.warning("group %s: signed in%s", group, whom)
    return _page(200, f"Signed in to {group}{whom}. You can close this page and call again.")


def _page(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status)
