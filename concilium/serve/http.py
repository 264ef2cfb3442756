"""What every endpoint module shares: the error shape, the key check, the SSE framing.

A leaf below ``app.py`` so the routers (``api``, ``chat``, ``viewer``, ``reports``) and the
app that mounts them import it without importing each other: no import circle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from concilium.secrets import redact

__all__ = [
    "SESSION_COOKIE", "ApiError", "authorized", "error_response", "require_key",
    "session_token", "sse",
]

SESSION_COOKIE = "concilium_session"


class ApiError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.type, param=self.param,
                              code=self.code, headers=self.headers)


def error_response(status: int, message: str, type: str, *, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    body = {"error": {"message": redact(message), "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def session_token(key: str) -> str:
    """The viewer's cookie value: derived from the key, so the key itself is never stored."""
    return hmac.new(key.encode(), b"concilium-session-v1", hashlib.sha256).hexdigest()


def authorized(request: Request) -> bool:
    key: str | None = request.app.state.api_key
    if key is None:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_token(key).encode())


_bearer = HTTPBearer(auto_error=False, description="The server's API key (CONCILIUM_API_KEY).")


async def require_key(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """FastAPI dependency: 401 in OpenAI's shape unless the request carries the key."""
    if not authorized(request):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>' "
                       "(the server's CONCILIUM_API_KEY)", "authentication_error",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def sse(data: Any) -> str:
    """One Server-Sent Event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"
