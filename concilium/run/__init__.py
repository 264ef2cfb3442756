"""Running a team: the one place a team is run, above the graphs and above memory.

- ``execute.py``: :func:`execute`, the one function every entry point ends in (the
  CLI, ``Team.arun``, the service, Ray workers): plain, durable or resumed, with
  budgets and the timeout; :func:`resume_run`.
- ``graph.py``: the compiled team graph, which carries the run (recall, ledger,
  budgets, timeout) when embedded in plain LangGraph code.
- ``memory.py``: the run's memory: recall before, the ledger as it goes, reflect and
  remember after (the reflector's call is made here, never in ``concilium/memory``).
- ``result.py``: a run's :class:`~concilium.records.RunResult` from its last state.
- ``checkpoints.py``: LangGraph savers for durable runs, and the claim on a run.
- ``distill.py``: recurring lessons -> behaviors (a model call, so it lives here).

Data walks one way: spec -> run -> graph -> roles -> model door, with memory and
records underneath. Nothing below this package imports it.
"""
