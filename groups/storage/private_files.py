"""Files only their owner may read: one rule for every secret dynamic-mcp reads or writes.

    text = read_private(path)                    # refused if group or others have any access
    text = read_private(path, narrow=True)       # ours: a wider mode is narrowed, not refused
    write_private(path, text)                    # atomic; 0600 in a 0700 folder it creates
    write_atomically(path, text, 0o644)          # atomic, any mode: a file that is the user's

Guarantees:
- a private file is one whose mode gives group and others nothing (`mode & 0o077 == 0`);
  the same test serves OAuth token files, `--token-file` and `${file:PATH}`;
- what dynamic-mcp writes is written atomically (a crash leaves the old file or the new,
  never half) as 0600 in a 0700 folder; a wider mode found on a file or folder it owns
  (`narrow=True`) is narrowed with a warning, and refused when it cannot be;
- the mode is checked on the open file, so the file read is the file checked;
- `write_atomically` is the one write-temp-fsync-rename in dynamic-mcp (the store, the
  catalog through it, the importer's output): the temporary file is 0600 until it takes its
  final mode, so a secret in it is never readable by others meanwhile.

These functions block: call them from a worker thread on an event loop
(`anyio.to_thread.run_sync`), as `groups.storage.store` does.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "NotPrivateError",
    "read_private",
    "write_atomically",
    "write_private",
]

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_OPEN_TO_OTHERS = 0o077  # any access for group or others


class NotPrivateError(OSError):
    """A file, or a folder of ours, gives group or others access, and was not (or could not
    be) narrowed. `mode` is what was found; `narrowed` says whether narrowing was tried."""

    def __init__(self, path: Path, mode: int, *, narrowed: bool = False) -> None:
        self.path = path
        self.mode = mode
        self.narrowed = narrowed
        super().__init__(f"{path} is open to others (mode {mode:04o})")


def read_private(path: Path, *, narrow: bool = False) -> str:
    """The text of `path`, if only its owner may read it.

    Args:
        path: the file.
        narrow: the file and its folder are dynamic-mcp's own: narrow wider modes to
            0600 / 0700 instead of refusing.

    Raises:
        FileNotFoundError: there is no such file.
        NotPrivateError: the file (or, with `narrow`, its folder) is open to others.
        OSError, UnicodeDecodeError: the file cannot be read.
    """
    if narrow:
        _narrow(path.parent, FOLDER_MODE)
    descriptor = os.open(path, os.O_RDONLY)
    with os.fdopen(descriptor, "rb") as file:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        if mode & _OPEN_TO_OTHERS:
            if not narrow:
                raise NotPrivateError(path, mode)
            _narrow(path, FILE_MODE, descriptor)
        return file.read().decode("utf-8")


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step, as a 0600 file in a 0700 folder.

    Raises:
        NotPrivateError: the folder is open to others and cannot be narrowed.
        OSError: the file cannot be written.
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    _narrow(folder, FOLDER_MODE)
    write_atomically(path, text)


def write_atomically(path: Path, text: str, mode: int = FILE_MODE) -> None:
    """Replace `path` with `text` in one rename, as a file of `mode`; its folder must exist.

    A reader (or a crash) sees the old file or the new one, never half of one.

    Raises:
        OSError: the file cannot be written.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp: mode 0600
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if mode != FILE_MODE:
            os.chmod(temporary, mode)  # only now: the text is never open to others unfinished
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _narrow(path: Path, private: int, descriptor: int | None = None) -> None:
    """Narrow a file or folder of ours that is open to others; refuse if that fails."""
    try:
        mode = stat.S_IMODE(os.stat(descriptor if descriptor is not None else path).st_mode)
    except FileNotFoundError:
        return
    if mode & _OPEN_TO_OTHERS == 0:
        return
    try:
        if descriptor is not None:
            os.fchmod(descriptor, private)
        else:
            path.chmod(private)
    except OSError:
        raise NotPrivateError(path, mode, narrowed=True) from None
    logger.warning("%s was open to others (mode %04o): made it %04o", path, mode, private)
