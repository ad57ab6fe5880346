"""One user's OAuth tokens, shared by replicas through Redis and nothing else.

Two dynamic-mcp processes with homes of their own (so no file, no `flock` between them)
and one Redis as the store: a sign-in made by a terminal is used by both, and when the
OAuth server rotates its refresh token at every refresh, the two refreshing at once never
lose the rotation (the refresh is made under the store's Redis lock, and the token one
wrote is read back by the other).
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import mcp_types
from conftest import serving_http
from fastmcp import Client
from fastmcp.client.auth.oauth import TokenStorageAdapter
from test_oauth import (
    SIGN_IN_WAIT,
    auth_command,
    config_for,
    home,
    oauth_servers,
    short_lived_url,
    whoami,
)
from test_shared_store import pytestmark, read_with_the_key, redis_server, shared

# test_oauth's and test_shared_store's fixtures (and skip rule), used here by name
__all__ = ["home", "oauth_servers", "pytestmark", "redis_server", "shared", "short_lived_url"]


async def test_two_replicas_refreshing_one_rotating_token_at_once_both_stay_signed_in(
    write_config, short_lived_url, home, shared, tmp_path: Path
):
    config = config_for(write_config, short_lived_url)
    signed = auth_command(home, config, "guarded")  # a third home, also only through Redis

    async def refresh_token() -> str | None:
        async with read_with_the_key(shared.url) as scope:
            tokens = await TokenStorageAdapter(scope, short_lived_url).get_tokens()
        return tokens.refresh_token if tokens is not None else None

    def own_home(name: str) -> dict[str, str]:
        return {**os.environ, "DYNAMIC_MCP_HOME": str(tmp_path / name)}

    rotations = 3  # each one a race between the two replicas' refreshes
    answers: list[mcp_types.CallToolResult] = []
    with (
        serving_http(config, env=own_home("one")) as (one, _),
        serving_http(config, env=own_home("two")) as (two, _),
    ):
        async with Client(one, mode="legacy") as first, Client(two, mode="legacy") as second:

            async def call(client: Client) -> None:
                answers.append(await whoami(client))

            seen = {await refresh_token()}
            with anyio.fail_after(SIGN_IN_WAIT * rotations):
                while len(seen) <= rotations and not any(a.is_error for a in answers):
                    async with anyio.create_task_group() as both:
                        both.start_soon(call, first)
                        both.start_soon(call, second)
                    seen.add(await refresh_token())
                    await anyio.sleep(0.05)

    assert signed.returncode == 0, signed.stderr
    assert [a.content[0].text for a in answers if a.is_error] == []
    assert len(seen - {None}) > rotations  # the server did rotate, more than once
    assert not (tmp_path / "one" / "oauth-servers").exists()  # nothing shared by file
    assert not (tmp_path / "two" / "oauth-servers").exists()
