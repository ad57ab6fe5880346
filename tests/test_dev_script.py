"""scripts/dev.py, the README's two commands, on the Pythons a newcomer may have.

A distribution's Python (Debian 12, Ubuntu 24.04) is an installation, not a venv, whose
standard library folder holds an `EXTERNALLY-MANAGED` file: pip then refuses to install
into it (PEP 668; `pip/_internal/utils/misc.py: check_externally_managed`, skipped inside
a venv), and without the python3-venv package it has no ensurepip. `managed_python` builds
such an installation from the Python running the tests: a copy of its binary beside a
standard library of links, the marker added, ensurepip left out, and only pip in its
site-packages. No uv is on PATH. uv runs offline, from the cache the suite's own uv
filled; pip fetches the uv wheel through its configured index, as a user's would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO

DEV_SCRIPT = REPO / "scripts" / "dev.py"
MARKER = "[externally-managed]\nError=This Python is managed by the test that made it.\n"

pytestmark = pytest.mark.skipif(
    os.name != "posix" or sys.platform == "darwin",
    reason="builds a Python installation by the Linux layout (bin/, lib/pythonX.Y/)",
)


def managed_python(root: Path, *, pip: bool, ensurepip: bool) -> Path:
    """A Python installation under `root` that pip treats as externally managed."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_path("stdlib"))  # the base installation's, even from a venv
    lib = root / "lib" / version
    lib.mkdir(parents=True)
    left_out = {"site-packages", "EXTERNALLY-MANAGED"} | (set() if ensurepip else {"ensurepip"})
    for entry in stdlib.iterdir():
        if entry.name not in left_out:
            (lib / entry.name).symlink_to(entry)
    (lib / "EXTERNALLY-MANAGED").write_text(MARKER)
    (root / "bin").mkdir()
    python = root / "bin" / "python3"
    # A copy, not a link: Python finds its prefix from where its binary really is.
    shutil.copy2(sys._base_executable, python)
    site = site_packages_folder(python)
    site.mkdir(parents=True)
    if pip:
        pip_folder = base_pip()
        for entry in pip_folder.parent.iterdir():
            if entry == pip_folder or re.fullmatch(r"pip-[\d.]+\.dist-info", entry.name):
                (site / entry.name).symlink_to(entry)
    return python


def site_packages_folder(python: Path) -> Path:
    """Where `python` looks for installed packages: lib/pythonX.Y/site-packages, or what
    Debian's site module makes of the prefix (lib/python3/dist-packages)."""
    asked = subprocess.run(
        [str(python), "-I", "-c", "import site; print(site.getsitepackages()[-1])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(asked.stdout.strip())


def base_pip() -> Path:
    """The pip package of the Python the test venv was made from, to lend the made one."""
    found = subprocess.run(
        [sys._base_executable, "-I", "-c", "import os, pip; print(os.path.dirname(pip.__file__))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.skip(f"{sys._base_executable} has no pip to lend")
    return Path(found.stdout.strip())


def without_uv(python: Path) -> dict[str, str]:
    """The environment, with `python`'s folder first on PATH and no folder holding uv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    folders = [
        folder
        for folder in env.get("PATH", "").split(os.pathsep)
        if folder and not any((Path(folder) / name).exists() for name in ("uv", "uvx"))
    ]
    env["PATH"] = os.pathsep.join([str(python.parent), *folders])
    env["UV_OFFLINE"] = "1"  # the project's packages come from the cache the suite used
    return env


def site_packages(python: Path) -> list[str]:
    """What is installed into `python`'s own environment."""
    return sorted(entry.name for entry in site_packages_folder(python).iterdir())


def checkout_copy(destination: Path) -> Path:
    """What a fresh clone of this working tree holds: its tracked and unignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: nothing to clone")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted in the working tree is not in a clone of it
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def stub_checkout(destination: Path) -> Path:
    """A checkout with dev.py and a tour that reports what it runs with: no packages to sync."""
    (destination / "scripts").mkdir(parents=True)
    shutil.copy2(DEV_SCRIPT, destination / "scripts" / "dev.py")
    (destination / "pyproject.toml").write_text(
        '[project]\nname = "stub"\nversion = "0"\nrequires-python = ">=3.8"\ndependencies = []\n'
    )
    (destination / "examples").mkdir()
    (destination / "examples" / "tour.py").write_text(
        "import shutil, sys\nprint('tour ran with', sys.argv[1:], 'uvx at', shutil.which('uvx'))\n"
    )
    return destination


def dev(python: Path, checkout: Path, *args: str, env: dict[str, str]):
    return subprocess.run(
        [str(python), "scripts/dev.py", *args],
        cwd=checkout,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=110,
    )


def test_the_made_python_is_externally_managed_and_has_no_ensurepip(tmp_path: Path):
    python = managed_python(tmp_path / "python", pip=True, ensurepip=False)

    refused = subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--no-index", "uv"],
        capture_output=True,
        text=True,
        check=False,
    )
    venv = subprocess.run(
        [str(python), "-m", "venv", str(tmp_path / "venv")], capture_output=True, check=False
    )

    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stderr
    assert venv.returncode != 0


def test_the_readme_test_command_runs_pytest_from_a_fresh_checkout_on_a_pep_668_python(
    tmp_path: Path,
):
    python = managed_python(tmp_path / "python", pip=True, ensurepip=False)
    checkout = checkout_copy(tmp_path / "checkout")
    before = site_packages(python)

    result = dev(python, checkout, "test", "--version", env=without_uv(python))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pytest ")
    assert "no uv on PATH: installing it into .tools/uv" in result.stderr
    assert (checkout / ".tools" / "uv" / "bin" / "uv").is_file()
    assert site_packages(python) == before  # nothing went into the system's Python


def test_a_python_without_pip_borrows_a_venvs_pip_and_the_tour_finds_uvx(tmp_path: Path):
    python = managed_python(tmp_path / "python", pip=False, ensurepip=True)
    checkout = stub_checkout(tmp_path / "checkout")

    result = dev(python, checkout, "tour", "some.json", env=without_uv(python))

    uvx = checkout / ".tools" / "uv" / "bin" / "uvx"
    assert result.returncode == 0, result.stderr
    assert "has no pip: borrowing one from a temporary venv" in result.stderr
    assert result.stdout.strip() == f"tour ran with ['some.json'] uvx at {uvx}"
    assert site_packages(python) == []


def test_a_python_with_neither_pip_nor_ensurepip_is_told_what_to_install(tmp_path: Path):
    python = managed_python(tmp_path / "python", pip=False, ensurepip=False)
    checkout = stub_checkout(tmp_path / "checkout")

    result = dev(python, checkout, "test", env=without_uv(python))

    assert result.returncode == 2
    assert "sudo apt install python3-pip" in result.stderr
    assert not (checkout / ".tools").exists()


def test_a_uv_on_path_is_used_and_nothing_is_installed(tmp_path: Path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("no uv on PATH")
    python = managed_python(tmp_path / "python", pip=True, ensurepip=False)
    checkout = stub_checkout(tmp_path / "checkout")
    env = without_uv(python)
    env["PATH"] = os.pathsep.join([env["PATH"], str(Path(uv).parent)])

    result = dev(python, checkout, "tour", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tour ran with []")
    assert not (checkout / ".tools").exists()


def test_an_unknown_command_prints_the_usage_and_exits_2(tmp_path: Path):
    checkout = stub_checkout(tmp_path / "checkout")

    result = dev(Path(sys.executable), checkout, "tests", env=dict(os.environ))

    assert result.returncode == 2
    assert "python3 scripts/dev.py test [PYTEST ARGS]" in result.stderr
