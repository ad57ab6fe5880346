"""The test upstreams start as dynamic-mcp does (server.main): the cyclic garbage collector
off while FastMCP and the MCP SDK are imported, a fifth of a start's CPU, and the tests
start upstreams by the hundred. Nothing else changes.

    import lean  # first, before FastMCP: the collector is off from here
    ...
    lean.serving()  # everything is imported and declared; then mcp.run(...)
"""

import gc

gc.disable()


def serving() -> None:
    """Start-up is done: what it loaded stays out of the collector's way, which resumes."""
    gc.freeze()
    gc.enable()
