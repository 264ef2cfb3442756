"""Old home of the simultaneous debate, kept so old imports work.

See :mod:`concilium.graphs.debate.simultaneous`.
"""

from __future__ import annotations

from concilium.graphs.debate.simultaneous import build_simultaneous

__all__ = ["build_simultaneous"]
