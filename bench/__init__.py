"""Benchmarks: dynamic-mcp side by side with direct connections and the peer proxies.

uv run python -m bench            # full run: Markdown table on stdout, JSON in bench/results/
uv run python -m bench --quick    # under a minute, what CI runs
"""
