"""What the sandbox costs in time: per run, cold and warm, and per call inside a program,
against a plain call_dynamic_tool to the same upstream tool, side by side in one run.

    uv run python -m bench.code_mode overhead --runs 5 --repeats 20 --calls 20

Each of `--runs` rounds starts a fresh dynamic-mcp (code mode on) in front of
mcp-server-time, expands `time` and warms its upstream with plain calls, then times:

- `cold`: the first run_dynamic_code of the server, one call inside: the sandbox's worker
  pool starts for it (a monty worker process);
- then `--repeats` times, interleaved so that the machine's load falls on all alike: one
  plain call_dynamic_tool to get_current_time, the same call as a one-call program
  (`warm`), a program that calls nothing (`return 1`), and a program of `--calls` calls.

A round's figure is the median of its repeats; the table gives the median over the rounds
(min-max). "Per call inside code" is (program of K calls - program of 1 call) / (K - 1).
Every time is the client's wall time over stdio (FastMCP's Client, the same for both
ways), so what differs between the rows is dynamic-mcp and its sandbox.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bench.code_proxy import serve, text
from bench.code_tasks import TIME

__all__ = ["overhead"]

CALL = {"group": "time", "name": "get_current_time", "args": {"timezone": "UTC"}}
ONE_CALL = 'return await call_tool("time", "get_current_time", {"timezone": "UTC"})'
NO_CALL = "return 1"
WARM_UP = 5  # plain calls before anything is timed: the upstream started, its path warm


def many_calls(calls: int) -> str:
    return f"""
zones = []
for n in range({calls}):
    now = await call_tool("time", "get_current_time", {{"timezone": "UTC"}})
    zones.append(now["timezone"])
return len(zones)
"""


def overhead(*, runs: int = 5, repeats: int = 20, calls: int = 20, json_: bool = False) -> None:
    """Time the sandbox against plain calls, and print the table.

    Parameters
    ----------
    runs
        Fresh servers, one cold run each; the figures are the median over them.
    repeats
        Timed samples of each kind per server, interleaved; a server's figure is their median.
    calls
        Calls in the long program, from which the cost of one call inside code is taken.
    json_
        Print the figures as JSON instead of a table.
    """
    rounds = anyio.run(_rounds, max(1, runs), max(1, repeats), max(2, calls))
    figures = summary(rounds, calls=max(2, calls))
    sys.stdout.write(json.dumps(figures, indent=2) + "\n" if json_ else table(figures))


async def _rounds(runs: int, repeats: int, calls: int) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as scratch:
        return [await _round(Path(scratch) / f"round-{n}", repeats, calls) for n in range(runs)]


async def _round(folder: Path, repeats: int, calls: int) -> dict[str, float]:
    """One fresh server: its cold run, and the median of each warm kind, in ms."""
    async with serve(folder, {"time": TIME}, code=True) as client:
        await client.call_tool_mcp("get_dynamic_tools", {"group": "time"})
        for _ in range(WARM_UP):
            await _timed(client, "call_dynamic_tool", CALL)
        cold = await _timed(client, "run_dynamic_code", {"code": ONE_CALL})
        kinds: dict[str, tuple[str, dict[str, Any]]] = {
            "plain call": ("call_dynamic_tool", CALL),
            "run, one call": ("run_dynamic_code", {"code": ONE_CALL}),
            "run, no call": ("run_dynamic_code", {"code": NO_CALL}),
            f"run, {calls} calls": ("run_dynamic_code", {"code": many_calls(calls)}),
        }
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(repeats):
            for kind, (tool, args) in kinds.items():
                samples[kind].append(await _timed(client, tool, args))
    return {"cold run, one call": cold, **{k: statistics.median(v) for k, v in samples.items()}}


async def _timed(client: Any, tool: str, args: dict[str, Any]) -> float:
    """Milliseconds from the request to its answer; an error answer stops the bench."""
    started = time.perf_counter()
    result = await client.call_tool_mcp(tool, args)
    elapsed = (time.perf_counter() - started) * 1000
    if result.is_error:
        raise RuntimeError(f"{tool}: {text(result)}")
    return elapsed


def summary(rounds: list[dict[str, float]], *, calls: int) -> dict[str, Any]:
    """Medians over the rounds (min-max), and each run against the plain call of its round."""
    many = f"run, {calls} calls"

    def spread(of: Callable[[dict[str, float]], float]) -> dict[str, float]:
        values = [of(r) for r in rounds]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    def per_call(r: dict[str, float]) -> float:
        return (r[many] - r["run, one call"]) / (calls - 1)

    rows: dict[str, Any] = {"plain call": {"ms": spread(lambda r: r["plain call"])}}
    for kind in ("cold run, one call", "run, one call", "run, no call", many):
        rows[kind] = {
            "ms": spread(lambda r, k=kind: r[k]),
            "over plain call, ms": spread(lambda r, k=kind: r[k] - r["plain call"]),
            "x plain call": spread(lambda r, k=kind: r[k] / r["plain call"]),
        }
    rows["per call inside code"] = {
        "ms": spread(per_call),
        "over plain call, ms": spread(lambda r: per_call(r) - r["plain call"]),
        "x plain call": spread(lambda r: per_call(r) / r["plain call"]),
    }
    rows[f"{calls} calls: one program against {calls} plain calls"] = {
        "x plain call": spread(lambda r: r[many] / (calls * r["plain call"]))
    }
    return {"runs": len(rounds), "calls": calls, "rows": rows, "rounds": rounds}


def table(figures: dict[str, Any]) -> str:
    def cell(row: dict[str, Any], key: str, unit: str) -> str:
        if key not in row:
            return "—"
        s = row[key]
        between = " to " if s["min"] < 0 else "-"  # a range of negatives stays readable
        return f"{s['median']:.2f}{unit} ({s['min']:.2f}{between}{s['max']:.2f})"

    lines = [
        f"{figures['runs']} fresh servers; mcp-server-time's get_current_time; "
        "median over the servers (min-max)",
        "",
        "| | time | over a plain call | against a plain call |",
        "|---|---|---|---|",
    ]
    for kind, row in figures["rows"].items():
        ms, over = cell(row, "ms", " ms"), cell(row, "over plain call, ms", " ms")
        lines.append(f"| {kind} | {ms} | {over} | {cell(row, 'x plain call', 'x')} |")
    return "\n".join(lines) + "\n"
