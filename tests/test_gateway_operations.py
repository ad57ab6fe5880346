"""What a platform team running the gateway sees and limits (issue "Gateway operations"),
on real processes: two replicas of dynamic-mcp behind HAProxy, a real redis-server, users
with their own tokens, and over stdio for one user without a store.

One cluster serves the module; each test uses users of its own, so no test's counts meet
another's.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx2
import mcp_types
import pytest
from conftest import (
    UPSTREAMS,
    serve_echo,
    serving_http,
    stdio_entry,
    until,
)
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from mcp.shared.exceptions import MCPError

from bench.cluster import Cluster, missing_parts
from groups.serving.metrics import METRICS_TOKEN_ENV_VAR

ALICE, BOB = "alice-token-31be07", "bob-token-c5d920"
CAROL, DAVE, ERIN = "carol-token-8e4f11", "dave-token-27aa6c", "erin-token-90c3d5"
FRANK = "frank-token-d41c77"
USERS = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": DAVE, "erin": ERIN, "frank": FRANK}
METRICS_TOKEN = "metrics-token-5b2e90"
RATE = 3  # calls a minute each user may make to the group "limited"
WAIT = 30  # seconds: a first request reaches a cold replica on a busy machine
GIVE_UP_AFTER = 6.0  # seconds a client waits for a call that never ends, then cancels it

cluster_parts = pytest.mark.skipif(missing_parts() is not None, reason=str(missing_parts()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("operations")
    config = directory / "dynamic-mcp.json"
    servers = {
        "limited": stdio_entry(
            description="Echo, a few calls a minute",
            rate_limit=f"{RATE}/minute",
            tools={"rate_limit": {"fai*": "1/minute"}},
        ),
        # Its calls end only when cancelled, not at a time limit, within any test.
        "waiting": stdio_entry(
            UPSTREAMS / "waiting.py",
            "Waits until cancelled",
            max_concurrent_calls=1,
            timeout={"tools": "1h"},
        ),
    }
    settings = {"start_on_expand": False, "audit_log": "audit.jsonl", "code": True}
    config.write_text(json.dumps({"mcpServers": servers, "settings": settings}))
    users = directory / "users.json"
    users.write_text(json.dumps(USERS))
    users.chmod(0o600)
    with Cluster(
        directory, config, users, extra_env={METRICS_TOKEN_ENV_VAR: METRICS_TOKEN}
    ) as running:
        yield running


def as_user(url: str, token: str) -> Client:
    return Client(url, auth=BearerAuth(token), init_timeout=WAIT, timeout=WAIT)


def text(result: mcp_types.CallToolResult) -> str:
    return "".join(part.text for part in result.content if isinstance(part, mcp_types.TextContent))


async def call(client: Client, group: str, name: str, **args: Any) -> mcp_types.CallToolResult:
    return await client.call_tool_mcp(
        "call_dynamic_tool", {"group": group, "name": name, "args": args}
    )


def audited(cluster: Cluster) -> list[dict[str, Any]]:
    audit = cluster.replicas[0].directory / "audit.jsonl"  # both replicas append to it
    return [json.loads(line) for line in audit.read_text().splitlines()]


# ---- 4. limits ----------------------------------------------------------------------------


@cluster_parts
async def test_a_users_rate_limit_counts_on_every_replica_and_for_that_user_alone(cluster):
    first, second = (replica.url for replica in cluster.replicas)
    async with (
        as_user(first, ALICE) as alice_1,
        as_user(second, ALICE) as alice_2,
        as_user(second, BOB) as bob,
    ):
        allowed = [
            await call(client, "limited", "echo", text="hi")
            for client in (alice_1, alice_2, alice_1)
        ]
        refused = await call(alice_2, "limited", "echo", text="one too many")
        bobs = await call(bob, "limited", "echo", text="mine")

    assert [result.is_error for result in allowed] == [False, False, False]
    assert refused.is_error
    assert "user 'alice' reached the limit of 3 calls a minute" in text(refused)
    assert "(mcpServers.limited.rate_limit)" in text(refused)
    assert "try again in" in text(refused)
    assert not bobs.is_error and text(bobs) == "mine"
    limited = [line for line in audited(cluster) if line["outcome"] == "limited"]
    assert [(line["event"], line["user"], line["group"]) for line in limited] == [
        ("tool_call", "alice", "limited")
    ]


@cluster_parts
async def test_a_tool_patterns_rate_limit_counts_on_top_of_the_groups(cluster):
    async with as_user(cluster.url, CAROL) as carol:
        first = await call(carol, "limited", "fail", message="as asked")
        second = await call(carol, "limited", "fail", message="again")
        other_tool = await call(carol, "limited", "echo", text="still fine")

    assert first.is_error and text(first).endswith("as asked")  # the tool's own failure
    assert second.is_error
    assert "reached the limit of 1 calls a minute" in text(second)
    assert "mcpServers.limited.tools.rate_limit['fai*']" in text(second)
    assert not other_tool.is_error


@cluster_parts
async def test_a_users_calls_at_once_are_capped_across_replicas_and_freed_when_one_ends(
    cluster, tmp_path
):
    first, second = (replica.url for replica in cluster.replicas)
    marker = tmp_path / "cancelled"
    async with (
        as_user(first, DAVE) as dave_1,
        as_user(second, DAVE) as dave_2,
        as_user(second, ERIN) as erin,
    ):

        async def wait_on_first() -> None:
            arguments = {"group": "waiting", "name": "wait", "args": {"marker": str(marker)}}
            with pytest.raises(MCPError):  # timed out: the client cancels it
                for _ in range(100):
                    waited = await dave_1.call_tool_mcp(
                        "call_dynamic_tool", arguments, timeout=GIVE_UP_AFTER
                    )
                    # Refused: a probe of dave's below held the one place at that moment.
                    assert "at once" in text(waited)
                    await anyio.sleep(0.05)

        async with anyio.create_task_group() as calls:
            calls.start_soon(wait_on_first)
            with anyio.fail_after(GIVE_UP_AFTER):
                refused = await call(dave_2, "waiting", "pid")
                while not refused.is_error:  # until the first call holds its place
                    await anyio.sleep(0.05)
                    refused = await call(dave_2, "waiting", "pid")
                erins = await call(erin, "waiting", "pid")
        with anyio.fail_after(WAIT):
            await until(marker.exists)  # the upstream saw the cancellation
            after = await call(dave_2, "waiting", "pid")
            while after.is_error and "at once" in text(after):  # its place is being given back
                await anyio.sleep(0.1)
                after = await call(dave_2, "waiting", "pid")

    assert "user 'dave' reached the limit of 1 call at once" in text(refused)
    assert "(mcpServers.waiting.max_concurrent_calls)" in text(refused)
    assert "try again when one of them has finished" in text(refused)
    assert not erins.is_error
    assert not after.is_error


async def test_without_a_store_one_users_calls_are_counted_in_the_process(tmp_path, connect):
    config = tmp_path / "dynamic-mcp.json"
    settings = {"rate_limit": "2 per minute"}
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}, "settings": settings}))
    client = await connect(config)
    results = [await call(client, "echo", "echo", text=str(n)) for n in range(3)]

    assert [result.is_error for result in results] == [False, False, True]
    assert text(results[2]).startswith(
        "Call to group 'echo' refused: this client reached the limit of 2 calls a minute "
        "(settings.rate_limit); try again in"
    )


def test_a_rate_that_is_not_one_is_a_config_error_naming_the_field(write_config):
    from groups.config import load_config
    from groups.errors import ConfigError

    config = write_config({"echo": stdio_entry(rate_limit="5 per fortnight")})
    with pytest.raises(ConfigError) as raised:
        load_config(config)

    assert "mcpServers.echo.rate_limit" in str(raised.value)
    assert "expected a rate such as '5/minute'" in str(raised.value)


# ---- 2. metrics and traces ----------------------------------------------------------------


def scraped(url: str, **headers: str) -> httpx2.Response:
    return httpx2.get(url.removesuffix("/mcp") + "/metrics", headers=headers, timeout=WAIT)


def sample(exposition: str, name: str) -> float:
    """The value of the sample `name{labels}` in a Prometheus text exposition (0: none)."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@cluster_parts
