"""Team files: YAML -> :class:`TeamSpec` (pydantic) -> :class:`~concilium.team.Team`.

Loading is layered like Pydantic AI's agent specs: file -> text -> dict -> model,
and every failure becomes one :class:`TeamFileError` line naming the file, the
line and the field, with the valid choices where there are any. YAML is read
with the safe loader only (``!!python/...`` tags never construct anything).

Example:
    >>> spec = load_spec("examples/teams/gvr.yaml")
    >>> spec.strategy.name
    'gvr'
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from concilium.errors import TeamFileError

__all__ = [
    "AnswerSpec",
    "FallbackSpec",
    "KindSpec",
    "LimitsSpec",
    "McpServerSpec",
    "MemorySpec",
    "PromptSpec",
    "RetrySpec",
    "RoleSpec",
    "StrategySpec",
    "TeamSpec",
    "locate",
    "namespace_of",
    "parse_dict",
    "parse_file",
    "parse_text",
]

SCHEMA_URL = "https://concilium.dev/schema/team.json"
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 100_000

OUTPUTS: tuple[str, ...] = ("text", "answer", "verdict", "critique")
"""What a team-declared kind's reply is read as."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptSpec(_Strict):
    """Jinja2 templates that replace a role's packaged prompt (undefined names fail)."""

    system: str | None = Field(None, description="System message template.")
    user: str | None = Field(None, description="User message template.")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KEY_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})


