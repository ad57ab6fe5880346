"""Where a program runs: a pool of pydantic-monty workers, one fresh session per program.

    sandbox = Sandbox()
    printed = Printed(limit=8192)
    value = await sandbox.run("await call_tool('time', 'now', {})", {"call_tool": call_tool},
                              limits, printed)      # SandboxError when the program fails
    await sandbox.aclose()                          # every worker process is gone

Monty is a Python interpreter of its own (in Rust), in worker processes of its own: the
program has no `open`, socket, subprocess or environment of the host's, only the host
functions it is given. FastMCP's `MontySandboxProvider` starts a pool for every run; this
keeps one, so a run finds a worker already started.

Guarantees:
- nothing starts before the first run; `aclose` ends every worker;
- a run's state never reaches the next: each run has a session of its own (a new
  interpreter in the worker: its globals, its heap, its clock of CPU time), and a worker
  is replaced after `RUNS_PER_WORKER` sessions, or at once when a run was cancelled
  (monty ends the worker of a cancelled feed);
- what the program prints reaches `printed` only, never this process's stdout (over
  stdio, the protocol's), and only up to its limit;
- the worker enforces `cpu_time`, `memory`, `recursion` and `sleep`; a program past one
  ends in a `SandboxError` naming the setting (`limit`); the number of calls and the
  wall time are the host's to bound (`groups.code.runner`);
- when a run ends, however it ends, every host function call it started has ended too
  (monty leaves them running: pydantic/monty#821), each cancelled if it had not.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio

if TYPE_CHECKING:
    import pydantic_monty

    from groups.config import CodeSettings

__all__ = ["RUNS_PER_WORKER", "HostFunction", "Printed", "Sandbox", "SandboxError"]

logger = logging.getLogger(__name__)

RUNS_PER_WORKER = 100  # a worker's own memory can only grow so far before it is replaced
# Monty counts each host round trip (a call, a sleep, a name looked up) against a budget
# per session and ends the run past it. Calls are counted by the host, with a clearer
# error; the budget is the backstop, with room for the sleeps and lookups beside them.
SUSPENSIONS_BESIDE_CALLS = 500
TRACEBACK_LINES = 12  # the end of a traceback: where it failed, and what

HostFunction = Callable[..., Awaitable[Any]]

# How the worker words each limit it enforces, and the setting behind it.
_LIMITS = {
    "feed time limit exceeded": "cpu_time",
    "memory limit exceeded": "memory",
    "maximum recursion depth exceeded": "recursion",
    "sleep limit exceeded": "sleep",
    "suspension limit": "max_calls",
}


class SandboxError(Exception):
    """The program did not finish with a value: it raised, was not Python, ran past a
    limit of the worker's (`limit`: its setting's name), or its worker died."""

    def __init__(self, problem: str, traceback: str = "", limit: str | None = None) -> None:
        self.problem = problem
        self.traceback = traceback
        self.limit = limit
        super().__init__(problem)


class Printed:
    """What a program printed, up to `limit` bytes; how much more there was."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0  # characters past the limit

    def __call__(self, stream: Literal["stdout", "stderr"], text: str) -> None:
        room = self.limit - self._size
        kept = text if len(text.encode()) <= room else _cut(text, room)
        self._parts.append(kept)
        self._size += len(kept.encode())
        self.dropped += len(text) - len(kept)

    def text(self) -> str:
        """The output kept, and a line saying how much was not."""
        shown = "".join(self._parts)
        if self.dropped:
            shown += f"\n… {self.dropped} more characters not shown (settings.code.max_printed)"
        return shown