async def test_each_replica_counts_calls_per_group_and_tool_never_per_user(cluster):
    first = cluster.replicas[0]
    ok = 'dynamic_mcp_tool_calls_total{group="limited",outcome="ok",tool="echo"}'
    unknown = 'dynamic_mcp_expansions_total{group="",outcome="unknown"}'
    before = scraped(first.url).text
    async with as_user(first.url, FRANK) as frank:
        await call(frank, "limited", "echo", text="counted")
        await call(frank, "limited", "echo", text="counted again")
        await frank.call_tool_mcp("get_dynamic_tools", {"group": "no-such-group"})
        program = 'await call_tool("limited", "echo", {"text": "from code"})'
        await frank.call_tool_mcp("run_dynamic_code", {"code": program})
    after = scraped(first.url)

    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    assert sample(after.text, ok) == sample(before, ok) + 3  # the program's call too
    code_runs = 'dynamic_mcp_code_runs_total{outcome="ok"}'
    assert sample(after.text, code_runs) == sample(before, code_runs) + 1
    assert "dynamic_mcp_code_run_duration_seconds_count" in after.text
    assert sample(after.text, unknown) == sample(before, unknown) + 1  # no label made of it
    assert 'dynamic_mcp_tool_call_duration_seconds_count{group="limited",tool="echo"}' in after.text
    assert 'dynamic_mcp_upstream_processes{group="limited"}' in after.text
    assert "dynamic_mcp_open_sessions" in after.text
    assert "process_resident_memory_bytes" in after.text
    assert "frank" not in after.text and "no-such-group" not in after.text


