"""What dynamic-mcp keeps between runs, under `~/.dynamic-mcp`: one key-value store, private files.

store = LocalStore()                              # OAuth tokens, registrations, the catalog
write_private(path, text)                         # 0600 in a 0700 folder, atomically
"""

from groups.storage.file_lock import FileLock
from groups.storage.home import HOME_ENV_VAR, dynamic_mcp_home
from groups.storage.private_files import NotPrivateError, read_private, write_private
from groups.storage.store import LocalStore, Scope

__all__ = [
    "HOME_ENV_VAR",
    "FileLock",
    "LocalStore",
    "NotPrivateError",
    "Scope",
    "dynamic_mcp_home",
    "read_private",
    "write_private",
]
