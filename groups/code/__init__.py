"""Code mode: `run_dynamic_code` runs a model's program in a sandbox that calls tools.

runner.py    one program, its calls down call_dynamic_tool's path, its limits
sandbox.py   the pydantic-monty workers it runs in
results.py   what a call gives the program, and what the program gives back
shapes.py    what a tool returns, in a few words, for expansions (docs/code-mode.md)
"""

from groups.code.runner import CodeRunner, Ran, ToolCall, ToolCallFailed
from groups.code.shapes import shape

__all__ = ["CodeRunner", "Ran", "ToolCall", "ToolCallFailed", "shape"]
