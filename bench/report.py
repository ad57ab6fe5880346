"""Turn bench results into Markdown tables, the targets (issues 7, 13 and 14), and a chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["chart", "markdown", "targets"]

OURS = "dynamic-mcp"
PEERS = ("dmcp", "modular-mcp")


def markdown(results: dict[str, Any]) -> str:
    systems = results["systems"]
    ran = {name: figures for name, figures in systems.items() if "skipped" not in figures}
    machine = results["machine"]
    lines = [
        f"# Benchmarks ({results['mode']} run)",
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['memory_gb']} GiB, Python "
        f"{machine['python']}, {machine['platform']}.",
        "",
    ]
    for name, figures in systems.items():
        if "skipped" in figures:
            lines.append(f"- **{name}** skipped: {figures['skipped']}")
    lines += ["", f"## Context tokens (o200k; {results['token_workload']})", ""]
    lines += _table(
        [
            "system",
            "tools/list every turn",
            "all expansions",
            "same tools, minimal form",
            "tools/list as sent",
        ],
        [
            [
                n,
                f["tokens"]["visible_tokens"],
                f["tokens"]["expansion_tokens"],
                f["tokens"]["expansion_minimal_tokens"],
                f["tokens"]["visible_listing_tokens"],
            ]
            for n, f in ran.items()
            if "failed" not in f["tokens"]
        ],
    )
    for name, figures in ran.items():
        if "failed" in figures["tokens"]:
            lines += ["", f"{name} could not run this workload: {figures['tokens']['failed']}"]
    if "direct" in ran:
        minimal = ran["direct"]["tokens"]["minimal_tokens"]
        lines += ["", f"Minimal form of every tool (name, description, inputSchema): {minimal}."]
    delay = results["startup_delay_s"]
    for count in results["group_counts"]:
        lines += [
            "",
            f"## Start-up, memory and shutdown with {count} groups "
            f"(synthetic upstream, {delay * 1000:.0f} ms start-up delay)",
            "",
        ]
        rows = []
        for name, figures in ran.items():
            s = figures["startup"][str(count)]
            rows.append(
                [
                    name,
                    _s(s["initialize_s"]),
                    _s(s["tools_list_s"]),
                    _s(s["all_groups_ready_s"]),
                    _mb(s["idle_rss_mb"]),
                    s["idle_upstream_processes"],
                    _mb(s["expanded_rss_mb"]),
                    s["expanded_upstream_processes"],
                    _s(s["shutdown_s"]),
                ]
            )
        lines += _table(
            [
                "system",
                "initialize",
                "tools/list",
                "every group usable",
                "idle RSS",
                "idle processes",
                "expanded RSS",
                "processes",
                "shutdown",
            ],
            rows,
        )
    lines += ["", "## Calls (5 synthetic groups)", ""]
    direct_p50 = ran.get("direct", {}).get("latency", {}).get("call_p50_ms")
    rows = []
    for name, f in ran.items():
        lat, cold, conc = f["latency"], f["cold"], f["concurrency"]
        overhead = lat["call_p50_ms"] - direct_p50 if direct_p50 is not None else math.nan
        warm = cold.get("first_expansion_warm_catalog_s")
        rows.append(
            [
                name,
                _s(cold["first_expansion_s"]),
                _s(warm) if warm is not None else "—",
                _s(cold["first_call_s"]),
                _ms(lat["call_p50_ms"]),
                _ms(lat["call_p95_ms"]),
                _ms(lat["call_p99_ms"]),
                _ms(overhead),
                f"{conc['concurrent_correct']}/50",
                _s(conc["concurrent_total_s"]),
                _s(conc["call_during_hang_s"]),
            ]
        )
    lines += _table(
        [
            "system",
            "first expansion",
            "…with a warm catalog",
            "first call",
            "p50",
            "p95",
            "p99",
            "p50 over direct",
            "50 concurrent: correct",
            "total",
            "call while another group hangs",
        ],
        rows,
    )
    lines += _after_catalog_expansion(ran)
    lines += ["", "## Calls on the wire (raw JSON-RPC over stdio, no client library)", ""]
    direct_wire = ran.get("direct", {}).get("wire")
    rows = []
    for name, f in ran.items():
        wire = f["wire"]
        over = wire["wire_p50_ms"] - direct_wire["wire_p50_ms"] if direct_wire else math.nan
        ratio = (
            wire["wire_concurrent_ms"] / direct_wire["wire_concurrent_ms"]
            if direct_wire
            else math.nan
        )
        cpu = _ms(wire["wire_proxy_cpu_ms"]) if name != "direct" else "—"
        rows.append(
            [
                name,
                _ms(wire["wire_p50_ms"]),
                _ms(over),
                cpu,
                _ms(wire["wire_concurrent_ms"]),
                f"{ratio:.1f}x",
            ]
        )
    lines += _table(
        [
            "system",
            "p50",
            "p50 over direct",
            "proxy CPU per call",
            "50 concurrent over the groups",
            "over direct",
        ],
        rows,
    )
    commands = ran.get(OURS, {}).get("commands")
    if commands:
        lines += ["", "## Commands (wall time, bytecode compiled)", ""]
        lines += _table(
            ["--version", "--help", "import (no source)", "serve → tools/list", "import FastMCP"],
            [
                [
                    _s(commands["version_s"]),
                    _s(commands["help_s"]),
                    _s(commands["import_s"]),
                    _s(commands["serve_to_tools_list_s"]),
                    _s(commands["fastmcp_import_s"]),
                ]
            ],
        )
    lines += ["", "## Targets", ""]
    lines += _table(["target", "measured", "met"], targets(results))
    return "\n".join(lines) + "\n"


def targets(results: dict[str, Any]) -> list[list[Any]]:
    """The targets as measured for dynamic-mcp: [target, figure, met]."""
    ran = {n: f for n, f in results["systems"].items() if "skipped" not in f}
    ours = ran.get(OURS)
    if ours is None:
        return [["dynamic-mcp did not run", "", ""]]
    rows: list[list[Any]] = []
    peers = [
        ran[p]["tokens"]["visible_tokens"]
        for p in PEERS
        if p in ran and "failed" not in ran[p]["tokens"]
    ]
    visible = ours["tokens"]["visible_tokens"]
    if peers:
        ratio = visible / min(peers)
        rows.append(
            [
                "tools/list ≤ smallest peer's",
                f"{visible} vs {min(peers)} ({ratio:.2f}x)",
                _yes(ratio <= 1),
            ]
        )
    for name in (OURS, *PEERS):
        if name in ran and "failed" not in ran[name]["tokens"]:
            figures = ran[name]["tokens"]
            ratio = figures["expansion_tokens"] / figures["expansion_minimal_tokens"]
            label = "all expansions ≤ minimal form of the same tools"
            if name != OURS:
                label += f" ({name}, for reference)"
            rows.append([label, f"{ratio:.2f}x", _yes(ratio <= 1)])
    counts = [str(c) for c in results["group_counts"]]
    low, high = ours["startup"][counts[0]], ours["startup"][counts[-1]]
    for key, label in (("tools_list_s", "start-up"), ("idle_rss_mb", "idle memory")):
        ratio = high[key] / low[key]
        rows.append(
            [
                f"{label} with {counts[-1]} groups within 10% of {counts[0]}",
                f"{ratio:.2f}x",
                _yes(ratio <= 1.10),
            ]
        )
    if "direct" in ran:
        wire, direct = ours["wire"], ran["direct"]["wire"]
        overhead = wire["wire_p50_ms"] - direct["wire_p50_ms"]
        rows.append(
            ["call p50 over direct ≤ 1.0 ms (wire)", f"{overhead:.2f} ms", _yes(overhead <= 1.0)]
        )
        ratio = wire["wire_concurrent_ms"] / direct["wire_concurrent_ms"]
        rows.append(["50 concurrent calls ≤ 3x direct (wire)", f"{ratio:.1f}x", _yes(ratio <= 3)])
    commands = ours.get("commands")
    if commands:
        slowest = max(commands["version_s"], commands["help_s"], commands["import_s"])
        rows.append(["--version, --help, import ≤ 0.5 s", _s(slowest), _yes(slowest <= 0.5)])
        ratio = commands["serve_over_fastmcp_import"]
        rows.append(
            ["serve → tools/list ≤ 1.1x importing FastMCP", f"{ratio:.2f}x", _yes(ratio <= 1.1)]
        )
    warm = ours["cold"].get("first_expansion_warm_catalog_s")
    if warm is not None:
        rows.append(["first expansion with a warm catalog < 0.2 s", _s(warm), _yes(warm < 0.2)])
    shutdowns = [ours["startup"][c]["shutdown_s"] for c in counts]
    worst = max(shutdowns)
    rows.append(["shutdown < 1 s, no orphan", _s(worst), _yes(not math.isnan(worst) and worst < 1)])
    return rows


def _after_catalog_expansion(ran: dict[str, Any]) -> list[str]:
    """The first call a second after an expansion the catalog answered, against a warm call."""
    rows = [
        [
            name,
            _s(cold["first_expansion_warm_catalog_s"]),
            _ms(cold["call_after_catalog_expansion_s"] * 1000),
            _ms(cold["warm_call_s"] * 1000),
        ]
        for name, f in ran.items()
        if "call_after_catalog_expansion_s" in (cold := f["cold"])
    ]
    if not rows:
        return []
    header = ["system", "expansion from the catalog", "first call 1 s later", "warm call"]
    title = "## First call after an expansion from the catalog (restarted, warm catalog)"
    return ["", title, "", *_table(header, rows)]


def chart(results: dict[str, Any], path: Path) -> str:
    """Start-up time and idle memory against group count, one line per system."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(no chart: install the bench-chart group for matplotlib)"
    counts = results["group_counts"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, figures in results["systems"].items():
        if "skipped" in figures:
            continue
        startup = [figures["startup"][str(c)] for c in counts]
        left.plot(counts, [s["tools_list_s"] for s in startup], marker="o", label=name)
        right.plot(counts, [s["idle_rss_mb"] for s in startup], marker="o", label=name)
    left.set(title="Spawn to tools/list answered", xlabel="groups", ylabel="seconds")
    right.set(title="Idle memory after start (proxy + children)", xlabel="groups", ylabel="MB")
    left.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return f"Chart: {path.name}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _s(seconds: float) -> str:
    return "orphan left" if math.isnan(seconds) else f"{seconds:.2f} s"


def _ms(milliseconds: float) -> str:
    return "n/a" if math.isnan(milliseconds) else f"{milliseconds:.2f} ms"


def _mb(megabytes: float) -> str:
    return f"{megabytes:.0f} MB"


def _yes(met: bool) -> str:
    return "yes" if met else "no"
