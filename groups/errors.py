"""Every failure a user or the model can see, one class each, message built in the class.

    DynamicMcpError                 base: the CLI prints it, the meta-tools return it as isError
    ├── ConfigError                 dynamic-mcp.json is missing, unreadable or invalid
    ├── ConfigUnusableError         serving over stdio on a config it cannot use: no group
    ├── NotAMetaToolError           a client called a tool other than the two meta-tools
    ├── BadArgumentsError           a meta-tool's own arguments are missing or of a wrong type
    ├── UnknownGroupError           the model named a group that is not configured
    ├── UnknownToolError            the model named a tool its group does not have
    ├── ToolHiddenError             the model named a tool the group's config hides
    ├── FeatureDisabledError        the config turns off the feature (tools…) asked for
    ├── GroupUnavailableError       an upstream could not be started, reached or initialized
    ├── SignInNeededError           a remote upstream wants a person to sign in (OAuth)
    ├── UnsafeTokenFileError        a stored OAuth token file is open to others, or unreadable
    ├── StoreSettingError           the shared store is asked for without a key, or not Redis
    ├── StoreUnavailableError       the shared store (Redis) did not answer in time
    ├── AuthCommandError            `dynamic-mcp auth` was asked for what it cannot do
    ├── AdminCommandError           `dynamic-mcp admin` has no shared store to read
    ├── CommandArgumentError        a terminal command's argument is malformed (`call --args`)
    ├── UpstreamTimeoutError        an upstream call ran past its configured limit
    ├── CallLimitedError            a user's rate limit or concurrency cap refuses a call now
    ├── CodeRunError                a run_dynamic_code program failed, or a limit stopped it
    ├── UpstreamRefusedError        a remote upstream refused one request with an HTTP error
    ├── UnsafeServingError          HTTP serving would be open to anyone, or its token is unsafe
    ├── CannotListenError           HTTP serving cannot bind its address (taken, not ours)
    ├── PublicUrlError              the gateway's --public-url is not an http(s) URL
    └── ImportFailedError           `dynamic-mcp import` stopped (importers/errors.py)

Each class keeps the parts of its message as attributes, so tests and callers branch on
data, never on message text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AdminCommandError",
    "AuthCommandError",
    "BadArgumentsError",
    "CallLimitedError",
    "CannotListenError",
    "CodeRunError",
    "CommandArgumentError",
    "ConfigError",
    "ConfigProblem",
    "ConfigUnusableError",
    "DynamicMcpError",
    "FeatureDisabledError",
    "GroupUnavailableError",
    "NotAMetaToolError",
    "PublicUrlError",
    "SignInNeededError",
    "StoreSettingError",
    "StoreUnavailableError",
    "ToolHiddenError",
    "UnknownGroupError",
    "UnknownToolError",
    "UnsafeServingError",
    "UnsafeTokenFileError",
    "UpstreamRefusedError",
    "UpstreamTimeoutError",
]


class DynamicMcpError(Exception):
    """Base of every error dynamic-mcp reports on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where (a field's dotted path, or a line and column
    for a JSON syntax error; neither for the file as a whole) and what."""

    problem: str
    server: str | None = None
    field: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}: " if self.line is not None else ""
        if self.field:
            where += f"{self.field}: "
        return where + self.problem


class ConfigError(DynamicMcpError):
    """The config file is missing, unreadable, not JSON, or does not match the schema.

    `problems` holds every problem found, in the file's order; `problem`, `server`,
    `field`, `line` and `column` are the first one's (`server` and `field` are None when
    it is with the file as a whole, `line` and `column` set for a JSON syntax error).
    """

    def __init__(
        self,
        file: Path | str,
        problem: str,
        *,
        server: str | None = None,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
        more: Sequence[ConfigProblem] = (),
    ) -> None:
        self.file = Path(file)
        first = ConfigProblem(problem, server, field, line, column)
        self.problems = (first, *more)
        self.problem = problem
        self.server = server
        self.field = field
        self.line = line
        self.column = column
        if not more:
            where = f"{self.file}:" if line is not None else f"{self.file}: "
            super().__init__(where + str(first))
        else:
            listed = "".join(f"\n  {problem}" for problem in self.problems)
            super().__init__(f"{self.file}: {len(self.problems)} problems:{listed}")

    @classmethod
    def of(cls, file: Path | str, problems: Sequence[ConfigProblem]) -> ConfigError:
        """The error for every problem of `problems` (at least one)."""
        first, *more = problems
        return cls(
            file,
            first.problem,
            server=first.server,
            field=first.field,
            line=first.line,
            column=first.column,
            more=more,
        )


class ConfigUnusableError(DynamicMcpError):
    """dynamic-mcp serves over stdio, but the config (or a setting it names) cannot be
    used: no group is served until it is fixed. `cause` says what is wrong with it.

    Over stdio an MCP client shows only what the server answers (a server that exits is
    "Connection closed"), so the cause is said where the client shows it: in the
    meta-tool's description and in every call's error.
    """

    def __init__(self, cause: DynamicMcpError) -> None:
        self.cause = cause
        super().__init__(
            "dynamic-mcp cannot use its config, so it serves no group until the file is "
            f"fixed (a fix applies as soon as it is saved).\n{cause}"
        )


class NotAMetaToolError(DynamicMcpError):
    """A client called a tool by a name other than the two meta-tools (a group's tool, say).

    `group` and `tool` are set when the name reads as `<group>_<tool>` of a configured group.
    """

    def __init__(self, name: str, *, group: str | None = None, tool: str | None = None) -> None:
        self.name = name
        self.group = group
        self.tool = tool
        hint = "call a group's tool with call_dynamic_tool(group, name, args)"
        if group is not None and tool is not None:
            hint = (
                f"to run {tool!r} of group {group!r}, call call_dynamic_tool "
                f"with group={group!r} and name={tool!r}"
            )
        super().__init__(
            f"Unknown tool {name!r}: this server's tools are get_dynamic_tools and "
            f"call_dynamic_tool; {hint}."
        )


class BadArgumentsError(DynamicMcpError):
    """A meta-tool was called without one of its own arguments, or with one of a wrong type."""

    def __init__(self, tool: str, argument: str, problem: str) -> None:
        self.tool = tool
        self.argument = argument
        self.problem = problem
        super().__init__(f"{tool}: {argument!r} {problem}.")


class UnknownGroupError(DynamicMcpError):
    """The model asked for a group that is not in the config (or is disabled)."""

    def __init__(self, group: str, valid: Iterable[str]) -> None:
        self.group = group
        self.valid = sorted(valid)
        choices = ", ".join(self.valid) or "(none configured)"
        super().__init__(f"Unknown group {group!r}. Valid groups: {choices}.")


class UnknownToolError(DynamicMcpError):
    """The model asked for a tool that the group's upstream does not offer."""

    def __init__(self, group: str, tool: str, valid: Iterable[str]) -> None:
        self.group = group
        self.tool = tool
        self.valid = sorted(valid)
        choices = ", ".join(self.valid) or "(the group has no tools)"
        super().__init__(f"Unknown tool {tool!r} in group {group!r}. Valid tools: {choices}.")


class ToolHiddenError(DynamicMcpError):
    """The upstream has the tool, but the group's `tools` filter hides it from the model."""

    def __init__(self, group: str, tool: str, why: str) -> None:
        self.group = group
        self.tool = tool
        self.why = why
        super().__init__(
            f"Tool {tool!r} of group {group!r} is hidden by this group's config ({why}). "
            f"Call get_dynamic_tools({group!r}) for the tools it offers."
        )


class FeatureDisabledError(DynamicMcpError):
    """The group's config sets `features.<feature>` to false."""

    def __init__(self, group: str, feature: str) -> None:
        self.group = group
        self.feature = feature
        super().__init__(
            f"Group {group!r} does not offer {feature}: its config sets features.{feature} "
            f"to false."
        )


class GroupUnavailableError(DynamicMcpError):
    """The group's upstream could not be started, reached or initialized.

    `cause` is a one-line reason fit for the tool description; `permanent` says whether
    retrying without changing the config or the environment can help; `on_next_request`
    says the cause is cheap to check again, so the next request tries at once (an unset
    variable: the user sets it and asks again).
    """

    def __init__(
        self,
        group: str,
        cause: str,
        *,
        attempts: int = 1,
        permanent: bool = False,
        on_next_request: bool = False,
    ) -> None:
        self.group = group
        self.cause = cause
        self.attempts = attempts
        self.permanent = permanent
        self.on_next_request = on_next_request
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"Group {group!r} is unavailable{tries}: {cause}")