def _check_api_base(url: str | None) -> str | None:
    """A server URL, refused when it carries a password: keys belong in the environment."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError("not a URL; expected e.g. http://127.0.0.1:8000/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ValueError("not an http(s) URL; expected e.g. http://127.0.0.1:8000/v1")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL; put the key in an environment variable "
                         "and name it in api_key_env")
    return url


def _check_key_env(name: str | None) -> str | None:
    # The message never repeats the value: it may be the key itself, pasted by mistake.
    if name is not None and not _ENV_NAME.match(name):
        raise ValueError("not an environment variable name; api_key_env is the NAME of the "
                         "variable that holds the key (e.g. VLLM_API_KEY), never the key")
    return name


def _check_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    for name in headers or {}:
        if name.lower() in _KEY_HEADERS:
            raise ValueError(f"header {name!r} carries a key, and keys do not belong in a team "
                             "file; name the variable that holds it in api_key_env")
    return headers


ApiBase = Annotated[str | None, AfterValidator(_check_api_base), Field(
    description="URL of the server (vLLM, Ollama, llama.cpp, LM Studio, a LiteLLM proxy), "
    "e.g. http://gpu-box:8000/v1; default: the provider's usual one.",
)]
ApiKeyEnv = Annotated[str | None, AfterValidator(_check_key_env), Field(
    description="NAME of the environment variable that holds the API key (never the key "
    "itself). An api_base without one gets no real key, not the provider's usual variable.",
)]
ExtraHeaders = Annotated[dict[str, str] | None, AfterValidator(_check_headers), Field(
    description="HTTP headers sent with each call (not for keys: use api_key_env).",
)]


class FallbackSpec(_Strict):
    """A fallback on its own server: ``{model, api_base, api_key_env, extra_headers}``.

    Unlike a fallback written as a model string (which goes where its role's model
    goes), it takes nothing from its role: an unset ``api_base`` is the provider's own.
    """

    model: str = Field(description="litellm model string.")
    api_base: ApiBase = None
    api_key_env: ApiKeyEnv = None
    extra_headers: ExtraHeaders = None


class RoleSpec(_Strict):
    """One role instance: which kind it is, which model it calls, where and how."""

    role: str | None = Field(None, description="Role kind; defaults to the key in `roles`.")
    description: str | None = None
    model: str | None = Field(None, description="litellm model string; default: the team's.")
    fallbacks: list[str | FallbackSpec] = Field(
        default_factory=list,
        description="Models tried in order if it fails. A model string is called where this "
        "role's model is (same api_base, key and headers); {model, api_base, api_key_env, "
        "extra_headers} names its own server.",
    )
    api_base: ApiBase = None
    api_key_env: ApiKeyEnv = None
    extra_headers: ExtraHeaders = None
    timeout_s: float | None = Field(
        None, gt=0.0, description="Timeout of one call of this role; default: retry.timeout_s.",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, gt=0, le=32_768)
    prompt: PromptSpec | None = None
    tools: list[str] = Field(
        default_factory=list,
        description="Tools the model may call: built-ins (calculator, python, answer_check, "
        "memory_search), a Python import path (package.module:function, or a LangChain "
        "BaseTool), mcp:<server> or mcp:<server>/<tool> (servers under the team's `mcp:`).",
    )
    tool_protocol: Literal["auto", "native", "prompt"] = Field(
        "auto",
        description="How tools are offered: native function calling (tools= in the request), "
        "a prompt with <tool_call> markers (for models without it, e.g. the local default), "
        "or auto: native where litellm says the model supports it.",
    )
    check: Literal["llm", "calculator", "tests", "reference"] | None = Field(
        None,
        description="Verifier only: judge with the model (llm) or a tool: calculator, tests "
        "(run the code answer with the task's tests in the sandbox), reference (compare "
        "with the known answer).",
    )
    program_aided: Literal["expression", "python"] | None = Field(
        None,
        description="Generator, debater or refiner only: the model writes an arithmetic "
        "expression (run by the calculator) or a Python program (run in the sandbox) and "
        "what it prints becomes the answer.",
    )
    plays: str | None = Field(
        None,
        description="Human only: the kind whose part the person plays (its prompt is put "
        "to them, their reply read as its result); default: the role's key.",
    )
    interrupt: Literal["before", "after"] | None = Field(
        None,
        description="Pause the run for a person before or after this role's node: they "
        "approve (empty reply), stop the run ('stop'), or, after a node that wrote an "
        "answer, type a corrected answer.",
    )
    team: TeamSpec | str | None = Field(
        None,
        description="Custom graph only: this node is another team file (a path relative "
        "to this file), run as a subgraph; its steps and usage count as this run's.",
    )

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _fallback_entries(cls, entries: Any) -> Any:
        """Each entry read as what it is, so an error names the entry, not a union branch."""
        if not isinstance(entries, list):
            return entries
        read: list[Any] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, str | FallbackSpec):
                read.append(entry)
            elif isinstance(entry, dict):
                try:
                    read.append(FallbackSpec.model_validate(entry))
                except ValidationError as error:
                    errors = error.errors(include_url=False)
                    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
                    where = ".".join(str(p) for p in first["loc"])
                    message = first["msg"].removeprefix("Value error, ")
                    if first["type"] == "extra_forbidden":
                        where, message = "", f"unknown field {where!r}; valid fields: " + \
                            ", ".join(FallbackSpec.model_fields)
                    raise ValueError(f"entry {i}: {where + ': ' if where else ''}{message}") \
                        from None
            else:
                raise ValueError(f"entry {i}: a model string or a mapping "
                                 "{model, api_base, api_key_env, extra_headers}")
        return read

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        from concilium.tools.registry import check_reference

        for name in tools:
            problem = check_reference(name)
            if problem is not None:
                raise ValueError(problem)
        return tools


class AnswerSpec(_Strict):
    """What a final answer looks like and how it is pulled out of the text."""

    format: Literal["number", "choice", "text", "code"] = "number"
    pattern: str | None = Field(
        None, description="Regex whose first group is the answer; tried before the defaults."
    )
    tolerance: float = Field(1e-6, ge=0.0, description="Relative tolerance for numbers.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return pattern


class LimitsSpec(_Strict):
    """Hard limits of one run. Every loop stops at ``max_rounds``; budgets stop the run."""

    max_rounds: int = Field(3, ge=0, le=100, description="Revision rounds of any loop.")
    max_llm_calls: int = Field(50, ge=1, le=10_000)
    max_tokens: int | None = Field(None, ge=1, description="Token budget of the whole run.")
    max_cost: float | None = Field(None, ge=0.0, description="Cost budget in USD.")
    timeout_s: float = Field(900.0, gt=0.0, description="Wall-clock limit of the whole run.")
    max_tool_calls: int = Field(
        20, ge=0, le=10_000, description="Tool calls the models of the run may make in all; "
        "one more stops the run (budget).",
    )


class McpServerSpec(_Strict):
    """An MCP server whose tools roles may use: a command (stdio) or a URL (Streamable HTTP)."""

    command: str | list[str] | None = Field(
        None, description="Program and arguments of a stdio server, e.g. [python, server.py] "
        "(a string is split as a shell would); it starts with a minimal environment (PATH, "
        "HOME, ...) plus `env`.",
    )
    args: list[str] = Field(default_factory=list, description="More arguments of `command`.")
    env: dict[str, str] | None = Field(None, description="Environment of a stdio server.")
    cwd: str | None = Field(None, description="Working directory of a stdio server.")
    url: ApiBase = Field(None, description="URL of a Streamable HTTP server, e.g. "
                         "http://127.0.0.1:8000/mcp.")
    headers: ExtraHeaders = None
    api_key_env: ApiKeyEnv = None
    timeout_s: float = Field(60.0, gt=0.0, description="Limit of one tool call.")
    connect_timeout_s: float = Field(30.0, gt=0.0, description="Limit of start and handshake.")
    quiet: bool = Field(False, description="Drop a stdio server's stderr instead of showing it.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (a stdio server) or `url` (an HTTP one)")
        if self.command is not None and not self.command:
            raise ValueError("`command` is empty")
        return self


class RetrySpec(_Strict):
    """Retries of one model call (transient faults only) and its timeout."""

    attempts: int = Field(3, ge=1, le=20)
    initial_backoff_s: float = Field(0.5, ge=0.0)
    max_backoff_s: float = Field(8.0, ge=0.0)
    timeout_s: float = Field(120.0, gt=0.0)


class KindSpec(_Strict):
    """A role kind declared in the team file: a prompt and what its reply is read as."""

    description: str = ""
    prompt: PromptSpec = Field(description="The kind's templates (its roles may override).")
    output: Literal["text", "answer", "verdict", "critique"] = Field(
        "text",
        description="text: kept as written; answer: a solution whose final answer is "
        "extracted; verdict: accept/reject with a reason; critique: a list of issues.",
    )


class StrategySpec(BaseModel):
    """``strategy: gvr`` or ``strategy: {name: gvr, <options>}``; options belong to the strategy."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MemorySpec(_Strict):
    """What a team recalls from, and writes to, the reflection memory across runs."""

    namespace: str | None = Field(
        None, min_length=1, max_length=128,
        description="Where lessons are kept and recalled; default: the team's name. "
        "Teams that name the same namespace share their lessons.",
    )
    recall_k: int = Field(
        3, ge=0, le=20, description="Lessons recalled into the prompts at run start; 0: none."
    )
    remember: Literal["never", "on_failure", "always"] | None = Field(
        None,
        description="When the reflector writes a lesson after a run with a known outcome; "
        "default: on_failure if the team has a reflector role, else never.",
    )
    verified_only: bool = Field(
        True, description="Recall only lessons from runs whose outcome was checked "
        "(ground truth or a tool), not an LLM's opinion or nobody's.",
    )
    # -- issue 13: which roles read memory, behaviors, quarantine (memory/behaviors.py) --
    lessons_for: list[str] | None = Field(
        None, description="Role kinds or role names whose prompts get the recalled lessons; "
        "default: the roles each strategy hands them to (generator, refiner, debaters, ...).",
    )
    behaviors_k: int = Field(
        0, ge=0, le=20, description="Behaviors (distilled procedures) recalled into the "
        "prompts at run start; 0: none.",
    )
    behaviors_for: list[str] = Field(
        default_factory=lambda: ["generator", "refiner", "debater", "critic"],
        description="Role kinds or role names whose prompts get the recalled behaviors.",
    )
    quarantine: bool = Field(
        True, description="Quarantine a lesson or behavior automatically once runs that use "
        "it are reliably less often right than comparable runs that do not.",
    )


