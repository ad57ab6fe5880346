"""One measurement per function; each starts its system fresh and leaves nothing running.

    figures = await call_latency(system, config, servers, calls=300)   # a fresh start
    async with running(system, config, servers) as harness:            # or, on one start,
        figures = await latency_on(harness, group, calls=5)            # the same code

Each measurement's work on a started system is its own `*_on` function, so the smoke run
(bench/smoke.py) can put several on one start and still compute every figure the same way.
Times are wall-clock seconds from `time.perf_counter()`; memory is the summed RSS of the
system's processes (the proxy and every upstream it started) in MB.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from bench import tokens
from bench.systems import DirectHarness, Harness, System

SYNTHETIC = Path(__file__).resolve().parent / "synthetic.py"
READY_WAIT = 180.0  # seconds a group may take to become usable before the run fails
READY_POLL = 0.25  # seconds between expansion attempts of a group that is not up yet
HANG_SECONDS = 2.0  # how long the "hanging" call sleeps in the isolation measurement
# The model's thinking between an expansion and the call it leads to: about a second.
THINKING_GAP = 1.0
WARM_CALLS = 5  # calls on a started group whose median is "a warm call"


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


@asynccontextmanager
async def running(
    system: System, config: Path, servers: dict[str, Any], env: dict[str, str] | None = None
) -> AsyncIterator[Harness]:
    """The system started fresh; closed, every process it started gone, on the way out."""
    harness = system.harness(config, servers, env)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.close()


async def context_tokens(system: System, config: Path, servers: dict[str, Any]) -> dict[str, Any]:
    """Tokens the model sees every turn, for all expansions, and for the minimal form."""
    async with running(system, config, servers) as harness:
        return await tokens_on(harness, list(servers))


async def tokens_on(harness: Harness, groups: list[str]) -> dict[str, Any]:
    """`context_tokens` on a started system."""
    visible = await harness.visible_tools()
    expansions = [await harness.expand(group) for group in groups]
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


async def minimal_on(harness: DirectHarness, groups: list[str]) -> int:
    """Tokens of the minimal form of each group's tools, read from the upstreams directly."""
    total = 0
    for group in groups:
        total += tokens.count(tokens.minimal_form(await harness.group_tools(group)))
    return total


async def startup(system: System, config: Path, servers: dict[str, Any]) -> dict[str, Any]:
    """Spawn to initialize answered, to tools/list answered, to every group usable; memory."""
    harness = system.harness(config, servers)
    started = time.perf_counter()
    await harness.start()
    idle = await startup_idle_on(harness, system, started)
    ready = await startup_ready_on(harness, system, list(servers), started)
    return startup_figures(idle, ready, shutdown=await harness.close())


async def startup_idle_on(harness: Harness, system: System, started: float) -> dict[str, Any]:
    """Right after start (`started` is when the spawn began): nothing asked of any group."""
    initialized = time.perf_counter() - started
    await harness.visible_tools()
    listed = time.perf_counter() - started
    return {
        "initialize_s": initialized,
        "tools_list_s": listed,
        "idle_rss_mb": harness.rss_mb(),
        "idle_upstream_processes": harness.upstream_count(proxy=system.command != ()),
    }


async def startup_ready_on(
    harness: Harness, system: System, groups: list[str], started: float
) -> dict[str, Any]:
    """Every group expanded once, all at the same time; memory and processes then."""
    async with anyio.create_task_group() as tasks:
        for group in groups:
            tasks.start_soon(expand_when_ready, harness, group)
    ready = time.perf_counter() - started
    return {
        "all_groups_ready_s": ready,
        "expanded_rss_mb": harness.rss_mb(),
        "expanded_upstream_processes": harness.upstream_count(proxy=system.command != ()),
    }


def startup_figures(idle: dict[str, Any], ready: dict[str, Any], shutdown: float) -> dict[str, Any]:
    """One start-up's figures, in the order the report and earlier results list them."""
    return {
        "initialize_s": idle["initialize_s"],
        "tools_list_s": idle["tools_list_s"],
        "all_groups_ready_s": ready["all_groups_ready_s"],
        "idle_rss_mb": idle["idle_rss_mb"],
        "idle_upstream_processes": idle["idle_upstream_processes"],
        "expanded_rss_mb": ready["expanded_rss_mb"],
        "expanded_upstream_processes": ready["expanded_upstream_processes"],
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
            async with running(system, config, servers, env) as harness:
                figures |= await catalog_use_on(harness, next(iter(servers)))
    return figures


async def _first_use(
    system: System, config: Path, servers: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    async with running(system, config, servers, env) as harness:
        return await first_use_on(harness, next(iter(servers)))


async def first_use_on(harness: Harness, group: str) -> dict[str, Any]:
    """The first expansion and first call of `group`, which nothing may have used yet."""
    started = time.perf_counter()
    await harness.expand(group)
    expanded = time.perf_counter() - started
    started = time.perf_counter()
    await harness.call(group, "echo", {"text": "first"})
    called = time.perf_counter() - started
    return {"first_expansion_s": expanded, "first_call_s": called}


async def catalog_use_on(harness: Harness, group: str) -> dict[str, Any]:
    """dynamic-mcp started on a warm catalog: the expansion it answers from the catalog, the
    first call `THINKING_GAP` later (as a model would make it), and a warm call after it."""
    started = time.perf_counter()
    await harness.expand(group)
    expanded = time.perf_counter() - started
    await anyio.sleep(THINKING_GAP)
    started = time.perf_counter()
    await harness.call(group, "echo", {"text": "after thinking"})
    called = time.perf_counter() - started
    warm = []
    for _ in range(WARM_CALLS):
        started = time.perf_counter()
        await harness.call(group, "echo", {"text": "warm"})
        warm.append(time.perf_counter() - started)
    return {
        "first_expansion_warm_catalog_s": expanded,
        "call_after_catalog_expansion_s": called,
        "warm_call_s": statistics.median(warm),
    }


async def call_latency(
    system: System, config: Path, servers: dict[str, Any], calls: int
) -> dict[str, Any]:
    """Steady-state latency of `calls` sequential echo calls, after a warm-up."""
    async with running(system, config, servers) as harness:
        return await latency_on(harness, next(iter(servers)), calls)


async def latency_on(harness: Harness, group: str, calls: int) -> dict[str, Any]:
    """`call_latency` on a started system."""
    samples = []
    await harness.expand(group)
    for _ in range(min(20, calls)):
        await harness.call(group, "echo", {"text": "warm"})
    for _ in range(calls):
        started = time.perf_counter()
        await harness.call(group, "echo", {"text": "x"})
        samples.append((time.perf_counter() - started) * 1000)
    return {f"call_p{q}_ms": _percentile(samples, q) for q in (50, 95, 99)}


async def concurrency(
    system: System, config: Path, servers: dict[str, Any], hang: float = HANG_SECONDS
) -> dict[str, Any]:
    """50 concurrent calls over 5 groups; then one group hangs while another is called."""
    async with running(system, config, servers) as harness:
        return await concurrency_on(harness, list(servers)[:5], hang)


async def concurrency_on(harness: Harness, groups: list[str], hang: float) -> dict[str, Any]:
    """`concurrency` on a started system, whose `groups` are those it calls."""
    answers: dict[str, str] = {}
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
