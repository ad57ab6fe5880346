"""The echo upstream, careless at start-up: it prints its credentials to stderr.

python chatty_server.py --token TOKEN      # with API_TOKEN in its environment
"""

from __future__ import annotations

import lean  # first: the garbage collector is off while FastMCP is imported

# isort: split
import os
import sys

from echo_server import mcp

if __name__ == "__main__":
    lean.serving()
    print("chatty upstream starting", file=sys.stderr)
    print(f"using API_TOKEN={os.environ.get('API_TOKEN')}", file=sys.stderr)
    print(f"using --token {sys.argv[sys.argv.index('--token') + 1]}", file=sys.stderr, flush=True)
    mcp.run(show_banner=False, log_level="ERROR")
