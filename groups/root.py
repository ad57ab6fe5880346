"""The root FastMCP server: the groups behind it, how it is served, and the rules for both.

    root = RootServer(path)                    # nothing read or started until it serves
    @root.tool(output_schema=None)             # server.py declares the meta-tools on it
    async def get_dynamic_tools(group: str) -> CallToolResult: ...
    root.serve_meta_tools(get_dynamic_tools, call_dynamic_tool, search_dynamic_tools,
                          run_dynamic_code)
    await root.run_stdio_async()               # or run_http_async(host=…, port=…)

Guarantees:
- building it reads no file and starts nothing: the lifespan loads the config when the
  server starts, and a group's upstream starts on the group's first use;
- over stdio, a config that cannot be used (missing, invalid, a store setting it cannot
  use) is served anyway: `initialize` is answered, no group is served or started, and
  what is wrong is in `get_dynamic_tools`' description and every call's error, until a
  save fixes it (over HTTP, and for the terminal commands, it stops the start);
- the lifespan owns the registry: when it ends, every upstream is closed (`Registry.aclose`)
  and so is the code sandbox's every worker (`MetaTools.aclose`), and while it runs, edits
  of the config and of its `.env` are applied (`groups.reload`), and over HTTP those of the
  users file (`groups.serving.administration`), unless `watch` is off;
- however it is started (`dynamic-mcp`, `fastmcp run server.py`, `fastmcp dev inspector`),
  the same rules hold: over stdio our own pipes (`groups.serving.stdio_pipes`); over HTTP
  auth off loopback (a token, or named users) and the Host/Origin guard
  (`groups.serving.http_access`); a log
  level given to FastMCP sets the level of our redacting handler instead of installing
  FastMCP's own; on SIGINT or SIGTERM every upstream is closed before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import anyio
from fastmcp import FastMCP

from groups import LOG_LEVEL_ENV_VAR, LogLevel, version
from groups.catalog import Catalog
from groups.changes import Changes
from groups.config import Config, load_config, resolve_config_path, use_configured_store
from groups.errors import ConfigError, DynamicMcpError
from groups.internals import (
    guard_http_with,
    serve_listen,
    serve_resource_subscriptions,
    serve_streams,
)
from groups.meta_tools import MetaToolFunction, MetaTools
from groups.mounting import ForwardedRequests, GroupTimeLimits, HoldWhileInFlight
from groups.registry import Registry
from groups.reload import ConfigReloader
from groups.serving.audit import audit, audit_target
from groups.serving.health import add_health_routes
from groups.serving.logs import announce, configure_logging
from groups.serving.metrics import add_metrics_route, metrics
from groups.serving.notifier import Notifier
from groups.serving.tracing import configure_tracing, shutdown_tracing

if TYPE_CHECKING:
    from fastmcp.server.auth import AuthProvider
    from starlette.applications import Starlette

    from groups.serving.http_front import HttpFront
    from groups.storage.store import Store

__all__ = ["RootServer", "for_fastmcp_run"]

logger = logging.getLogger("dynamic_mcp")

STOP_WATCHING_TIMEOUT = 2.0  # the config watcher's thread notices its stop within this


class RootServer(FastMCP):
    """dynamic-mcp's root server: its groups (`registry`), their clients (`notifier`), and
    the meta-tools answered first hand (`meta_tools`)."""

    def __init__(
        self,
        config_path: Path | None = None,
        *,
        config: Config | None = None,
        registry: Registry | None = None,
        notifier: Notifier | None = None,
        auth: AuthProvider | None = None,
        watch: bool = True,
        unusable: DynamicMcpError | None = None,
    ) -> None:
        """Args:
        config_path: the config (default: `resolve_config_path`, when the server starts).
        config: the config already loaded from `config_path`, if it was.
        unusable: why the config at `config_path` could not be used, if it was read and
            refused (over stdio: it is served, saying so, until fixed).
        registry, notifier: made here unless given (the command line makes the registry
            first, so its redactor can be in logging from the start).
        auth: who may connect over HTTP (`groups.serving.bearer_token.BearerToken`).
        watch: apply edits of the config while serving (off for a terminal command).
        """
        self.config_path, self._config, self._watch = config_path, config, watch
        self._unusable = unusable
        self._over_stdio = False  # set by run_stdio_async: a config refused is served anyway
        self._served_path: Path | None = None  # the config the lifespan read, or tried to
        self.registry = Registry(catalog=Catalog()) if registry is None else registry
        self.notifier = Notifier() if notifier is None else notifier
        self.notifier.on_leave = self.registry.release
        self.meta_tools = MetaTools(self.registry, self.notifier)
        self.registry.on_change = self._changed
        self.http_front: HttpFront | None = None  # made with the HTTP app
        super().__init__("dynamic-mcp", version=version(), lifespan=self._serving, auth=auth)
        self.add_middleware(HoldWhileInFlight())  # outermost: holds across the time limits
        self.add_middleware(GroupTimeLimits(self.registry))
        self.add_provider(self.registry.mounted)
        # What FastMCP's proxy does not forward: completions and resource subscriptions.
        forwarded = ForwardedRequests(self.registry)
        self.add_completion_handler(forwarded.complete)
        serve_resource_subscriptions(self, forwarded.subscribe, forwarded.unsubscribe)
        serve_listen(self, self.notifier.listen)
        self._loaded = False  # the lifespan loaded the config: ready to serve
        add_health_routes(self, lambda: self._loaded)
        add_metrics_route(self)

    def serve_meta_tools(
        self,
        get_tools: MetaToolFunction,
        call_tool: MetaToolFunction,
        search: MetaToolFunction,
        run_code: MetaToolFunction,
    ) -> None:
        """Answer tools/list and tools/call with the meta-tools declared on this server."""
        self.meta_tools.serve(self, get_tools, call_tool, search, run_code)

    def _changed(self, *kinds: str, group: str | None = None) -> None:
        """Lists changed: for everyone, or (`group`) for the users who may use that group."""
        if "tools" in kinds:
            self.meta_tools.changed()
        if group is None:
            self.notifier.announce(*kinds)
            return
        registry = self.registry
        self.notifier.announce(*kinds, hears=lambda user: group in registry.group_names(user))

    @asynccontextmanager
    async def _serving(self, server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        """Load the config and serve its groups; at the end, close every upstream.

        Over stdio, a config that cannot be used is served too, with no group and the
        reason where the client shows it (`Registry.refuse`), until a save fixes it.
        """
        registry, path, config = self.registry, self.config_path, self._config
        store = None
        try:
            if self._unusable is not None:
                raise self._unusable
            if config is None:
                path = resolve_config_path(path)
                config = load_config(path)
            store = self._take(config, path)
        except DynamicMcpError as exc:
            if not self._over_stdio:
                raise
            path = path or (exc.file if isinstance(exc, ConfigError) else None)
            logger.error("serving no group until the config is fixed: %s", exc)
            registry.refuse(exc, config_path=path)
        self._served_path = path
        configure_tracing()
        front = self.http_front
        if front is not None and config is not None and config.settings.http.metrics:
            metrics.start(  # only HTTP serves it
                is_group=lambda name: registry.config_of(name) is not None,
                open_sessions=front.open_sessions,
                processes=registry.processes,
            )
        self._loaded = True
        self.meta_tools.changed()
        reloader = None
        if path is not None and self._watch:
            reloader = ConfigReloader(path, apply=self._reloaded, refused=self._refused)
        watching = asyncio.get_running_loop().create_task(reloader.run()) if reloader else None
        fronting = front.serving(store, config.settings.http) if front and config else nullcontext()
        administered = self._administered(store, reloader)
        try:
            async with fronting, administered:
                yield {"registry": registry, "reloader": reloader}
        finally:
            if reloader is not None and watching is not None:
                reloader.stop()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({watching}, timeout=STOP_WATCHING_TIMEOUT)
            self._loaded = False
            await self.notifier.aclose()
            await self.meta_tools.aclose()
            await registry.aclose()
            audit.close()
            metrics.stop()
            shutdown_tracing()

    def _administered(self, store: Store | None, reloader: ConfigReloader | None) -> Any:
        """Over HTTP, what lets an operator change users and end sessions while serving
        (`groups.serving.administration`): the users file watched (unless `watch` is
        off), and with a shared store, messages between replicas and heartbeats."""
        if self.http_front is None:
            return nullcontext()
        from groups.serving.administration import Administration  # HTTP only

        administration = Administration(self.registry, self.notifier, self.http_front, self.auth)
        return administration.running(store, watch=self._watch, reloader=reloader)

    def _take(self, config: Config, path: Path | None) -> Store:
        """Serve `config`'s groups: its store chosen first, its audit log open after.

        Raises:
            StoreSettingError, ConfigError: a store or audit setting cannot be used;
                nothing was applied then.
        """
        store = use_configured_store(config, path, self.registry.redactor)  # before any use
        target = audit_target(config.settings.audit_log, path)  # checked before anything
        self.registry.configure(config, config_path=path)
        replica = self.http_front.sessions.replica if self.http_front else "stdio"
        audit.open(target, replica=replica)
        return store

    def _reloaded(self, config: Config) -> Changes:
        """A config saved while serving: applied in place, or, if none could be used
        until now, served from scratch."""
        if self.registry.unusable is None:
            return self.registry.reconfigure(config)
        self._take(config, self._served_path)
        self._changed("tools")
        return Changes(added=tuple(self.registry.group_names()))

    def _refused(self, error: DynamicMcpError) -> None:
        """A save that cannot be served: the last good config stays, or, if there is none,
        the clients are shown the new reason."""
        if self.registry.unusable is None:
            logger.warning("%s (still serving the last good config)", error)
            return
        logger.warning("serving no group until the config is fixed: %s", error)
        self.registry.refuse(error, config_path=self._served_path)

    # ---- serving: the same rules however it is started -------------------------------

    async def run_stdio_async(
        self, show_banner: bool = True, log_level: str | None = None, stateless: bool = False
    ) -> None:
        """Serve one client on this process's stdin and stdout, through our own pipes."""
        from groups.serving.stdio_pipes import stdio_streams

        self._own_log_level(log_level)
        self._over_stdio = True

        async def serve() -> None:
            async with stdio_streams() as (read_stream, write_stream):
                await serve_streams(self, read_stream, write_stream)

        await self._until_signal(serve)

    async def run_http_async(  # type: ignore[override]
        self,
        show_banner: bool = True,
        transport: str = "http",
        host: str | None = None,
        *,
        log_level: str | None = None,
        uvicorn_config: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """Serve HTTP: auth needed off loopback, FastMCP's Host/Origin guard on. Without
        `auth` given, it is taken from the environment: named users or a shared token.

        The socket is bound first and its URL said at the default level
        (`http://HOST:PORT/mcp`), before the lifespan starts.

        Raises:
            UnsafeServingError: `host` is not loopback and no auth is configured, or the
                auth configured is unusable.
            CannotListenError: the address cannot be bound (a port taken).
        """
        import fastmcp

        from groups import GATEWAY_ENV_VARS
        from groups.serving.http_access import browser_guard, http_auth
        from groups.serving.listening import endpoint_url, listen
        from groups.serving.users import JwtSettings

        host = host or fastmcp.settings.host
        if self.auth is None:  # `fastmcp run --host H` decides the host only now
            users = os.environ.get(GATEWAY_ENV_VARS["users"])
            jwt = JwtSettings.from_env()
            auth = http_auth(host, token_file=None, users=Path(users) if users else None, jwt=jwt)
            guard_http_with(self, auth)
        self._own_log_level(log_level)
        # Without log_config None, uvicorn installs handlers that write around ours.
        uvicorn_config = {**(uvicorn_config or {}), "log_config": None}
        options |= browser_guard(host)
        if "sockets" not in options:  # bound here, so that where it listens can be said
            port = options.pop("port", None)
            sock = listen(host, fastmcp.settings.port if port is None else port)
            default_path = "sse_path" if transport == "sse" else "streamable_http_path"
            path = options.get("path") or getattr(fastmcp.settings, default_path)
            announce("serving MCP at %s", endpoint_url(host, sock, path))
            options["sockets"] = [sock]
        run = super().run_http_async
        await self._until_signal(
            lambda: run(
                show_banner=show_banner,
                transport=transport,  # type: ignore[arg-type]
                host=host,
                uvicorn_config=uvicorn_config,
                **options,
            )
        )

    def http_app(  # type: ignore[override]
        self,
        path: str | None = None,
        middleware: list[Any] | None = None,
        *args: Any,
        transport: str = "http",
        **options: Any,
    ) -> Starlette:
        """FastMCP's HTTP app behind our front (`groups.serving.http_front`): bodies read
        after identity, each user's session limits, legacy sessions any replica serves."""
        import fastmcp

        if transport not in ("http", "streamable-http"):
            return super().http_app(path, middleware, *args, transport=transport, **options)  # type: ignore[arg-type]
        from groups.serving.http_front import HttpFront

        endpoint = path or fastmcp.settings.streamable_http_path
        # After FastMCP's authentication: nothing is read or looked up before identity.
        front = HttpFront(endpoint, needs_identity=self.auth is not None)
        middleware = [front.middleware(), *(middleware or [])]
        app = super().http_app(path, middleware, *args, transport=transport, **options)  # type: ignore[arg-type]
        front.attach(app)
        self.http_front = front
        return app

    def _own_log_level(self, log_level: str | None) -> None:
        """A level given to FastMCP sets our redacting handler's: FastMCP's own handler on
        "fastmcp" would write around the redaction."""
        if log_level is not None and log_level.lower() in get_args(LogLevel):
            configure_logging(log_level.lower(), self.registry.redactor)  # type: ignore[arg-type]

    async def _until_signal(self, serve: Callable[[], Awaitable[Any]]) -> None:
        """Run `serve` until it returns or SIGINT/SIGTERM arrives, closing every upstream.

        Python's default SIGTERM ends the process without unwinding, which would leave stdio
        upstreams running. On a signal we close the upstreams ourselves and then exit at
        once, rather than wait for every part of the server to unwind.
        """
        async with anyio.create_task_group() as tasks:

            async def exit_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for received in signals:
                        name = signal.Signals(received).name
                        logger.info("%s received, closing upstreams", name)
                        await self.meta_tools.aclose()
                        await self.registry.aclose()
                        logging.shutdown()
                        os._exit(0)

            async def run() -> None:
                await serve()
                tasks.cancel_scope.cancel()  # the client went away: stop watching signals

            tasks.start_soon(exit_on_signal)
            tasks.start_soon(run)


def for_fastmcp_run(build: Callable[..., FastMCP]) -> FastMCP:
    """The server `fastmcp run server.py` serves, logging like `dynamic-mcp` from the start.

    Its level: $DYNAMIC_MCP_LOG_LEVEL, else warning, until `fastmcp run --log-level` sets it.
    """
    from groups.serving.logs import quiet_fastmcp

    registry = Registry(catalog=Catalog())
    level = os.environ.get(LOG_LEVEL_ENV_VAR, "warning").lower()
    configure_logging(level if level in get_args(LogLevel) else "warning", registry.redactor)  # type: ignore[arg-type]
    quiet_fastmcp()
    return build(registry=registry)
