"""``concilium serve``: a team is a service.

- ``/v1``: OpenAI-compatible (``GET /v1/models``, ``POST /v1/chat/completions``): a team
  is a model; any OpenAI client uses it unchanged (``chat.py``).
- ``/runs``, ``/teams``: start, list, follow (SSE), cancel and resume runs (``api.py``).
- ``/``: the web run viewer (``viewer.py``).
- ``app.py``: the FastAPI app: auth, body limit, errors in OpenAI's shape, lifespan.

Runs go through the public facade only (``Team.arun``, ``concilium.resume_run``, the
ledger readers of ``concilium.memory``), so a served run is recorded, budgeted and
resumable exactly like ``concilium run``. Needs the ``serve`` extra.

Example:
    >>> from concilium.serve import create_app
    >>> app = create_app("examples/teams")          # then: uvicorn.run(app)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from concilium._lazy import lazy_getattr

if TYPE_CHECKING:
    from concilium.serve.app import ServeConfig, create_app, is_loopback

__all__ = ["ServeConfig", "create_app", "is_loopback"]

_LAZY = {
    "ServeConfig": "concilium.serve.app",
    "create_app": "concilium.serve.app",
    "is_loopback": "concilium.serve.app",
}

__getattr__ = lazy_getattr("concilium.serve", _LAZY)