@cluster_parts
def test_metrics_through_the_balancer_need_their_own_token(cluster):
    anonymous = scraped(cluster.url)
    users_token = scraped(cluster.url, Authorization=f"Bearer {ALICE}")
    metrics_token = scraped(cluster.url, Authorization=f"Bearer {METRICS_TOKEN}")

    assert anonymous.status_code == 401 and METRICS_TOKEN_ENV_VAR in anonymous.json()["error"]
    assert users_token.status_code == 401
    assert metrics_token.status_code == 200 and "dynamic_mcp_tool_calls_total" in metrics_token.text


class OtlpReceiver:
    """A real OTLP/HTTP trace receiver on loopback: the spans the exporter sent it."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: list[dict[str, Any]] = []
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    service = {
                        kv.key: kv.value.string_value for kv in resource_spans.resource.attributes
                    }["service.name"]
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            attributes = {kv.key: kv.value.string_value for kv in span.attributes}
                            received.append(
                                {
                                    "name": span.name,
                                    "service": service,
                                    "trace": span.trace_id.hex(),
                                    "id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                    "attributes": attributes,
                                }
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1/traces"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def traced_upstream() -> Iterator[str]:
    yield from serve_echo("http", script=UPSTREAMS / "traced.py")


async def test_spans_go_under_the_clients_trace_and_the_http_upstream_joins_it(
    tmp_path, otlp, traced_upstream
):
    config = tmp_path / "dynamic-mcp.json"
    servers = {"traced": {"description": "Says its trace", "url": traced_upstream}}
    config.write_text(json.dumps({"mcpServers": servers, "settings": {"start_on_expand": False}}))
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": ALICE}))
    users.chmod(0o600)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DYNAMIC_MCP_"))},
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.url,
        "OTEL_SERVICE_NAME": "gateway-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: sent soon, not every 5 s
    }
    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    meta = {"traceparent": f"00-{client_trace}-{client_span}-01"}
    with serving_http(config, "--users", str(users), env=env) as (url, _):
        async with as_user(url, ALICE) as alice:
            await alice.call_tool_mcp("get_dynamic_tools", {"group": "traced"}, meta=meta)
            arguments = {"group": "traced", "name": "traceparent", "args": {}}
            answer = await alice.call_tool_mcp("call_dynamic_tool", arguments, meta=meta)
        forwarded = scraped(url, **{"X-Forwarded-For": "203.0.113.9"})  # no token configured
        with anyio.fail_after(WAIT):
            await until(
                lambda: (
                    {"dynamic-mcp call traced.traceparent", "dynamic-mcp upstream start traced"}
                    <= {span["name"] for span in otlp.spans}
                )
            )
    spans = {span["name"]: span for span in otlp.spans}
    call_span = spans["dynamic-mcp call traced.traceparent"]
    _, upstream_trace, upstream_parent, _ = text(answer).split("-")

    assert call_span["service"] == "gateway-under-test"
    fastmcps = next(span for span in otlp.spans if span["id"] == call_span["parent"])
    assert call_span["trace"] == client_trace
    assert fastmcps["name"] == "tools/call" and fastmcps["parent"] == client_span  # ours on top
    assert call_span["attributes"] == {
        "dynamic_mcp.group": "traced",
        "gen_ai.tool.name": "traceparent",
        "enduser.id": "alice",
    }
    assert spans["dynamic-mcp expand traced"]["trace"] == client_trace
    assert spans["dynamic-mcp upstream start traced"]["trace"] == client_trace
    sent = next(span for span in otlp.spans if span["id"] == upstream_parent)
    assert upstream_trace == client_trace
    assert sent["name"] == "MCP send tools/call traceparent" and sent["parent"] == call_span["id"]
    assert forwarded.status_code == 403 and METRICS_TOKEN_ENV_VAR in forwarded.json()["error"]
