"""Call cost measured on the wire: raw JSON-RPC over stdio pipes, no MCP client library.

    async with WireClient([sys.executable, "-m", "server", str(config)]) as client:
        result = await client.call("call_dynamic_tool", {"group": "g0", "name": "echo", ...})

A client library adds its own cost to every call (validation, tasks, callbacks), the same
for every system, which hides how much the proxy itself costs. This client writes a line,
reads a line: what remains is the upstream, the proxy, and the pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

import psutil

from bench.measure import READY_POLL, READY_WAIT
from bench.systems import REPO, System

__all__ = ["WireClient", "proxy_calls", "wire_calls"]

WARM_UP = 20  # calls per group before measuring: imports, caches and first spawns done
ANSWER_WAIT = 60.0  # seconds one request may take before the run fails
LINE_LIMIT = 64 * 1024 * 1024
END_GRACE = 3.0  # seconds a process left behind gets, after its launcher exits, per signal
BURSTS = 5  # bursts of 50 concurrent calls; one burst alone is mostly the machine's noise


class WireClient:
    """One MCP server process, spoken to in JSON-RPC lines over its stdin and stdout."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def __aenter__(self) -> WireClient:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=REPO,
            limit=LINE_LIMIT,
        )
        self._reader = asyncio.create_task(self._read())
        await self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench-wire", "version": "1"},
            },
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.process.stdin is not None
        # Looked up while they run: a launcher (npx) may exit and leave its server behind
        # (modular-mcp outlives a closed stdin), with the upstreams it started.
        tree = psutil.Process(self.process.pid).children(recursive=True)
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()  # ours: we started it for this measurement
        self._reader.cancel()
        await asyncio.to_thread(_end, tree)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        answer = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = answer
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        message = await asyncio.wait_for(answer, ANSWER_WAIT)
        if "result" not in message:
            raise RuntimeError(f"{method} failed: {message.get('error')}")
        return message["result"]

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            raise RuntimeError(f"{tool} answered isError: {result['content']}")
        return result

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            waiting = self._waiting.pop(message.get("id"), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)


def _end(processes: list[psutil.Process]) -> None:
    """End what is left of processes this measurement started: politely, then not."""
    _, alive = psutil.wait_procs(processes, timeout=END_GRACE)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=END_GRACE)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


async def wire_calls(system: System, servers: dict[str, Any], config: Any, calls: int) -> dict:
    """p50 of `calls` sequential echo calls, and 50 concurrent ones over every group."""
    groups = list(servers)
    if not system.command:
        return await _direct(servers, calls)
    async with WireClient([*system.command, str(config)]) as proxy:
        return await proxy_calls(proxy, system, groups, calls)


async def proxy_calls(proxy: WireClient, system: System, groups: list[str], calls: int) -> dict:
    """`wire_calls` through a proxy already running: every group expanded, warmed, measured."""
    for group in groups:
        await _expand_when_ready(proxy, system, group)

    async def echo(group: str, text: str) -> None:
        args = {"group": group, "name": "echo", "args": {"text": text}}
        await proxy.call(system.call_tool, args)

    for group in groups:
        for _ in range(WARM_UP):
            await echo(group, "warm")
    return await _measured(echo, groups, calls, psutil.Process(proxy.pid))


async def _expand_when_ready(proxy: WireClient, system: System, group: str) -> None:
    """Expand a group, asking again while it is not up yet (dmcp connects in the background)."""
    deadline = time.perf_counter() + READY_WAIT
    while True:
        try:
            await proxy.call(system.get_tools, {"group": group})
            return
        except RuntimeError:
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(READY_POLL)


async def _direct(servers: dict[str, Any], calls: int) -> dict[str, Any]:
    clients = [WireClient([entry["command"], *entry["args"]]) for entry in servers.values()]
    for client in clients:
        await client.__aenter__()
    try:
        by_group = dict(zip(servers, clients, strict=True))

        async def echo(group: str, text: str) -> None:
            await by_group[group].call("echo", {"text": text})

        for group in by_group:
            for _ in range(WARM_UP):
                await echo(group, "warm")
        return await _measured(echo, list(by_group), calls, None)
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)


async def _measured(echo: Any, groups: list[str], calls: int, proxy: psutil.Process | None) -> dict:
    cpu_before = sum(proxy.cpu_times()[:2]) if proxy else 0.0
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await echo(groups[0], "x")
        samples.append((time.perf_counter() - started) * 1000)
    cpu_ms = (sum(proxy.cpu_times()[:2]) - cpu_before) * 1000 / calls if proxy else 0.0
    bursts = []
    for _ in range(BURSTS):
        started = time.perf_counter()
        await asyncio.gather(*(echo(groups[i % len(groups)], str(i)) for i in range(50)))
        bursts.append((time.perf_counter() - started) * 1000)
    return {
        "wire_p50_ms": statistics.median(samples),
        "wire_proxy_cpu_ms": cpu_ms,
        "wire_concurrent_ms": statistics.median(bursts),
    }
