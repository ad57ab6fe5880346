"""Start a process of the tests as a fork of the warm forkserver (see forkserver.py):

    python -S forked.py SOCKET SCRIPT ARGS...   # as `python SCRIPT ARGS...`
    python -S forked.py SOCKET -m MODULE ARGS... # as `python -m MODULE ARGS...`

Only the standard library, and no site (-S): this process starts in milliseconds. It hands
its stdin, stdout and stderr to the child and lets go of them, so their ends are the
child's alone; it then stands in for the child until it ends, passing on signals.
"""

import json
import os
import signal
import socket
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


def main() -> None:
    path, *argv = sys.argv[1:]
    forkserver = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    forkserver.connect(path)
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "launcher": os.getpid()}
    socket.send_fds(forkserver, [json.dumps(request).encode()], [0, 1, 2])
    nothing = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(nothing, fd)
    for number in FORWARDED:
        signal.signal(number, lambda number, _: forkserver.send(str(number).encode()))
    ending = forkserver.recv(64)  # the child's status; nothing if the forkserver is gone
    status = int(ending) if ending else 1
    if status < 0:  # ended by a signal: end by the same one
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


if __name__ == "__main__":
    main()
