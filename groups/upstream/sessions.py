"""One group's live upstream sessions, by caller, and the limits on each request sent on one.

    sessions = Sessions("time", open_session=connect, admit=health_check, key_of=session_key)
    session = await sessions.session(caller)         # the first request connects it
    with session.bounded("Listing tools", 30.0):     # the group's own timeout
        tools = await session.client.list_tools()
    await close_all(sessions.take_all())             # bounded, even while being cancelled

Guarantees:
- concurrent first requests share one connection attempt (one lock around every
  attempt); later requests reuse the session with no lock and no wait;
- over stdio every request shares one session (key None); over HTTP each client gets
  sessions of its own (`Caller.key`), so one client's sampling, elicitation and data never
  reach another, closed when the client goes (registered with the client's connection
  whatever it asked for), so no session outlives its client; a gateway's named user never
  shares a remote group's session with another user (`callers.session_key`);
- a session that died is marked lost by the request that saw it die, and replaced on the
  next request; a late error from a session that was already replaced marks that session,
  never its successor;
- every request is bounded by the group's configured timeout; on expiry the upstream is
  sent a cancellation (leaving the scope cancels the request, and the MCP client sends
  `notifications/cancelled`) and the model gets an `UpstreamTimeoutError`;
- a session whose OAuth tokens were refused mid-session is marked lost, so the next one
  signs in anew (`RefusedMidSession`, turned into a sign-in by `Upstream`);
- a request a remote upstream refuses with an HTTP error (a 403 `insufficient_scope` for
  a scope already held, a 500…) is an `UpstreamRefusedError` with the status and the
  challenge, the session kept: never the SDK's bare "Server returned an error response";
- each session keeps the clients subscribed to its resources (`Session.subscribers`);
  while a live one has any, the sessions are not idle (`can_rest` is False);
- each session knows its own use (`Session.idle_for`: every request on it, bounded, and
  each time a request is handed it), so one user's session (`"sessions": "per-user"`)
  can be stopped for that user's non-use alone (`take_idle`), others' untouched;
- the sessions of one user (their own process, their remote sessions, their clients')
  can be ended together, the shared one untouched (`take_user`: a user removed or
  revoked, `groups.serving.revocation`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import mcp_types

from groups.errors import GroupUnavailableError, UpstreamRefusedError, UpstreamTimeoutError
from groups.upstream.callers import CallbackRoute, Caller, UserKey
from groups.upstream.failures import answered_with_http_error, is_connection_lost
from groups.upstream.subscribers import Subscribers

if TYPE_CHECKING:
    from fastmcp import Client

    from groups.auth.oauth import GroupOAuth
    from groups.upstream.connect import HeldClient
    from groups.upstream.transport import HttpErrorLog

__all__ = [
    "RefusedMidSession",
    "Session",
    "SessionKey",
    "Sessions",
    "UpstreamUse",
    "close_all",
    "ends_with_client",
]

logger = logging.getLogger(__name__)

SessionKey = Hashable | None  # `Caller.key`: None is the session every stdio request shares


@dataclass(eq=False)
class Session:
    """One live upstream session and where its callbacks go."""

    group: str
    held: HeldClient
    route: CallbackRoute
    user: str | None = None  # the gateway's named user whose tokens it carries; None: the implicit
    lost: bool = False  # a request saw it end; the next request replaces it
    auth: GroupOAuth | None = None  # a remote session's OAuth: it knows when a person is needed
    http_errors: HttpErrorLog | None = None  # a remote session's: the statuses behind errors
    tools: list[mcp_types.Tool] | None = None  # as listed on this session, once
    tool_names: frozenset[str] = frozenset()
    # Set once the group is closing: a request cut short then says why, not "went away".
    closed_because: str | None = None
    subscribers: Subscribers = field(init=False)  # the clients subscribed to its resources
    busy: int = 0  # requests on it now
    last_used: float = field(default_factory=time.monotonic)
    pid: int | None = None  # a stdio upstream's process, where it can be told
    # The launch identity it was started with (`groups.config.identity`), variables as
    # they were then: a reload restarts it only if the config now says otherwise.
    launched: str | None = None

    def __post_init__(self) -> None:
        self.subscribers = Subscribers(self.group)

    @property
    def client(self) -> Client:
        """The connected FastMCP client requests are sent with."""
        return self.held.client

    @contextmanager
    def used(self) -> Iterator[None]:
        """Count one request on this session: while any runs, it is not idle."""
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.last_used = time.monotonic()

    @property
    def idle_for(self) -> float | None:
        """Seconds since its last request ended; None while in use or subscribed to."""
        return None if self.busy or self.subscribers else time.monotonic() - self.last_used

    @contextmanager
    def bounded(self, operation: str, timeout: float) -> Iterator[None]:
        """A time limit on one request on this session that reports the group's own timeout.

        Raises:
            UpstreamTimeoutError: no answer within `timeout` seconds.
            GroupUnavailableError: the session ended under the request.
            RefusedMidSession: its OAuth tokens were refused, and a person is needed.
            UpstreamRefusedError: the server answered the request with an HTTP error.
        """
        errors_before = self.http_errors.count if self.http_errors is not None else 0
        try:
            with self.used(), anyio.fail_after(timeout):
                yield
        except TimeoutError:
            raise UpstreamTimeoutError(self.group, operation, timeout) from None
        except Exception as exc:
            if self.auth is not None and self.auth.needs_sign_in:
                self.lost = True  # its tokens were refused: a new session signs in anew
                raise RefusedMidSession(self.auth, self.user) from exc
            refusal = self._refusal(operation, errors_before, exc)
            if refusal is not None:
                raise refusal from exc
            if not is_connection_lost(exc):
                raise
            self.lost = True
            what = operation.lower()
            cause = f"the upstream went away during {what}; the next request reconnects"
            if self.closed_because is not None:
                cause = f"{self.closed_because} during {what}; call again"
            raise GroupUnavailableError(self.group, cause) from exc

    def _refusal(
        self, operation: str, errors_before: int, exc: Exception
    ) -> UpstreamRefusedError | None:
        """The HTTP error the server answered a request with, if `exc` is the SDK's word for
        one and the endpoint answered one since the request began (`errors_before`). A
        404 is left alone: the SDK reads it as the session's end."""
        log = self.http_errors
        if log is None or log.count == errors_before or not answered_with_http_error(exc):
            return None
        refusal = log.refusal
        if refusal is None or refusal.status == 404:
            return None
        return UpstreamRefusedError(
            self.group, operation, refusal.status, refusal.error, refusal.scope
        )

    async def close(self) -> None:
        """End the session and its process, bounded, even while being cancelled."""
        await self.held.close()


