"""A small real upstream for the tests: every content kind, errors, and its own pid.

python echo_server.py                      # stdio
python echo_server.py http 127.0.0.1 PORT  # streamable HTTP
python echo_server.py sse 127.0.0.1 PORT   # HTTP+SSE
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import base64
import os
from typing import Annotated

from fastmcp import Context, FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types import EmbeddedResource, ImageContent, TextContent, TextResourceContents
from pydantic import BaseModel, Field

# A 1x1 transparent PNG, so image content is a real image.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

mcp = FastMCP("echo-upstream")


class Sum(BaseModel):
    total: int
    count: int


@mcp.tool
def pid() -> int:
    """Return the process id of this upstream."""
    return os.getpid()


@mcp.tool
def echo(text: Annotated[str, Field(description="Text to send back")]) -> str:
    """Send the text back unchanged."""
    return text


@mcp.tool
def add(numbers: list[int]) -> Sum:
    """Add numbers; the result is structured content."""
    return Sum(total=sum(numbers), count=len(numbers))


@mcp.tool
def pixel() -> ToolResult:
    """Return a 1x1 PNG image, a caption and an embedded resource."""
    return ToolResult(
        content=[
            ImageContent(
                type="image", data=base64.b64encode(PIXEL_PNG).decode(), mime_type="image/png"
            ),
            TextContent(type="text", text="a transparent pixel"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="memo://pixel", text="pixel notes", mime_type="text/plain"
                ),
            ),
        ]
    )


@mcp.tool
def fail(message: str) -> str:
    """Always fail with the given message."""
    raise ValueError(message)


@mcp.tool
def env(name: str) -> str:
    """Return an environment variable of this process, or '<unset>'."""
    return os.environ.get(name, "<unset>")


@mcp.tool
async def ask(question: str, ctx: Context) -> str:
    """Report progress and a log line naming the question, ask the user, return the answer."""
    for step in (1, 2):
        await ctx.report_progress(step, 2, f"{question}: step {step}")
    await ctx.info(f"{question}: asking")
    answer = await ctx.elicit(question, response_type=str)
    return f"{question} -> {answer.data if answer.action == 'accept' else answer.action}"


@mcp.resource("memo://greeting")
def greeting() -> str:
    """A fixed text resource."""
    return "hello from the echo upstream"


@mcp.prompt
def summarize(topic: str) -> str:
    """Ask for a summary of a topic."""
    return f"Summarize {topic} in one line."


if __name__ == "__main__":
    lean.run(mcp)
