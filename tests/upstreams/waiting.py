"""An upstream whose tool waits until it is cancelled, and leaves a file saying it was.

python waiting.py   # stdio
"""

from __future__ import annotations

import os

import anyio
from fastmcp import FastMCP

mcp = FastMCP("waiting-upstream")


@mcp.tool
def pid() -> int:
    """Return the process id of this upstream."""
    return os.getpid()


@mcp.tool
async def wait(marker: str) -> str:
    """Wait until cancelled; then write 'cancelled' to the file `marker`."""
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):  # it is being cancelled: write all the same
            await anyio.Path(marker).write_text("cancelled")
    return "never"


if __name__ == "__main__":
    mcp.run(show_banner=False)
