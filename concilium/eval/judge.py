"""Judge grading: a model (or a team) grades answers no regex can check.

Two modes, both following the J1 recipe (the judge thinks first, then ends with a
verdict line that is parsed, never trusted as free text):

- **pointwise**: the judge reads the task, the reference and the rubric when the
  dataset has them, and one team's answer, and says ``VERDICT: PASS`` or ``FAIL``;
- **pairwise**: the judge reads two teams' answers to one item and says ``A``, ``B`` or
  ``TIE``, **in both orders**. Judges prefer a position (small ones nearly always say
  "A"); a win counts only when both orders name the same team, otherwise it is a tie.

Each judgement is a run of the judge team (a model string becomes a one-call ``single``
team), so it is recorded in the ledger as steps of its own, bounded by the judge team's
limits, and appended to ``judgements.jsonl`` as soon as it is made: rerunning the same
evaluation resumes the judging where it stopped, as items resume.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError

__all__ = ["JUDGE_SYSTEM", "Judge", "judge_evaluation", "judge_markdown", "load_judge",
           "pairwise_prompt",
           "parse_pair", "parse_point", "pointwise_prompt"]

JUDGE_SYSTEM = "You are a strict and fair grader. Think before you decide."
JUDGEMENTS = "judgements.jsonl"

_PASS = ("pass", "correct", "yes", "good", "acceptable", "right", "accurate", "true")
_FAIL = ("fail", "incorrect", "no", "bad", "unacceptable", "wrong", "inaccurate", "false",
         "failed", "fails")
_WORD = "|".join(sorted(_PASS + _FAIL, key=len, reverse=True))
_VERDICT = re.compile(rf"verdict\W{{0,4}}({_WORD})\b", re.IGNORECASE)
_LOOSE = re.compile(rf"(?<![\w-])(not\s+|n't\s+)?({_WORD})\b", re.IGNORECASE)
_PAIR = re.compile(r"verdict\W{0,4}(?:answer\s+|response\s+)?(a|b|tie)\b", re.IGNORECASE)
_NAMED = re.compile(r"\b(?:answer|response)\s*\[?\(?([AB])\b\]?\)?\s+(?:is|was)\s+"
                    r"(?:better|more|the\s+best|correct|preferred)", re.IGNORECASE)


def _context(item: Any) -> str:
    lines = []
    reference = item.answers[0] if item.answers and str(item.answers[0]).strip() else None
    if reference:
        lines.append(f"Reference answer: {reference}")
    rubric = item.meta.get("rubric")
    if isinstance(rubric, list):
        rubric = "\n".join(f"- {r}" for r in rubric)
    if rubric:
        lines.append(f"Rubric:\n{rubric}")
    return "\n".join(lines)


def pointwise_prompt(item: Any, answer: str) -> str:
    """What the judge is asked about one answer (the reference and rubric when known)."""
    context = _context(item)
    against = " against the reference and the rubric" if context else ""
    return (f"Grade an answer to a task.\n\nTask: {item.question}\n"
            + (f"{context}\n" if context else "")
            + f"\nAnswer to grade:\n{answer.strip()}\n\n"
            f"First think step by step about whether the answer is correct and complete{against}."
            " Then end with one line: VERDICT: PASS or VERDICT: FAIL.")


def pairwise_prompt(item: Any, first: str, second: str) -> str:
    """What the judge is asked about two answers; ``first`` is shown as A."""
    context = _context(item)
    return (f"Compare two answers to a task.\n\nTask: {item.question}\n"
            + (f"{context}\n" if context else "")
            + f"\n[Answer A]\n{first.strip()}\n\n[Answer B]\n{second.strip()}\n\n"
            "First think step by step about which answer is more correct and complete. "
            "Then end with one line: VERDICT: A, VERDICT: B, or VERDICT: TIE.")


def _decided(found: list[str], text: str, pattern: re.Pattern[str]) -> str | None:
    """The verdict among ``found``: one value, or a last line that is a lone verdict.

    A small model often echoes the instruction ("VERDICT: A, VERDICT: B, or VERDICT:
    TIE"); several different verdicts then mean nothing unless the reply ends on one.
    """
    if len({v.lower() for v in found}) == 1:
        return found[-1]
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
    lone = pattern.fullmatch(last.strip(" *.#`"))
    return lone.group(1) if lone else None


def parse_point(text: str) -> bool | None:
    """PASS (``True``), FAIL (``False``) or unreadable (``None``) from a judge's reply.

    A ``VERDICT:`` line decides (see :func:`_decided` for echoed instructions); without
    one, the last verdict word of the reply, read with its negation ("not correct").
    Parroting the answer back, as the default tiny model mostly does, is unreadable.
    """
    found = _VERDICT.findall(text)
    if found:
        value = _decided(found, text, _VERDICT)
        return None if value is None else value.lower() in _PASS
    words = _LOOSE.findall(text[-300:])
    if not words:
        return None
    negated, word = words[-1]
    good = word.lower() in _PASS
    return (not good) if negated else good


def parse_pair(text: str) -> str | None:
    """``"A"``, ``"B"``, ``"TIE"`` or ``None`` (unreadable) from a pairwise reply."""
    found = _PAIR.findall(text)
    if found:
        value = _decided(found, text, _PAIR)
        return None if value is None else value.upper()
    named = _NAMED.findall(text)
    return named[-1].upper() if named else None


@dataclass
class Judge:
    """The judge team, how it was named on the command line, and what it has cost."""

    team: Any
    name: str
    cost: float = 0.0
    calls: int = 0
    models: set[str] | None = None

    async def ask(self, prompt: str) -> tuple[str, dict[str, Any]]:
        """The judge's reply to ``prompt`` and what the call cost (a ledger run of its own)."""
        result = await self.team.arun(prompt, lessons=[], durable=False)
        self.cost += result.usage.cost
        self.calls += result.usage.llm_calls
        models = sorted({s["model"] for s in result.steps if s.get("kind") == "llm"})
        self.models = (self.models or set()) | set(models)
        return result.answer_text or "", {"run_id": result.run_id, "cost": result.usage.cost,
                                          "tokens": result.usage.total_tokens, "models": models}


def load_judge(spec: str, *, max_tokens: int = 384) -> Judge:
    """A judge from a team file (``*.yaml``) or a model string (a one-call ``single`` team)."""
    from concilium.team import load_team

    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"--judge {spec}: no such team file")
        return Judge(load_team(path), name=spec)
    if "/" not in spec:
        raise ConfigError(f"--judge {spec!r}: give a team file (*.yaml) or a litellm model "
                          "string such as local/smollm2")
    team = load_team({
        "name": "judge", "strategy": "single", "answer": {"format": "text"},
        "limits": {"max_llm_calls": 1},
        "roles": {"generator": {"model": spec, "temperature": 0.0, "max_tokens": max_tokens,
                                "prompt": {"system": JUDGE_SYSTEM, "user": "{{ task }}"}}},
    })
    return Judge(team, name=spec)


