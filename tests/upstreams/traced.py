"""An upstream that says in which trace a call reached it: the `_meta` trace context.

python traced.py                      # stdio
python traced.py http 127.0.0.1 PORT  # streamable HTTP
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split

from fastmcp import Context, FastMCP

mcp = FastMCP("traced-upstream")


@mcp.tool
def traceparent(ctx: Context) -> str:
    """The W3C traceparent the call came with, or '' without one."""
    meta = ctx.request_context.meta if ctx.request_context is not None else None
    return (meta or {}).get("traceparent", "")


if __name__ == "__main__":
    lean.run(mcp)
