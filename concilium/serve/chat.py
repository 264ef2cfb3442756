"""OpenAI-compatible ``/v1``: a team is a model.

``model`` names a team; the last user message is the task; ``usage`` is the whole
run's tokens; the run id, cost, calls and stop reason ride in a ``concilium``
extension field that strict clients ignore. ``stream: true`` sends OpenAI's chunks:
each role's text as its model generates it, token by token, as
``delta.reasoning_content`` (the field vLLM, DeepSeek and litellm use for text that
precedes the answer; the ``openai`` SDK keeps it in the delta's extra fields and chat
UIs show it as the model's thinking) with its node, role and round in ``concilium``;
each step of the run as it happens (an empty delta plus the step in ``concilium``);
then the answer as a content delta (the same content as without streaming), the
finish reason, ``usage`` when ``stream_options.include_usage`` asks for it, and
``data: [DONE]``. A streaming
client that disconnects cancels its run (the ledger says ``cancelled``;
``POST /runs/{id}/resume`` can finish it).

Request options map onto the team or are refused with a 400 naming the option:
``temperature`` -> every role the team file configures; ``max_tokens`` /
``max_completion_tokens`` -> the run's token budget, lowered only (a request never
raises a limit); ``seed`` -> the run's base seed. ``n > 1``, tools, ``stop``,
``logprobs``, a JSON ``response_format``, ``top_p`` and penalties are refused: a team
cannot honour them, and silently ignoring them would mislead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from concilium.agents.context import new_run_id
from concilium.secrets import redact, redact_obj
from concilium.serve.http import ApiError, sse
from concilium.serve.schemas import (
    MAX_TASK_CHARS,
    ChatCompletion,
    ChatRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
)
from concilium.serve.teams import options_team

__all__ = ["router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request or unsupported option"},
    404: {"model": ErrorResponse, "description": "No such team"},
    502: {"model": ErrorResponse, "description": "The team's model failed"},
}

router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)


def _card(request: Request, name: str) -> ModelCard:
    entry = request.app.state.registry.entry(name)
    spec = entry.team.spec
    return ModelCard(id=spec.name, created=entry.created, description=spec.description,
                     strategy=spec.strategy.name)


@router.get("/models", response_model=ModelList, summary="Every team, as a model.")
async def models(request: Request) -> ModelList:
    return ModelList(data=[_card(request, n) for n in request.app.state.registry.names()])


@router.get("/models/{model}", response_model=ModelCard, summary="One team, as a model.")
async def model(request: Request, model: str) -> ModelCard:
    team = _team(request, model, param=None)
    return _card(request, team.name)


@router.post("/chat/completions", response_model=ChatCompletion,
             summary="Run a team on the last user message.",
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "A completion, or chunks when stream is true"}})
async def chat_completions(request: Request, body: ChatRequest) -> Any:
    team = _team(request, body.model, param="model")
    task = task_of(body)
    options = _options(body)
    team = options_team(team, temperature=options["temperature"],
                        max_tokens=options["max_tokens"])
    reference = _reference(body)
    run_id = new_run_id()

    async def work(on_step: Any) -> Any:
        def on_delta(event: dict[str, Any]) -> None:
            on_step(event)  # the run manager keeps deltas with the run's events

        return await team.arun(task, reference=reference, seed=options["seed"],
                               run_id=run_id, on_step=on_step,
                               on_delta=on_delta if body.stream else None)

    run = request.app.state.runs.start(run_id, team, task, work)
    created = int(time.time())
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_while_connected(request, run,
                                                  _chunks(run, team.name, created, usage)),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    result = await _outcome(run)
    return completion(result, team.name, created)


async def _while_connected(request: Request, run: Any, chunks: AsyncIterator[str]
                           ) -> AsyncIterator[str]:
    """``chunks``; a client that goes away cancels the run it started (nobody will read
    its answer, and its model calls cost). Cancelled, the run stays resumable.

    The disconnect is watched, not only met at the next write: between two steps a slow
    model can keep the stream quiet for a minute."""
    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        _cancel(run)

    watcher = asyncio.ensure_future(watch())
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        watcher.cancel()
        _cancel(run)  # a no-op once the run ended; else the stream was cut short


def _cancel(run: Any) -> None:
    if not run.done and run.task_handle is not None:
        run.task_handle.cancel()


def _team(request: Request, name: str, *, param: str | None) -> Any:
    team = request.app.state.registry.get(name)
    if team is None:
        known = ", ".join(request.app.state.registry.names())
        raise ApiError(404, f"The model '{name}' does not exist: no team of that name "
                       f"(teams: {known})", "not_found_error", param=param,
                       code="model_not_found")
    return team


def task_of(body: ChatRequest) -> str:
    """The last user message's text: the run's task (data, never configuration)."""
    for message in reversed(body.messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.type != "text":
                    raise ApiError(400, f"messages: a team reads text only, not {part.type!r}"
                                   " parts", param="messages")
                texts.append(part.text or "")
            content = "\n".join(texts)
        if not content or not content.strip():
            raise ApiError(400, "messages: the last user message is empty; it is the "
                           "team's task", param="messages")
        if len(content) > MAX_TASK_CHARS:
            raise ApiError(400, f"messages: the task is {len(content)} characters; the limit "
                           f"is {MAX_TASK_CHARS}", param="messages")
        return content
    raise ApiError(400, "messages: no user message; the last user message is the team's task",
                   param="messages")


def _options(body: ChatRequest) -> dict[str, Any]:
    """The options a team honours, checked; any it cannot honour is a 400 naming it."""
    def refuse(param: str, why: str) -> ApiError:
        return ApiError(400, f"{param}: {why}", param=param, code="unsupported_option")

    if body.n not in (None, 1):
        raise refuse("n", "a team run gives one answer; only n=1 is supported")
    if body.temperature is not None and not 0.0 <= body.temperature <= 2.0:
        raise refuse("temperature", "must be between 0 and 2")
    limit = body.max_completion_tokens or body.max_tokens
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(body, name)
        if value is not None and value < 1:
            raise refuse(name, "must be at least 1")
    if body.seed is not None and not 0 <= body.seed < 2**31:
        raise refuse("seed", "must be between 0 and 2**31 - 1")
    if body.tools or body.functions or body.tool_choice not in (None, "none"):
        raise refuse("tools", "a team calls its own tools (set in its team file); a request "
                     "cannot give it tools")
    if body.stop:
        raise refuse("stop", "stop sequences are not supported: each role has its own")
    if body.logprobs:
        raise refuse("logprobs", "a team's answer has no log probabilities")
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise refuse("response_format", "only text: the team's answer format is set in its "
                     "team file (answer.format)")
    if body.top_p not in (None, 1, 1.0):
        raise refuse("top_p", "not supported; only 1 (set temperature instead)")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(body, name) not in (None, 0, 0.0):
            raise refuse(name, "not supported; only 0")
    return {"temperature": body.temperature, "max_tokens": limit, "seed": body.seed or 0}


def _reference(body: ChatRequest) -> str | None:
    reference = (body.concilium or {}).get("reference")
    if reference is not None and (not isinstance(reference, str | int | float)
                                  or len(str(reference)) > 10_000):
        raise ApiError(400, "concilium.reference: a string of at most 10000 characters",
                       param="concilium.reference")
    return None if reference is None else str(reference)


async def _outcome(run: Any) -> Any:
    """The run's result; a run whose model failed is a 502 naming the run."""
    from concilium import RunFailed

    try:
        return await asyncio.shield(run.task_handle)
    except RunFailed as failed:
        raise ApiError(502, f"run {run.run_id}: the team's model failed: {failed}",
                       "model_error", code="run_failed") from None
    except asyncio.CancelledError:
        if run.status == "cancelled":
            raise ApiError(409, f"run {run.run_id} was cancelled", code="run_cancelled"
                           ) from None
        raise
    except Exception as error:
        raise ApiError(500, f"run {run.run_id} failed: {type(error).__name__}: {error}",
                       "server_error", code="run_error") from None


