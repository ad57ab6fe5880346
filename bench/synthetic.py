"""A synthetic upstream whose size and start-up cost are knobs, so their effect is visible.

    python bench/synthetic.py --tools 20 --fields 5 --delay 0.3

Tools: `echo(text)` answers at once, `sleep(seconds)` waits, and `tool_<i>` tools with
`--fields` string parameters each (their schemas are what a group expansion costs).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastmcp import FastMCP
from fastmcp.tools.function_tool import FunctionTool


def build(tools: int, fields: int) -> FastMCP:
    server = FastMCP("synthetic")

    @server.tool
    def echo(text: str) -> str:
        """Send the text back."""
        return text

    @server.tool
    async def sleep(seconds: float) -> str:
        """Wait, then answer (for concurrency and hang measurements)."""
        await asyncio.sleep(seconds)
        return "slept"

    for index in range(tools):
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                f"field_{f}": {"type": "string", "description": f"Field {f} of tool {index}."}
                for f in range(fields)
            },
            "required": [f"field_{f}" for f in range(min(fields, 2))],
        }
        tool = FunctionTool(
            name=f"tool_{index}",
            description=f"Synthetic tool number {index}; returns its arguments.",
            parameters=schema,
            fn=lambda **kwargs: kwargs,
        )
        server.add_tool(tool)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tools", type=int, default=10)
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before serving")
    options = parser.parse_args()
    time.sleep(options.delay)  # a slow start-up, like a server loading a model or index
    build(options.tools, options.fields).run(show_banner=False, log_level="ERROR")


if __name__ == "__main__":
    main()
