"""Each upstream's tools, kept in the store, so that expanding a known group starts nothing.

    catalog = Catalog()                                  # the process's one store
    tools = await catalog.get(identity)                  # None: never listed with this identity
    changed = await catalog.put(identity, tools)         # whether it differs from the kept one

Guarantees:
- an entry is keyed by the group's launch identity (`groups.config.identity.launch_identity`):
  command, args, env, url (with the values of the `${VAR}`s they use) and the working
  directory when a path is relative. Two configs that start different programs under one
  group name never see each other's tools; editing a group's filters, timeouts or idle
  setting keeps its entry; an entry for another identity is never used;
- entries live in the store OAuth uses (`groups.storage.default_store` unless given one,
  taken at first use: it is chosen at start-up), each identity its own scope,
  `catalog/<identity>` (in a gateway's Redis, unencrypted: no secret); locally a file per identity,
  `~/.dynamic-mcp/catalog/<identity>.json`, named by the digest alone, so no two entries
  differ only in letter case and none share a file on macOS or Windows. The store writes
  it as every private file (0600 in a 0700 folder, atomically, locked across processes,
  in a worker thread, never on the event loop);
- the live upstream replaces the entry each time a session lists its tools (see
  `groups.upstream.upstream`); what this process last read or wrote is kept in memory, so a
  request makes no store round trip after the first, and an unchanged listing writes
  nothing;
- nothing secret in an entry: tool schemas only, under a digest;
- an entry that cannot be read or parsed, or a store that does not answer, is as good as
  no entry: the upstream is asked instead,
  and its listing replaces the damaged entry. Files of older versions (`<group>.json`, or a
  digest's file holding a bare `{"tools": [...]}`) are never read as entries; the second
  kind is replaced by the next write, the first is left where it is. Entries carry no time
  to live: one whose identity is never launched again stays until removed by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import mcp_types

from groups.errors import StoreUnavailableError, UnsafeTokenFileError
from groups.storage.default import default_store
from groups.storage.store import Scope, Store

__all__ = ["CATALOG_AREA", "Catalog"]

logger = logging.getLogger(__name__)

CATALOG_AREA = "catalog"  # ~/.dynamic-mcp/catalog/<identity>.json, as documented
# One collection and key per identity's scope. The collection is named like the older
# files' bare list, so the store's first write over such a file replaces that list.
_COLLECTION = "tools"
_KEY = "listed"


@dataclass(frozen=True)
class _Entry:
    listed: list[dict[str, Any]]  # as put in the store: what a new listing is compared with
    tools: list[mcp_types.Tool]


class Catalog:
    """The tool lists of upstreams, by launch identity."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store  # None: the process's one store, chosen at start-up, after this
        self._kept: dict[str, _Entry] = {}  # read or written by this process

    @property
    def store(self) -> Store:
        return self._store or default_store()

    def __repr__(self) -> str:
        return f"Catalog({self.store!r})"

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
        scope = self._scope(identity)
        try:
            try:
                await scope.put(_KEY, {"tools": listed}, collection=_COLLECTION)
            except UnsafeTokenFileError:  # a damaged entry: as good as none, so replaced
                await scope.remove()
                await scope.put(_KEY, {"tools": listed}, collection=_COLLECTION)
        # Costs the next start a wait, no more: the expansion itself needs no store.
        except (OSError, UnsafeTokenFileError, StoreUnavailableError) as exc:
            logger.warning("could not keep the catalog entry %s: %s", scope, exc)
        return before is not None

    async def _entry(self, identity: str) -> _Entry | None:
        entry = self._kept.get(identity)
        if entry is None:
            entry = await self._read(self._scope(identity))
            if entry is not None:
                self._kept[identity] = entry
        return entry

    def _scope(self, identity: str) -> Scope:
        if not identity.isalnum():  # a digest; anything else could lead outside the folder
            raise ValueError(f"not a launch identity: {identity!r}")
        return self.store.scope(CATALOG_AREA, identity)

    async def _read(self, scope: Scope) -> _Entry | None:
        try:
            value = await scope.get(_KEY, collection=_COLLECTION)
            if value is None:
                return None
            listed = value["tools"]
            return _Entry(listed, [mcp_types.Tool.model_validate(tool) for tool in listed])
        except StoreUnavailableError as exc:  # the upstream answers instead, as without entry
            logger.warning("asking the upstream, not the catalog: %s", exc)
            return None
        except (OSError, UnsafeTokenFileError, ValueError, KeyError, TypeError) as exc:
            logger.info("ignoring the catalog entry %s: %s", scope, exc)
            return None
