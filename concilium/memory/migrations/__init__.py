"""Alembic migrations of the ledger and memory schema (run by ``concilium.memory.db.migrate``)."""
