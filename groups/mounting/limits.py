"""Per-group time limits on resources and prompts that clients read through the root.

    server.add_middleware(GroupTimeLimits(registry))

Tool calls are bounded in `Upstream.call_tool`; resources and prompts of a mounted group
reach the upstream through FastMCP's own routing, so their limits (`timeout.resources`,
`timeout.prompts`) are applied here, around that routing. A mounted group's resources are
named `scheme://group/path` and its prompts `group_name` (FastMCP's namespacing). Each
read and prompt is written to the audit log here, with its outcome (`groups.serving.audit`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
from fastmcp.exceptions import PromptError, ResourceError
from fastmcp.server.middleware import Middleware, MiddlewareContext

from groups.access import current_user
from groups.errors import UpstreamTimeoutError
from groups.serving.audit import audit

if TYPE_CHECKING:
    from groups.registry import Registry

__all__ = ["GroupTimeLimits"]

_NAMESPACED_URI = re.compile(r"^[^:]+://([^/]+)/")


class GroupTimeLimits(Middleware):
    """Bounds resources/read and prompts/get by the owning group's configured timeout."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def on_read_resource(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        uri = str(context.message.uri)
        match = _NAMESPACED_URI.match(uri)
        group = match.group(1) if match else None
        with _audited("resource_read", group, uri=uri):
            return await self._bounded(group, "resources", f"Resource {uri!r}", context, call_next)

    async def on_get_prompt(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        name = context.message.name
        group = self._registry.group_prefixing(name)
        with _audited("prompt_get", group, prompt=name):
            return await self._bounded(group, "prompts", f"Prompt {name!r}", context, call_next)

    async def _bounded(
        self, group: str | None, kind: str, operation: str, context: Any, call_next: Any
    ) -> Any:
        config = self._registry.config_of(group) if group else None
        if config is None:
            return await call_next(context)
        limit = getattr(config.timeout, kind).total_seconds()
        try:
            with anyio.fail_after(limit):
                return await call_next(context)
        except TimeoutError:
            # FastMCP shows a client the message of its own error types, and masks others.
            shown = ResourceError if kind == "resources" else PromptError
            raise shown(str(UpstreamTimeoutError(group, operation, limit))) from None


@contextmanager
def _audited(event: str, group: str | None, **names: str) -> Iterator[None]:
    """An audit line for a read or prompt through the root, with its outcome."""
    started, outcome = time.monotonic(), "error"
    try:
        yield
        outcome = "ok"
    finally:
        audit.record(
            event, user=current_user(), outcome=outcome, started=started, group=group, **names
        )
