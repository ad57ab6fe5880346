"""The importers' pure parts, in-process: names, per-OS paths, variable syntax, parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from importers import IMPORTERS, find
from importers.claude import parse_for_directory
from importers.entries import Found, Unusable
from importers.formats import SourceSyntaxError, decode
from importers.opencode import parse as parse_opencode
from importers.paths import UserDirs
from importers.variables import normalize, unresolvable
from importers.vscode import parse as parse_vscode

HOME = Path("/home/ada")


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("cursor", "cursor"),
        ("CURSOR", "cursor"),  # case never matters
        ("claude-code", "claude"),
        ("Claude_Code", "claude"),  # underscores read as dashes
        ("claude-desktop", "claude-desktop"),
        ("vs-code", "vscode"),
        ("VSCode", "vscode"),
        ("codex-cli", "codex"),
        ("gemini-cli", "gemini"),
        ("kilo-code", "kilocode"),
        ("open-code", "opencode"),
        ("cline", "cline"),
        ("antigravity", "antigravity"),
    ],
)
def test_tool_names_and_aliases_are_matched_case_insensitively(typed: str, name: str):
    importer = find(typed)

    assert importer is not None
    assert importer.name == name


def test_an_unknown_name_matches_no_importer():
    assert find("cursr") is None


def test_the_table_has_the_ten_tools_of_the_issue():
    assert sorted(importer.name for importer in IMPORTERS) == [
        "antigravity",
        "claude",
        "claude-desktop",
        "cline",
        "codex",
        "cursor",
        "gemini",
        "kilocode",
        "opencode",
        "vscode",
    ]


MAC = "Library/Application Support"
WIN_ROAMING = "C:/Users/ada/AppData/Roaming"


@pytest.mark.parametrize(
    ("tool", "platform", "env", "first_path"),
    [
        ("claude-desktop", "darwin", {}, f"/home/ada/{MAC}/Claude/claude_desktop_config.json"),
        ("claude-desktop", "linux", {}, "/home/ada/.config/Claude/claude_desktop_config.json"),
        (
            "claude-desktop",
            "win32",
            {"APPDATA": WIN_ROAMING},
            f"{WIN_ROAMING}/Claude/claude_desktop_config.json",
        ),
        # Without APPDATA, Windows falls back to the roaming folder of the profile.
        (
            "claude-desktop",
            "win32",
            {"USERPROFILE": "/profiles/ada"},
            "/profiles/ada/AppData/Roaming/Claude/claude_desktop_config.json",
        ),
        ("vscode", "darwin", {}, f"/home/ada/{MAC}/Code/User/mcp.json"),
        ("vscode", "linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/Code/User/mcp.json"),
        ("vscode", "win32", {"APPDATA": WIN_ROAMING}, f"{WIN_ROAMING}/Code/User/mcp.json"),
        (
            "cline",
            "darwin",
            {},
            f"/home/ada/{MAC}/Code/User/globalStorage/saoudrizwan.claude-dev/settings/"
            "cline_mcp_settings.json",
        ),
        (
            "kilocode",
            "win32",
            {"APPDATA": WIN_ROAMING},
            f"{WIN_ROAMING}/Code/User/globalStorage/kilocode.kilo-code/settings/mcp_settings.json",
        ),
        # opencode uses XDG folders on every OS, macOS included.
        ("opencode", "darwin", {}, "/home/ada/.config/opencode/opencode.jsonc"),
        (
            "opencode",
            "linux",
            {"XDG_CONFIG_HOME": "relative"},
            "/home/ada/.config/opencode/opencode.jsonc",
        ),
        ("cursor", "win32", {"USERPROFILE": "/profiles/ada"}, "/profiles/ada/.cursor/mcp.json"),
        ("claude", "darwin", {}, "/home/ada/.claude.json"),
        ("codex", "linux", {}, "/home/ada/.codex/config.toml"),
        ("codex", "linux", {"CODEX_HOME": "/opt/codex"}, "/opt/codex/config.toml"),
        (
            "gemini",
            "win32",
            {"USERPROFILE": "/profiles/ada"},
            "/profiles/ada/.gemini/settings.json",
        ),
        ("antigravity", "darwin", {}, "/home/ada/.gemini/antigravity/mcp_config.json"),
    ],
)
def test_user_config_paths_follow_the_platform_and_environment(tool, platform, env, first_path):
    importer = find(tool)
    assert importer is not None
    dirs = UserDirs.of(platform, {"HOME": str(HOME), **env})

    assert importer.global_paths(dirs)[0].as_posix() == first_path


@pytest.mark.parametrize(
    ("text", "syntaxes", "normalized"),
    [
        ("${env:TOKEN}", {"env-colon"}, "${TOKEN}"),
        ("Bearer ${env:A} and ${env:B}", {"env-colon"}, "Bearer ${A} and ${B}"),
        ("{env:TOKEN}", {"opencode"}, "${TOKEN}"),
        ("$TOKEN/${OTHER}", {"dollar"}, "${TOKEN}/${OTHER}"),
        # Only the source's own syntax is rewritten: elsewhere $X may be meant literally.
        ("$TOKEN", {"env-colon"}, "$TOKEN"),
        ("${input:key}", {"env-colon"}, "${input:key}"),
        ("${VAR:-fallback}", {"dollar"}, "${VAR:-fallback}"),
    ],
)
def test_environment_references_become_dollar_brace_var(text, syntaxes, normalized):
    assert normalize(text, syntaxes) == normalized


def test_placeholders_dynamic_mcp_cannot_resolve_are_reported_by_name():
    problems = list(
        unresolvable(
            "${input:pat} ${workspaceFolder} ${/} ${OK} ${OK:-x}",
            {"pat": "GitHub PAT"},
            editor=True,
        )
    )

    assert len(problems) == 3
    assert "${input:pat} (GitHub PAT)" in problems[0]
    assert "${workspaceFolder}" in problems[1]
    assert "${/}" in problems[2]


@pytest.mark.parametrize(
    ("fmt", "text", "line", "column"),
    [
        ("json", '{\n  "a": 1,\n}', 3, 1),  # strict JSON: no trailing comma
        ("jsonc", '{\n  // fine\n  "a": [1,],\n  "b" 2\n}', 4, 7),
        ("jsonc", "", 1, 1),
        ("toml", "[mcp_servers.x]\ncommand = \n", 2, 11),
        ("json", "[1, 2]", 1, 1),  # valid JSON, but not an object
    ],
)
def test_syntax_errors_carry_the_line_and_column(fmt, text, line, column):
    with pytest.raises(SourceSyntaxError) as caught:
        decode(fmt, text)

    assert (caught.value.line, caught.value.column) == (line, column)


def test_a_servers_object_of_the_wrong_type_is_a_syntax_error():
    with pytest.raises(SourceSyntaxError):
        parse_vscode('{"servers": ["not", "an", "object"]}')


def test_an_opencode_v1_server_named_servers_is_not_read_as_the_v2_layout():
    parsed = parse_opencode('{"mcp": {"servers": {"type": "local", "command": ["srv"]}}}')

    assert parsed == {"servers": Found({"command": "srv"})}


def test_claude_directory_entries_match_windows_keys_in_any_slash_and_case():
    text = (
        '{"projects": {"C:\\\\Users\\\\Ada\\\\Proj\\\\": {"mcpServers": {"a": {"command": "x"}}}}}'
    )

    assert list(parse_for_directory(text, Path("c:/users/ada/proj"))) == ["a"]


def test_claude_directory_entries_are_case_sensitive_on_posix_paths():
    text = '{"projects": {"/home/Ada/proj": {"mcpServers": {"a": {"command": "x"}}}}}'

    assert parse_for_directory(text, Path("/home/ada/proj")) == {}


def test_every_source_field_is_used_or_named_in_a_note():
    parsed = parse_vscode('{"servers": {"s": {"command": "x", "gallery": true, "sandbox": {}}}}')

    server = parsed["s"]
    assert isinstance(server, Found)
    assert server.notes == ("not carried over: gallery, sandbox (no dynamic-mcp equivalent)",)


@pytest.mark.parametrize(
    ("entry", "reason_mentions"),
    [
        ('{"command": ["not", "a", "string"]}', "'command' must be a string"),
        ('{"command": "x", "args": "-y pkg"}', "'args' must be a list of strings"),
        ('{"type": "websocket", "url": "ws://x"}', "websocket"),
        ('"just a string"', "expected an object"),
    ],
)
def test_an_entry_that_cannot_be_expressed_is_unusable_with_the_reason(entry, reason_mentions):
    parsed = parse_vscode(f'{{"servers": {{"s": {entry}}}}}')

    server = parsed["s"]
    assert isinstance(server, Unusable)
    assert reason_mentions in server.reason


@pytest.mark.parametrize(
    ("importer", "text", "tools"),
    [
        (
            "gemini",
            '{"mcpServers": {"s": {"command": "x", "excludeTools": ["rm_*"], '
            '"includeTools": ["ls", "rm_all"]}}}',
            {"include": ["ls", "rm_all"], "exclude": ["rm_*"]},
        ),
        (
            "codex",
            '[mcp_servers.s]\ncommand = "x"\ndisabled_tools = ["delete"]\n',
            {"exclude": ["delete"]},
        ),
    ],
)
def test_a_sources_own_tool_filter_becomes_the_groups_tools_filter(importer, text, tools):
    found = find(importer).parse(text)["s"]
    assert isinstance(found, Found)
    assert found.entry["tools"] == tools
    assert not any("Tools" in note or "_tools" in note for note in found.notes)
