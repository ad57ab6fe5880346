"""An upstream that misbehaves on purpose, one way per run:

    python misbehaving.py serve             serves, misbehaving only as its tools are asked to
    python misbehaving.py crash-after N     serves N tool calls, then the process dies
    python misbehaving.py exit-at-start     exits with status 3 before speaking MCP
    python misbehaving.py junk              writes non-JSON lines to stdout, then serves
    python misbehaving.py slow-start SECS   sleeps SECS before serving
    python misbehaving.py fail-first N FILE exits at start on its first N runs (counted in FILE)

Every mode serves the same tools: `pid`, `echo`, `hang` (never returns; with $HANG_MARKER
set, writes `<marker>.started` when it starts and the marker itself when it is cancelled)
and `big` (a text result of N megabytes), and a resource `slow://forever` and a prompt
`slow_prompt` that never finish. The resource `pid://self` and the prompt `pid_prompt`
give the process id; `wait://{name}` writes `$WAIT_DIR/<name>.started`, then answers the
process id once `$WAIT_DIR/<name>` exists.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import asyncio
import os
import sys
import time
from pathlib import Path


def before_serving() -> None:
    """What a run does before it speaks MCP, done before FastMCP is imported: a run that
    exits, or is stopped while it sleeps, costs a test a fraction of a start."""
    mode = sys.argv[1]
    if mode == "slow-start":
        time.sleep(float(sys.argv[2]))
    if mode == "exit-at-start":
        sys.exit(3)
    if mode == "fail-first":
        counter = Path(sys.argv[3])
        runs = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(runs + 1))
        if runs < int(sys.argv[2]):
            sys.exit(4)


if __name__ == "__main__":
    before_serving()

# isort: split
from fastmcp import FastMCP  # noqa: E402 - after what comes before serving

mcp = FastMCP("misbehaving-upstream")
calls_left = [int(sys.argv[2])] if sys.argv[1] == "crash-after" else [None]


def count_call() -> None:
    if calls_left[0] is not None:
        if calls_left[0] <= 0:
            os._exit(1)  # die the way a crash does: no goodbye on the protocol
        calls_left[0] -= 1


@mcp.tool
def pid() -> int:
    """Return the process id."""
    count_call()
    return os.getpid()


@mcp.tool
def echo(text: str) -> str:
    """Send the text back."""
    count_call()
    return text


@mcp.tool
async def hang() -> str:
    """Never return; note the start, and the cancellation when it comes."""
    marker = os.environ.get("HANG_MARKER")
    if marker:
        Path(marker).with_suffix(".started").write_text("started")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        if marker:
            Path(marker).write_text("cancelled")  # noqa: ASYNC240 - tiny, and we are exiting
        raise
    return "unreachable"


@mcp.tool
def big(megabytes: int) -> str:
    """Return a text of the given size."""
    return "x" * (megabytes * 1024 * 1024)


@mcp.resource("slow://forever")
async def slow_resource() -> str:
    """A resource that never finishes reading."""
    await asyncio.sleep(3600)
    return "unreachable"


@mcp.prompt
async def slow_prompt() -> str:
    """A prompt that never finishes rendering."""
    await asyncio.sleep(3600)
    return "unreachable"


@mcp.resource("pid://self")
def pid_resource() -> str:
    """The process id, as a resource."""
    return str(os.getpid())


@mcp.prompt
def pid_prompt() -> str:
    """The process id, as a prompt."""
    return str(os.getpid())


@mcp.resource("wait://{name}")
async def wait_for_release(name: str) -> str:
    """Answer the process id once the test creates the file it waits for."""
    release = Path(os.environ["WAIT_DIR"]) / name
    release.with_suffix(".started").write_text("started")
    for _ in range(6000):  # at most a minute, then the test has failed anyway
        if release.exists():
            break
        await asyncio.sleep(0.01)
    return str(os.getpid())


def main() -> None:
    mode = sys.argv[1]
    if mode == "junk":
        sys.stdout.write("this is not JSON-RPC\n{broken json\n")
        sys.stdout.flush()
    lean.serving()
    mcp.run(show_banner=False, log_level="ERROR")


if __name__ == "__main__":
    main()
