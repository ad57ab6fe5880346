"""One group's upstream: connected lazily, its sessions kept and reused, retried, closed.

    upstream = Upstream("time", server_config, read_variables, redactor)
    tools = await upstream.list_tools()                           # first use: spawn + initialize
    result = await upstream.call_tool("get_current_time", {"timezone": "UTC"}, caller)
    await upstream.aclose()                                       # every child process is gone

Guarantees:
- nothing is started before the first request, and concurrent first requests share one
  connection attempt; later requests reuse the session (one process per stdio group). A
  session that died is replaced on the next request; a late error from a session that was
  already replaced never touches its successor;
- over stdio every request shares one session; over HTTP each client gets sessions of its
  own (`Caller.key`), closed when the client goes (`release`, registered with the client's
  connection whatever it asked for), so one client's sampling, elicitation and data never
  reach another, and no session outlives its client;
- `${VAR}` (environment and `.env`) is read again at each attempt; an attempt is bounded by
  `CONNECT_TIMEOUT`; after a failure the group is FAILED and requests answer at once with
  the reason and when the next retry is due, while `keep_retrying()` tries again in the
  background (2 s, 4 s, 8 s after a transient failure, then every 30 s); a retry keeps
  its session only for requests that share one (stdio), else closes it at once. A failure
  that is cheap to check (an unset variable) is checked again on the next request instead;
- every call is bounded by the group's configured timeout; on expiry the upstream is sent
  a cancellation and the model an `UpstreamTimeoutError`;
- the tools are answered from the catalog (by launch identity) only while the caller has
  no live session; each session lists its tools once and that live list replaces the
  catalog entry (a difference is announced); the upstream's `tools/list_changed` drops the
  session's list and the catalog's answer, so the next expansion and call list anew, and
  its resources or prompts `list_changed` is passed on (`on_list_changed`);
- every request to the upstream counts as use (tools; resources, templates and prompts
  through the proxy, from the moment it asks for a session until the client's request
  ends): while one is in flight its sessions are never stopped for being idle, and
  closing (`rest`, `retire`, `aclose`) waits for it, bounded;
- errors name things as the config writes them: no resolved secret reaches a message;
- after `aclose()` no process or socket of this group is left.

Tools are listed and called on the session itself. The group's resources and prompts are
served through a FastMCP proxy (`self.proxy`, see `groups.mounting.proxy`), mounted on the root,
whose client factory hands it the caller's session.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types

from groups.config import ServerConfig, StdioServer
from groups.errors import (
    FeatureDisabledError,
    GroupUnavailableError,
    SignInNeededError,
    ToolHiddenError,
    UnknownToolError,
    UpstreamTimeoutError,
)
from groups.internals import connection_of
from groups.secrets import Redactor, shown_args, shown_url
from groups.upstream.callers import CallbackRoute, Caller
from groups.upstream.failures import AuthorizationRequired, Failure, classify, is_connection_lost

if TYPE_CHECKING:
    from fastmcp import Client

    from groups.auth.oauth import GroupOAuth, SignIn
    from groups.catalog import Catalog
    from groups.mounting.proxy import GroupProxy
    from groups.storage.store import Scope

__all__ = ["CONNECT_TIMEOUT", "Session", "State", "Upstream"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # spawn + initialize per attempt; a silent upstream must not hang us
# Upstreams starting at once. Dozens of cold starts on two cores each take longer than
# CONNECT_TIMEOUT, fail, and restart together forever; queued, they all come up.
STARTS_AT_ONCE = max(4, 2 * (os.cpu_count() or 2))
QUICK_RETRY_DELAYS = (2.0, 4.0, 8.0)  # after a transient failure, as the Rust dynamic-mcp
BACKGROUND_RETRY_INTERVAL = 30.0  # then, and after a permanent failure, until it recovers
CLOSE_TIMEOUT = 5.0  # graceful stop of one session before its process is killed
# At close, requests under way get this long to finish. Short: at shutdown the processes
# left are ended after `registry.SHUTDOWN_GRACE` whatever happens.
IN_FLIGHT_GRACE = 1.0
LOG_PREVIEW = 500  # characters of a request or result shown in debug logs


class State(enum.Enum):
    """Where a group's connection stands."""

    IDLE = "idle"  # configured; nothing started yet (the state at server start)
    READY = "ready"  # the last attempt connected; sessions serve requests
    FAILED = "failed"  # the last attempt failed; `error` says why, `retry_at` when next
    CLOSED = "closed"  # the server is shutting down; no new connections


