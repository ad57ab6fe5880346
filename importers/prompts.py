"""The import command's conversation: what it says, and the questions it may ask.

    console = Console.for_terminal(yes=False)
    console.say("Importing from Cursor")
    name = console.ask_text("Description", default=None)   # only when console.interactive

Guarantees: all output goes to stderr, so stdout stays clean for whatever the caller
pipes. Questions read stdin only when the console is interactive (stdin is a terminal and
--yes was not given); asking a non-interactive console is a programming error, so no run
without a terminal can ever wait on stdin. End of input during a question cancels the
import instead of guessing an answer.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from importers.errors import ImportCancelledError

__all__ = ["Console"]


class Console:
    """Says things to the user and, when there is someone to ask, asks."""

    def __init__(self, out: TextIO, inp: TextIO | None, *, interactive: bool) -> None:
        self._out = out
        self._inp = inp
        self.interactive = interactive and inp is not None

    def __repr__(self) -> str:
        return f"Console(interactive={self.interactive})"

    @classmethod
    def for_terminal(cls, *, yes: bool) -> Console:
        """Interactive when stdin is a terminal and --yes was not given."""
        inp = sys.stdin
        tty = inp is not None and not inp.closed and inp.isatty()
        return cls(sys.stderr, inp, interactive=tty and not yes)

    def say(self, text: str = "") -> None:
        """One line (or several) of output."""
        self._out.write(text + "\n")
        self._out.flush()

    def ask(self, prompt: str) -> str:
        """One answer line, stripped.

        Raises:
            ImportCancelledError: stdin ended before an answer.
        """
        if not self.interactive or self._inp is None:
            raise RuntimeError("asked a question with nobody to answer it")
        self._out.write(prompt)
        self._out.flush()
        line = self._inp.readline()
        if not line:
            self._out.write("\n")
            raise ImportCancelledError("input ended")
        return line.strip()

    def ask_text(self, prompt: str, *, default: str | None, why_needed: str) -> str:
        """A non-empty answer; an empty one takes `default`, or is refused and asked again."""
        shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
        while True:  # ends on an answer, or on end of input (ask raises)
            answer = self.ask(shown)
            if answer:
                return answer
            if default:
                return default
            self.say(f"  {why_needed}")

    def confirm(self, prompt: str, *, default: bool) -> bool:
        """A yes/no answer; empty takes the default, anything else unclear asks again."""
        shown = f"{prompt} [{'Y/n' if default else 'y/N'}]: "
        while True:  # ends on an answer, or on end of input (ask raises)
            answer = self.ask(shown).casefold()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.say("  Please answer y or n.")

    def choose(self, prompt: str, options: Mapping[str, str], *, default: str) -> str:
        """One of `options` (key -> meaning) by its key or its meaning; empty takes default."""
        keys = "/".join(key.upper() if key == default else key for key in options)
        shown = f"{prompt} [{keys}]: "
        while True:  # ends on an answer, or on end of input (ask raises)
            answer = self.ask(shown).casefold()
            if not answer:
                return default
            for key, meaning in options.items():
                if answer in (key, meaning):
                    return key
            self.say("  Please answer " + ", ".join(f"{k} ({m})" for k, m in options.items()))
