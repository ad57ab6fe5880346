"""A warm start for test upstreams and dynamic-mcp: one process per test worker imports
FastMCP (and dynamic-mcp's modules) once, then forks a child for each process a test
starts, so a start costs milliseconds, not a second of imports. The suite starts processes
by the hundred: most of its CPU went on importing FastMCP again and again.

    python forkserver.py SOCKET                 # serves until its stdin closes
    python -S forked.py SOCKET SCRIPT ARGS...   # an upstream, as `python SCRIPT ARGS...`
    python -S forked.py SOCKET -m server ARGS... # dynamic-mcp, as `python -m server ARGS...`

`forked.py` hands over its stdin, stdout and stderr, working directory, environment and
arguments; the child runs SCRIPT as `__main__` on exactly those, in a session of its own.
The launcher stays as the child's stand-in for whoever started it: a signal it gets goes
to the child's process group, and it exits as the child did (with its status, or by its
signal). If the launcher is killed outright, the child is killed too. Each child's pid is
in the file named by its launcher's pid, beside SOCKET, so that tests can tell which
process a launcher stands for. What a child does not get fresh is what was read at import:
FastMCP's settings, for one, come from this process's environment.
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import contextlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import traceback

REQUEST_LIMIT = 1 << 20  # bytes: arguments, directory and environment of one start


def preload() -> None:
    """What the upstreams in this folder and dynamic-mcp import, so that a child need not."""
    import fastmcp
    import fastmcp.server.auth.providers.in_memory
    import fastmcp.tools.base  # noqa: F401
    import httpx2  # noqa: F401
    import mcp_types  # noqa: F401
    import pydantic  # noqa: F401
    import uvicorn  # noqa: F401

    # dynamic-mcp's own modules, as its start and its commands import them (not `server`,
    # whose import registers its builder: the child runs it afresh as __main__).
    import groups.commands.auth
    import groups.commands.check
    import groups.commands.tools
    import groups.registry
    import groups.root
    import groups.serving.bearer_token
    import groups.serving.users  # noqa: F401


def run(argv: list[str]) -> None:
    """`python ARGV...` with the interpreter already started: a script, or `-m MODULE`."""
    if argv[0] == "-m":
        sys.argv = argv[1:]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")


class ForkServer:
    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(64)
        self.wakeup_read, wakeup_write = os.pipe()
        for end in (self.wakeup_read, wakeup_write):
            os.set_blocking(end, False)
        signal.set_wakeup_fd(wakeup_write)  # a SIGCHLD wakes the select below
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
        self.folder = os.path.dirname(path)
        self.launchers: dict[int, socket.socket] = {}  # child pid -> its launcher
        self.launcher_pids: dict[int, int] = {}  # child pid -> its launcher's

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self.start(self.listener.accept()[0])
                elif key.fileobj == self.wakeup_read:
                    os.read(self.wakeup_read, 4096)
                    self.reap()
                elif key.fileobj == sys.stdin.fileno():
                    if not os.read(sys.stdin.fileno(), 4096):
                        return self.stop()
                else:
                    self.relay(key.data, key.fileobj)

    def start(self, launcher: socket.socket) -> None:
        message, fds, _, _ = socket.recv_fds(launcher, REQUEST_LIMIT, 3)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            try:
                self.become(request, fds)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        with open(os.path.join(self.folder, str(request["launcher"])), "w") as record:
            record.write(str(pid))
        self.launchers[pid] = launcher
        self.launcher_pids[pid] = request["launcher"]
        self.selector.register(launcher, selectors.EVENT_READ, pid)

    def become(self, request: dict, fds: list[int]) -> None:
        """In the child: drop the server's state, take the launcher's place, run SCRIPT."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.listener.close()
        for launcher in self.launchers.values():
            launcher.close()
        os.close(self.wakeup_read)
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = 0
        try:
            run(request["argv"])
        except SystemExit as ending:  # as the interpreter turns sys.exit(...) into a status
            if ending.code is None or isinstance(ending.code, int):
                code = ending.code or 0
            else:
                print(ending.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)

    def relay(self, pid: int, launcher: socket.socket) -> None:
        """A signal the launcher got goes to the child; a launcher gone takes it along."""
        message = launcher.recv(64)
        number = int(message) if message else signal.SIGKILL
        try:
            os.killpg(pid, number)
        except ProcessLookupError:  # its session not made yet, or the child gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)
        if not message:
            self.forget(pid)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if launcher := self.launchers.get(pid):
                ending = os.waitstatus_to_exitcode(status)  # negative: the signal
                with contextlib.suppress(OSError):  # the launcher may be gone already
                    launcher.send(str(ending).encode())
            self.forget(pid)

    def forget(self, pid: int) -> None:
        if launcher := self.launchers.pop(pid, None):
            self.selector.unregister(launcher)
            launcher.close()
            os.unlink(os.path.join(self.folder, str(self.launcher_pids.pop(pid))))

    def stop(self) -> None:
        for pid in list(self.launchers):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    server = ForkServer(sys.argv[1])  # listening at once: starts asked for now wait below
    preload()
    lean.serving()
    server.serve()
