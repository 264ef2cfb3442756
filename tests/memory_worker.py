"""A separate process that runs teams and recalls on command, for the shared-memory tests.

It reads one JSON command per line on stdin and answers one JSON line on stdout, so a
test drives two (or more) of them side by side over the same SQL database and Redis
(``CONCILIUM_DATABASE_URL`` / ``CONCILIUM_REDIS_URL`` in its environment). Models are
the ``scripted/`` provider only.

Commands:
    {"op": "run", "team": {...}, "task": "...", "reference": "411", "replies": {role: [..]}}
        -> {"prompts": {role: [text, ...]}, "correct": ..., "remembered": [ids]}
    {"op": "recall", "task": "...", "namespace": "..."}
        -> {"lessons": [text, ...], "hits": n, "misses": n, "redis": bool}
    {"op": "quit"}
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any


def main() -> None:
    from concilium import load_team
    from concilium.agents.llm import allow_only
    from concilium.agents.providers import scripted
    from concilium.memory.ledger import flush
    from concilium.memory.store import Memory

    warnings.simplefilter("ignore")  # the Redis outage warning goes to stderr otherwise
    with allow_only("scripted"):
        for line in sys.stdin:
            command: dict[str, Any] = json.loads(line)
            op = command["op"]
            if op == "quit":
                break
            memory = Memory.open()
            if op == "run":
                team = load_team(command["team"], model="scripted/worker")
                script = scripted.Script({k: list(v) for k, v in command["replies"].items()})
                with scripted.use("worker", script):
                    result = team.run(command["task"], reference=command.get("reference"))
                flush()
                prompts: dict[str, list[str]] = {}
                for call in script.calls:
                    prompts.setdefault(call.role, []).append(call.text)
                reply: dict[str, Any] = {
                    "prompts": prompts,
                    "correct": result.correct,
                    "remembered": result.remembered,
                }
            elif op == "recall":
                found = memory.recall(command["task"], namespace=command["namespace"])
                hot = memory.hot
                reply = {
                    "lessons": [lesson.lesson for lesson in found],
                    "hits": hot.hits if hot else 0,
                    "misses": hot.misses if hot else 0,
                    "redis": bool(memory.redis and memory.redis.available),
                }
            else:
                reply = {"error": f"unknown op {op!r}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
