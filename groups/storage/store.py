"""The store: one `AsyncKeyValue` for what outlives a process, local files by default.

    store = LocalStore()                                # ~/.dynamic-mcp/<area>/<name>.json
    tokens = store.scope("oauth-servers", "github")     # OAuth(token_storage=tokens)
    async with tokens.locked():                         # read-modify-write, across processes
        ...

OAuth tokens and client registrations live here (through FastMCP's public
`token_storage`), and so does the schema catalog (`groups.catalog`: a scope per launch
identity, `store.scope("catalog", identity)`). A process has one store, chosen in
`groups.storage.default`.

Keys: a collection is `<area>/<name>/<collection>`: the area says what is kept
(`oauth-servers`), the name whose it is (the group), the collection is the caller's own
(FastMCP's `mcp-oauth-token`, keyed by endpoint URL). A gateway's named user has the
same collections with the user in front, `users/<user>/<area>/<name>/...`
(`store.scope(area, name, user="alice")`: locally `~/.dynamic-mcp/users/alice/<area>/
<name>.json`); the implicit user (no users file, no JWTs) has none, as on a laptop.

Guarantees of `LocalStore`:
- each `<area>/<name>` is one file, `~/.dynamic-mcp/<area>/<name>.json`, one object per
  collection inside; top-level entries it does not own (an older format) are kept as found;
- every file goes through `groups.storage.private_files`: 0600 in a 0700 folder, written
  atomically, wider modes narrowed;
- writes are read-modify-write under a lock on `<name>.json.lock` (`fcntl.flock`), so two
  processes writing at once both land; `locked()` holds the same lock around a longer
  exchange (an OAuth refresh) and is re-entrant for the task holding it;
- no file is touched on the event loop: every read and write runs in a worker thread;
- what a `Scope` reads or writes is shown to its `on_value` first (the redactor learns
  tokens before anything could log them).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, SupportsFloat

import anyio
import anyio.to_thread

from groups.errors import UnsafeTokenFileError
from groups.storage.file_lock import FileLock
from groups.storage.home import USERS_AREA, dynamic_mcp_home, group_file, user_prefix
from groups.storage.private_files import NotPrivateError, read_private, write_private
from groups.storage.scope import OnValue, Scope

if TYPE_CHECKING:  # importing py-key-value costs every command 0.3 s: only the checker
    from key_value.aio.protocols.key_value import AsyncKeyValue as _KeyValue
else:

    class _KeyValue(Protocol): ...


__all__ = ["LocalStore", "Scope", "Store"]

Entry = dict[str, Any]  # {"value": {...}, "expires_at": epoch seconds (absent: never)}


class Store(_KeyValue, Protocol):
    """What a `Scope` needs of a store: `LocalStore`, or the gateway's `SharedStore`."""

    def scope(
        self, area: str, name: str, on_value: OnValue | None = None, user: str | None = None
    ) -> Scope: ...
    def where(self, prefix: str) -> str: ...  # shown to the user: a file, or a URL
    def locked(self, prefix: str) -> Any: ...  # an async context: `prefix` against other writers
    async def remove(self, prefix: str) -> bool: ...
    async def foreign(self, prefix: str, *, take: bool = False) -> dict[str, Any]: ...
    async def keys(
        self, collection: str | None = None, *, limit: int | None = None
    ) -> list[str]: ...


