"""What replicas tell each other about legacy HTTP sessions, through the shared store.

    messages = ReplicaMessages(store, replica, holds, forget)
    async with messages.listening():              # answers for us; sessions ended elsewhere
        await messages.record(session_id, SessionRecord(version, params, owner, replica))
        record = await messages.find(session_id)  # None: unknown, ended or expired
        await messages.forward(session_id, owner, answers, is_home)  # to the asking replica
        await messages.cancel_everywhere(session_id, owner, notices)  # to the replica running it
        await messages.end(session_id)            # record gone, every replica told
    await tell_user_ended(store, UserEnded("alice", "revoked", sender="admin"))  # every replica

Records are values in the store (`RECORDS`, expiring unless written again, after as long
as their session can live); messages are Redis pub/sub: `ENDED` and `CANCELLED` to every
replica, and the channel of one replica for the answers to its own questions; and
`USERS_ENDED`, to every replica, for a user whose sessions must end everywhere (removed
from the users file, or revoked by `dynamic-mcp admin revoke`), heard by `on_user_ended`.

Guarantees: a record is one value, written whole or not at all; an answer the asking
replica did not hear is sent again for a few seconds (it may be listening anew after
Redis came back), then dropped: the call waiting for it times out as it would had the
client not answered; a session ended while a replica was not listening stays held there
until its idle timeout; listening survives Redis going away and coming
back, with a warning each time it stops and an info line when it resumes; a message that
is not what a replica sends is dropped with a debug line, never raised.

The store is not a back door: every record and message is sealed with a MAC under a key
derived from the store key (`groups.storage.seal`), over what it says, where it is and
which session it is about. A record that does not open is taken for no session; a
message that does not open, or is older than `MESSAGE_FRESH` (a replay), is dropped; each
with a warning for the operator. Whoever can write to Redis without the store key can
neither take, end, cancel in nor answer for another's session.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import anyio
from mcp_types import jsonrpc_message_adapter
from pydantic import ValidationError

from groups.errors import DynamicMcpError, StoreUnavailableError
from groups.internals import deliver

if TYPE_CHECKING:
    from groups.storage.shared import SharedStore

__all__ = [
    "CANCELLED",
    "ENDED",
    "RECORDS",
    "USERS_ENDED",
    "ReplicaMessages",
    "SessionRecord",
    "UserEnded",
    "open_record",
    "open_sealed",
    "owner_user",
    "publish_sealed",
    "tell_user_ended",
]

logger = logging.getLogger(__name__)

RECORDS = "http-sessions/legacy/records"  # the store's collection of session records
ENDED = "http-sessions/ended"  # channel: a session a client ended, for every replica
ANSWERS = "http-sessions/answers/"  # + a replica: the channel of answers to its questions
CANCELLED = "http-sessions/cancelled"  # channel: a client cancelled one of its requests
USERS_ENDED = "gateway/users-ended"  # channel: a user's sessions end on every replica
ENDING_REASONS = frozenset({"removed", "token_changed", "revoked"})
LISTEN_POLL = 1.0  # seconds a listener waits for a message before it looks again
LISTEN_AGAIN_AFTER = 1.0  # seconds between tries to listen while Redis is away
PUBLISH_TRIES = 3  # an answer no replica heard is sent again, LISTEN_AGAIN_AFTER apart
MESSAGE_FRESH = 30.0  # seconds a message is good for: past it, a replay (clocks agree)
_REPLICA_ID = re.compile(r"^dmcp-([0-9a-f]{12})-\d+$")  # `PrefixedIds` of a replica


@dataclass(frozen=True)
class SessionRecord:
    """What a session's `initialize` left, for a replica to take the session up ready."""

    protocol_version: str  # as negotiated
    client: dict[str, Any]  # the client's initialize params, as it sent them
    owner: dict[str, Any] | None  # the credential that opened it (the SDK's comparison)
    home: str  # the replica that opened it: its requests to the client carry plain ids


def open_record(store: SharedStore, session_id: str, value: dict[str, Any]) -> SessionRecord | None:
    """The record a replica wrote for `session_id`, if its seal opens (else None, and a
    warning)."""
    sealed = value.get("sealed")
    opened = store.seal.opened(RECORDS, session_id, sealed) if sealed else None
    if opened is None:
        logger.warning(
            "session %s…: its record in the store was not written by a replica with "
            "this store key (forged, or the key changed): taken for no session",
            session_id[:8],
        )
        return None
    try:
        return SessionRecord(**json.loads(opened))
    except TypeError:
        logger.debug("session %s…: its record is not one this version writes", session_id[:8])
        return None


