"""Where a machine keeps per-user config, for the OS the import is told to assume.

    dirs = UserDirs.of("darwin", os.environ)
    dirs.app_data() / "Claude"   # ~/Library/Application Support/Claude

Guarantees: nothing here touches the file system; every path is derived from the
platform and the environment it is given, so tests can ask for macOS or Windows paths
on any machine by passing the platform and a HOME (or USERPROFILE/APPDATA) of their own.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["PLATFORMS", "Platform", "UserDirs", "current_platform"]

Platform = Literal["linux", "darwin", "win32"]
PLATFORMS: tuple[Platform, ...] = ("linux", "darwin", "win32")


def current_platform() -> Platform:
    """This machine's platform, folding the Unix-likes other than macOS into linux."""
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform in ("win32", "cygwin"):
        return "win32"
    return "linux"


@dataclass(frozen=True)
class UserDirs:
    """The user's home and the folders apps keep settings in, for one platform."""

    platform: Platform
    home: Path
    #: %APPDATA% (roaming app data) on Windows; unused elsewhere.
    appdata: Path
    #: $XDG_CONFIG_HOME or ~/.config; opencode uses it on every platform.
    xdg_config: Path
    #: The environment the paths came from, for tool-specific overrides (CODEX_HOME).
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, platform: Platform, env: Mapping[str, str]) -> UserDirs:
        """Derive the folders from the environment as the tools themselves do."""
        if platform == "win32":
            home = Path(env.get("USERPROFILE") or env.get("HOME") or Path.home())
        else:
            home = Path(env.get("HOME") or Path.home())
        appdata = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        xdg = env.get("XDG_CONFIG_HOME", "")
        # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
        xdg_config = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
        return cls(platform, home, appdata, xdg_config, dict(env))

    def app_data(self) -> Path:
        """The folder desktop apps (Electron: Claude, VS Code) keep their settings in."""
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support"
        if self.platform == "win32":
            return self.appdata
        return self.xdg_config
