"""The systems measured, each behind one small harness with the same five operations.

    harness = System.by_name("dynamic-mcp").harness(config_path, servers)
    await harness.start()                      # spawn + initialize (nothing else)
    tools = await harness.visible_tools()      # what the model sees every turn
    text = await harness.expand("time")        # one group's tools
    result = await harness.call("time", "get_current_time", {...})
    await harness.close()                      # stdin closed; returns seconds until all gone

`direct` is the baseline: the client connects to every upstream itself. A system whose
program is missing is skipped with the reason, never silently.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from bench import tokens

REPO = Path(__file__).resolve().parent.parent
INIT_TIMEOUT = 120.0  # the Rust original starts every upstream before it answers
SHUTDOWN_WAIT = 15.0  # seconds to wait for every process to go after stdin closes


@dataclass(frozen=True)
class System:
    """How to start one proxy (or none, for direct) and what its meta-tools are called."""

    name: str
    command: tuple[str, ...]  # the proxy's command line before the config path; () = direct
    get_tools: str = "get_dynamic_tools"
    call_tool: str = "call_dynamic_tool"

    def unavailable(self) -> str | None:
        """Why this system cannot run here, or None."""
        if self.command and shutil.which(self.command[0]) is None:
            return f"`{self.command[0]}` is not installed"
        return None

    def harness(
        self, config: Path, servers: dict[str, Any], env: dict[str, str] | None = None
    ) -> Harness:
        if not self.command:
            return DirectHarness(servers)
        return ProxyHarness(self, config, env)


def _dmcp() -> tuple[str, ...]:
    """The Rust dynamic-mcp: an installed `dmcp`, else uv's tool directory."""
    found = shutil.which("dmcp") or str(Path.home() / ".local" / "bin" / "dmcp")
    return (found,) if Path(found).exists() else ("dmcp",)


SYSTEMS = {
    "direct": System("direct", ()),
    "dynamic-mcp": System("dynamic-mcp", (sys.executable, "-m", "server")),
    "dmcp": System("dmcp", _dmcp()),
    "modular-mcp": System(
        "modular-mcp",
        ("npx", "-y", "@kimuson/modular-mcp"),
        get_tools="get-modular-tools",
        call_tool="call-modular-tool",
    ),
}


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


class Harness:
    """Common bookkeeping: the processes this system started, and their memory."""

    def __init__(self) -> None:
        self._before: set[int] = set()
        self.pids: set[int] = set()

    def track(self) -> None:
        self.pids |= descendants() - self._before

    def rss_mb(self) -> float:
        self.track()
        total = 0
        for pid in self.pids:
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 1e6

    def upstream_count(self, proxy: bool) -> int:
        """Live processes started, less the proxy itself (and npx/uvx launchers count)."""
        self.track()
        alive = [pid for pid in self.pids if psutil.pid_exists(pid)]
        return max(0, len(alive) - (1 if proxy else 0))

    def wait_all_gone(self) -> float:
        start = time.perf_counter()
        processes = []
        for pid in self.pids:
            try:
                processes.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(processes, timeout=SHUTDOWN_WAIT)
        for process in alive:  # ours to end: we started it for this measurement
            process.kill()
        return time.perf_counter() - start if not alive else float("nan")


class ProxyHarness(Harness):
    def __init__(self, system: System, config: Path, env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.system = system
        self.config = config
        self.env = {**os.environ, **(env or {})}
        self.client: Client | None = None
        # dynamic-mcp keeps a schema catalog there: each run starts with none, unless the
        # workload gives a home on purpose (the warm-catalog figure), and the user's own
        # ~/.dynamic-mcp is never read or written.
        self._home: tempfile.TemporaryDirectory[str] | None = None
        if env is None or "DYNAMIC_MCP_HOME" not in env:
            self._home = tempfile.TemporaryDirectory(prefix="bench-home-")
            self.env["DYNAMIC_MCP_HOME"] = self._home.name

    async def start(self) -> None:
        self._before = descendants()
        command, *args = self.system.command
        transport = StdioTransport(
            command,
            [*args, str(self.config)],
            env=self.env,
            cwd=str(REPO),
            keep_alive=False,
        )
        self.client = Client(transport, init_timeout=INIT_TIMEOUT, timeout=120, mode="legacy")
        await self.client.__aenter__()
        self.track()

    async def visible_tools(self) -> list[mcp_types.Tool]:
        return await self.client.list_tools()

    async def expand(self, group: str) -> str:
        result = await self.client.call_tool_mcp(self.system.get_tools, {"group": group})
        text = "".join(getattr(block, "text", "") for block in result.content)
        if result.is_error:
            raise RuntimeError(f"{self.system.name}: expanding {group}: {text[:200]}")
        return text

    async def call(self, group: str, tool: str, args: dict[str, Any]) -> mcp_types.CallToolResult:
        payload = {"group": group, "name": tool, "args": args}
        return await self.client.call_tool_mcp(self.system.call_tool, payload)

    async def close(self) -> float:
        self.track()
        await self.client.__aexit__(None, None, None)
        gone = await anyio.to_thread.run_sync(self.wait_all_gone)
        if self._home is not None:
            self._home.cleanup()
        return gone


class DirectHarness(Harness):
    """The client holds one connection per upstream, as without any proxy."""

    def __init__(self, servers: dict[str, Any]) -> None:
        super().__init__()
        self.servers = servers
        self.clients: dict[str, Client] = {}

    async def start(self) -> None:
        self._before = descendants()

        async def connect(name: str, entry: dict[str, Any]) -> None:
            transport = StdioTransport(
                entry["command"],
                entry.get("args", []),
                env={**os.environ, **entry.get("env", {})},
                keep_alive=False,
            )
            client = Client(transport, init_timeout=INIT_TIMEOUT, timeout=120, mode="legacy")
            await client.__aenter__()
            self.clients[name] = client

        async with anyio.create_task_group() as tasks:
            for name, entry in self.servers.items():
                tasks.start_soon(connect, name, entry)
        self.track()

    async def visible_tools(self) -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        for client in self.clients.values():
            tools += await client.list_tools()
        return tools

    async def group_tools(self, group: str) -> list[mcp_types.Tool]:
        return await self.clients[group].list_tools()

    async def expand(self, group: str) -> str:
        """Direct has no expansion: the model gets every tool of the group as listed."""
        return tokens.listing(await self.group_tools(group))

    async def call(self, group: str, tool: str, args: dict[str, Any]) -> mcp_types.CallToolResult:
        return await self.clients[group].call_tool_mcp(tool, args)

    async def close(self) -> float:
        self.track()
        for client in self.clients.values():
            await client.close()  # connected from other tasks, so closed outright
        return await anyio.to_thread.run_sync(self.wait_all_gone)
