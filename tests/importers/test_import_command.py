"""The import flow in-process: errors by type, questions, and what happens to the output.

The CLI runs of the same flow are in test_import_fixtures, test_import_messages and
test_import_interactive; here each case costs milliseconds, so every branch gets one.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from groups.errors import ConfigError
from importers.command import Request, run
from importers.errors import (
    ImportCancelledError,
    ImportSourceInvalidError,
    ImportSourceMissingError,
    NoProjectScopeError,
    NothingToImportError,
    OutputExistsError,
    OutputWriteError,
    UnknownImporterError,
)
from importers.paths import UserDirs
from importers.prompts import Console
from importers.report import Outcome

CURSOR = {
    "mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "fs-server"]},
        "api": {"url": "https://api.example.com/mcp", "headers": {"X-Key": "${env:KEY}"}},
    }
}


class Sandbox:
    """A home and a project under tmp_path, and the import run in-process against them."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.project = root / "project"
        self.home.mkdir()
        self.project.mkdir()
        self.output = self.project / "dynamic-mcp.json"
        self.said = io.StringIO()

    def write(self, relative: str, content: Any, *, under: str = "project") -> Path:
        path = (self.project if under == "project" else self.home) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    def run(
        self,
        tool: str = "cursor",
        *,
        scope: str = "project",
        force: bool = False,
        merge: bool = False,
        answers: str | None = None,
        output: Path | None = None,
    ) -> Outcome:
        request = Request(
            tool=tool,
            scope=scope,  # type: ignore[arg-type]
            output=output or self.output,
            force=force,
            merge=merge,
            dirs=UserDirs.of("linux", {"HOME": str(self.home)}),
            cwd=self.project,
        )
        inp = io.StringIO(answers) if answers is not None else None
        return run(request, Console(self.said, inp, interactive=answers is not None))

    def written(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.output.read_text())
        return data


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def test_an_unknown_tool_lists_the_valid_names(sandbox: Sandbox):
    with pytest.raises(UnknownImporterError) as caught:
        sandbox.run("cursr")

    assert caught.value.name == "cursr"
    assert "cursor" in caught.value.valid
    assert len(caught.value.valid) == 10


@pytest.mark.parametrize("tool", ["claude-desktop", "antigravity"])
def test_a_tool_without_project_scope_says_to_use_global(sandbox: Sandbox, tool: str):
    with pytest.raises(NoProjectScopeError) as caught:
        sandbox.run(tool)

    assert caught.value.tool == tool
    assert f"dynamic-mcp import {tool} --global" in str(caught.value)


def test_a_missing_source_names_every_path_looked_at(sandbox: Sandbox):
    with pytest.raises(ImportSourceMissingError) as caught:
        sandbox.run("opencode")

    assert caught.value.looked_at == [
        sandbox.project / ".opencode/opencode.jsonc",
        sandbox.project / ".opencode/opencode.json",
        sandbox.project / "opencode.jsonc",
        sandbox.project / "opencode.json",
    ]


def test_a_missing_user_config_names_its_path(sandbox: Sandbox):
    with pytest.raises(ImportSourceMissingError) as caught:
        sandbox.run("cursor", scope="global")

    assert caught.value.looked_at == [sandbox.home / ".cursor/mcp.json"]
    assert caught.value.scope == "global"


def test_an_unparseable_source_names_file_line_and_column(sandbox: Sandbox):
    source = sandbox.write(".cursor/mcp.json", '{\n  "mcpServers": {\n    "a": {,}\n  }\n}')

    with pytest.raises(ImportSourceInvalidError) as caught:
        sandbox.run()

    # json5 reports the furthest point it could parse to: the brace after the comma.
    assert (caught.value.file, caught.value.line, caught.value.column) == (source, 3, 12)


def test_a_source_that_is_not_utf8_is_reported_not_crashed_on(sandbox: Sandbox):
    source = sandbox.write(".cursor/mcp.json", "")
    source.write_bytes(b'{"mcpServers": {"\xff": {}}}')

    with pytest.raises(ImportSourceInvalidError) as caught:
        sandbox.run()

    assert caught.value.file == source


def test_a_source_with_no_servers_is_nothing_to_import(sandbox: Sandbox):
    source = sandbox.write(".gemini/settings.json", {"theme": "dark"})

    with pytest.raises(NothingToImportError) as caught:
        sandbox.run("gemini")

    assert caught.value.source == source
    assert caught.value.skipped == {}
    assert not sandbox.output.exists()


