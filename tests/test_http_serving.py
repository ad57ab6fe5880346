"""Serving over HTTP: a token off loopback, 401 without it, 403 for a foreign page.

Every server here binds 127.0.0.1; the refusals happen before anything binds.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from conftest import (
    ACCEPT,
    INITIALIZE,
    REPO,
    dynamic_mcp_command,
    free_port,
    stdio_entry,
    wait_for_port,
)
from fastmcp import Client
from fastmcp.client.auth import BearerAuth

TOKEN = "test-token-8c1f4d"


def dynamic_mcp(
    config: Path, *args: str, env: dict[str, str] | None = None, output: int | None = None
) -> subprocess.Popen:
    """`dynamic-mcp CONFIG --transport http ARGS`; `output=subprocess.PIPE` to read it."""
    without_token = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    return subprocess.Popen(
        dynamic_mcp_command(config, "--transport", "http", *args),
        cwd=REPO,
        env={**without_token, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=output or subprocess.DEVNULL,
        stderr=output or subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("http") / "dynamic-mcp.json"
    path.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    return path


@pytest.fixture(scope="module")
def guarded_url(config: Path):
    """dynamic-mcp on 127.0.0.1 with a token from the environment."""
    port = free_port()
    process = dynamic_mcp(config, "--port", str(port), env={"DYNAMIC_MCP_HTTP_TOKEN": TOKEN})
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_serving_off_loopback_without_a_token_is_refused_in_one_line(config, host):
    process = dynamic_mcp(config, "--host", host, output=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert stderr.startswith(f"dynamic-mcp: refusing to serve on {host} without a token")
    assert "DYNAMIC_MCP_HTTP_TOKEN" in stderr and "--token-file" in stderr


def test_a_token_file_others_can_read_is_refused(config, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)

    process = dynamic_mcp(
        config, "--host", "0.0.0.0", "--token-file", str(token_file), output=subprocess.PIPE
    )
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stderr.strip() == (
        f"dynamic-mcp: the token file {token_file} is readable by others (mode 0644): "
        f"run chmod 600 {token_file}"
    )


async def test_a_token_from_a_private_file_is_required_on_loopback_too(config, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    process = dynamic_mcp(config, "--port", str(port), "--token-file", str(token_file))
    try:
        wait_for_port(port, process)
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=ACCEPT
            )
        async with Client(f"http://127.0.0.1:{port}/mcp", auth=BearerAuth(TOKEN)) as client:
            names = [tool.name for tool in await client.list_tools()]
    finally:
        process.terminate()
        process.wait(15)

    assert refused.status_code == 401
    assert names == ["get_dynamic_tools", "call_dynamic_tool"]


@pytest.mark.parametrize(
    ("authorization", "origin", "status"),
    [
        (None, None, 401),  # no token
        ("Bearer not-the-token", None, 401),  # another token
        (f"Bearer {TOKEN}", None, 200),
        (f"Bearer {TOKEN}", "http://localhost:6274", 200),  # an inspector on this machine
        (f"Bearer {TOKEN}", "https://attacker.example", 403),  # a foreign page
        (None, "https://attacker.example", 403),  # refused before the token is looked at
    ],
)
async def test_requests_need_the_token_and_foreign_pages_are_refused(
    guarded_url, authorization, origin, status
):
    headers = dict(ACCEPT)
    if authorization:
        headers["Authorization"] = authorization
    if origin:
        headers["Origin"] = origin
    async with httpx2.AsyncClient() as http:
        response = await http.post(guarded_url, json=INITIALIZE, headers=headers)
    assert response.status_code == status
    assert TOKEN not in response.text


async def test_a_request_naming_another_host_is_refused(guarded_url):
    """DNS rebinding: a page on attacker.example resolved to 127.0.0.1 sends its own Host."""
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}", "Host": "attacker.example"}
    async with httpx2.AsyncClient() as http:
        response = await http.post(guarded_url, json=INITIALIZE, headers=headers)
    assert response.status_code == 421


def fastmcp_run(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`fastmcp run server.py:mcp --transport http ARGS`, the other documented way in."""
    fastmcp = Path(sys.executable).parent / "fastmcp"
    without_token = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    return subprocess.Popen(
        [str(fastmcp), "run", "server.py:mcp", "--transport", "http", "--no-banner", *args],
        cwd=REPO,
        env={**without_token, "DYNAMIC_MCP_CONFIG": str(config), **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_fastmcp_run_over_http_keeps_the_token_and_origin_rules(config):
    refused = fastmcp_run(config, "--host", "0.0.0.0", "--port", str(free_port()))
    _, refusal = refused.communicate(timeout=60)
    port = free_port()
    process = fastmcp_run(config, "--port", str(port), env={"DYNAMIC_MCP_HTTP_TOKEN": TOKEN})
    try:
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient() as http:
            anonymous = await http.post(url, json=INITIALIZE, headers=ACCEPT)
            foreign = {**ACCEPT, "Authorization": f"Bearer {TOKEN}", "Origin": "https://x.example"}
            from_a_page = await http.post(url, json=INITIALIZE, headers=foreign)
        async with Client(url, auth=BearerAuth(TOKEN)) as client:
            names = [tool.name for tool in await client.list_tools()]
    finally:
        process.terminate()
        process.communicate(timeout=15)  # reads and closes its pipes

    assert "refusing to serve on 0.0.0.0 without a token" in refusal
    assert (anonymous.status_code, from_a_page.status_code) == (401, 403)
    assert names == ["get_dynamic_tools", "call_dynamic_tool"]


async def test_serving_says_where_it_listens_at_the_default_level_and_that_url_answers(config):
    process = dynamic_mcp(
        config, "--port", "0", env={"DYNAMIC_MCP_HTTP_TOKEN": TOKEN}, output=subprocess.PIPE
    )
    try:
        ready, _, _ = select.select([process.stderr], [], [], 60)  # bounded: it may say nothing
        said = process.stderr.readline() if ready else ""  # the first line, before any request
        url = said.rsplit(" ", 1)[-1].strip()
        async with Client(url, auth=BearerAuth(TOKEN)) as client:
            tools = await client.list_tools()
    finally:
        process.terminate()
        process.communicate(timeout=15)

    assert said.startswith("dynamic-mcp INFO dynamic_mcp.serving: serving MCP at http://127.0.0.1:")
    assert url.endswith("/mcp") and not url.endswith(":0/mcp")  # the port given, not 0
    assert [tool.name for tool in tools] == ["get_dynamic_tools", "call_dynamic_tool"]


def test_a_port_taken_is_one_line_saying_what_to_do(config):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = dynamic_mcp(config, "--port", str(port), output=subprocess.PIPE)
        stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert stdout == ""
    assert stderr.strip().splitlines() == [
        f"dynamic-mcp: cannot listen on 127.0.0.1:{port}: Address already in use; is "
        "dynamic-mcp (or another server) listening there already? Choose another with --port"
    ]
