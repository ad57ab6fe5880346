"""The gateway's sign-in routes, on whichever replica a person's browser reaches:
`<public URL>/oauth/sign-in`, the page a sign-in link opens, and `/oauth/callback`, where
the OAuth server sends the browser back.

    add_callback_route(server, registry)     # server.py, when the gateway has a public URL

Guarantees:
- the page names the gateway user the sign-in is for and the upstream it connects, and
  asks whoever opened it to show they are that user: their gateway token (a users file,
  or the one shared token) or a JWT of theirs; only then is the flow bound to this
  browser (an HttpOnly cookie, `SameSite=Lax`) and the browser sent to the OAuth server;
  a gateway with no auth at all (loopback) binds the browser that asks;
- a callback finishes a flow only from the browser it was bound to, at most once
  (`groups.auth.handover.take_flow`), into the tokens of the user it was started for,
  with the group's config as it is now; from another browser it finishes nothing and
  says where to finish; a group removed meanwhile, a refused or unknown flow each say
  so, and that a new call gives a new link;
- every request is answered with a short page for the person (never a traceback), and
  no page or log line shows the code, the state, the verifier, a cookie or a token; the
  routes need no bearer token, since a browser sends none.
"""

from __future__ import annotations

import hashlib
import logging
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2
from mcp.client.auth.exceptions import OAuthFlowError, OAuthTokenError
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from groups.access import User, user_of
from groups.auth.handover import WrongBrowserError, bind_flow, find_flow, take_flow
from groups.config import UnresolvedError
from groups.config.public_url import CALLBACK_PATH, SIGN_IN_PATH
from groups.errors import StoreUnavailableError, UnknownGroupError
from groups.serving.audit import audit
from groups.serving.tracing import span

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from groups.registry import Registry

__all__ = ["add_callback_route"]

logger = logging.getLogger(__name__)

_AGAIN = "Call the tool again for a new sign-in link."
BROWSER_COOKIE = "dynamic-mcp-sign-in"  # + the flow's: the secret of its browser
COOKIE_LIFETIME = 600  # seconds: past the flow's own lifetime


def add_callback_route(server: FastMCP, registry: Registry) -> None:
    """Serve the sign-in page and the OAuth callback of this gateway (see the module)."""

    @server.custom_route(SIGN_IN_PATH, methods=["GET", "POST"])
    async def sign_in_page(request: Request) -> Response:
        return await _sign_in_page(request, server)

    @server.custom_route(CALLBACK_PATH, methods=["GET"])
    async def oauth_callback(request: Request) -> Response:
        return await _finish(request, registry)


async def _sign_in_page(request: Request, server: FastMCP) -> Response:
    """The page of a sign-in link: who it is for, proof of it, then the OAuth server."""
    form = await request.form() if request.method == "POST" else {}
    state = str(form.get("state") or request.query_params.get("state", ""))
    try:
        flow = await find_flow(state)
    except StoreUnavailableError as exc:
        return _page(503, f"The sign-in cannot go on now: {exc}. Open the link again soon.")
    if flow is None:
        return _page(400, f"This sign-in link is unknown, expired or used already. {_AGAIN}")
    user, auth = flow.get("user"), server.auth
    if request.method == "GET":
        return _form(flow, state, asks_proof=auth is not None)
    if auth is not None:
        verified = await auth.verify_token(str(form.get("token", "")).strip())
        shown = user_of(verified) if verified is not None else None
        if verified is None or (shown.name if shown is not None else None) != user:
            whose = f"gateway user {user}" if user is not None else "this gateway's users"
            group = flow["group"]
            logger.warning("group %s: a sign-in for %s refused: not their token", group, whose)
            audit.record("sign_in_started", user=_named(user), outcome="refused", group=group)
            return _form(flow, state, asks_proof=True, refused=True)
    audit.record("sign_in_started", user=_named(user), outcome="ok", group=str(flow["group"]))
    try:
        secret = await bind_flow(state, flow)
    except StoreUnavailableError as exc:
        return _page(503, f"The sign-in cannot go on now: {exc}. Open the link again soon.")
    answer = RedirectResponse(str(flow["authorize"]), status_code=303)
    answer.set_cookie(
        _cookie(state),
        secret,
        max_age=COOKIE_LIFETIME,
        path="/oauth",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",  # sent back on the OAuth server's redirect, a top-level GET
    )
    return answer


def _named(user: str | None) -> User | None:
    return User(user) if user is not None else None


def _cookie(state: str) -> str:
    """The cookie of one flow's browser: one per flow, so two sign-ins at once in one
    browser (two groups) each keep theirs."""
    return f"{BROWSER_COOKIE}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def _form(flow: Any, state: str, *, asks_proof: bool, refused: bool = False) -> Response:
    user, group = flow.get("user"), str(flow["group"])
    upstream = urlsplit(str(flow.get("url", ""))).hostname or group
    who = f"gateway user <b>{escape(user)}</b>" if user is not None else "this gateway"
    proof = (
        "<p><label>Your gateway token (or sign-in JWT): "
        '<input type="password" name="token" autocomplete="off" required></label></p>'
        if asks_proof
        else ""
    )
    wrong = "<p><b>That is not the token of this user.</b></p>" if refused else ""
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in to {escape(group)}</title></head>
<body>
<h1>Connect {escape(group)} ({escape(upstream)})</h1>
<p>This sign-in is for {who}. Your account at {escape(upstream)} will be used for their calls.
If you are not them, close this page.</p>
{wrong}
<form method="post">
<input type="hidden" name="state" value="{escape(state)}">
{proof}
<p><button type="submit">Continue to {escape(upstream)}</button></p>
</form>
</body></html>
"""
    return HTMLResponse(body, status_code=403 if refused else 200)


async def _finish(request: Request, registry: Registry) -> Response:
    params = request.query_params
    code = params.get("code")
    if code:
        registry.redactor.add(code)
    try:
        state = params.get("state", "")
        flow = await take_flow(state, request.cookies.get(_cookie(state)))
    except StoreUnavailableError as exc:
        logger.warning("a sign-in could not be finished: %s", exc)
        return _page(503, f"The sign-in cannot be finished now: {exc}. Open the link again soon.")
    except WrongBrowserError as exc:
        whom = f" as {exc.user}" if exc.user is not None else ""
        logger.warning("group %s: a sign-in%s came back in another browser", exc.group, whom)
        return _page(
            403,
            f"This sign-in to {exc.group}{whom} was not started in this browser: finish it "
            "in the browser where its link was opened.",
        )
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
        with span("sign-in", group=group, user=user):
            await upstream.sign_in.finish(flow, code)
    # Each is a sign-in that did not finish, said to the person; none is a bug of ours.
    except (OAuthFlowError, OAuthTokenError, httpx2.HTTPError, UnresolvedError) as exc:
        cause = registry.redactor.scrub(str(exc) or type(exc).__name__)
        logger.warning("group %s: the sign-in%s did not finish: %s", group, whom, cause)
        audit.record("sign_in_finished", user=_named(user), outcome="error", group=group)
        return _page(502, f"The sign-in to {group}{whom} did not finish: {cause}. {_AGAIN}")
    except StoreUnavailableError as exc:
        logger.warning("group %s: the sign-in%s was not kept: %s", group, whom, exc)
        return _page(503, f"The sign-in to {group}{whom} could not be kept: {exc}. {_AGAIN}")
    logger.warning("group %s: signed in%s", group, whom)
    audit.record("sign_in_finished", user=_named(user), outcome="ok", group=group)
    return _page(200, f"Signed in to {group}{whom}. You can close this page and call again.")


def _page(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status)
