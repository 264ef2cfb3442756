"""Agents: the roles a team is made of, and the one door to models.

- ``llm.py``: the model door. Every model call goes through :func:`llm.chat` (litellm
  behind it: retries, fallbacks, the response cache, accounting); nothing else imports
  litellm for a call.
- ``providers/``: in-process models registered with litellm (``local/``, ``scripted/``,
  ``faulty/``). A new provider goes there (see its ``__init__``).
- ``roles/``: one module per role kind (a prompt, one call, a parser to a typed result).
  A new role kind goes there (see its ``__init__``).
- ``context.py``: :class:`~concilium.agents.context.RunContext`, what every node of a run
  shares: the team, budgets, the ledger steps.
- ``prompts.py``: packaged Jinja templates (``concilium/prompts/*.yaml``), overridable
  per role in the team file.

Roles never decide control flow (graphs do), and nothing here imports ``graphs``,
``run`` or ``team``.
"""
