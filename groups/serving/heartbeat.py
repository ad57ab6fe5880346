"""Each replica's heartbeat in the store: what it holds, for `dynamic-mcp admin` to list.

    heartbeat = Heartbeat(store, report)          # report(): this replica's `ReplicaReport`
    async with heartbeat.beating():               # written every BEAT_EVERY, gone at the end
        heartbeat.beat_soon()                     # something changed: write it now
    reports = await read_heartbeats(store)        # every replica alive, as it said

A record (collection `HEARTBEATS`, keyed by the replica's id) says: the replica's id,
host, PID, version and start; the legacy sessions it holds and whose they are; its live
upstream sessions (group, user, transport, PID); the users it served lately (`SEEN_FOR`);
and the `dynamic-mcp admin` messages it has acted on (so `revoke` can say who did).

Guarantees: a record is written whole (one value) every `BEAT_EVERY` seconds and lives
`BEAT_TTL`, so a replica that died (even `kill -9`) drops out of the listing within
`BEAT_TTL`, and one that stops cleanly deletes its own; each is sealed like the session
records (`groups.storage.seal`, over the replica's id): one that does not open is left
out, with a warning; a record holds names, session ids and PIDs, never a token; the
store down, a beat is skipped (and said once), the next one tried as usual.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from groups.errors import DynamicMcpError

if TYPE_CHECKING:
    from groups.storage.shared import SharedStore

__all__ = [
    "BEAT_EVERY",
    "BEAT_TTL",
    "HEARTBEATS",
    "Heartbeat",
    "ReplicaReport",
    "SeenUsers",
    "read_heartbeats",
    "this_process",
]

logger = logging.getLogger(__name__)

HEARTBEATS = "gateway/replicas/heartbeats"  # the store's collection, one record per replica
BEAT_EVERY = 5.0  # seconds between two writes of a replica's record
BEAT_TTL = 20.0  # seconds a record lives unwritten: a replica gone is gone from the list
SEEN_FOR = 900.0  # seconds a user's last request keeps them among the replica's users
MOST_SEEN = 10_000  # users remembered at most (JWTs name any number): the oldest go first
STOP_TIMEOUT = 2.0  # seconds the last write (the record's deletion) may take at shutdown


@dataclass(frozen=True)
class ReplicaReport:
    """What one replica holds, as its heartbeat says."""

    replica: str
    host: str
    pid: int
    version: str
    started: float  # epoch seconds
    written: float = 0.0  # epoch seconds: when this record was written
    sessions: dict[str, str | None] = field(default_factory=dict)  # session id -> its user
    upstreams: list[dict[str, Any]] = field(default_factory=list)  # `UpstreamUse`s
    users: dict[str, float] = field(default_factory=dict)  # user -> their last request
    # The admin messages acted on: {"id", "sessions", "upstreams"} (what it ended).
    acknowledged: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> ReplicaReport | None:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None


def this_process(replica: str, version: str, started: float) -> ReplicaReport:
    """The part of a report that never changes while the replica runs."""
    return ReplicaReport(replica, socket.gethostname(), os.getpid(), version, started)


class SeenUsers:
    """When each named user last sent a request to this replica, over the last `SEEN_FOR`."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"SeenUsers({len(self._last)})"

    def saw(self, user: str) -> None:
        self._last.pop(user, None)  # re-inserted: the dict stays oldest first
        self._last[user] = time.time()
        if len(self._last) > MOST_SEEN:
            for oldest in list(self._last)[: len(self._last) - MOST_SEEN]:
                del self._last[oldest]

    def recent(self) -> dict[str, float]:
        since = time.time() - SEEN_FOR
        self._last = {user: at for user, at in self._last.items() if at >= since}
        return dict(self._last)


class Heartbeat:
    """Writes this replica's record every `BEAT_EVERY` while `beating`."""

    def __init__(self, store: SharedStore, report: Callable[[], ReplicaReport]) -> None:
        self._store, self._report = store, report
        self._soon = anyio.Event()
        self._failing = False  # the operator was told a beat failed

    def __repr__(self) -> str:
        return f"Heartbeat({self._store.shown!r})"

    def beat_soon(self) -> None:
        self._soon.set()

    @asynccontextmanager
    async def beating(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._beat)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_TIMEOUT):
            try:
                await self._store.delete(self._report().replica, collection=HEARTBEATS)
            except DynamicMcpError as exc:
                logger.debug("this replica's heartbeat stays until it expires: %s", exc)

    async def _beat(self) -> None:
        while True:
            await self._write()
            with anyio.move_on_after(BEAT_EVERY):
                await self._soon.wait()
            self._soon = anyio.Event()

    async def _write(self) -> None:
        report = self._report()
        text = json.dumps({**asdict(report), "written": time.time()})
        sealed = self._store.seal.sealed(HEARTBEATS, report.replica, text)
        try:
            await self._store.put(
                report.replica, {"sealed": sealed}, collection=HEARTBEATS, ttl=BEAT_TTL
            )
        except DynamicMcpError as exc:
            if not self._failing:
                logger.warning("this replica's heartbeat is not written: %s", exc)
            self._failing = True
            return
        if self._failing:
            logger.warning("this replica's heartbeat is written again")
        self._failing = False


async def read_heartbeats(store: SharedStore) -> list[ReplicaReport]:
    """Every replica's last record, oldest replica first; forged ones left out.

    Raises:
        StoreUnavailableError: the store does not answer.
    """
    replicas = await store.keys(HEARTBEATS)
    values = await store.get_many(replicas, collection=HEARTBEATS) if replicas else []
    reports = []
    for replica, value in zip(replicas, values, strict=True):
        sealed = value.get("sealed") if value else None
        opened = store.seal.opened(HEARTBEATS, replica, sealed) if sealed else None
        report = ReplicaReport.of(opened) if opened is not None else None
        if report is None or report.replica != replica:
            if value is not None:
                logger.warning(
                    "the heartbeat of replica %s in the store was not written by a replica "
                    "with this store key: left out",
                    replica[:12],
                )
            continue
        reports.append(report)
    return sorted(reports, key=lambda report: (report.started, report.replica))
