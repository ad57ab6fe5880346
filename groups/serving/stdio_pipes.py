"""The process's stdin and stdout as non-blocking pipes for the stdio transport.

    async with stdio_streams() as (read_stream, write_stream):
        await serve_streams(server, read_stream, write_stream)

The MCP SDK's stdio transport reads and writes through worker threads: three thread hops
per request, about a third of a proxy hop's cost (bench/README.md), and a read that no
signal or cancellation can interrupt. Here the event loop watches the pipes itself; the
SDK's own `stdio_server` still frames and parses the messages.

Guarantees:
- while serving, fd 0 reads /dev/null and fd 1 writes to stderr: a stray print, or a child
  that inherits our stdout, cannot corrupt the protocol on the client's pipe;
- the pipe descriptors are close-on-exec, so no upstream process inherits them;
- stdin or stdout that is not a pipe or socket (a file, a terminal), and Windows, whose
  event loop watches pipes differently, are served the SDK's way, through threads.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.stdio import stdio_server

from groups.internals import pipe_write_protocol

__all__ = ["stdio_streams"]

# One message per line; a tool call's arguments may be large, so allow large lines.
LINE_LIMIT = 256 * 1024 * 1024


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[tuple[Any, Any]]:
    """The read and write message streams of this process's stdio, as the SDK yields them."""
    if sys.platform == "win32" or not (_is_pipe(0) and _is_pipe(1)):
        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = _claim(0, os.O_RDONLY), _claim(1, os.O_WRONLY)
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", 0, closefd=False)
        )
        write_transport, protocol = await loop.connect_write_pipe(
            pipe_write_protocol(), os.fdopen(wire_out, "wb", 0, closefd=False)
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        try:
            async with stdio_server(_Lines(reader), _Writer(writer)) as streams:  # type: ignore[arg-type]
                yield streams
        finally:
            read_transport.close()
            write_transport.close()
    finally:
        _release(0, wire_in)
        _release(1, wire_out)


class _Lines:
    """stdin as the SDK's transport reads it: `async for line in stdin`."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Writer:
    """stdout as the SDK's transport writes it: `write(text)`, then `flush()`."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _claim(fd: int, divert_mode: int) -> int:
    """Move the wire off `fd` to a private close-on-exec descriptor; divert `fd` elsewhere."""
    import fcntl

    wire = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    diversion = os.open(os.devnull, divert_mode) if fd == 0 else os.dup(2)
    os.dup2(diversion, fd)
    os.close(diversion)
    return wire


def _release(fd: int, wire: int) -> None:
    """Point `fd` back at the wire (its owner may still write there) and drop the copy."""
    try:
        os.dup2(wire, fd)
    finally:
        os.close(wire)
