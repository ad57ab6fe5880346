"""Client requests that reach an upstream through a mounted proxy: each holds what it uses.

    server.add_middleware(HoldWhileInFlight())            # once, outermost, on the root
    held = hold_until_request_ends(in_flight.counted())    # in a proxy's client factory

A group's proxy asks its client factory for a session at the start of every upstream
request (resources, templates, prompts: lists, reads, gets) but tells no one when the
request ends. The root middleware opens a scope around each client request; what the
factory enters into that scope is left when the request ends, however it ends.

Guarantees: a use entered while a client request runs is left exactly once, when that
request ends (answered, failed or cancelled); outside a client request nothing is entered
and `hold_until_request_ends` says so.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from contextvars import ContextVar
from typing import Any

from fastmcp.server.middleware import Middleware, MiddlewareContext

__all__ = ["HoldWhileInFlight", "hold_until_request_ends"]

# The uses of the client request this task serves; a task the request starts shares it.
_uses: ContextVar[ExitStack | None] = ContextVar("dynamic_mcp_uses", default=None)


class HoldWhileInFlight(Middleware):
    """Leaves the uses a client request entered when the request ends."""

    def __repr__(self) -> str:
        return "HoldWhileInFlight()"

    async def on_request(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        with ExitStack() as uses:
            token = _uses.set(uses)
            try:
                return await call_next(context)
            finally:
                _uses.reset(token)


def hold_until_request_ends(use: AbstractContextManager[object]) -> bool:
    """Enter `use` now and leave it when the client request under way ends.

    Returns False, having entered nothing, when no client request is under way (a direct
    library call): the caller then decides for itself.
    """
    uses = _uses.get()
    if uses is None:
        return False
    uses.enter_context(use)
    return True
