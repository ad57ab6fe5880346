"""The last word at shutdown: no process dynamic-mcp started outlives it.

    async with anyio.create_task_group() as closing:
        closing.start_soon(end_children_after, SHUTDOWN_GRACE)   # if closing takes longer
        ...close every upstream session...
        closing.cancel_scope.cancel()

Closing a session closes the upstream's stdin and waits for it to exit, as the MCP spec
asks. Fifty Python upstreams tearing down at once on two cores take seconds, longer than a
client waits before killing dynamic-mcp, which would leave them behind for a while. So
after a grace period every child still alive is ended: SIGTERM to its process group (the
MCP SDK starts each upstream as a group leader, so an `npx` wrapper's node goes with it),
then SIGKILL to whatever still remains.

Guarantees: only this process's own children, by PID, are signalled, and only at shutdown;
none is reaped here. Each child's exit status belongs to whoever started it: asyncio's
child watcher, which on Python 3.11 (`ThreadedChildWatcher`) waits for it by PID in a
thread of its own. Waiting for a child with `os.waitpid`, as `psutil.wait_procs` does,
steals that status: the watcher then logs "Unknown child process pid …, will report
returncode 255" at exit. So a child counts as ended once it is a zombie (or gone), and
its owner reaps it.

`child_holding(pipe)` finds which child a pipe end went to (`groups.upstream.stderr`), so
an operator sees each upstream's PID (`dynamic-mcp admin replicas`).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import anyio
import psutil

__all__ = ["child_holding", "end_children_after"]

logger = logging.getLogger(__name__)

KILL_AFTER = 1.0  # seconds from SIGTERM to SIGKILL for a child that ignores SIGTERM
EXIT_POLL_INTERVAL = 0.02  # how often a signalled child is looked at until it has exited


async def end_children_after(grace: float) -> None:
    """After `grace` seconds, end every child process of this one that is still running."""
    await anyio.sleep(grace)
    children = psutil.Process().children()
    if not children:
        return
    logger.info("ending %d upstream processes still closing after %gs", len(children), grace)
    for child in children:
        _signal_group(child, signal.SIGTERM)
    for child in await _running_after(children, KILL_AFTER):
        _signal_group(child, signal.SIGKILL)


async def _running_after(children: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Those of `children` still running after up to `seconds`, none of them reaped."""
    running = children
    with anyio.move_on_after(seconds):
        # No event says a process that is not ours to reap has exited (a pidfd would, on
        # Linux alone): look, as the MCP SDK does for its own children.
        while running := [child for child in running if _running(child)]:  # noqa: ASYNC110
            await anyio.sleep(EXIT_POLL_INTERVAL)
    return [child for child in running if _running(child)]


def _running(child: psutil.Process) -> bool:
    """Whether `child` has yet to exit: a zombie has, and waits for its owner to reap it."""
    try:
        return child.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_group(child: psutil.Process, sig: signal.Signals) -> None:
    """Signal the child's process group if it leads one, else the child alone."""
    try:
        if os.getpgid(child.pid) == child.pid:
            os.killpg(child.pid, sig)
        else:
            child.send_signal(sig)
    except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
        pass  # gone already


def child_holding(fd: int) -> int | None:
    """The PID of this process's child whose stderr is the pipe `fd` is an end of; None
    if none is, or where `/proc` cannot say (not Linux).

    The SDK spawns a stdio upstream and keeps its process object private; the pipe its
    stderr goes to is ours (`UpstreamStderr`), and `/proc/<pid>/fd/2` names it.
    """
    try:
        pipe = f"pipe:[{os.fstat(fd).st_ino}]"
        for child in psutil.Process().children():
            try:
                if os.readlink(Path("/proc") / str(child.pid) / "fd" / "2") == pipe:
                    return child.pid
            except OSError:
                continue  # gone already, or not ours to look at
    except (OSError, psutil.Error):
        pass
    return None
