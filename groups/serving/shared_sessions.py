"""Legacy HTTP sessions any replica can serve: what each `initialize` said, kept in the store.

    sessions = SharedSessions("/mcp")                     # the root server, for HTTP
    bodies = RequestBodies("/mcp", needs_identity=True, then=sessions.handle)
    app = server.http_app(middleware=[bodies.middleware()])  # after identity, bodies read
    sessions.attach(app)                                  # finds the SDK's session manager
    async with sessions.serving(store):                   # in the lifespan; Redis only
        ...

A client of the handshake era (2025-11-25 and earlier) gets an `Mcp-Session-Id` from the
replica that answered its `initialize`, and the SDK keeps the session in that process's
memory; behind a load balancer without stickiness its next request reaches any replica.

Guarantees, with a shared store (Redis):
- a session's record (the protocol version negotiated, the client's `initialize` params,
  the credential that opened it, the replica that did) is in the store before the client
  learns the session id; a replica given an id it does not hold takes the session up from
  its record, ready (no second `initialize`), for the same credential only: any other
  gets 404 as for an unknown id (the SDK's own rule);
- a DELETE ends the session everywhere: the record goes, every replica holding it lets go;
- a request an upstream puts to the client during a call (elicitation, sampling, roots)
  goes out on the call's stream from the replica running it; the client's answer, on
  whichever replica it lands, reaches that replica (`groups.serving.replica_messages`);
  the ids of server requests name their replica, so two replicas asking on one session
  never collide; a client's cancellation of a request reaches the replica running it;
- a request on a session this replica holds makes no Redis round trip (its record is
  written again in the background, at most every `settings.http`'s `renew_every`, and
  lives as long as the session can: its idle timeout past the last write);
- the store down or slow: opening or taking up a session fails with 503 and a JSON-RPC
  error naming the store, nothing is held half-made, the replica keeps serving what it
  holds; listening to other replicas resumes by itself;
- 2026-07-28 requests, and every request with the local store, pass straight on;
- a user whose access ends (`end_user`) loses every session this replica holds for them
  at once (a request with one of their ids is answered as for an unknown session), and
  their records go from the store, so no replica takes one up again; with a shared
  store, what another replica or `dynamic-mcp admin` says of a user (`USERS_ENDED`)
  reaches `on_user_ended`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.connection import Connection
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import InitializeRequestParams
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groups.errors import StoreUnavailableError
from groups.internals import (
    PrefixedIds,
    adopt_session,
    forget_session,
    held_session,
    held_session_owners,
    http_session_manager,
)
from groups.serving.replica_messages import (
    RECORDS,
    ReplicaMessages,
    SessionRecord,
    UserEnded,
    owner_user,
)
from groups.serving.request_bodies import (
    answers_in,
    cancellations_in,
    initialize_params,
    json_error,
    negotiated,
    posted_messages,
    reporting_status,
)
from groups.storage.store import LocalStore

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette

    from groups.storage.store import Store

__all__ = ["RECORD_REFRESH", "SharedSessions"]

logger = logging.getLogger(__name__)

# Seconds: by default a held session's record is written again at most this often, and
# lives this long unwritten (`keep_records`: from the settings).
RECORD_REFRESH = 600.0
DEFAULT_RECORD_TTL = 1800.0 + RECORD_REFRESH  # the SDK's idle timeout, and a refresh's margin
FORGET_REFRESHES_FROM = 1024  # entries in `_refreshed` past which old ones are let go


class SharedSessions:
    """This replica's part in sessions every replica can serve (see the module)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.replica = uuid4().hex[:12]  # names this process's requests to clients
        self._manager: Callable[[], StreamableHTTPSessionManager | None] | None = None
        self._messages: ReplicaMessages | None = None  # set while serving with Redis
        self._refreshed: dict[str, float] = {}  # session id -> when its record was written
        self._adopted: set[str] = set()  # sessions held here that another replica opened
        self._record_ttl, self._refresh_every = DEFAULT_RECORD_TTL, RECORD_REFRESH
        self._store: Store | None = None  # set while serving
        # What other replicas, or the admin command, say of a user (set by the server).
        self.on_user_ended: Callable[[UserEnded], Awaitable[None]] | None = None

    def __repr__(self) -> str:
        state = "shared" if self._messages else "local"
        return f"SharedSessions({self.path!r}, replica {self.replica}, {state})"

    def keep_records(self, ttl: float, refresh_every: float) -> None:
        """Records live `ttl` seconds, written again at most every `refresh_every` while
        their session is in use (`HttpSettings.session_lifetime`, `.renew_every`)."""
        self._record_ttl, self._refresh_every = ttl, refresh_every

    def attach(self, app: Starlette) -> None:
        """Serve the sessions of `app`'s MCP endpoint."""
        self._manager = http_session_manager(app)

    @asynccontextmanager
    async def serving(self, store: Store) -> AsyncIterator[None]:
        """Share sessions through `store` while this runs (nothing to do for local files)."""
        self._store = store
        if self._manager is None or isinstance(store, LocalStore):
            yield
            return
        manager = self._manager

        def holds(session_id: str) -> Any:
            running = manager()
            return held_session(running, session_id) if running is not None else None

        messages = ReplicaMessages(
            store,  # type: ignore[arg-type]
            self.replica,
            holds,
            self._forget,
            self._record_ttl,
            on_user_ended=self._user_ended,
        )
        async with messages.listening():
            self._messages = messages
            try:
                yield
            finally:
                self._messages = None

    def held(self) -> dict[str, str | None]:
        """Every session this replica holds, and the user who owns it (None: the implicit)."""
        manager = self._manager() if self._manager is not None else None
        if manager is None:
            return {}
        return {
            session_id: owner_user(owner)
            for session_id, owner in held_session_owners(manager).items()
        }

    async def end_user(self, user: str) -> list[str]:
        """End every session this replica holds for `user`, and their records; their ids."""
        manager = self._manager() if self._manager is not None else None
        theirs = [session_id for session_id, owner in self.held().items() if owner == user]
        for session_id in theirs:
            self._refreshed.pop(session_id, None)
            if manager is not None:
                await forget_session(manager, session_id)
        if theirs and self._messages is not None and self._store is not None:
            try:  # a record refreshed meanwhile must not outlive its session
                await self._store.delete_many(theirs, collection=RECORDS)
            except StoreUnavailableError as exc:
                logger.warning("user %r's session records stay until they expire: %s", user, exc)
        return theirs

    async def _user_ended(self, ended: UserEnded) -> None:
        if self.on_user_ended is not None:
            await self.on_user_ended(ended)

    async def handle(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request with identity (`RequestBodies` read its body), taking up
        or ending a shared session where it must."""
        manager = self._manager() if self._manager is not None else None
        messages = self._messages
        if (
            messages is None
            or manager is None
            or scope["type"] != "http"
            or scope["path"] != self.path
            or _modern(scope)
        ):
            await app(scope, receive, send)
            return
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        method = scope["method"]
        if session_id is None:
            if method == "POST":
                await self._open(messages, manager, app, scope, receive, send)
            else:
                await app(scope, receive, send)
            return
        owner = _owner(scope)
        posted = posted_messages(scope)  # read by `RequestBodies`, after identity
        try:
            if cancels := cancellations_in(posted):
                await self._cancel_everywhere(messages, session_id, owner, cancels)
            answers = answers_in(posted)
            if answers and await messages.forward(session_id, owner, answers, self._is_home):
                await json_error(202, None)(scope, receive, send)
                return
            if held_session(manager, session_id) is not None:
                self._refresh_soon(messages, session_id)
            elif method == "DELETE":
                await self._end_elsewhere(messages, app, session_id, owner, scope, receive, send)
                return
            else:
                await self._adopt(messages, manager, session_id, owner)
        except StoreUnavailableError as exc:
            await json_error(503, str(exc))(scope, receive, send)
            return
        status = await reporting_status(app, scope, receive, send)
        if method == "DELETE" and status is not None and status < 300:
            await self._ended(messages, session_id)

    # ---- opening, taking up, ending ---------------------------------------------------------

    async def _open(
        self,
        messages: ReplicaMessages,
        manager: StreamableHTTPSessionManager,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Serve an `initialize`, its session's record in the store before the answer."""
        params = initialize_params(posted_messages(scope))
        if params is None:
            await app(scope, receive, send)
            return
        refused: list[str] = []  # the session opened here but not recorded: dropped again

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                session_id = Headers(raw=message["headers"]).get(MCP_SESSION_ID_HEADER)
                record = SessionRecord(negotiated(params), params, _owner(scope), self.replica)
                try:
                    if session_id is not None:
                        await messages.record(session_id, record)
                        self._refreshed[session_id] = time.monotonic()
                except StoreUnavailableError as exc:
                    refused.append(session_id or "")
                    await json_error(503, str(exc))(scope, receive, send)
                    return
            if not refused:
                await send(message)

        await app(scope, receive, recording)
        if refused:
            await forget_session(manager, refused[0])

    async def _adopt(
        self,
        messages: ReplicaMessages,
        manager: StreamableHTTPSessionManager,
        session_id: str,
        owner: dict[str, Any] | None,
    ) -> None:
        """Hold `session_id` here if its record says it is `owner`'s; else leave the SDK
        to answer 404."""
        record = await messages.find(session_id)
        if record is None or record.owner != owner:
            return

        async def serve(read_stream: Any, write_stream: Any, lifespan_state: Any) -> None:
            dispatcher = PrefixedIds(
                read_stream,
                write_stream,
                prefix=_id_prefix(self.replica),
                inline_methods=frozenset({"initialize"}),
            )
            connection = _ready_connection(dispatcher, session_id, record)
            try:
                await serve_connection(
                    manager.app, dispatcher, connection=connection, lifespan_state=lifespan_state
                )
            finally:
                self._adopted.discard(session_id)

        # Known as taken up before any request can reach it: an answer to the home
        # replica's plain id must never be taken for this replica's own.
        self._adopted.add(session_id)
        try:
            await adopt_session(manager, session_id, owner, serve)  # type: ignore[arg-type]
        except BaseException:
            if held_session(manager, session_id) is None:
                self._adopted.discard(session_id)
            raise
        logger.info("took up session %s… opened on replica %s", session_id[:8], record.home)
        self._refresh_soon(messages, session_id)

    async def _end_elsewhere(
        self,
        messages: ReplicaMessages,
        app: ASGIApp,
        session_id: str,
        owner: dict[str, Any] | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """A DELETE of a session this replica does not hold: end it for its owner."""
        record = await messages.find(session_id)
        if record is None or record.owner != owner:
            await app(scope, receive, send)  # the SDK's 404
            return
        await self._ended(messages, session_id)
        await json_error(200, None)(scope, receive, send)

    async def _cancel_everywhere(
        self,
        messages: ReplicaMessages,
        session_id: str,
        owner: dict[str, Any] | None,
        cancels: list[dict[str, Any]],
    ) -> None:
        """The client cancelled a request: tell the replica running it, wherever it is.
        Served here as well; without the store, here only (the call elsewhere runs on)."""
        try:
            await messages.cancel_everywhere(session_id, owner, cancels)
        except StoreUnavailableError as exc:
            logger.warning("a cancellation reaches this replica only: %s", exc)

    async def _ended(self, messages: ReplicaMessages, session_id: str) -> None:
        self._refreshed.pop(session_id, None)
        try:
            await messages.end(session_id)
        except StoreUnavailableError as exc:
            logger.warning("session %s… ended here, but not in the store: %s", session_id[:8], exc)

    async def _forget(self, session_id: str) -> None:
        """Another replica ended `session_id`: let go of it here too."""
        self._refreshed.pop(session_id, None)
        manager = self._manager() if self._manager is not None else None
        if manager is not None:
            await forget_session(manager, session_id)

    def _is_home(self, session_id: str) -> bool:
        """Whether this replica opened `session_id` and holds it still: its requests to the
        client there carry the SDK's own ids."""
        manager = self._manager() if self._manager is not None else None
        held = manager is not None and held_session(manager, session_id) is not None
        return held and session_id not in self._adopted

    def _refresh_soon(self, messages: ReplicaMessages, session_id: str) -> None:
        now = time.monotonic()
        if now - self._refreshed.get(session_id, 0.0) < self._refresh_every:
            return
        if len(self._refreshed) >= FORGET_REFRESHES_FROM:
            # Sessions end without telling us (idle timeout, the client gone); one not
            # refreshed for a whole period is refreshed at its next request, if any.
            self._refreshed = {
                held: at for held, at in self._refreshed.items() if now - at < self._refresh_every
            }
        self._refreshed[session_id] = now
        messages.refresh_soon(session_id)


def _modern(scope: Scope) -> bool:
    """A 2026-07-28 request: self-contained, no session to share."""
    version = Headers(scope=scope).get(MCP_PROTOCOL_VERSION_HEADER)
    return version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS


def _owner(scope: Scope) -> dict[str, Any] | None:
    """The credential behind a request, as the SDK compares it to a session's opener."""
    user = scope.get("user")
    return dict(authorization_context(user)) if isinstance(user, AuthenticatedUser) else None


def _id_prefix(replica: str) -> str:
    return f"dmcp-{replica}-"


def _ready_connection(dispatcher: Any, session_id: str, record: SessionRecord) -> Connection:
    """The connection of a session taken up: as its `initialize` left it, ready."""
    connection = Connection.for_loop(dispatcher, session_id=session_id)
    try:
        connection.client_params = InitializeRequestParams.model_validate(
            record.client, by_name=False
        )
    except ValidationError:
        logger.debug("session %s…: its client's initialize params no longer validate", session_id)
    connection.protocol_version = record.protocol_version
    connection.initialized.set()
    return connection
