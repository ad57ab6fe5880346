"""The clients connected now, and telling them when a list changed (`*/list_changed`).

    notifier = Notifier(on_leave=registry.release)
    notifier.see(caller)          # on each request: a new client is remembered, once
    notifier.announce("tools")    # the config changed: returns at once
    notifier.announce("tools", hears=lambda user: may_use(user, access))  # one group's news
    await notifier.listen(ctx, params)  # 2026-07-28 clients hear the same on a listen stream

Guarantees:
- one entry per client connection that can hear a notification later, forgotten when the
  connection closes (its `exit_stack`), so the list never grows with requests: a
  2026-07-28 client, whose every request is a connection of its own, is never kept, and
  hears the same changes on a `subscriptions/listen` stream fed by `bus`;
- `announce` never waits on a client: it sends in the background, every client at once,
  each send bounded by `SEND_TIMEOUT`, so a slow or dead client stalls nobody;
- news of one group (`hears`: its access) reaches only the clients, and the listen
  streams, of users who may use it: a group hidden from a user never makes a sound
  for them, not even "something changed";
- `on_leave` runs once for each client that goes, for what was kept for it elsewhere;
- a user whose access ended (`end_listening`) has their listen streams closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import (
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)

from groups.access import User, user_of_request
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
Audience = Callable[[User | None], bool]  # who may hear a piece of news (None: the implicit)


class Notifier:
    """Client connections by identity, and the notifications sent to them."""

    def __init__(self, on_leave: LeaveListener | None = None) -> None:
        self._clients: dict[Connection, User | None] = {}  # an ordered set, with its user
        self._sending: set[asyncio.Task[None]] = set()
        self.on_leave = on_leave
        self.bus = UsersBus()  # listen streams buffer their own events
        self._listening: dict[str | None, ListenHandler] = {}  # by user: one stream cap each

    def __repr__(self) -> str:
        return f"Notifier({len(self._clients)} clients)"

    def __len__(self) -> int:
        return len(self._clients)

    def see(self, caller: Caller) -> None:
        """Remember the caller's connection if it is new and outlives its request."""
        connection = caller.connection
        if connection in self._clients or not (caller.can_be_notified_later or caller.key):
            return
        self._clients[connection] = caller.user
        connection.exit_stack.push_async_callback(self._leave, connection)

    def announce(self, *kinds: str, hears: Audience | None = None) -> None:
        """Send one notification per kind ("tools", "resources", "prompts") to every client,
        or to those whose user `hears` it."""
        if not kinds:
            return
        task = asyncio.get_running_loop().create_task(self._broadcast(kinds, hears))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def listen(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: mcp_types.SubscriptionsListenRequestParams,
    ) -> mcp_types.SubscriptionsListenResult:
        """Serve a 2026-07-28 client's `subscriptions/listen` with the SDK's handler, on
        the events its user may hear."""
        user = user_of_request(ctx.request)
        key = user.name if user is not None else None
        handler = self._listening.get(key)
        if handler is None:
            handler = self._listening[key] = ListenHandler(self.bus.heard_by(user))
        return await handler(ctx, params)

    def end_listening(self, user: str) -> bool:
        """Close `user`'s listen streams (2026-07-28 clients); whether they had any."""
        handler = self._listening.pop(user, None)
        if handler is not None:
            handler.close()
        return handler is not None

    async def aclose(self) -> None:
        """Stop sending: the server is going away."""
        for task in list(self._sending):
            task.cancel()
        for handler in self._listening.values():
            handler.close()

    async def _broadcast(self, kinds: tuple[str, ...], hears: Audience | None) -> None:
        for kind in kinds:
            await self.bus.publish(_EVENT[kind], hears)  # never blocks: streams buffer
        async with anyio.create_task_group() as sending:
            for connection, user in list(self._clients.items()):
                if hears is None or hears(user):
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


Listener = Callable[[ServerEvent], None]


class UsersBus:
    """The listen streams' events, each heard by the streams of the users it is for (the
    SDK's `InMemorySubscriptionBus`, with an audience)."""

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[User | None, Listener]] = {}

    async def publish(self, event: ServerEvent, hears: Audience | None = None) -> None:
        for user, listener in list(self._listeners.values()):
            if hears is None or hears(user):
                try:
                    listener(event)
                except Exception:  # one stream's trouble is not the others'
                    logger.exception("a listen stream failed to take an event")
        await anyio.lowlevel.checkpoint()

    def heard_by(self, user: User | None) -> _UserView:
        """The bus as `user`'s streams subscribe to it."""
        return _UserView(self, user)

    def _subscribe(self, user: User | None, listener: Listener) -> Callable[[], None]:
        token = object()
        self._listeners[token] = (user, listener)
        return lambda: self._listeners.pop(token, None)  # type: ignore[return-value]


class _UserView:
    """One user's side of a `UsersBus`: a `SubscriptionBus` for the SDK's `ListenHandler`."""

    def __init__(self, bus: UsersBus, user: User | None) -> None:
        self._bus, self._user = bus, user

    async def publish(self, event: ServerEvent) -> None:
        await self._bus.publish(event)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._bus._subscribe(self._user, listener)
