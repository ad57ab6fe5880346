"""How clients reach dynamic-mcp: stdio pipes, HTTP access rules, logs, list_changed.

    configure_logging("warning", registry.redactor)    # every log line through the redaction
    auth = http_auth(host, token_file=f, users=u, jwt=j)  # None on loopback without auth

Serving itself is the root server's (`groups.root.RootServer.run_stdio_async`, `run_http_async`);
its HTTP app shares legacy sessions between replicas through Redis
(`groups.serving.shared_sessions`, imported with the HTTP app only).
"""

from groups.serving.http_access import (
    BearerToken,
    browser_guard,
    http_auth,
    http_token,
    is_loopback,
)
from groups.serving.logs import configure_logging, quiet_fastmcp
from groups.serving.notifier import Notifier
from groups.serving.stdio_pipes import stdio_streams

__all__ = [
    "BearerToken",
    "Notifier",
    "browser_guard",
    "configure_logging",
    "http_auth",
    "http_token",
    "is_loopback",
    "quiet_fastmcp",
    "stdio_streams",
]
