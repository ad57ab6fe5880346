"""The clients connected now, and telling them when a list changed (`*/list_changed`).

    notifier = Notifier(on_leave=registry.release)
    notifier.see(caller)          # on each request: a new client is remembered, once
    notifier.announce("tools")    # a group failed or recovered: returns at once
    ListenHandler(notifier.bus)   # 2026-07-28 clients hear the same on subscriptions/listen

Guarantees:
- one entry per client connection that can hear a notification later, forgotten when the
  connection closes (its `exit_stack`), so the list never grows with requests: a
  2026-07-28 client, whose every request is a connection of its own, is never kept, and
  hears the same changes on a `subscriptions/listen` stream fed by `bus`;
- `announce` never waits on a client: it sends in the background, every client at once,
  each send bounded by `SEND_TIMEOUT`, so a slow or dead client stalls nobody;
- `on_leave` runs once for each client that goes, for what was kept for it elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import anyio
from mcp.server.connection import Connection
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)

from groups.upstream.callers import Caller

__all__ = ["SEND_TIMEOUT", "Notifier"]

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 2.0  # one notification to one client; a stuck client is skipped after this

_SEND = {
    "tools": Connection.send_tool_list_changed,
    "resources": Connection.send_resource_list_changed,
    "prompts": Connection.send_prompt_list_changed,
}
_EVENT = {
    "tools": ToolsListChanged(),
    "resources": ResourcesListChanged(),
    "prompts": PromptsListChanged(),
}

LeaveListener = Callable[[Connection], Awaitable[None]]


class Notifier:
    """Client connections by identity, and the notifications sent to them."""

    def __init__(self, on_leave: LeaveListener | None = None) -> None:
        self._clients: dict[Connection, None] = {}  # an ordered set
        self._sending: set[asyncio.Task[None]] = set()
        self.on_leave = on_leave
        self.bus = InMemorySubscriptionBus()  # listen streams buffer their own events

    def __repr__(self) -> str:
        return f"Notifier({len(self._clients)} clients)"

    def __len__(self) -> int:
        return len(self._clients)

    def see(self, caller: Caller) -> None:
        """Remember the caller's connection if it is new and outlives its request."""
        connection = caller.connection
        if connection in self._clients or not (caller.can_be_notified_later or caller.key):
            return
        self._clients[connection] = None
        connection.exit_stack.push_async_callback(self._leave, connection)

    def announce(self, *kinds: str) -> None:
        """Send one notification per kind ("tools", "resources", "prompts") to every client."""
        if not kinds:
            return
        task = asyncio.get_running_loop().create_task(self._broadcast(kinds))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def aclose(self) -> None:
        """Stop sending: the server is going away."""
        for task in list(self._sending):
            task.cancel()

    async def _broadcast(self, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            await self.bus.publish(_EVENT[kind])  # never blocks: each stream has a buffer
        async with anyio.create_task_group() as sending:
            for connection in list(self._clients):
                sending.start_soon(self._send, connection, kinds)

    async def _send(self, connection: Connection, kinds: tuple[str, ...]) -> None:
        with anyio.move_on_after(SEND_TIMEOUT) as scope:
            for kind in kinds:
                await _SEND[kind](connection)  # best effort: a closed stream is skipped
        if scope.cancelled_caught:
            logger.debug("a client took over %gs to take a notification", SEND_TIMEOUT)

    async def _leave(self, connection: Connection) -> None:
        self._clients.pop(connection, None)
        if self.on_leave is not None:
            await self.on_leave(connection)