class Sandbox:
    """A pool of monty workers, started at the first run and kept warm (one worker)."""

    def __init__(self) -> None:
        self._pool: pydantic_monty.AsyncMonty | None = None
        self._lock = anyio.Lock()  # two first runs start one pool

    def __repr__(self) -> str:
        return f"Sandbox({'running' if self._pool is not None else 'not started'})"

    async def run(
        self,
        code: str,
        functions: Mapping[str, HostFunction],
        limits: CodeSettings,
        printed: Printed,
    ) -> Any:
        """The value of `code` (a top-level `return`, else its last expression), run with
        `functions` as host functions it may call and await.

        Raises:
            SandboxError: the program raised, is not Python, ran past a limit of the
                worker's, or its worker died.
        """
        import pydantic_monty

        pool = await self._started()
        calls: set[asyncio.Task[Any]] = set()
        ended = False

        def tracked(function: HostFunction) -> HostFunction:
            async def call(*args: Any, **kwargs: Any) -> Any:
                if ended:  # queued by the worker's bridge before the run ended
                    raise asyncio.CancelledError
                task = asyncio.current_task()
                if task is not None:
                    calls.add(task)
                try:
                    return await function(*args, **kwargs)
                finally:
                    calls.discard(task)  # type: ignore[arg-type]

            return call

        try:
            async with pool.checkout(
                script_name="program.py",
                limits=_worker_limits(limits),
                # No cap on one sleep, which monty would shorten without a word: the
                # total (`max_total_sleep_secs`) refuses a sleep past it before it starts.
                os_policy={"sleep_system_max": math.inf},
            ) as session:
                return await session.feed_run(
                    code,
                    external_lookup={name: tracked(f) for name, f in functions.items()},
                    print_callback=printed,
                )
        except pydantic_monty.MontyError as exc:
            raise _sandbox_error(exc) from None
        finally:
            ended = True
            for task in list(calls):
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*calls, return_exceptions=True)

    async def _started(self) -> pydantic_monty.AsyncMonty:
        async with self._lock:
            if self._pool is None:
                import pydantic_monty

                pool = pydantic_monty.AsyncMonty(
                    min_processes=1, max_checkouts_per_worker=RUNS_PER_WORKER
                )
                await pool.__aenter__()
                self._pool = pool
            return self._pool

    async def aclose(self) -> None:
        """End every worker; a later run starts the pool again."""
        async with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                with anyio.CancelScope(shield=True):
                    await pool.__aexit__(None, None, None)


def _worker_limits(limits: CodeSettings) -> pydantic_monty.ResourceLimits:
    return {
        "max_feed_duration_secs": limits.cpu_time.total_seconds(),
        "max_memory": int(limits.memory),
        "max_recursion_depth": limits.recursion,
        "max_total_sleep_secs": limits.sleep.total_seconds(),
        "max_suspensions": limits.max_calls + SUSPENSIONS_BESIDE_CALLS,
    }


def _sandbox_error(exc: pydantic_monty.MontyError) -> SandboxError:
    """The monty error as the model reads it: what went wrong, where, which limit."""
    import pydantic_monty

    if isinstance(exc, pydantic_monty.MontyRuntimeError | pydantic_monty.MontySyntaxError):
        problem = exc.display("type-msg")
        lines = exc.display("traceback").splitlines()
        if lines and lines[-1] == problem:  # said first, once
            lines.pop()
        traceback = "\n".join(lines[-TRACEBACK_LINES:]) if len(lines) > 1 else ""
        if isinstance(exc, pydantic_monty.MontySyntaxError):
            problem = f"the program is not valid Python: {problem}"
        limit = next((name for text, name in _LIMITS.items() if text in problem), None)
        return SandboxError(problem, traceback, limit)
    if isinstance(exc, pydantic_monty.MontyCrashedError):
        logger.warning("a sandbox worker died: %s", exc)
        return SandboxError(f"the sandbox's worker died ({exc}); run the program again")
    return SandboxError(f"{type(exc).__name__}: {exc}")


def _cut(text: str, size: int) -> str:
    """The longest start of `text` within `size` bytes of UTF-8."""
    return text.encode()[: max(size, 0)].decode(errors="ignore")
