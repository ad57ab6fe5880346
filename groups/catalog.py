"""Each upstream's tools, kept on disk, so that expanding a known group starts nothing.

    catalog = Catalog()                                  # ~/.dynamic-mcp/catalog/
    tools = await catalog.get(identity)                  # None: never listed with this identity
    changed = await catalog.put(identity, tools)         # whether it differs from the kept one

Guarantees:
- an entry is keyed by the group's launch identity (`groups.config.identity.launch_identity`):
  command, args, env, url (with the values of the `${VAR}`s they use) and the working
  directory when a path is relative. Two configs that start different programs under one
  group name never see each other's tools; editing a group's filters, timeouts or idle
  setting keeps its entry; an entry for another identity is never used;
- one file per identity, `<identity>.json`, named by the digest alone: no two entries
  differ only in letter case, so none share a file on macOS or Windows;
- the live upstream replaces the entry each time a session lists its tools (see
  `groups.upstream.upstream`); what this process last read or wrote is kept in memory, so a
  request reads no file after the first, and a write reads none;
- files are read and written in a worker thread, never on the event loop; written
  atomically; nothing secret in them: tool schemas only, under a digest;
- a file that cannot be read or parsed is as good as none: the upstream is asked instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types

from groups.storage.home import catalog_dir

__all__ = ["Catalog"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    listed: list[dict[str, Any]]  # as written to the file: what a new listing is compared with
    tools: list[mcp_types.Tool]


class Catalog:
    """The tool lists of upstreams, by launch identity."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._kept: dict[str, _Entry] = {}  # read or written by this process

    def __repr__(self) -> str:
        return f"Catalog({str(self.directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory or catalog_dir()

    async def get(self, identity: str) -> list[mcp_types.Tool] | None:
        """The tools kept for this launch identity, or None."""
        entry = await self._entry(identity)
        return entry.tools if entry is not None else None

    async def put(self, identity: str, tools: list[mcp_types.Tool]) -> bool:
        """Keep an upstream's tools; whether they differ from the ones kept before."""
        listed = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
        before = await self._entry(identity)
        if before is not None and before.listed == listed:
            return False
        self._kept[identity] = _Entry(listed, list(tools))
        path = self._path(identity)
        try:
            await anyio.to_thread.run_sync(self._write, path, {"tools": listed})
        except OSError as exc:  # a full or read-only disk costs the next start a wait, no more
            logger.warning("could not keep the catalog entry %s: %s", path, exc)
        return before is not None

    async def _entry(self, identity: str) -> _Entry | None:
        entry = self._kept.get(identity)
        if entry is None:
            entry = await anyio.to_thread.run_sync(self._read, self._path(identity))
            if entry is not None:
                self._kept[identity] = entry
        return entry

    def _path(self, identity: str) -> Path:
        if not identity.isalnum():  # a digest; anything else could lead outside the folder
            raise ValueError(f"not a launch identity: {identity!r}")
        return self.directory / f"{identity}.json"

    def _read(self, path: Path) -> _Entry | None:
        try:
            listed = json.loads(path.read_text(encoding="utf-8"))["tools"]
            return _Entry(listed, [mcp_types.Tool.model_validate(tool) for tool in listed])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.info("ignoring the catalog entry %s: %s", path, exc)
            return None

    def _write(self, path: Path, data: dict[str, object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(data, file, separators=(",", ":"))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
