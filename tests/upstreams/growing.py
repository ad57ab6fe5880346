"""An upstream whose lists change while it runs, as a server that adds tools at run time:

    python growing.py        # stdio

`grow(name)` adds a tool `name` (which answers "<name> is new") and sends
`notifications/tools/list_changed`; `add_note(name)` adds a resource `note://<name>` and
sends `notifications/resources/list_changed`. FastMCP sends neither by itself when a
component is added, so the tools send them, on the request that made the change.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.resources.base import Resource
from fastmcp.tools.base import Tool

mcp = FastMCP("growing-upstream")


@mcp.tool
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called `name`."""

    def added() -> str:
        return f"{name} is new"

    mcp.add_tool(Tool.from_function(added, name=name, description=f"Added at run time: {name}."))
    await ctx.send_notification(mcp_types.ToolListChangedNotification())
    return f"added {name}"


@mcp.tool
async def add_note(name: str, ctx: Context) -> str:
    """Add a resource note://<name>."""
    mcp.add_resource(Resource.from_function(lambda: name, uri=f"note://{name}", name=name))
    await ctx.send_notification(mcp_types.ResourceListChangedNotification())
    return f"added note://{name}"


@mcp.resource("note://first")
def first() -> str:
    """The note every run starts with."""
    return "first"


if __name__ == "__main__":
    lean.serving()
    mcp.run(show_banner=False, log_level="ERROR")
