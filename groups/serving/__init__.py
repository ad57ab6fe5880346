"""How clients reach dynamic-mcp: stdio or HTTP, who may connect, logs, list_changed.

    configure_logging("warning", registry.redactor)
    anyio.run(serve_stdio, server, registry)
"""

from groups.serving.notifier import Notifier
from groups.serving.serve import (
    LogLevel,
    configure_logging,
    for_fastmcp_run,
    quiet_fastmcp,
    serve_http,
    serve_stdio,
)

__all__ = [
    "LogLevel",
    "Notifier",
    "configure_logging",
    "for_fastmcp_run",
    "quiet_fastmcp",
    "serve_http",
    "serve_stdio",
]
