"""A tiny MCP server for tests/test_tools_calling.py, run as a real process by the test.

Its tools: ``evaluate`` (arithmetic, first so that the test model server calls it),
``shout`` and ``explode`` (always raises). It writes its pid to ``$MCP_PID_FILE`` when
set, so a test can check the server is gone after the run. Built with the SDK's
high-level server: ``MCPServer`` in mcp 2.x, ``FastMCP`` in 1.x.

Usage: ``python tests/mcp_server.py`` (stdio) or ``python tests/mcp_server.py --http PORT``.
"""

from __future__ import annotations

import ast
import operator
import os
import sys

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

server = Server("concilium-test")
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    raise ValueError("only + - * / on numbers")


@server.tool()
def evaluate(expression: str) -> str:
    """Evaluate an arithmetic expression (numbers, + - * /, parentheses)."""
    value = _eval(ast.parse(expression, mode="eval").body)
    return str(int(value)) if value == int(value) else str(value)


@server.tool()
def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


@server.tool()
def explode(reason: str) -> str:
    """Always fails (for the test of a failing MCP tool)."""
    raise RuntimeError(f"exploded: {reason}")


if __name__ == "__main__":
    if os.environ.get("MCP_PID_FILE"):
        with open(os.environ["MCP_PID_FILE"], "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