class TeamSpec(_Strict):
    """A whole team file. ``api_base``, ``api_key_env`` and ``extra_headers`` here are every
    role's defaults; a role that sets its own ``api_base`` takes none of them (a key never
    follows a role to a server it was not named for)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    strategy: StrategySpec
    model: str | None = Field(None, description="Default model of every role.")
    api_base: ApiBase = None
    api_key_env: ApiKeyEnv = None
    extra_headers: ExtraHeaders = None
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    answer: AnswerSpec = AnswerSpec()
    limits: LimitsSpec = LimitsSpec()
    retry: RetrySpec = RetrySpec()
    memory: MemorySpec = MemorySpec()
    mcp: dict[str, McpServerSpec] = Field(
        default_factory=dict, description="MCP servers by name; a role's tools name them as "
        "mcp:<name> (all their tools) or mcp:<name>/<tool>.",
    )
    kinds: dict[str, KindSpec] = Field(
        default_factory=dict,
        description="Role kinds of this team's own (custom graphs): a prompt and a declared "
        "output, no Python.",
    )

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _key_values_are_secrets(self) -> TeamSpec:
        """The variables this team names hold keys: mask their values like any ``*_KEY``."""
        from concilium.secrets import mark_secret_names

        mark_secret_names(name for _, _, name in self.key_envs())
        return self

    def key_envs(self) -> list[tuple[tuple[str | int, ...], str, str]]:
        """``(field, whose, variable)`` for every ``api_key_env`` of the team, its roles and
        their fallbacks; ``whose`` says whose key it is (``"role judge"``)."""
        found: list[tuple[tuple[str | int, ...], str, str]] = []
        if self.api_key_env:
            found.append((("api_key_env",), "the team", self.api_key_env))
        for key, role in self.roles.items():
            if role.api_key_env:
                found.append((("roles", key, "api_key_env"), f"role {key}", role.api_key_env))
            for i, fallback in enumerate(role.fallbacks):
                if isinstance(fallback, FallbackSpec) and fallback.api_key_env:
                    found.append((("roles", key, "fallbacks", i, "api_key_env"),
                                  f"role {key}'s fallback {fallback.model}",
                                  fallback.api_key_env))
        for name, server in self.mcp.items():
            if server.api_key_env:
                found.append((("mcp", name, "api_key_env"), f"MCP server {name}",
                              server.api_key_env))
        return found

    def kind_of(self, key: str) -> str:
        """The kind whose work role ``key`` does: a person's is the kind they play, a team
        node's is ``team``."""
        role = self.roles[key]
        if role.team is not None:
            return "team"
        kind = role.role or key
        return (role.plays or key) if kind == "human" else kind

    def is_human(self, key: str) -> bool:
        """Whether role ``key`` is played by a person."""
        return (self.roles[key].role or key) == "human"

    def role(self, key: str, *, like: str | None = None) -> RoleSpec:
        """The spec of role ``key``; if the team has none, a copy of ``like``'s (or defaults)."""
        if key in self.roles:
            return self.roles[key]
        if like is not None and like in self.roles:
            base = self.roles[like]
            return base.model_copy(update={"role": key, "prompt": None})
        return RoleSpec(role=key)

    def content_hash(self) -> str:
        """Stable hash of what the team does (used to match runs and evaluations)."""
        # Defaults are left out so that adding a field with a default to TeamSpec does not
        # change every team's hash (evaluations resume by it).
        blob = json.dumps(self.model_dump(mode="json", exclude_defaults=True),
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_model(self, model: str) -> TeamSpec:
        """A copy where every role calls ``model`` (the ``--model`` override).

        The file's servers, keys and headers were chosen for the file's models, so they
        are dropped: ``model`` is called where litellm sends it by default.
        """
        unrouted = {"api_base": None, "api_key_env": None, "extra_headers": None}
        roles = {k: r.model_copy(update={
                     "model": model, **unrouted,
                     **({"team": r.team.with_model(model)} if isinstance(r.team, TeamSpec)
                        else {})})
                 for k, r in self.roles.items()}
        return self.model_copy(update={"model": model, "roles": roles, **unrouted})


RoleSpec.model_rebuild()  # ``team:`` holds a TeamSpec


def namespace_of(spec: TeamSpec) -> str:
    """The team's memory namespace: its ``memory.namespace``, else its name."""
    return spec.memory.namespace or spec.name


# ---------------------------------------------------------------------------- loading


Check = Callable[[TeamSpec], "tuple[tuple[Any, ...], str] | None"]
"""A check of a valid spec against what only a higher layer knows (its strategy, the role
kinds): the first problem as ``(loc, message)``, else ``None``. The loader
(:mod:`concilium.loader`) passes one; this module never looks above itself."""
Prepare = Callable[[dict[str, Any], str], dict[str, Any]]
"""What the loader does to a team's data before it is validated (it reads the team
files a role's ``team:`` names, :func:`concilium.loader.inline_teams`)."""


def parse_file(path: str | Path, *, check: Check | None = None,
               prepare: Prepare | None = None) -> TeamSpec:
    """Read and validate a team file; every problem raises :class:`TeamFileError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise TeamFileError(str(path), "no such file") from None
    except OSError as error:
        raise TeamFileError(str(path), f"cannot read: {error.strerror}") from None
    if path.is_dir():
        raise TeamFileError(str(path), "is a directory, not a team file")
    if size > MAX_FILE_BYTES:
        raise TeamFileError(str(path), f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TeamFileError(str(path), "not UTF-8 text") from None
    return parse_text(text, source=str(path), check=check, prepare=prepare)


def parse_text(text: str, *, source: str = "<string>", check: Check | None = None,
               prepare: Prepare | None = None) -> TeamSpec:
    """Validate team YAML given as text; ``source`` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or str(error)
        raise TeamFileError(source, f"not valid YAML: {problem}", line=line) from None
    except yaml.YAMLError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise TeamFileError(source, f"not valid YAML: {first_line}") from None
    except RecursionError:
        raise TeamFileError(source, f"document nested deeper than {MAX_DEPTH} levels") from None
    problem = _shape_problem(data)
    if problem is not None:
        raise TeamFileError(source, problem)
    duplicate = _duplicate_key(node)
    if duplicate is not None:
        loc, line, first = duplicate
        raise TeamFileError(
            source, f"duplicate key (first at line {first})", line=line, field=_dotted(loc)
        )
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise TeamFileError(source, f"a team file must be a mapping of fields, not {kind}", line=1)
    return parse_dict(data, source=source, node=node, check=check, prepare=prepare)


def parse_dict(
    data: dict[str, Any], *, source: str = "<dict>", node: yaml.Node | None = None,
    check: Check | None = None, prepare: Prepare | None = None,
) -> TeamSpec:
    """Validate a team given as a dict, then ``check`` it (the loader's strategy checks)."""
    if prepare is not None:
        data = prepare(data, source)
    try:
        spec = TeamSpec.model_validate(data)
    except ValidationError as error:
        raise _to_team_error(error, source, node) from None
    problem = check(spec) if check is not None else None
    if problem is not None:
        loc, message = problem
        raise TeamFileError(source, message, line=_line_of(node, loc), field=_dotted(loc))
    return spec


def _to_team_error(error: ValidationError, source: str, node: yaml.Node | None) -> TeamFileError:
    errors = error.errors(include_url=False)
    # An unknown key is most often a typo of the "missing" one: report it first.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}" + _choices_hint(loc)
    elif first["type"] == "literal_error":
        message = f"{message}; got {first.get('input')!r}"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
        inner = re.match(r"^([\w.]+): (.*)$", message, re.DOTALL)
        if inner and not loc:
            loc = tuple(int(p) if p.isdigit() else p for p in inner.group(1).split("."))
            message = inner.group(2)
    more = len(error.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return TeamFileError(source, message, line=_line_of(node, loc), field=_dotted(loc) or None)


def _choices_hint(loc: tuple[Any, ...]) -> str:
    """For an unknown key at ``loc``: a close match, or the valid fields of its parent."""
    parent, key = loc[:-1], str(loc[-1])
    shape = tuple("*" if i == 1 and parent[0] in ("roles", "kinds") else p
                  for i, p in enumerate(parent))
    model = _NESTED.get(shape)
    if model is None:
        return ""
    close = difflib.get_close_matches(key, list(model.model_fields), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return "; valid fields: " + ", ".join(model.model_fields)


_NESTED: dict[tuple[Any, ...], type[BaseModel]] = {
    (): TeamSpec,
    ("roles", "*"): RoleSpec,
    ("roles", "*", "prompt"): PromptSpec,
    ("answer",): AnswerSpec,
    ("limits",): LimitsSpec,
    ("retry",): RetrySpec,
    ("memory",): MemorySpec,
    ("kinds", "*"): KindSpec,
    ("kinds", "*", "prompt"): PromptSpec,
}


def locate(path: str | Path | None, loc: tuple[Any, ...]) -> int | None:
    """The line of field ``loc`` in the team file at ``path`` (``None`` if unknown)."""
    if path is None:
        return None
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    line = _line_of(node, loc)
    return line if line is not None and len(loc) > 0 and _has(node, loc[:1]) else None


def _has(node: yaml.Node | None, loc: tuple[Any, ...]) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == str(loc[0]) for k, _ in node.value
    )


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (the deepest one that exists)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        found = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    found = value if not isinstance(value, yaml.ScalarNode) else key
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            found = node.value[part]
            line = found.start_mark.line + 1
        if found is None:
            break
        node = found
    return line


def _shape_problem(data: Any) -> str | None:
    """Refuse documents nested too deep or expanding to too many nodes (YAML alias bombs).

    Walks the document as Python sees it (aliases expanded) with a visit budget, so
    a "billion laughs" file is refused after ``MAX_NODES`` visits instead of hanging.
    """
    visits = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        visits += 1
        if visits > MAX_NODES:
            return f"document expands to more than {MAX_NODES} values (YAML alias bomb?)"
        if depth > MAX_DEPTH:
            return f"document nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


def _duplicate_key(node: yaml.Node | None) -> tuple[tuple[Any, ...], int, int] | None:
    """The first key that a mapping repeats, as ``(loc, line, first line)``.

    PyYAML keeps the last of two equal keys without a word, so a second ``roles:``
    would silently replace the first. Merge keys (``<<``) are YAML's own way to
    override and are not counted; a node shared through an alias is walked once.
    """
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(node, ())] if node is not None else []
    while stack:
        current, loc = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            children = []
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in first:
                        return (*loc, key.value), line, first[key.tag, key.value]
                    first[key.tag, key.value] = line
                    children.append((value, (*loc, key.value)))
            stack.extend(reversed(children))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in reversed(list(enumerate(current.value))))
    return None
