"""The team gateway's store: Redis, through py-key-value, secrets encrypted with the operator's key.

    store = SharedStore("redis://redis.internal:6379/0", key)  # chosen in groups.storage.default
    tokens = store.scope("oauth-servers", "github")             # the same `Scope` as locally
    async with tokens.locked():                                 # a Redis lock, across replicas
        ...

Keys: a scope's collection `<area>/<name>/<collection>` (as `LocalStore`'s) is the Redis key
`dynamic-mcp__<area>/<name>/<collection>::<key>` (py-key-value's `RedisStore` under its
`PrefixCollectionsWrapper`), so dynamic-mcp shares a database with anything else; a
gateway's named user has the user in front of the area (`users/<user>/oauth-servers/...`),
which never meets a key of the implicit user's.

Guarantees:
- values under `SECRET_AREAS` (OAuth tokens, client registrations and their secrets),
  every user's, are encrypted at rest with Fernet (py-key-value's
  `FernetEncryptionWrapper`), its key derived from the operator's `store_key`; the catalog
  holds tool schemas only and is plain JSON, so an operator can read it;
- each value is one Redis `SET`: a failure writes all of it or nothing;
- messages between replicas (`publish`, `listening`) are Redis pub/sub on channels under
  the same namespace: delivered to whoever listens at that moment, kept for nobody;
- a Redis that is down or slow fails the operation, within `STORE_TIMEOUT` per try and
  `STORE_RETRIES` tries, as `StoreUnavailableError`, naming the store by its URL without
  password (a value written with another key is a `StoreSettingError`); the client's pool
  connects again at the next operation, so service resumes by itself once Redis answers;
- nothing here caches: the in-process caches sit above it, where they know what may be
  stale (`groups.catalog` keeps what it read or wrote; a group's `GroupOAuth` signs requests
  with the tokens it holds and reads the store only to catch up, under the lock, where a
  cached token could be a rotated refresh token spent twice);
- the key and the URL's password appear in no message and no log line.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, SupportsFloat, TypeVar

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from key_value.aio.errors import DecryptionError
from key_value.aio.stores.redis import RedisStore
from key_value.aio.wrappers.encryption import FernetEncryptionWrapper
from key_value.aio.wrappers.encryption.fernet import KDF_ITERATIONS
from key_value.aio.wrappers.prefix_collections import PrefixCollectionsWrapper
from key_value.aio.wrappers.routing import RoutingWrapper
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from groups.errors import StoreSettingError, StoreUnavailableError
from groups.secrets import shown_url
from groups.serving.metrics import metrics
from groups.storage.home import USERS_AREA, user_prefix
from groups.storage.seal import Seal
from groups.storage.store import OnValue, Scope

__all__ = [
    "LOCK_TIMEOUT",
    "SECRET_AREAS",
    "STORE_RETRIES",
    "STORE_TIMEOUT",
    "Listener",
    "SharedStore",
    "key_name",
    "store_keys",
]

# What is encrypted: tokens and registrations, and sign-ins waiting for a browser (their
# PKCE verifiers, `groups.auth.handover`).
SECRET_AREAS = frozenset({"oauth-servers", "oauth-pending"})
NAMESPACE = "dynamic-mcp"  # in front of every key, so a database can be shared
STORE_TIMEOUT = 2.0  # seconds per try to connect, send or read: a slow Redis is a down one
STORE_RETRIES = 2  # tries after the first (redis-py's backoff between): a blip is not down
LOCK_TIMEOUT = 60.0  # a refresh's lock: its lease, and the longest a replica waits for it
# The key derivation's salt is fixed: every replica must derive the same key from the same
# operator's key; the operator's key is the secret.
_SALT = "dynamic-mcp shared store"
_GLOB = re.compile(r"([*?\[\]\\])")  # characters SCAN's MATCH reads as a pattern

T = TypeVar("T")


class SharedStore:
    """`AsyncKeyValue` over Redis for every replica of a gateway (see the module)."""

    def __init__(self, url: str, key: str) -> None:
        self.shown = shown_url(url)  # the URL as messages show it: no password
        self._redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=STORE_TIMEOUT,
            socket_connect_timeout=STORE_TIMEOUT,
            retry=Retry(ExponentialWithJitterBackoff(), STORE_RETRIES),
        )
        plain = PrefixCollectionsWrapper(RedisStore(client=self._redis), prefix=NAMESPACE)
        keys = store_keys(key)
        self.key_names = [key_name(each) for each in keys]  # shown for keys: never the keys
        # The newest key encrypts; every key given decrypts (MultiFernet): a rotation.
        fernet = MultiFernet([Fernet(_fernet_key(each)) for each in keys])
        secret = FernetEncryptionWrapper(plain, fernet=fernet)
        self._values = RoutingWrapper(
            lambda collection: secret if _area(collection) in SECRET_AREAS else None,
            default_store=plain,
        )
        self._scripts: dict[str, AsyncScript] = {}  # by source: loaded once, run by digest
        self.seal = Seal(keys)  # for what replicas write for each other (session records…)

    def __repr__(self) -> str:
        return f"SharedStore({self.shown!r}, keys {self.key_names})"

    def scope(
        self, area: str, name: str, on_value: OnValue | None = None, user: str | None = None
    ) -> Scope:
        """The view of `area/name` that one user of the store works with (`user`: a
        gateway's named user, None: the implicit one)."""
        if not area or not name or "/" in area + name or area == USERS_AREA:
            raise ValueError(f"{area}/{name} is not <area>/<name>")
        prefix = f"{area}/{name}"
        return Scope(
            self, f"{user_prefix(user)}/{prefix}" if user is not None else prefix, on_value
        )

    def where(self, prefix: str) -> str:
        return f"{self.shown} ({prefix})"

    async def ping(self) -> None:
        """Whether Redis answers (`dynamic-mcp check`): raises `StoreUnavailableError` if not."""
        await self._answer(self._redis.ping)

    async def aclose(self) -> None:
        """Close the connections to Redis (a new operation would open them again)."""
        await self._redis.aclose()

    @asynccontextmanager
    async def locked(self, prefix: str) -> AsyncIterator[None]:
        """Hold `prefix` against every other holder, in this replica and the others.

        Not re-entrant, unlike the local store's file lock: nothing that holds it takes it
        again (writes here need no lock: each value is one `SET`).
        """
        # A holder that dies frees it after LOCK_TIMEOUT. One that outlives its lease finds
        # it taken over; releasing then is no error, the next holder reads what is stored.
        lock = self._redis.lock(
            f"{NAMESPACE}__locks::{prefix}",
            timeout=LOCK_TIMEOUT,
            blocking_timeout=LOCK_TIMEOUT,
            raise_on_release_error=False,
        )
        if not await self._answer(lock.acquire):
            raise StoreUnavailableError(self.shown, f"{prefix} stayed locked {LOCK_TIMEOUT:g}s")
        try:
            yield
        finally:
            await self._answer(lock.release)

    async def remove(self, prefix: str) -> bool:
        """Delete every value `prefix` holds; whether there was any."""
        pattern = _match(f"{NAMESPACE}__{prefix}/")

        async def remove_all() -> bool:
            found = [key async for key in self._redis.scan_iter(match=pattern)]
            return bool(found) and await self._redis.delete(*found) > 0

        async with self.locked(prefix):
            return await self._answer(remove_all)

    async def publish(self, channel: str, message: str) -> int:
        """Send `message` to whoever listens on `channel` now (Redis pub/sub: nothing is
        kept for a replica that is not listening); how many received it."""
        return await self._answer(lambda: self._redis.publish(_channel(channel), message))

    @asynccontextmanager
    async def listening(self, *channels: str) -> AsyncIterator[Listener]:
        """A connection of its own subscribed to `channels`, for `next_message`."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await self._answer(lambda: pubsub.subscribe(*map(_channel, channels)))
            yield Listener(self, pubsub)
        finally:
            with suppress(RedisError, OSError):  # the connection is gone already
                await pubsub.aclose()

    async def run_script(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the Lua `script` in Redis, atomically, on `keys` (names under the store's
        namespace, as channels are) with `args`: for what one value cannot do alone, such
        as counting a user's sessions across replicas."""
        runner = self._scripts.get(script)
        if runner is None:
            runner = self._scripts[script] = self._redis.register_script(script)
        names = [_channel(key) for key in keys]
        return await self._answer(lambda: runner(keys=names, args=list(args)))

    def limits_storage(self) -> Any:
        """A storage for the `limits` library's rate limiters on this store's Redis pool,
        its keys under the store's namespace (`groups.upstream.call_limits`)."""
        from limits.aio.storage import RedisStorage

        return RedisStorage(
            "async+redis://",  # unused: the pool below is the connection
            implementation="redispy",
            connection_pool=self._redis.connection_pool,
            key_prefix=f"{NAMESPACE}__limits",
            wrap_exceptions=True,  # limits.errors.StorageError, whatever the client raised
            socket_timeout=STORE_TIMEOUT,
        )

    async def foreign(self, prefix: str, *, take: bool = False) -> dict[str, Any]:
        """Nothing: the files of older versions are local; Redis never held them."""
        return {}

    async def keys(self, collection: str | None = None, *, limit: int | None = None) -> list[str]:
        """The keys of `collection` (a scope's: `<area>/<name>/<collection>`)."""
        start = f"{NAMESPACE}__{collection}::"

        async def scan() -> list[str]:
            found = self._redis.scan_iter(match=_match(start))
            return [key.removeprefix(start) async for key in found]

        found = await self._answer(scan)
        return found[:limit]

    async def collections(self, prefix: str) -> dict[str, list[str]]:
        """Every collection whose name starts with `prefix` (`users/alice/oauth-servers/`,
        `oauth-pending/`), and its keys: what an operator's command looks through."""
        start = f"{NAMESPACE}__"

        async def scan() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            async for name in self._redis.scan_iter(match=_match(start + prefix)):
                collection, _, key = name.removeprefix(start).partition("::")
                if key:
                    found.setdefault(collection, []).append(key)
            return found

        return await self._answer(scan)

    async def rekey(self) -> int:
        """Write every encrypted value again with the newest key, each scope under its lock
        (a token refreshed meanwhile is not overwritten with its older self); how many.
        Values TTLs are kept. Once it ran, older keys can be dropped from `store_key`."""
        pattern = _match(f"{NAMESPACE}__")

        async def secret_collections() -> set[str]:
            found = self._redis.scan_iter(match=pattern)
            named = [key.removeprefix(f"{NAMESPACE}__").split("::", 1) async for key in found]
            return {
                parts[0] for parts in named if len(parts) == 2 and _area(parts[0]) in SECRET_AREAS
            }

        written = 0
        for collection in sorted(await self._answer(secret_collections)):
            async with self.locked(_scope_of(collection)):  # the lock its writers take
                for key in await self.keys(collection):
                    value, ttl = await self.ttl(key, collection=collection)
                    if value is not None:
                        await self.put(key, value, collection=collection, ttl=ttl)
                        written += 1
        return written

    # ---- AsyncKeyValue: py-key-value's wrappers, Redis's failures named once -------------

    async def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        return await self._answer(lambda: self._values.get(key, collection=collection))

    async def ttl(
        self, key: str, *, collection: str | None = None
    ) -> tuple[dict[str, Any] | None, float | None]:
        return await self._answer(lambda: self._values.ttl(key, collection=collection))

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        await self._answer(lambda: self._values.put(key, value, collection=collection, ttl=ttl))

    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        return await self._answer(lambda: self._values.delete(key, collection=collection))

    async def get_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[dict[str, Any] | None]:
        return await self._answer(lambda: self._values.get_many(keys, collection=collection))

    async def ttl_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[tuple[dict[str, Any] | None, float | None]]:
        return await self._answer(lambda: self._values.ttl_many(keys, collection=collection))

    async def put_many(
        self,
        keys: Sequence[str],
        values: Sequence[Mapping[str, Any]],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        await self._answer(
            lambda: self._values.put_many(keys, values, collection=collection, ttl=ttl)
        )

    async def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        return await self._answer(lambda: self._values.delete_many(keys, collection=collection))

    async def _answer(self, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation`'s result; Redis failing to answer becomes `StoreUnavailableError`."""
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            metrics.store_failed()
            # redis-py's messages name the host and port, never the password.
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailableError(self.shown, cause) from exc
        except DecryptionError:
            tried = ", ".join(f"key {name}" for name in self.key_names)
            raise StoreSettingError(
                f"the store {self.shown} holds values that decrypt with none of the store "
                f"keys given ({tried}): every replica needs the key the values were written "
                "with; to change keys, give the new one first and the old one on the next "
                "line, and run `dynamic-mcp rekey`"
            ) from None


class Listener:
    """Messages published on the channels a `SharedStore.listening` subscribed to."""

    def __init__(self, store: SharedStore, pubsub: PubSub) -> None:
        self._store, self._pubsub = store, pubsub

    async def next_message(self, *, within: float) -> tuple[str, str] | None:
        """The next (channel, message), or None when none came `within` seconds.

        Raises:
            StoreUnavailableError: the connection to Redis is lost (listen again).
        """
        got = await self._store._answer(lambda: self._pubsub.get_message(timeout=within))
        if got is None or got.get("type") != "message":
            return None
        return got["channel"].removeprefix(f"{NAMESPACE}__"), got["data"]


def store_keys(given: str) -> list[str]:
    """The store keys in a `store_key` setting: one per line, the newest first."""
    return [line.strip() for line in given.splitlines() if line.strip()]


def key_name(key: str) -> str:
    """A key's public name, for logs and errors: the start of a digest no key is derived
    from (so it tells keys apart without telling anything of them)."""
    return hashlib.sha256(b"dynamic-mcp store key name\0" + key.encode()).hexdigest()[:8]


def _fernet_key(key: str) -> bytes:
    """The Fernet key py-key-value derives from `key` (its PBKDF2, its iterations): the
    same values stay readable whether one key is given or several."""
    derived = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=32, salt=_SALT.encode(), iterations=KDF_ITERATIONS
    ).derive(key.encode())
    return base64.urlsafe_b64encode(derived)


def _channel(name: str) -> str:
    return f"{NAMESPACE}__{name}"


def _scope_of(collection: str) -> str:
    """The prefix of the scope a collection is in: `<area>/<name>`, or a named user's
    `users/<user>/<area>/<name>` (`scope`)."""
    parts = collection.split("/")
    return "/".join(parts[: 4 if parts[0] == USERS_AREA else 2])


def _area(collection: str | None) -> str:
    """The area of a scope's collection (`oauth-servers/github/mcp-oauth-token`), a named
    user's too (`users/alice/oauth-servers/github/...`)."""
    parts = (collection or "").split("/")
    return parts[2] if parts[0] == USERS_AREA and len(parts) > 2 else parts[0]


def _match(prefix: str) -> str:
    """A SCAN pattern for every key that starts with `prefix`."""
    return _GLOB.sub(r"\\\1", prefix) + "*"
