"""Serve the root server over stdio or HTTP until the client goes or a signal comes.

    configure_logging("warning", registry.redactor)
    anyio.run(serve_stdio, server, registry)
    anyio.run(serve_http, server, registry, "127.0.0.1", 8931)

Guarantees:
- every log line, ours, FastMCP's, the MCP SDK's, httpx's and uvicorn's, Python's warnings
  and a crash's traceback, and each line a stdio upstream writes to its stderr
  (`groups.upstream.stderr`), goes through one handler on stderr that hides secrets
  (`groups.secrets`), under `dynamic-mcp` and `fastmcp run` alike (whose `--log-level`
  sets that handler's level); stdout carries only protocol;
- FastMCP's OpenTelemetry spans are off unless the user turns them on
  (`FASTMCP_TELEMETRY_MODE`): with no exporter they only cost time on every call;
- on SIGINT or SIGTERM every upstream is closed before the process exits, and at once:
  no upstream process outlives the server.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, Literal, get_args

import anyio

from groups.secrets import RedactingFormatter, Redactor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from fastmcp import FastMCP

    from groups.registry import Registry

__all__ = [
    "LogLevel",
    "configure_logging",
    "for_fastmcp_run",
    "quiet_fastmcp",
    "serve_http",
    "serve_stdio",
]

logger = logging.getLogger("dynamic_mcp")

LogLevel = Literal["debug", "info", "warning", "error"]
LOG_FORMAT = "dynamic-mcp %(levelname)s %(name)s: %(message)s"
# Loggers that set up handlers of their own; theirs would write around the redaction.
_SELF_CONFIGURED = ("fastmcp", "uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(level: LogLevel, redactor: Redactor) -> None:
    """All logs to stderr, through one handler that hides every known secret."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor, LOG_FORMAT))
    handler.addFilter(_expected_sign_in)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _adopt_self_configured_loggers()
    # Python writes a warning and a crash's traceback to stderr by itself, around the handler.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """A crash's traceback, written through the redaction like every log line."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logger.critical("stopped on an unexpected error", exc_info=(kind, error, traceback))


def _expected_sign_in(record: logging.LogRecord) -> bool:
    """Drop the MCP SDK's traceback for an OAuth flow stopped on purpose for a sign-in.

    A session never waits for a person (`groups.auth.oauth`): the SDK logs that stop as an
    error, with a traceback, though the group says plainly that it wants a sign-in.
    """
    from groups.upstream.failures import AuthorizationRequired, caused_by

    error = record.exc_info[1] if record.exc_info else None
    return not (error is not None and caused_by(error, AuthorizationRequired))


def _adopt_self_configured_loggers() -> None:
    for name in _SELF_CONFIGURED:
        adopted = logging.getLogger(name)
        adopted.handlers[:] = []
        adopted.propagate = True
        adopted.setLevel(logging.NOTSET)


def quiet_fastmcp() -> None:
    """FastMCP's defaults for a library, set for a proxy: no spans, logs through ours."""
    import fastmcp

    if "FASTMCP_TELEMETRY_MODE" not in os.environ:
        fastmcp.settings.telemetry_mode = "off"
    _adopt_self_configured_loggers()  # importing fastmcp installed its own handler


def for_fastmcp_run(build: Callable[..., FastMCP]) -> FastMCP:
    """The server `fastmcp run server.py` serves, under the rules of `dynamic-mcp`'s own.

    Logs go through the redacting handler (level: `--log-level`, else $DYNAMIC_MCP_LOG_LEVEL,
    else warning), uvicorn's included, and HTTP serving, which `fastmcp run --transport http
    --host H` starts by itself, asks for the same token off loopback and keeps the same
    Host/Origin guard.
    """
    import fastmcp

    from groups.catalog import Catalog
    from groups.registry import Registry
    from groups.serving.http_access import BearerToken, browser_guard, http_token

    registry = Registry(catalog=Catalog())
    level = os.environ.get("DYNAMIC_MCP_LOG_LEVEL", "warning").lower()
    configure_logging(level if level in get_args(LogLevel) else "warning", registry.redactor)
    quiet_fastmcp()
    server = build(registry=registry)
    run_http, run_stdio = server.run_http_async, server.run_stdio_async

    def own_log_level(log_level: str | None) -> None:
        # Given to FastMCP, `--log-level` would install its own handler on "fastmcp",
        # which writes around the redaction: it sets the level of ours instead.
        if log_level is not None and log_level.lower() in get_args(LogLevel):
            configure_logging(log_level.lower(), registry.redactor)  # type: ignore[arg-type]

    async def run_http_guarded(
        *args: Any, host: str | None = None, log_level: str | None = None, **options: Any
    ) -> None:
        host = host or fastmcp.settings.host
        token = http_token(host, None)  # refuses a host off loopback without a token
        server.auth = BearerToken(token) if token else None
        own_log_level(log_level)
        # Without log_config None, uvicorn installs handlers that write around ours.
        uvicorn_config = {**(options.pop("uvicorn_config", None) or {}), "log_config": None}
        options |= browser_guard(host)
        await run_http(*args, host=host, uvicorn_config=uvicorn_config, **options)

    async def run_stdio_logged(*args: Any, log_level: str | None = None, **options: Any) -> None:
        own_log_level(log_level)
        await run_stdio(*args, **options)

    server.run_http_async = run_http_guarded  # type: ignore[method-assign]
    server.run_stdio_async = run_stdio_logged  # type: ignore[method-assign]
    return server


async def serve_stdio(server: FastMCP, registry: Registry) -> None:
    """Serve one client on this process's stdin and stdout."""
    from groups.internals import serve_streams
    from groups.serving.stdio_pipes import stdio_streams

    async def serve() -> None:
        async with stdio_streams() as (read_stream, write_stream):
            await serve_streams(server, read_stream, write_stream)

    await _until_signal(serve, registry)


async def serve_http(server: FastMCP, registry: Registry, host: str, port: int) -> None:
    """Serve streamable HTTP at http://host:port/mcp, behind the Host/Origin guard."""
    from groups.serving.http_access import browser_guard

    async def serve() -> None:
        await server.run_http_async(
            transport="http",
            host=host,
            port=port,
            show_banner=False,
            uvicorn_config={"log_config": None},  # uvicorn's logs go through our handler
            **browser_guard(host),
        )

    await _until_signal(serve, registry)


async def _until_signal(serve: Callable[[], Awaitable[Any]], registry: Registry) -> None:
    """Run `serve` until it returns or SIGINT/SIGTERM arrives, closing every upstream.

    Python's default SIGTERM ends the process without unwinding, which would leave stdio
    upstreams running. On a signal we close the upstreams ourselves and then exit at once,
    rather than wait for every part of the server to unwind.
    """
    async with anyio.create_task_group() as tasks:

        async def exit_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for received in signals:
                    logger.info("%s received, closing upstreams", signal.Signals(received).name)
                    await registry.aclose()
                    logging.shutdown()
                    os._exit(0)

        async def run() -> None:
            await serve()
            tasks.cancel_scope.cancel()  # the client went away: stop watching signals

        tasks.start_soon(exit_on_signal)
        tasks.start_soon(run)
