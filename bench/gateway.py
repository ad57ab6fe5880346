"""The team gateway under load: K users x M calls through HAProxy to 1 and to 2 replicas.

    uv run python -m bench.gateway --users 10 --calls 20 --replicas 1,2
    uv run python -m bench.gateway --users 50 --clients legacy --output /tmp/gateway.json
    uv run python -m bench.gateway --users 100 --replicas 2 --clients modern --operations off,on

For each replica count and each client kind, a fresh cluster (bench/cluster.py: a real
redis-server as the store, the replicas with a users file, HAProxy in round-robin) in
front of one synthetic stdio group, driven by FastMCP's `Client` over streamable HTTP, each
user with a bearer token of their own:

1. Primed: a user of its own expands the group and calls it on every replica directly, so
   the shared upstream of each replica is running and nothing below pays its start.
2. Memory per idle user: the replicas' RSS (their own processes, not the upstream they
   share) before the K users connect, and after each has connected, made a few calls
   (one after another, so round-robin takes each user to every replica) and gone idle;
   the difference over K, summed over the replicas: what the gateway keeps per user.
3. The timed part: the K users at once, each making M sequential `echo` calls through the
   balancer. Calls per second over the whole burst, p50 and p95 of a call, Redis commands
   (INFO commandstats before and after) per call, and CPU per call of the replicas and of
   this process (the clients), which tell where two cores went.

`--operations off,on` measures what running it costs: "off" is the gateway with
`settings.http.metrics` false and no audit log or limits; "on" writes an audit log, counts
for /metrics, and holds every call to a rate limit and a concurrency cap per user in
Redis (set far above what the burst reaches: counted, never refused). Each row also
times, in this process, what audit + metrics add to one call (`audit_metrics_us`).

"modern" is a 2026-07-28 client (no session: every request stands alone); "legacy" a
client with the initialize handshake and an `Mcp-Session-Id` that any replica takes up.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import psutil
from cyclopts import App
from fastmcp import Client
from fastmcp.client.auth import BearerAuth
from mcp.shared.exceptions import MCPError

from bench.cluster import Cluster, missing_parts, redis_commands
from bench.measure import synthetic_servers

app = App(name="bench.gateway", help=__doc__)

MODES = {"modern": "2026-07-28", "legacy": "legacy"}
WAIT = 60.0  # seconds a connect or call may take: a first call starts the upstream
GROUP = "syn00"  # the one synthetic group of synthetic_servers(1)
PRIMER = "bench-primer"  # the user that starts every replica's upstream, outside the figures
SETTLE = 1.0  # seconds of quiet before idle memory is read: streams and buffers settle
WARM_UP_ROUNDS = 2  # calls per replica per user before idle: each user reaches every replica
# The settings of each `--operations` choice: limits far above what a burst reaches.
OPERATIONS = {
    "off": {"http": {"metrics": False}},
    "on": {"audit_log": "audit.jsonl", "rate_limit": "1000000/minute", "max_concurrent_calls": 64},
}


@app.default
def gateway(
    *,
    users: int = 10,
    calls: int = 20,
    rounds: int = 3,
    replicas: str = "1,2",
    clients: str = "modern,legacy",
    operations: str = "off",
    output: Path | None = None,
) -> None:
    """Measure the gateway with `users` users making `calls` calls each; print a table.

    Parameters
    ----------
    users
        K: users connected at once, each with their own token.
    calls
        M: sequential calls each user makes in the timed part.
    rounds
        Timed bursts on each cluster; each figure is their median.
    replicas
        Comma-separated replica counts; each gets fresh clusters.
    clients
        Comma-separated client kinds: modern (2026-07-28), legacy (Mcp-Session-Id).
    operations
        Comma-separated: off (no audit, metrics or limits), on (all three).
    output
        Also write every figure there as JSON.
    """
    missing = missing_parts()
    if missing is not None:
        sys.exit(f"bench.gateway cannot run here: {missing}")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    rows = []
    for count in [int(n) for n in replicas.split(",")]:
        for kind in clients.split(","):
            for ops in operations.split(","):
                said = f"{count} replica(s), {kind} clients, operations {ops}"
                sys.stderr.write(f"{said}: {users} x {calls}\n")
                figures = run_cluster(count, kind, ops, users, calls, rounds)
                sys.stderr.write(f"  {json.dumps(figures)}\n")
                rows.append(figures)
    if output is not None:
        output.write_text(json.dumps({"load": load, "rows": rows}, indent=2))
    print(table(rows, users, calls, load))


def run_cluster(
    count: int, kind: str, ops: str, users: int, calls: int, rounds: int
) -> dict[str, Any]:
    """One fresh cluster of `count` replicas, measured with `users` clients of `kind`,
    audit, metrics and limits `ops` ("on" or "off")."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        folder = Path(scratch)
        config = folder / "dynamic-mcp.json"
        settings = OPERATIONS[ops]
        config.write_text(json.dumps({"mcpServers": synthetic_servers(1), "settings": settings}))
        tokens = {f"user{n:03d}": secrets.token_urlsafe(24) for n in range(users)}
        primer = secrets.token_urlsafe(24)
        users_file = folder / "users.json"
        # As an operator would keep them: hashed, and private (a shared file is refused).
        hashed = {name: _sha256(token) for name, token in {**tokens, PRIMER: primer}.items()}
        users_file.write_text(json.dumps(hashed))
        users_file.chmod(0o600)
        with Cluster(folder, config, users_file, replicas=count) as cluster:
            timed = (calls, rounds)
            figures = anyio.run(measure, cluster, primer, list(tokens.values()), kind, timed)
            _say("stopping the cluster")
    cost = audit_metrics_cost() if ops == "on" else 0.0
    return {
        "replicas": count,
        "clients": kind,
        "operations": ops,
        **figures,
        "audit_metrics_us": cost,
    }


