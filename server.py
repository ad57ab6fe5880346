"""dynamic-mcp: the root FastMCP server, its two meta-tools, and the command line.

    dynamic-mcp dynamic-mcp.json                 # serve over stdio
    dynamic-mcp --transport http --port 8931     # serve streamable HTTP on 127.0.0.1
    fastmcp run server.py                        # $DYNAMIC_MCP_CONFIG or ./dynamic-mcp.json
    dynamic-mcp check | tools G | call G T       # from a terminal (groups.commands.check, …)

The client sees two tools (three with `settings.search`). `get_dynamic_tools(group)`
connects the group's upstream on first use and returns its tools as compact JSON;
`call_dynamic_tool` forwards one call and returns the upstream's result unchanged.
Everything about upstreams lives in `groups/`; this module declares the tools and commands.

Commands that serve nothing (`--version`, `--help`, `import`, `auth --list`) import none of
the server stack: FastMCP is imported where a server is built, on first use, and each
command's module only when that command runs.
"""

# No `from __future__ import annotations`: FastMCP reads the meta-tools' annotations when
# they are declared, and their types are imported inside `build_server`.
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import App, Parameter

from groups import CONFIG_ENV_VAR
from groups.errors import DynamicMcpError

if TYPE_CHECKING:
    from fastmcp import FastMCP
    from fastmcp.server.auth import AuthProvider

    from groups.config import Config
    from groups.registry import Registry
    from groups.serving.notifier import Notifier

__all__ = ["app", "build_server", "main", "mcp"]  # noqa: F822 - `mcp` comes from __getattr__


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("dynamic-mcp-server")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"


STOP_WATCHING_TIMEOUT = 2.0  # the config watcher's thread notices its stop within this


