"""`dynamic-mcp gateway new-user` and `new-store-key`, run as an operator would: the token
printed opens a real gateway serving the users file, which holds only its digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, dynamic_mcp_command, free_port, stdio_entry, wait_for_port
from fastmcp import Client
from fastmcp.client.auth import BearerAuth


def dynamic_mcp(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "server", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def gateway(config: Path, port: int, users: Path) -> subprocess.Popen[bytes]:
    """A real gateway on 127.0.0.1 serving the users file."""
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    command = dynamic_mcp_command(config, "--transport", "http", "--port", str(port))
    return subprocess.Popen(
        [*command, "--users", str(users)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_new_users_token_opens_the_gateway_serving_the_file_it_was_added_to(tmp_path):
    users = tmp_path / "users.json"
    alice = dynamic_mcp("gateway", "new-user", "alice", "--users", str(users))
    bob = dynamic_mcp("gateway", "new-user", "bob", "--users", str(users))
    again = dynamic_mcp("gateway", "new-user", "alice", "--users", str(users))
    token = bob.stdout.strip()
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    port = free_port()
    server = gateway(config, port, users)
    try:
        wait_for_port(port, server)
        async with Client(f"http://127.0.0.1:{port}/mcp", auth=BearerAuth(token)) as client:
            names = [tool.name for tool in await client.list_tools()]
    finally:
        server.terminate()
        server.wait(15)

    assert (alice.returncode, bob.returncode, again.returncode) == (0, 0, 2)
    assert "already has 'alice'" in again.stderr
    assert names == ["get_dynamic_tools", "call_dynamic_tool"]
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    held = json.loads(users.read_text())
    assert sorted(held) == ["alice", "bob"]
    assert all(value.startswith("sha256:") for value in held.values())
    assert token not in users.read_text() and alice.stdout.strip() not in users.read_text()


def test_each_new_store_key_is_fresh_and_long():
    keys = {dynamic_mcp("gateway", "new-store-key").stdout.strip() for _ in range(2)}
    assert len(keys) == 2 and all(len(key) >= 43 for key in keys)
