"""The one store of this process: where it is chosen, and the only place.

    store = default_store()                 # LocalStore: ~/.dynamic-mcp ($DYNAMIC_MCP_HOME)
    choose_store("redis://r:6379/0", key)   # at start-up: a SharedStore (a team gateway)
    Catalog(), oauth_tokens(group, r)       # both take it when handed no store of their own

Guarantees: every user of the store that is not handed one (the schema catalog, each
group's OAuth tokens and client registrations) gets this same object, so whatever the
store holds open (the gateway's Redis pool) is held once per process. It is chosen at
start-up, before anything uses it (`groups.config.use_configured_store`: the environment,
else the config's settings); a process that chose nothing follows `$DYNAMIC_MCP_STORE`
alone. Without a store setting it is the local files, as on a laptop, and nothing of
Redis is imported. A Redis store without a key is refused (`StoreSettingError`): tokens
are never written to a shared store unencrypted. The local store reads
`$DYNAMIC_MCP_HOME` at each use, so one object serves every home.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from groups.errors import StoreSettingError
from groups.secrets import shown_url
from groups.storage.store import LocalStore, Store

if TYPE_CHECKING:
    from groups.storage.shared import SharedStore

__all__ = ["STORE_ENV_VAR", "STORE_KEY_ENV_VAR", "choose_store", "default_store", "shared_store"]

STORE_ENV_VAR = "DYNAMIC_MCP_STORE"  # redis://host:port/db: the team gateway's shared store
STORE_KEY_ENV_VAR = "DYNAMIC_MCP_STORE_KEY"  # what encrypts its tokens and registrations
_SCHEMES = ("redis", "rediss")

_chosen: Store | None = None


def default_store() -> Store:
    """The store every part of this process shares unless it is handed another."""
    if _chosen is None:
        return choose_store(os.environ.get(STORE_ENV_VAR), os.environ.get(STORE_KEY_ENV_VAR))
    return _chosen


def shared_store() -> SharedStore | None:
    """The store every replica shares (Redis), when this process's store is one."""
    store = default_store()
    if isinstance(store, LocalStore):
        return None  # and nothing of Redis imported
    from groups.storage.shared import SharedStore  # imported already: the store is one

    assert isinstance(store, SharedStore)
    return store


def choose_store(url: str | None, key: str | None) -> Store:
    """Make the store at `url` (None or empty: the local files) this process's store.

    Chosen again with the same settings, it is the same object (the command line chooses
    before it serves, the server's start-up again for `fastmcp run`).

    Raises:
        StoreSettingError: `url` is not a redis:// or rediss:// URL, or `key` is missing.
    """
    global _chosen
    _chosen = _local() if not url else _shared(url, key or "")
    return _chosen


@functools.cache
def _local() -> LocalStore:
    return LocalStore()


@functools.cache
def _shared(url: str, key: str) -> Store:
    shown = shown_url(url)
    if urlsplit(url).scheme not in _SCHEMES:
        raise StoreSettingError(
            f"the store {shown} is not a Redis URL: write redis://host:port/db (rediss:// for "
            f"TLS), or leave {STORE_ENV_VAR} and settings.store unset for the local files"
        )
    if not key.strip():
        raise StoreSettingError(
            f"the store {shown} is shared, so it needs a key to encrypt tokens with: set "
            f'{STORE_KEY_ENV_VAR}, or "store_key" in the settings (`${{file:PATH}}` works)'
        )
    from groups.storage.shared import SharedStore  # Redis is imported only when it is used

    return SharedStore(url, key)
