"""Who caused an upstream call, so that the upstream's callbacks during it reach that client.

    with current_caller.set_to(Caller.of(ctx)):       # the tools/call handler, per request
        await registry.call_tool("github", "create_issue", args)
    # inside, `Upstream.call_tool` runs the call under `route.calling(caller)`: the
    # upstream's progress, log messages, sampling, elicitation and roots requests go to
    # `caller` (see `CallbackRoute.client_handlers`)

Guarantees:
- progress reaches exactly the call it belongs to: it carries that call's own token;
- log messages, sampling, elicitation and roots requests carry nothing on the wire that
  names the call that caused them, so an upstream session serves one client only (HTTP
  clients each get their own, see `Caller.key`); they go to that client, on the stream of
  its latest call in flight on the session, else on its connection's own stream;
- on a gateway with named users, a stdio group's process is each user's own by default
  (`session_key`); one shared by every user (`"sessions": "shared"`) passes callbacks
  only while it has served one user: once a second user called, nothing can prove whose
  call a log line or a question is (a call past its time limit runs on, its caller gone),
  so each request is answered with an error and each log message dropped, and the
  operator is told once: one user's client never hears what another's call caused;
- with no client to reach, a request is answered with an error and a log message is
  dropped with a debug line, never delivered to another client.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mcp_types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from groups.access import User, current_user, user_of_request
from groups.config import ServerConfig, StdioServer
from groups.internals import connection_of

__all__ = ["CallbackRoute", "Caller", "UserKey", "current_caller", "session_key"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Caller:
    """One client request that leads to upstream calls, and the connection it came on."""

    session: ServerSession  # the SDK's per-request view: replies on this request's stream
    request_id: mcp_types.RequestId | None
    connection: Connection  # the client's connection: its own stream and its lifetime
    wants_progress: bool = False  # the request carries a progress token
    user: User | None = None  # a gateway's named user; None: the one implicit user

    @classmethod
    def of(cls, ctx: ServerRequestContext[Any, Any]) -> Caller:
        meta = ctx.meta or {}
        return cls(
            ctx.session,
            ctx.request_id,
            connection_of(ctx.session),
            wants_progress="progress_token" in meta,
            user=user_of_request(ctx.request),
        )

    @classmethod
    def of_current_request(cls) -> Caller | None:
        """The client request this task serves, as FastMCP's context has it; None outside one
        (a direct library call)."""
        from fastmcp.server.dependencies import get_context

        try:
            ctx = get_context()
        except RuntimeError:
            return None
        return cls(ctx.session, ctx.request_id, connection_of(ctx.session), user=current_user())

    @property
    def key(self) -> Hashable | None:
        """Which upstream session serves this caller: None for the one shared session.

        A client with an HTTP session id gets upstream sessions of its own, so one client's
        sampling, elicitation and data never reach another. Over stdio there is one client;
        a 2026-07-28 client opens a connection per request and takes no server requests,
        so both share.
        """
        return self.connection if self.connection.session_id is not None else None

    @property
    def can_be_notified_later(self) -> bool:
        """Whether the connection outlives this request (it can hear list_changed)."""
        return (
            self.connection.has_standalone_channel
            and self.connection.protocol_version not in MODERN_PROTOCOL_VERSIONS
        )

    async def report_progress(
        self, progress: float, total: float | None, message: str | None
    ) -> None:
        """Forward one upstream progress notification as this request's own progress."""
        await self.session.report_progress(progress, total, message)


@dataclass(frozen=True)
class UserKey:
    """The session key of what one named user's clients share (`session_key`)."""

    user: str


def session_key(caller: Caller | None, config: ServerConfig) -> Hashable | None:
    """Which upstream session of a group serves `caller` (None: the one shared session).

    The implicit user keeps `Caller.key`: a client with an HTTP session id has its own,
    every other request shares one. A gateway's named user never shares a remote
    group's session with another user, since it carries the user's own tokens: a client
    with an HTTP session id has its own, a 2026-07-28 client (a connection per request)
    the user's (`UserKey`). A stdio group is one process per user, shared by that user's
    clients, or with `"sessions": "shared"` one for every named user. `config` is the
    group's as it is now: a reload may change it.
    """
    if caller is None:
        return None
    if caller.user is None:
        return caller.key
    if not isinstance(config, StdioServer):
        return caller.key if caller.key is not None else UserKey(caller.user.name)
    return UserKey(caller.user.name) if config.sessions == "per-user" else None


