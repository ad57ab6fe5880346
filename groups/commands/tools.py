"""`dynamic-mcp tools` and `dynamic-mcp call`: a group's tools, and one call, from a terminal.

    dynamic-mcp tools time                     # each tool, its description and parameters
    dynamic-mcp tools other.json time --json   # the expansion exactly as the model gets it
    dynamic-mcp call time get_current_time --args '{"timezone": "UTC"}'

The config comes first or as --config, like every command's (`groups.commands.arguments`).

Both go through `get_dynamic_tools` and `call_dynamic_tool` of dynamic-mcp's own server
(`groups.commands.terminal`), so what they print is what a model would get. `call` prints text
content as text and any other content as JSON, and exits 1 when the result is an error
(written to stderr), so scripts can tell.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import Parameter

from groups import LogLevel
from groups.commands.arguments import ConfigOption, LogLevelOption, config_and_names
from groups.errors import CommandArgumentError

if TYPE_CHECKING:
    import mcp_types

__all__ = ["call", "describe_tools", "print_result", "tools"]


def tools(
    *arguments: Annotated[str, Parameter(name="[CONFIG] GROUP")],
    config: ConfigOption = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    log_level: LogLevelOption = "error",
) -> None:
    """List GROUP's tools with their parameters, asking its upstream now.

    Parameters
    ----------
    arguments
        The group, as named in the config; before it, the config's path if not --config.
    json_
        Print the tools as compact JSON, exactly as get_dynamic_tools gives them to the model.
    """
    import anyio

    config, (group,) = config_and_names("tools", arguments, ["GROUP"], config)
    # The catalog is for sparing the model a wait; a person asking here wants the upstream's
    # own answer, and a broken upstream to show as broken.
    ask = partial(
        _call_meta_tool, config, "get_dynamic_tools", {"group": group}, log_level, catalog=False
    )
    result = anyio.run(ask)
    if result.is_error or json_:
        print_result(result)
    else:
        sys.stdout.write(describe_tools(json.loads(_text_of(result))))
    if result.is_error:
        sys.exit(1)


def call(
    *arguments: Annotated[str, Parameter(name="[CONFIG] GROUP TOOL")],
    args: str = "{}",
    config: ConfigOption = None,
    log_level: LogLevelOption = "error",
) -> None:
    """Call TOOL of GROUP and print its result; exit 1 when the result is an error.

    Parameters
    ----------
    arguments
        The group, as named in the config, and the tool's name, as `dynamic-mcp tools
        GROUP` lists it; before them, the config's path if not --config.
    args
        The tool's arguments as a JSON object, e.g. '{"timezone": "UTC"}'.
    """
    import anyio

    config, (group, tool) = config_and_names("call", arguments, ["GROUP", "TOOL"], config)
    request = {"group": group, "name": tool, "args": _json_object(args)}
    result = anyio.run(partial(_call_meta_tool, config, "call_dynamic_tool", request, log_level))
    print_result(result)
    if result.is_error:
        sys.exit(1)


async def _call_meta_tool(
    config: Path | None,
    name: str,
    arguments: dict[str, Any],
    log_level: LogLevel,
    *,
    catalog: bool = True,
) -> mcp_types.CallToolResult:
    from groups.commands.terminal import own_server

    async with own_server(config, catalog=catalog, log_level=log_level) as own:
        return await own.client.call_tool_mcp(name, arguments)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandArgumentError("--args", f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CommandArgumentError("--args", f"a JSON object is needed, not {text!r}")
    return value


def print_result(result: mcp_types.CallToolResult) -> None:
    """Text content as text, anything else as JSON; an error result on stderr."""
    out = sys.stderr if result.is_error else sys.stdout
    parts = [
        item.text
        if item.type == "text"
        else _json(item.model_dump(mode="json", by_alias=True, exclude_none=True))
        for item in result.content
    ]
    if not parts and result.structured_content is not None:
        parts.append(_json(result.structured_content))
    for part in parts:
        out.write(part if part.endswith("\n") else part + "\n")


def _text_of(result: mcp_types.CallToolResult) -> str:
    return "".join(item.text for item in result.content if item.type == "text")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def describe_tools(listed: list[dict[str, Any]]) -> str:
    """Each tool's name and description, then one line per parameter."""
    lines: list[str] = []
    for tool in listed:
        description = " ".join(tool.get("description", "").split())
        lines.append(f"{tool['name']}" + (f"  {description}" if description else ""))
        schema = tool.get("inputSchema", {})
        required = set(schema.get("required", ()))
        properties: dict[str, Any] = schema.get("properties", {})
        for name, parameter in properties.items():
            facts = [_type_of(parameter)]
            if name in required:
                facts.append("required")
            if "default" in parameter:
                facts.append(f"default {json.dumps(parameter['default'])}")
            about = " ".join(str(parameter.get("description", "")).split())
            lines.append(f"    {name}: {', '.join(facts)}" + (f"  {about}" if about else ""))
        if not properties:
            lines.append("    (no parameters)")
        if "returns" in tool:  # with settings.code: what a program gets back
            lines.append(f"    returns {tool['returns']}")
    return "".join(line + "\n" for line in lines)


def _type_of(schema: dict[str, Any]) -> str:
    """A JSON Schema's type in a few words: `string`, `array of string`, `one of "a", "b"`."""
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(value) for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type_of(schema['items'])}"
    if kind:
        return str(kind)
    for combined in ("anyOf", "oneOf"):
        if combined in schema:
            return " | ".join(_type_of(option) for option in schema[combined])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return "any"
