"""A browser for the tests: `BROWSER="python follow_browser.py %s"` follows the URL it is
given, redirects and all, as a user who signs in at once would.

The authorization server redirects to the client's loopback callback, which may start a
moment after the URL is handed over: connecting is retried for a few seconds.

With $BROWSER_HOLD naming a file, the person takes their time: the link is followed only
once that file exists (checked for up to HOLD_SECONDS), so a test can act while a sign-in
is pending. Each link given is also appended to $BROWSER_HOLD.links.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx2

ATTEMPTS = 50  # 10 s in all: the callback server comes up within that
HOLD_SECONDS = 60.0


def main() -> None:
    url = sys.argv[1]
    hold = os.environ.get("BROWSER_HOLD")
    if hold:
        with Path(f"{hold}.links").open("a") as links:
            links.write(url + "\n")
        deadline = time.monotonic() + HOLD_SECONDS
        while not Path(hold).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    with httpx2.Client(follow_redirects=False, timeout=10) as client:
        for _ in range(10):  # authorize → callback: a redirect or two
            for attempt in range(ATTEMPTS):
                try:
                    response = client.get(url)
                    break
                except httpx2.ConnectError:
                    if attempt == ATTEMPTS - 1:
                        raise
                    time.sleep(0.2)
            if response.status_code not in (302, 303, 307):
                return
            url = response.headers["location"]


if __name__ == "__main__":
    main()
