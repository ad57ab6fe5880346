"""All groups of a config: lookup, lazy mounting, reloads, descriptions for the model, shutdown.

    registry = Registry()
    server.add_provider(registry.mounted)              # the groups' resources and prompts
    registry.configure(config, config_path=path)
    text = await registry.expand("time", caller)       # compact JSON of the group's tools
    #   (with settings.code, each with what it returns where its output schema says)
    registry.group_names(user)                         # the groups a gateway user may use
    await registry.end_user("alice", "…")              # her processes and sessions end
    result = await registry.call_tool("time", "get_current_time", {"timezone": "UTC"}, caller)
    changes = registry.reconfigure(new_config)         # only what changed changes
    await registry.aclose()                            # every upstream process is gone

Guarantees: configuring starts nothing; a group's proxy is mounted the first time the
group is used; an expansion answered from the catalog starts, in the background, the
session the caller will call on (unless the group's `start_on_expand`, else the settings',
is false), owned and ended by the group's upstream; nothing else starts before a request
needs it; a failure in one group is reported for that group alone, and retried in
the background until `aclose()`; every change of a group's availability, and every reload
that changes something, is announced through `on_change` (tools/list_changed, and
resources/prompts when a mounted group went or switched them, or its upstream said they
changed), which must not block, with `group=` for news of one group (its users alone may
hear it); a client's own upstream sessions end when it leaves
(`release`), and a user's own when their access ends (`end_user`). On a reload, a
group whose launch identity (`groups.config.identity`) is unchanged
keeps its upstream and sessions and takes its new description, filters, timeouts, idle
time and feature switches in place; a changed or removed one is unmounted at once and
closed once its requests in flight are done. A group a named user may not use
(`groups.access`: its `access` names neither them nor their groups) is to them as if it
were not configured: not listed, not described, and `UnknownGroupError` (naming only the
groups they may use) when they expand it, call it, or read its resources or prompts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types

from groups.access import User, current_user, may_use
from groups.catalog import Catalog
from groups.changes import Changes, compare
from groups.code.shapes import shape
from groups.config import Config, ServerConfig, Settings, variables_for
from groups.config.identity import launch_identity
from groups.errors import ConfigUnusableError, DynamicMcpError, UnknownGroupError
from groups.mounting.mounted import MountedGroups
from groups.search import search_text
from groups.secrets import Redactor
from groups.upstream import STARTS_AT_ONCE, Caller, State, Upstream
from groups.upstream.call_limits import CallLimits
from groups.upstream.children import end_children_after
from groups.upstream.sessions import UpstreamUse

if TYPE_CHECKING:
    from mcp.server.connection import Connection

__all__ = ["ChangeListener", "Registry", "compact_tools"]

logger = logging.getLogger(__name__)

# Called with the kinds of lists that changed: "tools", "resources", "prompts".
ChangeListener = Callable[..., None]

SHUTDOWN_TIMEOUT = 5.0  # all groups close in parallel; a stuck one must not hold the exit
# Upstreams closing on their own (stdin closed) before the ones left are ended: less than
# the 2 s a client waits for dynamic-mcp itself to exit before it kills it.
SHUTDOWN_GRACE = 1.0
IDLE_CHECK_INTERVAL = 1.0  # how often unused stdio upstreams are looked for
SEARCH_RESULTS = 10  # matches search_dynamic_tools returns at most


class Registry:
    """Every enabled group by name, and the provider their proxies are mounted in."""

    def __init__(
        self,
        *,
        on_change: ChangeListener | None = None,
        redactor: Redactor | None = None,
        catalog: Catalog | None = None,
        browser_sign_in: bool = True,
    ) -> None:
        self._upstreams: dict[str, Upstream] = {}
        self._identities: dict[str, str] = {}  # each group's launch identity, as applied
        self._config_path: Path | None = None
        self._start_slots = anyio.Semaphore(STARTS_AT_ONCE)  # a limit on the machine's load
        # A mounted group's resources and prompts are listed and read by users it is hidden
        # from too: FastMCP's dispatch asks per request whether this one may see them.
        self.mounted = MountedGroups(lambda group: group in self.group_names(current_user()))
        # Background retries outlive the request that saw the failure, and a reloaded
        # group closes after its last request: plain tasks, ended by aclose().
        self._retries: set[asyncio.Task[None]] = set()
        self._retiring: dict[Upstream, asyncio.Task[None]] = {}
        self.on_change = on_change
        self.redactor = redactor or Redactor()
        self.settings = Settings()
        self._catalog = catalog  # None: the command line turned the catalog off
        self._browser_sign_in = browser_sign_in  # False: say to run `dynamic-mcp auth` instead
        self._resting: asyncio.Task[None] | None = None  # stops unused stdio upstreams
        self._closed: anyio.Event | None = None  # set once every group is closed
        self.call_limits = CallLimits()  # each user's rate limits and caps on tool calls
        # Why no group is served: the config could not be used (`refuse`); None once it can.
        self.unusable: ConfigUnusableError | None = None

    def __repr__(self) -> str:
        return f"Registry({sorted(self._upstreams)})"

    def configure(self, config: Config, *, config_path: Path | None = None) -> None:
        """Take the groups of `config`; `${VAR}` also reads a `.env` beside `config_path`."""
        self._config_path = config_path
        self.settings = config.settings
        variables = variables_for(config_path)
        servers = config.enabled()
        self._identities = {
            name: launch_identity(server, variables) for name, server in servers.items()
        }
        self._upstreams = {name: self._upstream(name, server) for name, server in servers.items()}
        self.unusable = None
        self._watch_idle()

    def _applied_identity(self, name: str) -> str:
        """The launch identity `name` runs with: its sessions', when they all started with
        one (a `${VAR}` first read as its upstream started, after the config was), else
        the identity the config gave it."""
        launched = self._upstreams[name].launched()
        return launched.pop() if len(launched) == 1 else self._identities[name]

    def refuse(self, error: DynamicMcpError, *, config_path: Path | None = None) -> None:
        """Serve no group, because the config cannot be used: `error` says why, in the
        groups' description and in the error of every request for one. Starts nothing."""
        self._config_path = config_path
        self.unusable = ConfigUnusableError(error)
        if self.on_change is not None:
            self.on_change("tools")

    def reconfigure(self, config: Config) -> Changes:
        """Apply a new config: new groups appear, removed ones go, changed ones start anew.

        A group is changed when its launch identity (`groups.config.identity`) is another: its
        command, args, env, url…, or a `${VAR}` they use. An unchanged group keeps its
        upstream, sessions and process; one whose description, tool filter, timeouts,
        idle time or feature switches alone are new keeps them too, and uses the new ones.
        """
        variables = variables_for(self._config_path)
        servers = config.enabled()
        identities = {name: launch_identity(server, variables) for name, server in servers.items()}
        applied = {
            name: (self._applied_identity(name), u.config) for name, u in self._upstreams.items()
        }
        diff = compare(applied, identities, servers, self.settings, config.settings)
        self.settings = config.settings
        kept = {n: s for n, s in servers.items() if n in self._upstreams and n not in diff.changed}
        relisted = self._apply_in_place(kept)
        unmounted = False
        for name in (*diff.removed, *diff.changed):
            unmounted |= self.mounted.unmount(name)
            self._retire(self._upstreams.pop(name))
        self._identities = identities
        upstreams = {
            name: self._upstreams.get(name) or self._upstream(name, server)
            for name, server in servers.items()
        }
        for name, upstream in upstreams.items():  # settings apply to every group at once
            upstream.catalog = self._active_catalog()
            upstream.idle_timeout = self.settings.idle_seconds(servers[name])
            upstream.retry_on(self.settings.retry_schedule())
        self._upstreams = upstreams  # in the new config's order
        self._watch_idle()
        changes = dataclasses.replace(diff, unmounted=unmounted)
        if changes and self.on_change is not None:
            lists = ("resources", "prompts") if unmounted or relisted else ()
            self.on_change("tools", *lists)
        return changes

    def _apply_in_place(self, servers: dict[str, ServerConfig]) -> bool:
        """Give kept groups their new entries; whether a mounted group's features changed."""
        relisted = False
        for name, server in servers.items():
            upstream = self._upstreams[name]
            relisted |= name in self.mounted and server.features != upstream.config.features
            upstream.config = server  # read at each request: applies from the next one
        return relisted

    def group_names(self, user: User | None = None) -> list[str]:
        """The enabled groups `user` may use, in config order (None: the implicit user, who
        may use every one)."""
        return [name for name, u in self._upstreams.items() if may_use(user, u.config.access)]

    def group_prefixing(self, name: str, user: User | None = None) -> str | None:
        """The group whose namespace `name` is in (`<group>_<rest>`, as FastMCP namespaces a
        mounted group's prompts): the longest, since groups "a" and "a_b" both fit "a_b_x";
        only groups `user` may use."""
        owners = [g for g in self.group_names(user) if name.startswith(f"{g}_") and name != f"{g}_"]
        return max(owners, key=len) if owners else None

    def config_of(self, group: str) -> ServerConfig | None:
        """The config of an enabled group, or None."""
        upstream = self._upstreams.get(group)
        return upstream.config if upstream else None

    def upstream(self, group: str, user: User | None = None) -> Upstream:
        """The upstream of an enabled group `user` may use, unmounted.

        Raises:
            ConfigUnusableError: the config could not be used (`refuse`): no group is.
            UnknownGroupError: no enabled group `user` may use has that name.
        """
        if self.unusable is not None:
            raise ConfigUnusableError(self.unusable.cause)  # anew: each carries its traceback
        upstream = self._upstreams.get(group)
        if upstream is None or not may_use(user, upstream.config.access):
            raise UnknownGroupError(group, self.group_names(user))
        return upstream

    def describe_groups(self, user: User | None = None) -> str:
        """`- name: description` per group `user` may use; failed groups listed apart with
        their reason; or why there are none, when the config cannot be used."""
        if self.unusable is not None:
            return f"(none) {self.unusable}"
        return _describe({name: self._upstreams[name] for name in self.group_names(user)})

    async def expand(self, group: str, caller: Caller | None = None) -> str:
        """The group's tools as compact JSON, `[{name, description, inputSchema}, …]`; from the
        catalog, the upstream starts meanwhile (a call is coming) unless the config says not."""
        upstream = self._use(group, caller)
        tools = await upstream.list_tools(caller)
        if self.settings.starts_on_expand(upstream.config):
            upstream.start_early(caller)  # nothing if a session serves the caller already
        return compact_tools(tools, returns=self.settings.code_limits is not None)

    async def call_tool(
        self, group: str, name: str, arguments: dict[str, Any], caller: Caller | None = None
    ) -> mcp_types.CallToolResult:
        """Forward one call to the group's upstream; its result comes back unchanged.

        Raises:
            CallLimitedError: a limit of the caller's refuses it (`upstream.call_limits`);
            and what `Upstream.call_tool` raises.
        """
        upstream, user = self._use(group, caller), caller.user if caller is not None else None
        upstream.check_callable(name, user)  # a hidden tool is said so, never counted
        async with self.call_limits.admitted(group, name, upstream.config, self.settings, user):
            return await upstream.call_tool(name, arguments, caller)

    async def search(self, query: str, user: User | None = None) -> str:
        """The tools that best match `query` across every group `user` may use, as compact
        JSON, and which groups could not be searched (their tools are not known yet)."""
        shown = {name: self._upstreams[name] for name in self.group_names(user)}
        known = {name: await upstream.known_tools(user) for name, upstream in shown.items()}
        return search_text(query, known, limit=SEARCH_RESULTS)

    def processes(self) -> dict[str, int]:
        """Each group's upstream processes running now (`/metrics`)."""
        return {name: upstream.processes() for name, upstream in self._upstreams.items()}

    async def end_user(self, user: str, because: str) -> int:
        """End every upstream session that serves `user` alone, in every group, and their
        sign-ins (`Upstream.end_user`); how many sessions ended."""
        ended = [0]

        async def end(upstream: Upstream) -> None:
            ended[0] += await upstream.end_user(user, because)

        async with anyio.create_task_group() as ending:
            for upstream in self._upstreams.values():
                ending.start_soon(end, upstream)
        return ended[0]

    def uses(self) -> list[UpstreamUse]:
        """Every live upstream session of every group, and whose it is."""
        return [use for upstream in self._upstreams.values() for use in upstream.uses()]

    async def release(self, connection: Connection) -> None:
        """A client left: close the upstream sessions that served it alone."""
        async with anyio.create_task_group() as closing:
            for upstream in self._upstreams.values():
                closing.start_soon(upstream.release, connection)

    def _upstream(self, name: str, server: ServerConfig) -> Upstream:
        upstream = Upstream(
            name,
            server,
            partial(variables_for, self._config_path),
            self.redactor,
            on_state_change=self._state_changed,
            start_slots=self._start_slots,
            on_list_changed=self._lists_changed,
            catalog=self._active_catalog(),
            identity=self._identities[name],
            idle_timeout=self.settings.idle_seconds(server),
            browser_sign_in=self._browser_sign_in,
        )
        upstream.retry_on(self.settings.retry_schedule())
        return upstream

    def _active_catalog(self) -> Catalog | None:
        return self._catalog if self.settings.catalog else None

    def _watch_idle(self) -> None:
        """Start looking for unused stdio upstreams, once any group may have to rest."""
        needed = any(u.idle_timeout for u in self._upstreams.values())
        if needed and self._resting is None:
            self._resting = asyncio.get_running_loop().create_task(self._rest_idle())

    async def _rest_idle(self) -> None:
        while True:
            await anyio.sleep(IDLE_CHECK_INTERVAL)
            for upstream in list(self._upstreams.values()):
                await upstream.rest_idle()

    def _retire(self, upstream: Upstream) -> None:
        """Close an upstream a reload replaced, once its requests in flight are done."""
        task = asyncio.get_running_loop().create_task(
            upstream.retire(), name=f"retire {upstream.name}"
        )
        self._retiring[upstream] = task
        task.add_done_callback(lambda _: self._retiring.pop(upstream, None))

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
        for background in [*self._retries, *self._retiring.values(), self._resting]:
            if background is not None:
                background.cancel()
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_TIMEOUT):
                async with anyio.create_task_group() as closing:
                    closing.start_soon(end_children_after, SHUTDOWN_GRACE)
                    async with anyio.create_task_group() as groups:
                        for upstream in [*self._upstreams.values(), *self._retiring]:
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
            self.on_change("tools", group=upstream.name)

    def _lists_changed(self, upstream: Upstream, kind: str) -> None:
        """An upstream's resources or prompts changed: tell the clients, if they see them."""
        if upstream.name in self.mounted and self.on_change is not None:
            self.on_change(kind, group=upstream.name)

    def _use(self, group: str, caller: Caller | None) -> Upstream:
        """The group's upstream, mounted on the root server on first use.

        Raises:
            UnknownGroupError: no enabled group the caller may use has that name.
        """
        upstream = self.upstream(group, caller.user if caller is not None else None)
        if group not in self.mounted:
            # Mounting exposes the upstream's resources and prompts through the root.
            self.mounted.mount(group, lambda: upstream.proxy)
            features = upstream.config.features
            changed = [k for k in ("resources", "prompts") if getattr(features, k)]
            if changed and self.on_change is not None:
                self.on_change(*changed, group=group)
        return upstream


def _describe(upstreams: dict[str, Upstream]) -> str:
    """`- name: description` per group; failed groups listed apart with their reason."""
    lines = [
        f"- {name}: {upstream.config.description}"
        for name, upstream in upstreams.items()
        if upstream.state is not State.FAILED
    ]
    failed = [
        f"- {name}: {upstream.error.cause if upstream.error else 'unavailable'}"
        for name, upstream in upstreams.items()
        if upstream.state is State.FAILED
    ]
    if failed:
        lines += ["Unavailable groups:", *failed]
    return "\n".join(lines)


def compact_tools(tools: list[mcp_types.Tool], *, returns: bool = False) -> str:
    """The minimal form the model needs to call a tool, without `$schema` or whitespace;
    with `returns` (code mode), what each tool that declares an output schema returns, in
    a few words (`groups.code.shapes`): a program chains results it knows the shape of."""
    listed = []
    for tool in tools:
        schema = {key: value for key, value in tool.input_schema.items() if key != "$schema"}
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        entry["inputSchema"] = schema
        returned = shape(tool.output_schema) if returns else None
        if returned is not None:
            entry["returns"] = returned
        listed.append(entry)
    return json.dumps(listed, separators=(",", ":"), ensure_ascii=False)
