"""An upstream whose resources can be watched and whose prompt and template complete.

    python watched.py          # stdio

Written with the MCP SDK's low-level server: FastMCP serves no resource subscriptions.

- resources `counter://one` and `counter://two` (how often each was touched); the
  template `notes://{topic}`; the prompt `greet(name, style)`;
- `completion/complete`: the prompt's `name` from NAMES and the template's `topic` from
  TOPICS, by prefix; the prompt's `style` from the `name` in the request's context; any
  other reference or argument: no values;
- `resources/subscribe` and `resources/unsubscribe` are recorded, and the tool
  `subscribed` lists what is subscribed now; `touch(uri)` counts one change of `uri` and
  sends `notifications/resources/updated` for it whether or not it is subscribed (a
  careless upstream: dynamic-mcp must pass an update on to its subscribers alone);
  `pid` gives the process id.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import json
import os
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

NAMES = ["albert", "alice", "bob"]
TOPICS = ["tea", "travel", "work"]
COUNTERS = ["counter://one", "counter://two"]

touched = dict.fromkeys(COUNTERS, 0)
subscribed: set[str] = set()

Context = ServerRequestContext[Any]


def _text(value: object) -> types.CallToolResult:
    text = value if isinstance(value, str) else json.dumps(value)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


async def list_tools(ctx: Context, params: Any) -> types.ListToolsResult:
    no_arguments = {"type": "object", "properties": {}}
    one_uri = {"type": "object", "properties": {"uri": {"type": "string"}}, "required": ["uri"]}
    return types.ListToolsResult(
        tools=[
            types.Tool(name="pid", description="The process id.", input_schema=no_arguments),
            types.Tool(
                name="subscribed", description="URIs subscribed.", input_schema=no_arguments
            ),
            types.Tool(name="touch", description="Change a resource.", input_schema=one_uri),
        ]
    )


async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "pid":
        return _text(str(os.getpid()))
    if params.name == "subscribed":
        return _text(sorted(subscribed))
    uri = (params.arguments or {})["uri"]
    touched[uri] = touched.get(uri, 0) + 1
    await ctx.session.send_resource_updated(uri)
    return _text(f"touched {uri}")


async def list_resources(ctx: Context, params: Any) -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[types.Resource(uri=uri, name=uri.split("//")[1]) for uri in COUNTERS]
    )


async def list_templates(ctx: Context, params: Any) -> types.ListResourceTemplatesResult:
    template = types.ResourceTemplate(uri_template="notes://{topic}", name="notes")
    return types.ListResourceTemplatesResult(resource_templates=[template])


async def read_resource(ctx: Context, params: types.ReadResourceRequestParams) -> Any:
    uri = str(params.uri)
    text = str(touched[uri]) if uri in touched else f"notes on {uri.removeprefix('notes://')}"
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, text=text)])


async def subscribe(ctx: Context, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscribed.add(str(params.uri))
    return types.EmptyResult()


async def unsubscribe(ctx: Context, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    subscribed.discard(str(params.uri))
    return types.EmptyResult()


async def list_prompts(ctx: Context, params: Any) -> types.ListPromptsResult:
    arguments = [
        types.PromptArgument(name="name", required=True),
        types.PromptArgument(name="style"),
    ]
    return types.ListPromptsResult(prompts=[types.Prompt(name="greet", arguments=arguments)])


async def get_prompt(ctx: Context, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    arguments = params.arguments or {}
    text = f"Greet {arguments.get('name')} in a {arguments.get('style', 'plain')} way."
    message = types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.GetPromptResult(messages=[message])


async def complete(ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
    ref, argument = params.ref, params.argument
    values: list[str] = []
    if isinstance(ref, types.PromptReference) and ref.name == "greet":
        if argument.name == "name":
            values = [name for name in NAMES if name.startswith(argument.value)]
        elif argument.name == "style":
            known = (params.context.arguments or {}) if params.context else {}
            values = [f"{known.get('name', 'nobody')}-{style}" for style in ("formal", "casual")]
    elif isinstance(ref, types.ResourceTemplateReference) and ref.uri == "notes://{topic}":
        topics = TOPICS if argument.name == "topic" else []
        values = [topic for topic in topics if topic.startswith(argument.value)]
    return types.CompleteResult(completion=types.Completion(values=values))


server = Server(
    "watched-upstream",
    on_list_tools=list_tools,
    on_call_tool=call_tool,
    on_list_resources=list_resources,
    on_list_resource_templates=list_templates,
    on_read_resource=read_resource,
    on_subscribe_resource=subscribe,
    on_unsubscribe_resource=unsubscribe,
    on_list_prompts=list_prompts,
    on_get_prompt=get_prompt,
    on_completion=complete,
)


async def main() -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    lean.serving()
    anyio.run(main)
