"""dynamic-mcp's own server, run in this process for the terminal commands (tools, call, check).

    async with own_server(config_path) as own:
        result = await own.client.call_tool_mcp("call_dynamic_tool", {"group": "time", ...})
        own.registry.upstream("time"), own.config.servers      # the groups behind it

The server is the one server.py builds, meta-tools declared: server.py hands its builder
over (`use_builder`) when it is imported, so this package never imports the script above it.

Guarantees: a command sees what a model would, through the same meta-tools, filters, time
limits and errors, over MCP (in memory); nothing watches the config; a remote group that
wants a sign-in says to run `dynamic-mcp auth` rather than open a browser the command
would not wait for; every upstream is closed when the block ends. Only errors are logged
by default (the command reports every failure itself, `--log-level` shows more), and the
lines a stdio upstream prints to its stderr that look like errors, which are often why it
failed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from groups import LogLevel

if TYPE_CHECKING:
    from fastmcp import Client, FastMCP

    from groups.config import Config
    from groups.registry import Registry

__all__ = ["OwnServer", "ServerBuilder", "own_server", "use_builder"]

# server.py's `build_server`: the root server with its meta-tools declared.
ServerBuilder = Callable[..., "FastMCP"]
_builder: ServerBuilder | None = None


def use_builder(build: ServerBuilder) -> None:
    """Build the terminal commands' server with `build` (server.py's `build_server`)."""
    global _builder
    _builder = build


@dataclass(frozen=True)
class OwnServer:
    client: Client  # connected to the root server, in memory
    registry: Registry  # its groups
    config: Config  # as loaded, disabled groups included
    config_path: Path  # where it was read from


@asynccontextmanager
async def own_server(
    config_path: Path | None, *, catalog: bool = True, log_level: LogLevel = "error"
) -> AsyncIterator[OwnServer]:
    """The root server for `config_path`, running, with a client connected to it; logs
    from `log_level` up, and an upstream's stderr lines that look like errors at any level.

    Raises:
        ConfigError: the config is missing or invalid (before anything starts).
    """
    from fastmcp import Client

    from groups.catalog import Catalog
    from groups.config import load_config, resolve_config_path, use_configured_store
    from groups.registry import Registry
    from groups.serving.logs import configure_logging

    if _builder is None:
        raise RuntimeError("server.py declares the meta-tools: import it before a command runs")
    registry = Registry(catalog=Catalog() if catalog else None, browser_sign_in=False)
    configure_logging(log_level, registry.redactor)
    # What an upstream says on stderr that looks like an error is often why it failed.
    least = min(logging.WARNING, logging.getLevelNamesMapping()[log_level.upper()])
    logging.getLogger("groups.upstream.stderr").setLevel(least)
    path = resolve_config_path(config_path)
    config = load_config(path)
    use_configured_store(config, path, registry.redactor)  # a bad setting: one line, not a trace
    server = _builder(path, config=config, registry=registry, watch=False)
    async with Client(server) as client:
        yield OwnServer(client, registry, config, path)
