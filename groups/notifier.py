"""Tell every connected client when a list changed (`notifications/*/list_changed`).

    notifier = ListChangedNotifier()
    server.add_middleware(notifier)        # learns each client connection from its requests
    await notifier.broadcast("tools")      # e.g. a group failed or recovered

Guarantees: a client that has gone away is forgotten, never an error for the others.
Notifications reach clients on the session-based protocol versions (every MCP client in
use today); FastMCP does not yet serve `subscriptions/listen` for the 2026-07-28 era.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types
from fastmcp.server.middleware import Middleware, MiddlewareContext

__all__ = ["ListChangedNotifier"]

logger = logging.getLogger(__name__)

NOTIFICATIONS = {
    "tools": mcp_types.ToolListChangedNotification,
    "resources": mcp_types.ResourceListChangedNotification,
    "prompts": mcp_types.PromptListChangedNotification,
}


class ListChangedNotifier(Middleware):
    """Remembers client connections, and sends them list_changed notifications."""

    def __init__(self) -> None:
        # The SDK builds a session object per request; the connection behind it is stable.
        self._sessions: dict[Any, Any] = {}

    async def on_request(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        ctx = context.fastmcp_context
        if ctx is not None and ctx.request_context is not None:
            session = ctx.session
            self._sessions[getattr(session, "_connection", session)] = session
        return await call_next(context)

    async def broadcast(self, *kinds: str) -> None:
        """Send one notification per kind ("tools", "resources", "prompts") to every client."""
        for connection, session in list(self._sessions.items()):
            try:
                for kind in kinds:
                    await session.send_notification(NOTIFICATIONS[kind]())
            except Exception as exc:  # the client is gone; it will not be asked again
                logger.debug("dropping a closed client session: %s", exc)
                self._sessions.pop(connection, None)
