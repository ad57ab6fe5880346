"""Where dynamic-mcp serves HTTP: the socket bound before serving, its URL said at once.

    sock = listen("127.0.0.1", 8931)                       # CannotListenError if taken
    url = endpoint_url("127.0.0.1", sock, "/mcp")         # "http://127.0.0.1:8931/mcp"

Binding here, rather than in uvicorn, is what lets the URL be said once it is true (a
port of 0 becomes the port given) and a taken port be one line saying what to do, not
uvicorn's exit with status 3. uvicorn then serves on the socket, as FastMCP lets it
(`run_http_async(sockets=...)`). The socket is not inherited by upstream processes
(PEP 446).
"""

from __future__ import annotations

import os
import socket

from groups.errors import CannotListenError

__all__ = ["endpoint_url", "listen"]


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port` (IPv6 if `host` is an IPv6 address).

    Raises:
        CannotListenError: the address is taken, not this machine's, or not allowed.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # no repeat of the address
        raise CannotListenError(host, port, reason) from None


def endpoint_url(host: str, sock: socket.socket, path: str) -> str:
    """The URL a client on this machine connects to: `http://HOST:PORT/PATH`."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/{path.lstrip('/')}"
