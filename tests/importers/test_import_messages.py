"""The messages a user reads when an import cannot go ahead, pinned end to end.

Each is one line on stderr from the installed script, exit code 2, nothing on stdout,
and nothing written. (Every failure is also checked by type in test_import_command.)
"""

from __future__ import annotations

from importing import Workspace


def test_an_unknown_tool_is_one_line_listing_the_valid_names(tmp_path):
    result = Workspace(tmp_path).run("cursr")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "dynamic-mcp: No importer for 'cursr'. Valid tools: antigravity, claude, "
        "claude-desktop, cline, codex, cursor, gemini, kilocode, opencode, vscode "
        "(case does not matter; aliases such as claude-code and vs-code work too).\n"
    )


def test_a_missing_project_config_names_the_path_and_suggests_global(tmp_path):
    workspace = Workspace(tmp_path)

    result = workspace.run("cursor")

    assert result.code == 2
    assert result.stderr == (
        f"dynamic-mcp: No Cursor project config: looked at {workspace.project}/.cursor/mcp.json. "
        "Run this in the project's directory, or add --global to import the user config.\n"
    )


def test_an_unparseable_source_names_its_file_line_and_column(tmp_path):
    workspace = Workspace(tmp_path)
    source = workspace.root / "project/opencode.jsonc"
    source.write_text(
        "{\n"
        "  // servers\n"
        '  "mcp": {\n'
        '    "x": {"type": "local" "command": []},\n'  # line 4: the comma is missing
        "  },\n"
        "}\n"
    )

    result = workspace.run("opencode")

    assert result.code == 2
    assert result.stderr.startswith(f"dynamic-mcp: {source}:4:27: invalid JSON: ")
    assert result.stderr.count("\n") == 1
    assert not result.output.exists()


def test_an_existing_output_is_not_touched_without_a_terminal_or_force(tmp_path):
    workspace = Workspace(tmp_path)
    workspace.place("codex/project.toml", "project/.codex/config.toml")
    result_output = workspace.project / "dynamic-mcp.json"
    result_output.write_text("mine\n")

    result = workspace.run("codex", "--yes")

    assert result.code == 2
    assert result.stderr.endswith(
        "dynamic-mcp: dynamic-mcp.json already exists. Pass --force to replace it, "
        "or --merge to add the imported servers to it.\n"
    )
    assert result_output.read_text() == "mine\n"
