"""What dynamic-mcp keeps between runs, under `~/.dynamic-mcp`: one key-value store, private files.

    store = default_store()             # this process's one store (a LocalStore unless chosen
                                        # otherwise): OAuth tokens, registrations, the catalog
    choose_store(url, key)              # at start-up: Redis for a team gateway (shared.py)
    write_private(path, text)           # 0600 in a 0700 folder, atomically
    write_atomically(path, text, mode)  # the one atomic writer: any file

Whatever is kept goes through these, so one rule holds for every file: see each module.
"""

from groups.storage.default import choose_store, default_store
from groups.storage.file_lock import FileLock
from groups.storage.home import HOME_ENV_VAR, dynamic_mcp_home
from groups.storage.private_files import (
    NotPrivateError,
    read_private,
    write_atomically,
    write_private,
)
from groups.storage.store import LocalStore, Scope, Store

__all__ = [
    "HOME_ENV_VAR",
    "FileLock",
    "LocalStore",
    "NotPrivateError",
    "Scope",
    "Store",
    "choose_store",
    "default_store",
    "dynamic_mcp_home",
    "read_private",
    "write_atomically",
    "write_private",
]
