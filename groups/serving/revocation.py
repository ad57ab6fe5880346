"""Ending what one user holds: their sessions, upstream processes and sign-ins, everywhere.

    ending = UserEnding(registry, notifier, front)          # one per replica
    ended = await ending.here("alice", "removed")            # what this replica holds of her
    cleared = await clear_stored(store, "alice", groups, tokens=False)  # what the store holds
    await tell_user_ended(store, UserEnded("alice", "removed", sender=replica))  # the others

A user's access ends when they leave the users file (`removed`), their token changes
there (`token_changed`: what the old one opened goes with it), or an operator runs
`dynamic-mcp admin revoke` (`revoked`, which forgets their upstream tokens too).

Guarantees:
- `here` ends on this replica every legacy session it holds for the user (a request with
  one of their session ids is answered 404 from then on, as for an unknown session),
  gives their session places back, ends their upstream sessions and own processes (a
  process every user shares runs on), stops their sign-in waiting and drops the OAuth
  clients holding their tokens in memory, and closes their listen streams;
- `clear_stored` deletes from the store what could bring any of it back on any replica:
  their session records, their session places, their sign-ins waiting for a browser (the
  link then finishes nothing); with `tokens`, their OAuth tokens and client registrations
  for every group too, each under the lock a refresh takes; it reads no token out, and
  returns counts and group names only;
- nothing here logs a token or a link.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from groups.auth.handover import FLOW_AREA, drop_waiting
from groups.auth.tokens import TOKEN_AREA
from groups.serving.replica_messages import RECORDS, open_record, owner_user
from groups.serving.session_limits import forget_places
from groups.storage.home import user_prefix
from groups.storage.shared import SharedStore

if TYPE_CHECKING:
    from groups.registry import Registry
    from groups.serving.http_front import HttpFront
    from groups.serving.notifier import Notifier
    from groups.storage.store import Store

__all__ = ["Cleared", "Ended", "UserEnding", "clear_stored"]

logger = logging.getLogger(__name__)

# What a request cut short by the end of its user's access is told, by reason.
BECAUSE = {
    "removed": "your user was removed from this gateway",
    "token_changed": "your token for this gateway was changed",
    "revoked": "an operator ended your sessions on this gateway",
}


@dataclass(frozen=True)
class Ended:
    """What one replica ended of a user."""

    sessions: int  # legacy sessions it held
    upstreams: int  # upstream sessions (own processes, remote sessions)


@dataclass(frozen=True)
class Cleared:
    """What the store held of a user, deleted."""

    sessions: int  # session records
    sign_ins: int  # sign-ins that waited for a browser
    token_groups: tuple[str, ...] = ()  # groups whose tokens went


class UserEnding:
    """Ends what this replica holds of one user (see the module)."""

    def __init__(self, registry: Registry, notifier: Notifier, front: HttpFront | None) -> None:
        self._registry, self._notifier, self._front = registry, notifier, front

    def __repr__(self) -> str:
        return f"UserEnding({self._registry!r})"

    async def here(self, user: str, reason: str) -> Ended:
        sessions: list[str] = []
        if self._front is not None:
            sessions = await self._front.sessions.end_user(user)
            await self._front.limits.forget(user)
        upstreams = await self._registry.end_user(user, BECAUSE[reason])
        self._notifier.end_listening(user)
        if sessions or upstreams:
            logger.warning(
                "user %r %s: ended %d sessions and %d upstream sessions on this replica",
                user,
                reason.replace("_", " "),
                len(sessions),
                upstreams,
            )
        return Ended(len(sessions), upstreams)


async def clear_stored(store: Store, user: str, groups: Iterable[str], *, tokens: bool) -> Cleared:
    """Delete what `store` holds of `user` that could bring their access back (see the
    module); `groups`: the remote groups of the config (with Redis, every group the store
    names for the user counts too).

    Raises:
        StoreUnavailableError: the store does not answer (what was deleted stays deleted).
    """
    groups = set(groups)
    sessions = 0
    if isinstance(store, SharedStore):
        groups |= await _groups_in_store(store, user)
        sessions = await _delete_records(store, user)
        await forget_places(store, user)
    sign_ins = 0
    token_groups = []
    for group in sorted(groups):
        scope = store.scope(TOKEN_AREA, group, user=user)
        sign_ins += await drop_waiting(scope)
        if tokens and await scope.remove():
            token_groups.append(group)
    if isinstance(store, SharedStore):
        sign_ins += await _drop_flows(store, user)  # of groups no longer in the config too
    return Cleared(sessions, sign_ins, tuple(token_groups))


async def _groups_in_store(store: SharedStore, user: str) -> set[str]:
    """The groups `store` keeps tokens, registrations or sign-ins of `user` for."""
    collections = await store.collections(f"{user_prefix(user)}/{TOKEN_AREA}/")
    return {collection.split("/")[3] for collection in collections}


async def _delete_records(store: SharedStore, user: str) -> int:
    """Delete the records of `user`'s legacy sessions, every replica's; how many."""
    session_ids = await store.keys(RECORDS)
    values = await store.get_many(session_ids, collection=RECORDS) if session_ids else []
    theirs = []
    for session_id, value in zip(session_ids, values, strict=True):
        record = open_record(store, session_id, value) if value is not None else None
        if record is not None and owner_user(record.owner) == user:
            theirs.append(session_id)
    return await store.delete_many(theirs, collection=RECORDS) if theirs else 0


async def _drop_flows(store: SharedStore, user: str) -> int:
    """Drop the flows started for `user` that still wait for a browser; how many."""
    dropped = 0
    for collection in await store.collections(f"{FLOW_AREA}/"):
        state = collection.split("/")[1]
        flow = await store.get("flow", collection=collection)
        if flow is not None and flow.get("user") == user:
            dropped += await store.remove(f"{FLOW_AREA}/{state}")
    return dropped