def test_a_source_whose_every_server_is_skipped_writes_nothing(sandbox: Sandbox):
    sandbox.write(".mcp.json", {"mcpServers": {"a": {"args": []}, "b": {"type": "ws"}}})

    with pytest.raises(NothingToImportError) as caught:
        sandbox.run("claude")

    assert list(caught.value.skipped) == ["a", "b"]
    assert not sandbox.output.exists()


def test_an_entry_our_model_rejects_is_skipped_with_the_field(sandbox: Sandbox):
    sandbox.write(
        ".cursor/mcp.json", {"mcpServers": {"ok": {"command": "x"}, "bad": {"command": ""}}}
    )

    outcome = sandbox.run()

    assert list(outcome.entries) == ["ok"]
    assert list(outcome.skipped) == ["bad"]


def test_a_name_that_cannot_be_a_group_name_is_renamed_and_the_note_says_so(sandbox: Sandbox):
    servers = {"My Files": {"command": "x"}, "My/Files": {"command": "y"}}
    sandbox.write(".cursor/mcp.json", {"mcpServers": servers})

    outcome = sandbox.run()

    assert list(sandbox.written()["mcpServers"]) == ["My-Files", "My-Files-2"]
    assert (
        "My-Files-2",
        "renamed from 'My/Files': group names use only letters, digits, "
        "'-', '_' and '.' (not only dots)",
    ) in outcome.attention


