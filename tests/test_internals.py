"""The private FastMCP and MCP SDK attributes dynamic-mcp reaches for, one test each.

These fail first, and say where to look, when a release renames what `groups/internals.py`
uses; pyproject.toml pins fastmcp and mcp to the versions checked here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import mcp_types
from fastmcp import Client, FastMCP
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.server.connection import Connection
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.memory import create_client_server_memory_streams
from pydantic import AnyUrl

from groups import internals

UPDATE = "update groups/internals.py for this fastmcp/mcp release"


def test_connection_of_finds_the_stable_connection_behind_each_request():
    server = FastMCP("probe")
    seen: list[Connection] = []

    async def list_tools(ctx, params) -> mcp_types.ListToolsResult:
        seen.append(internals.connection_of(ctx.session))
        return mcp_types.ListToolsResult(tools=[])

    async def call_tool(ctx, params) -> mcp_types.CallToolResult:
        return mcp_types.CallToolResult(content=[])

    internals.route_tool_requests(server, list_tools, call_tool)

    async def two_requests() -> None:
        async with Client(server, mode="legacy") as client:
            await client.list_tools()
            await client.list_tools()

    anyio.run(two_requests)
    assert len(seen) == 2, UPDATE
    assert all(isinstance(connection, Connection) for connection in seen), UPDATE
    assert seen[0] is seen[1], f"one client, one connection: {UPDATE}"


def test_route_tool_requests_takes_tools_list_and_tools_call_from_fastmcp():
    server = FastMCP("probe")

    @server.tool
    def hidden() -> str:
        return "FastMCP's dispatch answered"

    async def list_tools(ctx, params) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[])

    async def call_tool(ctx, params) -> mcp_types.CallToolResult:
        text = f"ours: {params.name}"
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)])

    internals.route_tool_requests(server, list_tools, call_tool)

    async def ask() -> tuple[list[str], str]:
        async with Client(server) as client:
            names = [tool.name for tool in await client.list_tools()]
            result = await client.call_tool_mcp("hidden", {})
            return names, result.content[0].text

    names, text = anyio.run(ask)
    assert names == [], UPDATE
    assert text == "ours: hidden", UPDATE


def test_serve_streams_serves_one_client_inside_the_server_lifespan():
    lifespan_ran: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastMCP) -> AsyncIterator[dict]:
        lifespan_ran.append("entered")
        yield {}
        lifespan_ran.append("exited")

    server = FastMCP("probe", lifespan=lifespan)

    @server.tool
    def ping() -> str:
        return "pong"

    async def serve_and_call() -> str:
        async with (
            create_client_server_memory_streams() as (client_streams, server_streams),
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(internals.serve_streams, server, *server_streams)
            async with ClientSession(*client_streams) as session:
                await session.initialize()
                result = await session.call_tool("ping", {})
            tasks.cancel_scope.cancel()
        return result.content[0].text

    assert anyio.run(serve_and_call) == "pong", UPDATE
    assert lifespan_ran == ["entered", "exited"], UPDATE


def test_serve_listen_answers_subscriptions_listen_with_the_sdks_handler():
    from mcp.client.subscriptions import listen
    from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
    from mcp.shared.subscriptions import ToolsListChanged

    server = FastMCP("probe")
    bus = InMemorySubscriptionBus()
    internals.serve_listen(server, ListenHandler(bus))

    async def hear_one() -> object:
        async with (
            Client(server) as client,  # the 2026-07-28 era, where listen exists
            listen(client.session, tools_list_changed=True) as subscription,
        ):
            await bus.publish(ToolsListChanged())
            with anyio.fail_after(5):
                return await subscription.__anext__()

    assert anyio.run(hear_one) == ToolsListChanged(), UPDATE


def test_serve_resource_subscriptions_answers_both_and_declares_subscribe():
    server = FastMCP("probe")

    @server.resource("memo://watched")
    def watched() -> str:
        return "watched"

    seen: list[tuple[str, str]] = []

    async def subscribe(ctx, params) -> mcp_types.EmptyResult:
        seen.append(("subscribe", str(params.uri)))
        return mcp_types.EmptyResult()

    async def unsubscribe(ctx, params) -> mcp_types.EmptyResult:
        seen.append(("unsubscribe", str(params.uri)))
        return mcp_types.EmptyResult()

    internals.serve_resource_subscriptions(server, subscribe, unsubscribe)

    async def both() -> mcp_types.ServerCapabilities:
        # The handshake era: resources/subscribe is not on the 2026-07-28 wire.
        async with Client(server, mode="legacy") as client:
            await client.session.send_request(
                mcp_types.SubscribeRequest(
                    params=mcp_types.SubscribeRequestParams(uri="memo://watched")
                ),
                mcp_types.EmptyResult,
            )
            await client.session.send_request(
                mcp_types.UnsubscribeRequest(
                    params=mcp_types.UnsubscribeRequestParams(uri="memo://watched")
                ),
                mcp_types.EmptyResult,
            )
            return client.initialize_result.capabilities

    capabilities = anyio.run(both)
    assert seen == [("subscribe", "memo://watched"), ("unsubscribe", "memo://watched")], UPDATE
    assert capabilities.resources is not None and capabilities.resources.subscribe, UPDATE


class _Kept:
    """The SDK's TokenStorage protocol, in memory: what the provider stores."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> None:
        return None

    async def set_client_info(self, client_info: object) -> None:
        pass


