"""One upstream MCP server per group: its sessions, how it connects, its health, its tools.

    upstream = Upstream("time", server_config, read_variables, redactor)
    result = await upstream.call_tool("get_current_time", {"timezone": "UTC"}, caller)

`Upstream` is the one object the registry talks to; the modules here are its parts.
"""

from groups.upstream.callers import CallbackRoute, Caller, current_caller
from groups.upstream.connect import CONNECT_TIMEOUT, STARTS_AT_ONCE
from groups.upstream.health import State
from groups.upstream.inventory import Inventory
from groups.upstream.sessions import Session
from groups.upstream.upstream import Upstream

__all__ = [
    "CONNECT_TIMEOUT",
    "STARTS_AT_ONCE",
    "CallbackRoute",
    "Caller",
    "Inventory",
    "Session",
    "State",
    "Upstream",
    "current_caller",
]
