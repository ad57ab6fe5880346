"""The audit log: one JSON line per event that reaches an upstream or changes state.

    audit.open("/var/log/dynamic-mcp/audit.jsonl", replica="3f9a1c2e0b4d")  # or "-": stderr
    audit.record("tool_call", user=user, group="github", tool="create_issue",
                 outcome="ok", duration_ms=84.2)
    audit.close()

Off unless `settings.audit_log` names a file (appended to) or `-` (stderr). A line:

    {"time": "2026-12-07T03:20:11.482Z", "event": "tool_call", "user": "alice",
     "replica": "3f9a1c2e0b4d", "group": "github", "tool": "create_issue",
     "outcome": "ok", "duration_ms": 84.2}

Events (`EVENTS`): `expansion`, `tool_call` (`"via": "code"` for a program's call),
`code_run` (a program of run_dynamic_code: `calls`, how many it made), `search`,
`resource_read`, `prompt_get`, `session_opened`, `session_closed`, `session_refused`,
`sign_in_started`, `sign_in_finished`, `logout` (`dynamic-mcp auth GROUP --logout`:
`unknown` when there was no token; its replica is "terminal"); and the operator's:
`user_added`, `user_removed`, `user_token_changed` (the users file, read again while
serving), `user_revoked` (`dynamic-mcp admin revoke`, whose lines name the replica
`admin`), `user_sessions_ended` (what one replica ended of a user removed or revoked, with
`reason` and counts); outcomes: `ok`, `error`, `denied` (a group the user may not use),
`unknown` (no such group), `limited` (a limit refused it: its setting in `limit`),
`refused` (the sign-in's person could not show they are its user). `user` is null for
the implicit user.

Guarantees: never an argument value, a result or a token, only names (of the user, the
group, the tool, the resource's URI, the prompt) and counts; a line is written by a thread of its
own (`logging.handlers.QueueListener`), so recording never waits on the disk; a line is
one `write`, whole.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groups.errors import ConfigError
from groups.serving.metrics import metrics

if TYPE_CHECKING:
    from groups.access import User

__all__ = ["EVENTS", "OUTCOMES", "AuditLog", "audit", "audit_target"]

EVENTS = frozenset(
    {
        "expansion",
        "tool_call",
        "code_run",
        "search",
        "resource_read",
        "prompt_get",
        "session_opened",
        "session_closed",
        "session_refused",
        "sign_in_started",
        "sign_in_finished",
        "logout",
        "user_added",
        "user_removed",
        "user_token_changed",
        "user_revoked",
        "user_sessions_ended",
    }
)
OUTCOMES = frozenset({"ok", "error", "denied", "unknown", "limited", "refused"})

_logger = logging.getLogger("dynamic_mcp.audit")
_logger.propagate = False  # its lines are the audit's, not the operator's log
_logger.setLevel(logging.INFO)


class AuditLog:
    """Where this process's audit lines go, while `open` (see the module)."""

    def __init__(self) -> None:
        self._listener: logging.handlers.QueueListener | None = None
        self._queued: logging.Handler | None = None
        self.replica = ""
        self.where: str | None = None

    def __repr__(self) -> str:
        return f"AuditLog({self.where or 'off'})"

    def open(self, where: str | None, *, replica: str) -> None:
        """Write to `where` (a file, appended to, or "-" for stderr) from now on; None:
        off. Raises OSError when the file cannot be opened."""
        self.close()
        if where is None:
            return
        if where == "-":
            target: logging.Handler = logging.StreamHandler(sys.stderr)
        else:
            target = logging.FileHandler(Path(where), encoding="utf-8", delay=False)
        target.setFormatter(logging.Formatter("%(message)s"))
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._queued = logging.handlers.QueueHandler(lines)
        self._listener = logging.handlers.QueueListener(lines, target)
        self._listener.start()
        _logger.addHandler(self._queued)
        self.where, self.replica = where, replica

    def close(self) -> None:
        """Write what is queued and stop."""
        if self._listener is not None and self._queued is not None:
            _logger.removeHandler(self._queued)
            self._listener.stop()  # writes what was queued first
            for handler in self._listener.handlers:
                handler.close()
        self._listener = self._queued = None
        self.where = None

    def record(
        self,
        event: str,
        *,
        user: User | None,
        outcome: str,
        started: float | None = None,
        **names: Any,
    ) -> None:
        """One line for `event` (`started`: its `time.monotonic()` start, for its
        duration); `names`: group, tool, uri, prompt, session… (no values, ever). Counted
        in the metrics too, whether or not the audit log is on."""
        seconds = time.monotonic() - started if started is not None else None
        metrics.observe(event, outcome, names, seconds)
        if self._listener is None:
            return
        line: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "user": user.name if user is not None else None,
            "replica": self.replica,
            **{name: value for name, value in names.items() if value is not None},
            "outcome": outcome,
        }
        if seconds is not None:
            line["duration_ms"] = round(seconds * 1000, 1)
        _logger.info(json.dumps(line, ensure_ascii=False))


audit = AuditLog()  # this process's


def audit_target(where: str | None, config_path: Path | None) -> str | None:
    """Where `settings.audit_log` says to write, a path made absolute against the
    config's folder, once checked that it can be appended to; None: off.

    Raises:
        ConfigError: the file cannot be opened for appending (naming file and field).
    """
    if where is None or where == "-":
        return where
    path = Path(where).expanduser()
    if config_path is not None:
        path = config_path.parent / path
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        problem = f"cannot append to {path}: {exc.strerror}"
        raise ConfigError(config_path or "settings", problem, field="settings.audit_log") from None
    return str(path)
