"""How clients reach dynamic-mcp: stdio pipes, HTTP access rules, logs, list_changed.

    configure_logging("warning", registry.redactor)    # every log line through the redaction
    auth = http_auth(host, token_file=f, users=u, jwt=j)  # None on loopback without auth

Serving itself is the root server's (`groups.root.RootServer.run_stdio_async`, `run_http_async`);
its HTTP app shares legacy sessions between replicas through Redis
(`groups.serving.shared_sessions`, imported with the HTTP app only).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from groups.serving.bearer_token import BearerToken
    from groups.serving.http_access import browser_guard, http_auth, http_token, is_loopback
    from groups.serving.logs import configure_logging, quiet_fastmcp
    from groups.serving.notifier import Notifier
    from groups.serving.stdio_pipes import stdio_streams

# Each name's module, imported on first use: a start that is refused (a bad config, an
# unsafe token file) sets up logging from here without importing FastMCP's auth stack.
_MODULES = {
    "BearerToken": "bearer_token",
    "browser_guard": "http_access",
    "http_auth": "http_access",
    "http_token": "http_access",
    "is_loopback": "http_access",
    "configure_logging": "logs",
    "quiet_fastmcp": "logs",
    "Notifier": "notifier",
    "stdio_streams": "stdio_pipes",
}
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


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
