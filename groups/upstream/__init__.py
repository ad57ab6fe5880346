"""One upstream MCP server per group: its transport, its sessions, their health and callbacks.

    upstream = Upstream("time", server_config, read_variables, redactor)
    result = await upstream.call_tool("get_current_time", {"timezone": "UTC"}, caller)

The registry talks to `Upstream` alone; the other modules here are its parts.
"""

from groups.upstream.callers import CallbackRoute, Caller, current_caller
from groups.upstream.upstream import CONNECT_TIMEOUT, STARTS_AT_ONCE, Session, State, Upstream

__all__ = [
    "CONNECT_TIMEOUT",
    "STARTS_AT_ONCE",
    "CallbackRoute",
    "Caller",
    "Session",
    "State",
    "Upstream",
    "current_caller",
]
