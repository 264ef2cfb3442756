"""Help text: an example for every command, and rich formatting that keeps every word.

Help is rendered by rich (``rich_markup_mode="rich"``), where ``[default: x]`` in an
option's own help would read as a style tag and vanish; :class:`HelpGroup` escapes
such brackets once, when the command tree is built, and gives each command without
an epilog its example from :data:`EXAMPLES` (all runnable on the default model).
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperGroup

__all__ = ["EXAMPLES", "HelpGroup"]

EXAMPLES: dict[str, str] = {
    "run": 'concilium run examples/teams/gvr.yaml "What is 17 * 24 + 3?"',
    "serve": "concilium serve --teams examples/teams --port 8000",
    "export": "concilium export --format sft --out sft.jsonl",
    "eval": "concilium eval examples/teams/single.yaml examples/teams/gvr.yaml -d arith:20",
    "batch": "concilium batch examples/teams/gvr.yaml --input tasks.jsonl --output out.jsonl",
    "teams list": "concilium teams list examples/teams",
    "teams show": "concilium teams show examples/teams/debate.yaml",
    "teams validate": "concilium teams validate examples/teams/*.yaml",
    "teams schema": "concilium teams schema --out team.schema.json",
    "teams graph": "concilium teams graph examples/teams/custom_graph.yaml",
    "evals list": "concilium evals list --limit 5",
    "evals show": "concilium evals show reports/arith --json",
    "runs list": "concilium runs list --status paused",
    "runs show": "concilium runs show 3f2a9c --messages",
    "runs follow": "concilium runs follow 3f2a9c",
    "runs resume": 'concilium runs resume 3f2a9c --answer "no, 17 * 24 is 408"',
    "memory list": "concilium memory list --namespace gvr-calculator",
    "memory search": 'concilium memory search "multiplication carry"',
    "memory show": "concilium memory show 12",
    "memory forget": "concilium memory forget --run 3f2a9c",
    "memory distill": "concilium memory distill --namespace gvr-calculator",
    "memory behaviors": "concilium memory behaviors",
    "memory export": "concilium memory export > lessons.jsonl",
    "memory quarantine": 'concilium memory quarantine 12 --reason "spreads a wrong rule"',
    "memory restore": "concilium memory restore 12",
    "stats": "concilium stats --since 24h --by role,model",
}
"""An example command line per command (``group command`` for grouped ones)."""

_TAG = re.compile(r"(?<!\\)\[(?=[a-zA-Z#/@])")


def _escape(text: str | None) -> str | None:
    """``[word`` -> ``\\[word``: printed as written, not read as a rich style."""
    return _TAG.sub(r"\\[", text) if text else text


def _dress(command: Any, path: str) -> None:
    command.help = _escape(command.help)
    for param in getattr(command, "params", []):
        if getattr(param, "help", None):
            param.help = _escape(param.help)
    example = EXAMPLES.get(path)
    if example and not command.epilog:
        command.epilog = f"Example: {example}"
    for name, sub in (getattr(command, "commands", None) or {}).items():
        _dress(sub, f"{path} {name}".strip())


class HelpGroup(TyperGroup):
    """The root command group: every command's help escaped and given its example."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _dress(self, "")