def owner_user(owner: Any) -> str | None:
    """The gateway user a session's owner (the SDK's, or a record's) is: the subject of
    the credential that opened it, which our verifiers make the user's name
    (`groups.serving.users`); None: the implicit user."""
    subject = owner.get("subject") if isinstance(owner, dict) else None
    return subject if isinstance(subject, str) and subject else None


@dataclass(frozen=True)
class UserEnded:
    """A user whose sessions, processes and sign-ins end on every replica that hears it."""

    user: str
    reason: str  # one of `ENDING_REASONS`
    sender: str  # the replica that noticed (its id), or "admin" for the command
    id: str = field(default_factory=lambda: uuid4().hex)  # heartbeats acknowledge it

    @classmethod
    def of(cls, payload: dict[str, Any]) -> UserEnded | None:
        user, reason = payload.get("user"), payload.get("reason")
        sender, message_id = payload.get("from"), payload.get("id")
        if not isinstance(user, str) or not user or reason not in ENDING_REASONS:
            return None
        if not isinstance(sender, str) or not isinstance(message_id, str):
            return None
        return cls(user, reason, sender, message_id)


async def tell_user_ended(store: SharedStore, ended: UserEnded) -> int:
    """Tell every replica listening that `ended.user`'s sessions end; how many heard."""
    payload = {"user": ended.user, "reason": ended.reason, "from": ended.sender, "id": ended.id}
    return await publish_sealed(store, USERS_ENDED, payload)


async def publish_sealed(store: SharedStore, channel: str, payload: dict[str, Any]) -> int:
    """Send `payload`, sealed and dated, to the replicas listening on `channel`; how many
    heard it."""
    text = json.dumps({**payload, "at": time.time()})
    return await store.publish(channel, store.seal.sealed(channel, "", text))


def open_sealed(store: SharedStore, channel: str, data: str) -> dict[str, Any] | None:
    """What a replica sealed on `channel` a moment ago, else None (and a warning)."""
    text = store.seal.opened(channel, "", data)
    try:
        payload = json.loads(text) if text is not None else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        if text is None and store.seal.is_sealed(data):  # a replica's, with another key?
            logger.warning(
                "dropped a message on %s sealed with another key: do all replicas have the "
                "same store key?",
                channel,
            )
        else:
            logger.warning("dropped a message on %s no replica sent", channel)
        return None
    at = payload.get("at")
    if not isinstance(at, int | float) or abs(time.time() - at) > MESSAGE_FRESH:
        logger.warning("dropped a message on %s sent long ago: replayed", channel)
        return None
    return payload


