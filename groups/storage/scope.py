"""A `Scope`: one user's part of the store, `<area>/<name>/` in front of each collection.

    tokens = store.scope("oauth-servers", "github", user="alice")   # made by a store
    await tokens.put(key, value, collection="mcp-oauth-token")     # users/alice/oauth-servers/...

Guarantees: every collection read or written goes through the scope's prefix, so a scope
never reads another's values; what it reads or writes is shown to its `on_value` first
(the redactor learns tokens before anything could log them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, SupportsFloat

if TYPE_CHECKING:
    from groups.storage.store import Store

__all__ = ["OnValue", "Scope"]

OnValue = Callable[[str, Mapping[str, Any]], None]  # (collection, value) read or written


class Scope:
    """One user's part of a store: collections prefixed with `<area>/<name>/`.

    Implements `AsyncKeyValue`, so FastMCP's `OAuth(token_storage=...)` takes it as is.
    """

    def __init__(self, store: Store, prefix: str, on_value: OnValue | None = None) -> None:
        self.store = store
        self.prefix = prefix
        self._on_value = on_value

    def __repr__(self) -> str:
        return f"Scope({self.prefix!r})"

    @property
    def where(self) -> str:
        """Where the store keeps this scope, as `auth` shows it: a file, or a URL."""
        return self.store.where(self.prefix)

    def locked(self) -> Any:
        """An async context that holds this scope against every other writer."""
        return self.store.locked(self.prefix)

    async def remove(self) -> bool:
        """Forget everything this scope holds; whether there was anything."""
        return await self.store.remove(self.prefix)

    async def foreign(self, *, take: bool = False) -> dict[str, Any]:
        """See `LocalStore.foreign`."""
        return await self.store.foreign(self.prefix, take=take)

    async def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        return self._seen(collection, await self.store.get(key, collection=self._in(collection)))

    async def ttl(
        self, key: str, *, collection: str | None = None
    ) -> tuple[dict[str, Any] | None, float | None]:
        value, ttl = await self.store.ttl(key, collection=self._in(collection))
        return self._seen(collection, value), ttl

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        self._seen(collection, value)
        await self.store.put(key, value, collection=self._in(collection), ttl=ttl)

    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        return await self.store.delete(key, collection=self._in(collection))

    async def get_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[dict[str, Any] | None]:
        values = await self.store.get_many(keys, collection=self._in(collection))
        return [self._seen(collection, value) for value in values]

    async def ttl_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[tuple[dict[str, Any] | None, float | None]]:
        pairs = await self.store.ttl_many(keys, collection=self._in(collection))
        return [(self._seen(collection, value), ttl) for value, ttl in pairs]

    async def put_many(
        self,
        keys: Sequence[str],
        values: Sequence[Mapping[str, Any]],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        for value in values:
            self._seen(collection, value)
        await self.store.put_many(keys, values, collection=self._in(collection), ttl=ttl)

    async def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        return await self.store.delete_many(keys, collection=self._in(collection))

    async def keys(self, collection: str | None = None, *, limit: int | None = None) -> list[str]:
        return await self.store.keys(self._in(collection), limit=limit)

    def _in(self, collection: str | None) -> str:
        return f"{self.prefix}/{collection or 'default'}"

    def _seen(self, collection: str | None, value: Any) -> Any:
        if value is not None and self._on_value is not None:
            self._on_value(collection or "default", value)
        return value
