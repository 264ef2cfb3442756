"""``scripted/<name>``: a deterministic model for tests, reached through the model door.

A :class:`Script` answers each call from per-role queues, then from rules (a
regex on the prompt, or any function of the call), then from a default. When
nothing is left it raises :class:`ScriptExhausted` instead of inventing a reply,
so a test that makes more calls than it scripted fails loudly. Replies are raw
text: they go through the real parsers, exactly like a real model's output.

Example:
    >>> script = Script({"generator": ["Answer: 41"], "verifier": ["VERDICT: reject"]})
    >>> register("demo", script)   # then use model "scripted/demo" in a team
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from concilium.agents.providers.base import generic_chunks, rough_tokens
from concilium.errors import ConfigError, ScriptExhausted

__all__ = ["Rule", "Script", "ScriptCall", "areply", "astream", "get", "register", "reply", "use"]


@dataclass(frozen=True)
class ScriptCall:
    """One call the script answered (or refused), as a test wants to inspect it."""

    role: str
    node: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    index: int

    @property
    def prompt(self) -> str:
        """The last user message: what the model is asked right now."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""

    @property
    def text(self) -> str:
        """Every message's content, joined: handy for ``in`` checks."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


Reply = str | Callable[[ScriptCall], str]


@dataclass(frozen=True)
class Rule:
    """Reply with ``reply`` when the role (or node) and the regex on the prompt both match."""

    reply: Reply
    role: str | None = None
    match: str | None = None

    def applies(self, call: ScriptCall) -> bool:
        if self.role is not None and self.role not in (call.role, call.node):
            return False
        return self.match is None or re.search(self.match, call.text) is not None


@dataclass
class Script:
    """Deterministic replies: queues per role or node, then rules, then a default."""

    replies: Mapping[str, Sequence[Reply]] = field(default_factory=dict)
    rules: Sequence[Rule] = ()
    default: Reply | None = None
    latency_s: float | Callable[[ScriptCall], float] = 0.0
    """Seconds each call takes (or a function of the call, for calls of uneven length)."""
    name: str = "script"
    log: Path | None = None
    """Append one JSON line per answered call here: counts calls across processes."""

    def __post_init__(self) -> None:
        self._queues: dict[str, deque[Reply]] = {k: deque(v) for k, v in self.replies.items()}
        self._lock = threading.Lock()
        self.calls: list[ScriptCall] = []

    def count(self, role: str | None = None) -> int:
        """How many calls were made (to one role or node, if given)."""
        return sum(1 for c in self.calls if role is None or role in (c.role, c.node))

    def delay(self, role: str, node: str, messages: list[dict[str, str]], params: dict) -> float:
        """How long this call takes before it is answered."""
        if callable(self.latency_s):
            return float(self.latency_s(ScriptCall(role, node, messages, params, -1)))
        return self.latency_s

    def answer(self, role: str, node: str, messages: list[dict[str, str]], params: dict) -> str:
        with self._lock:
            call = ScriptCall(role, node, messages, params, len(self.calls))
            self.calls.append(call)
            reply = self._pick(call)
            if self.log is not None:
                with self.log.open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"role": role, "node": node, "index": call.index,
                                          "prompt": call.prompt[-200:]}) + "\n")
        return reply(call) if callable(reply) else reply

    def _pick(self, call: ScriptCall) -> Reply:
        for key in (call.node, call.role, "*"):
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        for rule in self.rules:
            if rule.applies(call):
                return rule.reply
        if self.default is not None:
            return self.default
        raise ScriptExhausted(
            f"script {self.name!r} has no reply left for role {call.role!r} "
            f"(node {call.node!r}, call #{call.index + 1}); last prompt: {call.prompt[:120]!r}"
        )

    @classmethod
    def from_yaml(cls, path: Path) -> Script:
        """Load ``{latency_s, log, replies: {role: [..]}, rules: [{role, match, reply}], default}``.

        A relative ``log`` path is relative to the script file.
        """
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a script must be a mapping, not {type(data).__name__}")
        rules = [Rule(reply=str(r["reply"]), role=r.get("role"), match=r.get("match"))
                 for r in data.get("rules", [])]
        return cls(
            replies={str(k): [str(x) for x in v] for k, v in (data.get("replies") or {}).items()},
            rules=rules,
            default=data.get("default"),
            latency_s=float(data.get("latency_s", 0.0)),
            name=path.stem,
            log=path.parent / str(data["log"]) if data.get("log") else None,
        )


_registry: dict[str, Script] = {}


def register(name: str, script: Script) -> Script:
    """Make ``scripted/<name>`` answer from ``script`` (replacing any earlier one)."""
    script.name = name
    _registry[name] = script
    return script


@contextmanager
def use(name: str, script: Script) -> Iterator[Script]:
    """Register a script for the duration of a ``with`` block."""
    previous = _registry.get(name)
    register(name, script)
    try:
        yield script
    finally:
        if previous is None:
            _registry.pop(name, None)
        else:
            _registry[name] = previous


def get(name: str) -> Script:
    """The registered script, else ``<scripts_dir>/<name>.yaml`` (loaded once)."""
    if name in _registry:
        return _registry[name]
    from concilium.settings import get_settings

    directory = get_settings().scripts_dir
    if directory is not None and (directory / f"{name}.yaml").is_file():
        return register(name, Script.from_yaml(directory / f"{name}.yaml"))
    known = ", ".join(sorted(_registry)) or "none"
    raise ConfigError(
        f"no script named {name!r} (registered: {known}); register one with "
        "concilium.agents.providers.scripted.register() or set CONCILIUM_SCRIPTS_DIR"
    )


async def areply(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                 meta: dict[str, Any]) -> tuple[str, int, int]:
    """Answer one call to ``scripted/<model>``: ``(text, prompt tokens, completion tokens)``.

    Called by the model door directly (no litellm needed) and by litellm's adapter.
    """
    script = get(model)
    delay = _delay(script, messages, params, meta)
    if delay:
        await asyncio.sleep(delay)
    return _usage(messages, _answer(script, messages, params, meta))


def reply(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
          meta: dict[str, Any]) -> tuple[str, int, int]:
    """:func:`areply`, blocking (litellm's synchronous ``completion``)."""
    script = get(model)
    delay = _delay(script, messages, params, meta)
    if delay:
        time.sleep(delay)
    return _usage(messages, _answer(script, messages, params, meta))


async def astream(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                  meta: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The same reply as :func:`areply`, word by word, then its usage (litellm's
    ``GenericStreamingChunk`` dicts, read by the door and by litellm's adapter alike)."""
    text, prompt_tokens, completion_tokens = await areply(model, messages, params, meta)
    for chunk in generic_chunks(text, prompt_tokens, completion_tokens):
        yield chunk
        await asyncio.sleep(0)  # a real stream lets others run between chunks


def _who(meta: dict[str, Any]) -> tuple[str, str]:
    """The calling role and node, from the call's metadata."""
    role = str(meta.get("role", "user"))
    return role, str(meta.get("node", role))


def _delay(script: Script, messages: list, optional_params: dict, meta: dict[str, Any]) -> float:
    return script.delay(*_who(meta), messages, dict(optional_params))


def _answer(script: Script, messages: list, optional_params: dict, meta: dict[str, Any]) -> str:
    return script.answer(*_who(meta), messages, dict(optional_params))


def _usage(messages: list, text: str) -> tuple[str, int, int]:
    """The reply with its prompt and completion tokens (streamed or not: the same)."""
    prompt = "".join(str(m.get("content", "")) for m in messages)
    return text, rough_tokens(prompt), rough_tokens(text)
