"""dynamic-mcp's own folder, `~/.dynamic-mcp`, and the files in it named after groups.

    group_file(oauth_token_dir(), "github", ".json")   # ~/.dynamic-mcp/oauth-servers/github.json
    user_prefix("alice@example.com")                   # users/alice@example.com: a user's part
    user_of_segment("auth0%7C123")                     # auth0|123: the name a segment stands for

Guarantees: `$DYNAMIC_MCP_HOME`, when set, replaces `~/.dynamic-mcp` (and HOME is read
when asked, not at import); a file named after a group stays directly inside its folder,
whatever the name; a user's name becomes one path segment whatever it holds (`/`, `..`,
`*`: percent-encoded), and two names never share a segment.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = [
    "HOME_ENV_VAR",
    "USERS_AREA",
    "dynamic_mcp_home",
    "group_file",
    "oauth_token_dir",
    "user_of_segment",
    "user_prefix",
]

HOME_ENV_VAR = "DYNAMIC_MCP_HOME"
USERS_AREA = "users"  # a gateway's named users keep their own part of the store under it


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


def user_prefix(user: str) -> str:
    """`users/<user>`, the part of the store in front of a named user's areas.

    A user's name comes from a users file or a JWT claim (an email, `auth0|123`): it is
    percent-encoded to one safe segment, `%` included, so no two names meet.

    Raises:
        ValueError: the name is empty.
    """
    if not user:
        raise ValueError("a user's name cannot be empty")
    segment = quote(user, safe="@+-_.")
    if segment in (".", ".."):  # a folder's own names, never a user's
        segment = segment.replace(".", "%2E")
    return f"{USERS_AREA}/{segment}"


def user_of_segment(segment: str) -> str:
    """The user's name that `user_prefix` made the segment `segment` of."""
    return unquote(segment)
