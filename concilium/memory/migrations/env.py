"""Alembic environment: concilium always hands over an open connection.

Migrations run programmatically (:func:`concilium.memory.db.migrate`), never from
an ``alembic.ini``: the caller passes the connection in ``config.attributes`` so
they run inside the caller's lock and transaction.
"""

from __future__ import annotations

from alembic import context

from concilium.memory.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by hand-run alembic
    raise RuntimeError(
        "concilium migrations run through concilium.memory.db.migrate(), which passes "
        "a connection; there is no alembic.ini to read a URL from"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
