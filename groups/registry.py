"""All groups of a config: lookup, lazy mounting, descriptions for the model, shutdown.

    registry = Registry()
    registry.configure(config, root=server, config_path=path)
    text = await registry.expand("time", caller)       # compact JSON of the group's tools
    result = await registry.call_tool("time", "get_current_time", {"timezone": "UTC"}, caller)
    await registry.aclose()                            # every upstream process is gone

Guarantees: configuring starts nothing; a group's upstream is mounted on the root server
the first time it is used; a failure in one group is reported for that group alone, and
retried in the background until `aclose()`; every change of a group's availability is
announced through `on_change` (tools/list_changed), which must not block; a client's own
upstream sessions end when it leaves (`release`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types

from groups.callers import Caller
from groups.children import end_children_after
from groups.config import Config, ServerConfig, variables_for
from groups.errors import UnknownGroupError
from groups.secrets import Redactor
from groups.upstream import STARTS_AT_ONCE, State, Upstream

if TYPE_CHECKING:
    from fastmcp import FastMCP
    from mcp.server.connection import Connection

__all__ = ["ChangeListener", "Registry", "compact_tools"]

# Called with the kinds of lists that changed: "tools", "resources", "prompts".
ChangeListener = Callable[..., None]

SHUTDOWN_TIMEOUT = 5.0  # all groups close in parallel; a stuck one must not hold the exit
# Upstreams closing on their own (stdin closed) before the ones left are ended: less than
# the 2 s a client waits for dynamic-mcp itself to exit before it kills it.
SHUTDOWN_GRACE = 1.0


class Registry:
    """Every enabled group by name, and the root server their proxies are mounted on."""

    def __init__(
        self, *, on_change: ChangeListener | None = None, redactor: Redactor | None = None
    ) -> None:
        self._upstreams: dict[str, Upstream] = {}
        self._mounted: set[str] = set()
        self._root: FastMCP | None = None
        # Background retries outlive the request that saw the failure, so they are plain
        # tasks (as FastMCP's own session tasks are), cancelled by aclose().
        self._retries: set[asyncio.Task[None]] = set()
        self.on_change = on_change
        self.redactor = redactor or Redactor()
        self._closed: anyio.Event | None = None  # set once every group is closed

    def __repr__(self) -> str:
        return f"Registry({sorted(self._upstreams)})"

    def configure(self, config: Config, *, root: FastMCP, config_path: Path | None = None) -> None:
        """Take the groups of `config`; `${VAR}` also reads a `.env` beside `config_path`."""
        self._root = root
        start_slots = anyio.Semaphore(STARTS_AT_ONCE)  # shared: a limit on the machine's load
        self._upstreams = {
            name: Upstream(
                name,
                server,
                partial(variables_for, config_path),
                self.redactor,
                on_state_change=self._state_changed,
                start_slots=start_slots,
            )
            for name, server in config.enabled().items()
        }

    def group_names(self) -> list[str]:
        return list(self._upstreams)

    def config_of(self, group: str) -> ServerConfig | None:
        """The config of an enabled group, or None."""
        upstream = self._upstreams.get(group)
        return upstream.config if upstream else None

    def describe_groups(self) -> str:
        """`- name: description` per group; failed groups listed apart with their reason."""
        lines = [
            f"- {name}: {upstream.config.description}"
            for name, upstream in self._upstreams.items()
            if upstream.state is not State.FAILED
        ]
        failed = [
            f"- {name}: {upstream.error.cause if upstream.error else 'unavailable'}"
            for name, upstream in self._upstreams.items()
            if upstream.state is State.FAILED
        ]
        if failed:
            lines += ["Unavailable groups:", *failed]
        return "\n".join(lines)

    async def expand(self, group: str, caller: Caller | None = None) -> str:
        """The group's tools as compact JSON: `[{name, description, inputSchema}, …]`."""
        return compact_tools(await self._use(group).list_tools(caller))

    async def call_tool(
        self, group: str, name: str, arguments: dict[str, Any], caller: Caller | None = None
    ) -> mcp_types.CallToolResult:
        """Forward one call to the group's upstream; its result comes back unchanged."""
        return await self._use(group).call_tool(name, arguments, caller)

    async def release(self, connection: Connection) -> None:
        """A client left: close the upstream sessions that served it alone."""
        async with anyio.create_task_group() as closing:
            for upstream in self._upstreams.values():
                closing.start_soon(upstream.release, connection)

    async def aclose(self) -> None:
        """Close every group at once, bounded, even while the server is being cancelled.

        A second call (a signal during shutdown) waits for the first to finish, so nobody
        exits while upstreams are still closing.
        """
        if self._closed is not None:
            with anyio.move_on_after(SHUTDOWN_TIMEOUT, shield=True):
                await self._closed.wait()
            return
        self._closed = anyio.Event()
        for retry in self._retries:
            retry.cancel()
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_TIMEOUT):
                async with anyio.create_task_group() as closing:
                    closing.start_soon(end_children_after, SHUTDOWN_GRACE)
                    async with anyio.create_task_group() as groups:
                        for upstream in self._upstreams.values():
                            groups.start_soon(upstream.aclose)
                    closing.cancel_scope.cancel()  # all closed within the grace period
        finally:
            self._closed.set()

    def _state_changed(self, upstream: Upstream) -> None:
        """A group failed or recovered: retry it while failed, and tell the clients."""
        if upstream.state is State.FAILED:
            retry = asyncio.get_running_loop().create_task(
                upstream.keep_retrying(), name=f"retry {upstream.name}"
            )
            self._retries.add(retry)
            retry.add_done_callback(self._retries.discard)
        if self.on_change is not None:
            self.on_change("tools")

    def _use(self, group: str) -> Upstream:
        """The group's upstream, mounted on the root server on first use."""
        upstream = self._upstreams.get(group)
        if upstream is None:
            raise UnknownGroupError(group, self._upstreams)
        if group not in self._mounted and self._root is not None:
            # Mounting exposes the upstream's resources and prompts through the root.
            self._root.mount(upstream.proxy, namespace=group)
            self._mounted.add(group)
            features = upstream.config.features
            changed = [k for k in ("resources", "prompts") if getattr(features, k)]
            if changed and self.on_change is not None:
                self.on_change(*changed)
        return upstream


def compact_tools(tools: list[mcp_types.Tool]) -> str:
    """The minimal form the model needs to call a tool, without `$schema` or whitespace."""
    listed = []
    for tool in tools:
        schema = {key: value for key, value in tool.input_schema.items() if key != "$schema"}
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        entry["inputSchema"] = schema
        listed.append(entry)
    return json.dumps(listed, separators=(",", ":"), ensure_ascii=False)