def _provider_holding_a_refresh_token() -> tuple[OAuthClientProvider, _Kept]:
    kept = _Kept()
    metadata = OAuthClientMetadata(redirect_uris=[AnyUrl("http://127.0.0.1:1/callback")])
    provider = OAuthClientProvider("http://127.0.0.1:1/mcp", metadata, kept)
    provider.context.client_info = OAuthClientInformationFull(
        client_id="probe", redirect_uris=[AnyUrl("http://127.0.0.1:1/callback")]
    )
    provider.context.current_tokens = OAuthToken(access_token="a", refresh_token="r1")
    return provider, kept


async def test_the_sdk_refresh_is_built_and_taken_as_groups_oauth_uses_it():
    provider, kept = _provider_holding_a_refresh_token()

    request = await internals.refresh_request(provider)
    answer = {"access_token": "b", "token_type": "Bearer", "expires_in": 60}
    refreshed = await internals.take_refresh_response(
        provider, httpx2.Response(200, json=answer, request=request)
    )
    refused = await internals.take_refresh_response(
        provider, httpx2.Response(400, json={"error": "invalid_grant"}, request=request)
    )

    assert request.url == "http://127.0.0.1:1/token", UPDATE
    assert b"grant_type=refresh_token" in request.content, UPDATE
    assert b"refresh_token=r1" in request.content, UPDATE
    assert refreshed is True, UPDATE
    # Stored, with the refresh token carried over where the server did not rotate it.
    assert kept.tokens is not None and kept.tokens.refresh_token == "r1", UPDATE
    assert refused is False, UPDATE
    assert provider.context.current_tokens is None, UPDATE  # a refused refresh forgets them


async def test_guard_http_with_sets_the_auth_the_http_app_is_built_with():
    from fastmcp.server.auth import AccessToken, TokenVerifier

    class Only(TokenVerifier):
        async def verify_token(self, token: str) -> AccessToken | None:
            return AccessToken(token=token, client_id="c", scopes=[]) if token == "t" else None

    server = FastMCP("probe")
    internals.guard_http_with(server, Only())
    app = server.http_app(transport="http")
    transport = httpx2.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        refused = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401, UPDATE