StateListener = Callable[["Upstream"], None]
ListListener = Callable[["Upstream", str], None]  # the upstream's "resources" or "prompts" changed
SessionKey = Hashable | None  # `Caller.key`: None is the session every stdio request shares


@dataclass(eq=False)
class Session:
    """One live upstream session and where its callbacks go."""

    client: Client
    route: CallbackRoute
    lost: bool = False  # a request saw it end; the next request replaces it
    auth: GroupOAuth | None = None  # a remote session's OAuth: it knows when a person is needed
    tools: list[mcp_types.Tool] | None = None  # as listed on this session, once
    tool_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Inventory:
    """What a group serves through dynamic-mcp. None: the config turns the feature off, or
    the upstream does not offer it."""

    tools: list[mcp_types.Tool] | None  # as the model sees them, filters applied
    resources: int | None  # resources and resource templates
    prompts: int | None


class Upstream:
    """The connection to one upstream MCP server, and the proxy that serves it."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        variables: Callable[[], Mapping[str, str]],
        redactor: Redactor,
        *,
        on_state_change: StateListener | None = None,
        start_slots: anyio.Semaphore | None = None,
        on_list_changed: ListListener | None = None,
        catalog: Catalog | None = None,
        identity: str = "",
        idle_timeout: float | None = None,
        browser_sign_in: bool = True,
    ) -> None:
        self.name = name
        # False from a terminal command, which ends before a browser sign-in could finish.
        self.browser_sign_in = browser_sign_in
        self.config = config
        self.idle_timeout = idle_timeout  # seconds unused before a stdio upstream is stopped
        self.catalog = catalog  # the tools kept on disk, or None: always ask the upstream
        self._identity = identity  # the catalog's key (`groups.config.identity`)
        # The upstream said its tools changed since the catalog entry was last replaced.
        self._catalog_stale = False
        self._last_used = time.monotonic()
        self.state = State.IDLE
        self.error: GroupUnavailableError | None = None
        self.retry_at: float | None = None  # time.monotonic() of the next background attempt
        self._failures = 0  # consecutive failed attempts
        self._variables = variables
        self._redactor = redactor
        self._on_state_change = on_state_change
        self._on_list_changed = on_list_changed
        self._start_slots = start_slots or anyio.Semaphore(STARTS_AT_ONCE)
        self._sessions: dict[SessionKey, Session] = {}
        self._shared_used = False  # a request asked for the shared session (key None)
        self._lock = anyio.Lock()  # state changes and connection attempts
        # Requests under way: they hold their sessions against an idle stop, and a close
        # waits (bounded) for them.
        self._in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._closing_reason = "dynamic-mcp is shutting down"
        self._sign_in: SignIn | None = None  # the OAuth sign-in under way or last done
        # One OAuth client per endpoint, shared by every session: a refresh is done once,
        # and a rotated refresh token reaches every session at once.
        self._oauth: dict[str, GroupOAuth] = {}

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, state={self.state.value}, sessions={len(self._sessions)})"

    @functools.cached_property
    def proxy(self) -> GroupProxy:
        """The FastMCP server that serves this group's resources and prompts, made on first use."""
        from groups.mounting.proxy import GroupProxy

        return GroupProxy(self.name, self._proxy_client, lambda: self.config.features)

    # ---- sessions ---------------------------------------------------------------------

    async def session(self, caller: Caller | None = None) -> Session:
        """The live session that serves `caller`, connecting first if there is none.

        Raises:
            GroupUnavailableError: the group is failed (at once, with the last reason and
                when the next retry is due) or this attempt to connect failed.
        """
        key = caller.key if caller is not None else None
        self._shared_used |= key is None
        live = self._sessions.get(key)
        if live is not None and not live.lost:
            return live  # the path of every call but the first: no lock, no await
        async with self._lock:
            if self.state is State.CLOSED:
                raise GroupUnavailableError(self.name, self._closing_reason)
            if self.state is State.FAILED and not (self.error and self.error.on_next_request):
                raise self._still_failed()
            if self._sign_in is not None and self._sign_in.pending:
                raise SignInNeededError(self.name, self._sign_in.link)  # no second sign-in
            live = self._sessions.get(key)
            if live is None or live.lost:
                if live is not None:
                    logger.warning("group %s: the upstream session ended; reconnecting", self.name)
                live = await self._attempt(key)
                if caller is not None and key is not None:
                    # Its own session ends with the client, whatever it asked for: a
                    # client that only reads resources is never seen by the notifier.
                    caller.connection.exit_stack.push_async_callback(self.release, key)
            return live

    async def keep_retrying(self) -> None:
        """Retry a failed group in the background until it connects or is closed.

        The session a retry connects is the shared one (key None), kept for the requests
        that share it (stdio). Where none does (HTTP clients each have their own), the
        retry only finds the upstream back and closes its session: no process runs for
        a caller that does not exist.
        """
        while self.state is State.FAILED and self.retry_at is not None:
            await anyio.sleep(max(0.0, self.retry_at - time.monotonic()))
            async with self._lock:
                if self.state is not State.FAILED:
                    return
                logger.info("group %s: retrying (attempt %d)", self.name, self._failures + 1)
                try:
                    await self._attempt(None)
                except GroupUnavailableError:
                    continue
                unused = None if self._shared_used else self._sessions.pop(None, None)
            if unused is not None:
                await _close_quietly(unused.client)
            return

    async def release(self, key: SessionKey) -> None:
        """Close the session that served one client, which has gone away."""
        session = self._sessions.pop(key, None)
        if session is not None:
            await _close_quietly(session.client)

    async def retire(self) -> None:
        """Close once the requests in flight are done: a reload changed or removed the group.

        Requests in flight finish as they would have (each is bounded by its own time
        limit); the registry sends new ones to the group's new upstream, if it has one.
        """
        self._closing_reason = "a config reload changed or removed this group"
        timeouts = self.config.timeout
        grace = max(
            t.total_seconds() for t in (timeouts.tools, timeouts.resources, timeouts.prompts)
        )
        with anyio.move_on_after(grace + CLOSE_TIMEOUT):
            await self._idle.wait()
        await self.aclose()

    async def aclose(self) -> None:
        """End every session and its process; the upstream cannot be used again.

        No new connection is made from here on; requests in flight get up to
        `IN_FLIGHT_GRACE` to finish before their sessions close.
        """
        async with self._lock:
            self.state, self.retry_at = State.CLOSED, None
        with anyio.move_on_after(IN_FLIGHT_GRACE):
            await self._idle.wait()
        async with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        if self._sign_in is not None:
            self._sign_in.cancel()  # its callback port is free for the group's successor
        async with anyio.create_task_group() as closing:
            for session in sessions:
                closing.start_soon(_close_quietly, session.client)

    # ---- requests ---------------------------------------------------------------------

    async def list_tools(self, caller: Caller | None = None) -> list[mcp_types.Tool]:
        """The tools the group offers: from the catalog while it has no live session, else
        from the upstream, once per session.

        Raises:
            FeatureDisabledError: the config turns this group's tools off.
            GroupUnavailableError, UpstreamTimeoutError: as for `call_tool`.
        """
        self._require_tools()
        tools = await self._catalogued(caller)
        if tools is None:
            with self._counted():
                try:
                    tools = await self._tools_of(await self.session(caller))
                except _RefusedMidSession as refused:
                    raise await self._ask_to_sign_in(refused.auth) from None
        return self._visible(tools)

    async def known_tools(self) -> list[mcp_types.Tool] | None:
        """The tools the group offers as far as is known without asking: None if nothing is."""
        if not self.config.features.tools:
            return []
        live = next((s.tools for s in self._sessions.values() if s.tools is not None), None)
        known = live if live is not None else await self._catalogued(None)
        if known is None:
            return None
        return self._visible(known)

    async def inventory(self) -> Inventory:
        """What the group serves, asked of the upstream now, connecting first if need be.

        Raises:
            GroupUnavailableError, SignInNeededError, UpstreamTimeoutError: as for `call_tool`.
        """
        features, timeouts = self.config.features, self.config.timeout
        with self._counted():
            session = await self.session()
            client = session.client
            offered = client.initialize_result.capabilities if client.initialize_result else None
            try:
                tools = self._visible(await self._tools_of(session)) if features.tools else None
                resources = prompts = None
                if features.resources and offered and offered.resources:
                    limit = timeouts.resources.total_seconds()
                    with self._bounded(session, "Listing resources", limit):
                        resources = len(await client.list_resources())
                        resources += len(await client.list_resource_templates())
                if features.prompts and offered and offered.prompts:
                    limit = timeouts.prompts.total_seconds()
                    with self._bounded(session, "Listing prompts", limit):
                        prompts = len(await client.list_prompts())
            except _RefusedMidSession as refused:
                raise await self._ask_to_sign_in(refused.auth) from None
        return Inventory(tools, resources, prompts)

    def _visible(self, tools: list[mcp_types.Tool]) -> list[mcp_types.Tool]:
        """The tools the group's `tools` filter leaves for the model to see."""
        return [tool for tool in tools if not self.config.tools.hides(tool.name)]

    async def _catalogued(self, caller: Caller | None) -> list[mcp_types.Tool] | None:
        """The catalog's tools, unless there is no catalog, the caller has a session, or the
        upstream has said since the entry was written that its tools changed."""
        live = self._sessions.get(caller.key if caller is not None else None)
        if self.catalog is None or self._catalog_stale or (live is not None and not live.lost):
            return None
        return await self.catalog.get(self._identity)

    @property
    def idle_for(self) -> float | None:
        """Seconds since the last request ended, or None while one is under way or none runs."""
        if self._in_flight or not self._sessions:
            return None
        return time.monotonic() - self._last_used

    async def rest(self) -> None:
        """Stop the upstream while it is unused; the next request starts it again."""
        async with self._lock:
            if self.idle_for is None or self.state is State.CLOSED:
                return
            sessions, self._sessions = list(self._sessions.values()), {}
        logger.info("group %s: stopping its upstream, unused for %gs", self.name, self.idle_timeout)
        for session in sessions:
            await _close_quietly(session.client)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], caller: Caller | None = None
    ) -> mcp_types.CallToolResult:
        """Call one tool and return the upstream's result unchanged (content, isError…).

        The request goes straight onto the session: the result is neither validated
        against the tool's output schema nor converted, so it arrives as it was sent.

        Raises:
            FeatureDisabledError: the config turns this group's tools off.
            ToolHiddenError: the group's `tools` filter hides `name`.
            UnknownToolError: the upstream has no tool `name`.
            UpstreamTimeoutError: no answer within the group's tool timeout.
            GroupUnavailableError: the upstream could not be reached, or died mid-call.
        """
        self._require_tools()
        if why := self.config.tools.hides(name):
            raise ToolHiddenError(self.name, name, why)
        with self._counted():
            try:
                return await self._call_tool(name, arguments, caller)
            except _RefusedMidSession as refused:
                raise await self._ask_to_sign_in(refused.auth) from None

    async def _call_tool(
        self, name: str, arguments: dict[str, Any], caller: Caller | None
    ) -> mcp_types.CallToolResult:
        session = await self.session(caller)
        if name not in session.tool_names:
            tools = await self._tools_of(session, refresh=True)  # it may have added one
            if name not in session.tool_names:
                offered = [tool.name for tool in self._visible(tools)]
                raise UnknownToolError(self.name, name, offered)
        request = mcp_types.CallToolRequest(
            params=mcp_types.CallToolRequestParams(name=name, arguments=arguments)
        )
        progress = caller.report_progress if caller is not None and caller.wants_progress else None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("→ %s tools/call %s %s", self.name, name, _preview(arguments))
        with (
            session.route.calling(caller),
            self._bounded(session, f"Tool {name!r}", self.config.timeout.tools.total_seconds()),
        ):
            result = await session.client.session.send_request(
                request, mcp_types.CallToolResult, progress_callback=progress
            )
        if logger.isEnabledFor(logging.DEBUG):
            error = " (isError)" if result.is_error else ""
            logger.debug("← %s tools/call %s%s %s", self.name, name, error, _preview(result))
        return result

    async def _tools_of(self, session: Session, *, refresh: bool = False) -> list[mcp_types.Tool]:
        """The tools `session` offers: listed once, and again with `refresh`."""
        if session.tools is None or refresh:
            logger.debug("→ %s tools/list", self.name)
            timeout = self.config.timeout.tools.total_seconds()
            with self._bounded(session, "Listing tools", timeout):
                session.tools = await session.client.list_tools()
            session.tool_names = frozenset(tool.name for tool in session.tools)
            logger.debug("← %s tools/list: %d tools", self.name, len(session.tools))
            self._catalog_stale = False
            if self.catalog is not None and await self.catalog.put(self._identity, session.tools):
                self._notify()  # the tools differ from the ones the catalog had given out
        return session.tools

    async def _proxy_client(self) -> Client:
        """The client FastMCP's proxy reads this group's resources and prompts through.

        FastMCP asks for it at the start of each upstream request; the client request it
        serves counts as one in flight until it ends (`groups.mounting.in_flight`), so an idle stop
        or a close never cuts it short, and its end counts as the group's last use.
        """
        from fastmcp.server.dependencies import get_context

        from groups.mounting.in_flight import hold_until_request_ends

        try:
            ctx = get_context()
            caller = Caller(ctx.session, ctx.request_id, connection_of(ctx.session))
        except RuntimeError:  # not inside a client request (a direct library call)
            caller = None
        # Counted before the session is looked up: an idle stop cannot take it in between.
        if not hold_until_request_ends(self._counted()):
            self._last_used = time.monotonic()  # nothing tells when it ends: a use now
        return (await self.session(caller)).client

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a request in flight: it holds the sessions open, and its end is a use."""
        if self._in_flight == 0:
            self._idle = anyio.Event()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_used = time.monotonic()
            if self._in_flight == 0:
                self._idle.set()

    @contextmanager
    def _bounded(self, session: Session, operation: str, timeout: float) -> Iterator[None]:
        """A time limit on one upstream request that reports the group's own timeout.

        Leaving the scope cancels the request; the MCP client then sends the upstream a
        `notifications/cancelled`. A session that dies mid-request is marked lost (that
        session, not whichever replaced it) and becomes an error naming the group.
        """
        try:
            with anyio.fail_after(timeout):
                yield
        except TimeoutError:
            raise UpstreamTimeoutError(self.name, operation, timeout) from None
        except Exception as exc:
            if session.auth is not None and session.auth.needs_sign_in:
                session.lost = True  # its tokens were refused: a new session signs in anew
                raise _RefusedMidSession(session.auth) from exc
            if not is_connection_lost(exc):
                raise
            session.lost = True
            cause = (
                f"the upstream went away during {operation.lower()}; the next request reconnects"
            )
            if self.state is State.CLOSED:
                cause = f"{self._closing_reason} during {operation.lower()}; call again"
            raise GroupUnavailableError(self.name, cause) from exc

    def _heard(self, session: Session | None, message: object) -> None:
        """An upstream's notification: a list it changed is asked for anew when next needed.

        Runs in the session's receive loop, so it only takes note: it must not wait on the
        upstream it is listening to.
        """
        if isinstance(message, mcp_types.ToolListChangedNotification):
            logger.info("group %s: the upstream's tools changed", self.name)
            self._catalog_stale = True  # until a listing replaces the entry
            if session is not None:
                session.tools, session.tool_names = None, frozenset()
        elif isinstance(message, mcp_types.ResourceListChangedNotification):
            self._lists_changed("resources")
        elif isinstance(message, mcp_types.PromptListChangedNotification):
            self._lists_changed("prompts")

    def _lists_changed(self, kind: str) -> None:
        if self._on_list_changed is not None and getattr(self.config.features, kind):
            self._on_list_changed(self, kind)

    def _require_tools(self) -> None:
        if not self.config.features.tools:
            raise FeatureDisabledError(self.name, "tools")

    # ---- connecting -------------------------------------------------------------------

    async def _attempt(self, key: SessionKey) -> Session:
        """One connection attempt for `key`; on failure the group becomes FAILED (and raises)."""
        old = self._sessions.pop(key, None)
        if old is not None:
            await _close_quietly(old.client)
        route = CallbackRoute(self.name)
        made: list[Session] = []  # the session, once made: what its notifications are about

        async def on_message(message: object) -> None:
            self._heard(made[0] if made else None, message)

        try:
            client, auth = await self._connect(route, on_message)
        except AuthorizationRequired:
            raise await self._ask_to_sign_in() from None
        except GroupUnavailableError as error:
            self._fail(error)
            raise
        session = self._sessions[key] = Session(client, route, auth=auth)
        made.append(session)
        recovered = self.state is State.FAILED
        self.state, self.error, self.retry_at, self._failures = State.READY, None, None, 0
        logger.info("group %s connected%s", self.name, " again" if recovered else "")
        if recovered:
            self._notify()
        return session

    async def _connect(
        self, route: CallbackRoute, on_message: Callable[[Any], Awaitable[None]]
    ) -> tuple[Client, GroupOAuth | None]:
        """A connected client, and the OAuth it signs its requests with (remote groups).

        Raises:
            AuthorizationRequired: the server wants a person to sign in.
            GroupUnavailableError: anything else went wrong.
        """
        # Client transports, httpx clients and OAuth are imported by the first connection,
        # not at start-up: serving two tools needs none of them.
        from fastmcp import Client

        from groups.upstream.transport import HttpErrorLog, build_transport

        remote = not isinstance(self.config, StdioServer)
        http_errors = HttpErrorLog(self.config.url) if remote else None
        auths: list[GroupOAuth] = []

        def session_oauth(url: str) -> GroupOAuth:
            from groups.auth.oauth import GroupOAuth

            assert not isinstance(self.config, StdioServer)
            if url not in self._oauth:
                self._oauth[url] = GroupOAuth(url, self.config, self._tokens())
            auths.append(self._oauth[url])
            return auths[-1]

        transport = build_transport(
            self.name,
            self.config,
            self._variables(),
            self._redactor,
            http_errors,
            oauth=session_oauth if remote else None,
        )
        client = Client(
            transport,
            name=f"dynamic-mcp:{self.name}",
            init_timeout=CONNECT_TIMEOUT,
            # A proxy session forwards sampling, elicitation and roots requests, which only
            # the handshake era has.
            mode="legacy",
            message_handler=on_message,
            **route.client_handlers(),
        )
        try:
            # The time limit starts once it is this upstream's turn to start.
            async with self._start_slots:
                logger.info("connecting group %s: %s", self.name, _describe(self.config))
                with anyio.fail_after(CONNECT_TIMEOUT):
                    await client.__aenter__()  # held until the session closes
        except Exception as exc:
            await _close_quietly(client)
            if any(auth.needs_sign_in for auth in auths):
                raise AuthorizationRequired(self.name) from exc
            command = self.config.command if isinstance(self.config, StdioServer) else None
            failure = classify(exc, http_errors.last if http_errors else None, command)
            if isinstance(exc, TimeoutError):
                failure = Failure(f"no answer within {CONNECT_TIMEOUT:g}s", permanent=False)
            raise GroupUnavailableError(
                self.name,
                self._redactor.scrub(failure.reason),
                attempts=self._failures + 1,
                permanent=failure.permanent,
            ) from exc
        return client, (auths[-1] if auths else None)

    def _tokens(self) -> Scope:
        from groups.auth.tokens import oauth_tokens

        return oauth_tokens(self.name, self._redactor)

    async def _ask_to_sign_in(self, auth: GroupOAuth | None = None) -> SignInNeededError:
        """Start the browser sign-in (unless one waits already); the error that gives its link."""
        from groups.auth.oauth import SignIn

        if not self.browser_sign_in:
            return SignInNeededError(self.name, None, by_command=True)
        if self._sign_in is None or not self._sign_in.pending:
            url = auth.mcp_url if auth is not None else self._resolved_url()
            assert not isinstance(self.config, StdioServer)
            self._sign_in = SignIn(self.name, url, self.config, self._tokens())
        link = await self._sign_in.start()
        return SignInNeededError(self.name, link, self._sign_in.error)

    def _resolved_url(self) -> str:
        from groups.config import interpolate

        assert not isinstance(self.config, StdioServer)
        return interpolate(self.config.url, self._variables(), self._redactor)

    def _fail(self, error: GroupUnavailableError) -> None:
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
            self._notify()

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

    def _notify(self) -> None:
        if self._on_state_change is not None:
            self._on_state_change(self)


class _RefusedMidSession(Exception):
    """A session's tokens were refused, and its OAuth wants a person: sign in anew."""

    def __init__(self, auth: GroupOAuth) -> None:
        self.auth = auth


async def _close_quietly(client: Client) -> None:
    """Close a client whatever state it is in, bounded, even while being cancelled."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
        try:
            await client.close()
        except Exception as exc:  # a dying session may fail its own shutdown; it is gone either way
            logger.debug("closing %s: %s", client.name, exc)


def _describe(config: ServerConfig) -> str:
    """The config as written, `${VAR}` unresolved and secret values hidden."""
    if isinstance(config, StdioServer):
        env = f" env: {sorted(config.env)}" if config.env else ""
        return f"{config.command} {' '.join(shown_args(config.args))}{env}"
    headers = f" headers: {sorted(config.headers)}" if config.headers else ""
    return f"{config.type} {shown_url(config.url)}{headers}"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= LOG_PREVIEW else text[:LOG_PREVIEW] + "…"
