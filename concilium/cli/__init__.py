"""The ``concilium`` command: one module per command group (``run``, ``runs``, ``teams``,
``memory``, ``eval``, ``batch``, ``export``, ``stats``, ``serve``), wired in ``app.py``.

Commands parse arguments and print; they run teams through :mod:`concilium.team` /
:mod:`concilium.run` like any other caller, and import lazily so ``--help`` stays fast.
"""
