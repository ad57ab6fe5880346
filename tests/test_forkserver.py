"""The forkserver the tests start processes with (tests/upstreams/forkserver.py) stands in
for a cold start: status, signals and a killed launcher reach the process as they would."""

from __future__ import annotations

import signal
import subprocess

from conftest import ECHO_SERVER, UPSTREAMS, process_behind, python_command, wait_gone

MISBEHAVING = UPSTREAMS / "misbehaving.py"


def test_the_launcher_exits_with_the_status_of_the_process_it_stands_for():
    exited = subprocess.run(python_command(MISBEHAVING, "exit-at-start"), timeout=30)
    assert exited.returncode == 3


def test_a_signal_to_the_launcher_reaches_the_process_and_ends_the_launcher_by_it():
    with subprocess.Popen(python_command(ECHO_SERVER), stdin=subprocess.PIPE) as launcher:
        upstream = process_behind(launcher)
        launcher.send_signal(signal.SIGTERM)
        ended = launcher.wait(30)
        ended_first = not upstream.is_running()  # the launcher waited for it, then ended

    assert ended == -signal.SIGTERM
    assert ended_first
    assert wait_gone([upstream]) == []
    assert upstream.pid != launcher.pid


def test_a_launcher_killed_outright_takes_its_process_along():
    with subprocess.Popen(python_command(ECHO_SERVER), stdin=subprocess.PIPE) as launcher:
        upstream = process_behind(launcher)
        launcher.kill()

    assert wait_gone([upstream]) == []


def test_the_process_gets_the_launchers_pipes_and_ends_when_its_stdin_closes():
    initialize = (
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":'
        b'"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
    )
    command = python_command(ECHO_SERVER)
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as launcher:
        upstream = process_behind(launcher)
        launcher.stdin.write(initialize)
        launcher.stdin.close()
        answer = launcher.stdout.readline()
        ended = launcher.wait(30)

    assert b'"id":1' in answer and b"echo-upstream" in answer
    assert ended == 0
    assert wait_gone([upstream]) == []


def test_a_process_killed_outright_ends_its_launcher_by_the_same_signal():
    with subprocess.Popen(python_command(ECHO_SERVER), stdin=subprocess.PIPE) as launcher:
        process_behind(launcher).kill()  # as a test kills a crashing upstream
        ended = launcher.wait(30)

    assert ended == -signal.SIGKILL
