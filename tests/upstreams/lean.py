"""The test upstreams start as dynamic-mcp does (server.main): the cyclic garbage collector
off while FastMCP and the MCP SDK are imported, a fifth of a start's CPU, and the tests
start upstreams by the hundred. Nothing else changes.

    import lean  # first, before FastMCP: the collector is off from here
    ...
    lean.serving()  # everything is imported and declared; then mcp.run(...)
"""

import gc
import sys
from typing import Any

gc.disable()


def serving() -> None:
    """Start-up is done: what it loaded stays out of the collector's way, which resumes."""
    gc.freeze()
    gc.enable()


def run(mcp: Any) -> None:
    """Serve the FastMCP server `mcp` as the command line says: over stdio with no
    arguments, else `TRANSPORT HOST PORT` (http, sse); quietly, start-up done."""
    serving()
    if len(sys.argv) == 1:
        mcp.run(show_banner=False, log_level="ERROR")
    else:
        transport, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        mcp.run(transport=transport, host=host, port=port, show_banner=False, log_level="ERROR")
