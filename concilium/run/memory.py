"""What one run does with memory: recall at its start, the ledger as it goes, a lesson at its end.

:func:`concilium.run.execute.execute` (and a compiled team graph run without it,
see :mod:`concilium.run.graph`) calls :func:`open_run_memory` before the graph
runs, then :meth:`RunMemory.reflect` and :meth:`RunMemory.finish` after it: the
result goes up to the caller, which rebuilds it when the reflector added a step;
memory never rebuilds it. This is the layer *above* memory and the roles: the
reflector's call for a run's lesson is made here, so ``concilium/memory/`` only
stores and recalls, and never calls a model.

The run-end lesson follows the team's ``memory:`` section:

- ``remember: never | on_failure | always`` (default: ``on_failure`` when the
  team has a reflector role or uses the ``reflexion`` strategy, else ``never``);
- only after a run whose outcome is known: the reference answer
  (``ground_truth``), else the last verdict of a tool verifier (``tool``) or of
  an LLM verifier (``llm``, stored but not recalled by default);
- a strategy that reflects on its own (``reflexion``, after each failed trial)
  has each reflection stored the moment its step happens, checked by whatever
  rejected that trial; otherwise one reflector call at the end writes the
  lesson. The reflector sees the task, the attempt and whether it was right,
  never the reference answer, so a recalled lesson cannot leak an answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from concilium.errors import BudgetExceeded, ModelError
from concilium.spec import namespace_of

if TYPE_CHECKING:
    from concilium.agents.context import RunContext
    from concilium.memory.backend import MemoryBackend as Memory
    from concilium.memory.behaviors import RecalledBehavior
    from concilium.memory.ledger import RunRecorder
    from concilium.memory.store import Lesson
    from concilium.records import RunResult, Step
    from concilium.spec import TeamSpec

__all__ = ["RunMemory", "namespace_of", "open_run_memory", "outcome_of", "remember_policy"]

log = logging.getLogger(__name__)

MAX_LESSON_CHARS = 600


def remember_policy(spec: TeamSpec) -> str:
    """``never``, ``on_failure`` or ``always`` (see the module doc for the default)."""
    if spec.memory.remember is not None:
        return spec.memory.remember
    kinds = {spec.kind_of(key) for key in spec.roles}
    reflective = "reflector" in kinds or spec.strategy.name == "reflexion"
    return "on_failure" if reflective else "never"


def outcome_of(state: dict[str, Any], correct: bool | None) -> tuple[str, str] | None:
    """``(success|failure, verified_by)`` of a finished run, or ``None`` when unknown."""
    if correct is not None:
        return ("success" if correct else "failure"), "ground_truth"
    verdict = state.get("verdict")
    if isinstance(verdict, dict) and verdict.get("checked", True) and "accepted" in verdict:
        return ("success" if verdict["accepted"] else "failure"), checker_of(verdict)
    return None


def checker_of(verdict: dict[str, Any]) -> str:
    """``verified_by`` of a verdict: the reference is ground truth, an LLM an LLM, else a tool."""
    by = str(verdict.get("checked_by") or "llm")
    return {"llm": "llm", "reference": "ground_truth"}.get(by, "tool")


@dataclass
class RunMemory:
    """One run's link to memory: what it recalled, and its ledger recorder."""

    memory: Memory
    spec: TeamSpec
    namespace: str
    recalled: list[Lesson] = field(default_factory=list)
    behaviors: list[RecalledBehavior] = field(default_factory=list)
    """Behaviors recalled for this run (issue 13; ``memory/behaviors.py``)."""
    recorder: RunRecorder | None = None
    stored: list[int] = field(default_factory=list)
    """Ids of the lessons this run stored."""
    task: str = ""
    run_id: str = ""
    _verdict: dict[str, Any] | None = None
    _pending: list[asyncio.Future[None]] = field(default_factory=list)
    _trial_lessons: int = 0
    _closing: bool = False

    @property
    def lessons(self) -> list[str]:
        return [lesson.lesson for lesson in self.recalled]

    def step(self, step: Step) -> None:
        """Record a step; a strategy's own reflection (Reflexion) is stored right away."""
        if self.recorder is not None:
            self.recorder.step(step)
        role = step.get("role")
        if role == "verifier" and isinstance(step.get("parsed"), dict):
            self._verdict = step["parsed"]
        elif role == "reflector" and not self._closing and remember_policy(self.spec) != "never":
            text = lesson_text(step)
            verdict = self._verdict or {}
            if text and not verdict.get("accepted", False) and verdict.get("checked", True):
                self._trial_lessons += 1
                args = (text, "failure", checker_of(verdict), step.get("model"),
                        str(step.get("id") or ""))
                try:  # stored off the event loop, while the run goes on
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # a step published outside a running graph
                    self._store_safely(*args)
                else:
                    self._pending.append(loop.run_in_executor(None, self._store_safely, *args))

    def _store_safely(self, *args: Any) -> None:
        """:meth:`_store`, logging instead of failing the run if the database refuses."""
        try:
            self._store(*args)
        except Exception:
            log.exception("could not store a reflection of run %s", self.run_id)

    def _store(self, text: str, outcome: str, verified_by: str | None, model: str | None,
               uid: str) -> None:
        lesson_id = self.memory.remember(
            text, task=self.task, namespace=self.namespace, outcome=outcome,  # type: ignore[arg-type]
            verified_by=verified_by, run_id=self.run_id, team=self.spec.name, model=model,
            uid=uid or None,
        )
        self.stored.append(lesson_id)
        if self.recorder is not None:
            self.recorder.event({"type": "lesson", "id": lesson_id, "lesson": text,
                                 "outcome": outcome, "verified_by": verified_by})

    async def reflect(self, ctx: RunContext, task: str, state: dict[str, Any],
                      result: RunResult) -> bool:
        """Write the run's lesson (per the team's policy); ``True`` if the reflector was
        called for it, so its step is one more in the run (the caller rebuilds the result).
        """
        self._closing = True  # from here on, a reflector step is the run-end lesson's own
        if self._pending:
            await asyncio.gather(*self._pending)
        return await self._remember(ctx, task, state, result)

    async def finish(self, ctx: RunContext, result: RunResult) -> RunResult:
        """Count the recalls and finish the ledger row; ``result`` with the lessons stored."""
        # issue 13: what reached a prompt is what was used (the view saw every prompt)
        view = ctx.memory_view
        if view is not None:
            ids, behaviors = sorted(view.used_lessons), sorted(view.used_behaviors)
        else:
            ids, behaviors = [lesson.id for lesson in self.recalled], []
        result.remembered = list(self.stored)
        use = {"behaviors": behaviors, "team": self.spec.name, "namespace": self.namespace,
               "review": self.spec.memory.quarantine}
        if self.recorder is not None:  # queued: the run does not wait for the database
            if ids or behaviors:
                self.recorder.used(ids, result.correct, **use)
            self.recorder.finish(result)
        elif ids or behaviors:
            await asyncio.to_thread(lambda: self.memory.record_use(
                ids, result.correct, run_id=self.run_id, **use))
        return result

    def restore(self, steps: Sequence[Step]) -> None:
        """A resumed run: write its checkpointed steps the ledger may have missed at the crash.

        Steps have stable ids and the ledger stores each id once, so re-sending is safe.
        """
        if self.recorder is not None:
            for step in steps:
                self.recorder.step(step)

    def crashed(self, error: BaseException) -> None:
        """The run raised something unexpected: mark its ledger row failed and flush."""
        if self.recorder is not None:
            self.recorder.fail(error)
            self.recorder.flush(10.0)

    async def _remember(
        self, ctx: RunContext, task: str, state: dict[str, Any], result: RunResult
    ) -> bool:
        """Store the run's lesson(s); ``True`` if a reflector call was made for it."""
        policy = remember_policy(self.spec)
        known = outcome_of(state, result.correct)
        if policy == "never" or known is None:
            return False
        outcome, verified_by = known
        if self._trial_lessons:  # the strategy reflected after each failed trial: enough
            return False
        if policy != "always" and outcome != "failure":
            return False
        lesson, model = await self._reflect(ctx, task, state, outcome, verified_by)
        if lesson:
            await asyncio.to_thread(self._store, lesson, outcome, verified_by, model, "")
        return model is not None

    async def _reflect(
        self, ctx: RunContext, task: str, state: dict[str, Any], outcome: str, verified_by: str
    ) -> tuple[str, str | None]:
        """One reflector call for the run's lesson; ``("", None)`` if it cannot be made."""
        from concilium.agents.roles.reflector import reflect
        from concilium.agents.roles.results import Answer, Verdict

        spec = self.spec.role("reflector", like="generator")
        if outcome == "success" and spec.prompt is None:
            spec = spec.model_copy(update={"prompt": _success_prompt()})
        answer = Answer(**(state.get("answer") or {"text": "(no solution)"}))
        verdict = _verdict_of(state, outcome, verified_by)
        try:
            found, _step = await reflect(ctx, "reflector", spec, task, answer,
                                         Verdict(**verdict), round=result_round(state))
        except (BudgetExceeded, ModelError) as error:
            log.warning("no lesson stored for run %s: the reflector call failed: %s",
                        ctx.run_id, error)
            return "", None
        if outcome == "success" and not found.parsed:
            return "", ctx.model_for(spec)  # its fallback text speaks of a failure
        return parse_lesson(found.text), ctx.model_for(spec)


