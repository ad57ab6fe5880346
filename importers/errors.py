"""Every way `dynamic-mcp import` can stop, one class each; it wrote nothing when it did.

ImportFailedError               base (a DynamicMcpError: the CLI prints it as one line)
├── UnknownImporterError        no importer has that tool name
├── NoProjectScopeError         the tool keeps no per-project config
├── ImportSourceMissingError    the tool's config file is not where it should be
├── ImportSourceInvalidError    the tool's config file cannot be read or parsed
├── OutputExistsError           the output exists and nobody may be asked about it
├── OutputWriteError            the output file or its folder cannot be written
├── ImportCancelledError        the user declined, or stdin ended mid-question
└── NothingToImportError        the source lists no server that can be imported
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from groups.errors import DynamicMcpError

__all__ = [
    "ImportCancelledError",
    "ImportFailedError",
    "ImportSourceInvalidError",
    "ImportSourceMissingError",
    "NoProjectScopeError",
    "NothingToImportError",
    "OutputExistsError",
    "OutputWriteError",
    "UnknownImporterError",
]


class ImportFailedError(DynamicMcpError):
    """`dynamic-mcp import` stopped before writing anything."""


class UnknownImporterError(ImportFailedError):
    """The tool name matches no importer (nor any of their aliases)."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = sorted(valid)
        super().__init__(
            f"No importer for {name!r}. Valid tools: {', '.join(self.valid)} "
            f"(case does not matter; aliases such as claude-code and vs-code work too)."
        )


class NoProjectScopeError(ImportFailedError):
    """The tool keeps MCP servers only in its user config, so there is no project to import."""

    def __init__(self, tool: str, title: str) -> None:
        self.tool = tool
        super().__init__(
            f"{title} keeps MCP servers only in its user config, not per project. "
            f"Import that with: dynamic-mcp import {tool} --global"
        )


class ImportSourceMissingError(ImportFailedError):
    """None of the places the tool keeps its config holds a file."""

    def __init__(self, title: str, scope: str, looked_at: Iterable[Path]) -> None:
        self.title = title
        self.scope = scope
        self.looked_at = list(looked_at)
        where = ", ".join(str(path) for path in self.looked_at)
        if scope == "project":
            what = "project config"
            hint = "Run this in the project's directory, or add --global to import the user config."
        else:
            what = "user config (--global)"
            hint = "Drop --global to import the current directory's project config instead."
        super().__init__(f"No {title} {what}: looked at {where}. {hint}")


class ImportSourceInvalidError(ImportFailedError):
    """The tool's config file exists but cannot be read, decoded or parsed.

    `line` and `column` are set when the parser located the problem.
    """

    def __init__(
        self, file: Path, problem: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        self.file = file
        self.problem = problem
        self.line = line
        self.column = column
        where = str(file) if line is None else f"{file}:{line}:{column}"
        super().__init__(f"{where}: {problem}")


class OutputExistsError(ImportFailedError):
    """The output file exists, and without a terminal (or with --yes) nobody can be asked."""

    def __init__(self, output: Path) -> None:
        self.output = output
        super().__init__(
            f"{output} already exists. Pass --force to replace it, "
            f"or --merge to add the imported servers to it."
        )


class OutputWriteError(ImportFailedError):
    """The output file, or the folder it goes in, cannot be created or replaced."""

    def __init__(self, output: Path, reason: str) -> None:
        self.output = output
        self.reason = reason
        super().__init__(f"Cannot write {output}: {reason}. Nothing was changed.")


class ImportCancelledError(ImportFailedError):
    """The user declined to overwrite, pressed Ctrl-C, or stdin ended during a question."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Import cancelled ({reason}); nothing was written.")


class NothingToImportError(ImportFailedError):
    """The source lists no server, or every server it lists had to be skipped."""

    def __init__(self, source: Path, skipped: dict[str, str]) -> None:
        self.source = source
        self.skipped = dict(skipped)
        if not skipped:
            problem = "it lists no MCP servers"
        else:
            reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
            problem = f"every server was skipped ({reasons})"
        super().__init__(f"Nothing to import from {source}: {problem}.")