def audit_metrics_cost(events: int = 20_000) -> float:
    """Microseconds that audit + metrics add to one call, timed here on the replicas' code:
    a tool call's audit line written to a file and its counters and histogram moved."""
    from groups.access import User
    from groups.serving.audit import audit
    from groups.serving.metrics import metrics

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as scratch:
        metrics.start(is_group=lambda name: name == GROUP, open_sessions=lambda: 0, processes=dict)
        audit.open(str(Path(scratch) / "audit.jsonl"), replica="bench")
        user, started = User("user000"), time.monotonic()
        began = time.process_time()
        for _ in range(events):
            audit.record(
                "tool_call", user=user, outcome="ok", started=started, group=GROUP, tool="echo"
            )
        spent = time.process_time() - began
        audit.close()  # the writing thread's lines are flushed, its CPU counted above
        metrics.stop()
    return spent / events * 1e6


def _sha256(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


async def measure(
    cluster: Cluster, primer: str, tokens: list[str], kind: str, timed: tuple[int, int]
) -> dict[str, Any]:
    """Prime every replica, then idle memory per user, then the timed bursts: `timed` is
    (calls per user in a burst, bursts)."""
    calls, rounds = timed
    _say("priming every replica")
    for replica in cluster.replicas:
        # Always a modern client: it starts the replica's shared upstream and leaves no
        # session behind whose processes would still be ending when memory is read.
        async with _client(replica.url, primer, "modern") as client:
            await client.call_tool_mcp("get_dynamic_tools", {"group": GROUP})
            await _warm(client)
    async with AsyncExitStack() as stack:
        before = _memory(cluster)
        _say(f"connecting {len(tokens)} users")
        started = time.perf_counter()
        connected = []
        for token in tokens:  # one at a time, so round-robin alternates each user's calls
            client = await stack.enter_async_context(_client(cluster.url, token, kind))
            for _ in range(WARM_UP_ROUNDS * len(cluster.replicas)):
                await _warm(client)
            connected.append(client)
        connecting = time.perf_counter() - started
        await anyio.sleep(SETTLE)
        idle = _memory(cluster)
        bursts = []
        for round_ in range(rounds):
            _say(f"{len(tokens)} users x {calls} calls, round {round_ + 1} of {rounds}")
            bursts.append(await timed_calls(cluster, connected, calls))
        figures = median_of(bursts)
        _say("closing the clients")
    users = len(tokens)
    return figures | {
        "connect_s_per_user": connecting / users,
        "rss_per_idle_user_kb": (idle[0] - before[0]) / users / 1024,
        "rss_with_upstreams_per_idle_user_mb": (idle[1] - before[1]) / users / 2**20,
        "upstreams_per_idle_user": (idle[2] - before[2]) / users,
        "replicas_rss_mb": idle[0] / 2**20,
    }


def _say(step: str) -> None:
    """Each step on stderr as it begins, so a slow or stuck step shows itself."""
    sys.stderr.write(f"  {time.strftime('%H:%M:%S')} {step}\n")


def _client(url: str, token: str, kind: str) -> Client:
    return Client(url, auth=BearerAuth(token), mode=MODES[kind], init_timeout=WAIT, timeout=WAIT)


async def _echo(client: Client, text: str) -> bool:
    """One call through the gateway; whether it came back right."""
    args = {"group": GROUP, "name": "echo", "args": {"text": text}}
    result = await client.call_tool_mcp("call_dynamic_tool", args)
    return not result.is_error and result.content[0].text == text


async def _warm(client: Client) -> None:
    """A call before the measurements: one that fails would leave every figure after it
    measuring a gateway that is not serving, so the run stops here instead."""
    if not await _echo(client, "warm-up"):
        raise RuntimeError("a warm-up call through the gateway failed; see the replica logs")


async def timed_calls(cluster: Cluster, clients: list[Client], calls: int) -> dict[str, Any]:
    """Every client at once, `calls` sequential calls each; what the burst cost."""
    latencies: list[float] = []
    wrong = 0
    refused: Counter[str] = Counter()  # what the gateway answered instead, by message

    async def user(client: Client, index: int) -> None:
        nonlocal wrong
        for call in range(calls):
            started = time.perf_counter()
            try:
                right = await _echo(client, f"u{index}c{call}")
            except MCPError as exc:  # an HTTP error from the gateway: counted, not fatal
                refused[str(exc)] += 1
                right = False
            latencies.append(time.perf_counter() - started)
            wrong += not right

    with cluster.redis.client() as redis_client:  # one connection: its HELLO counted before
        commands_before, by_name_before = redis_commands(redis_client), _by_name(redis_client)
        cpu_before = _cpu(cluster)
        started = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for index, client in enumerate(clients):
                tasks.start_soon(user, client, index)
        elapsed = time.perf_counter() - started
        cpu = {name: spent - cpu_before[name] for name, spent in _cpu(cluster).items()}
        commands = redis_commands(redis_client) - commands_before
        by_name = _by_name(redis_client)
    total = len(latencies)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "calls": total,
        "wrong": wrong,
        "refused": dict(refused),
        "calls_per_s": total / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p95_ms": quantiles[94] * 1000,
        "redis_commands_per_call": commands / total,
        "redis_commands": {
            name: by_name[name] - by_name_before.get(name, 0)
            for name in by_name
            if by_name[name] != by_name_before.get(name, 0)
        },
        **{f"{name}_cpu_ms_per_call": spent / total * 1000 for name, spent in cpu.items()},
        "machine_busy": cpu["machine"] / elapsed / (psutil.cpu_count() or 1),
    }