def _content(result: Any) -> str:
    return result.answer if result.answer is not None else (result.answer_text or "")


def run_info(result: Any) -> dict[str, Any]:
    usage = result.usage
    return {"run_id": result.run_id, "team": result.team, "strategy": result.strategy,
            "status": result.status, "answer": result.answer,
            "answer_text": result.answer_text, "stop_reason": result.stop_reason,
            "error": redact(result.error or "") or None, "cost": usage.cost,
            "llm_calls": usage.llm_calls, "tool_calls": usage.tool_calls,
            "rounds": result.rounds, "wall_ms": result.wall_ms, "correct": result.correct,
            "flips": result.flips, "pending": redact_obj(list(result.pending))}


def _usage(result: Any) -> dict[str, int]:
    usage = result.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _finish(result: Any) -> str:
    """``length`` when a budget or the timeout cut the run short, else ``stop``."""
    return "length" if result.status == "stopped" else "stop"


def completion(result: Any, model: str, created: int) -> dict[str, Any]:
    return {"id": f"chatcmpl-{result.run_id}", "object": "chat.completion", "created": created,
            "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": _finish(result),
                         "message": {"role": "assistant", "content": _content(result)}}],
            "usage": _usage(result), "concilium": run_info(result)}


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    """A step event without its prompts (the ledger and ``GET /runs/{id}`` have them)."""
    step = {k: v for k, v in event["step"].items() if k != "messages"}
    return {"type": "step", "seq": event["seq"], "step": step}


async def _chunks(run: Any, model: str, created: int, include_usage: bool
                  ) -> AsyncIterator[str]:
    base = {"id": f"chatcmpl-{run.run_id}", "object": "chat.completion.chunk",
            "created": created, "model": model, "system_fingerprint": None}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}], **extra})

    yield chunk({"role": "assistant", "content": ""},
                concilium={"type": "run_start", "run_id": run.run_id, "team": model})
    async for event in run.follow(after=1):
        if event.get("type") == "step":
            yield chunk({}, concilium=_slim(event))
        elif event.get("type") == "delta":
            yield chunk({"reasoning_content": event.get("text", "")}, concilium={
                k: event.get(k) for k in ("type", "node", "role", "round", "sample",
                                          "restart")})
    try:
        result = await _outcome(run)
    except ApiError as error:
        yield sse({"error": {"message": redact(error.message), "type": error.type,
                             "param": None, "code": error.code}})
        yield "data: [DONE]\n\n"
        return
    yield chunk({"content": _content(result)})
    yield chunk({}, _finish(result), concilium={"type": "run_end", **run_info(result)})
    if include_usage:
        yield sse({**base, "choices": [], "usage": _usage(result)})
    yield "data: [DONE]\n\n"
