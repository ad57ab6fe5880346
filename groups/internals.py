"""Every use of a private FastMCP or MCP SDK attribute, in one place.

    connection = connection_of(ctx.session)            # the client connection of a request
    route_tool_requests(server, list_tools, call_tool)  # tools/list and tools/call, first hand
    serve_listen(server, ListenHandler(bus))            # subscriptions/listen (2026-07-28)
    serve_resource_subscriptions(server, subscribe, unsubscribe)  # resources/subscribe
    await serve_streams(server, read_stream, write_stream)
    guard_http_with(server, BearerToken(token))          # auth decided once the host is known
    index, options = host_origin_guard(app)             # FastMCP's Host/Origin guard of an app
    request = await refresh_request(oauth)              # an OAuth refresh, sent when we choose
    refreshed = await take_refresh_response(oauth, response)
    redirect_to(oauth, "https://gw.example/oauth/callback")  # a sign-in ending on a gateway
    request = await code_exchange_request(oauth, code, verifier)   # finished by any replica
    await take_code_response(oauth, response)
    writer_protocol = pipe_write_protocol()             # asyncio's, for a write-only pipe
    manager = http_session_manager(app)                 # the SDK's sessions of an HTTP app
    limit_http_sessions(manager(), max_sessions=n, …)   # our settings, once it runs
    held_session(manager(), session_id)                 # this replica's transport, or None
    held_session_owners(manager())                      # every session held, and its owner
    await adopt_session(manager(), session_id, owner, serve)  # a session opened elsewhere
    await forget_session(manager(), session_id)         # ended on another replica
    await deliver(transport, message)                   # a client's answer, from elsewhere
    PrefixedIds(read, write, prefix="dmcp-ab12-")       # server request ids of our own

Each function says why no public API does its job. `tests/test_internals.py` uses each one
against the installed versions, so a release that renames what they reach for fails there,
loudly, before anything else; pyproject.toml pins fastmcp and mcp to the versions checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage

if TYPE_CHECKING:
    import httpx2
    from fastmcp import FastMCP
    from fastmcp.client.auth import OAuth
    from fastmcp.server.auth import AuthProvider
    from mcp.client.auth import OAuthClientProvider
    from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette

__all__ = [
    "PrefixedIds",
    "adopt_session",
    "code_exchange_request",
    "connection_of",
    "deliver",
    "forget_session",
    "guard_http_with",
    "held_session",
    "held_session_count",
    "held_session_owners",
    "host_origin_guard",
    "http_session_manager",
    "limit_http_sessions",
    "pipe_write_protocol",
    "redirect_to",
    "refresh_request",
    "route_tool_requests",
    "serve_listen",
    "serve_resource_subscriptions",
    "serve_streams",
    "take_code_response",
    "take_refresh_response",
]

ListToolsHandler = Callable[
    [ServerRequestContext[Any, Any], mcp_types.PaginatedRequestParams],
    Awaitable[mcp_types.ListToolsResult],
]
CallToolHandler = Callable[
    [ServerRequestContext[Any, Any], mcp_types.CallToolRequestParams],
    Awaitable[mcp_types.CallToolResult],
]
SubscribeHandler = Callable[
    [ServerRequestContext[Any, Any], mcp_types.SubscribeRequestParams],
    Awaitable[mcp_types.EmptyResult],
]
# Serves an adopted session over its transport's streams, with the manager's lifespan state.
SessionServer = Callable[[Any, Any, Any], Awaitable[None]]
UnsubscribeHandler = Callable[
    [ServerRequestContext[Any, Any], mcp_types.UnsubscribeRequestParams],
    Awaitable[mcp_types.EmptyResult],
]


def connection_of(session: ServerSession) -> Connection:
    """The client connection behind a request's `ServerSession`.

    The SDK builds a `ServerSession` per request; the `Connection` behind it is the stable
    per-client object, with the public `exit_stack` that ends with the client, and the
    public standalone stream for notifications. `ServerSession` keeps it private.
    """
    return session._connection


def route_tool_requests(
    server: FastMCP, list_tools: ListToolsHandler, call_tool: CallToolHandler
) -> None:
    """Answer `tools/list` and `tools/call` with our handlers instead of FastMCP's dispatch.

    FastMCP's dispatch costs more per call than the whole budget of a proxy hop (the
    profile is in bench/README.md): middleware, tool lookup across every mounted server,
    argument validation and result conversion. It also reaches mounted upstream tools by
    name. The two meta-tools are still declared on `server` with decorators; these
    handlers list them and call them. FastMCP registers its handlers on its low-level
    server, which it keeps private (`_mcp_server`); the SDK's `add_request_handler` is public.
    """
    low_level = server._mcp_server
    low_level.add_request_handler("tools/list", mcp_types.PaginatedRequestParams, list_tools)
    low_level.add_request_handler("tools/call", mcp_types.CallToolRequestParams, call_tool)


def serve_listen(server: FastMCP, handler: Any) -> None:
    """Serve `subscriptions/listen` with the SDK's own `ListenHandler`.

    A 2026-07-28 client has no standing stream for notifications: it asks for one with
    `subscriptions/listen`. The SDK implements it; FastMCP does not register it, and
    registering means reaching FastMCP's low-level server, which it keeps private.
    """
    server._mcp_server.add_request_handler(
        "subscriptions/listen", mcp_types.SubscriptionsListenRequestParams, handler
    )


def serve_resource_subscriptions(
    server: FastMCP, subscribe: SubscribeHandler, unsubscribe: UnsubscribeHandler
) -> None:
    """Serve `resources/subscribe` and `resources/unsubscribe` with our handlers.

    FastMCP serves neither, for its own resources or a proxied server's, and has no hook
    for them (its completion handler has a public setter; these do not). Registering them
    is also what makes the SDK declare `resources.subscribe` to handshake-era clients.
    FastMCP keeps its low-level server private.
    """
    low_level = server._mcp_server
    low_level.add_request_handler(
        "resources/subscribe", mcp_types.SubscribeRequestParams, subscribe
    )
    low_level.add_request_handler(
        "resources/unsubscribe", mcp_types.UnsubscribeRequestParams, unsubscribe
    )


async def serve_streams(server: FastMCP, read_stream: Any, write_stream: Any) -> None:
    """Serve one client over the given message streams, inside the server's lifespan.

    What `FastMCP.run_stdio_async` does, with streams of our choosing: it always reads
    stdin through a worker thread, three thread hops per request (see bench/README.md),
    and a thread that cannot be cancelled. FastMCP keeps its lifespan manager and
    low-level server private.
    """
    from fastmcp.server.context import reset_transport, set_transport

    low_level = server._mcp_server
    token = set_transport("stdio")
    try:
        async with server._lifespan_manager():
            await low_level.run(
                read_stream, write_stream, low_level.create_initialization_options()
            )
    finally:
        reset_transport(token)


async def refresh_request(oauth: OAuthClientProvider) -> httpx2.Request:
    """The SDK's refresh-token request for `oauth`'s current tokens and client.

    The SDK refreshes only inside its own flow, once the access token has expired, holding
    no lock another process can see. We refresh a little before expiry, holding the token
    file's lock, after taking up what another process stored; building the request (token
    endpoint, RFC 8707 resource, client authentication) is the SDK's, kept private.
    """
    return await oauth._refresh_token()


async def take_refresh_response(oauth: OAuthClientProvider, response: httpx2.Response) -> bool:
    """Let the SDK take a refresh answer: on success it keeps and stores the new tokens
    (carrying the refresh token over when the server did not rotate it); on refusal it
    forgets the current ones. Whether the refresh succeeded. Private in the SDK."""
    return await oauth._handle_refresh_response(response)


def redirect_to(oauth: OAuth, redirect_uri: str) -> None:
    """Make `oauth` register and sign in with `redirect_uri` instead of its loopback one.

    FastMCP's `OAuth` always redirects to a callback server it starts on a local port
    (`callback_host`, `callback_port`), built into the client's metadata and, for a
    pre-registered `client_id`, into a record it keeps privately (`_static_client_info`)
    and stores on first use. A gateway's sign-in ends on its own public route instead.
    """
    from pydantic import AnyHttpUrl

    uris = [AnyHttpUrl(redirect_uri)]
    oauth.context.client_metadata.redirect_uris = uris
    static = oauth._static_client_info
    if static is not None:
        oauth._static_client_info = static.model_copy(update={"redirect_uris": uris})


async def code_exchange_request(
    oauth: OAuthClientProvider, code: str, code_verifier: str
) -> httpx2.Request:
    """The SDK's token request for an authorization code: token endpoint, redirect URI,
    RFC 8707 resource and client authentication, as its own flow would send it.

    The SDK exchanges a code only inside its flow, in the process that generated the PKCE
    verifier and waits on its callback. A gateway's sign-in is finished by whichever
    replica the browser reaches, from the verifier kept in the store; the request
    building is the SDK's, kept private.
    """
    return await oauth._exchange_token_authorization_code(code, code_verifier)


async def take_code_response(oauth: OAuthClientProvider, response: httpx2.Response) -> None:
    """Let the SDK take the token endpoint's answer to a code: it checks the status and the
    scopes, keeps the tokens and stores them (`oauth`'s storage). Private in the SDK.

    Raises:
        OAuthTokenError: the server refused the code, or answered nonsense.
    """
    await oauth._handle_token_response(response)


def guard_http_with(server: FastMCP, auth: AuthProvider | None) -> None:
    """Set who may connect over HTTP after the server was built.

    `fastmcp run server.py --transport http --host H` builds the server before it says
    which host it serves; whether a token is needed is known only then. FastMCP takes
    `auth` in its constructor and reads the attribute when it builds the HTTP app.
    """
    server.auth = auth


def host_origin_guard(app: Starlette) -> tuple[int, dict[str, Any]] | None:
    """Where FastMCP's Host/Origin guard is in `app`'s middleware, and the options it is
    built with; None without one (`host_origin_protection` off).

    FastMCP builds the guard from `http_app`'s options, before the lifespan reads the
    config, and offers no way to add names to it later; `groups.serving.host_refusals`
    builds it again, in its place, with the config's names.
    """
    from fastmcp.server.http import HostOriginGuardMiddleware

    for index, middleware in enumerate(app.user_middleware):
        if middleware.cls is HostOriginGuardMiddleware:
            return index, dict(middleware.kwargs)
    return None


def pipe_write_protocol() -> type[asyncio.Protocol]:
    """The protocol a `StreamWriter` over a write pipe needs (its `drain` waits on it).

    asyncio's own `open_connection` uses `StreamReaderProtocol`, which also reads; for a
    write-only pipe it uses `FlowControlMixin`, which asyncio does not document. It is the
    smallest protocol `StreamWriter.drain` works with.
    """
    return asyncio.streams.FlowControlMixin


# ---- legacy HTTP sessions shared by replicas (groups.serving.shared_sessions) -------------
# The SDK's session manager keeps each `Mcp-Session-Id` in its own memory and answers 404
# for any other; it has no hook to take up a session another process opened.


def http_session_manager(app: Starlette) -> Callable[[], StreamableHTTPSessionManager | None]:
    """How to reach the SDK session manager serving `app`'s MCP endpoint while it runs.

    FastMCP makes a new manager each time the app's lifespan starts and keeps it on the
    endpoint (`StreamableHTTPASGIApp.session_manager`), behind its auth wrapper when there
    is auth; neither is reachable from the app's public surface.
    """
    from fastmcp.server.http import StreamableHTTPASGIApp

    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        inner = getattr(endpoint, "app", endpoint)  # RequireAuthMiddleware wraps it
        if isinstance(inner, StreamableHTTPASGIApp):
            return lambda: inner.session_manager  # type: ignore[union-attr]
    raise LookupError("no streamable HTTP endpoint in this app")


def limit_http_sessions(
    manager: StreamableHTTPSessionManager,
    *,
    max_request_body: int,
    max_sessions: int,
    idle_timeout: float,
) -> None:
    """Set the running manager's own limits from our settings: FastMCP makes it, with
    defaults, before our lifespan reads the config. It reads `max_sessions` and the idle
    timeout at each new session; its body limit is fixed in the ASGI app it wraps."""
    manager.max_sessions = max_sessions
    manager.session_idle_timeout = idle_timeout
    manager.max_request_body_size = max_request_body
    limit = manager.asgi_app
    if isinstance(limit, RequestBodyLimitMiddleware):
        limit.max_body_size = max_request_body


def held_session_count(manager: StreamableHTTPSessionManager) -> int:
    """How many sessions this process holds (`/metrics`)."""
    return len(manager._server_instances)


def held_session(
    manager: StreamableHTTPSessionManager, session_id: str
) -> StreamableHTTPServerTransport | None:
    """The transport of `session_id` if this process holds the session."""
    return manager._server_instances.get(session_id)


def held_session_owners(
    manager: StreamableHTTPSessionManager,
) -> dict[str, AuthorizationContext | None]:
    """Every session this process holds, with the credential that owns it (None: opened
    without auth): which are a user's, to end them when the user goes. The SDK keeps
    both maps private; the owner is what it compares each request's credential with."""
    return {
        session_id: manager._session_owners.get(session_id)
        for session_id in list(manager._server_instances)
    }


async def adopt_session(
    manager: StreamableHTTPSessionManager,
    session_id: str,
    owner: AuthorizationContext | None,
    serve: SessionServer,
) -> None:
    """Hold `session_id` here, owned by `owner`, served by `serve(read, write, lifespan)`.

    What the manager does for a session it opens itself (`_admit_session` and
    `_serve_opening_request`), for a session whose `initialize` another replica answered:
    the same transport, the same owner rule, the same idle timeout, discarded the same way.
    """
    async with manager._session_creation_lock:
        if session_id in manager._server_instances:
            return  # a request just before this one took it up
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=manager.json_response,
            event_store=manager.event_store,
            security_settings=manager.security_settings,
            retry_interval=manager.retry_interval,
            idle_timeout=manager.session_idle_timeout,
        )
        if owner is not None:
            manager._session_owners[session_id] = owner
        manager._server_instances[session_id] = transport

    async def run(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with transport.connect() as (read_stream, write_stream):
                task_status.started()
                idle = transport.idle_scope or anyio.CancelScope()
                with idle:
                    await serve(read_stream, write_stream, manager._lifespan_state)
        finally:
            await manager._discard_session(session_id, transport)

    assert manager._task_group is not None, "the session manager is not running"
    await manager._task_group.start(run)


async def forget_session(manager: StreamableHTTPSessionManager, session_id: str) -> None:
    """End this process's hold of `session_id`: it answers 404 here from now on."""
    transport = manager._server_instances.get(session_id)
    if transport is not None:
        await manager._discard_session(session_id, transport)


async def deliver(transport: StreamableHTTPServerTransport, message: Any) -> None:
    """Hand `message` (a client's answer another replica received) to `transport`'s server,
    as if it had been POSTed here. The transport keeps its read stream private."""
    writer = transport._read_stream_writer
    if writer is None:
        raise anyio.ClosedResourceError
    await writer.send(SessionMessage(message))


class PrefixedIds(JSONRPCDispatcher):  # type: ignore[type-arg]
    """A dispatcher whose own request ids start with `prefix`: unique across replicas.

    Two replicas serving one session each number their requests to the client from 1;
    the client's answer must name the replica waiting for it. `CallOptions.request_id`
    picks an id per request, but the SDK's `ServerSession.send_request` does not pass it
    on; the dispatcher's numbering (`_allocate_id`) is private.
    """

    def __init__(self, *args: Any, prefix: str, **options: Any) -> None:
        super().__init__(*args, **options)
        self._prefix = prefix

    def _allocate_id(self) -> str:  # type: ignore[override]
        return f"{self._prefix}{super()._allocate_id()}"
