"""The interface every tool's importer fills in: where its config lives and how to read it.

    CURSOR = Importer(
        name="cursor", title="Cursor", parse=parse,
        project=(".cursor/mcp.json",), global_paths=lambda dirs: [dirs.home / ".cursor/mcp.json"],
    )

Guarantees: an importer is plain data plus two pure functions; reading files, asking the
user and writing the output all happen in `importers.command`, so each tool's module can
be tested from text alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from importers.entries import Parsed
from importers.paths import UserDirs

__all__ = ["Importer"]


@dataclass(frozen=True)
class Importer:
    """One AI tool whose MCP server config `dynamic-mcp import` can read."""

    #: The canonical name on the command line: `dynamic-mcp import <name>`.
    name: str
    #: The tool's own name, for messages.
    title: str
    #: Text of the tool's config file -> its servers, in file order.
    parse: Callable[[str], Parsed]
    #: Where the user (global) config may be, most likely first; the first that exists wins.
    global_paths: Callable[[UserDirs], list[Path]]
    #: Where a project config may be, relative to the working directory; empty: none.
    project: tuple[str, ...] = ()
    #: Other accepted names (compared case-insensitively, `_` read as `-`).
    aliases: tuple[str, ...] = ()
    #: Servers the user config keeps for one directory (Claude Code's `projects`), if any.
    for_directory: Callable[[str, Path], Parsed] | None = None

    def __repr__(self) -> str:
        return f"Importer({self.name!r})"

    def names(self) -> tuple[str, ...]:
        """Every name that selects this importer."""
        return (self.name, *self.aliases)
