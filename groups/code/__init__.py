"""Code mode: `run_dynamic_code` runs a model's program in a sandbox that calls tools.

    shapes.py    what a tool returns, in a few words, for expansions (docs/code-mode.md)
"""

from groups.code.shapes import shape

__all__ = ["shape"]
