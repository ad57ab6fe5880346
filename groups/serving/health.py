"""Whether a served gateway is alive and ready, for load balancers and orchestrators.

    add_health_routes(root)        # RootServer: `GET /healthz`, `GET /readyz`

- `/healthz`: 200 while the process serves HTTP at all (a liveness check: restart it if
  not); it asks nothing of anything;
- `/readyz`: 200 once the config is loaded and, with a shared store, Redis answers within
  `READY_WAIT`; else 503 with what is missing, naming the store, and 200 again by itself
  once it is back (the store is asked at each request, never cached);
- both answer a small JSON object, need no token (a health checker has none) and tell
  nothing of users, groups or sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from starlette.responses import JSONResponse

from groups.errors import StoreUnavailableError
from groups.storage.default import shared_store

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastmcp import FastMCP
    from starlette.requests import Request

__all__ = ["READY_WAIT", "add_health_routes"]

READY_WAIT = 2.0  # seconds Redis has to answer a readiness check: a checker's own timeout


def add_health_routes(server: FastMCP, loaded: Callable[[], bool]) -> None:
    """Serve `/healthz` and `/readyz` on `server`; `loaded()`: whether its config is."""

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @server.custom_route("/readyz", methods=["GET"])
    async def readyz(request: Request) -> JSONResponse:
        missing = "the config is not loaded yet" if not loaded() else await _store_missing()
        if missing is not None:
            return JSONResponse({"status": "unavailable", "reason": missing}, status_code=503)
        return JSONResponse({"status": "ok"})


async def _store_missing() -> str | None:
    """Why the shared store does not answer now, or None (also with the local files)."""
    store = shared_store()
    if store is None:
        return None  # files on this machine: nothing to wait for
    try:
        with anyio.fail_after(READY_WAIT):
            await store.ping()
    except StoreUnavailableError as exc:
        return str(exc)
    except TimeoutError:
        return f"the store {store.shown} did not answer within {READY_WAIT:g}s"
    return None
