"""One program of `run_dynamic_code`, from its code to its result, on behalf of its caller.

    runner = CodeRunner(meta_tools.call, redactor)   # `call`: call_dynamic_tool's own path
    ran = await runner.run("return await call_tool('time', 'get_current_time', "
                           "{'timezone': 'UTC'})", caller, settings.code_limits)
    ran.result, ran.calls                           # CodeRunError when it gave no value
    await runner.aclose()

Guarantees:
- every `await call_tool(group, name, args)` of the program is one call down the path of
  `call_dynamic_tool` (`MetaTools.call`, marked `via="code"`), as the program's caller:
  the same access rules, filters, limits, time limits, retries, audit and callbacks;
  only the groups the program calls are started;
- an `isError` result, or a refusal (an unknown group, a hidden tool, a limit), raises
  `ToolCallFailed` (a `RuntimeError`) in the program, naming the call, for the program to
  catch or not;
- the run ends, with a `CodeRunError` naming the setting, at the call past `max_calls`
  (however the program handles it), and when `timeout` has passed since it started, waits
  on upstreams and for a free worker included; the worker's own limits end it the same
  way (`groups.code.sandbox`); a user runs at most `max_concurrent_runs` programs at once;
- a `CodeRunError` lists the calls the program made, in order, with their outcome.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import mcp_types

from groups.code.results import Kept, error_text, sandbox_value, value_result
from groups.code.sandbox import Printed, Sandbox, SandboxError
from groups.errors import CodeRunError

if TYPE_CHECKING:
    from groups.config import CodeSettings
    from groups.secrets import Redactor
    from groups.upstream.callers import Caller

__all__ = ["CodeRunner", "Ran", "ToolCall", "ToolCallFailed"]

CALLS_LISTED = 20  # in an error: the calls made, in order, this many kinds at most


class ToolCall(Protocol):
    """`MetaTools.call`: one tool call down call_dynamic_tool's path, audited as `via`."""

    def __call__(
        self,
        group: str,
        name: str,
        args: dict[str, Any],
        caller: Caller | None,
        *,
        via: str | None = None,
    ) -> Awaitable[mcp_types.CallToolResult]: ...


class ToolCallFailed(RuntimeError):
    """Raised in the program for a call whose result is an error (the sandbox shows it as
    a RuntimeError: it knows the built-in exception types only)."""


@dataclass(frozen=True)
class Ran:
    """A program that gave a value: the result the model gets, and how many calls it made."""

    result: mcp_types.CallToolResult
    calls: int


class CodeRunner:
    """Runs programs in one sandbox for every caller, each under its caller's limits."""

    def __init__(self, call: ToolCall, redactor: Redactor) -> None:
        self._call = call
        self._redactor = redactor
        self.sandbox = Sandbox()
        self._running: Counter[str | None] = Counter()  # runs under way, by user name

    def __repr__(self) -> str:
        return f"CodeRunner({self.sandbox!r}, {self._running.total()} running)"

    async def run(self, code: str, caller: Caller | None, limits: CodeSettings) -> Ran:
        """Run `code` for `caller`: its value, what it printed, the blocks it returned.

        Raises:
            CodeRunError: the program raised, is not Python, a limit stopped it, its value
                is too large, or its user has `max_concurrent_runs` programs running.
        """
        user = caller.user.name if caller is not None and caller.user is not None else None
        if self._running[user] >= limits.max_concurrent_runs:
            whose = f"user {user!r}" if user is not None else "this client"
            raise CodeRunError(
                f"{whose} has {limits.max_concurrent_runs} programs running already "
                "(settings.code.max_concurrent_runs); run this one when one has finished",
                setting="settings.code.max_concurrent_runs",
            )
        self._running[user] += 1
        try:
            return await self._run(code, _Program(self._call, caller, limits))
        finally:
            self._running[user] -= 1

    async def _run(self, code: str, program: _Program) -> Ran:
        limits, printed = program.limits, Printed(int(program.limits.max_printed))
        functions = {"call_tool": program.call_tool}
        failure: SandboxError | None = None
        value: Any = None
        with anyio.move_on_after(limits.timeout.total_seconds()) as wall, program.stop:
            try:
                value = await self.sandbox.run(code, functions, limits, printed)
            except SandboxError as exc:
                failure = exc
        if program.stopped:
            raise program.error(
                f"stopped at its call number {limits.max_calls + 1}: settings.code.max_calls "
                f"allows {limits.max_calls} calls a run",
                "max_calls",
                printed,
            )
        if wall.cancelled_caught:
            raise program.error(
                f"stopped after {limits.timeout.total_seconds():g}s, settings.code.timeout "
                "(the whole run, waits on upstreams included)",
                "timeout",
                printed,
            )
        if failure is not None:
            problem = failure.problem
            if failure.limit is not None:
                problem = f"stopped by settings.code.{failure.limit}: {problem}"
            raise program.error(problem, failure.limit, printed, failure.traceback)
        try:
            result = value_result(
                value,
                printed.text(),
                program.kept,
                max_result=int(limits.max_result),
                redactor=self._redactor,
            )
        except CodeRunError as exc:
            raise program.error(exc.problem, "max_result", printed) from None
        return Ran(result, len(program.calls))

    async def aclose(self) -> None:
        await self.sandbox.aclose()


@dataclass
class _Program:
    """The host side of one run: its calls, the blocks they returned, whether it was stopped."""

    _call: ToolCall
    caller: Caller | None
    limits: CodeSettings
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # group, tool, outcome
    kept: Kept = field(default_factory=Kept)
    started: int = 0  # calls begun, ended or not
    stopped: bool = False  # a call past max_calls: the run ends, whatever the program does
    stop: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    async def call_tool(self, group: Any, name: Any, args: Any = None) -> Any:
        """The program's `call_tool(group, name, args)`: the result's value, or raises."""
        if not isinstance(group, str) or not isinstance(name, str):
            raise TypeError("call_tool(group, name, args): group and name are strings")
        if args is not None and not isinstance(args, dict):
            raise TypeError(f"call_tool({group!r}, {name!r}, args): args is a dict")
        self.started += 1
        if self.started > self.limits.max_calls:
            self.stopped = True
            self.stop.cancel()
            raise ToolCallFailed(f"settings.code.max_calls: {self.limits.max_calls} calls a run")
        result = await self._call(group, name, args or {}, self.caller, via="code")
        self.calls.append((group, name, "error" if result.is_error else "ok"))
        if result.is_error:
            raise ToolCallFailed(f"call_tool({group!r}, {name!r}) failed: {error_text(result)}")
        return sandbox_value(result, self.kept)

    def error(
        self, problem: str, limit: str | None, printed: Printed, traceback: str = ""
    ) -> CodeRunError:
        """The run's failure, with the calls it made and what it printed."""
        return CodeRunError(
            problem,
            traceback=traceback,
            calls=_listed(self.calls),
            printed=printed.text(),
            setting=f"settings.code.{limit}" if limit is not None else None,
        )


def _listed(calls: list[tuple[str, str, str]]) -> list[str]:
    """`group.tool (outcome)` per run of equal calls, `(outcome, n times)` for several:
    the first `CALLS_LISTED` runs, then how many more calls."""
    runs = [(key, len(list(same))) for key, same in itertools.groupby(calls)]
    listed = [
        f"{group}.{tool} ({outcome}" + (f", {count} times)" if count > 1 else ")")
        for (group, tool, outcome), count in runs[:CALLS_LISTED]
    ]
    rest = sum(count for _, count in runs[CALLS_LISTED:])
    if rest:
        listed.append(f"and {rest} more")
    return listed
