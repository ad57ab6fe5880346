"""The two tools the client sees, answered first hand: `tools/list` and `tools/call`.

    meta = MetaTools(registry, notifier)
    result = await meta.get_dynamic_tools("time")    # what the decorated meta-tool returns
    # after server.py declared the meta-tools with @server.tool, calling the methods above:
    meta.serve(server, get_dynamic_tools, call_dynamic_tool, search_dynamic_tools,
               run_dynamic_code)
    await meta.aclose()                              # the code sandbox's workers end

Guarantees:
- `tools/list` is exactly the two meta-tools (`search_dynamic_tools` and
  `run_dynamic_code` as well where the config's settings ask for them: `search`,
  `code`), each as name, description and inputSchema
  (no FastMCP `title` or `_meta`: tokens on every turn), with the groups the caller may
  use (`groups.access`) and their state from the registry, built once per change
  (`changed`) and per distinct set of groups shown, rather than per request;
- `tools/call` runs the declared meta-tool functions themselves; a call by any other name
  is an `isError` result naming the two tools, and for `<group>_<tool>` how to call it
  (only for a group the caller may use: the error never tells a group exists);
- a tool call, the model's own or one of a program's (`groups.code`), takes one path,
  `call`: the registry's rules and limits, an `isError` result for a `DynamicMcpError`
  through the redactor, a span, and an audit line (`"via": "code"` for a program's);
- a meta-tool's own arguments are checked here, each problem named by argument; a call
  whose tool arguments were put beside `group` and `name` instead of inside `args` (weaker
  models flatten them) is taken as if they had been in `args`; with both, `args` wins;
- the client's request is the `current_caller` while its call runs, so the upstream's
  callbacks find their way back to it (`groups.upstream.callers`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import mcp_types
from opentelemetry.trace import StatusCode

from groups.access import User
from groups.code import CodeRunner
from groups.errors import (
    BadArgumentsError,
    CallLimitedError,
    CodeRunError,
    DynamicMcpError,
    NotAMetaToolError,
)
from groups.internals import route_tool_requests
from groups.serving.audit import audit
from groups.serving.tracing import joining, span
from groups.upstream.callers import Caller, current_caller

if TYPE_CHECKING:
    from fastmcp import FastMCP
    from mcp.server.context import ServerRequestContext

    from groups.config import CodeSettings
    from groups.registry import Registry
    from groups.secrets import Redactor
    from groups.serving.notifier import Notifier

__all__ = ["MetaToolFunction", "MetaTools", "error_result", "text_result"]

GET_TOOLS = "get_dynamic_tools"
CALL_TOOL = "call_dynamic_tool"
SEARCH_TOOLS = "search_dynamic_tools"  # offered only with settings.search
RUN_CODE = "run_dynamic_code"  # offered only with settings.code
GET_TOOLS_INTRO = (
    "Load the tools of one group (an MCP server) on demand; "
    "then run one with call_dynamic_tool. Groups:"
)
GET_TOOLS_INTRO_WITH_CODE = (  # with settings.code: several calls chain in one program
    "Load the tools of one group (an MCP server) on demand; then run one with "
    "call_dynamic_tool, or several in one run_dynamic_code program. Groups:"
)
CALL_TOOL_DESCRIPTION = (
    "Run a tool of a group. Call get_dynamic_tools(group) first to learn the tool names "
    "and their input schemas; pass the tool's arguments as args."
)
SEARCH_TOOLS_DESCRIPTION = (
    "Find tools across all groups by what they do; returns the best matches with their "
    "group. Then get_dynamic_tools(group) for a match's input schema."
)


def run_code_description(limits: CodeSettings) -> str:
    """run_dynamic_code's description: what a program can do, and the limits it will meet."""
    return (
        "Run a short Python program in a sandbox (no files, network or environment). "
        "`await call_tool(group, name, args)` calls a group's tool and returns its "
        "structured result, else its text; a failed call raises an exception the program "
        "can catch. The program's value (a top-level `return`, else its last expression) "
        f"comes back as JSON, with what it printed. At most {limits.max_calls} calls and "
        f"{limits.timeout.total_seconds():g}s a run. Expand a group first: its tools say "
        "what they return."
    )


# get_dynamic_tools' description lists the groups, so it is built with them; so is
# run_dynamic_code's with its limits.
DESCRIPTIONS = {CALL_TOOL: CALL_TOOL_DESCRIPTION, SEARCH_TOOLS: SEARCH_TOOLS_DESCRIPTION}
# Each meta-tool's own arguments: name -> (type, required).
ARGUMENTS: dict[str, dict[str, tuple[type, bool]]] = {
    GET_TOOLS: {"group": (str, True)},
    CALL_TOOL: {"group": (str, True), "name": (str, True), "args": (dict, False)},
    SEARCH_TOOLS: {"query": (str, True)},
    RUN_CODE: {"code": (str, True)},
}
_JSON_TYPES = {
    str: "a string",
    dict: "an object",
    list: "a list",
    bool: "true or false",
    int: "a number",
    float: "a number",
}

