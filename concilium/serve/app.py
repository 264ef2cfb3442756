"""The FastAPI app: one lifespan, auth as a dependency, every error in OpenAI's shape.

Security, in one place:

- with an API key (``CONCILIUM_API_KEY`` or ``--api-key``) every endpoint but
  ``/health`` wants ``Authorization: Bearer <key>`` (or the viewer's session cookie),
  compared in constant time; without a key the CLI refuses to bind anything but
  loopback (:func:`is_loopback`);
- request bodies are capped (``max_body_bytes``) before they are read whole;
- error bodies never carry a traceback or a secret: messages pass through
  :func:`concilium.secrets.redact`, unexpected exceptions become "internal error".
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concilium.serve.http import (
    SESSION_COOKIE,
    ApiError,
    authorized,
    error_response,
    require_key,
    session_token,
    sse,
)
from concilium.serve.runs import RunManager
from concilium.serve.teams import TeamRegistry

__all__ = [
    "SESSION_COOKIE", "ApiError", "ServeConfig", "authorized", "create_app", "error_response",
    "is_loopback", "require_key", "session_token", "sse",
]

DEFAULT_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class ServeConfig:
    """What a server needs; the CLI builds it from its options."""

    teams: Path | str = Path("examples/teams")
    api_key: str | None = None
    """Bearer key wanted on every endpoint but ``/health``; ``None``: no auth (loopback)."""
    max_body_bytes: int = DEFAULT_MAX_BODY
    reports: Path | None = None
    """Where ``concilium eval --out`` wrote its reports (shown at ``/ui/reports``)."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BodyLimit:
    """ASGI middleware: a body longer than ``max_bytes`` is a 413 before it is read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        over = False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise self._error()
            return message

        async def sending(message: Message) -> None:
            # The app answers a body it could not read with its own error; ours replaces it.
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, receive, send)

        await self.app(scope, limited, sending)

    def _error(self) -> ApiError:
        return ApiError(413, f"request body larger than {self.max_bytes} bytes",
                        code="request_too_large")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._error().response()(scope, receive, send)


def create_app(config: ServeConfig | Path | str | None = None) -> FastAPI:
    """The whole service for one directory of team files.

    Raises:
        ConfigError: the teams directory holds no valid team.
    """
    if not isinstance(config, ServeConfig):
        config = ServeConfig(teams=config) if config is not None else ServeConfig()
    registry = TeamRegistry.load(config.teams)
    manager = RunManager()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        from concilium.memory import Memory

        await asyncio.to_thread(Memory.open)  # migrate the ledger now, not on a first request
        yield
        await manager.cancel_all()

    app = FastAPI(
        title="concilium",
        version="0.1.0",
        description="Teams of LLM agents as a service: OpenAI-compatible /v1 (a team is a "
        "model), a runs API with live events, and a web run viewer.",
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the key like everything but /health
        docs_url=None,
        redoc_url=None,
        responses={401: {"model": _error_model(), "description": "Missing or wrong API key"}},
    )
    app.state.api_key = config.api_key or None
    app.state.registry = registry
    app.state.runs = manager
    app.state.reports = Path(config.reports) if config.reports is not None else None
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    _error_handlers(app)

    @app.get("/health", tags=["service"], summary="Liveness; never needs the key.")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "teams": len(registry.names()),
                "running": sum(1 for r in manager.live() if not r.done)}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_key)])
    async def openapi() -> JSONResponse:
        return JSONResponse(_with_team_examples(app.openapi(), registry.names()))

    from concilium.serve import api, chat, reports, viewer

    app.include_router(chat.router, dependencies=[Depends(require_key)])
    app.include_router(api.router, dependencies=[Depends(require_key)])
    app.include_router(viewer.router)
    app.include_router(reports.router)
    return app


def _with_team_examples(document: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The document with this server's team names as examples of ``model`` and ``team``,
    so clients (and fuzzers) see which values reach a team."""
    schemas = document.get("components", {}).get("schemas", {})
    for schema, field in (("ChatRequest", "model"), ("RunRequest", "team")):
        prop = schemas.get(schema, {}).get("properties", {}).get(field)
        if prop is not None:
            prop["examples"] = names
    return document


def _error_model() -> Any:
    from concilium.serve.schemas import ErrorResponse

    return ErrorResponse


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return error_response(error.status_code, str(error.detail), kind,
                              headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = (error.errors() or [{}])[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            message = "the body is not valid JSON"
        return error_response(400, f"{param}: {message}" if param else message,
                              "invalid_request_error", param=param)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, _error: Exception) -> JSONResponse:
        return error_response(500, "internal error (see the server's log)", "server_error")


def env_key() -> str | None:
    """The API key from the environment (``CONCILIUM_API_KEY``), if set."""
    return os.environ.get("CONCILIUM_API_KEY") or None
