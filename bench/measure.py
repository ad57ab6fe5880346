"""One measurement per function; each starts its system fresh and leaves nothing running.

Times are wall-clock seconds from `time.perf_counter()`; memory is the summed RSS of the
system's processes (the proxy and every upstream it started) in MB.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench import tokens
from bench.systems import System

SYNTHETIC = Path(__file__).resolve().parent / "synthetic.py"
READY_WAIT = 180.0  # seconds a group may take to become usable before the run fails
READY_POLL = 0.25  # seconds between expansion attempts of a group that is not up yet
HANG_SECONDS = 2.0  # how long the "hanging" call sleeps in the isolation measurement


def synthetic_servers(groups: int, *, delay: float = 0.0, tools: int = 10) -> dict[str, Any]:
    """`groups` copies of the synthetic upstream, each starting after `delay` seconds."""
    return {
        f"syn{i:02d}": {
            "description": f"Synthetic group {i} with {tools} tools.",
            "command": sys.executable,
            "args": [str(SYNTHETIC), "--tools", str(tools), "--delay", str(delay)],
        }
        for i in range(groups)
    }


def write_config(directory: Path, name: str, servers: dict[str, Any]) -> Path:
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


async def context_tokens(system: System, config: Path, servers: dict[str, Any]) -> dict[str, Any]:
    """Tokens the model sees every turn, for all expansions, and for the minimal form."""
    harness = system.harness(config, servers)
    await harness.start()
    try:
        visible = await harness.visible_tools()
        expansions = [await harness.expand(group) for group in servers]
    finally:
        await harness.close()
    return {
        "visible_tokens": tokens.count(tokens.minimal_form(visible)),
        "visible_listing_tokens": tokens.count(tokens.listing(visible)),
        "expansion_tokens": sum(tokens.count(text) for text in expansions),
        # The same tools in minimal form: an upstream may list more tools to a proxy that
        # forwards sampling and elicitation, so compare each system with its own tools.
        "expansion_minimal_tokens": sum(
            tokens.count(tokens.reminimized(text)) for text in expansions
        ),
    }


async def startup(system: System, config: Path, servers: dict[str, Any]) -> dict[str, Any]:
    """Spawn to initialize answered, to tools/list answered, to every group usable; memory."""
    harness = system.harness(config, servers)
    started = time.perf_counter()
    await harness.start()
    initialized = time.perf_counter() - started
    await harness.visible_tools()
    listed = time.perf_counter() - started
    idle_rss = harness.rss_mb()
    idle_processes = harness.upstream_count(proxy=system.command != ())
    async with anyio.create_task_group() as tasks:
        for group in servers:
            tasks.start_soon(expand_when_ready, harness, group)
    ready = time.perf_counter() - started
    expanded_rss = harness.rss_mb()
    expanded_processes = harness.upstream_count(proxy=system.command != ())
    shutdown = await harness.close()
    return {
        "initialize_s": initialized,
        "tools_list_s": listed,
        "all_groups_ready_s": ready,
        "idle_rss_mb": idle_rss,
        "idle_upstream_processes": idle_processes,
        "expanded_rss_mb": expanded_rss,
        "expanded_upstream_processes": expanded_processes,
        "shutdown_s": shutdown,
    }


async def expand_when_ready(harness: Any, group: str) -> None:
    """Expand a group, asking again while it is not up yet, as a client would.

    Fifty upstreams starting at once on two cores can take longer than a proxy's
    per-attempt connect limit; a lazy proxy then retries in the background, so "usable"
    means the first expansion that succeeds.
    """
    deadline = time.perf_counter() + READY_WAIT
    while True:
        try:
            await harness.expand(group)
            return
        except RuntimeError:
            if time.perf_counter() > deadline:
                raise
            await anyio.sleep(READY_POLL)


async def cold_group(system: System, config: Path, servers: dict[str, Any]) -> dict[str, Any]:
    """First expansion and first call of a group nobody has used yet.

    dynamic-mcp is measured twice, with a ~/.dynamic-mcp of its own: with an empty
    catalog (what any proxy does: start the upstream and ask it), then once more, as after
    a restart, with the catalog the first run filled.
    """
    with tempfile.TemporaryDirectory() as home:
        env = {"DYNAMIC_MCP_HOME": home}
        figures = await _first_use(system, config, servers, env)
        if system.name == "dynamic-mcp":
            warm = await _first_use(system, config, servers, env)
            figures["first_expansion_warm_catalog_s"] = warm["first_expansion_s"]
    return figures


async def _first_use(
    system: System, config: Path, servers: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    harness = system.harness(config, servers, env)
    await harness.start()
    group = next(iter(servers))
    try:
        started = time.perf_counter()
        await harness.expand(group)
        expanded = time.perf_counter() - started
        started = time.perf_counter()
        await harness.call(group, "echo", {"text": "first"})
        called = time.perf_counter() - started
    finally:
        await harness.close()
    return {"first_expansion_s": expanded, "first_call_s": called}


async def call_latency(
    system: System, config: Path, servers: dict[str, Any], calls: int
) -> dict[str, Any]:
    """Steady-state latency of `calls` sequential echo calls, after a warm-up."""
    harness = system.harness(config, servers)
    await harness.start()
    group = next(iter(servers))
    samples = []
    try:
        await harness.expand(group)
        for _ in range(min(20, calls)):
            await harness.call(group, "echo", {"text": "warm"})
        for _ in range(calls):
            started = time.perf_counter()
            await harness.call(group, "echo", {"text": "x"})
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await harness.close()
    return {f"call_p{q}_ms": _percentile(samples, q) for q in (50, 95, 99)}


async def concurrency(
    system: System, config: Path, servers: dict[str, Any], hang: float = HANG_SECONDS
) -> dict[str, Any]:
    """50 concurrent calls over 5 groups; then one group hangs while another is called."""
    harness = system.harness(config, servers)
    await harness.start()
    groups = list(servers)[:5]
    answers: dict[str, str] = {}
    try:
        for group in groups:
            await harness.expand(group)

        async def one(group: str, index: int) -> None:
            result = await harness.call(group, "echo", {"text": f"{group}:{index}"})
            answers[f"{group}:{index}"] = result.content[0].text

        started = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for index in range(50):
                tasks.start_soon(one, groups[index % len(groups)], index)
        total = time.perf_counter() - started

        other_latency: list[float] = []

        async def meanwhile() -> None:
            await anyio.sleep(hang / 10)  # let the hanging call reach its upstream first
            started = time.perf_counter()
            await harness.call(groups[-1], "echo", {"text": "meanwhile"})
            other_latency.append(time.perf_counter() - started)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(harness.call, groups[0], "sleep", {"seconds": hang})
            tasks.start_soon(meanwhile)
    finally:
        await harness.close()
    correct = sum(1 for key, text in answers.items() if key == text)
    return {
        "concurrent_correct": correct,
        "concurrent_total_s": total,
        "call_during_hang_s": other_latency[0],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over repeated runs (a NaN, an orphan left, wins: it must show)."""
    merged = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        nan = any(isinstance(v, float) and v != v for v in values)
        merged[key] = float("nan") if nan else statistics.median(values)
    return merged


def _percentile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]