MetaToolFunction = Callable[..., Awaitable[mcp_types.CallToolResult]]


class MetaTools:
    """The listing and the calls of the two meta-tools, on behalf of the root server."""

    def __init__(self, registry: Registry, notifier: Notifier) -> None:
        self._registry = registry
        self._notifier = notifier
        self._functions: dict[str, MetaToolFunction] = {}
        self._declared: dict[str, dict[str, Any]] = {}  # each tool's inputSchema as declared
        # One listing per set of groups shown: users who may use the same groups share it.
        self._listings: dict[tuple[str, ...], mcp_types.ListToolsResult] = {}
        self._server: FastMCP | None = None
        self._code = CodeRunner(self.call, registry.redactor)  # its sandbox starts when used

    def serve(
        self,
        server: FastMCP,
        get_tools: MetaToolFunction,
        call_tool: MetaToolFunction,
        search_tools: MetaToolFunction,
        run_code: MetaToolFunction,
    ) -> None:
        """Answer tools/list and tools/call of `server` with the declared meta-tools."""
        self._functions = {
            GET_TOOLS: get_tools,
            CALL_TOOL: call_tool,
            SEARCH_TOOLS: search_tools,
            RUN_CODE: run_code,
        }
        self._server = server
        route_tool_requests(server, self._list_tools, self._call_tool)

    # ---- what each meta-tool does: server.py's decorated functions call these ---------

    async def get_dynamic_tools(self, group: str) -> mcp_types.CallToolResult:
        """The group's tools as compact JSON, or an isError result saying what went wrong."""
        caller, started = current_caller.get(), time.monotonic()
        with span("expand", group=group, user=_name(caller)) as current:
            try:
                result = text_result(await self._registry.expand(group, caller))
            except DynamicMcpError as exc:
                result = error_result(exc, self._registry.redactor)
                current.set_status(StatusCode.ERROR, type(exc).__name__)
        self._audit("expansion", caller, result, started, group=group)
        return result

    async def call_dynamic_tool(
        self, group: str, name: str, args: dict[str, Any] | None
    ) -> mcp_types.CallToolResult:
        """The upstream's result unchanged, or an isError result saying what went wrong."""
        return await self.call(group, name, args or {}, current_caller.get())

    async def call(
        self,
        group: str,
        name: str,
        args: dict[str, Any],
        caller: Caller | None,
        *,
        via: str | None = None,
    ) -> mcp_types.CallToolResult:
        """One tool call for `caller`, the model's or a program's (`via="code"`): the
        upstream's result unchanged, or an isError result saying what went wrong."""
        started, limit = time.monotonic(), None
        with span("call", group=group, tool=name, user=_name(caller)) as current:
            try:
                result = await self._registry.call_tool(group, name, args, caller)
            except DynamicMcpError as exc:
                result = error_result(exc, self._registry.redactor)
                limit = exc.setting if isinstance(exc, CallLimitedError) else None
            if result.is_error:
                current.set_status(StatusCode.ERROR)
        self._audit(
            "tool_call", caller, result, started, group=group, tool=name, limit=limit, via=via
        )
        return result

    async def run_dynamic_code(self, code: str) -> mcp_types.CallToolResult:
        """The program's value, printout and returned blocks, or an isError result with
        what went wrong and the calls it made (`groups.code`)."""
        caller, started, limit = current_caller.get(), time.monotonic(), None
        limits = self._registry.settings.code_limits
        with span("code", user=_name(caller)) as current:
            try:
                if limits is None:  # a reload turned code mode off since the call came
                    raise NotAMetaToolError(RUN_CODE)
                ran = await self._code.run(code, caller, limits)
                result, calls = ran.result, ran.calls
            except CodeRunError as exc:
                result, calls = error_result(exc, self._registry.redactor), len(exc.calls)
                limit = exc.setting
            except DynamicMcpError as exc:
                result, calls = error_result(exc, self._registry.redactor), 0
            if result.is_error:
                current.set_status(StatusCode.ERROR)
        self._audit("code_run", caller, result, started, limit=limit, calls=calls)
        return result

    async def aclose(self) -> None:
        """End what serving code mode started (the sandbox's workers)."""
        await self._code.aclose()

    async def search_dynamic_tools(self, query: str) -> mcp_types.CallToolResult:
        """The best matches across every group the caller may use whose tools are known."""
        caller, started = current_caller.get(), time.monotonic()
        user = caller.user if caller is not None else None
        result = text_result(await self._registry.search(query, user))
        self._audit("search", caller, result, started)
        return result

    def _audit(
        self,
        event: str,
        caller: Caller | None,
        result: mcp_types.CallToolResult,
        started: float,
        group: str | None = None,
        tool: str | None = None,
        limit: str | None = None,
        **names: Any,
    ) -> None:
        """The audit line of a meta-tool's call: a group the caller may not use is
        `denied` if it exists, `unknown` if not (the caller is told the same for both);
        one a limit refused is `limited`, naming the limit's setting. `names`: more of
        the line (`via`, `calls`), never a value."""
        user = caller.user if caller is not None else None
        outcome = "limited" if limit is not None else "error" if result.is_error else "ok"
        if group is not None and group not in self._registry.group_names(user):
            outcome = "denied" if self._registry.config_of(group) is not None else "unknown"
        audit.record(
            event,
            user=user,
            outcome=outcome,
            started=started,
            group=group,
            tool=tool,
            limit=limit,
            **names,
        )

    def changed(self) -> None:
        """The groups or their state changed: the next tools/list is built anew."""
        self._listings = {}

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: mcp_types.PaginatedRequestParams
    ) -> mcp_types.ListToolsResult:
        caller = Caller.of(ctx)
        self._notifier.see(caller)
        shown = tuple(self._registry.group_names(caller.user))
        listing = self._listings.get(shown)
        if listing is None:
            listing = mcp_types.ListToolsResult(
                tools=[await self._listed(name, caller.user) for name in self._offered()]
            )
            self._listings[shown] = listing
        return listing

    def _offered(self) -> list[str]:
        """The meta-tools the client sees: two, and search and code where the settings ask
        for them."""
        settings = self._registry.settings
        asked = {SEARCH_TOOLS: settings.search, RUN_CODE: settings.code_limits is not None}
        return [name for name in self._functions if asked.get(name, True)]

    async def _listed(self, name: str, user: User | None) -> mcp_types.Tool:
        if name not in self._declared:
            declared = await self._server.get_tool(name) if self._server is not None else None
            if declared is None:  # a programming error: server.py declares all three
                raise RuntimeError(f"{name} must be declared with @server.tool before serve()")
            self._declared[name] = declared.parameters
        schema = self._declared[name]
        properties = dict(schema["properties"])
        if "group" in properties:
            names = self._registry.group_names(user)
            # No group (none configured, or a config that cannot be used): an empty enum
            # would make every call invalid before it could say why.
            properties["group"] = {"type": "string", **({"enum": names} if names else {})}
        if "args" in properties:
            # The signature's `dict | None` renders as an anyOf; the model needs only this.
            properties["args"] = {"type": "object"}
        limits = self._registry.settings.code_limits
        if name == GET_TOOLS:
            intro = GET_TOOLS_INTRO if limits is None else GET_TOOLS_INTRO_WITH_CODE
            description = f"{intro}\n{self._registry.describe_groups(user)}"
        elif name == RUN_CODE and limits is not None:
            description = run_code_description(limits)
        else:
            description = DESCRIPTIONS[name]
        return mcp_types.Tool(
            name=name, description=description, input_schema={**schema, "properties": properties}
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        caller = Caller.of(ctx)
        self._notifier.see(caller)
        function = self._functions.get(params.name) if params.name in self._offered() else None
        try:
            if function is None:
                raise self._not_a_meta_tool(params.name, caller.user)
            arguments = _checked(params.name, params.arguments or {})
        except DynamicMcpError as exc:
            return error_result(exc, self._registry.redactor)
        with current_caller.set_to(caller), joining(params.meta):
            return await function(**arguments)

    def _not_a_meta_tool(self, name: str, user: User | None) -> NotAMetaToolError:
        """The error for calling `name`, with how to reach a group's tool it may mean."""
        group = self._registry.group_prefixing(name, user)
        tool = name[len(group) + 1 :] if group else None
        return NotAMetaToolError(name, group=group, tool=tool)


def _name(caller: Caller | None) -> str | None:
    """The caller's gateway user, for a span: None for the implicit one."""
    return caller.user.name if caller is not None and caller.user is not None else None


def _checked(tool: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The meta-tool's arguments, each present when required and of its type.

    Raises:
        BadArgumentsError: naming the first argument that is missing, of a wrong type, or
            not an argument of the meta-tool at all.
    """
    expected = ARGUMENTS[tool]
    beside = {name: value for name, value in given.items() if name not in expected}
    if beside and tool == CALL_TOOL:
        # The tool's arguments, flattened beside group and name: read them as `args`,
        # unless `args` is there too, which then wins.
        given = {name: value for name, value in given.items() if name in expected}
        given.setdefault("args", beside)
    elif beside:
        name = next(iter(beside))
        raise BadArgumentsError(tool, name, f"is not an argument of {tool}")
    checked: dict[str, Any] = {}
    for name, (kind, required) in expected.items():
        value = given.get(name)
        if value is None:
            if required:
                raise BadArgumentsError(tool, name, "is required")
            continue
        if not isinstance(value, kind):
            got = _JSON_TYPES.get(type(value), type(value).__name__)
            raise BadArgumentsError(tool, name, f"must be {_JSON_TYPES[kind]}, got {got}")
        checked[name] = value
    return checked


def text_result(text: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)])


def error_result(exc: DynamicMcpError, redactor: Redactor) -> mcp_types.CallToolResult:
    """A failure the model can act on: an isError result, never a protocol error.

    Its text is scrubbed: an error may quote what an upstream or a library said, and that
    may hold a value put in for a `${VAR}`.
    """
    text = redactor.scrub(str(exc))
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)], is_error=True
    )
