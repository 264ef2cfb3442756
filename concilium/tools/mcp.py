"""MCP servers as tool sources, through the official ``mcp`` SDK (extra ``mcp``).

A team file declares its servers once, under ``mcp:``, and roles name them in
``tools:`` (``mcp:<server>`` for all of a server's tools, ``mcp:<server>/<tool>`` for
one)::

    mcp:
      files: {command: [python, -m, my_mcp_server], env: {ROOT: /data}}
      search: {url: "http://127.0.0.1:8000/mcp"}

A stdio server is a child process started with the SDK's default environment (``PATH``,
``HOME`` and the like: none of our keys) plus the ``env`` the file gives; an HTTP server
is reached over Streamable HTTP. One connection per server per run: it is opened when a
role first needs the server's tools and closed when the run ends.

Why a task owns each connection: the SDK's transports are anyio context managers that
must be entered and left by the same task, but a run's roles run in many LangGraph
tasks. So :class:`Connection` enters the transport in a task of its own, hands the
session out, and leaves it when told to (or when the loop cancels it at shutdown).
Both the 1.x and 2.x SDKs are supported (the low-level ``ClientSession`` API they share).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from concilium.errors import ConfigError, MissingDependencyError
from concilium.tools.registry import Tool

__all__ = ["Connection", "McpError", "result_text"]

CONNECT_TIMEOUT_S = 30.0
"""Starting a server and the protocol handshake; a server that takes longer is broken."""


class McpError(ConfigError):
    """An MCP server could not be started or reached, or does not offer a named tool."""


def _sdk() -> Any:
    try:
        import mcp
    except ImportError:
        raise MissingDependencyError(
            "MCP tools need the mcp SDK: pip install 'concilium[mcp]'"
        ) from None
    return mcp


@contextlib.asynccontextmanager
async def _session(server: Any) -> AsyncIterator[Any]:
    """An initialised ``ClientSession`` to ``server`` (an ``McpServerSpec``)."""
    mcp = _sdk()
    async with contextlib.AsyncExitStack() as stack:
        if server.url is not None:
            streams = await stack.enter_async_context(_http(server))
        else:
            command = command_of(server)
            params = mcp.StdioServerParameters(
                command=command[0],
                args=command[1:],
                env=dict(server.env) if server.env else None,
                cwd=server.cwd,
            )
            devnull = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115
            streams = await stack.enter_async_context(
                mcp.stdio_client(params, errlog=devnull if server.quiet else _stderr())
            )
        session = await stack.enter_async_context(mcp.ClientSession(streams[0], streams[1]))
        await session.initialize()
        yield session


def command_of(server: Any) -> list[str]:
    """A stdio server's program and arguments (a string is split as a shell would)."""
    import shlex

    command = server.command
    parts = shlex.split(command) if isinstance(command, str) else list(command)
    return [*parts, *server.args]


def _stderr() -> Any:
    import sys

    return sys.stderr


def _http(server: Any) -> Any:
    headers = dict(server.headers or {})
    if server.api_key_env:
        key = os.environ.get(server.api_key_env)
        if not key:
            raise ConfigError(
                f"MCP server {server.url}: api_key_env names "
                f"{server.api_key_env}, which is not set in the environment"
            )
        headers["Authorization"] = f"Bearer {key}"
    try:  # mcp 2.x
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        return streamable_http_client(
            server.url, http_client=create_mcp_http_client(headers=headers or None)
        )
    except ImportError:  # mcp 1.x
        from mcp.client.streamable_http import (  # type: ignore[attr-defined]
            streamablehttp_client,
        )

        return streamablehttp_client(server.url, headers=headers or None)


def result_text(result: Any) -> tuple[str, bool]:
    """The text of a ``CallToolResult`` and whether the server says the call failed."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(f"[{getattr(block, 'type', type(block).__name__)} content]")
    structured = getattr(result, "structuredContent", None) or getattr(
        result, "structured_content", None
    )
    if not parts and structured is not None:
        import json

        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    failed = bool(getattr(result, "isError", None) or getattr(result, "is_error", None))
    return "\n".join(parts), failed


class Connection:
    """One running MCP server connection, owned by a task of its own (see module doc)."""

    def __init__(self, name: str, server: Any) -> None:
        self.name = name
        self.server = server
        self._session: Any = None
        self._tools: list[Tool] = []
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(), name=f"mcp:{name}")

    async def _own(self) -> None:
        try:
            async with _session(self.server) as session:
                listed = await session.list_tools()
                self._session = session
                self._tools = [self._tool(t) for t in listed.tools]
                self._ready.set_result(None)
                await self._stop.wait()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            self._session = None

    async def tools(self) -> list[Tool]:
        """The server's tools, once it is up.

        Raises:
            McpError: it did not start, or did not answer the handshake in time.
        """
        where = self.server.url or " ".join(command_of(self.server))
        try:
            async with asyncio.timeout(self.server.connect_timeout_s):
                await asyncio.shield(self._ready)
        except TimeoutError:
            raise McpError(
                f"MCP server {self.name!r} ({where}) did not answer within "
                f"{self.server.connect_timeout_s:g} s"
            ) from None
        except ConfigError:
            raise
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError):
                raise
            detail = _first_cause(error)
            raise McpError(
                f"MCP server {self.name!r} ({where}) failed to start: "
                f"{type(detail).__name__}: {detail}"
            ) from None
        return list(self._tools)

    def _tool(self, listed: Any) -> Tool:
        name = str(listed.name)
        schema = getattr(listed, "inputSchema", None) or getattr(listed, "input_schema", None)
        timeout_s = self.server.timeout_s

        async def call(arguments: dict[str, Any]) -> Any:
            session = self._session
            if session is None:
                raise RuntimeError(f"MCP server {self.name!r} is no longer connected")
            async with asyncio.timeout(timeout_s):
                result = await session.call_tool(name, arguments)
            text, failed = result_text(result)
            if failed:
                raise RuntimeError(text or "the MCP server reported an error")
            return text

        return Tool(
            name=name,
            description=str(getattr(listed, "description", "") or ""),
            parameters=dict(schema or {"type": "object", "properties": {}}),
            call=call,
            source=f"mcp:{self.name}",
        )

    async def close(self) -> None:
        """Leave the session and stop the server (its process, for a stdio one)."""
        self._stop.set()
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(10.0):
                await asyncio.shield(self._task)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if not self._ready.done():
            self._ready.cancel()
        elif not self._ready.cancelled():
            self._ready.exception()  # retrieved: no "never retrieved" warning


def _first_cause(error: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps a transport's failure in one)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
