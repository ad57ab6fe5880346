"""The local store: private files, two processes writing at once, and the one store of a
process that OAuth tokens and the schema catalog share."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.to_thread
import mcp_types
import pytest
from conftest import REPO

from groups.auth.tokens import oauth_tokens
from groups.catalog import Catalog
from groups.secrets import Redactor
from groups.storage import default_store
from groups.storage.store import LocalStore

KEYS_EACH = 30  # enough writes that unlocked read-modify-writes would lose some

WRITER = """
import sys, anyio
from groups.storage.store import LocalStore

async def main(name: str, count: int) -> None:
    scope = LocalStore().scope("oauth-servers", "shared")
    for i in range(count):
        await scope.put(f"{name}-{i}", {"n": i}, collection="entries")

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


def run_writers(script: str) -> list[int]:
    """Run `script` as two processes at once, "one" and "two"; their exit codes."""
    writers = [
        subprocess.Popen([sys.executable, "-c", script, name, str(KEYS_EACH)], cwd=REPO)
        for name in ("one", "two")
    ]
    return [writer.wait(60) for writer in writers]


def test_two_processes_writing_one_file_at_once_both_land():
    assert run_writers(WRITER) == [0, 0]

    path = Path(os.environ["DYNAMIC_MCP_HOME"]) / "oauth-servers" / "shared.json"
    entries = json.loads(path.read_text())["entries"]
    expected = {f"{name}-{i}" for name in ("one", "two") for i in range(KEYS_EACH)}
    assert set(entries) == expected
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_entries_past_their_time_to_live_are_gone():
    scope = LocalStore().scope("oauth-servers", "ttl")
    await scope.put("kept", {"v": 1}, collection="c")
    await scope.put("spent", {"v": 2}, collection="c", ttl=-1)

    assert await scope.get("kept", collection="c") == {"v": 1}
    assert await scope.get("spent", collection="c") is None
    assert await scope.keys("c") == ["kept"]


def test_the_catalog_and_oauth_tokens_go_through_the_one_store_of_the_process():
    tokens = oauth_tokens("github", Redactor())

    assert Catalog().store is default_store()
    assert tokens.store is default_store()


CATALOG_WRITER = """
import sys, anyio, mcp_types
from groups.catalog import Catalog

async def main(name: str, count: int) -> None:
    for i in range(count):
        tool = mcp_types.Tool.model_validate({"name": name, "inputSchema": {"type": "object"}})
        await Catalog().put(f"{name}{i}", [tool])  # a fresh process's catalog each time
        await Catalog().put("shared", [tool])  # both write one entry over and over

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def test_two_processes_writing_catalog_entries_at_once_both_land():
    assert await anyio.to_thread.run_sync(run_writers, CATALOG_WRITER) == [0, 0]

    folder = Path(os.environ["DYNAMIC_MCP_HOME"]) / "catalog"
    catalog = Catalog()
    kept = {
        f"{name}{i}": await catalog.get(f"{name}{i}")
        for name in ("one", "two")
        for i in range(KEYS_EACH)
    }
    shared = await catalog.get("shared") or []
    assert {identity: [tool.name for tool in tools or []] for identity, tools in kept.items()} == {
        f"{name}{i}": [name] for name in ("one", "two") for i in range(KEYS_EACH)
    }
    assert [tool.name for tool in shared] in (["one"], ["two"])  # whole, one or the other
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.glob("*.json")} == {0o600}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


ECHO_TOOL = mcp_types.Tool.model_validate({"name": "echo", "inputSchema": {"type": "object"}})


@pytest.mark.parametrize(
    "found",
    [
        "{not json",  # cut short or edited by hand
        '["a", "list"]',  # JSON, but not a store file
        '{"tools": [{"name": "old", "inputSchema": {"type": "object"}}]}',  # an older version's
        '{"tools": {"listed": {"value": {"tools": "nonsense"}}}}',  # a store entry of no tools
    ],
)
async def test_a_damaged_or_older_catalog_entry_is_as_good_as_none_and_replaced(found: str):
    path = default_store().path("catalog", "abc123")
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text(found)
    path.chmod(0o600)

    before = await Catalog().get("abc123")
    changed = await Catalog().put("abc123", [ECHO_TOOL])
    after = await Catalog().get("abc123")

    assert before is None
    assert changed is False  # nothing was kept before, so nothing was given out to differ
    assert after == [ECHO_TOOL]


async def test_a_warm_catalog_answers_from_memory_with_the_store_gone():
    catalog = Catalog()
    await Catalog().put("abc123", [ECHO_TOOL])
    assert await catalog.get("abc123") == [ECHO_TOOL]  # read once from the store
    default_store().path("catalog", "abc123").unlink()

    assert await catalog.get("abc123") == [ECHO_TOOL]
