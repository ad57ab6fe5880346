"""`dynamic-mcp import <tool>`: convert another tool's MCP config into dynamic-mcp.json.

    importer = find("Claude-Code")      # the Claude Code importer
    importer.parse(Path(".mcp.json").read_text())

One module per tool or per family of tools sharing a format; this table lists them all.
The command itself (questions, output, summary) is `importers.command`.
"""

from __future__ import annotations

from importers.claude import CLAUDE, CLAUDE_DESKTOP
from importers.cline import CLINE, KILOCODE
from importers.codex import CODEX
from importers.cursor import CURSOR
from importers.gemini import ANTIGRAVITY, GEMINI
from importers.importer import Importer
from importers.opencode import OPENCODE
from importers.vscode import VSCODE

__all__ = ["IMPORTERS", "Importer", "find"]

IMPORTERS: tuple[Importer, ...] = (
    CURSOR,
    OPENCODE,
    CLAUDE_DESKTOP,
    CLAUDE,
    VSCODE,
    CLINE,
    KILOCODE,
    CODEX,
    GEMINI,
    ANTIGRAVITY,
)


def find(name: str) -> Importer | None:
    """The importer for a tool name or alias: any case, `_` and `-` alike, spaces ignored."""
    wanted = _folded(name)
    for importer in IMPORTERS:
        if wanted in {_folded(known) for known in importer.names()}:
            return importer
    return None


def _folded(name: str) -> str:
    return name.strip().casefold().replace("_", "-").replace(" ", "-")
