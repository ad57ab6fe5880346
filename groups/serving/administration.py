"""Running a gateway without restarts: the users file watched, users ended on every replica.

    administration = Administration(registry, notifier, front, auth)
    async with administration.running(store, watch=True, reloader=config_reloader):
        ...                                 # the server's lifespan, over HTTP

Guarantees:
- with a users file, while watching: each good save applies at once
  (`groups.serving.users_reload`, SIGHUP too); a user removed, or whose token changed,
  loses what this replica holds of them and what the store holds (their sessions'
  records, their sign-ins waiting; their tokens are kept: `dynamic-mcp admin revoke`
  forgets those), and with a shared store every other replica is told (`USERS_ENDED`)
  and ends theirs too, so no session of theirs answers anywhere;
- with a shared store, a replica ends a user's sessions, processes and sign-ins when
  another replica or `dynamic-mcp admin revoke` says so, and writes its heartbeat
  (`groups.serving.heartbeat`) for `dynamic-mcp admin` to list, saying which of those
  messages it acted on;
- each action is a line of the audit log: `user_added`, `user_removed`,
  `user_token_changed` (by the replica that read the file), `user_sessions_ended` (by
  each replica told);
- the store down: what the replica holds ends all the same, and a warning says what the
  store still holds (its records expire; `admin revoke` clears it once the store is back).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import anyio

from groups import version
from groups.access import User
from groups.config import StdioServer
from groups.errors import DynamicMcpError
from groups.serving.audit import audit
from groups.serving.heartbeat import Heartbeat, ReplicaReport, this_process
from groups.serving.replica_messages import UserEnded, tell_user_ended
from groups.serving.revocation import Cleared, UserEnding, clear_stored
from groups.serving.users import UsersChange, UsersFile
from groups.serving.users_reload import UsersReloader
from groups.storage.shared import SharedStore

if TYPE_CHECKING:
    from groups.registry import Registry
    from groups.reload import ConfigReloader
    from groups.serving.http_front import HttpFront
    from groups.serving.notifier import Notifier
    from groups.storage.store import Store

__all__ = ["Administration"]

logger = logging.getLogger(__name__)

ACKNOWLEDGED = 32  # the latest admin messages a heartbeat says this replica acted on


class Administration:
    """What lets an operator change users and end sessions while the gateway serves."""

    def __init__(self, registry: Registry, notifier: Notifier, front: HttpFront, auth: Any) -> None:
        self._registry, self._front, self._auth = registry, front, auth
        self.ending = UserEnding(registry, notifier, front)
        self._store: Store | None = None
        self._heartbeat: Heartbeat | None = None
        self._acknowledged: deque[dict[str, Any]] = deque(maxlen=ACKNOWLEDGED)
        self._started = time.time()
        front.sessions.on_user_ended = self._told

    def __repr__(self) -> str:
        return f"Administration(replica {self.replica})"

    @property
    def replica(self) -> str:
        return self._front.sessions.replica

    @asynccontextmanager
    async def running(
        self, store: Store, *, watch: bool, reloader: ConfigReloader | None
    ) -> AsyncIterator[None]:
        self._store = store
        users = None
        if watch and isinstance(self._auth, UsersFile) and self._auth.path is not None:
            users = UsersReloader(self._auth, self._users_changed)
            if reloader is not None:
                reloader.also_on_sighup(users.reload)
        async with AsyncExitStack() as stack, anyio.create_task_group() as tasks:
            if isinstance(store, SharedStore):
                self._heartbeat = Heartbeat(store, self._report)
                await stack.enter_async_context(self._heartbeat.beating())
            if users is not None:
                tasks.start_soon(users.run)
            try:
                yield
            finally:
                if users is not None:
                    users.stop()
                self._heartbeat = None

    # ---- the users file changed --------------------------------------------------------

    async def _users_changed(self, change: UsersChange) -> None:
        for user in change.added:
            audit.record("user_added", user=User(user), outcome="ok")
        for reason, users in (("removed", change.removed), ("token_changed", change.token_changed)):
            for user in users:
                await self._end_everywhere(user, reason)

    async def _end_everywhere(self, user: str, reason: str) -> None:
        """End `user`'s access here, in the store, and on every other replica."""
        ended = await self.ending.here(user, reason)
        cleared, told = Cleared(0, 0), 0
        store = self._store
        try:
            if store is not None:
                cleared = await clear_stored(store, user, self._remote_groups(), tokens=False)
            if isinstance(store, SharedStore):
                told = await tell_user_ended(store, UserEnded(user, reason, sender=self.replica))
        except DynamicMcpError as exc:
            logger.warning(
                "user %r %s: the store could not be cleared of their sessions and sign-ins, "
                "nor the other replicas told (run `dynamic-mcp admin revoke` once it "
                "answers): %s",
                user,
                reason.replace("_", " "),
                exc,
            )
        event = "user_removed" if reason == "removed" else "user_token_changed"
        audit.record(
            event,
            user=User(user),
            outcome="ok",
            sessions=max(ended.sessions, cleared.sessions),
            upstreams=ended.upstreams,
            sign_ins=cleared.sign_ins,
            replicas_told=told,
        )

    # ---- another replica, or the admin command, said so ---------------------------------

    async def _told(self, ended: UserEnded) -> None:
        result = await self.ending.here(ended.user, ended.reason)
        audit.record(
            "user_sessions_ended",
            user=User(ended.user),
            outcome="ok",
            reason=ended.reason,
            by=ended.sender,
            sessions=result.sessions,
            upstreams=result.upstreams,
        )
        acted = {"id": ended.id, "sessions": result.sessions, "upstreams": result.upstreams}
        self._acknowledged.append(acted)
        if self._heartbeat is not None:
            self._heartbeat.beat_soon()  # the command waits to see it acted on

    # ---- what the heartbeat says ----------------------------------------------------------

    def _report(self) -> ReplicaReport:
        return replace(
            this_process(self.replica, version(), self._started),
            sessions=self._front.sessions.held(),
            upstreams=[asdict(use) for use in self._registry.uses()],
            users=self._front.seen.recent(),
            acknowledged=list(self._acknowledged),
        )

    def _remote_groups(self) -> list[str]:
        registry = self._registry
        return [
            name
            for name in registry.group_names()
            if not isinstance(registry.config_of(name), StdioServer)
        ]
