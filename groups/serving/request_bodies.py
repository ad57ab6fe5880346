"""The body of a POST to the MCP endpoint: read once, after identity, within a limit.

    guard = RequestBodies("/mcp", needs_identity=True, then=sessions.handle)
    app = server.http_app(middleware=[guard.middleware()])  # first of the app's own
    guard.limit = settings.http.max_request_body         # when the config is loaded
    posted_messages(scope)                                # what it read, for what follows

Guarantees, for every HTTP request to the endpoint:
- nothing before identity: with auth configured, a request without an accepted credential
  goes straight to the SDK's 401, its body unread, nothing asked of the store (`then`,
  the shared sessions, serves only requests with identity);
- a body over `limit` bytes (declared or sent) is `413` with a JSON-RPC error naming the
  limit and its setting, read no further;
- a body that is not JSON, or nested deeper than JSON-RPC ever is, is `400` with a
  JSON-RPC parse error and one log line naming who sent it (never what);
- any other body is parsed once, its messages kept in the scope (`posted_messages`) and
  the body given again, unchanged, to what serves the request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic_core
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groups.access import user_of_scope

__all__ = [
    "RequestBodies",
    "answers_in",
    "cancellations_in",
    "initialize_params",
    "json_error",
    "negotiated",
    "posted_messages",
    "reporting_status",
]

logger = logging.getLogger(__name__)

_MESSAGES = "dynamic_mcp.posted_messages"  # the scope's key for what a POST held

# Serves one request with the next app: `SharedSessions.handle`'s shape.
Handler = Callable[[ASGIApp, Scope, Receive, Send], Awaitable[None]]


class RequestBodies:
    """Reads the body of each request to `path`, once identity is known (see the module),
    then hands it to `then`."""

    def __init__(self, path: str, *, needs_identity: bool, then: Handler | None = None) -> None:
        """Args:
        path: the MCP endpoint.
        needs_identity: auth is configured: a request must carry an accepted credential.
        then: what serves a request with identity, before the endpoint (the shared
            sessions' `handle`); by default the endpoint itself.
        """
        self.path, self.needs_identity = path, needs_identity
        self.limit = DEFAULT_MAX_REQUEST_BODY_SIZE  # bytes; `settings.http.max_request_body`
        self._then = then

    def __repr__(self) -> str:
        return f"RequestBodies({self.path!r}, limit {self.limit} bytes)"

    def middleware(self) -> Middleware:
        return Middleware(_RequestBodiesMiddleware, bodies=self)

    async def handle(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await app(scope, receive, send)
            return
        if self.needs_identity and not isinstance(scope.get("user"), AuthenticatedUser):
            await app(scope, receive, send)  # the SDK's 401, before anything is read or asked
            return
        if scope["method"] == "POST":
            body, receive = await self._read(scope, receive)
            if body is None:
                message = (
                    f"the request body is over the limit of {self.limit} bytes "
                    f"(settings.http.max_request_body)"
                )
                await json_error(413, message, code=INVALID_REQUEST)(scope, receive, send)
                return
            try:
                parsed = pydantic_core.from_json(body)
            except ValueError as exc:  # not JSON, or nested past pydantic-core's limit
                who = _who(scope)
                logger.warning("a request body from %s is not JSON (%s): answered 400", who, exc)
                await json_error(400, f"Parse error: {exc}", code=PARSE_ERROR)(scope, receive, send)
                return
            scope[_MESSAGES] = parsed if isinstance(parsed, list) else [parsed]
        if self._then is None:
            await app(scope, receive, send)
        else:
            await self._then(app, scope, receive, send)

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes | None, Receive]:
        """The body (None once past the limit) and a `receive` that gives it again."""
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return None, receive  # not read at all
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                return None, receive
            if not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return body, replay


class _RequestBodiesMiddleware:
    def __init__(self, app: ASGIApp, bodies: RequestBodies) -> None:
        self.app, self.bodies = app, bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.bodies.handle(self.app, scope, receive, send)


def _who(scope: Scope) -> str:
    """The gateway user behind a request, else its address: for the operator's log."""
    user = user_of_scope(scope)
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "an unknown address"
    return f"user {user.name!r} ({address})" if user is not None else address


# ---- what a POST held, for the middleware after the guard ---------------------------------


def posted_messages(scope: Scope) -> list[Any]:
    """The JSON values of the request's body, as `RequestBodies` read it ([] for none)."""
    return scope.get(_MESSAGES, [])


def answers_in(messages: list[Any]) -> list[dict[str, Any]]:
    """The client's answers to server requests, when that is all `messages` are."""
    is_answer = [
        isinstance(m, dict) and "id" in m and "method" not in m and ("result" in m or "error" in m)
        for m in messages
    ]
    return messages if messages and all(is_answer) else []


def cancellations_in(messages: list[Any]) -> list[dict[str, Any]]:
    """The client's `notifications/cancelled` among `messages`."""
    return [
        m for m in messages if isinstance(m, dict) and m.get("method") == "notifications/cancelled"
    ]


def initialize_params(messages: list[Any]) -> dict[str, Any] | None:
    """The params of an `initialize` request, if `messages` are one."""
    match messages:
        case [{"method": "initialize", "params": dict() as params}]:
            return params
    return None


def negotiated(params: dict[str, Any]) -> str:
    """The protocol version the SDK answers an `initialize` with (`ServerRunner`'s rule)."""
    requested = params.get("protocolVersion")
    return requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION


# ---- answering ---------------------------------------------------------------------------


def json_error(
    status: int,
    message: str | None,
    *,
    code: int = INTERNAL_ERROR,
    headers: dict[str, str] | None = None,
) -> Response:
    """An HTTP answer: a JSON-RPC error body (no request id) when there is a message."""
    if message is None:
        return Response(status_code=status, headers=headers)
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))
    return Response(
        body.model_dump_json(by_alias=True, exclude_unset=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def reporting_status(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> int | None:
    """Serve the request with `app`; the HTTP status it answered (None if none)."""
    status: int | None = None

    async def watching(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    await app(scope, receive, watching)
    return status
