"""The terminal commands: `check`, `tools`, `call`, `run-code`, `auth` (`import`: `importers`).

Each runs the same root server a client would talk to, in this process, through the same
meta-tools. Nothing is re-exported here: server.py registers each command by its module
path, so a command's module (and what it imports) loads only when that command runs.
"""
