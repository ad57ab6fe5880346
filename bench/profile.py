"""Where a call's time goes in dynamic-mcp: cProfile over thousands of calls on the wire.

    uv run python -m bench.profile [--calls 3000] [--top 40]

Starts `python -m cProfile -m server` in front of one synthetic group, expands it, makes
`--calls` echo calls as raw JSON-RPC lines, closes stdin, and prints the functions that
spent the most time of their own (waiting in epoll excluded). bench/README.md keeps what
this showed before and after the call path was rebuilt.
"""

from __future__ import annotations

import pstats
import sys
import tempfile
from pathlib import Path

import anyio
from cyclopts import App

from bench.measure import synthetic_servers, write_config
from bench.wire import WireClient

app = App(name="bench.profile", help=__doc__)


@app.default
def profile(*, calls: int = 3000, top: int = 40) -> None:
    """Profile dynamic-mcp over `calls` echo calls; print the `top` functions by own time."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        output = folder / "server.prof"
        config = write_config(folder, "one", synthetic_servers(1))
        command = [sys.executable, "-m", "cProfile", "-o", str(output), "-m", "server"]
        anyio.run(_calls, [*command, str(config)], calls)
        stats = pstats.Stats(str(output), stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(top)


async def _calls(command: list[str], calls: int) -> None:
    async with WireClient(command) as proxy:
        await proxy.call("get_dynamic_tools", {"group": "syn00"})
        for _ in range(calls):
            args = {"group": "syn00", "name": "echo", "args": {"text": "x"}}
            await proxy.call("call_dynamic_tool", args)


if __name__ == "__main__":
    app()
