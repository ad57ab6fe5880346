"""What a team gateway holds across its replicas, read from the shared store for `admin`.

    view = await GatewayView.read(store)     # heartbeats, session records, sign-ins
    view.replicas, view.sessions, view.sign_ins, view.users()

Guarantees: it only reads (nothing is written, locked or renewed); a record or heartbeat
whose seal does not open is left out (with the warning its reader logs); a sign-in is
shown by its endpoint (query values and passwords hidden), whether it is signed in,
until when, and whether it can refresh: no token, link or state is ever kept in a row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastmcp.client.auth.oauth import TokenStorageAdapter

from groups.auth.tokens import TOKEN_AREA
from groups.secrets import shown_url
from groups.serving.heartbeat import ReplicaReport, read_heartbeats
from groups.serving.replica_messages import RECORDS, open_record, owner_user
from groups.storage.home import USERS_AREA, user_of_segment

if TYPE_CHECKING:
    from groups.storage.shared import SharedStore

__all__ = ["GatewayView", "SessionRow", "SignInRow", "UserRow", "short"]

SHOWN_ID = 8  # characters of a session id shown, as the audit log and the replicas' logs do
_TOKENS, _PENDING = "mcp-oauth-token", "dynamic-mcp-pending"  # collections of a user's scope


def short(session_id: str) -> str:
    return session_id[:SHOWN_ID]


@dataclass(frozen=True)
class SessionRow:
    """One legacy session, as its record and the replicas' heartbeats say."""

    session: str  # its id's first characters
    user: str | None
    client: str  # the client's name and version, as its initialize gave them
    protocol: str
    opened_on: str  # the replica that answered its initialize
    held_by: tuple[str, ...]  # the replicas that hold it now
    expires_in: float | None  # seconds, unless used again


@dataclass(frozen=True)
class SignInRow:
    """One user's sign-in to one group's endpoint."""

    user: str
    group: str
    endpoint: str  # as shown: query values and passwords hidden
    state: str  # "signed in", or "waiting" (for the person, in a browser)
    expires_at: float | None  # the access token's, or the waiting sign-in's
    refreshable: bool = False


@dataclass
class UserRow:
    """One user, over every replica and the store."""

    user: str
    last_seen: float | None = None
    replicas: set[str] = field(default_factory=set)  # those that hold or saw them lately
    sessions: int = 0
    upstreams: int = 0
    signed_in: list[str] = field(default_factory=list)  # groups
    waiting: list[str] = field(default_factory=list)  # groups with a sign-in waiting


@dataclass(frozen=True)
class GatewayView:
    """The replicas alive, the legacy sessions and the users' sign-ins."""

    replicas: list[ReplicaReport]
    sessions: list[SessionRow]
    sign_ins: list[SignInRow]

    @classmethod
    async def read(cls, store: SharedStore) -> GatewayView:
        """Raises: StoreUnavailableError, StoreSettingError (a value of another key)."""
        replicas = await read_heartbeats(store)
        return cls(replicas, await _sessions(store, replicas), await _sign_ins(store))

    def users(self) -> list[UserRow]:
        """Every user a replica or the store knows of, the latest seen first."""
        rows: dict[str, UserRow] = {}

        def row(user: str) -> UserRow:
            return rows.setdefault(user, UserRow(user))

        for report in self.replicas:
            for user, at in report.users.items():
                seen = row(user)
                seen.last_seen = max(seen.last_seen or 0.0, at)
                seen.replicas.add(report.replica)
            for user in report.sessions.values():
                if user is not None:
                    row(user).replicas.add(report.replica)
            for use in report.upstreams:
                if use.get("user") is not None:
                    row(use["user"]).upstreams += 1
                    row(use["user"]).replicas.add(report.replica)
        for session in self.sessions:
            if session.user is not None:
                row(session.user).sessions += 1
        for sign_in in self.sign_ins:
            groups = row(sign_in.user).signed_in if sign_in.state == "signed in" else None
            (groups if groups is not None else row(sign_in.user).waiting).append(sign_in.group)
        return sorted(rows.values(), key=lambda r: (-(r.last_seen or 0.0), r.user))


async def _sessions(store: SharedStore, replicas: list[ReplicaReport]) -> list[SessionRow]:
    session_ids = await store.keys(RECORDS)
    found = await store.ttl_many(session_ids, collection=RECORDS) if session_ids else []
    rows = []
    for session_id, (value, ttl) in zip(session_ids, found, strict=True):
        record = open_record(store, session_id, value) if value is not None else None
        if record is None:
            continue
        held_by = tuple(r.replica for r in replicas if session_id in r.sessions)
        info = record.client.get("clientInfo") or {}
        client = " ".join(str(info.get(part, "")) for part in ("name", "version")).strip()
        rows.append(
            SessionRow(
                short(session_id),
                owner_user(record.owner),
                client or "?",
                record.protocol_version,
                record.home,
                held_by,
                ttl,
            )
        )
    return sorted(rows, key=lambda r: (r.user or "", r.session))


async def _sign_ins(store: SharedStore) -> list[SignInRow]:
    """Each named user's tokens and waiting sign-ins, per group and endpoint."""
    rows = []
    for collection, keys in sorted((await store.collections(f"{USERS_AREA}/")).items()):
        parts = collection.split("/")  # users/<user>/oauth-servers/<group>/<collection>
        if len(parts) != 5 or parts[2] != TOKEN_AREA or parts[4] not in (_TOKENS, _PENDING):
            continue
        user, group = user_of_segment(parts[1]), parts[3]
        scope = store.scope(TOKEN_AREA, group, user=user)
        for key in sorted(keys):
            if parts[4] == _PENDING:
                url = key.removesuffix("/pending")
                _, ttl = await scope.ttl(key, collection=_PENDING)
                until = time.time() + ttl if ttl is not None else None
                rows.append(SignInRow(user, group, shown_url(url), "waiting", until))
            elif key.endswith("/tokens"):
                rows.append(await _signed_in(scope, user, group, key.removesuffix("/tokens")))
    return rows


async def _signed_in(scope: Any, user: str, group: str, url: str) -> SignInRow:
    adapter = TokenStorageAdapter(scope, url)
    tokens = await adapter.get_tokens()  # read to say whether it refreshes; never shown
    expires_at = await adapter.get_token_expiry()
    refreshable = tokens is not None and bool(tokens.refresh_token)
    return SignInRow(user, group, shown_url(url), "signed in", expires_at, refreshable)
