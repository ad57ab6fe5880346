"""One group's upstream: connected lazily, its sessions kept and reused, retried, closed.

    upstream = Upstream("time", server_config, read_variables, redactor)
    tools = await upstream.list_tools()                           # first use: spawn + initialize
    result = await upstream.call_tool("get_current_time", {"timezone": "UTC"}, caller)
    upstream.start_early(caller)      # the registry, after an expansion from the catalog
    await upstream.aclose()                                       # every child process is gone

`Upstream` is the one object the registry talks to; it composes the parts, each with its
own guarantees: `sessions` (the session table and the limit on each request), `connect`
(one attempt: transport, OAuth, client), `health` (FAILED and when to retry),
`background` (the retries, and starts ahead of a call), `inventory` (the tools, the
catalog, the filters), `calls` (requests in flight, tool calls), `resting` (idle stops)
and `sign_in` (when a person must sign in, and whose tokens a session carries).

Guarantees:
- nothing is started before the first request (or `start_early`, which a request's
  expansion asks for); later requests reuse its session (one process per stdio group;
  one session per client over HTTP, see `sessions`; on a gateway with named users, see
  `callers.session_key`: a remote session never serves two users, a stdio process is
  every user's or, with `"sessions": "per-user"`, one user's);
- a retry keeps its session only for requests that share one (stdio), else closes it at once;
- closing (`retire`, `aclose`) waits for the requests in flight, bounded, and a request
  that is cut short says why; an idle stop (`rest_idle`) never ends a session in use or
  one a client is subscribed to a resource of, since its updates come only while it runs;
- errors name things as the config writes them: no resolved secret reaches a message;
- after `aclose()` no process or socket of this group is left.

Tools are listed and called on the session itself. The group's resources and prompts are
served through a FastMCP proxy (`self.proxy`, see `groups.mounting.proxy`), mounted on the root,
whose client factory hands it the caller's session; their completions and subscriptions,
which the proxy does not forward, are sent on that session within `request()`
(`groups.mounting.forwarded`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types

from groups.config import ServerConfig, StdioServer
from groups.errors import GroupUnavailableError
from groups.secrets import Redactor
from groups.upstream.background import Background
from groups.upstream.callers import Caller, session_key
from groups.upstream.calls import IN_FLIGHT_GRACE, InFlight, send_tool_call
from groups.upstream.connect import CLOSE_TIMEOUT, STARTS_AT_ONCE, Connector
from groups.upstream.failures import AuthorizationRequired
from groups.upstream.health import Health, State
from groups.upstream.inventory import Inventory, Tools
from groups.upstream.resting import Resting
from groups.upstream.sessions import (
    RefusedMidSession,
    Session,
    SessionKey,
    Sessions,
    UpstreamUse,
    close_all,
)
from groups.upstream.sign_in import GroupSignIn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastmcp import Client

    from groups.access import User
    from groups.catalog import Catalog
    from groups.mounting.proxy import GroupProxy

__all__ = ["Upstream"]

logger = logging.getLogger(__name__)

StateListener = Callable[["Upstream"], None]
ListListener = Callable[["Upstream", str], None]  # the upstream's "resources" or "prompts" changed


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
        self.config = config  # read at each request: a reload may replace it in place
        self.catalog = catalog  # the tools kept on disk, or None: always ask the upstream
        self.idle_timeout = idle_timeout  # seconds unused before a stdio upstream is stopped
        self._on_state_change = on_state_change
        self._on_list_changed = on_list_changed
        self._health = Health(name, on_change=self._notify)
        self._sessions = Sessions(
            name, open_session=self._connect, admit=self._admit, key_of=self._key_of
        )
        self._in_flight = InFlight()
        # browser_sign_in: False from a terminal command, which ends before one could finish
        config_now = lambda: self.config  # noqa: E731 - the parts read it at each use
        self.sign_in = GroupSignIn(name, config_now, variables, redactor, browser=browser_sign_in)
        slots = start_slots or anyio.Semaphore(STARTS_AT_ONCE)
        self._connector = Connector(name, variables, redactor, slots, self.sign_in)
        self._tools = Tools(
            name, identity, lambda: self.catalog, config_now, self._notify, self._lists_changed
        )
        pending = lambda caller: self.sign_in.pending(_user(caller))  # noqa: E731
        self._background = Background(name, self._health, self._sessions, self._in_flight, pending)
        self._resting = Resting(name, self._sessions, self._in_flight, self._health)

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, state={self.state.value}, sessions={len(self._sessions)})"

    @property
    def state(self) -> State:
        """Where the group's connection stands."""
        return self._health.state

    @property
    def error(self) -> GroupUnavailableError | None:
        """Why the last attempt failed, while the group is FAILED."""
        return self._health.error

    def retry_on(self, schedule: tuple[tuple[float, ...] | None, float | None]) -> None:
        """Background retries from now: the quick delays, then the interval (seconds; None:
        the default); the next failure's delay follows it."""
        self._health.schedule = schedule

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
            SignInNeededError: the server wants a person to sign in first.
        """
        return await self._sessions.session(caller)

    async def keep_retrying(self) -> None:
        """Retry a failed group in the background until it connects or is closed."""
        await self._background.keep_retrying()

    def start_early(self, caller: Caller | None = None) -> None:
        """Start the session that will serve `caller`, in the background: an expansion was
        answered from the catalog, so a call is coming. Nothing if a session serves it, or
        the group is failed, closed or waiting for a sign-in (`groups.upstream.background`)."""
        self._background.start_early(caller)

    async def release(self, key: SessionKey) -> None:
        """Close the session that served one client, which has gone away."""
        await self._sessions.release(key)

    async def retire(self) -> None:
        """Close once the requests in flight are done: a reload changed or removed the group.

        Requests in flight finish as they would have (each is bounded by its own time
        limit); the registry sends new ones to the group's new upstream, if it has one.
        """
        self._health.closing_reason = "a config reload changed or removed this group"
        self._background.cancel()  # its requests finish; nothing starts for its successor
        timeouts = self.config.timeout
        limits = (timeouts.tools, timeouts.resources, timeouts.prompts)
        grace = max(limit.total_seconds() for limit in limits)
        await self._in_flight.settled(within=grace + CLOSE_TIMEOUT)
        await self.aclose()

    async def aclose(self) -> None:
        """End every session and its process; the upstream cannot be used again.

        No new connection is made from here on; requests in flight get up to
        `IN_FLIGHT_GRACE` to finish before their sessions close.
        """
        self._background.cancel()
        async with self._sessions.lock:
            self._health.close()
            self._sessions.closing(self._health.closing_reason)
        await self._in_flight.settled(within=IN_FLIGHT_GRACE)
        async with self._sessions.lock:
            sessions = self._sessions.take_all()
        self.sign_in.cancel()  # its callback port is free for the group's successor
        await close_all(sessions)

    async def end_user(self, user: str, because: str) -> int:
        """End what serves `user` alone: their own process or remote sessions (a request
        cut short says `because`), their sign-in and their OAuth clients (the next use
        reads the store anew); how many sessions ended. A shared process keeps running."""
        self.sign_in.forget_user(user)
        async with self._sessions.lock:
            sessions = self._sessions.take_user(user, because)
        await close_all(sessions)
        return len(sessions)

    def uses(self) -> list[UpstreamUse]:
        """Each live session of this group, and whose it is."""
        return [
            UpstreamUse(
                self.name,
                None if key is None else session.user,
                self.config.type,
                session.pid,
                session.idle_for,
            )
            for key, session in self._sessions.items()
            if not session.lost
        ]

    async def rest_idle(self) -> None:
        """Stop what has been unused for `idle_timeout` (`groups.upstream.resting`): the
        whole upstream, else each user's own process that user has not used that long."""
        await self._resting.rest_idle(self.idle_timeout)

    # ---- requests ---------------------------------------------------------------------

    async def list_tools(self, caller: Caller | None = None) -> list[mcp_types.Tool]:
        """The tools the group offers: from the catalog while it has no live session, else
        from the upstream, once per session.

        Raises:
            FeatureDisabledError: the config turns this group's tools off.
            GroupUnavailableError, SignInNeededError, UpstreamTimeoutError: as for `call_tool`.
        """
        self._tools.check_enabled()
        key = self._key_of(caller)
        tools = await self._tools.catalogued(has_session=self._sessions.live(key) is not None)
        if tools is None:
            async with self.request():
                tools = await self._tools.of(await self.session(caller))
        return self._tools.visible(tools, caller.user if caller is not None else None)

    async def known_tools(self, user: User | None = None) -> list[mcp_types.Tool] | None:
        """The tools the group offers `user` as far as is known without asking: None if
        nothing is."""
        if not self.config.features.tools:
            return []
        known = self._sessions.listed_tools()
        if known is None:
            known = await self._tools.catalogued(has_session=self._sessions.live(None) is not None)
        return None if known is None else self._tools.visible(known, user)

    async def inventory(self) -> Inventory:
        """What the group serves, asked of the upstream now, connecting first if need be.

        Raises:
            GroupUnavailableError, SignInNeededError, UpstreamTimeoutError: as for `call_tool`.
        """
        async with self.request():
            session = await self.session()
            tools = None
            if self.config.features.tools:
                tools = self._tools.visible(await self._tools.of(session))
            resources, prompts = await self._tools.count_others(session)
        return Inventory(tools, resources, prompts)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], caller: Caller | None = None
    ) -> mcp_types.CallToolResult:
        """Call one tool and return the upstream's result unchanged (content, isError…).

        Raises:
            FeatureDisabledError: the config turns this group's tools off.
            ToolHiddenError: the group's `tools` filter hides `name`.
            UnknownToolError: the upstream has no tool `name`.
            UpstreamTimeoutError: no answer within the group's tool timeout.
            GroupUnavailableError: the upstream could not be reached, or died mid-call.
            SignInNeededError: the server wants a person to sign in first.
        """
        user = caller.user if caller is not None else None
        self.check_callable(name, user)
        async with self.request():
            session = await self.session(caller)
            await self._tools.require(session, name, user)
            timeout = self.config.timeout.tools.total_seconds()
            return await send_tool_call(session, name, arguments, caller, limit=timeout)

    def launched(self) -> set[str]:
        """The launch identities its live sessions were started with."""
        return {
            session.launched
            for _, session in self._sessions.items()
            if not session.lost and session.launched is not None
        }

    def processes(self) -> int:
        """The upstream processes this group runs now: a stdio group's sessions."""
        return len(self._sessions) if isinstance(self.config, StdioServer) else 0

    def check_callable(self, name: str, user: User | None = None) -> None:
        """Raises:
        FeatureDisabledError: the config turns this group's tools off.
        ToolHiddenError: the group's `tools` filter hides `name` (from `user`)."""
        self._tools.check_callable(name, user)

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """One request to the upstream: counted in flight, and a session whose tokens were
        refused turned into a sign-in (`groups.mounting.forwarded` sends some in it)."""
        with self._in_flight.counted():
            try:
                yield
            except RefusedMidSession as refused:
                raise await self.sign_in.needed(refused.user, refused.auth) from None

    async def _proxy_client(self) -> Client:
        """The client FastMCP's proxy reads this group's resources and prompts through.

        FastMCP asks for it at the start of each upstream request: the client request it
        serves counts as one in flight until it ends, so an idle stop or a close never
        cuts it short. Counted before the session is looked up: an idle stop cannot take
        it in between.
        """
        from groups.mounting.in_flight import hold_until_request_ends

        self._in_flight.hold_until_request_ends()
        session = await self.session(Caller.of_current_request())
        hold_until_request_ends(session.used())  # its own use: a user's idle stop waits too
        return session.client

    # ---- connecting -------------------------------------------------------------------

    def _key_of(self, caller: Caller | None) -> SessionKey:
        return session_key(caller, self.config)  # as the config is now: a reload may change it

    async def _admit(self, caller: Caller | None) -> None:
        """Refuse a connection attempt that must not be made now (under the sessions' lock)."""
        self._health.check()
        if self.sign_in.pending(_user(caller)):
            raise await self.sign_in.told(_user(caller))  # no second sign-in

    async def _connect(self, caller: Caller | None) -> Session:
        """One connection attempt for `caller` (with its user's OAuth tokens, for a remote
        group); on failure the group becomes FAILED (and raises)."""
        attempt = self._health.failures + 1
        user = _user(caller)
        try:
            session = await self._connector.connect(
                self.config, self._tools.heard, attempt=attempt, user=user
            )
        except AuthorizationRequired:
            raise await self.sign_in.told(user) from None
        except GroupUnavailableError as error:
            self._health.failed(error)
            raise
        self._health.connected()
        return session

    def _notify(self) -> None:
        if self._on_state_change is not None:
            self._on_state_change(self)

    def _lists_changed(self, kind: str) -> None:
        if self._on_list_changed is not None:
            self._on_list_changed(self, kind)


def _user(caller: Caller | None) -> str | None:
    """The name of the gateway's user `caller` is, or None: the implicit user."""
    return caller.user.name if caller is not None and caller.user is not None else None
