#!/usr/bin/env python3
"""Run dynamic-mcp's tour or its tests from a checkout, installing uv first where it is missing.

    python3 scripts/dev.py tour [CONFIG]       # uv run examples/tour.py [CONFIG]
    python3 scripts/dev.py test [PYTEST ARGS]  # uv run pytest [PYTEST ARGS]

Guarantees: nothing is installed into the Python that runs this script, so it works with a
distribution's Python that refuses installs (PEP 668: Debian 12, Ubuntu 23.04 and later) and
needs no `--break-system-packages`. The uv used is the one on PATH; else the one this script
installed before, under `.tools/uv/` in the checkout; else one it installs there now with
`pip install --target`, which PEP 668 leaves allowed (an externally managed Python refuses
installs into its own environment only). A Python without pip (Debian's python3 without
python3-pip) lends the pip of a throwaway venv instead, where it has ensurepip; with
neither, the script says what to install and exits 2. It asks nothing, says each step on
stderr, and a half-finished install is never taken for a finished one.

It runs on Python 3.8 and later, standard library only: it is what fetches the tools that
bring the project's own Python (3.11+), so it cannot need them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Inside the checkout and ignored by git: deleting the checkout removes it, and two
# checkouts never share (or fight over) one.
TOOLS = REPO / ".tools"
UV_HOME = TOOLS / "uv"
UV_NAME = "uv.exe" if os.name == "nt" else "uv"
# Where `pip install --target` puts a wheel's scripts: the home scheme's `bin`, `Scripts`
# on Windows.
UV_BIN_DIRS = ("bin", "Scripts")

COMMANDS = {
    "tour": ("run", "examples/tour.py"),
    "test": ("run", "pytest"),
}
USAGE = (
    "usage: python3 scripts/dev.py tour [CONFIG]\n"
    "       python3 scripts/dev.py test [PYTEST ARGS]\n"
    "  tour: start dynamic-mcp as a client would, expand the bundled groups, call a tool\n"
    "  test: run the test suite (extra arguments go to pytest)\n"
)
NO_INSTALLER = (
    "dev.py: uv is not on PATH, and {python} has neither pip nor ensurepip to install it "
    "with.\n"
    "  Install uv (https://docs.astral.sh/uv/getting-started/installation/), or pip "
    "(Debian, Ubuntu: sudo apt install python3-pip), then run this again.\n"
)


def say(message: str) -> None:
    """One line on stderr: stdout belongs to the command that runs next."""
    sys.stderr.write(f"dev.py: {message}\n")
    sys.stderr.flush()


def installed_uv(home: Path = UV_HOME) -> Path | None:
    """The uv binary of an install under `home`, if one was finished."""
    for folder in UV_BIN_DIRS:
        candidate = home / folder / UV_NAME
        if candidate.is_file():
            return candidate
    return None


def find_uv() -> Path:
    """The uv to run: on PATH, else installed here before, else installed here now."""
    on_path = shutil.which("uv")
    if on_path and runs(on_path):
        return Path(on_path)
    if on_path:  # e.g. a pyenv shim whose Python version has no uv
        say(f"{on_path} does not run: not using it")
    return installed_uv() or install_uv()


def runs(program: str) -> bool:
    """Whether `program --version` succeeds."""
    try:
        completed = subprocess.run([program, "--version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def install_uv() -> Path:
    """Install uv under `.tools/uv` without touching the running Python's environment."""
    has_pip = importlib.util.find_spec("pip") is not None
    if not has_pip and importlib.util.find_spec("ensurepip") is None:
        sys.stderr.write(NO_INSTALLER.format(python=sys.executable))
        sys.exit(2)
    TOOLS.mkdir(exist_ok=True)
    # pip writes into a staging folder renamed into place once complete, so an interrupted
    # install leaves no `.tools/uv` that looks finished.
    with tempfile.TemporaryDirectory(dir=TOOLS, prefix="uv-staging-") as temp:
        staging = Path(temp) / "uv"
        pip = [sys.executable, "-m", "pip"] if has_pip else borrowed_pip(Path(temp))
        say(f"no uv on PATH: installing it into {UV_HOME.relative_to(REPO)} (pip --target)")
        # pip's warning about running as root is about installs into the system; this is not one.
        env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
        command = [*pip, "install", "--quiet", "--disable-pip-version-check"]
        completed = subprocess.run([*command, "--target", str(staging), "uv"], env=env)
        binary = installed_uv(staging)
        if completed.returncode != 0 or binary is None:
            say("installing uv failed (pip's message is above)")
            sys.exit(completed.returncode or 1)
        if UV_HOME.exists():  # left by an earlier install that lost its binary
            shutil.rmtree(UV_HOME)
        staging.rename(UV_HOME)
    uv = installed_uv()
    assert uv is not None  # the folder holding it was just renamed into place
    say(f"installed {uv.relative_to(REPO)}")
    return uv


def borrowed_pip(scratch: Path) -> list[str]:
    """The pip of a throwaway venv, for a Python that has ensurepip but no pip of its own."""
    say(f"{sys.executable} has no pip: borrowing one from a temporary venv")
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    return [str(python), "-m", "pip"]


def run(uv: Path, arguments: list[str]) -> None:
    """Hand the process over to uv, so its exit status and signals are the command's own.

    A uv installed here has its folder put first on PATH, for what runs under it: the
    bundled config starts its servers with `uvx`, which sits beside `uv`.
    """
    os.chdir(REPO)
    env = dict(os.environ)
    if shutil.which("uv") != str(uv):
        env["PATH"] = os.pathsep.join(filter(None, [str(uv.parent), env.get("PATH")]))
    if os.name == "nt":  # no exec that keeps the console's Ctrl-C handling on Windows
        sys.exit(subprocess.run([str(uv), *arguments], env=env).returncode)
    os.execve(str(uv), [str(uv), *arguments], env)


def main(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return
    if not argv or argv[0] not in COMMANDS:
        sys.stderr.write(USAGE)
        sys.exit(2)
    command, *rest = argv
    run(find_uv(), [*COMMANDS[command], *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
