"""Old home of the adversarial debate, kept so old imports work.

See :mod:`concilium.graphs.debate.adversarial`.
"""

from __future__ import annotations

from concilium.graphs.debate.adversarial import build_adversarial

__all__ = ["build_adversarial"]