def median_of(bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per measure over the bursts: the median, but counts of calls, wrong
    answers and Redis commands summed; calls per second of each burst kept too."""
    figures: dict[str, Any] = {}
    for key in bursts[0]:
        values = [burst[key] for burst in bursts]
        if key in ("calls", "wrong"):
            figures[key] = sum(values)
        elif key in ("redis_commands", "refused"):
            names = {name for counts in values for name in counts}
            figures[key] = {name: sum(counts.get(name, 0) for counts in values) for name in names}
        else:
            figures[key] = statistics.median(values)
    figures["calls_per_s_each"] = [burst["calls_per_s"] for burst in bursts]
    return figures


def _by_name(redis_client: Any) -> dict[str, int]:
    """Commands Redis has served, by command (INFO itself left out)."""
    stats = redis_client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): stat["calls"]
        for name, stat in stats.items()
        if name != "cmdstat_info"
    }


def _memory(cluster: Cluster) -> tuple[int, int, int]:
    """Bytes resident in the replica processes; in them and every upstream process they
    started; and how many upstream processes that is."""
    own = with_upstreams = upstreams = 0
    for replica in _live(cluster):
        process = psutil.Process(replica.process.pid)
        own += process.memory_info().rss
        children = process.children(recursive=True)
        with_upstreams += sum(child.memory_info().rss for child in children)
        upstreams += len(children)
    return own, own + with_upstreams, upstreams


def _cpu(cluster: Cluster) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the replicas, by the upstreams they
    started, by this process (the clients), and by the whole machine, others included."""
    replicas = upstreams = 0.0
    for replica in _live(cluster):
        process = psutil.Process(replica.process.pid)
        replicas += _seconds(process.cpu_times())
        upstreams += sum(_seconds(c.cpu_times()) for c in process.children(recursive=True))
    machine = psutil.cpu_times()
    # Linux counts guest time inside user time already; waiting is not being busy.
    left_out = ("idle", "iowait", "guest", "guest_nice")
    busy = sum(machine) - sum(getattr(machine, name, 0.0) for name in left_out)
    return {
        "replicas": replicas,
        "upstreams": upstreams,
        "clients": _seconds(psutil.Process().cpu_times()),
        "machine": busy,
    }


def _seconds(times: Any) -> float:
    return times.user + times.system


def _live(cluster: Cluster) -> list[Any]:
    return [r for r in cluster.replicas if r.process is not None and r.process.poll() is None]


def table(rows: list[dict[str, Any]], users: int, calls: int, load: str) -> str:
    """The figures as Markdown, with what they were measured on."""
    head = (
        f"{users} users x {calls} calls; load average before: {load}; "
        f"{psutil.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return "\n\n".join([head, _calls_table(rows), _cpu_table(rows), _memory_table(rows)])


def _calls_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| replicas | client | operations | calls/s | p50 | p95 | Redis commands per warm call "
        "| wrong |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['replicas']} | {row['clients']} | {row['operations']} "
            f"| {row['calls_per_s']:.0f} "
            f"| {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms "
            f"| {row['redis_commands_per_call']:.2f} | {row['wrong']}/{row['calls']} |"
        )
    return "\n".join(lines)


def _cpu_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| replicas | client | operations | CPU per call: replicas | of it, audit + metrics "
        "| their upstreams | the clients | machine busy during the calls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = row["audit_metrics_us"] / 1000 / row["replicas_cpu_ms_per_call"]
        lines.append(
            f"| {row['replicas']} | {row['clients']} | {row['operations']} "
            f"| {row['replicas_cpu_ms_per_call']:.2f} ms "
            f"| {row['audit_metrics_us']:.0f} µs ({share:.1%}) "
            f"| {row['upstreams_cpu_ms_per_call']:.2f} ms "
            f"| {row['clients_cpu_ms_per_call']:.2f} ms | {row['machine_busy']:.0%} |"
        )
    return "\n".join(lines)


def _memory_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| replicas | client | operations | connect + warm-up per user "
        "| RSS per idle user: replicas | with the upstreams it holds |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['replicas']} | {row['clients']} | {row['operations']} "
            f"| {row['connect_s_per_user']:.2f} s "
            f"| {row['rss_per_idle_user_kb']:.0f} KB "
            f"| {row['rss_with_upstreams_per_idle_user_mb']:.1f} MB "
            f"({row['upstreams_per_idle_user']:.1f} processes) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    app()