class SignInNeededError(DynamicMcpError):
    """A remote group's server wants OAuth authorization, which only a person can give.

    `link` is where to sign in, None when the sign-in could not produce one (`problem` says
    why) or has not yet; or, from a terminal command that cannot wait for a browser, the
    person is told to run `dynamic-mcp auth` (`by_command`).
    """

    def __init__(
        self,
        group: str,
        link: str | None,
        problem: str | None = None,
        *,
        by_command: bool = False,
    ) -> None:
        self.group = group
        self.link = link
        self.problem = problem
        if by_command:
            how = f"run `dynamic-mcp auth {group}`, then try again"
        elif link is not None:
            how = f"open this link in a browser and sign in, then call again: {link}"
        elif problem is not None:
            how = f"the sign-in could not start ({problem}); call again to retry"
        else:
            how = "the sign-in link is on its way; call again in a moment"
        super().__init__(f"Group {group!r} needs you to sign in: {how}")


class UnsafeTokenFileError(DynamicMcpError):
    """A token file, or its directory, is open to others and cannot be made private."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class StoreSettingError(DynamicMcpError):
    """`DYNAMIC_MCP_STORE` or `settings.store` cannot be used as written (no key, not Redis)."""


class StoreUnavailableError(DynamicMcpError):
    """The shared store did not answer: what needed it is refused; it is asked again next time."""

    def __init__(self, store: str, cause: str) -> None:
        self.store = store  # its URL as shown: no password
        self.cause = cause
        super().__init__(f"the store {store} is unavailable, asked again when next needed: {cause}")


class AuthCommandError(DynamicMcpError):
    """`dynamic-mcp auth` was asked for a group it cannot sign in, or the sign-in failed."""


class AdminCommandError(DynamicMcpError):
    """`dynamic-mcp admin` was asked what only a gateway's shared store can tell."""


