"""dynamic-mcp: the root FastMCP server, its two meta-tools, and the command line.

    dynamic-mcp dynamic-mcp.json                 # serve over stdio
    dynamic-mcp --transport http --port 8931     # serve streamable HTTP on 127.0.0.1
    fastmcp run server.py                        # $DYNAMIC_MCP_CONFIG or ./dynamic-mcp.json

The client sees exactly two tools. `get_dynamic_tools(group)` connects the group's
upstream on first use and returns its tools as compact JSON; `call_dynamic_tool` forwards
one call and returns the upstream's result unchanged. Everything about upstreams lives in
`groups/`; this module only presents the registry over MCP.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from cyclopts import App, Parameter
from fastmcp import FastMCP
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.tools.base import Tool, ToolResult
from mcp_types import TextContent

from groups.config import CONFIG_ENV_VAR, Config, load_config, resolve_config_path
from groups.errors import DynamicMcpError
from groups.limits import GroupTimeLimits
from groups.notifier import ListChangedNotifier
from groups.registry import Registry

__all__ = ["app", "build_server", "main", "mcp"]

logger = logging.getLogger("dynamic_mcp")

try:
    __version__ = version("dynamic-mcp-server")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

META_TOOLS = ("get_dynamic_tools", "call_dynamic_tool")

GET_TOOLS_INTRO = (
    "Load the tools of one group (an MCP server) on demand; "
    "then run one with call_dynamic_tool. Groups:"
)
CALL_TOOL_DESCRIPTION = (
    "Run a tool of a group. Call get_dynamic_tools(group) first to learn the tool names "
    "and their input schemas; pass the tool's arguments as args."
)


class MetaToolsView(Middleware):
    """Shows the client only the two meta-tools, described from the registry's current state.

    Mounted upstream servers add their own tools to the root; they stay callable through
    `call_dynamic_tool` but never reach the client's `tools/list`. The list is built from
    the root's own tools without asking the mounted upstreams, so listing costs no
    upstream round trip and cannot fail because of one.
    """

    def __init__(self, server: FastMCP, registry: Registry) -> None:
        self._server = server
        self._registry = registry

    async def on_list_tools(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Sequence[Tool]:
        tools = await self._server.local_provider.list_tools()
        return [self._describe(tool) for tool in tools if tool.name in META_TOOLS]

    def _describe(self, tool: Tool) -> Tool:
        names = self._registry.group_names()
        parameters = {**tool.parameters, "properties": dict(tool.parameters["properties"])}
        parameters["properties"]["group"] = {"type": "string", "enum": names}
        if "args" in parameters["properties"]:
            # The signature's `dict | None` renders as an anyOf; the model needs only this.
            parameters["properties"]["args"] = {"type": "object"}
        description = CALL_TOOL_DESCRIPTION
        if tool.name == "get_dynamic_tools":
            description = f"{GET_TOOLS_INTRO}\n{self._registry.describe_groups()}"
        return tool.model_copy(update={"description": description, "parameters": parameters})


def build_server(
    config_path: Path | None = None,
    *,
    config: Config | None = None,
    registry: Registry | None = None,
) -> FastMCP:
    """The root server for the config at `config_path` (default: `resolve_config_path`).

    Without an already loaded `config`, the file is read when the server starts, so
    importing this module (as `fastmcp run` does) touches no file. `${VAR}` also reads a
    `.env` beside `config_path`. Nothing upstream is started until a group is first used.
    """
    registry = registry or Registry()
    notifier = ListChangedNotifier()
    registry.on_change = notifier.broadcast

    @asynccontextmanager
    async def lifespan(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        path = config_path if config else resolve_config_path(config_path)
        registry.configure(config or load_config(path), root=server, config_path=path)
        try:
            yield {"registry": registry}
        finally:
            await registry.aclose()

    server = FastMCP("dynamic-mcp", version=__version__, lifespan=lifespan)
    server.add_middleware(notifier)
    server.add_middleware(MetaToolsView(server, registry))
    server.add_middleware(GroupTimeLimits(registry))

    @server.tool
    async def get_dynamic_tools(group: str) -> ToolResult:
        """Load the tools of one group (an MCP server) on demand."""
        try:
            return _text(await registry.expand(group))
        except DynamicMcpError as exc:
            return _error(exc)

    @server.tool
    async def call_dynamic_tool(
        group: str, name: str, args: dict[str, Any] | None = None
    ) -> ToolResult:
        """Run a tool of a group."""
        try:
            return await registry.call_tool(group, name, args or {})
        except DynamicMcpError as exc:
            return _error(exc)

    return server


def _text(text: str) -> ToolResult:
    return ToolResult(content=[TextContent(type="text", text=text)])


def _error(exc: DynamicMcpError) -> ToolResult:
    """A failure the model can act on: an isError result, never a protocol error."""
    return ToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)


# `fastmcp run server.py` looks for `mcp`; the config is found when it starts.
mcp = build_server()

# ---- command line -----------------------------------------------------------------------

app = App(
    name="dynamic-mcp",
    version=__version__,
    help="An MCP proxy that shows the model two tools and loads each server's tools on demand.",
    default_parameter=Parameter(negative=()),
)
app.command("importers.command:import_", name="import")

LogLevel = Literal["debug", "info", "warning", "error"]


@app.default
def serve(
    config: Annotated[Path | None, Parameter(env_var=CONFIG_ENV_VAR)] = None,
    /,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8931,
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
        Address to listen on with --transport http.
    port
        Port to listen on with --transport http.
    log_level
        Least severe log message written to stderr.
    """
    _configure_logging(log_level)
    path = resolve_config_path(config)
    registry = Registry()
    server = build_server(path, config=load_config(path), registry=registry)
    options = {"host": host, "port": port} if transport == "http" else {}
    anyio.run(_serve_until_signal, server, registry, transport, options)


async def _serve_until_signal(
    server: FastMCP, registry: Registry, transport: str, options: dict[str, Any]
) -> None:
    """Serve until the client goes away or SIGINT/SIGTERM arrives, closing every upstream.

    Python's default SIGTERM ends the process without unwinding, which would leave stdio
    upstreams running. On a signal we close the upstreams ourselves and then exit at once:
    the stdio transport reads stdin in a worker thread that no cancellation can interrupt,
    so waiting for the server to unwind could block until the client writes again.
    """
    async with anyio.create_task_group() as tasks:

        async def exit_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for received in signals:
                    logger.info("%s received, closing upstreams", signal.Signals(received).name)
                    await registry.aclose()
                    logging.shutdown()
                    os._exit(0)

        async def serve() -> None:
            await server.run_async(transport=transport, show_banner=False, **options)
            tasks.cancel_scope.cancel()  # the client closed stdin: stop watching signals

        tasks.start_soon(exit_on_signal)
        tasks.start_soon(serve)


def _configure_logging(level: LogLevel) -> None:
    """All logs go to stderr: in stdio mode stdout carries only the protocol."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dynamic-mcp %(levelname)s %(name)s: %(message)s"))
    for name in ("dynamic_mcp", "groups", "importers"):
        named = logging.getLogger(name)
        named.setLevel(level.upper())
        named.handlers[:] = [handler]
        named.propagate = False
    # FastMCP and the MCP SDK log to stderr through their own handlers; match the level.
    for name in ("fastmcp", "mcp"):
        logging.getLogger(name).setLevel(level.upper())


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a DynamicMcpError is one line on stderr and exit code 2."""
    try:
        app(argv)
    except DynamicMcpError as exc:
        sys.stderr.write(f"dynamic-mcp: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
