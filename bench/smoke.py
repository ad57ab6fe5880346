"""The smoke run: every figure through the same measurement code, on as few starts as possible.

    figures = await measure_one(SYSTEMS["dynamic-mcp"], folder, servers, size, progress)

A full or quick run starts the system afresh for every measurement, so that no figure
leans on another. The smoke run only proves that every figure is still produced (the test
suite runs it), and each Python process it starts costs about a second of CPU, most of it
importing FastMCP. So here one start of the system carries every measurement that does not
need a start of its own, in this order:

1. Started with an empty catalog: start-up's idle figures (nothing asked yet), the first
   expansion and first call of the group, start-up's every-group-usable and memory
   figures, context tokens, call latency, concurrency; then shutdown, with everything gone.
2. dynamic-mcp only: started again on the catalog the first start wrote, its first
   expansion (the warm-catalog figure), the first call a second later and a warm call,
   as in a full run.
3. Calls on the wire, through a process of their own (raw JSON-RPC, no client library).
   For dynamic-mcp that is the process the command start-up's serve → tools/list timed,
   and the commands that serve nothing run meanwhile.

Guarantees:
- Each figure is computed by the function a full run uses (`measure.*_on`, `wire`,
  `commands`); only which start it runs on differs. The smoke figures are not comparable
  with a full run's: "every group usable" includes the first use, and the calls share the
  start-up's process.
- Process and memory figures stay right: the measurements on a `Harness` run one at a time
  and alone, since a harness counts as its own every process this one starts meanwhile.
  Only the wire and command processes, which account for themselves by PID, overlap.
- Everything a step started is gone when it returns, failed or not.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bench import commands, measure, wire
from bench.systems import DirectHarness, System

__all__ = ["measure_one"]


async def measure_one(
    system: System,
    folder: Path,
    servers: dict[str, Any],
    size: dict[str, Any],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Every figure of one system, all on `servers`: the token workload's synthetic group.

    `progress` is told each step as it begins, so a run that hangs shows where.
    """
    if system.name == "dynamic-mcp":
        # Before the first start: PYTHONDONTWRITEBYTECODE would have every start compile
        # the project again; a full run does this at its command step, the last.
        commands.compile_project()
    config = measure.write_config(folder, "smoke", servers)
    with tempfile.TemporaryDirectory(prefix="bench-smoke-home-") as home:
        env = {"DYNAMIC_MCP_HOME": home}  # the catalog start 1 writes and start 2 reads
        progress(f"{system.name}: start-up, first use, tokens, latency, concurrency")
        figures = await _one_start(system, config, servers, env, size)
        if system.name == "dynamic-mcp":
            progress(f"{system.name}: expansion with a warm catalog, then calls")
            async with measure.running(system, config, servers, env) as harness:
                figures["cold"] |= await measure.catalog_use_on(harness, next(iter(servers)))
    progress(f"{system.name}: {size['wire']} calls on the wire")
    if system.name == "dynamic-mcp":
        progress(f"{system.name}: command start-up, meanwhile")
        figures["wire"], figures["commands"] = await _wire_and_commands(
            system, config, servers, size
        )
    else:
        figures["wire"] = await wire.wire_calls(system, servers, config, size["wire"])
    return {
        key: figures[key]
        for key in ("tokens", "startup", "cold", "latency", "concurrency", "wire", "commands")
        if key in figures
    }


async def _one_start(
    system: System,
    config: Path,
    servers: dict[str, Any],
    env: dict[str, str],
    size: dict[str, Any],
) -> dict[str, Any]:
    """Start-up, first use, tokens, latency and concurrency on one start of the system."""
    groups = list(servers)
    figures: dict[str, Any] = {}
    harness = system.harness(config, servers, env)
    started = time.perf_counter()
    await harness.start()
    try:
        idle = await measure.startup_idle_on(harness, system, started)
        # Between idle and ready: the group must be unused for its first use, and the
        # idle figures must be taken before that use starts its upstream.
        figures["cold"] = await measure.first_use_on(harness, groups[0])
        ready = await measure.startup_ready_on(harness, system, groups, started)
        figures["tokens"] = await measure.tokens_on(harness, groups)
        if isinstance(harness, DirectHarness):
            figures["tokens"]["minimal_tokens"] = await measure.minimal_on(harness, groups)
        figures["latency"] = await measure.latency_on(harness, groups[0], size["calls"])
        figures["concurrency"] = await measure.concurrency_on(harness, groups[:5], size["hang"])
    finally:
        shutdown = await harness.close()
    figures["startup"] = {str(len(groups)): measure.startup_figures(idle, ready, shutdown)}
    return figures


async def _wire_and_commands(
    system: System, config: Path, servers: dict[str, Any], size: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Calls on the wire through the process serve → tools/list timed; the other commands
    meanwhile, in a thread (they are blocking `subprocess.run`s)."""
    without_serving: dict[str, Any] = {}

    async def other_commands() -> None:
        with tempfile.TemporaryDirectory() as empty:
            without_serving.update(
                await anyio.to_thread.run_sync(
                    commands.commands_without_serving, size["runs"], Path(empty)
                )
            )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(other_commands)
        async with commands.serving(config) as (proxy, served):
            on_the_wire = await wire.proxy_calls(proxy, system, list(servers), size["wire"])
    return on_the_wire, commands.with_serving(without_serving, served)
