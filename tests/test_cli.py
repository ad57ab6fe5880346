"""The command line as a user meets it: the installed `dynamic-mcp` script in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, free_port, stdio_entry, wait_for_port
from fastmcp import Client

SCRIPT = shutil.which("dynamic-mcp") or str(Path(os.__file__).parents[2] / "bin" / "dynamic-mcp")


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None):
    return subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_prints_the_package_version():
    from importlib.metadata import version

    assert run("--version").stdout.strip() == version("dynamic-mcp-server")


def test_help_names_the_config_argument_and_the_transports():
    help_text = run("--help").stdout
    assert "CONFIG" in help_text
    assert "--transport" in help_text
    assert "import" in help_text


def test_each_command_is_listed_with_the_first_line_of_its_docstring():
    import importlib
    import inspect

    from server import app

    commands = {"auth", "call", "check", "import", "run-code", "tools"}
    for name in commands:
        spec = app._commands[name]  # registered lazily: a CommandSpec, not yet imported
        module, function = spec.import_path.split(":")
        docstring = inspect.getdoc(getattr(importlib.import_module(module), function))
        assert spec.help == docstring.splitlines()[0], name
    listed = run("--help").stdout
    assert all(f"│ {name} " in listed for name in commands)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "{path}: no such file"),
        ('{"mcpServers": {"a": {"description": "x",}}}', "{path}:1:42: invalid JSON"),
        (
            '{"mcpServers": {"a": {"description": "x", "comand": "e"}}}',
            "{path}: mcpServers.a.comand: unknown field",
        ),
    ],
)
def test_a_bad_config_refuses_an_http_start_in_one_line_on_stderr_and_exit_code_2(
    tmp_path: Path, content, expected
):
    """Over HTTP whoever started it reads its stderr (over stdio it serves, saying so:
    test_broken_config)."""
    path = tmp_path / "dynamic-mcp.json"
    if content is not None:
        path.write_text(content)

    result = run(str(path), "--transport", "http", "--port", str(free_port()))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"dynamic-mcp: {expected.format(path=path)}")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_start_refused_for_its_config_imports_none_of_the_server_stack(tmp_path: Path):
    """A refusal is quick: the config is read and checked before FastMCP is imported."""
    refused = f"""
import sys, server
try:
    server.main([{str(tmp_path / "missing.json")!r}, "--transport", "http"])
except SystemExit as exit:
    print(exit.code, sorted({{name.split(".")[0] for name in sys.modules}} & {{"fastmcp", "mcp"}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", refused], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "2 []", result.stderr
    assert "no such file" in result.stderr


def test_without_a_config_the_error_says_how_to_give_one(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_CONFIG"}
    result = run("check", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "DYNAMIC_MCP_CONFIG" in result.stderr


def test_the_config_path_can_come_from_the_environment(tmp_path: Path):
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps({"mcpServers": {"a": {"description": "x", "comand": "e"}}}))
    result = run("check", cwd=tmp_path, env={**os.environ, "DYNAMIC_MCP_CONFIG": str(path)})
    assert result.stderr.startswith(f"dynamic-mcp: {path}: mcpServers.a.comand")


def test_serving_over_http_answers_an_mcp_client(tmp_path: Path):
    """`--transport http` serves streamable HTTP on 127.0.0.1 at /mcp; the config given
    as --config, as every command takes it (the other tests give it first)."""
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    port = free_port()

    async def talk() -> tuple[list[str], str]:
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            names = [tool.name for tool in await client.list_tools()]
            result = await client.call_tool_mcp(
                "call_dynamic_tool", {"group": "echo", "name": "echo", "args": {"text": "hi"}}
            )
            return names, result.content[0].text

    process = subprocess.Popen(
        [SCRIPT, "--config", str(config), "--transport", "http", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        names, echoed = asyncio.run(talk())
    finally:
        process.terminate()
        process.wait(15)

    assert names == ["get_dynamic_tools", "call_dynamic_tool"]
    assert echoed == "hi"
