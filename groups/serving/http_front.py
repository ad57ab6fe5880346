"""What stands before the MCP endpoint of a served HTTP app, in the order it acts.

    front = HttpFront("/mcp", needs_identity=True)
    app = server.http_app(middleware=[front.middleware()])  # after FastMCP's auth
    front.attach(app)
    async with front.serving(store, settings.http):         # in the server's lifespan
        ...

A request reaches the endpoint through: FastMCP's Host/Origin guard, with the config's
allowed names (`groups.serving.host_refusals`, which says why it refuses); FastMCP's
authentication (who is asking); the
body, read once within its limit (`groups.serving.request_bodies`: nothing before
identity); a note of when its user was last seen (`seen`, for `dynamic-mcp admin`); each
user's limits on sessions (`groups.serving.session_limits`); the legacy sessions every
replica can serve (`groups.serving.shared_sessions`); the SDK's session manager, its own
limits set from the same settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from groups.access import user_of_scope
from groups.internals import held_session_count, http_session_manager, limit_http_sessions
from groups.serving.heartbeat import SeenUsers
from groups.serving.host_refusals import HostRefusals
from groups.serving.request_bodies import RequestBodies
from groups.serving.session_limits import SessionLimits
from groups.serving.shared_sessions import SharedSessions

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette

    from groups.config import HttpSettings
    from groups.storage.store import Store

__all__ = ["HttpFront"]


class HttpFront:
    """The parts before one MCP endpoint (see the module)."""

    def __init__(self, path: str, *, needs_identity: bool) -> None:
        self.hosts = HostRefusals()
        self.sessions = SharedSessions(path)
        self.limits = SessionLimits(then=self.sessions.handle)
        self.seen = SeenUsers()
        self.bodies = RequestBodies(path, needs_identity=needs_identity, then=self._seeing)
        self._manager: Callable[[], StreamableHTTPSessionManager | None] | None = None

    def __repr__(self) -> str:
        return f"HttpFront({self.bodies!r}, {self.limits!r}, {self.sessions!r})"

    def middleware(self) -> Middleware:
        return self.bodies.middleware()

    async def _seeing(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        user = user_of_scope(scope)
        if user is not None:
            self.seen.saw(user.name)
        await self.limits.handle(app, scope, receive, send)

    def attach(self, app: Starlette) -> None:
        """Serve `app`'s MCP endpoint."""
        self._manager = http_session_manager(app)
        self.hosts.attach(app)
        self.sessions.attach(app)

    def open_sessions(self) -> int:
        """The legacy sessions this process holds now (0 while it serves none)."""
        manager = self._manager() if self._manager is not None else None
        return held_session_count(manager) if manager is not None else 0

    @asynccontextmanager
    async def serving(self, store: Store, settings: HttpSettings) -> AsyncIterator[None]:
        """Apply `settings` and share sessions through `store` while this runs."""
        self.hosts.use(settings)
        self.bodies.limit = settings.max_request_body
        self.limits.use(store, settings)
        # A session's record lives as long as the session can, written again as often
        # as its place.
        self.sessions.keep_records(settings.session_lifetime, settings.renew_every)
        manager = self._manager() if self._manager is not None else None
        if manager is not None:
            limit_http_sessions(
                manager,
                max_request_body=settings.max_request_body,
                max_sessions=settings.max_sessions,
                idle_timeout=settings.session_idle_timeout.total_seconds(),
            )
        async with self.sessions.serving(store):
            yield
