"""Requests to one group's upstream: counted while in flight, tool calls sent as they came.

    in_flight = InFlight()
    with in_flight.counted():                       # holds the sessions open meanwhile
        result = await send_tool_call(session, "search", {"q": "x"}, caller, limit=30.0)
    await in_flight.settled(within=1.0)             # a close waits for requests, bounded
    in_flight.idle_for                              # seconds since the last one ended

Guarantees:
- every request to the upstream counts as use (tools; resources, templates and prompts
  through the proxy, from the moment it asks for a session until the client's request
  ends; completions and subscriptions, `groups.mounting.forwarded`): while one is in
  flight the group's sessions are never stopped for being idle, and closing waits for
  it, bounded;
- a tool call goes straight onto the session: its result is neither validated against
  the tool's output schema nor converted, so it arrives as the upstream sent it; the
  upstream's callbacks during it go to the caller (`CallbackRoute.calling`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import mcp_types

from groups.upstream.callers import Caller
from groups.upstream.sessions import Session

__all__ = ["IN_FLIGHT_GRACE", "InFlight", "send_tool_call"]

logger = logging.getLogger(__name__)

# At close, requests under way get this long to finish. Short: at shutdown the processes
# left are ended after `registry.SHUTDOWN_GRACE` whatever happens.
IN_FLIGHT_GRACE = 1.0
LOG_PREVIEW = 500  # characters of a request or result shown in debug logs


class InFlight:
    """The requests under way on one group, and when the last one ended."""

    def __init__(self) -> None:
        self.count = 0
        self.last_used = time.monotonic()
        self._settled = anyio.Event()  # set while none is in flight
        self._settled.set()

    def __repr__(self) -> str:
        return f"InFlight({self.count})"

    @contextmanager
    def counted(self) -> Iterator[None]:
        """Count a request in flight: it holds the sessions open, and its end is a use."""
        if self.count == 0:
            self._settled = anyio.Event()
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            self.last_used = time.monotonic()
            if self.count == 0:
                self._settled.set()

    def hold_until_request_ends(self) -> None:
        """Count a request in flight until the client request this task serves ends
        (`groups.mounting.in_flight`); outside one, nothing tells when it ends: a use now."""
        from groups.mounting.in_flight import hold_until_request_ends

        if not hold_until_request_ends(self.counted()):
            self.last_used = time.monotonic()

    async def settled(self, *, within: float) -> None:
        """Wait until no request is in flight, or `within` seconds have passed."""
        with anyio.move_on_after(within):
            await self._settled.wait()

    @property
    def idle_for(self) -> float | None:
        """Seconds since the last request ended; None while one is under way."""
        return None if self.count else time.monotonic() - self.last_used


async def send_tool_call(
    session: Session,
    name: str,
    arguments: dict[str, Any],
    caller: Caller | None,
    *,
    limit: float,
) -> mcp_types.CallToolResult:
    """Send `tools/call` on `session` and return the upstream's result as it came.

    Raises:
        UpstreamTimeoutError: no answer within `limit` seconds (the group's tool timeout).
        GroupUnavailableError, RefusedMidSession: see `Session.bounded`.
    """
    request = mcp_types.CallToolRequest(
        params=mcp_types.CallToolRequestParams(name=name, arguments=arguments)
    )
    progress = caller.report_progress if caller is not None and caller.wants_progress else None
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("→ %s tools/call %s %s", session.group, name, _preview(arguments))
    with session.route.calling(caller), session.bounded(f"Tool {name!r}", limit):
        result = await session.client.session.send_request(
            request, mcp_types.CallToolResult, progress_callback=progress
        )
    if logger.isEnabledFor(logging.DEBUG):
        error = " (isError)" if result.is_error else ""
        logger.debug("← %s tools/call %s%s %s", session.group, name, error, _preview(result))
    return result


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= LOG_PREVIEW else text[:LOG_PREVIEW] + "…"