def test_an_existing_output_without_a_terminal_needs_force_or_merge(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    sandbox.output.write_text("keep me")

    with pytest.raises(OutputExistsError) as caught:
        sandbox.run()

    assert caught.value.output == sandbox.output
    assert sandbox.output.read_text() == "keep me"


def test_force_replaces_an_existing_output(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    sandbox.output.write_text("old")

    sandbox.run(force=True)

    assert list(sandbox.written()["mcpServers"]) == ["fs", "api"]


def test_merge_keeps_existing_entries_exactly_and_skips_names_taken(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    existing = {
        "$schema": "./schema.json",
        "mcpServers": {
            "fs": {"description": "Mine", "command": "mine", "timeout": {"tools": "1min"}}
        },
    }
    sandbox.output.write_text(json.dumps(existing))

    outcome = sandbox.run(merge=True)

    written = sandbox.written()
    assert written["$schema"] == "./schema.json"
    assert written["mcpServers"]["fs"] == existing["mcpServers"]["fs"]
    assert list(written["mcpServers"]) == ["fs", "api"]
    assert list(outcome.skipped) == ["fs"]


def test_merge_into_an_invalid_config_is_a_config_error_and_writes_nothing(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    sandbox.output.write_text('{"mcpServers": {"x": {"command": "y"}}}')  # no description

    with pytest.raises(ConfigError):
        sandbox.run(merge=True)

    assert sandbox.output.read_text() == '{"mcpServers": {"x": {"command": "y"}}}'


def test_merge_without_an_existing_output_just_writes_one(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)

    sandbox.run(merge=True)

    assert list(sandbox.written()["mcpServers"]) == ["fs", "api"]


def test_an_output_holding_env_or_headers_is_private_to_the_user(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)

    sandbox.run()

    assert stat.S_IMODE(sandbox.output.stat().st_mode) == 0o600


def test_an_output_without_secrets_gets_the_umask_mode(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", {"mcpServers": {"fs": {"command": "npx"}}})
    umask = os.umask(0o022)
    os.umask(umask)

    sandbox.run()

    assert stat.S_IMODE(sandbox.output.stat().st_mode) == 0o666 & ~umask


def test_replacing_an_output_leaves_no_temporary_file_behind(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    sandbox.output.write_text("old")

    sandbox.run(force=True)

    assert sorted(p.name for p in sandbox.project.iterdir()) == [".cursor", "dynamic-mcp.json"]


def test_an_output_folder_that_does_not_exist_yet_is_created(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    output = sandbox.project / "config" / "mcp" / "dynamic-mcp.json"

    sandbox.run(output=output)

    assert json.loads(output.read_text())["mcpServers"]["fs"]["command"] == "npx"


def test_an_output_that_cannot_be_written_is_reported(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    blocker = sandbox.write("not-a-folder", "a file")

    with pytest.raises(OutputWriteError) as caught:
        sandbox.run(output=blocker / "dynamic-mcp.json")

    assert caught.value.output == blocker / "dynamic-mcp.json"


def test_without_a_terminal_descriptions_are_placeholders_listed_for_attention(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)

    outcome = sandbox.run()

    description = sandbox.written()["mcpServers"]["fs"]["description"]
    assert "edit this" in description
    assert outcome.placeholders == ["fs", "api"]
    assert "features" not in sandbox.written()["mcpServers"]["fs"]


def test_a_description_from_the_source_is_used_and_not_a_placeholder(sandbox: Sandbox):
    sandbox.write(
        ".gemini/settings.json", {"mcpServers": {"t": {"command": "x", "description": "Tools"}}}
    )

    outcome = sandbox.run("gemini")

    assert sandbox.written()["mcpServers"]["t"]["description"] == "Tools"
    assert outcome.placeholders == []


def test_interactive_answers_fill_descriptions_and_features(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    answers = "\n".join(
        [
            "",  # empty description: refused, asked again
            "Files of the project",
            "n",  # not all features
            "",  # tools: default yes
            "n",  # no resources
            "no",  # no prompts
            "Example API",
            "y",  # all features
        ]
    )

    sandbox.run(answers=answers + "\n")

    servers = sandbox.written()["mcpServers"]
    assert servers["fs"]["description"] == "Files of the project"
    assert servers["fs"]["features"] == {"resources": False, "prompts": False}
    assert servers["api"] == {
        "description": "Example API",
        "url": "https://api.example.com/mcp",
        "headers": {"X-Key": "${KEY}"},
    }
    assert "A description is required" in sandbox.said.getvalue()


def test_interactive_overwrite_question_can_merge(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    sandbox.output.write_text(
        json.dumps({"mcpServers": {"old": {"description": "Old", "command": "o"}}})
    )

    sandbox.run(answers="merge\nFiles\n\nAPI\n\n")

    assert list(sandbox.written()["mcpServers"]) == ["old", "fs", "api"]


def test_declining_to_overwrite_cancels_and_keeps_the_output(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)
    sandbox.output.write_text("keep me")

    with pytest.raises(ImportCancelledError):
        sandbox.run(answers="\n")  # the default answer is cancel

    assert sandbox.output.read_text() == "keep me"


def test_input_ending_mid_question_cancels_without_writing(sandbox: Sandbox):
    sandbox.write(".cursor/mcp.json", CURSOR)

    with pytest.raises(ImportCancelledError):
        sandbox.run(answers="Files\n")  # ends before the features question

    assert not sandbox.output.exists()


def test_claude_user_config_adds_the_servers_kept_for_this_directory(sandbox: Sandbox):
    sandbox.write(
        ".claude.json",
        {
            "mcpServers": {"a": {"command": "user-a"}, "b": {"command": "user-b"}},
            "projects": {str(sandbox.project): {"mcpServers": {"b": {"command": "local-b"}}}},
        },
        under="home",
    )

    outcome = sandbox.run("claude", scope="global")

    servers = sandbox.written()["mcpServers"]
    assert (servers["a"]["command"], servers["b"]["command"]) == ("user-a", "local-b")
    assert [name for name, _ in outcome.attention] == ["b"]


def test_claude_directory_servers_can_be_declined_interactively(sandbox: Sandbox):
    sandbox.write(
        ".claude.json",
        {
            "mcpServers": {"a": {"command": "user-a"}},
            "projects": {str(sandbox.project): {"mcpServers": {"b": {"command": "local-b"}}}},
        },
        under="home",
    )

    sandbox.run("claude", scope="global", answers="n\nA server\n\n")

    assert list(sandbox.written()["mcpServers"]) == ["a"]


def test_env_and_header_values_are_never_shown(sandbox: Sandbox):
    sandbox.write(
        ".cursor/mcp.json",
        {
            "mcpServers": {
                "s": {"command": "x", "env": {"TOKEN": "sk-live-123"}},
                "h": {
                    "url": "https://h.example/mcp",
                    "headers": {"Authorization": "Bearer sk-live-456"},
                },
            }
        },
    )

    sandbox.run()

    said = sandbox.said.getvalue()
    assert "TOKEN" in said
    assert "Authorization" in said
    assert "sk-live" not in said
