"""One group's upstream: connected lazily, one session kept and shared, retried, closed.

    upstream = Upstream("time", server_config, variables)
    tools = await upstream.list_tools()          # first use: spawn + initialize
    result = await upstream.call_tool("get_current_time", {"timezone": "UTC"})
    await upstream.aclose()                      # the child process is gone

Guarantees:
- nothing is started before the first request, and concurrent first requests share one
  connection attempt (one `anyio.Lock`); later requests reuse the same session (one
  process per stdio group), and a session that died is replaced on the next request;
- an attempt is bounded by `CONNECT_TIMEOUT`; after a failure the group is FAILED and
  requests answer at once with the reason and when the next retry is due, while
  `keep_retrying()` tries again in the background (2 s, 4 s, 8 s after a transient
  failure, then every 30 s);
- every call is bounded by the group's configured timeout; on expiry the upstream is sent
  a cancellation and the model a `UpstreamTimeoutError`;
- after `aclose()` no process or socket of this group is left.

Tools are listed and called on the held session itself. The group's resources and
prompts are served through a FastMCP proxy (`self.proxy`, see `groups.proxy`), mounted on
the root, whose client factory is `self.client`: it talks through the same session.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio
import mcp_types
from fastmcp.server.dependencies import get_context
from fastmcp.server.providers.proxy import ProxyClient, _stash_proxy_request_context
from fastmcp.tools.base import ToolResult

from groups.config import ServerConfig, StdioServer
from groups.errors import (
    FeatureDisabledError,
    GroupUnavailableError,
    UnknownToolError,
    UpstreamTimeoutError,
)
from groups.failures import Failure, classify, is_connection_lost
from groups.proxy import GroupProxy
from groups.transport import HttpErrorLog, build_transport

__all__ = ["CONNECT_TIMEOUT", "State", "Upstream"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # spawn + initialize per attempt; a silent upstream must not hang us
# Upstreams starting at once. Dozens of cold starts on two cores each take longer than
# CONNECT_TIMEOUT, fail, and restart together forever; queued, they all come up.
STARTS_AT_ONCE = max(4, 2 * (os.cpu_count() or 2))
QUICK_RETRY_DELAYS = (2.0, 4.0, 8.0)  # after a transient failure, as the Rust dynamic-mcp
BACKGROUND_RETRY_INTERVAL = 30.0  # then, and after a permanent failure, until it recovers
CLOSE_TIMEOUT = 5.0  # graceful stop of one session before its process is killed
LOG_PREVIEW = 500  # characters of a request or result shown in debug logs


class State(enum.Enum):
    """Where a group's connection stands."""

    IDLE = "idle"  # configured; nothing started yet (the state at server start)
    READY = "ready"  # a session is open and serving requests
    FAILED = "failed"  # the last attempt failed; `error` says why, `retry_at` when next
    CLOSED = "closed"  # the server is shutting down; no new connections


StateListener = Callable[["Upstream"], Awaitable[None]]


