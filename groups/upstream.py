"""One group's upstream: connected lazily, one session kept and shared, closed for good.

    upstream = Upstream("time", server_config, variables)
    tools = await upstream.list_tools()          # first use: spawn + initialize
    result = await upstream.call_tool("get_current_time", {"timezone": "UTC"})
    await upstream.aclose()                      # the child process is gone

Guarantees: nothing is started before the first request; concurrent first requests share
one connection attempt (one `anyio.Lock`); every later request reuses the same session
(one process per stdio group); a connection attempt is bounded by `CONNECT_TIMEOUT`; a
session that died is replaced on the next request; after `aclose()` no process or socket
of this group is left.

The upstream is served through a FastMCP proxy (`self.proxy`) whose client factory is
`self.client`, so the proxy always talks through this one held session.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types
from fastmcp.exceptions import NotFoundError
from fastmcp.server.providers.proxy import FastMCPProxy, ProxyClient
from fastmcp.tools.base import ToolResult

from groups.config import ServerConfig
from groups.errors import (
    GroupUnavailableError,
    UnknownToolError,
    UpstreamTimeoutError,
)
from groups.transport import build_transport

__all__ = ["CONNECT_TIMEOUT", "State", "Upstream"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # spawn + initialize; a silent upstream must never hang the server
CLOSE_TIMEOUT = 5.0  # graceful stop of one session before its process is killed


class State(enum.Enum):
    """Where a group's connection stands."""

    IDLE = "idle"  # configured; nothing started yet (the state at server start)
    READY = "ready"  # a session is open and serving requests
    FAILED = "failed"  # the last connection attempt failed; `error` says why
    CLOSED = "closed"  # the server is shutting down; no new connections


class Upstream:
    """The connection to one upstream MCP server, and the proxy that serves it."""

    def __init__(self, name: str, config: ServerConfig, variables: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self.state = State.IDLE
        self.error: GroupUnavailableError | None = None
        self._variables = variables
        self._client: ProxyClient | None = None
        self._lock = anyio.Lock()
        self._tools: list[mcp_types.Tool] | None = None
        self.proxy = FastMCPProxy(client_factory=self.client, name=name)

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, state={self.state.value})"

    async def client(self) -> ProxyClient:
        """The connected client, connecting first if there is no live session.

        Raises:
            GroupUnavailableError: the upstream could not be started or initialized.
        """
        async with self._lock:
            if self.state is State.CLOSED:
                raise GroupUnavailableError(self.name, "the server is shutting down")
            if self._client is None or not _session_alive(self._client):
                await self._drop_client()
                self._client = await self._connect()
                self.state, self.error = State.READY, None
            return self._client

    async def list_tools(self) -> list[mcp_types.Tool]:
        """The upstream's tools, fetched once per session."""
        await self.client()
        if self._tools is None:
            self._tools = [tool.to_mcp_tool() for tool in await self.proxy.list_tools()]
        return self._tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Call one tool and return the upstream's result unchanged (content, isError…).

        Raises:
            UnknownToolError: the upstream has no tool `name`.
            UpstreamTimeoutError: no answer within the group's tool timeout.
            GroupUnavailableError: the upstream could not be reached.
        """
        timeout = self.config.timeout.tools.total_seconds()
        await self.client()
        try:
            with anyio.fail_after(timeout):
                return await self.proxy.call_tool(name, arguments)
        except NotFoundError:
            tools = await self.list_tools()
            raise UnknownToolError(self.name, name, [tool.name for tool in tools]) from None
        except TimeoutError:
            raise UpstreamTimeoutError(self.name, f"Tool {name!r}", timeout) from None

    async def aclose(self) -> None:
        """End the session and its process; the upstream cannot be used again."""
        async with self._lock:
            self.state = State.CLOSED
            await self._drop_client()

    async def _connect(self) -> ProxyClient:
        transport = build_transport(self.name, self.config, self._variables)
        client = ProxyClient(
            transport,
            name=f"dynamic-mcp:{self.name}",
            # The front client's HTTP headers (its credentials) must never reach upstreams.
            forward_incoming_headers=False,
            init_timeout=CONNECT_TIMEOUT,
        )
        logger.info("connecting group %s", self.name)
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                await client.__aenter__()  # held until aclose(): one session for all requests
        except TimeoutError:
            await _close_quietly(client)
            error = GroupUnavailableError(
                self.name, f"no answer to initialize within {CONNECT_TIMEOUT:g}s"
            )
            self._fail(error)
            raise error from None
        except Exception as exc:
            await _close_quietly(client)
            error = GroupUnavailableError(self.name, _reason(exc))
            self._fail(error)
            raise error from exc
        self._tools = None
        logger.info("group %s connected", self.name)
        return client

    def _fail(self, error: GroupUnavailableError) -> None:
        self.state, self.error = State.FAILED, error
        logger.warning("%s", error)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)


def _session_alive(client: ProxyClient) -> bool:
    """Whether the held session still runs.

    `Client.is_connected()` stays true after an upstream crashes, so look at the task that
    owns the session: it ends when the process exits or the HTTP stream breaks.
    """
    task: asyncio.Task[Any] | None = client._session_state.session_task
    return client.is_connected() and task is not None and not task.done()


async def _close_quietly(client: ProxyClient) -> None:
    """Close a client whatever state it is in, bounded, even while being cancelled."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
        try:
            await client.close()
        except Exception as exc:  # a dying session may fail its own shutdown; it is gone either way
            logger.debug("closing %s: %s", client.name, exc)


def _reason(exc: BaseException) -> str:
    """One readable line for a connection failure, from the innermost useful cause."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    prefix = "Client failed to connect: "
    text = text.removeprefix(prefix)
    return text.splitlines()[0]
