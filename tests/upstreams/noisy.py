"""An upstream that talks on stderr as real ones do, one way per run:

    python noisy.py serve     launcher progress, a banner, one line five times and a caught
                              traceback on stderr, then serves the echo tools and
                              `changed(times)`, which sends tools/list_changed that often
    python noisy.py refuse    a usage text, no word of error in it, then exits with status 1

Every line goes to stderr; stdout carries only the protocol.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import sys

BANNER = [
    "Downloading cryptography (4.7MiB)",
    "Installed 40 packages in 30ms",
    "Starting default (STDIO) server...",
]
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/srv/noisy.py", line 7, in warm_cache',
    "ValueError: the cache is cold",
]
REPEATED = ["Waiting for the index"] * 5
USAGE = ["usage: noisy.py --token TOKEN", "  a token is needed to reach the service"]


def say(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    if sys.argv[1] == "refuse":
        say(USAGE)
        sys.exit(1)
    import mcp_types
    from echo_server import mcp
    from fastmcp import Context

    @mcp.tool
    async def changed(times: int, ctx: Context) -> str:
        """Say `times` times in a row that the tools changed (they did not)."""
        for _ in range(times):
            await ctx.send_notification(mcp_types.ToolListChangedNotification())
        return f"said it {times} times"

    say(BANNER + REPEATED + TRACEBACK)
    lean.serving()
    mcp.run(show_banner=False, log_level="ERROR")