class ReplicaMessages:
    """Session records and messages between the replicas of one gateway."""

    def __init__(
        self,
        store: SharedStore,
        replica: str,
        holds: Callable[[str], Any],
        forget: Callable[[str], Awaitable[None]],
        record_ttl: float,
        on_user_ended: Callable[[UserEnded], Awaitable[None]] | None = None,
    ) -> None:
        """Args:
        store: the gateway's shared store.
        replica: this replica's id (`PrefixedIds` carry it).
        holds: the transport of a session this replica holds, else None.
        forget: let go of a session another replica ended.
        record_ttl: seconds a record lives unwritten: as long as its session can.
        on_user_ended: end a user's sessions here, another replica or the command said so.
        """
        self._store, self.replica = store, replica
        self._holds, self._forget = holds, forget
        self._record_ttl = record_ttl
        self._on_user_ended = on_user_ended
        self._tasks: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return f"ReplicaMessages({self._store.shown!r}, replica {self.replica})"

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Hear other replicas (and refresh records in the background) while this runs."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._listen)
            try:
                yield
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()

    async def record(self, session_id: str, record: SessionRecord) -> None:
        sealed = self._store.seal.sealed(RECORDS, session_id, json.dumps(asdict(record)))
        value = {"sealed": sealed}
        await self._store.put(session_id, value, collection=RECORDS, ttl=self._record_ttl)

    async def find(self, session_id: str) -> SessionRecord | None:
        value = await self._store.get(session_id, collection=RECORDS)
        return open_record(self._store, session_id, value) if value is not None else None

    async def end(self, session_id: str) -> None:
        """Delete the record and tell every replica to let the session go."""
        await self._store.delete(session_id, collection=RECORDS)
        await self._publish(ENDED, {"session": session_id})

    def refresh_soon(self, session_id: str) -> None:
        """Write the record again in the background, so it outlives its TTL in use."""
        if self._tasks is not None:
            self._tasks.start_soon(self._refresh, session_id)

    async def forward(
        self,
        session_id: str,
        owner: dict[str, Any] | None,
        answers: list[dict[str, Any]],
        is_home: Callable[[str], bool],
    ) -> bool:
        """Send the client's answers to the replicas that asked; False when they are all
        this replica's to take (or the session is not `owner`'s: the SDK answers then)."""
        askers = [_asker(answer.get("id")) for answer in answers]
        if all(asker == self.replica for asker in askers):
            return False
        if all(asker in (None, self.replica) for asker in askers) and is_home(session_id):
            return False
        record = await self.find(session_id)
        if record is None or record.owner != owner:
            return False
        for answer, asker in zip(answers, askers, strict=True):
            target = asker or record.home
            if target == self.replica:
                await self._deliver(session_id, answer)
                continue
            payload = {"session": session_id, "message": answer}
            if await self._publish(ANSWERS + target, payload):
                logger.info("the client's answer went on to replica %s, which asked", target)
            elif self._tasks is not None:
                self._tasks.start_soon(self._publish_again, target, payload)
        return True

    async def _publish_again(self, target: str, payload: dict[str, Any]) -> None:
        """Try again while a replica may be listening anew (Redis came back a moment ago);
        a replica that stays silent is gone, and the call that asked went with it."""
        for _ in range(PUBLISH_TRIES):
            await anyio.sleep(LISTEN_AGAIN_AFTER)
            try:
                if await self._publish(ANSWERS + target, payload):
                    logger.info("the client's answer went on to replica %s, which asked", target)
                    return
            except DynamicMcpError:
                pass  # tried again, or given up below
        logger.info("replica %s, which asked the client, is gone: its answer is dropped", target)

    async def cancel_everywhere(
        self, session_id: str, owner: dict[str, Any] | None, notices: list[dict[str, Any]]
    ) -> None:
        """Pass the client's cancellations on to every replica: one of them runs the call
        (the client's request ids are its own, unique in its session)."""
        record = await self.find(session_id)
        if record is None or record.owner != owner:
            return
        for notice in notices:
            payload = {"session": session_id, "message": notice, "from": self.replica}
            await self._publish(CANCELLED, payload)

    async def _publish(self, channel: str, payload: dict[str, Any]) -> int:
        return await publish_sealed(self._store, channel, payload)

    async def _refresh(self, session_id: str) -> None:
        try:
            record = await self.find(session_id)
            if record is not None:
                await self.record(session_id, record)
        except DynamicMcpError as exc:
            logger.debug("session %s…: record not refreshed: %s", session_id[:8], exc)

    async def _listen(self) -> None:
        stopped = False
        while True:
            try:
                channels = (ENDED, CANCELLED, USERS_ENDED, ANSWERS + self.replica)
                async with self._store.listening(*channels) as listener:
                    if stopped:
                        logger.warning("hearing the other replicas again through the store")
                        stopped = False
                    while True:
                        got = await listener.next_message(within=LISTEN_POLL)
                        if got is not None:
                            await self._heard(*got)
            except StoreUnavailableError as exc:
                if not stopped:
                    logger.warning("not hearing the other replicas: %s", exc)
                    stopped = True
            except Exception:
                # This task shares the server's lifespan: whatever one message did, the
                # replica goes on serving, and listening starts again.
                logger.exception("listening to the other replicas failed; listening again")
            await anyio.sleep(LISTEN_AGAIN_AFTER)

    async def _heard(self, channel: str, data: str) -> None:
        payload = open_sealed(self._store, channel, data)
        if payload is None:
            return
        if channel == USERS_ENDED:
            ended = UserEnded.of(payload)
            if ended is None:
                logger.debug("dropped a message that no replica sends on %s", channel)
            elif ended.sender != self.replica and self._on_user_ended is not None:
                await self._on_user_ended(ended)  # the sender ended them there itself
            return
        try:
            if channel == ENDED:
                await self._forget(payload["session"])
            elif payload.get("from") != self.replica:  # the sender served it itself
                await self._deliver(payload["session"], payload["message"])
        except (KeyError, TypeError):
            logger.debug("dropped a message that no replica sends on %s", channel)

    async def _deliver(self, session_id: str, answer: dict[str, Any]) -> None:
        """Hand a client's answer to the call waiting for it in this replica."""
        transport = self._holds(session_id)
        if transport is None:
            logger.debug("session %s… is not held here: its answer is late", session_id[:8])
            return
        try:
            await deliver(transport, jsonrpc_message_adapter.validate_python(answer))
        except ValidationError:
            logger.debug("dropped an answer that is not JSON-RPC")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.debug("session %s… ended before its answer arrived", session_id[:8])


def _asker(request_id: Any) -> str | None:
    """The replica whose request `request_id` is; None: the session's home's (plain ids)."""
    found = _REPLICA_ID.match(request_id) if isinstance(request_id, str) else None
    return found.group(1) if found else None