def build_server(
    config_path: Path | None = None,
    *,
    config: "Config | None" = None,
    registry: "Registry | None" = None,
    notifier: "Notifier | None" = None,
    auth: "AuthProvider | None" = None,
    watch: bool = True,
) -> "FastMCP":
    """The root server for the config at `config_path` (default: `resolve_config_path`).

    Without an already loaded `config`, the file is read when the server starts, so
    importing this module (as `fastmcp run` does) touches no file. `${VAR}` also reads a
    `.env` beside `config_path`. Nothing upstream is started until a group is first used.
    While serving, edits of the file and of the `.env` are applied (`groups.reload`),
    unless `watch` is off (a terminal command, done before anyone could edit).
    `auth` guards HTTP serving (`groups.serving.http_access`).
    """
    import asyncio
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import anyio
    from fastmcp import FastMCP
    from mcp.server.subscriptions import ListenHandler
    from mcp_types import CallToolResult

    from groups.catalog import Catalog
    from groups.config import load_config, resolve_config_path
    from groups.internals import serve_listen
    from groups.meta_tools import MetaTools, error_result, text_result
    from groups.mounting.in_flight import HoldWhileInFlight
    from groups.mounting.limits import GroupTimeLimits
    from groups.registry import Registry
    from groups.reload import ConfigReloader
    from groups.serving.notifier import Notifier
    from groups.upstream.callers import current_caller

    registry = Registry(catalog=Catalog()) if registry is None else registry
    notifier = Notifier() if notifier is None else notifier
    notifier.on_leave = registry.release
    meta_tools = MetaTools(registry, notifier)

    def changed(*kinds: str) -> None:
        if "tools" in kinds:
            meta_tools.changed()
        notifier.announce(*kinds)

    registry.on_change = changed

    @asynccontextmanager
    async def lifespan(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        path = config_path if config else resolve_config_path(config_path)
        registry.configure(config or load_config(path), config_path=path)
        meta_tools.changed()
        reloader = ConfigReloader(path, registry) if path is not None and watch else None
        watching = asyncio.get_running_loop().create_task(reloader.run()) if reloader else None
        try:
            yield {"registry": registry, "reloader": reloader}
        finally:
            if reloader is not None and watching is not None:
                reloader.stop()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({watching}, timeout=STOP_WATCHING_TIMEOUT)
            await notifier.aclose()
            await registry.aclose()

    server = FastMCP("dynamic-mcp", version=version(), lifespan=lifespan, auth=auth)
    server.add_middleware(HoldWhileInFlight())  # outermost: holds across the time limits too
    server.add_middleware(GroupTimeLimits(registry))
    server.add_provider(registry.mounted)
    serve_listen(server, ListenHandler(notifier.bus))

    @server.tool(output_schema=None)
    async def get_dynamic_tools(group: str) -> CallToolResult:
        """Load the tools of one group (an MCP server) on demand."""
        try:
            return text_result(await registry.expand(group, current_caller.get()))
        except DynamicMcpError as exc:
            return error_result(exc, registry.redactor)

    @server.tool(output_schema=None)
    async def call_dynamic_tool(
        group: str, name: str, args: dict[str, Any] | None = None
    ) -> CallToolResult:
        """Run a tool of a group."""
        try:
            return await registry.call_tool(group, name, args or {}, current_caller.get())
        except DynamicMcpError as exc:
            return error_result(exc, registry.redactor)

    @server.tool(output_schema=None)
    async def search_dynamic_tools(query: str) -> CallToolResult:
        """Find tools across all groups by what they do (offered with settings.search)."""
        return text_result(await registry.search(query))

    meta_tools.serve(server, get_dynamic_tools, call_dynamic_tool, search_dynamic_tools)
    return server


def __getattr__(name: str) -> Any:
    """`mcp`, built on first access: `fastmcp run server.py` finds the config when it starts."""
    if name == "mcp":
        from groups.serving.serve import for_fastmcp_run

        server = globals()["mcp"] = for_fastmcp_run(build_server)
        return server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- command line -----------------------------------------------------------------------

app = App(
    name="dynamic-mcp",
    version=version,
    help="An MCP proxy that shows the model two tools and loads each server's tools on demand.",
    default_parameter=Parameter(negative=()),
)
# Each command's module is imported only when it runs. Cyclopts then shows `help` in place
# of the docstring, so each is the first line of its command's docstring (test_cli checks).
for command, name, summary in (
    (
        "groups.commands.check:check",
        "check",
        "Validate CONFIG, connect every enabled group, and report each one and its token cost.",
    ),
    (
        "groups.commands.tools:tools",
        "tools",
        "List GROUP's tools with their parameters, asking its upstream now.",
    ),
    (
        "groups.commands.tools:call",
        "call",
        "Call TOOL of GROUP and print its result; exit 1 when the result is an error.",
    ),
    (
        "groups.commands.auth:auth",
        "auth",
        "Sign GROUP in to its OAuth server now, sign it out, or list remote groups' sign-ins.",
    ),
    ("importers.command:import_", "import", "Convert TOOL's MCP servers into a dynamic-mcp.json."),
):
    app.command(command, name=name, help=summary)

LogLevel = Literal["debug", "info", "warning", "error"]


@app.default
def serve(
    config: Annotated[Path | None, Parameter(env_var=CONFIG_ENV_VAR)] = None,
    /,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8931,
    token_file: Path | None = None,
    no_catalog: bool = False,
    log_level: Annotated[LogLevel, Parameter(env_var="DYNAMIC_MCP_LOG_LEVEL")] = "warning",
) -> None:
    """Serve the upstream servers of CONFIG as groups behind two tools.

    Parameters
    ----------
    config
        Path to dynamic-mcp.json (default: $DYNAMIC_MCP_CONFIG, else ./dynamic-mcp.json).
    transport
        stdio for an MCP client that starts this process; http to serve streamable HTTP.
    host
        Address to listen on with --transport http. Other than loopback, it needs a token.
    port
        Port to listen on with --transport http.
    token_file
        File holding the bearer token HTTP clients must send (mode 600). Default:
        $DYNAMIC_MCP_HTTP_TOKEN; none is needed on loopback.
    no_catalog
        Ask each upstream for its tools on first expansion, never ~/.dynamic-mcp/catalog.
    log_level
        Least severe log message written to stderr.
    """
    import anyio

    from groups.catalog import Catalog
    from groups.config import load_config, resolve_config_path
    from groups.registry import Registry
    from groups.serving.serve import configure_logging, quiet_fastmcp, serve_http, serve_stdio

    registry = Registry(catalog=None if no_catalog else Catalog())
    configure_logging(log_level, registry.redactor)
    path = resolve_config_path(config)
    loaded = load_config(path)
    if transport == "stdio":
        quiet_fastmcp()
        anyio.run(serve_stdio, build_server(path, config=loaded, registry=registry), registry)
        return
    from groups.serving.http_access import BearerToken, http_token

    token = http_token(host, token_file)
    quiet_fastmcp()
    auth = BearerToken(token) if token else None
    server = build_server(path, config=loaded, registry=registry, auth=auth)
    anyio.run(serve_http, server, registry, host, port)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a DynamicMcpError is one line on stderr and exit code 2."""
    try:
        app(argv)
    except DynamicMcpError as exc:
        sys.stderr.write(f"dynamic-mcp: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
