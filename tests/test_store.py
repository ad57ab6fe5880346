"""The local store: private files, and two processes writing one file at once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import REPO

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


def test_two_processes_writing_one_file_at_once_both_land():
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name, str(KEYS_EACH)], cwd=REPO)
        for name in ("one", "two")
    ]
    assert [writer.wait(60) for writer in writers] == [0, 0]

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
