"""The clients subscribed to one upstream session's resources, and telling them of updates.

    subscribers = session.subscribers                  # one table per upstream session
    subscribers.add("memo://a", "memo://notes/a", caller.connection, may_hear)  # then upstream
    await subscribers.updated("memo://a")              # the upstream's resources/updated
    if subscribers.remove("memo://a", caller.connection):   # its last subscriber left
        ...                                            # send resources/unsubscribe upstream

Guarantees:
- an upstream's `notifications/resources/updated` reaches exactly the client connections
  subscribed to that resource on this session, under the URI each one subscribed to (the
  group's namespace on it), and never another client; an update nobody asked for is dropped,
  and so is one for a subscriber whose user may no longer use the group (`may_hear`,
  asked at each update: an edit of `access` applies to subscriptions made before it);
- a subscription ends with its client's connection, and with the session that holds it;
- telling a client never waits on it longer than `SEND_TIMEOUT`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from mcp.server.connection import Connection

__all__ = ["SEND_TIMEOUT", "Subscribers"]

logger = logging.getLogger(__name__)

# One update to one client. It is sent from the upstream session's receive loop, which
# waits meanwhile: a stuck client must not hold its session's other messages for long.
SEND_TIMEOUT = 2.0


class Subscribers:
    """Resource subscriptions on one upstream session: upstream URI → client → its URI."""

    def __init__(self, group: str) -> None:
        self.group = group
        # upstream URI -> subscribed connection -> (its URI, whether it may still hear)
        self._by_uri: dict[str, dict[Connection, tuple[str, Callable[[], bool]]]] = {}
        self._watched: set[Connection] = set()  # connections whose end forgets them here

    def __repr__(self) -> str:
        return f"Subscribers({self.group!r}, {len(self._by_uri)} resources)"

    def __bool__(self) -> bool:
        return bool(self._by_uri)

    def add(
        self,
        uri: str,
        shown_as: str,
        connection: Connection,
        may_hear: Callable[[], bool] = lambda: True,
    ) -> None:
        """Subscribe `connection` to the upstream's `uri`, which it knows as `shown_as`,
        while `may_hear()`.

        Added before the upstream is asked, so an update sent right after its answer is
        not missed; `remove` it again if the upstream refuses.
        """
        self._by_uri.setdefault(uri, {})[connection] = (shown_as, may_hear)
        if connection not in self._watched:
            self._watched.add(connection)
            connection.exit_stack.callback(self._forget, connection)

    def remove(self, uri: str, connection: Connection) -> bool:
        """Unsubscribe `connection` from `uri`; whether that left it with no subscriber (so
        the upstream should be told), False if `connection` was not subscribed to it."""
        subscribed = self._by_uri.get(uri, {})
        if subscribed.pop(connection, None) is None:
            return False
        if subscribed:
            return False
        del self._by_uri[uri]
        return True

    async def updated(self, uri: str) -> None:
        """Tell each client subscribed to the upstream's `uri` that it changed."""
        subscribed = list(self._by_uri.get(uri, {}).items())
        if not subscribed:
            logger.debug("%s: an update of a resource no client subscribed to", self.group)
        for connection, (shown_as, may_hear) in subscribed:
            if not may_hear():
                logger.debug("%s: an update not sent to a user it is no longer for", self.group)
                continue
            with anyio.move_on_after(SEND_TIMEOUT) as scope:
                await connection.send_resource_updated(shown_as)  # never raises: best effort
            if scope.cancelled_caught:
                logger.debug("a client took over %gs to take a resource update", SEND_TIMEOUT)

    def _forget(self, connection: Connection) -> None:
        """The client went away: its subscriptions go with it (the upstream's stay until the
        session ends; an update of them is then dropped here)."""
        self._watched.discard(connection)
        for uri in list(self._by_uri):
            self._by_uri[uri].pop(connection, None)
            if not self._by_uri[uri]:
                del self._by_uri[uri]
