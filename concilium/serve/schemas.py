"""The wire format: OpenAI's chat-completion shapes, the runs API, and the error object.

These models are the OpenAPI document, and the document is the contract that
schemathesis fuzzes; so every field a client may send is declared with its bounds,
and every error any endpoint returns has the one OpenAI shape
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_TASK_CHARS = 100_000


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """What every endpoint returns on an error (OpenAI's shape, whatever the endpoint)."""

    error: ErrorBody


# ---------------------------------------------------------------------------- /v1


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id...: ignored

    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``: ``model`` names a team; the last user message is the task.

    Fields a team cannot honour are declared so they can be refused with a clear 400
    rather than silently ignored; fields OpenAI added later are accepted and ignored.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, description="Every role of the team samples at "
                                      "this temperature (0 to 2).")
    max_tokens: int | None = Field(None, description="Lowers the team's token budget (the "
                                   "whole run's tokens); it can never raise it.")
    max_completion_tokens: int | None = Field(None, description="Same as max_tokens.")
    seed: int | None = Field(None, description="The run's base seed.")
    n: int | None = Field(None, description="Only 1: a run gives one answer.")
    top_p: float | None = None
    stop: str | list[str] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    concilium: dict[str, Any] | None = Field(
        None, description="Extension: {'reference': '...'} scores the run against a known "
        "answer.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class RunInfo(BaseModel):
    """The extension field on completions: strict clients ignore it."""

    run_id: str
    team: str
    strategy: str
    status: str
    answer: str | None = None
    answer_text: str = ""
    stop_reason: str | None = None
    error: str | None = None
    cost: float = 0.0
    llm_calls: int = 0
    tool_calls: int = 0
    rounds: int = 0
    wall_ms: float = 0.0
    correct: bool | None = None
    flips: dict[str, int] = Field(default_factory=dict)


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    concilium: RunInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "concilium"
    description: str = ""
    strategy: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---------------------------------------------------------------------------- /runs


class RunRequest(BaseModel):
    """``POST /runs``. The task is data: it cannot choose a team, a tool or a limit."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(max_length=128)
    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS)
    reference: str | None = Field(None, max_length=10_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    run_id: str | None = Field(None, pattern=RUN_ID, description="Default: a new id.")


class ResumeRequest(BaseModel):
    """``POST /runs/{id}/resume``: a person's answer to a paused run's question, and/or
    new budgets, to go on after a budget stop."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(
        None, max_length=MAX_TASK_CHARS,
        description="A person's reply to the run's first pending question (GET /runs/{id} "
        "lists them); read by the parser of the role the person plays.")
    interrupt_id: str | None = Field(
        None, max_length=64, description="Which pending question `answer` replies to "
        "(default: the first).")

    max_llm_calls: int | None = Field(None, ge=1, le=100_000)
    max_tokens: int | None = Field(None, ge=1, le=100_000_000)
    max_cost: float | None = Field(None, ge=0, le=1_000_000)
    timeout_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)


class RunStarted(BaseModel):
    run_id: str
    team: str
    status: Literal["running"] = "running"
    url: str
    events: str


class RunSummary(BaseModel):
    id: str
    team: str
    strategy: str = ""
    task: str = ""
    status: str
    stop_reason: str | None = None
    answer: str | None = None
    correct: bool | None = None
    llm_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    wall_ms: float = 0.0
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    live: bool = Field(False, description="Running in this server process right now.")


class PendingQuestion(BaseModel):
    """What a run paused for a person asks (``role: human``, or a node's ``interrupt:``)."""

    id: str = Field(description="The interrupt's id (``interrupt_id`` of a resume).")
    node: str = ""
    kind: str = Field("", description="The role kind the person plays, or `gate`.")
    type: str = Field("question", description="question, before or after (a node's gate).")
    question: str = ""
    hint: str = Field("", description="How to answer.")


class RunDetail(RunSummary):
    steps: list[dict[str, Any]] = Field(default_factory=list)
    pending: list[PendingQuestion] = Field(
        default_factory=list, description="A paused run's questions to a person; answer "
        "with POST /runs/{id}/resume {\"answer\": ...}.")


class TeamInfo(BaseModel):
    name: str
    description: str = ""
    strategy: str
    file: str
    spec: dict[str, Any] = Field(default_factory=dict)
    mermaid: str = ""
