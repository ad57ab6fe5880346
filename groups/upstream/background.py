"""Connection attempts no request waits for: a failed group's retries, and the start that
follows an expansion answered from the catalog.

    background = Background("time", health, sessions, in_flight, sign_in_pending)
    await background.keep_retrying()    # while FAILED: 2 s, 4 s, 8 s, then every 30 s
    background.start_early(caller)      # returns at once; the session `caller` will call on
    background.cancel()                 # the group is closing: early starts end now

Guarantees:
- a retry connects the shared session (key None), kept only where requests share one
  (stdio); over HTTP it only finds the upstream back and closes what it started, so no
  process runs for a caller that does not exist;
- an early start opens exactly the session the caller's next request would use (the
  shared one over stdio, the caller's own over HTTP) through the same path and lock, so a
  request that arrives meanwhile shares its one attempt; it counts as a use (the idle time
  counts from it), and a failed one fails the group as a request's attempt would;
- neither a retry nor an early start ever asks a person to sign in (`unattended()`): the
  link is only given in answer to a request. One that finds a sign-in needed ends
  quietly (one info line, no sign-in, no browser), and a failed group is IDLE again
  (`Health.wants_sign_in`): the next request connects itself and is given the link;
- an early start is not made for a failed or closed group, nor while a sign-in waits for
  a person;
- an early start is a task of this object's, ended by `cancel()` (the group closes) or by
  its client leaving (over HTTP): a cancelled attempt leaves no process, and a session it
  made for a client that has left is closed; it never ends in an unhandled exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import anyio

from groups.errors import GroupUnavailableError
from groups.upstream.callers import Caller
from groups.upstream.calls import InFlight
from groups.upstream.failures import AuthorizationRequired
from groups.upstream.health import Health, State
from groups.upstream.sessions import Session, Sessions, ends_with_client

__all__ = ["Background", "unattended"]

logger = logging.getLogger(__name__)

# Set in the task of an early start: nobody waits on it, so nobody could follow a link.
_unattended: ContextVar[bool] = ContextVar("dynamic_mcp_unattended", default=False)


def unattended() -> bool:
    """Whether this task's connection attempt is one no request waits for."""
    return _unattended.get()


class Background:
    """One group's attempts to connect that run apart from any request."""

    def __init__(
        self,
        group: str,
        health: Health,
        sessions: Sessions,
        in_flight: InFlight,
        sign_in_pending: Callable[[Caller | None], bool],  # for the caller's user
    ) -> None:
        self.group = group
        self._health = health
        self._sessions = sessions
        self._in_flight = in_flight
        self._sign_in_pending = sign_in_pending
        self._starting: set[asyncio.Task[None]] = set()  # early starts under way

    def __repr__(self) -> str:
        return f"Background({self.group!r})"

    async def keep_retrying(self) -> None:
        """Retry a failed group until it connects or is closed."""
        while (delay := self._health.retry_delay()) is not None:
            await anyio.sleep(delay)
            async with self._sessions.lock:
                if self._health.state is not State.FAILED:
                    return
                attempt = self._health.failures + 1
                logger.info("group %s: retrying (attempt %d)", self.group, attempt)
                connect = lambda: self._sessions.reconnect(None)  # noqa: E731
                if await self._attempt(connect, "not reconnected in the background") is None:
                    continue  # still FAILED (its next attempt is due later), or not any more
                unused = None if self._sessions.shared_used else self._sessions.pop(None)
            if unused is not None:
                await unused.close()
            return

    def wants_start(self, caller: Caller | None) -> bool:
        """Whether `start_early` would start anything: no live session serves `caller`,
        and the group is neither failed (it retries on its own schedule), closed, nor
        waiting for a person to sign in."""
        if self._health.state in (State.FAILED, State.CLOSED) or self._sign_in_pending(caller):
            return False
        return self._sessions.live(self._sessions.key_of(caller)) is None

    def start_early(self, caller: Caller | None) -> None:
        """Start the session that serves `caller` in a task of its own, unless
        `wants_start` says no; returns at once."""
        if not self.wants_start(caller):
            return
        task = asyncio.get_running_loop().create_task(
            self._start(caller), name=f"start {self.group} early"
        )
        self._starting.add(task)
        task.add_done_callback(self._ended)

    def cancel(self) -> None:
        """End the early starts under way: the group is closing."""
        for task in self._starting:
            task.cancel()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # A bug, not a failure of the upstream's (those fail the group): shown, not lost
            # in "Task exception was never retrieved". The log handler hides secrets.
            logger.error("group %s: the early start broke", self.group, exc_info=error)

    async def _start(self, caller: Caller | None) -> None:
        key = self._sessions.key_of(caller)
        left = False  # the client left: what was started for it alone must not stay
        finished = anyio.Event()

        async def client_left() -> None:
            nonlocal left
            left = True
            scope.cancel()
            await finished.wait()  # bounded by the SDK's limit on a connection's teardown

        try:
            with anyio.CancelScope() as scope, self._in_flight.counted():
                if caller is not None and ends_with_client(caller, key):
                    # Pushed before the attempt: its own session's `release` is only
                    # registered once it is made, which may be after the client left.
                    caller.connection.exit_stack.push_async_callback(client_left)
                # Counted: the idle time counts from here.
                await self._attempt(lambda: self._sessions.session(caller), "not started early")
            if left:
                await self._sessions.release(key)
        finally:
            finished.set()

    async def _attempt(
        self, connect: Callable[[], Awaitable[Session]], not_done: str
    ) -> Session | None:
        """One attempt no request waits for, the rule both kinds share: it asks no person
        to sign in. The session, or None: the group FAILED (and says why), or the server
        wants a sign-in, which is left to the next request (`Health.wants_sign_in`)."""
        token = _unattended.set(True)
        try:
            return await connect()
        except AuthorizationRequired:
            self._health.wants_sign_in()
            logger.info(
                "group %s: %s: it wants a sign-in; the next request gets the link",
                self.group,
                not_done,
            )
        except GroupUnavailableError as error:  # the group is FAILED now, and says why
            logger.debug("group %s: %s: %s", self.group, not_done, error.cause)
        finally:
            _unattended.reset(token)
        return None
