"""Run `dynamic-mcp import` as a user would: the installed script, in a temp HOME and project.

Each run gets a fresh directory with `home/` (HOME, and USERPROFILE for Windows paths)
and `project/` (the working directory), an environment without the variables that would
point the tools elsewhere (XDG_CONFIG_HOME, APPDATA, CODEX_HOME), and no stdin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent
SCRIPT = str(Path(sys.executable).with_name("dynamic-mcp"))
if not Path(SCRIPT).exists():  # an interpreter outside the project's venv
    SCRIPT = shutil.which("dynamic-mcp") or SCRIPT
RUN_TIMEOUT = 60.0  # seconds; a run takes about 3 s, most of it importing fastmcp
MOVED_BY = ("XDG_CONFIG_HOME", "APPDATA", "USERPROFILE", "CODEX_HOME", "DYNAMIC_MCP_CONFIG")


@dataclass(frozen=True)
class Result:
    """What one run left behind."""

    code: int
    stdout: str
    stderr: str
    output: Path

    def written(self) -> dict[str, Any]:
        """The dynamic-mcp.json the run wrote."""
        data: dict[str, Any] = json.loads(self.output.read_text(encoding="utf-8"))
        return data


class Workspace:
    """A temp directory with a home and a project, where fixtures are placed and imported."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.project = root / "project"
        self.home.mkdir()
        self.project.mkdir()

    def place(self, fixture: str, where: str) -> Path:
        """Copy a fixture to `where` (relative to the root); {{PROJECT}} becomes its path."""
        target = self.root / where
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (FIXTURES / fixture).read_text(encoding="utf-8")
        target.write_text(text.replace("{{PROJECT}}", str(self.project)), encoding="utf-8")
        return target

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a run: HOME here, nothing that moves the tools' configs."""
        env = {key: value for key, value in os.environ.items() if key not in MOVED_BY}
        env["HOME"] = str(self.home)
        env["FASTMCP_CHECK_FOR_UPDATES"] = "off"
        env.update({key: value.format(root=self.root) for key, value in extra.items()})
        return env

    def run(self, *args: str, output: str = "dynamic-mcp.json", **env: str) -> Result:
        """Run `dynamic-mcp import ARGS` in the project with stdin closed."""
        completed = subprocess.run(
            [SCRIPT, "import", *args],
            cwd=self.project,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return Result(
            completed.returncode, completed.stdout, completed.stderr, self.project / output
        )


def expected(name: str) -> dict[str, Any]:
    """An expected dynamic-mcp.json from the fixtures."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data