class Upstream:
    """The connection to one upstream MCP server, and the proxy that serves it."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        variables: Mapping[str, str],
        *,
        on_state_change: StateListener | None = None,
        start_slots: anyio.Semaphore | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.state = State.IDLE
        self.error: GroupUnavailableError | None = None
        self.retry_at: float | None = None  # time.monotonic() of the next background attempt
        self._failures = 0  # consecutive failed attempts
        self._variables = variables
        self._on_state_change = on_state_change
        self._start_slots = start_slots or anyio.Semaphore(STARTS_AT_ONCE)
        self._client: ProxyClient | None = None
        self._session_lost = False  # a request saw the session end before its task noticed
        self._lock = anyio.Lock()
        self._tools: list[mcp_types.Tool] | None = None
        self.proxy = GroupProxy(name, self.client, config.features)

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, state={self.state.value})"

    # ---- the session ------------------------------------------------------------------

    async def client(self) -> ProxyClient:
        """The connected client, connecting first if there is no live session.

        Raises:
            GroupUnavailableError: the group is failed (at once, with the last reason and
                when the next retry is due) or this attempt to connect failed.
        """
        async with self._lock:
            if self.state is State.CLOSED:
                raise GroupUnavailableError(self.name, "dynamic-mcp is shutting down")
            if self.state is State.FAILED:
                raise self._still_failed()
            if self._client is None or self._session_lost or not _session_alive(self._client):
                if self._client is not None:
                    logger.warning("group %s: the upstream session ended; reconnecting", self.name)
                await self._attempt()
            assert self._client is not None
            return self._client

    async def keep_retrying(self) -> None:
        """Retry a failed group in the background until it connects or is closed."""
        while self.state is State.FAILED and self.retry_at is not None:
            await anyio.sleep(max(0.0, self.retry_at - time.monotonic()))
            async with self._lock:
                if self.state is not State.FAILED:
                    return
                logger.info("group %s: retrying (attempt %d)", self.name, self._failures + 1)
                try:
                    await self._attempt()
                except GroupUnavailableError:
                    continue
            await self._notify()

    async def aclose(self) -> None:
        """End the session and its process; the upstream cannot be used again."""
        async with self._lock:
            self.state, self.retry_at = State.CLOSED, None
            await self._drop_client()

    # ---- requests ---------------------------------------------------------------------

    async def list_tools(self) -> list[mcp_types.Tool]:
        """The upstream's tools, fetched once per session.

        Raises:
            FeatureDisabledError: the config turns this group's tools off.
            GroupUnavailableError, UpstreamTimeoutError: as for `call_tool`.
        """
        self._require_tools()
        return await self._tools_on(await self.client())

    async def _tools_on(
        self, client: ProxyClient, *, refresh: bool = False
    ) -> list[mcp_types.Tool]:
        """The tools of the session `client` holds: cached, or fetched (again with `refresh`)."""
        if self._tools is None or refresh:
            timeout = self.config.timeout.tools.total_seconds()
            logger.debug("→ %s tools/list", self.name)
            with self._bounded("Listing tools", timeout):
                self._tools = await client.list_tools()
            logger.debug("← %s tools/list: %d tools", self.name, len(self._tools))
        return self._tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Call one tool and return the upstream's result unchanged (content, isError…).

        The call goes straight to the held session rather than through the group's
        FastMCP proxy server: the same request on the wire, without a second server's
        dispatch on every call (about 0.75 ms, measured in bench/).

        Raises:
            FeatureDisabledError: the config turns this group's tools off.
            UnknownToolError: the upstream has no tool `name`.
            UpstreamTimeoutError: no answer within the group's tool timeout.
            GroupUnavailableError: the upstream could not be reached, or died mid-call.
        """
        self._require_tools()
        client = await self.client()
        if not any(tool.name == name for tool in await self._tools_on(client)):
            tools = await self._tools_on(client, refresh=True)  # the upstream may have added it
            if not any(tool.name == name for tool in tools):
                raise UnknownToolError(self.name, name, [tool.name for tool in tools])
        _forward_requests_to_caller(client)
        timeout = self.config.timeout.tools.total_seconds()
        logger.debug("→ %s tools/call %s %s", self.name, name, _preview(arguments))
        with self._bounded(f"Tool {name!r}", timeout):
            answer = await client.call_tool_mcp(name, arguments)
        logger.debug(
            "← %s tools/call %s%s %s",
            self.name,
            name,
            " (isError)" if answer.is_error else "",
            _preview(answer.content),
        )
        return ToolResult(
            content=answer.content,
            structured_content=answer.structured_content,
            meta=answer.meta,
            is_error=answer.is_error,
        )

    @contextmanager
    def _bounded(self, operation: str, timeout: float) -> Iterator[None]:
        """A time limit on one upstream request that reports the group's own timeout.

        Leaving the scope cancels the request; the MCP client then sends the upstream a
        `notifications/cancelled`. A session that dies mid-request becomes an error naming
        the group rather than a raw transport exception.
        """
        try:
            with anyio.fail_after(timeout):
                yield
        except TimeoutError:
            raise UpstreamTimeoutError(self.name, operation, timeout) from None
        except Exception as exc:
            client = self._client
            if is_connection_lost(exc) or (client is not None and not _session_alive(client)):
                self._session_lost = True
                raise GroupUnavailableError(
                    self.name,
                    f"the upstream went away during {operation.lower()}; "
                    "the next request reconnects",
                ) from exc
            raise

    def _require_tools(self) -> None:
        if not self.config.features.tools:
            raise FeatureDisabledError(self.name, "tools")

    # ---- connecting -------------------------------------------------------------------

    async def _attempt(self) -> None:
        """One connection attempt; on failure the group becomes FAILED (and raises)."""
        await self._drop_client()
        try:
            self._client = await self._connect()
        except GroupUnavailableError as error:
            await self._fail(error)
            raise
        recovered = self.state is State.FAILED
        self._session_lost = False
        self.state, self.error, self.retry_at, self._failures = State.READY, None, None, 0
        self._tools = None
        logger.info("group %s connected%s", self.name, " again" if recovered else "")

    async def _connect(self) -> ProxyClient:
        http_errors = HttpErrorLog()
        transport = build_transport(self.name, self.config, self._variables, http_errors)
        client = ProxyClient(
            transport,
            name=f"dynamic-mcp:{self.name}",
            # The front client's HTTP headers (its credentials) must never reach upstreams.
            forward_incoming_headers=False,
            init_timeout=CONNECT_TIMEOUT,
        )
        try:
            # The time limit starts once it is this upstream's turn to start.
            async with self._start_slots:
                logger.info("connecting group %s: %s", self.name, _describe(self.config))
                with anyio.fail_after(CONNECT_TIMEOUT):
                    await client.__aenter__()  # held until aclose(): one session for all
        except Exception as exc:
            await _close_quietly(client)
            failure = classify(exc, http_errors.last)
            if isinstance(exc, TimeoutError):
                failure = Failure(f"no answer within {CONNECT_TIMEOUT:g}s", permanent=False)
            raise GroupUnavailableError(
                self.name, failure.reason, attempts=self._failures + 1, permanent=failure.permanent
            ) from exc
        return client

    async def _fail(self, error: GroupUnavailableError) -> None:
        first_failure = self.state is not State.FAILED
        self._failures += 1
        quick = self._failures - 1
        if not error.permanent and quick < len(QUICK_RETRY_DELAYS):
            delay = QUICK_RETRY_DELAYS[quick]
        else:
            delay = BACKGROUND_RETRY_INTERVAL
        self.state, self.error = State.FAILED, error
        self.retry_at = time.monotonic() + delay
        logger.warning("%s (next attempt in %gs)", error, delay)
        if first_failure:
            await self._notify()

    def _still_failed(self) -> GroupUnavailableError:
        """The last failure, told again with when the next retry is due."""
        assert self.error is not None
        wait = max(0.0, (self.retry_at or time.monotonic()) - time.monotonic())
        return GroupUnavailableError(
            self.name,
            f"{self.error.cause}; retrying in the background, next attempt in {wait:.0f}s",
            attempts=self._failures,
            permanent=self.error.permanent,
        )

    async def _notify(self) -> None:
        if self._on_state_change is not None:
            await self._on_state_change(self)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)


def _forward_requests_to_caller(client: ProxyClient) -> None:
    """Let the upstream's progress, logs, sampling and elicitation reach the calling client.

    FastMCP's proxy tools do this before each backend call; calling the session directly,
    we do the same, through the same (private) helper so the behaviour cannot drift.
    """
    try:
        context = get_context()
    except RuntimeError:  # not inside a client request (e.g. a direct library call)
        return
    _stash_proxy_request_context(client, context)


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


def _describe(config: ServerConfig) -> str:
    """The config as written, `${VAR}` unresolved: secrets stay out of the log."""
    if isinstance(config, StdioServer):
        env = f" env: {sorted(config.env)}" if config.env else ""
        return f"{config.command} {' '.join(config.args)}{env}"
    headers = f" headers: {sorted(config.headers)}" if config.headers else ""
    return f"{config.type} {config.url}{headers}"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= LOG_PREVIEW else text[:LOG_PREVIEW] + "…"
