"""One connection attempt for a group: its transport, its OAuth, a FastMCP Client held open.

    connector = Connector("time", variables, redactor, start_slots, sign_in)
    session = await connector.connect(config, tools.heard, attempt=1)
    await session.client.list_tools()
    await session.close()                            # its process is gone

Guarantees:
- `${VAR}` (environment and `.env`) is read again at each attempt, so fixing a variable
  and asking again is enough;
- an attempt is bounded by `CONNECT_TIMEOUT`, counted from its turn to start: at most
  `STARTS_AT_ONCE` upstreams start at once, the others wait their turn;
- a failed attempt leaves nothing running, and becomes one `GroupUnavailableError` that
  says why in the config's words (no resolved secret reaches it), and whether a retry can
  help; a server that wants a person to sign in is `AuthorizationRequired` instead; a
  stdio upstream's last stderr lines, if they were below the level shown, are shown then
  (`UpstreamStderr.show_unseen`);
- a connected client is held open by a task of its own, which owns its `async with` (as
  FastMCP's stdio transport holds its process), until `close()`; closing is bounded by
  `CLOSE_TIMEOUT` and runs to its end even when the closer is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import mcp_types

from groups.config import ServerConfig, StdioServer
from groups.config.identity import launch_identity
from groups.errors import GroupUnavailableError
from groups.secrets import Redactor, shown_args, shown_url
from groups.serving.tracing import span
from groups.upstream.callers import CallbackRoute
from groups.upstream.failures import AuthorizationRequired, Failure, classify
from groups.upstream.sessions import Session
from groups.upstream.sign_in import GroupSignIn

if TYPE_CHECKING:
    import httpx2
    from fastmcp import Client

    from groups.auth.oauth import GroupOAuth
    from groups.upstream.transport import HttpErrorLog

__all__ = ["CLOSE_TIMEOUT", "CONNECT_TIMEOUT", "STARTS_AT_ONCE", "Connector", "HeldClient"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # spawn + initialize per attempt; a silent upstream must not hang us
# Upstreams starting at once. Dozens of cold starts on two cores each take longer than
# CONNECT_TIMEOUT, fail, and restart together forever; queued, they all come up.
STARTS_AT_ONCE = max(4, 2 * (os.cpu_count() or 2))
CLOSE_TIMEOUT = 5.0  # graceful stop of one session before its process is killed

Listener = Callable[[Session | None, object], None]  # an upstream notification, on its session


class HeldClient:
    """A connected FastMCP `Client`, held open by a task that owns its `async with`.

    A session outlives the request that connected it, so no request's task can own the
    client's context. FastMCP runs the session itself in a task of its own either way;
    this task only enters the context, waits to be told to stop, and leaves it.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._ready = anyio.Event()  # connected, or failed to
        self._stop = anyio.Event()
        self._failure: Exception | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"HeldClient({self.client.name!r}, connected={self.client.is_connected()})"

    @classmethod
    async def open(cls, client: Client) -> HeldClient:
        """Connect `client` and hold it open until `close()`.

        Raises:
            Exception: whatever connecting raised; nothing is left running.
        """
        held = cls(client)
        held._task = asyncio.get_running_loop().create_task(
            held._hold(), name=f"hold {client.name}"
        )
        try:
            await held._ready.wait()
        except BaseException:  # cancelled (the attempt's time limit): stop connecting
            await held.close()
            raise
        if held._failure is not None:
            await held.close()
            raise held._failure
        return held

    async def close(self) -> None:
        """Leave the client's context and close its transport, bounded, even while cancelled."""
        self._stop.set()
        task = self._task
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            if task is not None:
                if not self._ready.is_set():
                    task.cancel()  # still connecting: FastMCP tears a cancelled connect down
                await asyncio.wait([task])
            # Then the transport, which a context left (or never entered) may hold open. A
            # dying session may fail its own shutdown; it is gone either way.
            try:
                await self.client.close()
            except Exception as exc:
                logger.debug("closing %s: %s", self.client.name, exc)
        if task is not None and not task.done():
            task.cancel()  # past its time: what is left of it ends with the cancellation

    async def _hold(self) -> None:
        try:
            async with self.client:
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:
            if not self._ready.is_set():
                self._failure = exc
            else:  # a dying session may fail its own shutdown; it is gone either way
                logger.debug("closing %s: %s", self.client.name, exc)
        finally:
            self._ready.set()


