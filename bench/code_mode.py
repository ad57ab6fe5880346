"""Context tokens of multi-step tasks, with call_dynamic_tool and with run_dynamic_code.

    uv run python -m bench.code_mode                       # every task, Markdown tables
    uv run python -m bench.code_mode --tasks meetings --zones 10 --json
    uv run python -m bench.code_mode overhead --runs 5     # the sandbox's time (code_overhead)

The tasks are data ([code_tasks.py](code_tasks.py)): each one's calls, made one by one
with call_dynamic_tool, and its program, the same calls made by one run_dynamic_code.
Each way runs for real, through a fresh dynamic-mcp over stdio in front of the task's
published upstreams, and counts o200k tokens (`bench.tokens`) of what the model writes and
reads:

- `tools/list`: the meta-tools' listing, read on every turn;
- `expansions`: get_dynamic_tools of each group the task uses, and with code mode their
  `returns`; beside it the expansions with each tool's raw `outputSchema` instead, the
  alternative code mode avoids;
- `task`: every call's arguments and its result text, as they enter the context, one
  call at a time (call_dynamic_tool) or as one program and its value (run_dynamic_code);
- `read over the task`: the task's context so far, read again at each turn after a call,
  summed over the turns (listing and expansions left out);
- `read over the turns`: everything the model reads, summed over all its turns: at each
  one the listing and every call and result before it, the expansions' calls included,
  through the turn that reads the last result and writes the answer. The prompt and the
  answer are left out: the same both ways;
- `… independent calls at once`: the same, for a model that makes together the calls that
  need none of each other's results (`Step.at_once`), the expansions among them, so that
  a turn holds several calls.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from cyclopts import App

from bench.code_overhead import overhead
from bench.code_proxy import serve, text
from bench.code_tasks import Task, parsed, tasks
from bench.tokens import count

app = App(
    name="bench.code_mode", help="Context tokens of multi-step tasks, with and without code mode."
)
app.command(overhead)


@app.default
def main(*, tasks_: str = "all", zones: int = 5, json_: bool = False) -> None:
    """Run each task both ways and print the tokens.

    Parameters
    ----------
    tasks_
        Comma-separated: meetings, zones-memory, team-graph, weather; or all. The last two
        and zones-memory start npm servers with `npx -y`.
    zones
        How many time zones the zone tasks ask about, at most 10.
    json_
        Print the figures as JSON instead of tables.
    """
    known = tasks(zones)
    names = list(known) if tasks_ == "all" else [n.strip() for n in tasks_.split(",") if n]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown task {', '.join(unknown)}: choose from {', '.join(known)}")
    figures = anyio.run(measure_all, [known[name] for name in names])
    sys.stdout.write(
        json.dumps(figures, indent=2) + "\n"
        if json_
        else "\n".join(table(name, one) for name, one in figures["tasks"].items())
    )


async def measure_all(chosen: list[Task]) -> dict[str, Any]:
    return {"tasks": {task.name: await measure(task) for task in chosen}}


async def measure(task: Task) -> dict[str, Any]:
    """The tokens of `task` done with call_dynamic_tool, and with run_dynamic_code."""
    with tempfile.TemporaryDirectory() as folder:
        plain = await _one_way(Path(folder) / "plain", task, code=False)
        code = await _one_way(Path(folder) / "code", task, code=True)
    return {"asked": task.asked, "calls": len(task.steps), "tool calls": plain, "code": code}


async def _one_way(folder: Path, task: Task, *, code: bool) -> dict[str, Any]:
    servers = task.config(folder)
    async with serve(folder, servers, code=code) as client:
        tools = await client.list_tools()
        listing = count(
            json.dumps(
                [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools],
                separators=(",", ":"),
            )
        )
        expansions: dict[str, str] = {}
        before: list[int] = []  # the expansions' calls, turns of their own
        for group in task.groups:
            request = {"group": group}
            expansions[group] = text(await client.call_tool_mcp("get_dynamic_tools", request))
            before.append(count(json.dumps(request)) + count(expansions[group]))
        steps, value = await (_program(client, task) if code else _calls(client, task))
    together = [before, *(_at_once(task, steps) if not code else [steps])]
    figures: dict[str, Any] = {
        "tools/list": listing,
        "expansions": sum(count(e) for e in expansions.values()),
        "task": sum(steps),
        "turns": len(steps),
        "turns, independent calls at once": len(together) - 1,
        "read over the task": sum(sum(steps[: n + 1]) for n in range(len(steps))),
        "read over the turns": _read([[one] for one in before + steps], listing),
        "read over the turns, independent calls at once": _read(together, listing),
    }
    if code:
        figures["value"] = value  # what the program found, to compare with the calls' results
    else:
        raw = [await _raw_expansion(e, servers[g]) for g, e in expansions.items()]
        figures["expansions with raw output schemas"] = sum(count(e) for e in raw)
    return figures


def _read(turns: list[list[int]], listing: int) -> int:
    """What the model reads over `turns` (each the tokens of its calls and results): one
    turn before the first and one after each, every one reading the listing and all that
    came before it."""
    tokens = [sum(turn) for turn in turns]
    return sum(listing + sum(tokens[:n]) for n in range(len(tokens) + 1))


def _at_once(task: Task, steps: list[int]) -> list[list[int]]:
    """The steps' tokens, grouped into the turns of a model making independent calls together."""
    turns: list[list[int]] = []
    for step, tokens in zip(task.steps, steps, strict=True):
        if step.at_once and turns:
            turns[-1].append(tokens)
        else:
            turns.append([tokens])
    return turns


