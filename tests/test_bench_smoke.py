"""The benchmark suite keeps working: its smoke mode runs and reports every metric.

No timing is asserted here (machines are noisy); bench/README.md holds the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

STARTUP_METRICS = {
    "initialize_s",
    "tools_list_s",
    "all_groups_ready_s",
    "idle_rss_mb",
    "idle_upstream_processes",
    "expanded_rss_mb",
    "expanded_upstream_processes",
    "shutdown_s",
}
COMMAND_METRICS = {
    "version_s",
    "help_s",
    "import_s",
    "fastmcp_import_s",
    "serve_to_tools_list_s",
    "serve_over_fastmcp_import",
}


def test_the_bench_smoke_run_produces_every_metric_for_direct_and_dynamic_mcp(tmp_path):
    output = tmp_path / "results.json"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--smoke", "--systems", "direct,dynamic-mcp"),
            *("--output", str(output)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,  # under the per-test limit, so a hang fails here with its output
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(output.read_text())

    assert results["mode"] == "smoke"
    for name in ("direct", "dynamic-mcp"):
        figures = results["systems"][name]
        assert set(figures["tokens"]) >= {"visible_tokens", "expansion_tokens"}
        for count in results["group_counts"]:
            assert set(figures["startup"][str(count)]) == STARTUP_METRICS
        cold = {"first_expansion_s", "first_call_s"}
        if name == "dynamic-mcp":
            cold |= {
                "first_expansion_warm_catalog_s",
                "call_after_catalog_expansion_s",
                "warm_call_s",
            }
        assert set(figures["cold"]) == cold
        assert set(figures["latency"]) == {"call_p50_ms", "call_p95_ms", "call_p99_ms"}
        assert figures["concurrency"]["concurrent_correct"] == 50
        assert set(figures["wire"]) == {"wire_p50_ms", "wire_proxy_cpu_ms", "wire_concurrent_ms"}
    assert set(results["systems"]["dynamic-mcp"]["commands"]) == COMMAND_METRICS
    assert "minimal_tokens" in results["systems"]["direct"]["tokens"]
    assert "## Targets" in run.stdout
    assert "## Calls on the wire" in run.stdout
    assert "## First call after an expansion from the catalog" in run.stdout


def _bench_code_mode(*args: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "bench.code_mode", *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def test_the_code_mode_bench_counts_one_task_both_ways():
    # the one task on an upstream installed here: the others start npm servers with npx
    figures = _bench_code_mode("--tasks", "meetings", "--zones", "2")["tasks"]["meetings"]
    plain, code = figures["tool calls"], figures["code"]

    assert (figures["calls"], plain["turns"], code["turns"]) == (4, 4, 1)
    assert plain["turns, independent calls at once"] == 1  # no call needs another's result
    # token counts, not timings: the same on every machine for the same upstream
    assert code["read over the task"] < plain["read over the task"]
    assert code["read over the turns"] < plain["read over the turns"]
    assert plain["expansions"] < code["expansions"] < plain["expansions with raw output schemas"]
    assert plain["tools/list"] < code["tools/list"]  # the third tool's cost, every turn
    assert set(json.loads(code["value"])) == {"now", "meeting at 09:00 UTC"}


def test_the_code_mode_overhead_bench_times_every_kind_of_run_against_a_plain_call():
    figures = _bench_code_mode("overhead", "--runs", "1", "--repeats", "1", "--calls", "2")

    # which figures there are, not how large: no timing is asserted
    assert set(figures["rows"]) == {
        "plain call",
        "cold run, one call",
        "run, one call",
        "run, no call",
        "run, 2 calls",
        "per call inside code",
        "2 calls: one program against 2 plain calls",
    }
    assert len(figures["rounds"]) == 1
    assert all(value > 0 for value in figures["rounds"][0].values())
