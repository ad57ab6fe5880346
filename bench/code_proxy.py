"""dynamic-mcp over stdio in front of some upstreams, for the code-mode bench.

    async with serve(folder, {"time": {...}}, code=True) as client:
        await client.call_tool_mcp("run_dynamic_code", {"code": "return 1"})

Each server is started as a model's client would start it (`python -m server CONFIG`),
with its catalog in `folder` (not the user's home), and ended when the block ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

__all__ = ["REPO", "serve", "text"]

REPO = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def serve(folder: Path, servers: dict[str, Any], *, code: bool) -> AsyncIterator[Any]:
    """A connected FastMCP client of a fresh dynamic-mcp, code mode on or off."""
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    config = _written_config(folder, servers, code=code)
    env = {
        **os.environ,
        "DYNAMIC_MCP_HOME": str(folder / "home"),
        "FASTMCP_CHECK_FOR_UPDATES": "off",
    }
    transport = StdioTransport(
        sys.executable, ["-m", "server", str(config)], env=env, cwd=str(REPO), keep_alive=False
    )
    # npx may take a while to start its first server on a cold cache
    async with Client(transport, init_timeout=120, timeout=120) as client:
        yield client


def _written_config(folder: Path, servers: dict[str, Any], *, code: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "dynamic-mcp.json"
    settings = {"code": True} if code else {}
    config.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    return config


def text(result: Any) -> str:
    """A result's text blocks, as they enter the model's context."""
    return "\n".join(block.text for block in result.content if block.type == "text")
