"""VS Code: `.vscode/mcp.json` in the workspace, `mcp.json` in the user profile.

Format (VS Code MCP configuration reference,
https://code.visualstudio.com/docs/copilot/reference/mcp-configuration, checked Nov 2026):
`{"inputs": [...], "servers": {name: {type, command, args, env, envFile} |
{type, url, headers}}}`; `type` is stdio, http or sse; `${env:NAME}` reads the
environment, `${input:ID}` asks the user (declared in `inputs`), and
`${workspaceFolder}`-style predefined variables are the editor's own. The file is JSONC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from importers.entries import Parsed
from importers.formats import decode, section
from importers.importer import Importer
from importers.mcpservers import Dialect, parse_servers
from importers.paths import UserDirs

__all__ = ["VSCODE", "parse"]

DIALECT = Dialect(syntaxes=frozenset({"env-colon"}), editor=True)


def parse(text: str) -> Parsed:
    """The servers of a VS Code mcp.json; `${input:ID}` notes quote the input's description."""
    data = decode("jsonc", text)
    return parse_servers(section(data, "servers") or {}, DIALECT, inputs=_inputs(data))


def _inputs(data: dict[str, Any]) -> dict[str, str]:
    """Input ids -> their descriptions, so a warning can say what the input was for."""
    inputs = data.get("inputs")
    if not isinstance(inputs, list):
        return {}
    return {
        item["id"]: str(item.get("description") or "")
        for item in inputs
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    }


def global_paths(dirs: UserDirs) -> list[Path]:
    """The default profile's mcp.json: Code/User/ in the OS's app-data folder."""
    return [dirs.app_data() / "Code" / "User" / "mcp.json"]


VSCODE = Importer(
    name="vscode",
    title="VS Code",
    parse=parse,
    global_paths=global_paths,
    project=(".vscode/mcp.json",),
    aliases=("vs-code", "code", "visualstudiocode", "visual-studio-code"),
)