def _answers(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Completed records by (team, item key)."""
    return {(r["team"], r["item"]): r for r in records
            if r.get("status") in ("ok", "stopped") and (r.get("answer_text") or "").strip()}


def _read(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of an interrupted pass
            done[row["key"]] = row
    return done


async def judge_evaluation(
    judge: Judge,
    items: Sequence[Any],
    records: Sequence[dict[str, Any]],
    teams: Sequence[str],
    out_dir: Path,
    *,
    concurrency: int = 1,
    on_judgement: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Judge every completed answer (pointwise) and every pair of teams (both orders).

    Judgements already in ``out_dir/judgements.jsonl`` under this judge are not asked
    again. Returns the judge section of the summary (see :func:`summarize`).
    """
    from concilium.secrets import redact
    from concilium.team import RunFailed

    failed: list[str] = []
    path = out_dir / JUDGEMENTS
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {k: v for k, v in _read(path).items() if v.get("judge") == judge.name}
    answers = _answers(records)
    jobs: list[tuple[str, dict[str, Any], str]] = []
    for item in items:
        for team in teams:
            record = answers.get((team, item.key))
            if record is not None:
                jobs.append((f"point|{team}|{item.key}", {"mode": "point", "team": team,
                             "item": item.key, "exact": record.get("correct")},
                             pointwise_prompt(item, record["answer_text"])))
        for a, b in combinations(teams, 2):
            ra, rb = answers.get((a, item.key)), answers.get((b, item.key))
            if ra is None or rb is None:
                continue
            for order, (first, second) in (("ab", (ra, rb)), ("ba", (rb, ra))):
                jobs.append((f"pair|{a}|{b}|{order}|{item.key}",
                             {"mode": "pair", "a": a, "b": b, "order": order, "item": item.key},
                             pairwise_prompt(item, first["answer_text"], second["answer_text"])))
    todo = [job for job in jobs if job[0] not in done]
    queue: asyncio.Queue[tuple[str, dict[str, Any], str]] = asyncio.Queue()
    for job in todo:
        queue.put_nowait(job)
    with path.open("a", encoding="utf-8") as handle:
        async def worker() -> None:
            while not queue.empty():
                key, meta, prompt = queue.get_nowait()
                try:
                    reply, usage = await judge.ask(prompt)
                except RunFailed as failure:  # the judge's model failed: left for a rerun
                    failed.append(f"{key}: {failure}")
                    continue
                parsed: Any = parse_point(reply) if meta["mode"] == "point" else parse_pair(reply)
                row = {"key": key, "judge": judge.name, **meta, "verdict": parsed,
                       "reply": redact(reply), **usage, "at": time.time()}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                done[key] = row
                if on_judgement is not None:
                    on_judgement(row)

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    summary = summarize(judge, list(done.values()), teams, total=len(jobs))
    summary["failed"] = failed
    return summary


def summarize(judge: Judge, rows: Sequence[dict[str, Any]], teams: Sequence[str], *,
              total: int) -> dict[str, Any]:
    """Pass rates per team, win rates per pair (both orders), order and exact-match agreement."""
    from concilium.eval.stats import wilson

    point = [r for r in rows if r["mode"] == "point"]
    per_team = []
    for team in teams:
        mine = [r for r in point if r["team"] == team]
        read = [r for r in mine if r["verdict"] is not None]
        passed = sum(1 for r in read if r["verdict"])
        per_team.append({"team": team, "judged": len(mine), "unparsed": len(mine) - len(read),
                         "passed": passed, "pass_rate": passed / len(read) if read else None,
                         "ci95": wilson(passed, len(read))})
    exact = [r for r in point if r["verdict"] is not None and r.get("exact") is not None]
    agree_exact = sum(1 for r in exact if bool(r["verdict"]) == bool(r["exact"]))
    orders: dict[tuple[str, str, str], dict[str, str | None]] = {}
    for r in rows:
        if r["mode"] == "pair":
            orders.setdefault((r["a"], r["b"], r["item"]), {})[r["order"]] = r["verdict"]
    pairs: dict[tuple[str, str], dict[str, int]] = {}
    both = agreed = 0
    for (a, b, _item), verdicts in orders.items():
        if "ab" not in verdicts or "ba" not in verdicts:
            continue
        tally = pairs.setdefault((a, b), {"a_wins": 0, "b_wins": 0, "ties": 0})
        # In order "ab" A is team a; in order "ba" A is team b: map both to a team name.
        first = {"A": a, "B": b}.get(verdicts["ab"] or "")
        second = {"A": b, "B": a}.get(verdicts["ba"] or "")
        both += 1
        if first is not None and first == second:
            agreed += 1
            tally["a_wins" if first == a else "b_wins"] += 1
        else:
            tally["ties"] += 1
    pair_rows = []
    for (a, b), tally in pairs.items():
        n = tally["a_wins"] + tally["b_wins"] + tally["ties"]
        pair_rows.append({"a": a, "b": b, "items": n, **tally,
                          "a_win_rate": tally["a_wins"] / n, "a_ci95": wilson(tally["a_wins"], n),
                          "b_win_rate": tally["b_wins"] / n, "b_ci95": wilson(tally["b_wins"], n)})
    return {
        "judge": judge.name,
        "models": sorted({m for r in rows for m in r.get("models", [])} | (judge.models or set())),
        "cost": sum(r.get("cost", 0.0) for r in rows), "judgements": len(rows),
        "expected": total, "complete": len(rows) >= total,
        "teams": per_team, "pairs": pair_rows,
        "order_agreement": {"agreed": agreed, "pairs": both,
                            "rate": agreed / both if both else None},
        "exact_agreement": {"agreed": agree_exact, "items": len(exact),
                            "rate": agree_exact / len(exact) if exact else None},
    }


def _rate(rate: float | None, ci: Sequence[float] | None) -> str:
    if rate is None:
        return "—"
    return f"{100 * rate:.0f}%" + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else "")