def _verdict_of(state: dict[str, Any], outcome: str, verified_by: str) -> dict[str, Any]:
    """The verdict the reflector is shown: the run's own, else the outcome's (no reference!)."""
    verdict = state.get("verdict")
    if isinstance(verdict, dict) and bool(verdict.get("accepted")) == (outcome == "success"):
        return verdict
    how = {"ground_truth": "the known right answer", "tool": "a tool check",
           "llm": "a verifier model"}.get(verified_by, "a check")
    if outcome == "success":
        return {"accepted": True, "reason": f"checked against {how}"}
    return {"accepted": False, "reason": f"it does not match {how}",
            "feedback": f"the final answer is wrong (checked against {how})"}


def _success_prompt() -> Any:
    from concilium.agents.prompts import packaged
    from concilium.spec import PromptSpec

    return PromptSpec(**packaged("reflector_success"))


def result_round(state: dict[str, Any]) -> int:
    return int(state.get("round", 0) or 0)


_LESSON = re.compile(r"(?:^|\n)\s*\**\s*(?:lesson|reflection)\s*\**\s*[:\-]\s*(.+)", re.I | re.S)


def parse_lesson(text: str) -> str:
    """The lesson in a reflector's reply: after ``Lesson:`` if present, else the whole reply.

    Never raises; a tiny model's rambling is cut to a few hundred characters.
    """
    match = _LESSON.search(text)
    body = match.group(1) if match else text
    body = " ".join(body.split())
    if len(body) > MAX_LESSON_CHARS:
        cut = body[:MAX_LESSON_CHARS]
        body = cut[: cut.rfind(". ") + 1] if ". " in cut else cut
    return body.strip()


