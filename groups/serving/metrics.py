"""What a served gateway counts, in Prometheus' text format at `GET /metrics`.

    metrics.start(is_group=..., open_sessions=front.open_sessions, processes=registry.processes)
    metrics.observe("tool_call", "ok", {"group": "github", "tool": "create_issue"}, 0.084)
    add_metrics_route(root)     # loopback: no token; elsewhere: $DYNAMIC_MCP_METRICS_TOKEN

Counted from the same events as the audit log (`groups.serving.audit` hands each one
here, whether or not an audit log is written), plus what is read when scraped:

    dynamic_mcp_tool_calls_total{group,tool,outcome}        counter
    dynamic_mcp_tool_call_duration_seconds{group,tool}      histogram
    dynamic_mcp_expansions_total{group,outcome}             counter
    dynamic_mcp_reads_total{kind,group,outcome}             counter  kind: resource, prompt
    dynamic_mcp_searches_total{outcome}                     counter
    dynamic_mcp_code_runs_total{outcome}                    counter  run_dynamic_code programs
    dynamic_mcp_code_run_duration_seconds                   histogram
    dynamic_mcp_sign_ins_total{group,stage,outcome}         counter  stage: started, finished
    dynamic_mcp_sessions_total{event}                       counter  opened, closed, refused
    dynamic_mcp_limits_hit_total{limit}                     counter
    dynamic_mcp_store_errors_total                          counter  the store not answering
    dynamic_mcp_open_sessions                               gauge    legacy sessions held here
    dynamic_mcp_upstream_processes{group}                   gauge    stdio upstreams running
    process_*, python_*                                     prometheus_client's own

Guarantees:
- no label names a user, a session or a value (a hundred users would be a hundred
  series each, and who called what is the audit log's); a group label is a configured
  group's name ("" for a name that is none), a tool label one of at most `TOOLS_PER_GROUP`
  names per group (the rest are counted as "other": names come from the model);
- counting costs a dictionary lookup and an addition, on the event loop, nothing else;
  off (not even imported) until `start`, which only HTTP serving calls, unless
  `settings.http.metrics` is false;
- `/metrics` answers a peer on loopback that came through no proxy (no
  `X-Forwarded-For`/`Forwarded`), else only with `Authorization: Bearer` and the token of
  `$DYNAMIC_MCP_METRICS_TOKEN` (compared in constant time; no token set: 403, saying so).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from groups.serving.http_access import is_loopback

if TYPE_CHECKING:
    from fastmcp import FastMCP
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["METRICS_TOKEN_ENV_VAR", "Metrics", "add_metrics_route", "metrics"]

METRICS_TOKEN_ENV_VAR = "DYNAMIC_MCP_METRICS_TOKEN"
TOOLS_PER_GROUP = 500  # distinct tool labels a group may have; more are "other"
# Seconds: from a warm local call (a few ms) to a slow remote one, within a tool timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_FORWARDED = ("x-forwarded-for", "forwarded")
_READS = {"resource_read": "resource", "prompt_get": "prompt"}
_SESSIONS = {"session_opened": "opened", "session_closed": "closed", "session_refused": "refused"}
_SIGN_INS = {"sign_in_started": "started", "sign_in_finished": "finished"}


class Metrics:
    """This process's counters and gauges (see the module)."""

    def __init__(self) -> None:
        self.registry: Any = None  # prometheus_client's CollectorRegistry, once started
        self._is_group: Callable[[str], bool] = lambda name: False
        self._tools: dict[str, set[str]] = {}  # group -> the tool labels it has

    def __repr__(self) -> str:
        return f"Metrics({'on' if self.registry is not None else 'off'})"

    def start(
        self,
        *,
        is_group: Callable[[str], bool],
        open_sessions: Callable[[], int],
        processes: Callable[[], Mapping[str, int]],
    ) -> None:
        """Count from now on; `is_group(name)`: whether a group of that name is configured;
        `open_sessions()` and `processes()` (per group) are read at each scrape."""
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            PlatformCollector,
            ProcessCollector,
            disable_created_metrics,
        )
        from prometheus_client.core import GaugeMetricFamily

        disable_created_metrics()  # a `_created` series beside each counter: noise here
        self._is_group = is_group
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

        def counter(name: str, said: str, *labels: str) -> Any:
            return Counter(f"dynamic_mcp_{name}", said, labels, registry=registry)

        self._calls = counter("tool_calls", "Tool calls, by outcome", "group", "tool", "outcome")
        self._durations = Histogram(
            "dynamic_mcp_tool_call_duration_seconds",
            "How long tool calls took, refused ones included",
            ("group", "tool"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._expansions = counter("expansions", "get_dynamic_tools calls", "group", "outcome")
        self._reads = counter("reads", "Resource reads and prompt gets", "kind", "group", "outcome")
        self._searches = counter("searches", "search_dynamic_tools calls", "outcome")
        self._code_runs = counter("code_runs", "run_dynamic_code programs", "outcome")
        self._code_durations = Histogram(
            "dynamic_mcp_code_run_duration_seconds",
            "How long run_dynamic_code programs took, their calls included",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._sign_ins = counter("sign_ins", "Sign-ins to upstreams", "group", "stage", "outcome")
        self._sessions = counter("sessions", "Legacy sessions opened, closed, refused", "event")
        self._limits = counter("limits_hit", "Requests a limit refused", "limit")
        self._store_errors = counter("store_errors", "Operations the shared store failed")
        open_gauge = Gauge(
            "dynamic_mcp_open_sessions", "Legacy sessions this replica holds", registry=registry
        )
        open_gauge.set_function(open_sessions)

        class Processes:
            def collect(self) -> Any:
                family = GaugeMetricFamily(
                    "dynamic_mcp_upstream_processes",
                    "Stdio upstream processes this replica runs",
                    labels=["group"],
                )
                for group, running in processes().items():
                    family.add_metric([group], running)
                yield family

        registry.register(Processes())
        self.registry = registry

    def stop(self) -> None:
        self.registry = None
        self._tools = {}

    def observe(
        self, event: str, outcome: str, names: Mapping[str, Any], seconds: float | None
    ) -> None:
        """Count one event of the audit log's (`names`: its group, tool, limit…)."""
        if self.registry is None:
            return
        group = self._group(names.get("group"))
        if event == "tool_call":
            tool = self._tool(group, names.get("tool"))
            self._calls.labels(group, tool, outcome).inc()
            if seconds is not None:
                self._durations.labels(group, tool).observe(seconds)
        elif event == "expansion":
            self._expansions.labels(group, outcome).inc()
        elif event in _READS:
            self._reads.labels(_READS[event], group, outcome).inc()
        elif event == "search":
            self._searches.labels(outcome).inc()
        elif event == "code_run":
            self._code_runs.labels(outcome).inc()
            if seconds is not None:
                self._code_durations.observe(seconds)
        elif event in _SIGN_INS:
            self._sign_ins.labels(group, _SIGN_INS[event], outcome).inc()
        elif event in _SESSIONS:
            self._sessions.labels(_SESSIONS[event]).inc()
        if outcome == "limited":
            self._limits.labels(_limit_name(names.get("limit"))).inc()

    def store_failed(self) -> None:
        if self.registry is not None:
            self._store_errors.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _group(self, group: Any) -> str:
        return group if isinstance(group, str) and self._is_group(group) else ""

    def _tool(self, group: str, tool: Any) -> str:
        if not isinstance(tool, str):
            return ""
        seen = self._tools.setdefault(group, set())
        if tool not in seen:
            if len(seen) >= TOOLS_PER_GROUP:
                return "other"
            seen.add(tool)
        return tool


def _limit_name(setting: Any) -> str:
    """`mcpServers.github.tools.rate_limit['delete_*']` -> `tools.rate_limit`: the kind of
    limit, one of a few, never a group's or a pattern's name."""
    if not isinstance(setting, str):
        return ""
    kind = setting.split("[", 1)[0]
    if kind.startswith("mcpServers."):
        kind = kind.split(".", 2)[2] if kind.count(".") >= 2 else kind
    return kind.removeprefix("settings.").removeprefix("http.")


metrics = Metrics()  # this process's


def add_metrics_route(server: FastMCP) -> None:
    """Serve `GET /metrics` on `server` (see the module for who may read it)."""

    @server.custom_route("/metrics", methods=["GET"])
    async def scrape(request: Request) -> Response:
        from starlette.responses import JSONResponse, Response

        refused = _refused(request)
        if refused is not None:
            status, reason = refused
            return JSONResponse({"error": reason}, status_code=status)
        if metrics.registry is None:
            said = "no metrics: settings.http.metrics is false, or the server is starting"
            return JSONResponse({"error": said}, status_code=404)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)


def _refused(request: Request) -> tuple[int, str] | None:
    """Why `request` may not read the metrics (status, reason), or None."""
    peer = request.client.host if request.client is not None else ""
    if is_loopback(peer) and not any(header in request.headers for header in _FORWARDED):
        return None
    token = os.environ.get(METRICS_TOKEN_ENV_VAR, "")
    if not token:
        return 403, f"metrics are for loopback only: set {METRICS_TOKEN_ENV_VAR} to read them here"
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
        return 401, f"metrics need the token of {METRICS_TOKEN_ENV_VAR}: Authorization: Bearer"
    return None
