"""dynamic-mcp's own folder, `~/.dynamic-mcp`, and the files in it named after groups.

    group_file(oauth_token_dir(), "github", ".json")   # ~/.dynamic-mcp/oauth-servers/github.json

Guarantees: `$DYNAMIC_MCP_HOME`, when set, replaces `~/.dynamic-mcp` (and HOME is read
when asked, not at import); a file named after a group stays directly inside its folder,
whatever the name.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_ENV_VAR", "dynamic_mcp_home", "group_file", "oauth_token_dir"]

HOME_ENV_VAR = "DYNAMIC_MCP_HOME"


def dynamic_mcp_home() -> Path:
    """`$DYNAMIC_MCP_HOME`, else `~/.dynamic-mcp`."""
    return Path(os.environ.get(HOME_ENV_VAR) or Path.home() / ".dynamic-mcp")


def oauth_token_dir() -> Path:
    """Where OAuth tokens live between runs, as in the Rust dynamic-mcp."""
    return dynamic_mcp_home() / "oauth-servers"


def group_file(base: Path, group: str, suffix: str = "") -> Path:
    """`base/<group><suffix>`, refused if the name would lead anywhere but directly inside.

    The config already allows only plain names; this is the second lock on the same door.

    Raises:
        ValueError: the group name is not a plain file name.
    """
    path = base / f"{group}{suffix}"
    if group in ("", ".", "..") or path.parent != base or os.sep in group or "/" in group:
        raise ValueError(f"group name {group!r} cannot name a file under {base}")
    return path
