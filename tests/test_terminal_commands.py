"""`dynamic-mcp tools`, `call` and `check` as a user runs them: the installed script, in a
subprocess, against real upstream processes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from conftest import REPO, dynamic_mcp_command, stdio_entry
from test_cli import SCRIPT

BROKEN = {"description": "Cannot start", "command": "/nonexistent/upstream"}


def run(*args: str, **options) -> subprocess.CompletedProcess[str]:
    """`dynamic-mcp ARGS`, warm (test_cli runs the installed script itself); `input=`
    feeds its stdin, which is empty otherwise."""
    if "input" not in options:
        options["stdin"] = subprocess.DEVNULL
    return subprocess.run(
        dynamic_mcp_command(*args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        **options,
    )


def check_on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """`dynamic-mcp check ARGS` with stderr a terminal: its run, and what the terminal got."""
    reader, terminal = pty.openpty()
    try:
        checked = subprocess.run(
            [SCRIPT, "check", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
            text=True,
        )
        os.close(terminal)
        progress = _read_all(reader)
    finally:
        os.close(reader)
    return checked, progress


# ---- tools ------------------------------------------------------------------------------


def test_tools_lists_each_tool_with_its_parameters(write_config):
    config = write_config({"echo": stdio_entry()})

    listed = run("tools", "echo", "--config", str(config))

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[lines.index("echo  Send the text back unchanged.") + 1] == (
        "    text: string, required  Text to send back"
    )
    assert "    numbers: array of integer, required" in lines
    assert lines[lines.index("pid  Return the process id of this upstream.") + 1] == (
        "    (no parameters)"
    )


def test_tools_json_is_the_expansion_the_model_gets_with_filters_applied(write_config):
    config = write_config({"echo": stdio_entry(tools={"exclude": ["pid", "a*"]})})

    listed = run("tools", "echo", "--json", "--config", str(config))

    assert listed.returncode == 0, listed.stderr
    tools = json.loads(listed.stdout)
    assert [tool["name"] for tool in tools] == ["echo", "pixel", "fail", "env"]
    assert tools[0]["inputSchema"]["required"] == ["text"]


def test_tools_of_a_group_that_cannot_start_exits_1_with_the_reason(write_config):
    config = write_config({"broken": BROKEN})

    listed = run("tools", "broken", "--config", str(config))

    assert listed.returncode == 1
    assert listed.stdout == ""
    assert "command not found: '/nonexistent/upstream'" in listed.stderr


# ---- every command ----------------------------------------------------------------------


def test_every_command_takes_the_config_first_or_as_config_and_a_log_level(write_config):
    config = write_config({"echo": stdio_entry()})

    listed = run("tools", str(config), "echo", "--log-level", "info")
    called = run("call", str(config), "echo", "echo", "--args", '{"text": "hi"}')
    checked = run("check", "--config", str(config), "--log-level", "info", "--json")
    signed_in = run("auth", str(config), "--list", "--log-level", "warning")
    rekeyed = run("rekey", "--config", str(config))

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("pid  ") and "connecting group echo" in listed.stderr
    assert (called.returncode, called.stdout) == (0, "hi\n"), called.stderr
    assert checked.returncode == 0 and "connecting group echo" in checked.stderr
    assert [row["status"] for row in json.loads(checked.stdout)] == ["ok"]
    assert signed_in.stdout == "No remote (http/sse) groups in the config.\n", signed_in.stderr
    assert (rekeyed.returncode, rekeyed.stdout) == (2, "")  # read, and refused for what it says
    assert rekeyed.stderr.startswith("dynamic-mcp: rekey: re-encrypts a shared store")


def test_a_config_given_twice_or_arguments_too_many_are_refused_naming_them(write_config):
    config = write_config({"echo": stdio_entry()})

    twice = run("tools", str(config), "echo", "--config", "other.json")
    too_many = run("call", str(config), "echo", "echo", "extra")

    assert (twice.returncode, twice.stdout) == (2, "")
    assert twice.stderr == (
        f"dynamic-mcp: --config: the config is given twice: {str(config)!r} and 'other.json'\n"
    )
    assert (too_many.returncode, too_many.stdout) == (2, "")
    assert too_many.stderr == (
        f"dynamic-mcp: call: takes [CONFIG] GROUP TOOL; arguments given: 4: {config} echo "
        "echo extra\n"
    )


# ---- call -------------------------------------------------------------------------------


def test_call_prints_text_as_text_and_other_content_as_json(write_config):
    config = write_config({"echo": stdio_entry()})

    echoed = run("call", "echo", "echo", "--args", '{"text": "hi there"}', "--config", str(config))
    pixel = run("call", "echo", "pixel", "--config", str(config))

    assert (echoed.returncode, echoed.stdout) == (0, "hi there\n"), echoed.stderr
    assert pixel.returncode == 0, pixel.stderr
    image, rest = pixel.stdout.split("}\na transparent pixel\n")
    assert json.loads(image + "}")["mimeType"] == "image/png"
    assert json.loads(rest)["resource"]["text"] == "pixel notes"


def test_call_with_an_error_result_exits_1_and_writes_it_to_stderr(write_config):
    config = write_config({"echo": stdio_entry()})

    failed = run("call", "echo", "fail", "--args", '{"message": "boom"}', "--config", str(config))
    unknown = run("call", "nowhere", "echo", "--config", str(config))

    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.strip().splitlines()[-1] == "Error calling tool 'fail': boom"
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert "Unknown group 'nowhere'. Valid groups: echo." in unknown.stderr


def test_call_refuses_args_that_are_not_a_json_object(write_config):
    config = write_config({"echo": stdio_entry()})

    not_json = run("call", "echo", "echo", "--args", "{text: hi}", "--config", str(config))
    a_list = run("call", "echo", "echo", "--args", "[1]", "--config", str(config))

    assert not_json.returncode == 2
    assert not_json.stderr.startswith("dynamic-mcp: --args: not JSON")
    assert a_list.returncode == 2
    assert a_list.stderr == "dynamic-mcp: --args: a JSON object is needed, not '[1]'\n"


# ---- run-code ---------------------------------------------------------------------------

PROGRAM = """
echoed = await call_tool("echo", "echo", {"text": "hi"})
print("called once")
return {"echoed": echoed["result"]}
"""


def code_config(tmp_path: Path, code: object = True) -> Path:
    path = tmp_path / "dynamic-mcp.json"
    settings = {"code": code} if code is not None else {}
    path.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}, "settings": settings}))
    return path


def test_run_code_runs_a_file_or_stdin_and_prints_what_the_model_gets(tmp_path):
    config = code_config(tmp_path)
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)

    from_file = run("run-code", str(program), "--config", str(config))
    from_stdin = run("run-code", "-", "--config", str(config), input="6 * 7")

    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == '{"echoed":"hi"}\nPrinted:\ncalled once\n'
    assert (from_stdin.returncode, from_stdin.stdout) == (0, "42\n"), from_stdin.stderr


def test_run_code_exits_1_when_the_program_fails_and_2_without_code_mode(tmp_path):
    config = code_config(tmp_path, {"cpu_time": "200ms"})
    looping = run("run-code", "-", "--config", str(config), input="while True:\n    pass")
    off = code_config(tmp_path, None)
    refused = run("run-code", "-", "--config", str(off), input="1")

    assert (looping.returncode, looping.stdout) == (1, "")
    assert looping.stderr.startswith("run_dynamic_code: stopped by settings.code.cpu_time: ")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"dynamic-mcp: {off}: settings.code: code mode is off: set "
        '"settings": {"code": true} to run programs\n'
    )


# ---- check ------------------------------------------------------------------------------


def test_check_json_reports_every_group_exits_1_when_one_failed_and_shows_progress_on_a_tty(
    write_config,
):
    """With stderr a terminal, a progress line per group goes there; the report to stdout."""
    config = write_config(
        {
            "echo": stdio_entry(features={"prompts": False}),
            "broken": BROKEN,
            "off": {**stdio_entry(), "enabled": False},
        }
    )

    checked, progress = check_on_a_terminal(str(config), "--json")

    assert checked.returncode == 1, progress
    rows = {row["group"]: row for row in json.loads(checked.stdout)}
    assert list(rows) == ["echo", "broken", "off"]
    echo, broken, off = rows["echo"], rows["broken"], rows["off"]
    assert (echo["status"], echo["reason"], echo["transport"]) == ("ok", None, "stdio")
    assert (echo["tools"], echo["resources"], echo["prompts"]) == (7, 1, None)
    assert 0 < echo["seconds"] < 60
    assert echo["tokens_direct"] > 10 * echo["tokens_via_dynamic_mcp"] > 0
    assert broken["status"] == "failed"
    assert broken["reason"] == "command not found: '/nonexistent/upstream'"
    assert broken["tools"] is None
    assert (off["status"], off["seconds"]) == ("disabled", None)
    lines = sorted(line.strip() for line in progress.splitlines())
    assert len(lines) == 2, progress
    assert lines[0].startswith("failed  broken (")
    assert lines[0].endswith("s): command not found: '/nonexistent/upstream'")
    assert lines[1].startswith("ok  echo (")


def test_check_prints_a_table_with_the_saving_and_fills_the_catalog(write_config, dynamic_mcp_home):
    # Two upstreams: "again" starts the same script with another environment.
    config = write_config({"echo": stdio_entry(), "again": stdio_entry(env={"AGAIN": "1"})})

    checked, progress = check_on_a_terminal(str(config))

    assert checked.returncode == 0, progress
    header, first, second, blank, total = checked.stdout.splitlines()
    assert header.split("  ")[0] == "group" and header.endswith("status")
    assert first.split()[:5] == ["echo", "stdio", "7", "1", "1"]
    assert second.startswith("again") and second.endswith("ok")
    assert blank == ""
    assert total.startswith("Tools in context on every turn (≈ tokens): ")
    assert total.endswith("% less.")
    assert len(list((dynamic_mcp_home / "catalog").glob("*.json"))) == 2
    assert sorted(line.split(" (")[0].strip() for line in progress.splitlines()) == [
        "ok  again",
        "ok  echo",
    ]


def test_check_of_an_invalid_config_names_the_field_and_exits_2(tmp_path: Path):
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": {"command": sys.executable}}}))

    checked = run("check", str(config))

    assert checked.returncode == 2
    assert str(config) in checked.stderr
    assert "echo" in checked.stderr and "description" in checked.stderr


def test_check_names_every_problem_of_a_config_with_a_suggestion_and_exits_2(tmp_path: Path):
    config = tmp_path / "dynamic-mcp.json"
    servers = {
        "time": {"description": "Time", "comand": "uvx", "args": ["mcp-server-time"]},
        "echo": {"command": sys.executable, "env": {"TOKEN": "s3cret"}},
    }
    config.write_text(json.dumps({"mcpServers": servers}))

    checked = run("check", str(config))

    assert checked.returncode == 2
    assert checked.stdout == ""
    assert checked.stderr.splitlines() == [
        f"dynamic-mcp: {config}: 2 problems:",
        "  mcpServers.time.comand: unknown field; did you mean 'command'?",
        "  mcpServers.echo.description: required field is missing",
    ]


def test_tools_and_call_of_a_broken_config_exit_2_naming_the_problem(tmp_path: Path):
    """A terminal prints what is wrong; unlike a stdio server, nothing is served."""
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"time": {"description": "T", "comand": "x"}}}))

    listed = run("tools", "time", "--config", str(config))
    called = run("call", "time", "get_current_time", "--config", str(config))

    expected = (
        f"dynamic-mcp: {config}: mcpServers.time.comand: unknown field; did you mean 'command'?\n"
    )
    assert (listed.returncode, listed.stdout, listed.stderr) == (2, "", expected)
    assert (called.returncode, called.stdout, called.stderr) == (2, "", expected)


def _read_all(fd: int) -> str:
    """What a terminal received; its writer has exited (the reads end there)."""
    chunks = []
    for _ in range(1000):  # bounded: 4 KB each, far more than a few progress lines
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the writer's side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()
