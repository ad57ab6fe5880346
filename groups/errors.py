"""Every failure a user or the model can see, one class each, message built in the class.

    DynamicMcpError                 base: the CLI prints it, the meta-tools return it as isError
    ├── ConfigError                 dynamic-mcp.json is missing, unreadable or invalid
    ├── UnknownGroupError           the model named a group that is not configured
    ├── UnknownToolError            the model named a tool its group does not have
    ├── FeatureDisabledError        the config turns off the feature (tools…) asked for
    ├── GroupUnavailableError       an upstream could not be started, reached or initialized
    └── UpstreamTimeoutError        an upstream call ran past its configured limit

Each class keeps the parts of its message as attributes, so tests and callers branch on
data, never on message text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ConfigError",
    "DynamicMcpError",
    "FeatureDisabledError",
    "GroupUnavailableError",
    "UnknownGroupError",
    "UnknownToolError",
    "UpstreamTimeoutError",
]


class DynamicMcpError(Exception):
    """Base of every error dynamic-mcp reports on purpose."""


class ConfigError(DynamicMcpError):
    """The config file is missing, unreadable, not JSON, or does not match the schema.

    `server` and `field` are None when the problem is with the file as a whole.
    `line` and `column` are set for JSON syntax errors.
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
    ) -> None:
        self.file = Path(file)
        self.problem = problem
        self.server = server
        self.field = field
        self.line = line
        self.column = column
        where = str(self.file)
        if line is not None:
            where += f":{line}:{column}"
        if field:
            where += f": {field}"
        super().__init__(f"{where}: {problem}")


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
    retrying without changing the config or the environment can help.
    """

    def __init__(
        self, group: str, cause: str, *, attempts: int = 1, permanent: bool = False
    ) -> None:
        self.group = group
        self.cause = cause
        self.attempts = attempts
        self.permanent = permanent
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"Group {group!r} is unavailable{tries}: {cause}")


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
