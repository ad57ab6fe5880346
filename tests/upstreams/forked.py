"""Start a process of the tests as a fork of the warm forkserver (see forkserver.py):

    python -S forked.py SOCKET SCRIPT ARGS...   # as `python SCRIPT ARGS...`
    python -S forked.py SOCKET -m MODULE ARGS... # as `python -m MODULE ARGS...`

Only the standard library, and no site (-S): this process starts in milliseconds. It hands
its stdin, stdout and stderr to the child and lets go of them, so their ends are the
child's alone; it then stands in for the child until it ends, passing on signals.
"""

import contextlib
import json
import os
import signal
import socket
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


def main() -> None:
    path, *argv = sys.argv[1:]
    # Held until they can be passed on: a signal from here on is the child's, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    forkserver = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        forkserver.connect(path)
    except OSError as error:
        sys.exit(f"forked.py: no forkserver at {path} (has its test worker ended?): {error}")
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "launcher": os.getpid()}
    socket.send_fds(forkserver, [json.dumps(request).encode()], [0, 1, 2])
    nothing = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(nothing, fd)

    def forward(number: int, _: object) -> None:
        with contextlib.suppress(OSError):  # the child's status is on its way: nothing to stop
            forkserver.send(str(number).encode())

    for number in FORWARDED:
        signal.signal(number, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    ending = forkserver.recv(64)  # the child's status; nothing if the forkserver is gone
    status = int(ending) if ending else 1
    if status < 0:  # ended by a signal: end by the same one
        with contextlib.suppress(OSError):  # SIGKILL has no handler to reset
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


if __name__ == "__main__":
    main()
