"""An interactive import, driven through a pseudo-terminal as a person at a keyboard would.

The installed script runs with a pty as stdin, stdout and stderr, so it sees a terminal
and asks. Every read waits on the pty with a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

import pytest
from importing import SCRIPT, Workspace

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")

ANSWER_WITHIN = 30.0  # seconds for the next prompt; the first waits for fastmcp to import


class Terminal:
    """The keyboard-and-screen end of a pty: waits for text, then types."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.screen = ""
        self._seen = 0

    def expect(self, text: str) -> None:
        """Read until `text` appears after what was already matched, or fail at the deadline."""
        deadline = time.monotonic() + ANSWER_WITHIN
        while (found := self.screen.find(text, self._seen)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                pytest.fail(f"never saw {text!r}; the screen was:\n{self.screen}")
        self._seen = found + len(text)

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def read_to_end(self) -> None:
        """Read until the program closes the terminal (bounded by the deadline)."""
        deadline = time.monotonic() + ANSWER_WITHIN
        while (remaining := deadline - time.monotonic()) > 0 and self._read(remaining):
            pass

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # Linux reports EIO once the child has closed its end
            return False
        self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return bool(chunk)


def test_an_interactive_import_asks_about_each_server_and_writes_the_answers(tmp_path):
    workspace = Workspace(tmp_path)
    workspace.place("cursor/project.json", "project/.cursor/mcp.json")
    output = workspace.project / "dynamic-mcp.json"
    output.write_text('{"mcpServers": {}}\n')
    controller, terminal_end = os.openpty()
    process = subprocess.Popen(
        [SCRIPT, "import", "cursor"],
        cwd=workspace.project,
        env=workspace.env(),
        stdin=terminal_end,
        stdout=terminal_end,
        stderr=terminal_end,
        close_fds=True,
    )
    os.close(terminal_end)
    term = Terminal(controller)
    try:
        term.expect("dynamic-mcp.json already exists. Replace it, merge")
        term.type("r")
        term.expect("npx -y @modelcontextprotocol/server-filesystem ${HOME}/src")
        term.expect("What is filesystem for?")
        term.type("")  # an empty description is refused
        term.expect("A description is required")
        term.expect("What is filesystem for?")
        term.type("Files of the projects under ~/src")
        term.expect("Keep all features (tools, resources, prompts)? [Y/n]")
        term.type("n")
        term.expect("Offer tools? [Y/n]")
        term.type("")
        term.expect("Offer resources? [Y/n]")
        term.type("n")
        term.expect("Offer prompts? [Y/n]")
        term.type("n")
        term.expect("env: GITHUB_PERSONAL_ACCESS_TOKEN")
        term.expect("What is github for?")
        term.type("GitHub issues and pull requests")
        term.expect("Keep all features")
        term.type("")
        term.expect("What is linear for?")
        term.type("Linear tickets")
        term.expect("Keep all features")
        term.type("y")
        term.expect("What is notion for?")
        term.type("Notion pages")
        term.expect("Keep all features")
        term.type("yes")
        term.expect("Run it with:")
        term.read_to_end()
        assert process.wait(timeout=ANSWER_WITHIN) == 0, term.screen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=ANSWER_WITHIN)
        os.close(controller)

    assert "Not asking" not in term.screen
    assert "half-written: has neither 'command' (stdio) nor a URL (http/sse)" in term.screen
    assert json.loads(output.read_text()) == {
        "mcpServers": {
            "filesystem": {
                "description": "Files of the projects under ~/src",
                "command": "npx",
                "args": [
                    "-y",
                    "@modelcontextprotocol/server-filesystem",
                    "${HOME}/src",
                    "${workspaceFolder}",
                ],
                "features": {"resources": False, "prompts": False},
            },
            "github": {
                "description": "GitHub issues and pull requests",
                "command": "docker",
                "args": [
                    "run",
                    "-i",
                    "--rm",
                    "-e",
                    "GITHUB_PERSONAL_ACCESS_TOKEN",
                    "ghcr.io/github/github-mcp-server",
                ],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}"},
            },
            "linear": {
                "description": "Linear tickets",
                "type": "sse",
                "url": "https://mcp.linear.app/sse",
            },
            "notion": {
                "description": "Notion pages",
                "url": "https://mcp.notion.com/mcp",
                "headers": {"Authorization": "Bearer ${NOTION_TOKEN}"},
            },
        }
    }
