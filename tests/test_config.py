"""The dynamic-mcp.json model: what loads, what is refused, and where the error points."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from groups.config import (
    HttpServer,
    SseServer,
    StdioServer,
    UnsetVariableError,
    interpolate,
    load_config,
    parse_config,
    plain_group_name,
    variables_for,
)
from groups.errors import ConfigError
from groups.storage.home import group_file


def config_text(**servers: dict) -> str:
    return json.dumps({"mcpServers": servers})


def test_every_field_of_a_dmcp_config_loads():
    config = parse_config(
        config_text(
            local={
                "type": "stdio",
                "description": "Local",
                "command": "npx",
                "args": ["-y", "pkg"],
                "env": {"KEY": "${KEY}"},
                "cwd": "/tmp",
                "features": {"resources": False},
                "enabled": True,
                "timeout": {"tools": "1min", "resources": "500ms", "prompts": 5},
            },
            remote={
                "type": "http",
                "description": "Remote",
                "url": "https://example.test/mcp",
                "headers": {"Authorization": "Bearer ${TOKEN}"},
                "oauth_client_id": "client",
                "oauth_scopes": ["read"],
            },
            legacy={"type": "sse", "description": "Old", "url": "https://example.test/sse"},
        )
    )

    local, remote, legacy = (config.servers[n] for n in ("local", "remote", "legacy"))
    assert isinstance(local, StdioServer) and local.env == {"KEY": "${KEY}"}
    assert local.features.resources is False and local.features.tools is True
    assert local.timeout.tools == timedelta(minutes=1)
    assert local.timeout.resources == timedelta(milliseconds=500)
    assert local.timeout.prompts == timedelta(seconds=5)
    assert isinstance(remote, HttpServer) and remote.oauth_scopes == ["read"]
    assert isinstance(legacy, SseServer)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"command": "x"}, StdioServer),  # command alone means stdio
        ({"url": "http://127.0.0.1:1/mcp"}, HttpServer),  # a url alone means streamable HTTP
        ({"url": "http://127.0.0.1:1/sse", "type": "sse"}, SseServer),
    ],
)
def test_the_transport_follows_from_the_fields(entry, kind):
    config = parse_config(config_text(s={"description": "d", **entry}))
    assert type(config.servers["s"]) is kind


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"description": "d", "comand": "x"}, "mcpServers.s.comand"),  # a typo is named
        ({"command": "x"}, "mcpServers.s.description"),  # description is required
        ({"description": "  ", "command": "x"}, "mcpServers.s.description"),  # and not blank
        ({"description": "d"}, "mcpServers.s.command"),  # neither command nor url
        ({"description": "d", "command": "x", "url": "http://h"}, "mcpServers.s"),  # both
        ({"description": "d", "type": "websocket", "url": "ws://h"}, "mcpServers.s"),
        ({"description": "d", "command": "x", "headers": {}}, "mcpServers.s.headers"),
        ({"description": "d", "command": "x", "args": "a b"}, "mcpServers.s.args"),
        (
            {"description": "d", "command": "x", "timeout": {"tools": "3x"}},
            "mcpServers.s.timeout.tools",
        ),
        ({"description": "d", "command": "x", "enabled": "no"}, "mcpServers.s.enabled"),
        (
            {"description": "d", "command": "x", "features": {"sampling": True}},
            "mcpServers.s.features.sampling",
        ),
    ],
)
def test_a_bad_entry_names_its_server_and_field(entry, field):
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text(s=entry), "cfg.json")
    assert caught.value.server == "s"
    assert caught.value.field == field
    assert str(caught.value).startswith(f"cfg.json: {field}: ")


def test_invalid_json_points_at_line_and_column():
    with pytest.raises(ConfigError) as caught:
        parse_config('{"mcpServers": {\n  "a": {"description": "x",}\n}}', "cfg.json")
    assert (caught.value.line, caught.value.column) == (2, 28)
    assert str(caught.value).startswith("cfg.json:2:28: invalid JSON")


def test_every_problem_is_reported_each_by_its_path_and_a_near_miss_gets_a_suggestion():
    text = json.dumps(
        {
            "mcpServers": {
                "time": {"description": "Time", "comand": "uvx"},  # a typo: one problem
                "git": {"command": "git-mcp"},
                "web": {"description": "Web", "uri": "https://example.test/mcp"},
            },
            "settings": {"serch": True},
        }
    )

    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.json")

    assert [(p.server, p.field, p.problem) for p in caught.value.problems] == [
        ("time", "mcpServers.time.comand", "unknown field; did you mean 'command'?"),
        ("git", "mcpServers.git.description", "required field is missing"),
        ("web", "mcpServers.web.uri", "unknown field; did you mean 'url'?"),
        (None, "settings.serch", "unknown field; did you mean 'search'?"),
    ]
    assert str(caught.value) == (
        "cfg.json: 4 problems:\n"
        "  mcpServers.time.comand: unknown field; did you mean 'command'?\n"
        "  mcpServers.git.description: required field is missing\n"
        "  mcpServers.web.uri: unknown field; did you mean 'url'?\n"
        "  settings.serch: unknown field; did you mean 'search'?"
    )


@pytest.mark.parametrize("name", ["http", "stdio", "sse"])
def test_a_group_named_like_a_transport_keeps_its_name_in_the_path(name):
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text(**{name: {"description": "d", "comand": "x"}}))
    assert caught.value.field == f"mcpServers.{name}.comand"


def test_a_bad_value_that_could_be_a_secret_is_not_quoted():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            config_text(
                s={"description": "d", "command": "x", "env": "TOKEN=s3cret", "args": {"k": "v2"}},
                h={"description": "d", "url": "https://h.test/mcp", "headers": {"A": "b", "B": 7}},
            )
        )
    shown = str(caught.value)
    assert [p.field for p in caught.value.problems] == [
        "mcpServers.s.args",
        "mcpServers.s.env",
        "mcpServers.h.headers.B",
    ]
    assert "s3cret" not in shown and "v2" not in shown and "7" not in shown


@pytest.mark.parametrize(
    ("text", "at", "cause"),
    [
        # the comma is on the line before the closing brace, which is where JSON gives up
        (
            '{\n  "mcpServers": {\n    "a": {"description": "x", "command": "y"},\n  }\n}',
            (4, 3),
            "a trailing comma at the end of line 3: JSON allows none after the last item",
        ),
        (
            '{\n "mcpServers": {\n  "a": {}\n  "b": {}\n }\n}',
            (4, 3),
            "a comma missing at the end of line 3",
        ),
        ("{'mcpServers': {}}", (1, 2), "a text in single quotes: JSON takes double quotes"),
        ('{\n  // mine\n  "mcpServers": {}\n}', (2, 3), "a comment: JSON has none"),
        (r'{"mcpServers": {"a": {"cwd": "C:\Users"}}}', (1, 33), "a backslash in a text"),
        ("", (1, 1), "the file is empty (saved half-way?)"),
        (
            '{"mcpServers": {',
            (1, 17),
            "the file ends too soon: a closing brace or bracket is missing",
        ),
        ('{"mcpServers": {}}}', (1, 19), "something after the config's closing brace"),
    ],
)
def test_a_json_syntax_error_names_its_likely_cause(text, at, cause):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.json")
    error = caught.value
    assert (error.line, error.column) == at
    assert error.problem.startswith("invalid JSON: ")
    assert error.problem.split("; likely ", 1)[1].startswith(cause)


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.json")
    assert caught.value.file == tmp_path / "absent.json"


def test_top_level_must_hold_mcp_servers():
    with pytest.raises(ConfigError) as caught:
        parse_config('{"servers": {}}')
    assert caught.value.field == "servers"  # VS Code's key is not ours: named, not ignored


def test_disabled_servers_are_left_out_of_the_enabled_groups():
    config = parse_config(
        config_text(
            on={"description": "a", "command": "x"},
            off={"description": "b", "command": "x", "enabled": False},
        )
    )
    assert list(config.enabled()) == ["on"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "1"),
        ("pre-${A}-post", "pre-1-post"),
        ("${MISSING:-fallback}", "fallback"),
        ("${A:-unused}", "1"),
        ("$A and $${A}", "$A and $1"),  # only the braced form is a reference
    ],
)
def test_variables_are_interpolated(text, expected):
    assert interpolate(text, {"A": "1"}) == expected


def test_an_unset_variable_is_named():
    with pytest.raises(UnsetVariableError) as caught:
        interpolate("Bearer ${TOKEN}", {})
    assert caught.value.name == "TOKEN"


def test_a_dotenv_beside_the_config_feeds_variables_and_the_environment_wins(
    tmp_path: Path, monkeypatch
):
    (tmp_path / ".env").write_text("FROM_FILE=file\nBOTH=file\n")
    monkeypatch.setenv("BOTH", "environment")
    variables = variables_for(tmp_path / "dynamic-mcp.json")
    assert variables["FROM_FILE"] == "file"
    assert variables["BOTH"] == "environment"


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "..", ".", "with space", "", "x" * 101, "é", "abc\n"]
)
def test_a_group_name_that_is_not_plain_is_refused_naming_it(name):
    with pytest.raises(ConfigError) as error:
        parse_config(config_text(**{name: {"description": "x", "command": "echo"}}))
    shown = name.replace("\n", "\\n")  # a control character is named escaped
    assert error.value.server == shown
    assert error.value.field == f"mcpServers.{shown}"
    assert "may use only letters, digits, '-', '_' and '.'" in error.value.problem


def test_a_file_named_after_a_group_stays_inside_its_directory(tmp_path: Path):
    assert group_file(tmp_path, "github.work-2", ".json") == tmp_path / "github.work-2.json"
    for name in ("../x", "..", "a/b"):
        with pytest.raises(ValueError):
            group_file(tmp_path, name)


@pytest.mark.parametrize(
    ("name", "taken", "plain"),
    [
        ("My Server", (), "My-Server"),
        ("a/b", ("a-b",), "a-b-2"),
        ("..", (), "server"),
        ("ok_name.1", (), "ok_name.1"),
    ],
)
def test_an_imported_name_becomes_a_plain_group_name(name, taken, plain):
    assert plain_group_name(name, taken) == plain
