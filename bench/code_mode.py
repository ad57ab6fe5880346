"""Context tokens of one multi-step task, with call_dynamic_tool and with run_dynamic_code.

    uv run python -m bench.code_mode              # a Markdown table on stdout
    uv run python -m bench.code_mode --json       # the figures as JSON

The task: what time it is in `--zones` time zones (mcp-server-time, installed with the
dev dependencies: nothing is downloaded), then a meeting at 09:00 UTC converted to each.
Each way runs it for real, through dynamic-mcp over stdio, and counts o200k tokens
(`bench.tokens`) of what the model writes and reads:

- `tools/list`: the meta-tools' listing, read on every turn;
- `expansion`: get_dynamic_tools("time"), and with code mode its `returns`; beside it the
  expansion with each tool's raw `outputSchema` instead, the alternative code mode avoids;
- `task`: every call's arguments and its result text, as they enter the context, one
  call at a time (call_dynamic_tool) or as one program and its value (run_dynamic_code);
- `read over the task`: the tokens the model reads again at each turn after a call: the
  task's context so far, summed over its turns (listing and expansion left out: the
  same for every turn of both ways).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from cyclopts import App

from bench.tokens import count

REPO = Path(__file__).resolve().parent.parent
ZONES = [
    *("UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney"),
    *("Europe/London", "Asia/Kolkata", "America/Los_Angeles", "America/Sao_Paulo"),
    "Africa/Lagos",
]
TIME = {
    "description": "Current time and time-zone conversion.",
    "command": sys.executable,
    "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
}
PROGRAM = """
zones = {zones!r}
now, meeting = {{}}, {{}}
for zone in zones:
    current = await call_tool("time", "get_current_time", {{"timezone": zone}})
    now[zone] = current["datetime"][11:16]
    converted = await call_tool(
        "time", "convert_time",
        {{"source_timezone": "UTC", "time": "09:00", "target_timezone": zone}},
    )
    meeting[zone] = converted["target"]["datetime"][11:16]
return {{"now": now, "meeting at 09:00 UTC": meeting}}
"""

app = App(
    name="bench.code_mode", help="Context tokens of a multi-step task, with and without code mode."
)


@app.default
def main(*, zones: int = 5, json_: bool = False) -> None:
    """Run the task both ways and print the tokens.

    Parameters
    ----------
    zones
        How many time zones the task asks about (two calls each), at most 10.
    json_
        Print the figures as JSON instead of a table.
    """
    figures = anyio.run(measure, list(ZONES[: max(1, min(zones, len(ZONES)))]))
    sys.stdout.write(json.dumps(figures, indent=2) + "\n" if json_ else table(figures))


async def measure(zones: list[str]) -> dict[str, Any]:
    """The tokens of the task done with call_dynamic_tool, and with run_dynamic_code."""
    with tempfile.TemporaryDirectory() as folder:
        plain = await _one_way(Path(folder), zones, code=False)
        code = await _one_way(Path(folder), zones, code=True)
    return {"zones": len(zones), "calls": 2 * len(zones), "tool calls": plain, "code": code}


async def _one_way(folder: Path, zones: list[str], *, code: bool) -> dict[str, Any]:
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    config = folder / f"{'code' if code else 'plain'}.json"
    settings = {"code": True} if code else {}
    config.write_text(json.dumps({"mcpServers": {"time": TIME}, "settings": settings}))
    env = {
        **os.environ,
        "DYNAMIC_MCP_HOME": str(folder / "home"),
        "FASTMCP_CHECK_FOR_UPDATES": "off",
    }
    transport = StdioTransport(
        sys.executable, ["-m", "server", str(config)], env=env, cwd=str(REPO), keep_alive=False
    )
    async with Client(transport, init_timeout=60, timeout=60) as client:
        tools = await client.list_tools()
        listing = json.dumps(
            [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools],
            separators=(",", ":"),
        )
        expansion = _text(await client.call_tool_mcp("get_dynamic_tools", {"group": "time"}))
        steps = await (_program(client, zones) if code else _calls(client, zones))
        figures = {
            "tools/list": count(listing),
            "expansion": count(expansion),
            "task": sum(steps),
            "read over the task": sum(sum(steps[: n + 1]) for n in range(len(steps))),
            "turns": len(steps),
        }
        if not code:
            figures["expansion with raw output schemas"] = count(await _raw_expansion(expansion))
        return figures


async def _calls(client: Any, zones: list[str]) -> list[int]:
    """Each call as the model makes it: its arguments in, its result text out."""
    steps = []
    for zone in zones:
        for name, args in (
            ("get_current_time", {"timezone": zone}),
            ("convert_time", {"source_timezone": "UTC", "time": "09:00", "target_timezone": zone}),
        ):
            request = {"group": "time", "name": name, "args": args}
            result = await client.call_tool_mcp("call_dynamic_tool", request)
            steps.append(count(json.dumps(request)) + count(_text(result)))
    return steps


async def _program(client: Any, zones: list[str]) -> list[int]:
    """The whole task as one program and its value."""
    code = PROGRAM.format(zones=zones)
    result = await client.call_tool_mcp("run_dynamic_code", {"code": code})
    if result.is_error:
        raise RuntimeError(_text(result))
    return [count(json.dumps({"code": code})) + count(_text(result))]


async def _raw_expansion(expansion: str) -> str:
    """The expansion with each tool's own outputSchema, as declared, beside its input."""
    listed = json.loads(expansion)
    schemas = await _output_schemas()
    with_schemas = [
        {**tool, "outputSchema": schemas[tool["name"]]} if tool["name"] in schemas else tool
        for tool in listed
    ]
    return json.dumps(with_schemas, separators=(",", ":"), ensure_ascii=False)


async def _output_schemas() -> dict[str, Any]:
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    transport = StdioTransport(TIME["command"], TIME["args"], keep_alive=False)
    async with Client(transport, init_timeout=60) as upstream:
        return {t.name: t.output_schema for t in await upstream.list_tools() if t.output_schema}


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def table(figures: dict[str, Any]) -> str:
    plain, code = figures["tool calls"], figures["code"]
    rows = [
        ("tools/list (every turn)", plain["tools/list"], code["tools/list"]),
        ("expansion of time", plain["expansion"], code["expansion"]),
        ("task: calls and results", plain["task"], code["task"]),
        ("read over the task", plain["read over the task"], code["read over the task"]),
    ]
    lines = [
        f"{figures['zones']} zones, {figures['calls']} calls to mcp-server-time "
        f"({plain['turns']} turns with call_dynamic_tool, {code['turns']} with run_dynamic_code)",
        "",
        "| o200k tokens | call_dynamic_tool | run_dynamic_code |",
        "|---|---|---|",
        *(f"| {label} | {a} | {b} |" for label, a, b in rows),
        "",
        "The expansion with each tool's raw outputSchema instead of `returns`: "
        f"{plain['expansion with raw output schemas']} tokens.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app()
