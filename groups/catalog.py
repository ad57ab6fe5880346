"""Each group's tools, kept on disk, so that expanding a known group starts nothing.

    catalog = Catalog()                                  # ~/.dynamic-mcp/catalog/
    tools = catalog.get("time", fingerprint)             # None: unknown, or config changed
    changed = catalog.put("time", fingerprint, tools)    # whether it differs from the kept one

Guarantees:
- one file per group, `<group>.json`: the group's fingerprint (a digest of its effective
  config, `groups.config.fingerprint`) and its tools as the upstream listed them; an entry
  whose fingerprint differs from the group's now (an edited entry, a changed variable) is
  never used;
- written atomically; nothing secret in it: tool schemas, and a digest;
- a file that cannot be read or parsed is as good as none: the upstream is asked instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import mcp_types

from groups.home import catalog_dir, group_file

__all__ = ["Catalog"]

logger = logging.getLogger(__name__)


class Catalog:
    """The tool lists of groups, by name, each valid for one fingerprint."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory

    def __repr__(self) -> str:
        return f"Catalog({str(self.directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory or catalog_dir()

    def get(self, group: str, fingerprint: str) -> list[mcp_types.Tool] | None:
        """The group's kept tools, if kept for this fingerprint."""
        path = group_file(self.directory, group, ".json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("fingerprint") != fingerprint:
                return None
            return [mcp_types.Tool.model_validate(tool) for tool in data["tools"]]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.info("ignoring the catalog entry %s: %s", path, exc)
            return None

    def put(self, group: str, fingerprint: str, tools: list[mcp_types.Tool]) -> bool:
        """Keep the group's tools; whether they differ from what was kept for it."""
        listed = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
        path = group_file(self.directory, group, ".json")
        try:
            before = json.loads(path.read_text(encoding="utf-8")).get("tools")
        except (OSError, ValueError, AttributeError):
            before = None
        if before == listed and self.get(group, fingerprint) is not None:
            return False
        self._write(path, {"fingerprint": fingerprint, "tools": listed})
        return before is not None and before != listed

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
