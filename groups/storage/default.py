"""The one store of this process: where it is chosen, and the only place.

    store = default_store()                 # LocalStore: ~/.dynamic-mcp ($DYNAMIC_MCP_HOME)
    Catalog(), oauth_tokens(group, r)       # both take it when handed no store of their own

Guarantees: every user of the store that is not handed one (the schema catalog, each
group's OAuth tokens and client registrations) gets this same object, so whatever the
store holds open (a Redis pool for the team gateway, say) is held once per process. A
shared store is plugged in here and nowhere else; locally nothing needs setting. The
local store reads `$DYNAMIC_MCP_HOME` at each use, so one object serves every home.
"""

from __future__ import annotations

import functools

from groups.storage.store import LocalStore

__all__ = ["default_store"]


@functools.cache
def default_store() -> LocalStore:
    """The store every part of this process shares unless it is handed another."""
    return LocalStore()
