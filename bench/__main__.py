"""Run the benchmarks: `uv run python -m bench [--quick | --smoke] [--systems a,b] [--chart]`.

Every system runs the same workloads in one process, one after another, so the figures are
side by side on the same machine at the same time. Markdown goes to stdout, JSON to
bench/results/latest.json (or `--output`). A system that cannot run here is listed with
the reason.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
from cyclopts import App

from bench import measure, report
from bench.commands import command_start
from bench.smoke import measure_one as measure_smoke
from bench.systems import REPO, SYSTEMS, DirectHarness, System
from bench.wire import wire_calls

RESULTS = Path(__file__).resolve().parent / "results"  # latest.json, not committed
CHART = Path(__file__).resolve().parent / "scaling.png"  # committed with bench/README.md

# Published upstreams from PyPI (uvx) and npm (npx): a realistic fleet for token counts.
# UV_OFFLINE: run from uv's warm cache. modular-mcp passes its children only a few
# variables (HOME, PATH, ...), so a uvx that goes online fails on a proxied network.
UVX_ENV = {"UV_OFFLINE": "1"}
FLEET: dict[str, dict[str, Any]] = {
    "time": {
        "description": "Current time and time-zone conversion.",
        "command": "uvx",
        "args": ["mcp-server-time"],
    },
    "git": {
        "description": "Read and change a local git repository.",
        "command": "uvx",
        "args": ["mcp-server-git", "--repository", str(REPO)],
    },
    "fetch": {
        "description": "Fetch a web page as Markdown.",
        "command": "uvx",
        "args": ["mcp-server-fetch"],
    },
    "everything": {
        "description": "MCP reference server exercising every feature.",
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-everything"],
    },
    "filesystem": {
        "description": "Read, write and search files under one directory.",
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-filesystem", str(REPO)],
    },
    "memory": {
        "description": "A knowledge graph the model can store facts in.",
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-memory"],
    },
    "sequential-thinking": {
        "description": "Step-by-step reasoning scratchpad.",
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-sequential-thinking"],
    },
}

app = App(name="bench", help=__doc__)

# Seconds each synthetic upstream of the start-up workload waits before it serves, so that
# an upstream's start-up cost shows. Smoke times nothing and starts its one group without.
START_DELAY = 0.3


# How much of each workload a mode runs: the full run takes about 20 minutes on 2 cores,
# quick about 2, and smoke, which only proves every metric is produced, seconds (smoke.py:
# one start carries most measurements, on the token workload's one synthetic group).
SIZES: dict[str, dict[str, Any]] = {
    "full": {"groups": [1, 20, 50], "calls": 300, "wire": 1000, "repeats": 2, "runs": 5, "hang": 2},
    "quick": {"groups": [1, 3], "calls": 30, "wire": 200, "repeats": 1, "runs": 3, "hang": 2},
    "smoke": {"groups": [1], "calls": 5, "wire": 20, "repeats": 1, "runs": 1, "hang": 0.5},
}


@app.default
def run(
    *,
    quick: bool = False,
    smoke: bool = False,
    systems: str = "direct,dynamic-mcp,dmcp,modular-mcp",
    chart: bool = True,
    output: Path = RESULTS / "latest.json",
) -> None:
    """Measure every system and print the table.

    Parameters
    ----------
    quick
        Small counts, about two minutes: a check between full runs.
    smoke
        One group, a few calls, seconds: proves every metric is produced (the test suite).
    systems
        Comma-separated: direct, dynamic-mcp, dmcp, modular-mcp.
    chart
        Draw bench/scaling.png (needs matplotlib: `uv run --group bench-chart ...`).
    output
        Where the JSON goes; the test suite points it at a scratch folder, not the repo.
    """
    mode = "smoke" if smoke else "quick" if quick else "full"
    chosen = [SYSTEMS[name.strip()] for name in systems.split(",") if name.strip()]
    results = anyio.run(_measure_all, chosen, mode)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(report.markdown(results))
    if chart and mode == "full":
        sys.stdout.write(report.chart(results, CHART) + "\n")


async def _measure_all(chosen: list[System], mode: str) -> dict[str, Any]:
    size = SIZES[mode]
    results: dict[str, Any] = {
        "mode": mode,
        "machine": _machine(),
        "group_counts": size["groups"],
        "startup_delay_s": 0.0 if mode == "smoke" else START_DELAY,
        "repeats": size["repeats"],
        "systems": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        # What dynamic-mcp keeps (its catalog) stays in the run's scratch, not the user's home.
        os.environ["DYNAMIC_MCP_HOME"] = str(folder / "home")
        synthetic = {"smoke": 1, "quick": 3}.get(mode)
        token_servers = measure.synthetic_servers(synthetic) if synthetic else FLEET
        results["token_workload"] = (
            f"{synthetic} synthetic group{'s' if synthetic > 1 else ''}"
            if synthetic
            else "7 published servers"
        )
        for system in chosen:
            reason = system.unavailable()
            if reason:
                results["systems"][system.name] = {"skipped": reason}
                continue
            try:
                if mode == "smoke":  # proves every figure is produced; several on one start
                    figures = await measure_smoke(system, folder, token_servers, size, _progress)
                else:
                    figures = await _measure_one(system, folder, token_servers, size)
                results["systems"][system.name] = figures
            except Exception as exc:  # a peer that breaks on a workload is reported, not fatal
                _progress(f"{system.name} failed: {exc!r}")
                results["systems"][system.name] = {"skipped": f"failed during the run: {exc}"}
    return results


async def _measure_one(
    system: System, folder: Path, token_servers: dict[str, Any], size: dict[str, Any]
) -> dict[str, Any]:
    """Every measurement of one system."""
    _progress(f"{system.name}: context tokens")
    figures: dict[str, Any] = {}
    config = measure.write_config(folder, "tokens", token_servers)
    try:
        figures["tokens"] = await measure.context_tokens(system, config, token_servers)
    except Exception as exc:  # e.g. a peer that cannot start one of the published servers
        _progress(f"{system.name}: context tokens failed: {exc!r}")
        figures["tokens"] = {"failed": str(exc)}
    if system.name == "direct":
        async with measure.running(system, config, token_servers) as harness:
            assert isinstance(harness, DirectHarness)
            figures["tokens"]["minimal_tokens"] = await measure.minimal_on(
                harness, [*token_servers]
            )
    figures["startup"] = {}
    for count in size["groups"]:
        _progress(f"{system.name}: start-up with {count} groups, {size['repeats']}x")
        servers = measure.synthetic_servers(count, delay=START_DELAY)
        config = measure.write_config(folder, f"startup{count}", servers)
        runs = [await measure.startup(system, config, servers) for _ in range(size["repeats"])]
        figures["startup"][str(count)] = measure.median_of(runs)
    servers = measure.synthetic_servers(5 if size["groups"][-1] > 1 else 1)
    config = measure.write_config(folder, "calls", servers)
    _progress(f"{system.name}: cold group, latency, concurrency")
    figures["cold"] = await measure.cold_group(system, config, servers)
    figures["latency"] = await measure.call_latency(system, config, servers, size["calls"])
    figures["concurrency"] = await measure.concurrency(system, config, servers, size["hang"])
    _progress(f"{system.name}: {size['wire']} calls on the wire, {size['repeats']}x")
    runs = [await wire_calls(system, servers, config, size["wire"]) for _ in range(size["repeats"])]
    figures["wire"] = measure.median_of(runs)
    if system.name == "dynamic-mcp":
        _progress(f"{system.name}: command start-up, {size['runs']}x")
        figures["commands"] = await command_start(size["runs"])
    return figures


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


_STARTED = time.perf_counter()


def _progress(message: str) -> None:
    sys.stderr.write(f"bench: {time.perf_counter() - _STARTED:6.1f}s {message}\n")


if __name__ == "__main__":
    app()
