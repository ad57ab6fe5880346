"""An upstream that says in which trace a call reached it: the `_meta` trace context.

python traced.py                      # stdio
python traced.py http 127.0.0.1 PORT  # streamable HTTP
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import sys

from fastmcp import Context, FastMCP

mcp = FastMCP("traced-upstream")


@mcp.tool
def traceparent(ctx: Context) -> str:
    """The W3C traceparent the call came with, or '' without one."""
    meta = ctx.request_context.meta if ctx.request_context is not None else None
    return (meta or {}).get("traceparent", "")


if __name__ == "__main__":
    lean.serving()
    if len(sys.argv) == 1:
        mcp.run(show_banner=False, log_level="ERROR")
    else:
        transport, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        mcp.run(transport=transport, host=host, port=port, show_banner=False, log_level="ERROR")
