"""The process's stdin and stdout as non-blocking pipes for the stdio transport.

    async with stdio_streams() as (read_stream, write_stream):
        await serve_streams(server, read_stream, write_stream)

The MCP SDK's stdio transport reads and writes through worker threads: three thread hops
per request, about a third of a proxy hop's cost (bench/README.md), and a read that no
signal or cancellation can interrupt. Here the event loop watches the pipes itself, and
each line is parsed from its bytes as the SDK's `stdio_server` parses its text.

Guarantees:
- a line that is not UTF-8 JSON is answered with a JSON-RPC parse error (-32700, id null),
  one that is JSON but no JSON-RPC message with an invalid-request error (-32600), each
  logged once at WARNING (what it held, never); the next line is served as ever. Nothing
  is decoded with replacement characters, so no byte is changed on its way upstream;
- while serving, fd 0 reads /dev/null and fd 1 writes to stderr: a stray print, or a child
  that inherits our stdout, cannot corrupt the protocol on the client's pipe;
- the pipe descriptors are close-on-exec, so no upstream process inherits them;
- stdin or stdout that is not a pipe or socket (a file, a terminal), and Windows, whose
  event loop watches pipes differently, are served the SDK's way, through threads (where
  a bad line is dropped, as the SDK does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from groups.internals import pipe_write_protocol

__all__ = ["stdio_streams"]

logger = logging.getLogger(__name__)

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
            async with _messages(reader, writer) as streams:
                yield streams
        finally:
            read_transport.close()
            write_transport.close()
    finally:
        _release(0, wire_in)
        _release(1, wire_out)


@asynccontextmanager
async def _messages(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> AsyncIterator[tuple[Any, Any]]:
    """The message streams the SDK's `stdio_server` yields, over the pipes: one JSON-RPC
    message a line, read and written by two tasks, until stdin ends and the server has
    closed its stream."""
    read_send, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_receive = anyio.create_memory_object_stream[SessionMessage](0)

    async def write_line(data: bytes) -> None:
        writer.write(data + b"\n")  # a whole line in one write: lines never interleave
        await writer.drain()

    async def read_lines() -> None:
        async with read_send:
            while line := await reader.readline():
                try:  # from the bytes: UTF-8 strictly, nothing replaced
                    message = jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValidationError as exc:
                    if line.strip():  # a blank line is no message, and no mistake
                        await write_line(_refusal(line, exc))
                    continue
                await read_send.send(SessionMessage(message))

    async def write_messages() -> None:
        async with write_receive:
            async for sent in write_receive:
                await write_line(
                    sent.message.model_dump_json(by_alias=True, exclude_unset=True).encode()
                )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read_lines)
        tasks.start_soon(write_messages)
        yield read_stream, write_stream


def _refusal(line: bytes, error: ValidationError) -> bytes:
    """The JSON-RPC error answering a line that is no message, logged without the line."""
    problem = error.errors()[0]
    if problem["type"] != "json_invalid":
        code, message = INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message"
    else:
        code, message = PARSE_ERROR, f"Parse error: {problem['msg']}"
        try:
            line.decode("utf-8")  # only once parsing failed: what to tell the client
        except UnicodeDecodeError as exc:
            message = f"Parse error: not UTF-8 (byte {line[exc.start]:#04x} at {exc.start})"
    logger.warning("stdin: a line that is no JSON-RPC message (%s), answered %d", message, code)
    answer = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))
    return answer.model_dump_json(by_alias=True, exclude_unset=True).encode()


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
