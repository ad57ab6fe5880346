"""A stdio upstream's stderr, read line by line into our log, through the redaction.

    async with UpstreamStderr("github") as errlog:   # the write end of a pipe, for the child
        ...spawn the upstream with stderr=errlog...
        pid = stderr.release()                       # the child's PID, once it holds the pipe
        ...serve the session...
    # the pipe is closed: every line written before the child ended was logged

Guarantees:
- each line the upstream writes is one record of this module's logger, `<group>: <line>`,
  at INFO (`npx`'s and `uvx`'s progress, a server's "running on stdio": an ordinary run
  is quiet by default), or at WARNING, which shows by default, when it looks like an
  error (`level_of`: a word like error, exception, fatal or failed, or an ERROR tag), and
  so do the indented lines after one (a traceback's frames); it is formatted by the same
  handler as every other log line, so the secrets the `Redactor` knows read `***`, and
  it goes to our stderr, never stdout;
- an upstream that fails to start gets its last `TAIL_LINES` lines shown at WARNING
  (`show_unseen`), where they were below the level shown: why it failed is often there;
- the pipe is read on the event loop (asyncio's `connect_read_pipe`): no thread, no task;
- a line longer than `MAX_LINE` bytes is logged cut, so a flood costs bounded memory;
- no file descriptor outlives the context: our copy of the write end is closed once the
  child has it, the read end when the pipe ends or, if a grandchild still holds the write
  end, `DRAIN_TIMEOUT` after the context; the child never gets the read end (pipes are
  opened non-inheritable, PEP 446).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from types import TracebackType
from typing import TextIO

import anyio

from groups.upstream.children import child_holding

__all__ = ["DRAIN_TIMEOUT", "MAX_LINE", "TAIL_LINES", "UpstreamStderr", "level_of"]

logger = logging.getLogger(__name__)

MAX_LINE = 16_384  # bytes of one line logged; the rest of it is dropped
# A killed upstream's last lines are in the pipe already; only a grandchild that escaped
# its process group keeps the pipe open longer, and it is not waited for beyond this.
DRAIN_TIMEOUT = 2.0
TAIL_LINES = 20  # lines kept to show if the upstream fails to start: a usage text, a traceback

# A line that says something went wrong, in the words servers and their launchers use
# ("ModuleNotFoundError", "npm ERR!", "Failed to spawn", "permission denied", "TOKEN is
# not set").
_LOOKS_LIKE_ERROR = re.compile(
    r"error|exception|traceback|fatal|panic|critical|\bfailed\b|\bfailure\b|denied|"
    r"\bcannot\b|\bcan't\b|\bunable to\b|\bnot found\b|\bnot set\b|\bmissing\b|"
    r"\binvalid\b|ERR!",
    re.IGNORECASE,
)
# A level the line names itself, among its first words (after a timestamp, a logger name).
_LEVEL_TAG = re.compile(
    r"^\W*(?:\S+\W+){0,4}?(?P<tag>DEBUG|TRACE|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\b",
    re.IGNORECASE,
)
_QUIET_TAGS = frozenset({"DEBUG", "TRACE", "INFO", "NOTICE", "WARN", "WARNING"})


def level_of(line: str, previous: int = logging.INFO) -> int:
    """How loud an upstream's stderr line is: WARNING if it looks like an error, or
    continues one (indented, after a line that did), else INFO. A level the line names
    itself wins: `INFO: 0 errors` is INFO."""
    if line[:1].isspace() and previous >= logging.WARNING:
        return previous  # a traceback's frame, a stack's `    at …`
    tagged = _LEVEL_TAG.match(line)
    if tagged is not None:
        return logging.INFO if tagged["tag"].upper() in _QUIET_TAGS else logging.WARNING
    return logging.WARNING if _LOOKS_LIKE_ERROR.search(line) else logging.INFO


class UpstreamStderr:
    """A pipe whose write end an upstream gets as its stderr, logged a line at a time."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._errlog: TextIO | None = None
        self._pipe: asyncio.ReadTransport | None = None
        self._lines: _LineLogger | None = None

    def __repr__(self) -> str:
        return f"UpstreamStderr({self.group!r})"

    async def __aenter__(self) -> TextIO:
        read_fd, write_fd = os.pipe()
        reading = os.fdopen(read_fd, "rb", buffering=0)  # the transport closes it
        self._errlog = os.fdopen(write_fd, "w", encoding="utf-8")  # see release
        lines = self._lines = _LineLogger(self.group)
        try:
            loop = asyncio.get_running_loop()
            self._pipe, _ = await loop.connect_read_pipe(lambda: lines, reading)
        except BaseException:
            reading.close()
            self.release()
            raise
        return self._errlog

    def show_unseen(self) -> None:
        """The upstream failed to start: its last lines that were logged below the level
        shown are logged again at WARNING, since why it failed is often among them."""
        if self._lines is None or logger.isEnabledFor(logging.INFO):
            return  # each line was shown as it came
        for line in self._lines.unseen:
            logger.warning("%s: %s", self.group, line)
        self._lines.unseen.clear()

    def release(self) -> int | None:
        """Close our copy of the write end (the child keeps its own): call once it is spawned.

        The pipe then ends as soon as the upstream does, so a crash is logged to the last line.
        Returns the PID of the child holding the pipe, when it can be told.
        """
        if self._errlog is None or self._errlog.closed:
            return None
        pid = child_holding(self._errlog.fileno())
        self._errlog.close()
        return pid

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        if self._pipe is None or self._lines is None:
            return
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(DRAIN_TIMEOUT):
                await self._lines.closed.wait()
            self._pipe.close()  # closes the read end on the loop's next turn
            await self._lines.closed.wait()


class _LineLogger(asyncio.Protocol):
    """Logs what arrives on the pipe, one record per line."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.closed = anyio.Event()
        self._line = bytearray()
        self._cut = False
        self._level = logging.INFO  # the last line's
        self.unseen: deque[str] = deque(maxlen=TAIL_LINES)  # the last lines below WARNING

    def data_received(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        for piece in complete:
            self._add(piece)
            self._log_line()
        self._add(rest)

    def eof_received(self) -> bool | None:
        self._log_line()
        return None  # the transport closes itself, and the read end with it

    def connection_lost(self, exc: Exception | None) -> None:
        self._log_line()
        self.closed.set()

    def _add(self, piece: bytes) -> None:
        room = MAX_LINE - len(self._line)
        self._cut = self._cut or len(piece) > room
        self._line += piece[: max(room, 0)]

    def _log_line(self) -> None:
        # Lines are split as bytes: a UTF-8 character never contains the byte of "\n".
        text = self._line.decode("utf-8", errors="replace").rstrip()
        if text:
            text += " [cut]" if self._cut else ""
            self._level = level_of(text, self._level)
            logger.log(self._level, "%s: %s", self.group, text)
            if self._level < logging.WARNING:
                self.unseen.append(text)
        self._line.clear()
        self._cut = False
