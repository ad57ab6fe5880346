"""How long commands take to start: those that serve nothing, and serving to tools/list.

    figures = await command_start(runs=5)
    async with serving(config) as (client, seconds): ...   # one serve → tools/list, kept open

Wall time of whole processes, the median of `runs`, with bytecode compiled as users have
it (this machine may set PYTHONDONTWRITEBYTECODE, which would recompile every module on
every start). Serving is compared with importing FastMCP alone in the same environment:
what dynamic-mcp adds on top of the framework it stands on.
"""

from __future__ import annotations

import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.measure import synthetic_servers, write_config
from bench.systems import REPO
from bench.wire import WireClient

__all__ = [
    "command_start",
    "commands_without_serving",
    "compile_project",
    "serving",
    "with_serving",
]

SCRIPT = str(Path(sys.executable).with_name("dynamic-mcp"))


async def command_start(runs: int) -> dict[str, Any]:
    compile_project()
    with tempfile.TemporaryDirectory() as scratch:
        empty = Path(scratch)
        config = write_config(empty, "one", synthetic_servers(1))
        figures = commands_without_serving(runs, empty)
        served = []
        for _ in range(runs):
            async with serving(config) as (_, seconds):
                served.append(seconds)
    return with_serving(figures, statistics.median(served))


def compile_project() -> None:
    """Write the project's bytecode, which PYTHONDONTWRITEBYTECODE would leave unwritten."""
    for source in ("server.py", "groups", "importers"):
        target = REPO / source
        if target.is_dir():
            compileall.compile_dir(str(target), quiet=1)
        else:
            compileall.compile_file(str(target), quiet=1)


def commands_without_serving(runs: int, empty: Path) -> dict[str, Any]:
    """The commands that serve nothing, and importing FastMCP alone, run in `empty`."""
    return {
        "version_s": _median(runs, [SCRIPT, "--version"], empty),
        "help_s": _median(runs, [SCRIPT, "--help"], empty),
        # No source config here: the command starts, looks, and stops with a message.
        "import_s": _median(runs, [SCRIPT, "import", "cursor"], empty),
        "fastmcp_import_s": _median(
            runs, [sys.executable, "-c", "from fastmcp import FastMCP"], empty
        ),
    }


@asynccontextmanager
async def serving(config: Path) -> AsyncIterator[tuple[WireClient, float]]:
    """dynamic-mcp serving `config`, and the seconds from its spawn to its tools/list answer."""
    started = time.perf_counter()
    async with WireClient([sys.executable, "-m", "server", str(config)]) as client:
        await client.request("tools/list", {})
        yield client, time.perf_counter() - started


def with_serving(figures: dict[str, Any], served: float) -> dict[str, Any]:
    """The command figures completed with serve → tools/list, alone and over FastMCP's import."""
    return {
        **figures,
        "serve_to_tools_list_s": served,
        "serve_over_fastmcp_import": served / figures["fastmcp_import_s"],
    }


def _median(runs: int, command: list[str], cwd: Path) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
