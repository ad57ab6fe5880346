"""Every tool's realistic config, project and user scope, imported through the real CLI.

Each case places one fixture where the tool keeps it (for a platform, under a temp HOME),
runs `dynamic-mcp import` with no stdin, and compares the written file with the expected
one exactly: content, and server order, which must follow the source. What could not be
converted is compared too: the summary's "Skipped" and "Needs attention" lines, with the
expected ones in `<tool>/<scope>.notes.txt` beside the expected output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from importing import FIXTURES, Workspace, expected

VSCODE_GLOBAL_STORAGE = "home/.config/Code/User/globalStorage"
WINDOWS_STORAGE = "home/AppData/Roaming/Code/User/globalStorage"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    fixture: str
    place: str  # relative to the workspace root: home/... or project/...
    expected: str
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    # Cursor: ${env:X} rewritten; editor variables kept and reported; /sse URL read as SSE.
    "cursor-project": Case(
        ("cursor",), "cursor/project.json", "project/.cursor/mcp.json", "cursor/project.out.json"
    ),
    # Cursor's OAuth block keeps client id and scopes; the secret is reported.
    "cursor-global": Case(
        ("cursor", "--global"),
        "cursor/global.json",
        "home/.cursor/mcp.json",
        "cursor/global.out.json",
    ),
    # opencode V1 JSONC with comments and trailing commas: command arrays, environment.
    "opencode-project": Case(
        ("opencode",),
        "opencode/project.jsonc",
        "project/.opencode/opencode.jsonc",
        "opencode/project.out.json",
    ),
    # opencode V2 layout (mcp.servers, disabled), found via $XDG_CONFIG_HOME.
    "opencode-global": Case(
        ("OpenCode", "-g"),
        "opencode/global.json",
        "xdg/opencode/opencode.json",
        "opencode/global.out.json",
        env={"XDG_CONFIG_HOME": "{root}/xdg"},
    ),
    "claude-desktop-macos": Case(
        ("claude-desktop", "--global", "--platform", "darwin"),
        "claude-desktop/global.json",
        "home/Library/Application Support/Claude/claude_desktop_config.json",
        "claude-desktop/global.out.json",
    ),
    # Windows: %APPDATA% decides, wherever it points.
    "claude-desktop-windows": Case(
        ("claude-desktop", "--global", "--platform", "win32"),
        "claude-desktop/global.json",
        "roaming/Claude/claude_desktop_config.json",
        "claude-desktop/global.out.json",
        env={"APPDATA": "{root}/roaming", "USERPROFILE": "{root}/home"},
    ),
    # Claude Code .mcp.json: ${VAR:-default} kept as is; a ws transport is skipped.
    "claude-project": Case(
        ("claude-code",), "claude/project.json", "project/.mcp.json", "claude/project.out.json"
    ),
    # ~/.claude.json: user servers plus those kept for this directory, which win.
    "claude-global": Case(
        ("Claude", "--global"),
        "claude/global.json",
        "home/.claude.json",
        "claude/global.out.json",
    ),
    # VS Code: ${input:ID} kept and reported with the input's description.
    "vscode-project": Case(
        ("vs-code",),
        "vscode/project.jsonc",
        "project/.vscode/mcp.json",
        "vscode/project.out.json",
    ),
    "vscode-global-macos": Case(
        ("vscode", "--global", "--platform", "darwin"),
        "vscode/global.json",
        "home/Library/Application Support/Code/User/mcp.json",
        "vscode/global.out.json",
    ),
    # Cline: streamableHttp, a bare url is SSE, legacy transportType, timeout in seconds.
    "cline-project": Case(
        ("cline",), "cline/project.json", "project/.cline/mcp.json", "cline/project.out.json"
    ),
    "cline-global": Case(
        ("CLINE", "--global"),
        "cline/global.json",
        f"{VSCODE_GLOBAL_STORAGE}/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
        "cline/global.out.json",
    ),
    "kilocode-project": Case(
        ("kilo-code",),
        "kilocode/project.json",
        "project/.kilocode/mcp.json",
        "kilocode/project.out.json",
    ),
    # Windows without %APPDATA% set: the roaming folder under the user profile.
    "kilocode-global-windows": Case(
        ("kilocode", "--global", "--platform", "win32"),
        "kilocode/global.json",
        f"{WINDOWS_STORAGE}/kilocode.kilo-code/settings/mcp_settings.json",
        "kilocode/global.out.json",
        env={"USERPROFILE": "{root}/home"},
    ),
    # Codex: [mcp_servers] and the older [mcp]; bearer and env headers become ${VAR}.
    "codex-global": Case(
        ("codex-cli", "--global"),
        "codex/global.toml",
        "home/.codex/config.toml",
        "codex/global.out.json",
    ),
    "codex-project": Case(
        ("codex",), "codex/project.toml", "project/.codex/config.toml", "codex/project.out.json"
    ),
    # Gemini: $VAR rewritten, httpUrl is http, timeout in ms for every request kind.
    "gemini-project": Case(
        ("gemini-cli",),
        "gemini/project.json",
        "project/.gemini/settings.json",
        "gemini/project.out.json",
    ),
    "gemini-global": Case(
        ("gemini", "--global"),
        "gemini/global.json",
        "home/.gemini/settings.json",
        "gemini/global.out.json",
    ),
    "antigravity-global": Case(
        ("antigravity", "--global"),
        "antigravity/global.json",
        "home/.gemini/antigravity/mcp_config.json",
        "antigravity/global.out.json",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_tool_config_imports_to_the_expected_dynamic_mcp_json(tmp_path, case: Case):
    workspace = Workspace(tmp_path)
    workspace.place(case.fixture, case.place)

    result = workspace.run(*case.args, **case.env)

    assert result.code == 0, result.stderr
    want = expected(case.expected)
    got = result.written()
    assert got == want
    assert list(got["mcpServers"]) == list(want["mcpServers"])
    assert result.stdout == ""  # the conversation is on stderr
    notes = FIXTURES / case.expected.replace(".out.json", ".notes.txt")
    assert attention_of(result.stderr, workspace) == notes.read_text(encoding="utf-8")


def attention_of(stderr: str, workspace: Workspace) -> str:
    """The summary's lines about what was skipped or needs attention, paths made portable."""
    lines = stderr.replace(str(workspace.root), "{{ROOT}}").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line in ("Skipped:", "Needs attention:")),
        len(lines),
    )
    end = next((i for i, line in enumerate(lines) if line == "Run it with:"), len(lines))
    return "\n".join(lines[start:end]) + "\n"
