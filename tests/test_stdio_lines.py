"""Lines on dynamic-mcp's stdin that are no JSON-RPC message, written raw to its real pipe:
each is answered with an error and logged, none changed or dropped without a word, and
the next line is served."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import INITIALIZE, REPO

INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MOST_LINES = 10  # read before the answer to tools/list must have come


def line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


def test_lines_that_are_not_utf8_json_are_answered_with_errors_and_the_next_is_served(tmp_path):
    config = tmp_path / "dynamic-mcp.json"
    config.write_text('{"mcpServers": {}}')
    # A tool call whose argument holds a byte that is not UTF-8: refused, not forwarded
    # with U+FFFD in its place.
    call = line({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "x"}})
    garbled_call = call.replace(b'"x"', b'"a\xffb"')
    sent = [
        line(INITIALIZE),
        line(INITIALIZED),
        b"\xff\xfe not UTF-8 at all\n",
        garbled_call,
        b"{not json\n",
        b"\n",  # a blank line: no message, no mistake
        b'{"jsonrpc": "2.0"}\n',  # JSON, but no JSON-RPC message
        line(TOOLS_LIST),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "server", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        process.stdin.write(b"".join(sent))
        process.stdin.flush()
        answers = []
        for _ in range(MOST_LINES):
            answers.append(json.loads(process.stdout.readline()))
            if answers[-1].get("id") == TOOLS_LIST["id"]:
                break
    finally:
        _, log = process.communicate(timeout=30)  # closes stdin: the server ends

    errors = [(a["id"], a["error"]["code"]) for a in answers if "error" in a]
    assert errors == [(None, -32700)] * 3 + [(None, -32600)]
    messages = [a["error"]["message"] for a in answers if "error" in a]
    where = garbled_call.index(b"\xff")
    assert messages[:2] == [
        "Parse error: not UTF-8 (byte 0xff at 0)",
        f"Parse error: not UTF-8 (byte 0xff at {where})",
    ]
    by_id = {a["id"]: a for a in answers if "result" in a}
    assert by_id[0]["result"]["serverInfo"]["name"] == "dynamic-mcp"
    names = [tool["name"] for tool in by_id[1]["result"]["tools"]]
    assert names == ["get_dynamic_tools", "call_dynamic_tool"]
    assert 7 not in by_id  # the garbled call was never made
    assert log.decode().count("answered -32700") == 3, log
