"""The benchmark suite keeps working: its quick mode runs and reports every metric.

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


def test_quick_bench_produces_every_metric_for_direct_and_dynamic_mcp():
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--systems", "direct,dynamic-mcp"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((REPO / "bench" / "results" / "latest.json").read_text())

    for name in ("direct", "dynamic-mcp"):
        figures = results["systems"][name]
        assert set(figures["tokens"]) >= {"visible_tokens", "expansion_tokens"}
        for count in results["group_counts"]:
            assert set(figures["startup"][str(count)]) == STARTUP_METRICS
        assert set(figures["cold"]) == {"first_expansion_s", "first_call_s"}
        assert set(figures["latency"]) == {"call_p50_ms", "call_p95_ms", "call_p99_ms"}
        assert figures["concurrency"]["concurrent_correct"] == 50
    assert "minimal_tokens" in results["systems"]["direct"]["tokens"]
    assert "## Targets" in run.stdout
