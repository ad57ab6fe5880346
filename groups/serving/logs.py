"""Logging for a proxy: one handler on stderr, through the redaction, for every logger.

    configure_logging("warning", registry.redactor)   # once, before anything logs
    quiet_fastmcp()                                   # once FastMCP is imported

Guarantees:
- every log line, ours, FastMCP's, the MCP SDK's, httpx's and uvicorn's, Python's warnings
  and a crash's traceback, and each line a stdio upstream writes to its stderr
  (`groups.upstream.stderr`), goes through one handler on stderr that hides secrets
  (`groups.secrets`), under `dynamic-mcp` and `fastmcp run` alike (whose `--log-level`
  sets that handler's level); stdout carries only protocol;
- a line the same as the one before it (logger, level and text), within
  `REPEAT_WINDOW` of it, is not written again: the next other line (or the exit) is
  preceded by how many more times it came (`SaidOnce`);
- FastMCP's OpenTelemetry spans are off unless the user turns them on
  (`FASTMCP_TELEMETRY_MODE`): with no exporter they only cost time on every call.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, TextIO

from groups import LogLevel
from groups.secrets import RedactingFormatter, Redactor

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "LOG_FORMAT",
    "REPEAT_WINDOW",
    "SaidOnce",
    "announce",
    "configure_logging",
    "quiet_fastmcp",
]

logger = logging.getLogger("dynamic_mcp")
# Lines a user needs at the default level (warning) though nothing is wrong: where it
# serves. INFO on this logger alone; a record's own logger decides, not the root's level.
_announcer = logging.getLogger("dynamic_mcp.serving")
_announcer.setLevel(logging.INFO)

LOG_FORMAT = "dynamic-mcp %(levelname)s %(name)s: %(message)s"
# A line said again within this many seconds of its last time counts as a repeat. A line
# that comes back after a quiet while is news again (a server still retrying, an hour on).
REPEAT_WINDOW = 60.0
# Loggers that set up handlers of their own; theirs would write around the redaction.
_SELF_CONFIGURED = ("fastmcp", "uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(level: LogLevel, redactor: Redactor) -> None:
    """All logs to stderr, through one handler that hides every known secret."""
    handler = SaidOnce(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor, LOG_FORMAT))
    handler.addFilter(_expected_sign_in)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _adopt_self_configured_loggers()
    # Python writes a warning and a crash's traceback to stderr by itself, around the handler.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def announce(message: str, *args: object) -> None:
    """Say `message` at INFO, shown at the default level too, though not under `error`."""
    if logging.getLogger().getEffectiveLevel() <= logging.WARNING:
        _announcer.info(message, *args)


class SaidOnce(logging.StreamHandler[TextIO]):
    """A stream handler that writes a line repeated in a row once, then the count."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._last: logging.LogRecord | None = None
        self._repeats = 0

    def emit(self, record: logging.LogRecord) -> None:
        last = self._last
        if (
            last is not None
            and _same(last, record)
            and record.created - last.created <= REPEAT_WINDOW
        ):
            self._repeats += 1
            self._last = record  # the window runs from each repeat
            return
        self._say_repeats()
        self._last = record
        super().emit(record)

    def flush(self) -> None:
        self._say_repeats()  # at exit (`logging.shutdown` flushes) nothing is left unsaid
        super().flush()

    def _say_repeats(self) -> None:
        if not self._repeats or self._last is None:
            return
        times, self._repeats = self._repeats, 0
        said = logging.makeLogRecord(
            {
                **self._last.__dict__,
                "msg": "the line above came %d more time%s",
                "args": (times, "s" if times > 1 else ""),
                "exc_info": None,
                "exc_text": None,
            }
        )
        super().emit(said)


def _same(one: logging.LogRecord, other: logging.LogRecord) -> bool:
    """The same line: from one logger, at one level, the same text, no traceback."""
    return (
        one.name == other.name
        and one.levelno == other.levelno
        and one.exc_info is None
        and other.exc_info is None
        and one.getMessage() == other.getMessage()
    )


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """A crash's traceback, written through the redaction like every log line."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logger.critical("stopped on an unexpected error", exc_info=(kind, error, traceback))


def _expected_sign_in(record: logging.LogRecord) -> bool:
    """Drop the MCP SDK's traceback for an OAuth flow stopped on purpose for a sign-in.

    A session never waits for a person (`groups.auth.oauth`): the SDK logs that stop as an
    error, with a traceback, though the group says plainly that it wants a sign-in.
    """
    from groups.upstream.failures import AuthorizationRequired, caused_by

    error = record.exc_info[1] if record.exc_info else None
    return not (error is not None and caused_by(error, AuthorizationRequired))


def _adopt_self_configured_loggers() -> None:
    for name in _SELF_CONFIGURED:
        adopted = logging.getLogger(name)
        adopted.handlers[:] = []
        adopted.propagate = True
        adopted.setLevel(logging.NOTSET)


def quiet_fastmcp() -> None:
    """FastMCP's defaults for a library, set for a proxy: no spans, logs through ours."""
    import fastmcp

    if "FASTMCP_TELEMETRY_MODE" not in os.environ:
        fastmcp.settings.telemetry_mode = "off"
    _adopt_self_configured_loggers()  # importing fastmcp installed its own handler
