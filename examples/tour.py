"""A guided run of dynamic-mcp: start it like an MCP client would, expand every group, call a tool.

    uv run examples/tour.py                          # the bundled examples/dynamic-mcp.json
    uv run examples/tour.py path/to/dynamic-mcp.json

It prints what the model would see: the two tools, each group's tools once expanded, and
one real tool call, with the token-light JSON that dynamic-mcp returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import mcp_types
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "examples" / "dynamic-mcp.json"
FIRST_RUN_TRIES = 12  # times FIRST_RUN_WAIT: a minute for uvx to download a server once
FIRST_RUN_WAIT = 5.0
# One call per bundled group, so the tour ends with real results.
SAMPLE_CALLS = {
    "time": ("get_current_time", {"timezone": "Europe/Helsinki"}),
    "git": ("git_log", {"repo_path": str(REPO), "max_count": 3}),
}


def show(title: str, body: str = "") -> None:
    sys.stdout.write(f"\n== {title}\n{body}\n")


async def expand(client: Client, group: str) -> mcp_types.CallToolResult:
    """Expand a group, waiting out a first run's download (uvx fetches the server once)."""
    for _ in range(FIRST_RUN_TRIES):
        result = await client.call_tool_mcp("get_dynamic_tools", {"group": group})
        if not result.is_error or "next attempt in" not in result.content[0].text:
            return result
        show(f"{group}: not ready yet, dynamic-mcp retries in the background", "")
        await asyncio.sleep(FIRST_RUN_WAIT)
    return result


async def tour(config: Path) -> None:
    server = StdioTransport(
        sys.executable,
        ["-m", "server", str(config)],
        env={**os.environ, "DYNAMIC_MCP_EXAMPLE_REPO": str(REPO)},
        cwd=str(REPO),
        keep_alive=False,
    )
    async with Client(server, init_timeout=60, timeout=120) as client:
        tools = await client.list_tools()
        show("tools/list: what the model sees every turn", ", ".join(t.name for t in tools))
        show("get_dynamic_tools description", tools[0].description or "")
        groups = tools[0].input_schema["properties"]["group"]["enum"]
        for group in groups:
            result = await expand(client, group)
            text = result.content[0].text
            if result.is_error:
                show(f"get_dynamic_tools({group!r}) failed", text)
                continue
            names = [tool["name"] for tool in json.loads(text)]
            show(f"get_dynamic_tools({group!r}): {len(text)} characters", ", ".join(names))
            if group in SAMPLE_CALLS:
                name, args = SAMPLE_CALLS[group]
                called = await client.call_tool_mcp(
                    "call_dynamic_tool", {"group": group, "name": name, "args": args}
                )
                body = "\n".join(getattr(block, "text", block.type) for block in called.content)
                show(f"call_dynamic_tool({group!r}, {name!r}, {args})", body)


if __name__ == "__main__":
    asyncio.run(tour(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CONFIG))