class Connector:
    """How one group connects: its transport, its OAuth and a FastMCP Client, per attempt."""

    def __init__(
        self,
        group: str,
        variables: Callable[[], Mapping[str, str]],
        redactor: Redactor,
        start_slots: anyio.Semaphore,
        sign_in: GroupSignIn,
    ) -> None:
        self.group = group
        self._variables = variables
        self._redactor = redactor
        self._start_slots = start_slots
        self._sign_in = sign_in

    def __repr__(self) -> str:
        return f"Connector({self.group!r})"

    async def connect(
        self, config: ServerConfig, heard: Listener, *, attempt: int, user: str | None = None
    ) -> Session:
        """A connected session, signing requests with `user`'s OAuth (None: the implicit user's).

        `heard` hears each notification, with its session; a resource's update goes to the
        clients subscribed to it (`Session.subscribers`).

        Raises:
            AuthorizationRequired: the server wants a person to sign in.
            GroupUnavailableError: anything else went wrong (`attempt` is its number).
        """
        # Client transports, httpx clients and OAuth are imported by the first connection,
        # not at start-up: serving two tools needs none of them.
        from fastmcp import Client

        from groups.auth.oauth import GroupOAuth
        from groups.upstream.transport import HttpErrorLog, LoggedStdioTransport, build_transport

        remote = not isinstance(config, StdioServer)
        http_errors = HttpErrorLog(config.url) if remote else None
        auths: list[GroupOAuth] = []
        route = CallbackRoute(self.group)
        made: list[Session] = []  # the session, once made: what its notifications are about

        async def on_message(message: object) -> None:
            session = made[0] if made else None
            heard(session, message)
            if session is not None and isinstance(message, mcp_types.ResourceUpdatedNotification):
                await session.subscribers.updated(message.params.uri)  # to its subscribers alone

        def session_oauth(url: str) -> httpx2.Auth:
            auth = self._sign_in.oauth_for(url, user)
            if isinstance(auth, GroupOAuth):  # a service account's never needs a person
                auths.append(auth)
            return auth

        oauth = session_oauth if remote else None
        variables = self._variables()  # read again at each attempt
        transport = build_transport(
            self.group, config, variables, self._redactor, http_errors, oauth
        )
        client = Client(
            transport,
            name=f"dynamic-mcp:{self.group}",
            init_timeout=CONNECT_TIMEOUT,
            mode="legacy",  # forwards sampling, elicitation, roots: only the handshake era has them
            message_handler=on_message,
            **route.client_handlers(),
        )
        try:
            # The time limit starts once it is this upstream's turn to start.
            async with self._start_slots:
                logger.info("connecting group %s: %s", self.group, describe(config))
                with (
                    span("upstream start", group=self.group, user=user),
                    anyio.fail_after(CONNECT_TIMEOUT),
                ):
                    held = await HeldClient.open(client)
        except Exception as exc:
            if any(auth.needs_sign_in for auth in auths):
                raise AuthorizationRequired(self.group) from exc
            transport = client.transport
            if isinstance(transport, LoggedStdioTransport) and transport.stderr is not None:
                transport.stderr.show_unseen()  # its last words, often why
            raise self._unavailable(exc, config, http_errors, attempt) from exc
        auth = auths[-1] if auths else None
        pid = transport.pid if isinstance(transport, LoggedStdioTransport) else None
        # What it was started with, `${VAR}`s as read now: a reload compares with this.
        launched = launch_identity(config, variables)
        made.append(
            Session(
                self.group,
                held,
                route,
                user=user,
                auth=auth,
                http_errors=http_errors,
                pid=pid,
                launched=launched,
            )
        )
        return made[0]

    def _unavailable(
        self, exc: Exception, config: ServerConfig, http_errors: HttpErrorLog | None, attempt: int
    ) -> GroupUnavailableError:
        """The failed attempt as the model and the user read it: why, in the config's words,
        and whether trying again can help."""
        if isinstance(exc, TimeoutError):
            failure = Failure(f"no answer within {CONNECT_TIMEOUT:g}s", permanent=False)
        else:
            command = config.command if isinstance(config, StdioServer) else None
            failure = classify(exc, http_errors.last if http_errors else None, command)
        reason = self._redactor.scrub(failure.reason)
        return GroupUnavailableError(
            self.group, reason, attempts=attempt, permanent=failure.permanent
        )


def describe(config: ServerConfig) -> str:
    """The config as written, `${VAR}` unresolved and secret values hidden."""
    if isinstance(config, StdioServer):
        env = f" env: {sorted(config.env)}" if config.env else ""
        return f"{config.command} {' '.join(shown_args(config.args))}{env}"
    headers = f" headers: {sorted(config.headers)}" if config.headers else ""
    return f"{config.type} {shown_url(config.url)}{headers}"