class _CurrentCaller:
    """The caller of the tools/call being handled in this task (a context variable)."""

    def __init__(self) -> None:
        self._var: ContextVar[Caller | None] = ContextVar("dynamic_mcp_caller", default=None)

    def get(self) -> Caller | None:
        return self._var.get()

    @contextmanager
    def set_to(self, caller: Caller) -> Iterator[Caller]:
        token = self._var.set(caller)
        try:
            yield caller
        finally:
            self._var.reset(token)


current_caller = _CurrentCaller()


def _name(caller: Caller) -> str | None:
    return caller.user.name if caller.user is not None else None


class CallbackRoute:
    """Where one upstream session's requests and notifications to its client go."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._calls: list[Caller] = []  # in flight on this session, oldest first
        self._owner: Connection | None = None  # the connection of the latest caller
        self._users: set[str | None] = set()  # every user it served (None: the implicit)
        self._told_dropping = False  # the operator knows its log messages are dropped

    def __repr__(self) -> str:
        return f"CallbackRoute({self.group!r}, {len(self._calls)} calls in flight)"

    @contextmanager
    def calling(self, caller: Caller | None) -> Iterator[None]:
        """Route this session's callbacks to `caller` while its call is in flight."""
        if caller is None:
            yield
            return
        self._calls.append(caller)
        self._owner = caller.connection
        self._users.add(_name(caller))
        try:
            yield
        finally:
            self._calls.remove(caller)

    def client_handlers(self) -> dict[str, Any]:
        """Handlers for `fastmcp.Client`: each forwards to the client this route serves."""
        return {
            "log_handler": self._log,
            "sampling_handler": self._sample,
            "elicitation_handler": self._elicit,
            "roots": self._roots,
        }

    async def _log(self, params: mcp_types.LoggingMessageNotificationParams) -> None:
        # The logging capability is deprecated for 2026-07-28 clients; older ones use it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            caller, owner = self._whose()
            if caller is not None:
                await caller.session.send_log_message(
                    params.level, params.data, params.logger, related_request_id=caller.request_id
                )
            elif owner is not None:
                await owner.log(params.level, params.data, params.logger)
            elif self._serves_several_users and not self._told_dropping:
                self._told_dropping = True  # once: it may log at every step of every call
                logger.warning(
                    "%s: upstream log messages are dropped from now on: its one process "
                    "serves several users, and nothing says whose call they are about "
                    '(give the group "sessions": "per-user")',
                    self.group,
                )
            else:
                logger.debug("%s: an upstream log message with no client to show it", self.group)

    async def _sample(
        self, messages: Any, params: mcp_types.CreateMessageRequestParams, context: Any
    ) -> mcp_types.CreateMessageResult | mcp_types.CreateMessageResultWithTools:
        result_type = (
            mcp_types.CreateMessageResultWithTools
            if params.tools
            else mcp_types.CreateMessageResult
        )
        return await self._ask(mcp_types.CreateMessageRequest(params=params), result_type)

    async def _elicit(
        self, message: str, response_type: Any, params: mcp_types.ElicitRequestParams, context: Any
    ) -> mcp_types.ElicitResult:
        return await self._ask(mcp_types.ElicitRequest(params=params), mcp_types.ElicitResult)

    async def _roots(self, context: Any) -> list[mcp_types.Root]:
        result = await self._ask(mcp_types.ListRootsRequest(), mcp_types.ListRootsResult)
        return result.roots

    async def _ask(self, request: Any, result_type: Any) -> Any:
        """Put an upstream's request to this route's client and return its answer."""
        caller, owner = self._whose()
        if caller is not None:
            metadata = ServerMessageMetadata(related_request_id=caller.request_id)
            return await caller.session.send_request(request, result_type, metadata=metadata)
        if owner is not None:
            return await owner.send_request(request)
        if self._serves_several_users:
            raise RuntimeError(
                f"{request.method} cannot be answered: this upstream's one process serves "
                "several users, and nothing says whose call asks"
            )
        raise RuntimeError(f"no client of dynamic-mcp is there to answer {request.method}")

    @property
    def _serves_several_users(self) -> bool:
        return len(self._users) > 1

    def _whose(self) -> tuple[Caller | None, Connection | None]:
        """Who a callback goes to: the latest call in flight, else the latest caller's
        connection, while the session has served one user only; (None, None) otherwise,
        or with no client to reach."""
        if self._serves_several_users:
            return None, None
        return (self._calls[-1], None) if self._calls else (None, self._owner)