async def _calls(client: Any, task: Task) -> tuple[list[int], str]:
    """Each call as the model makes it: its arguments in, its result text out."""
    steps, results = [], []
    for step in task.steps:
        request = {"group": step.group, "name": step.tool, "args": step.arguments(results)}
        result = await client.call_tool_mcp("call_dynamic_tool", request)
        if result.is_error:
            raise RuntimeError(f"{task.name}: {step.group}.{step.tool}: {text(result)}")
        results.append(parsed(text(result)))
        steps.append(count(json.dumps(request)) + count(text(result)))
    return steps, text(result)


async def _program(client: Any, task: Task) -> tuple[list[int], str]:
    """The whole task as one program and its value."""
    result = await client.call_tool_mcp("run_dynamic_code", {"code": task.program})
    if result.is_error:
        raise RuntimeError(f"{task.name}: {text(result)}")
    return [count(json.dumps({"code": task.program})) + count(text(result))], text(result)


async def _raw_expansion(expansion: str, server: dict[str, Any]) -> str:
    """The expansion with each tool's own outputSchema, as declared, beside its input."""
    listed = json.loads(expansion)
    schemas = await _output_schemas(server)
    with_schemas = [
        {**tool, "outputSchema": schemas[tool["name"]]} if tool["name"] in schemas else tool
        for tool in listed
    ]
    return json.dumps(with_schemas, separators=(",", ":"), ensure_ascii=False)


async def _output_schemas(server: dict[str, Any]) -> dict[str, Any]:
    """Each tool's outputSchema, read from the upstream itself."""
    import os

    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    env = {**os.environ, **server.get("env", {})}
    transport = StdioTransport(server["command"], server["args"], env=env, keep_alive=False)
    async with Client(transport, init_timeout=120) as upstream:
        return {t.name: t.output_schema for t in await upstream.list_tools() if t.output_schema}


def table(name: str, figures: dict[str, Any]) -> str:
    plain, code = figures["tool calls"], figures["code"]
    rows = [
        ("tools/list (every turn)", "tools/list"),
        ("expansions", "expansions"),
        ("task: calls and results", "task"),
        ("turns of the task", "turns"),
        ("turns, independent calls at once", "turns, independent calls at once"),
        ("read over the task", "read over the task"),
        ("read over the turns (everything)", "read over the turns"),
        (
            "read over the turns, independent calls at once",
            "read over the turns, independent calls at once",
        ),
    ]
    lines = [
        f"### {name}: {figures['asked']} ({figures['calls']} calls)",
        "",
        "| o200k tokens | call_dynamic_tool | run_dynamic_code |",
        "|---|---|---|",
        *(f"| {label} | {plain[key]} | {code[key]} |" for label, key in rows),
        "",
        "The expansions with each tool's raw outputSchema instead of `returns`: "
        f"{plain['expansions with raw output schemas']} tokens.",
        "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app()