class CommandArgumentError(DynamicMcpError):
    """A terminal command's argument cannot be used as given."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


class UpstreamTimeoutError(DynamicMcpError):
    """An upstream call did not answer within the group's configured timeout."""

    def __init__(self, group: str, operation: str, timeout: float) -> None:
        self.group = group
        self.operation = operation
        self.timeout = timeout
        super().__init__(
            f"{operation} in group {group!r} timed out after {timeout:g}s. "
            f"Retry, or raise timeout in this server's config entry."
        )


class CallLimitedError(DynamicMcpError):
    """A call refused by a limit of its user's (`groups.upstream.call_limits`), before it
    reached the upstream; `retry_after` seconds, or None: when a call in flight ends."""

    def __init__(
        self, group: str, user: str | None, limit: str, setting: str, retry_after: int | None
    ) -> None:
        self.group = group
        self.user = user
        self.limit = limit  # "5 calls a minute", "2 calls at once"
        self.setting = setting  # where it is set: "mcpServers.github.rate_limit"
        self.retry_after = retry_after
        whose = f"user {user!r}" if user is not None else "this client"
        when = (
            f"try again in {retry_after}s"
            if retry_after is not None
            else "try again when one of them has finished"
        )
        super().__init__(
            f"Call to group {group!r} refused: {whose} reached the limit of {limit} "
            f"({setting}); {when}."
        )


class CodeRunError(DynamicMcpError):
    """A program run by `run_dynamic_code` gave no value: it raised, was not Python, a limit
    stopped it (`setting`: "settings.code.cpu_time"…), or its value could not be returned.

    `calls` are the tool calls it made, as "group.tool (ok)" lines: they may have had
    effects, so the model is told before it tries again.
    """

    def __init__(
        self,
        problem: str,
        *,
        traceback: str = "",
        calls: Iterable[str] = (),
        printed: str = "",
        setting: str | None = None,
    ) -> None:
        self.problem = problem
        self.traceback = traceback
        self.calls = list(calls)
        self.printed = printed
        self.setting = setting
        lines = [f"run_dynamic_code: {problem}"]
        if traceback:
            lines.append(traceback)
        if self.calls:
            lines.append("Tool calls it made (their effects stand): " + ", ".join(self.calls))
        else:
            lines.append("It made no tool calls.")
        if printed:
            lines += ["Printed:", printed]
        super().__init__("\n".join(lines))


class UpstreamRefusedError(DynamicMcpError):
    """A remote upstream refused one request with an HTTP error, its session still good:
    a 403 `insufficient_scope` for a scope the token already holds (no sign-in can help),
    or any other error status the server gave instead of an answer.

    `error` and `scope` are the server's `WWW-Authenticate` challenge, when it sent one.
    """

    def __init__(
        self,
        group: str,
        operation: str,
        status: int,
        error: str | None = None,
        scope: str | None = None,
    ) -> None:
        self.group = group
        self.operation = operation
        self.status = status
        self.error = error
        self.scope = scope
        refusal = f"HTTP {status}" + (f" {error}" if error else "")
        if scope:
            refusal += f" (scope {scope!r})"
        if status in (401, 403):
            hint = "check the group's oauth_scopes or your permissions"
        else:
            hint = "retry later, or check the server"
        super().__init__(f"{operation} in group {group!r}: the server refused: {refusal}; {hint}.")


class UnsafeServingError(DynamicMcpError):
    """`--transport http` was asked for where anyone could reach it without a token."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


class CannotListenError(DynamicMcpError):
    """`--transport http` cannot listen where asked: the port is taken, the address is not
    this machine's, or a low port needs privileges."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(
            f"cannot listen on {host}:{port}: {reason}; is dynamic-mcp (or another server) "
            "listening there already? Choose another with --port"
        )


class PublicUrlError(DynamicMcpError):
    """`--public-url` (or `DYNAMIC_MCP_PUBLIC_URL`) is not a URL a browser can be sent to."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"the public URL {url!r} is not an http(s) URL without a query, like "
            "https://mcp.example.internal: it is where browsers end a sign-in"
        )
