"""Quiet when all is well, clear when not: what dynamic-mcp writes to stderr as a user
runs it, a real server over real pipes in front of real upstream processes."""

from __future__ import annotations

from conftest import UPSTREAMS, raw_debug_session, stdio_entry

NOISY = UPSTREAMS / "noisy.py"
READ_WAIT = 30.0  # seconds for a server to start and say where it listens


def lines_of(log: str, level: str) -> list[str]:
    prefix = f"dynamic-mcp {level} "
    return [line.removeprefix(prefix) for line in log.splitlines() if line.startswith(prefix)]


def test_an_ordinary_run_is_quiet_and_an_upstreams_error_shows_with_its_traceback(write_config):
    config = write_config({"noisy": stdio_entry(NOISY, args=[str(NOISY), "serve"])})
    echo = {
        "name": "call_dynamic_tool",
        "arguments": {"group": "noisy", "name": "echo", "args": {"text": "hi"}},
    }

    messages, log = raw_debug_session(config, [echo], log_level="warning")

    assert [m["result"]["content"][0]["text"] for m in messages if m.get("id") == 1] == ["hi"]
    assert log.splitlines() == [  # at the default level, nothing but the upstream's error
        "dynamic-mcp WARNING groups.upstream.stderr: noisy: Traceback (most recent call last):",
        'dynamic-mcp WARNING groups.upstream.stderr: noisy:   File "/srv/noisy.py", line 7, '
        "in warm_cache",
        "dynamic-mcp WARNING groups.upstream.stderr: noisy: ValueError: the cache is cold",
    ]


def test_an_upstreams_ordinary_lines_are_info_and_a_line_said_again_and_again_is_said_once(
    write_config,
):
    config = write_config({"noisy": stdio_entry(NOISY, args=[str(NOISY), "serve"])})
    changed = {
        "name": "call_dynamic_tool",
        "arguments": {"group": "noisy", "name": "changed", "args": {"times": 5}},
    }

    messages, log = raw_debug_session(config, [changed], log_level="info")

    assert [m["result"]["content"][0]["text"] for m in messages if m.get("id") == 1] == [
        "said it 5 times"
    ]
    info = lines_of(log, "INFO")
    said = [line for line in info if line.startswith("groups.upstream.stderr: ")]
    assert said == [
        "groups.upstream.stderr: noisy: Downloading cryptography (4.7MiB)",
        "groups.upstream.stderr: noisy: Installed 40 packages in 30ms",
        "groups.upstream.stderr: noisy: Starting default (STDIO) server...",
        "groups.upstream.stderr: noisy: Waiting for the index",
        "groups.upstream.stderr: the line above came 4 more times",
    ]
    assert info.count("groups.upstream.inventory: group noisy: the upstream's tools changed") == 1
    assert len(lines_of(log, "WARNING")) == 3  # the traceback, as at the default level


def test_an_upstream_that_fails_to_start_has_its_last_words_shown(write_config):
    config = write_config({"refusing": stdio_entry(NOISY, args=[str(NOISY), "refuse"])})
    expand = {"name": "get_dynamic_tools", "arguments": {"group": "refusing"}}

    messages, log = raw_debug_session(config, [expand], log_level="warning")

    result = next(m["result"] for m in messages if m.get("id") == 1)
    assert result["isError"] is True
    said = [line for line in lines_of(log, "WARNING") if line.startswith("groups.upstream.stderr")]
    assert said == [
        "groups.upstream.stderr: refusing: usage: noisy.py --token TOKEN",
        "groups.upstream.stderr: refusing:   a token is needed to reach the service",
    ]
