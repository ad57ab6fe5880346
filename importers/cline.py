"""Cline and Kilo Code, VS Code extensions that keep `mcpServers` JSON per project and in
the extension's global storage.

Formats:
- Cline (https://docs.cline.bot/mcp/configuring-mcp-servers and its settings schema,
  checked Nov 2026): `type` is stdio, sse or streamableHttp (older files say
  `transportType`), a `url` with no type is SSE; `disabled`, `autoApprove`, and a
  `timeout` in seconds per tool call. The Cline CLI keeps the same file under ~/.cline.
- Kilo Code (https://kilo.ai/docs/features/mcp/using-mcp-in-cli, checked Nov 2026):
  `type` is stdio, sse or streamable-http; `alwaysAllow`, `disabled`, and a `timeout`
  in seconds. The Kilo Code CLI keeps its file under ~/.kilocode/cli.
Both expand `${env:NAME}` in these strings.
"""

from __future__ import annotations

from pathlib import Path

from importers.entries import Parsed
from importers.formats import decode, section
from importers.importer import Importer
from importers.mcpservers import Dialect, Timeout, parse_servers
from importers.paths import UserDirs

__all__ = ["CLINE", "KILOCODE", "parse"]

DIALECT = Dialect(
    syntaxes=frozenset({"env-colon"}),
    editor=True,
    bare_url="sse",
    timeout=Timeout(seconds_per_unit=1.0),
)


def parse(text: str) -> Parsed:
    """The servers of a Cline or Kilo Code MCP settings file."""
    return parse_servers(section(decode("jsonc", text), "mcpServers") or {}, DIALECT)


def _global_storage(dirs: UserDirs, extension: str) -> Path:
    """The VS Code global-storage settings folder of one extension."""
    return dirs.app_data() / "Code" / "User" / "globalStorage" / extension / "settings"


def cline_paths(dirs: UserDirs) -> list[Path]:
    """The extension's settings file, then the Cline CLI's."""
    return [
        _global_storage(dirs, "saoudrizwan.claude-dev") / "cline_mcp_settings.json",
        dirs.home / ".cline" / "data" / "settings" / "cline_mcp_settings.json",
    ]


def kilocode_paths(dirs: UserDirs) -> list[Path]:
    """The extension's settings file, then the Kilo Code CLI's."""
    return [
        _global_storage(dirs, "kilocode.kilo-code") / "mcp_settings.json",
        dirs.home / ".kilocode" / "cli" / "global" / "settings" / "mcp_settings.json",
    ]


CLINE = Importer(
    name="cline",
    title="Cline",
    parse=parse,
    global_paths=cline_paths,
    project=(".cline/mcp.json",),
)

KILOCODE = Importer(
    name="kilocode",
    title="Kilo Code",
    parse=parse,
    global_paths=kilocode_paths,
    project=(".kilocode/mcp.json",),
    aliases=("kilo-code", "kilo"),
)
