"""A minimal MCP server (stdio) for examples/teams/single_mcp.yaml: one arithmetic tool.

Run by the team itself; to try it alone: ``python examples/mcp/arith_server.py`` and
speak MCP on stdin. Uses the SDK's high-level server (``MCPServer`` in mcp 2.x,
``FastMCP`` in 1.x) and concilium's safe calculator, never ``eval``.
"""

from __future__ import annotations

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

from concilium.tools.calculator import CalculatorError, exact

server = Server("arith")


@server.tool()
def evaluate(expression: str) -> str:
    """Evaluate an arithmetic expression such as '17 * 24 + 3' exactly."""
    try:
        return str(exact(expression))
    except CalculatorError as error:
        return f"error: {error}"


if __name__ == "__main__":
    server.run()