def _share(part: dict[str, Any], whole: str) -> str:
    if not part[whole]:
        return "—"
    return f"{part['agreed']}/{part[whole]} ({100 * part['rate']:.0f}%)"


def judge_markdown(summary: dict[str, Any]) -> str:
    """The judge section of a report: who judged, at what cost, and how far to trust it."""
    models = ", ".join(summary["models"]) or "—"
    lines = [f"## Judge: {summary['judge']} (model {models})", "",
             f"{summary['judgements']} judgements"
             + ("" if summary["complete"] else f" of {summary['expected']} (partial)")
             + f", cost ${summary['cost']:.4f}.", "",
             "| team | judged | passed | pass rate [95% CI] | unparsed |",
             "|---|---|---|---|---|"]
    for t in summary["teams"]:
        lines.append(f"| {t['team']} | {t['judged']} | {t['passed']} | "
                     f"{_rate(t['pass_rate'], t['ci95'])} | {t['unparsed']} |")
    if summary["pairs"]:
        lines += ["", "Pairwise, both orders (a win only when both orders agree, else a tie):",
                  "", "| A | B | items | A wins | B wins | ties | A win rate | B win rate |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in summary["pairs"]:
            lines.append(f"| {p['a']} | {p['b']} | {p['items']} | {p['a_wins']} | "
                         f"{p['b_wins']} | {p['ties']} | {_rate(p['a_win_rate'], p['a_ci95'])} | "
                         f"{_rate(p['b_win_rate'], p['b_ci95'])} |")
        lines += ["", f"The two orders agreed on {_share(summary['order_agreement'], 'pairs')} "
                  "pairs."]
    if summary.get("failed"):
        lines += ["", f"{len(summary['failed'])} judgements failed (the judge's model); "
                  "rerun the same command to retry them."]
    lines += ["", "Judge and exact match agreed on "
              f"{_share(summary['exact_agreement'], 'items')} answers."]
    return "\n".join(lines) + "\n"
