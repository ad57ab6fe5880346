"""The wire workload, side by side: systems and checkouts interleaved, several rounds.

    uv run python -m bench.compare --rounds 4 --calls 600 --tree before=/tmp/before
    uv run python -m bench.compare --systems direct,dynamic-mcp,dmcp

On a shared, noisy machine one run of each system, one after another, tells the machine
as much as the code. Here every round runs each system once (the order rotated from round
to round), and each figure is reported as its median over the rounds with its spread,
"over direct" taken within a round. `--tree NAME=PATH` adds dynamic-mcp as checked out at
PATH (for instance `git worktree add PATH <commit>` or `git archive <commit> | tar -x`),
served with this environment's packages, so a change is measured against its parent in
the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import anyio
from cyclopts import App

from bench.measure import synthetic_servers, write_config
from bench.systems import SYSTEMS, System
from bench.wire import wire_calls

app = App(name="bench.compare", help=__doc__)

FIGURES = ("wire_p50_ms", "wire_proxy_cpu_ms", "wire_concurrent_ms")


def tree_system(name: str, path: Path, home: Path) -> System:
    """dynamic-mcp as checked out at `path`: its `server` and `groups` come first on the path
    (`-P`: not the working directory's), this environment's packages after them."""
    command = ("env", f"PYTHONPATH={path}", f"DYNAMIC_MCP_HOME={home}", sys.executable, "-P")
    return System(name, (*command, "-m", "server"))


@app.default
def compare(
    *,
    systems: str = "direct,dynamic-mcp,dmcp",
    tree: list[str] | None = None,
    rounds: int = 4,
    calls: int = 600,
    groups: int = 5,
    output: Path | None = None,
) -> None:
    """Run the wire workload `rounds` times over every system; print medians and spread.

    Parameters
    ----------
    systems
        Comma-separated systems of bench.systems (direct first: the others are over it).
    tree
        NAME=PATH: also dynamic-mcp as checked out at PATH, reported as NAME. Repeatable.
    rounds
        Rounds; each runs every system once.
    calls
        Sequential calls measured per system per round (after the warm-up).
    groups
        Synthetic groups; the 50 concurrent calls are spread over them.
    output
        Write every round's figures there as JSON.
    """
    load = _load()
    home = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    chosen = [SYSTEMS[name] for name in systems.split(",")]
    for entry in tree or []:
        name, _, path = entry.partition("=")
        chosen.append(tree_system(name, Path(path).resolve(), home))
    chosen = [system for system in chosen if _available(system)]
    servers = synthetic_servers(groups)
    config = write_config(home, "wire", servers)
    by_system: dict[str, list[dict[str, float]]] = {system.name: [] for system in chosen}
    for round_ in range(rounds):
        shift = round_ % len(chosen)
        for system in chosen[shift:] + chosen[:shift]:
            figures = anyio.run(wire_calls, system, servers, config, calls)
            by_system[system.name].append(figures)
            sys.stderr.write(f"round {round_ + 1} {system.name}: {_brief(figures)}\n")
    if output is not None:
        output.write_text(json.dumps(by_system, indent=2))
    print(_table(by_system, load))


def _available(system: System) -> bool:
    reason = system.unavailable()
    if reason is not None:
        sys.stderr.write(f"{system.name} skipped: {reason}\n")
    return reason is None


def _table(by_system: dict[str, list[dict[str, float]]], load: str) -> str:
    """Median (min to max) of each figure over the rounds; over direct within each round."""
    direct = by_system.get("direct")
    lines = [
        f"{len(next(iter(by_system.values())))} rounds; load average before: {load}",
        "",
        "| system | p50 | p50 over direct | proxy CPU per call | 50 concurrent | over direct |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in by_system.items():
        cells = [_spread([run["wire_p50_ms"] for run in runs], "ms")]
        if direct is not None:
            over = [
                run["wire_p50_ms"] - d["wire_p50_ms"] for run, d in zip(runs, direct, strict=True)
            ]
            cells.append(_spread(over, "ms"))
        else:
            cells.append("—")
        cpu = [run["wire_proxy_cpu_ms"] for run in runs]
        cells.append(_spread(cpu, "ms") if any(cpu) else "—")
        cells.append(_spread([run["wire_concurrent_ms"] for run in runs], "ms"))
        if direct is not None:
            ratio = [
                run["wire_concurrent_ms"] / d["wire_concurrent_ms"]
                for run, d in zip(runs, direct, strict=True)
            ]
            cells.append(_spread(ratio, "x"))
        else:
            cells.append("—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(values: list[float], unit: str) -> str:
    digits = 1 if unit == "x" else 2
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def _brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{key.removeprefix('wire_')} {figures[key]:.2f}" for key in FIGURES)


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    app()