def lesson_text(step: Step | dict[str, Any]) -> str:
    """The lesson a reflector step carries (its parsed result, else its output)."""
    parsed = step.get("parsed") or {}
    for key in ("lesson", "reflection", "text"):
        value = parsed.get(key) if isinstance(parsed, dict) else None
        if isinstance(value, str) and value.strip():
            return parse_lesson(value)
    return parse_lesson(str(step.get("output") or ""))


_hashes: dict[int, tuple[TeamSpec, str]] = {}


def _content_hash(spec: TeamSpec) -> str:
    """``spec.content_hash()``, once per spec object (a spec is immutable)."""
    known = _hashes.get(id(spec))
    if known is None or known[0] is not spec:
        if len(_hashes) > 256:
            _hashes.clear()
        known = _hashes[id(spec)] = (spec, spec.content_hash())
    return known[1]


async def open_run_memory(
    spec: TeamSpec,
    ctx: RunContext,
    task: str,
    *,
    lessons: list[str] | None,
    memory: Memory | bool | None,
    record: bool | None,
    resume: bool = False,
    behaviors: list[dict[str, Any]] | None = None,
) -> RunMemory | None:
    """Open memory for a run: recall lessons (unless given), start its ledger row.

    Args:
        memory: a :class:`Memory`; ``None``/``True`` for the default from settings;
            ``False`` for none at all (no ledger, recall or lessons).
        record: write the run to the ledger; ``None`` follows ``CONCILIUM_RECORD``.
        resume: the run is being resumed: no recall (its lessons are in its
            checkpoint), and its existing ledger row is reopened.
        behaviors: a resumed run's behaviors, from its checkpoint (``to_json`` dicts).
    """
    if memory is False:
        return None
    from concilium.settings import get_settings

    if record is None:
        record = get_settings().record
    wants_recall = lessons is None and spec.memory.recall_k > 0 and not resume
    wants_behaviors = spec.memory.behaviors_k > 0 and not resume and behaviors is None
    if not (record or wants_recall or wants_behaviors or remember_policy(spec) != "never"):
        return None
    namespace = namespace_of(spec)
    chosen = memory

    def open_and_recall() -> tuple[Memory, list[Lesson]]:
        """Both in one trip off the event loop (each trip is a thread hand-off)."""
        if chosen is None or chosen is True:
            from concilium.memory.store import Memory

            opened = Memory.open()
        else:
            opened = chosen
        if not wants_recall:
            return opened, []
        return opened, opened.recall(task, namespace=namespace, k=spec.memory.recall_k,
                                     verified_only=spec.memory.verified_only)

    if chosen is None or chosen is True:
        from concilium.memory.store import Memory

        cached = Memory.open(cached_only=True)  # a dict lookup: the process opened it before
    else:
        cached = chosen
    if cached is not None and (not wants_recall or cached.surely_empty(namespace)):
        memory, recalled = cached, []
    else:
        memory, recalled = await asyncio.to_thread(open_and_recall)
    run = RunMemory(memory=memory, spec=spec, namespace=namespace, task=task,
                    run_id=ctx.run_id, recalled=recalled)
    from concilium.memory.behaviors import MemoryView, RecalledBehavior, recall_behaviors

    if behaviors is not None:
        run.behaviors = [RecalledBehavior.from_json(b) for b in behaviors]
    elif wants_behaviors:
        run.behaviors = await asyncio.to_thread(
            recall_behaviors, memory, task, namespace=namespace, k=spec.memory.behaviors_k)
    given = ([(None, text) for text in lessons] if lessons is not None
             else [(lesson.id, lesson.lesson) for lesson in run.recalled])
    ctx.memory_view = MemoryView(lessons=given, behaviors=run.behaviors,
                                 lessons_for=spec.memory.lessons_for,
                                 behaviors_for=tuple(spec.memory.behaviors_for))
    if record and resume:  # the run's row exists (unless it died before it was written)
        run.recorder = await asyncio.to_thread(memory.ledger.reopen, ctx.run_id)
    if record and run.recorder is None:  # (the ledger writer redacts secrets, off the event loop)
        run.recorder = memory.ledger.start(
            run_id=ctx.run_id, team=spec.name, team_hash=_content_hash(spec),
            strategy=spec.strategy.name, task=task, reference=ctx.reference,
            namespace=namespace, recalled=[lesson.id for lesson in run.recalled],
        )
    if ctx.cache is None:
        ctx.cache = memory.cache
    return run