@dataclass(frozen=True)
class UpstreamUse:
    """One live upstream session as an operator sees it (`dynamic-mcp admin replicas`)."""

    group: str
    user: str | None  # the one user it serves; None: every user's (a shared process)
    kind: str  # the transport: "stdio", "http" or "sse"
    pid: int | None  # a stdio upstream's process, where it can be told
    idle_for: float | None  # seconds since its last request; None while in use


class RefusedMidSession(Exception):
    """A session's tokens were refused, and its OAuth wants a person: sign in anew."""

    def __init__(self, auth: GroupOAuth, user: str | None) -> None:
        self.auth = auth
        self.user = user


class Sessions:
    """The live sessions of one group, by the caller they serve (`SessionKey`)."""

    def __init__(
        self,
        group: str,
        open_session: Callable[[Caller | None], Awaitable[Session]],
        admit: Callable[[Caller | None], Awaitable[None]],
        key_of: Callable[[Caller | None], SessionKey],
    ) -> None:
        self.group = group
        self.lock = anyio.Lock()  # held around every connection attempt and state change
        self.shared_used = False  # a request asked for the shared session (key None)
        self._by_key: dict[SessionKey, Session] = {}
        self._open = open_session  # one connection attempt, for a caller
        self._admit = admit  # raises when no attempt may be made now for a caller
        self.key_of = key_of  # which session serves a caller

    def __repr__(self) -> str:
        return f"Sessions({self.group!r}, {len(self._by_key)})"

    def __len__(self) -> int:
        return len(self._by_key)

    async def session(self, caller: Caller | None) -> Session:
        """The live session that serves `caller`, connecting first if there is none."""
        key = self.key_of(caller)
        self.shared_used |= key is None
        live = self.live(key)
        if live is not None:
            live.last_used = time.monotonic()  # handed to a request: not idle from here
            return live  # the path of every call but the first: no lock, no await
        async with self.lock:
            await self._admit(caller)
            live = self.live(key)
            if live is None:
                if key in self._by_key:
                    logger.warning("group %s: the upstream session ended; reconnecting", self.group)
                live = await self.reconnect(key, caller)
                if ends_with_client(caller, key):
                    # Its own session ends with the client, whatever it asked for: a
                    # client that only reads resources is never seen by the notifier.
                    caller.connection.exit_stack.push_async_callback(self.release, key)
            return live

    async def reconnect(self, key: SessionKey, caller: Caller | None = None) -> Session:
        """Replace the session of `key` by a new one for `caller` (the caller holds `lock`)."""
        old = self._by_key.pop(key, None)
        if old is not None:
            await old.close()
        session = self._by_key[key] = await self._open(caller)
        return session

    def live(self, key: SessionKey) -> Session | None:
        """The session serving `key`, unless it has none or a request saw it end."""
        session = self._by_key.get(key)
        return session if session is not None and not session.lost else None

    def pop(self, key: SessionKey) -> Session | None:
        return self._by_key.pop(key, None)

    async def release(self, key: SessionKey) -> None:
        """Close the session that served one client, which has gone away."""
        session = self._by_key.pop(key, None)
        if session is not None:
            await session.close()

    def closing(self, because: str) -> None:
        """The group is closing: a request cut short from now on says why."""
        for session in self._by_key.values():
            session.closed_because = because

    def take_idle(self, timeout: float) -> list[Session]:
        """The sessions of single users (`UserKey`) unused for `timeout` seconds, removed
        from the table to be closed (the caller holds `lock`)."""
        idle = [
            key
            for key, session in self._by_key.items()
            if isinstance(key, UserKey) and (session.idle_for or 0) >= timeout
        ]
        return [self._by_key.pop(key) for key in idle]

    def take_user(self, user: str, because: str) -> list[Session]:
        """The sessions that serve `user` alone (their own process, their tokens, their
        client's), removed from the table to be closed (the caller holds `lock`); a request
        cut short on one says `because`. The one every user shares (key None) stays."""
        theirs = [
            key
            for key, session in self._by_key.items()
            if key is not None and (key == UserKey(user) or session.user == user)
        ]
        taken = [self._by_key.pop(key) for key in theirs]
        for session in taken:
            session.closed_because = because
        return taken

    def items(self) -> list[tuple[SessionKey, Session]]:
        """Each session with the key it serves, as they are now."""
        return list(self._by_key.items())

    def take_all(self) -> list[Session]:
        """Every session, removed from the table to be closed (the caller holds `lock`)."""
        sessions, self._by_key = list(self._by_key.values()), {}
        return sessions

    @property
    def can_rest(self) -> bool:
        """Whether an idle stop may end them: one runs, and no client is subscribed to a
        resource of a live one (its updates come only while the session runs)."""
        live = [s for s in self._by_key.values() if not s.lost]
        return bool(self._by_key) and not any(s.subscribers for s in live)

    def listed_tools(self) -> list[mcp_types.Tool] | None:
        """The tools a live session has listed, if any has."""
        return next((s.tools for s in self._by_key.values() if s.tools is not None), None)


def ends_with_client(caller: Caller | None, key: SessionKey) -> bool:
    """Whether the session of `key` is `caller`'s client's own, to end when it leaves."""
    return caller is not None and key is caller.connection


async def close_all(sessions: list[Session]) -> None:
    """Close sessions side by side; each is bounded on its own."""
    async with anyio.create_task_group() as closing:
        for session in sessions:
            closing.start_soon(session.close)