async def test_pipe_write_protocol_lets_a_stream_writer_drain_a_pipe():
    import asyncio
    import os

    read_fd, write_fd = os.pipe()
    loop = asyncio.get_running_loop()
    with os.fdopen(read_fd, "rb", 0) as reading, os.fdopen(write_fd, "wb", 0) as writing:
        transport, protocol = await loop.connect_write_pipe(
            internals.pipe_write_protocol(), writing
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        writer.write(b"line\n")
        await writer.drain()
        assert reading.read(5) == b"line\n", UPDATE
        transport.close()


async def test_a_session_taken_up_is_held_served_answered_and_forgotten_by_the_sdk_manager():
    from mcp.server.runner import serve_connection

    server = FastMCP("probe")
    app = server.http_app(transport="http")
    manager_of = internals.http_session_manager(app)
    asked: list[dict] = []
    connections: list[Connection] = []

    async def serve(read_stream, write_stream, lifespan_state) -> None:
        dispatcher = internals.PrefixedIds(read_stream, write_stream, prefix="probe-")
        connection = Connection.for_loop(dispatcher, session_id="taken-up")
        connection.initialized.set()
        connections.append(connection)
        await serve_connection(
            server._mcp_server, dispatcher, connection=connection, lifespan_state=lifespan_state
        )

    async with app.router.lifespan_context(app):
        manager = manager_of()
        await internals.adopt_session(manager, "taken-up", None, serve)
        transport = internals.held_session(manager, "taken-up")
        async with anyio.create_task_group() as tasks:

            async def ask() -> None:
                asked.append(await connections[0].send_raw_request("ping", None))

            tasks.start_soon(ask)
            await anyio.wait_all_tasks_blocked()  # the ping is out, waiting for its answer
            answer = mcp_types.JSONRPCResponse(jsonrpc="2.0", id="probe-1", result={})
            with anyio.fail_after(5):
                await internals.deliver(transport, answer)
        await internals.forget_session(manager, "taken-up")
        forgotten = internals.held_session(manager, "taken-up")

    assert transport is not None, UPDATE
    assert asked == [{}], f"the answer to request 'probe-1' reached it: {UPDATE}"
    assert forgotten is None, UPDATE


async def test_held_session_owners_names_each_held_session_with_the_credential_owning_it():
    server = FastMCP("probe")
    app = server.http_app(transport="http")
    owner = {"client_id": "alice", "issuer": None, "subject": "alice"}

    async def serve(read_stream, write_stream, lifespan_state) -> None:
        await anyio.sleep_forever()

    async with app.router.lifespan_context(app):
        manager = internals.http_session_manager(app)()
        await internals.adopt_session(manager, "alices", owner, serve)  # type: ignore[arg-type]
        await internals.adopt_session(manager, "nobodys", None, serve)
        held = internals.held_session_owners(manager)
        await internals.forget_session(manager, "alices")
        after = internals.held_session_owners(manager)

    assert held == {"alices": owner, "nobodys": None}, UPDATE
    assert after == {"nobodys": None}, UPDATE


async def test_limit_http_sessions_sets_the_limits_the_sdk_manager_applies():
    app = FastMCP("probe").http_app(transport="http")
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c"}}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    over = {**initialize, "params": {**params, "padding": "x" * 1000}}
    headers = {"Accept": "application/json, text/event-stream"}

    async with app.router.lifespan_context(app):
        manager = internals.http_session_manager(app)()
        internals.limit_http_sessions(
            manager, max_request_body=500, max_sessions=1, idle_timeout=42.0
        )
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            too_big = await http.post("/mcp", json=over, headers=headers)
            first = await http.post("/mcp", json=initialize, headers=headers)
            second = await http.post("/mcp", json=initialize, headers=headers)
        held = internals.held_session(manager, first.headers.get("mcp-session-id", ""))

    assert [too_big.status_code, first.status_code, second.status_code] == [413, 200, 503], UPDATE
    assert held is not None and held._idle_timeout == 42.0, UPDATE


def test_http_session_manager_finds_the_endpoint_behind_fastmcps_auth_wrapper():
    from groups.serving import BearerToken

    app = FastMCP("probe", auth=BearerToken("t")).http_app(transport="http")
    assert internals.http_session_manager(app)() is None, UPDATE  # made when it starts


async def test_host_origin_guard_finds_the_guard_fastmcp_builds_and_what_it_is_built_with():
    """Rebuilt with the same options in its place, it refuses as FastMCP's own did."""
    from fastmcp.server.http import HostOriginGuardMiddleware
    from starlette.middleware import Middleware

    app = FastMCP("probe").http_app(
        transport="http", host_origin_protection=True, allowed_origins=["https://a.example"]
    )
    found = internals.host_origin_guard(app)
    assert found is not None, UPDATE
    index, options = found
    app.user_middleware[index] = Middleware(HostOriginGuardMiddleware, **options)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        elsewhere = await http.get("/mcp", headers={"Host": "attacker.example"})
    assert options == {
        "allowed_hosts": None,
        "allowed_origins": ["https://a.example"],
        "mode": "strict",
    }, UPDATE
    assert elsewhere.status_code == 421, UPDATE
    assert internals.host_origin_guard(FastMCP("probe").http_app()) is None, UPDATE  # off


async def test_a_code_is_exchanged_and_taken_as_a_gateways_sign_in_finishes_it():
    provider, kept = _provider_holding_a_refresh_token()
    provider.context.current_tokens = None

    request = await internals.code_exchange_request(provider, "the-code", "v" * 43)
    answer = {"access_token": "b", "token_type": "Bearer", "expires_in": 60, "scope": "read"}
    await internals.take_code_response(provider, httpx2.Response(200, json=answer, request=request))

    assert request.url == "http://127.0.0.1:1/token", UPDATE
    assert b"grant_type=authorization_code" in request.content, UPDATE
    assert b"code=the-code" in request.content and b"code_verifier=vvvv" in request.content
    assert b"redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback" in request.content, UPDATE
    assert kept.tokens is not None and kept.tokens.access_token == "b", UPDATE  # stored


def test_redirect_to_moves_the_redirect_of_registration_and_of_a_pre_registered_client(
    tmp_path,
):
    from fastmcp.client.auth import OAuth

    from groups.storage import LocalStore

    kept = LocalStore(tmp_path).scope("oauth-servers", "probe")
    dynamic = OAuth("http://127.0.0.1:1/mcp", token_storage=kept)
    static = OAuth("http://127.0.0.1:1/mcp", client_id="pre", token_storage=kept)

    for oauth in (dynamic, static):
        internals.redirect_to(oauth, "https://gw.example/oauth/callback")

    for oauth in (dynamic, static):
        uris = [str(uri) for uri in oauth.context.client_metadata.redirect_uris or []]
        assert uris == ["https://gw.example/oauth/callback"], UPDATE
    assert static._static_client_info is not None, UPDATE
    assert [str(u) for u in static._static_client_info.redirect_uris or []] == [
        "https://gw.example/oauth/callback"
    ], UPDATE
