"""A sign-in's loopback callback, `http://127.0.0.1:<port>/callback`, that leaves the rest
of the process alone.

    result = await loopback_callback(port, mcp_url, wait=300.0)   # code, state, iss

FastMCP's `OAuth.callback_handler` runs this same callback server (FastMCP's own
`create_oauth_callback_server`, a uvicorn `Server`), but lets it take the process's
SIGINT and SIGTERM while it serves. In a dynamic-mcp serving HTTP that is harmful twice:
sse_starlette finds "the" uvicorn server through the SIGTERM handler, so when the
callback server stops after the sign-in it ends every SSE stream of every client of the
gateway (a call in flight then gets "SSE stream ended without a response"); and while a
person is signing in, a SIGTERM to the gateway goes to the callback server.

Guarantees: the callback server never installs signal handlers; it serves until the
browser arrives or `wait` passes, and is stopped either way; a port it cannot bind is
an `OSError` naming it.
"""

from __future__ import annotations

import contextlib

import anyio
from fastmcp.client.oauth_callback import OAuthCallbackResult, create_oauth_callback_server
from mcp.client.auth import AuthorizationCodeResult

__all__ = ["loopback_callback"]

HOST = "127.0.0.1"
STOP_WAIT = 2.0  # for the callback server to close its socket once the browser has come


async def loopback_callback(port: int, server_url: str, *, wait: float) -> AuthorizationCodeResult:
    """Wait for the browser on `127.0.0.1:port/callback`; what the authorization server sent.

    Raises:
        TimeoutError: nobody came within `wait` seconds.
        OSError: the port cannot be bound.
        Exception: the error the authorization server sent back instead of a code.
    """
    result = OAuthCallbackResult()
    ready = anyio.Event()
    server = create_oauth_callback_server(
        port=port, host=HOST, server_url=server_url, result_container=result, result_ready=ready
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]

    stopped = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits when it cannot bind its port
            raise OSError(f"the OAuth callback cannot listen on http://{HOST}:{port}") from exc
        finally:
            stopped.set()

    async with anyio.create_task_group() as serving:
        serving.start_soon(serve)
        try:
            with anyio.fail_after(wait):
                await ready.wait()
        except TimeoutError:
            raise TimeoutError(f"nobody signed in within {wait:g}s") from None
        finally:
            # Stopped, not cancelled: a server cancelled mid-run keeps its socket, and the
            # next sign-in on this port (a registered redirect) could not listen.
            server.should_exit = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_WAIT):
                await stopped.wait()
            serving.cancel_scope.cancel()
    if result.error is not None:
        raise result.error
    return AuthorizationCodeResult(code=result.code or "", state=result.state, iss=result.iss)