class LocalStore:
    """`AsyncKeyValue` over private JSON files under `~/.dynamic-mcp` (see the module)."""

    def __init__(self, home: Path | None = None) -> None:
        self._home = home  # None: $DYNAMIC_MCP_HOME or ~/.dynamic-mcp, read at each use

    def __repr__(self) -> str:
        return f"LocalStore({str(self.home)!r})"

    @property
    def home(self) -> Path:
        return self._home or dynamic_mcp_home()

    def scope(
        self, area: str, name: str, on_value: OnValue | None = None, user: str | None = None
    ) -> Scope:
        """The view of `area/name` that one user of the store works with (`user`: a
        gateway's named user, None: the implicit one)."""
        prefix = f"{user_prefix(user)}/{area}/{name}" if user is not None else f"{area}/{name}"
        self._file(prefix)  # refuses a name that is not a plain file name, early
        return Scope(self, prefix, on_value)

    def path(self, area: str, name: str) -> Path:
        """The file that holds `area/name`."""
        return group_file(self.home / area, name, ".json")

    def where(self, prefix: str) -> str:
        return str(self._file(prefix))

    @asynccontextmanager
    async def locked(self, prefix: str) -> AsyncIterator[None]:
        """Hold `prefix`'s file against every other writer, here and in other processes."""
        async with FileLock.of(self._file(prefix).with_name(f"{self._file(prefix).name}.lock")):
            yield

    async def remove(self, prefix: str) -> bool:
        """Delete everything `prefix` holds (its whole file); whether there was anything."""
        path = self._file(prefix)
        async with self.locked(prefix):
            return await anyio.to_thread.run_sync(_unlink, path)

    async def foreign(self, prefix: str, *, take: bool = False) -> dict[str, Any]:
        """What `prefix`'s file holds that is not the store's (an older format's fields);
        with `take`, removed from the file as it is handed over."""
        path = self._file(prefix)
        if not take:
            return _foreign(await anyio.to_thread.run_sync(_load, path))

        def take_foreign() -> dict[str, Any]:
            data = _load(path)
            found = _foreign(data)
            if found:
                kept = {name: value for name, value in data.items() if name not in found}
                if kept:
                    write_private(path, json.dumps(kept, indent=2))
                else:
                    _unlink(path)
            return found

        async with self.locked(prefix):
            return await anyio.to_thread.run_sync(take_foreign)

    # ---- AsyncKeyValue ------------------------------------------------------------------

    async def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        value, _ = await self.ttl(key, collection=collection)
        return value

    async def ttl(
        self, key: str, *, collection: str | None = None
    ) -> tuple[dict[str, Any] | None, float | None]:
        path, section = self._where(collection)
        entry = (await self._read(path)).get(section, {}).get(key)
        return _live(entry)

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        await self.put_many([key], [value], collection=collection, ttl=ttl)

    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        return await self.delete_many([key], collection=collection) == 1

    async def get_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[dict[str, Any] | None]:
        return [value for value, _ in await self.ttl_many(keys, collection=collection)]

    async def ttl_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[tuple[dict[str, Any] | None, float | None]]:
        path, section = self._where(collection)
        entries = (await self._read(path)).get(section, {})
        return [_live(entries.get(key)) for key in keys]

    async def put_many(
        self,
        keys: Sequence[str],
        values: Sequence[Mapping[str, Any]],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        if len(keys) != len(values):
            raise ValueError("put_many: as many values as keys")
        expires_at = None if ttl is None else time.time() + float(ttl)

        def change(entries: dict[str, Entry]) -> None:
            for key, value in zip(keys, values, strict=True):
                entry: Entry = {"value": dict(value)}
                if expires_at is not None:
                    entry["expires_at"] = expires_at
                entries[key] = entry

        await self._change(collection, change)

    async def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        gone: list[str] = []

        def change(entries: dict[str, Entry]) -> None:
            gone.extend(key for key in keys if entries.pop(key, None) is not None)

        await self._change(collection, change)
        return len(gone)

    async def keys(self, collection: str | None = None, *, limit: int | None = None) -> list[str]:
        """The keys of `collection` whose entries have not expired."""
        path, section = self._where(collection)
        entries = (await self._read(path)).get(section, {})
        live = [key for key, entry in entries.items() if _live(entry)[0] is not None]
        return live[:limit]

    # ---- files --------------------------------------------------------------------------

    def _where(self, collection: str | None) -> tuple[Path, str]:
        prefix, _, section = (collection or "").rpartition("/")
        if not section:
            raise ValueError(f"collection {collection!r} is not <area>/<name>/<collection>")
        return self._file(prefix), section

    def _file(self, prefix: str) -> Path:
        home = self.home
        if prefix.startswith(f"{USERS_AREA}/"):  # users/<user>/<area>/<name>
            _, user, prefix = prefix.split("/", 2)
            home = group_file(home / USERS_AREA, user)
        area, _, name = prefix.partition("/")
        if not area or "/" in name:
            raise ValueError(f"{prefix!r} is not <area>/<name>")
        return group_file(home / area, name, ".json")

    async def _read(self, path: Path) -> dict[str, dict[str, Entry]]:
        return _sections(await anyio.to_thread.run_sync(_load, path))

    async def _change(
        self, collection: str | None, change: Callable[[dict[str, Entry]], None]
    ) -> None:
        path, section = self._where(collection)

        def read_change_write() -> None:
            data = _load(path)
            entries = _sections(data).get(section, {})
            change(entries)
            if entries:
                data[section] = entries
            else:
                data.pop(section, None)
            if data:
                write_private(path, json.dumps(data, indent=2))
            else:
                _unlink(path)

        async with FileLock.of(path.with_name(f"{path.name}.lock")):
            await anyio.to_thread.run_sync(read_change_write)


def _load(path: Path) -> dict[str, Any]:
    """The file's JSON object; `{}` when there is none.

    Raises:
        UnsafeTokenFileError: the file is open to others and cannot be narrowed, cannot be
            read, or is not a JSON object.
    """
    try:
        data = json.loads(read_private(path, narrow=True))
    except FileNotFoundError:
        return {}
    except NotPrivateError as exc:
        raise UnsafeTokenFileError(
            exc.path, f"is open to others (mode {exc.mode:04o}) and cannot be made private"
        ) from None
    except (OSError, ValueError) as exc:
        raise UnsafeTokenFileError(path, f"cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UnsafeTokenFileError(path, "is not a dynamic-mcp store file")
    return data


def _sections(data: dict[str, Any]) -> dict[str, dict[str, Entry]]:
    """The collections in a file: objects of entries. Anything else is not ours to read."""
    return {
        name: {key: entry for key, entry in section.items() if _is_entry(entry)}
        for name, section in data.items()
        if isinstance(section, dict)
    }


def _foreign(data: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields that are not collections of entries."""
    return {
        name: value
        for name, value in data.items()
        if not (isinstance(value, dict) and value and all(map(_is_entry, value.values())))
    }


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("value"), dict)


def _live(entry: Entry | None) -> tuple[dict[str, Any] | None, float | None]:
    """An entry's value and seconds left, or (None, None) once it has expired."""
    if entry is None:
        return None, None
    expires_at = entry.get("expires_at")
    if expires_at is None:
        return dict(entry["value"]), None
    left = float(expires_at) - time.time()
    return (dict(entry["value"]), left) if left > 0 else (None, None)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
