"""The OpenAI protocol as the server speaks it: request, response, streaming-chunk and error models.

Only the parts of the OpenAI API that routerllm serves are modelled:
`/v1/completions`, `/v1/chat/completions` (both with `stream: true`), `/v1/models` and
`/v1/models/{id}`. Requests are validated strictly (a string where a number belongs is an error,
as with the OpenAI API; an integral number such as `1.0` is an integer, as JSON Schema says);
every string must be valid Unicode (a lone UTF-16 surrogate such as `"\\ud800"` is a 400, since
it cannot be written back as UTF-8). Unknown fields are ignored (as vLLM does), so clients written
for either work; OpenAI parameters routerllm cannot honour (`echo`, `logprobs`, `suffix`,
`best_of`, `tools`, penalties, ...) are accepted only at their neutral value and are otherwise a
400 naming the parameter (code `unsupported_parameter`), as vLLM answers what it cannot do.

routerllm adds one optional request field, `routerllm` ({task_id, sample, entry_point}), which the
official client sends through `extra_body`, and one response field, `routerllm`, that says which
tier answered and why. Errors have the OpenAI shape: `{"error": {message, type, param, code}}`.
"""

from __future__ import annotations

import json
import keyword
import re
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from routerllm.backends.base import Generation

# The OpenAI API accepts at most 4 stop sequences.
MAX_STOP_SEQUENCES = 4
# Longest model name, user tag, task id or entry point accepted, characters (names are config labels).
MAX_NAME_CHARS = 256
# What `routerllm.entry_point` may be: the name of the function the cascade calls in generated code.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Seeds are passed on to endpoints as 64-bit signed integers (vLLM, the OpenAI API), but JSON
# tools read numbers as IEEE doubles: 2**63 - 1 is not exact there (schemathesis 4.32 sent
# 9223372036854775999 as "<= maximum"), so the accepted range is the doubles' exact integers.
SEED_RANGE = (-(2**53 - 1), 2**53 - 1)


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_unicode", "contains a lone UTF-16 surrogate (e.g. \\ud800), which is not valid Unicode; "
            "send valid UTF-8 text") from None
    return value


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 1.0 is an integer, 1.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_valid_unicode)]
Int = Annotated[int, BeforeValidator(_integral)]


def bounded_int(low: int, high: int) -> Any:
    """An integer in [low, high] that also takes 3.0 for 3. The bounds come before the validator:
    after it, pydantic 2 can no longer fold them into the integer's schema and writes `ge`/`le`,
    which JSON Schema tools (schemathesis) ignore, instead of `minimum`/`maximum`."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_integral)]

# --- unsupported OpenAI parameters ---------------------------------------------------------------

# name -> the values that ask for nothing (accepted and ignored); any other value is a 400.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "echo": (None, False),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "suffix": (None, ""),
    "best_of": (None, 1),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "logit_bias": (None, {}),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "top_p": (None, 1),
}
_WHY = {
    "top_p": "routerllm samples with temperature only",
    "best_of": "routerllm answers with one generation",
    "tools": "routerllm tiers answer with text only",
    "tool_choice": "routerllm tiers answer with text only",
    "functions": "routerllm tiers answer with text only",
    "function_call": "routerllm tiers answer with text only",
}


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _unsupported_field(name: str) -> Any:
    neutral = [v for v in NEUTRAL[name] if v is not None]
    return Field(None, json_schema_extra={"enum": [*neutral, None]},
                 description=f"not supported ({_WHY.get(name, 'no routerllm tier can honour it')}); "
                 f"accepted only as {' or '.join(json.dumps(v) for v in neutral) or 'null'}")


def _check_neutral(name: str, value: Any) -> Any:
    if not any(_same(value, ok) for ok in NEUTRAL[name]):
        neutral = [v for v in NEUTRAL[name] if v is not None]
        shown = " or ".join(json.dumps(v) for v in neutral)
        raise PydanticCustomError(
            "unsupported_parameter",
            "routerllm does not support '{name}' ({why}); omit it" + (f" or send {shown}" if shown else ""),
            {"name": name, "why": _WHY.get(name, "no routerllm tier can honour it")},
        )
    return value


# --- requests ------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class RouterLLMOptions(_Request):
    """Optional routerllm extension of a request (official client: `extra_body={"routerllm": {...}}`)."""

    task_id: Name | None = Field(None, description="HumanEval task id, for replay tiers (e.g. HumanEval/3)")
    sample: bounded_int(0, 2**31 - 1) = Field(0, description="which recorded sample a replay tier answers with")
    entry_point: Name | None = Field(
        None, description="function name (an ASCII Python identifier, not a keyword) the cascade checks examples against",
        json_schema_extra={"pattern": IDENTIFIER.pattern, "not": {"enum": keyword.kwlist}},
    )

    @field_validator("entry_point")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and (not IDENTIFIER.fullmatch(value) or keyword.iskeyword(value)):
            raise PydanticCustomError("invalid_identifier", "must be a Python function name: letters, digits and "
                                      "underscores, not starting with a digit, not a keyword")
        return value


class StreamOptions(_Request):
    include_usage: bool = False


class _Generation(_Request):
    """Fields shared by completions and chat completions."""

    model: Name = Field(..., description="a strategy ('router': the default one) or a tier; GET /v1/models lists them")
    max_tokens: Int | None = Field(None, description="largest number of tokens to generate (1 to server.max_tokens_limit)")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    n: bounded_int(1, 1) = Field(1, description="routerllm answers with one choice")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP_SEQUENCES)] | None = Field(
        None, description=f"at most {MAX_STOP_SEQUENCES} stop sequences")
    seed: bounded_int(*SEED_RANGE) | None = None
    user: Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_valid_unicode)] | None = None
    routerllm: RouterLLMOptions | None = None
    # neutral-only OpenAI parameters (see NEUTRAL)
    top_p: Any = _unsupported_field("top_p")
    frequency_penalty: Any = _unsupported_field("frequency_penalty")
    presence_penalty: Any = _unsupported_field("presence_penalty")
    logit_bias: Any = _unsupported_field("logit_bias")

    @field_validator(*NEUTRAL, mode="before", check_fields=False)
    @classmethod
    def _neutral_only(cls, value: Any, info: Any) -> Any:
        return _check_neutral(info.field_name, value)


class CompletionRequest(_Generation):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)] = Field(
        ..., description="one prompt (a string, or a list holding one string)")
    echo: Any = _unsupported_field("echo")
    logprobs: Any = _unsupported_field("logprobs")
    suffix: Any = _unsupported_field("suffix")
    best_of: Any = _unsupported_field("best_of")


class TextContentPart(_Request):
    type: Literal["text"]
    text: Text


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextContentPart] | None = None
    name: Name | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: Int | None = Field(
        None, description="largest number of tokens to generate (1 to server.max_tokens_limit); overrides max_tokens")
    logprobs: Any = _unsupported_field("logprobs")
    top_logprobs: Any = _unsupported_field("top_logprobs")
    tools: Any = _unsupported_field("tools")
    tool_choice: Any = _unsupported_field("tool_choice")
    functions: Any = _unsupported_field("functions")
    function_call: Any = _unsupported_field("function_call")
    response_format: Any = _unsupported_field("response_format")
    audio: Any = _unsupported_field("audio")
    modalities: Any = _unsupported_field("modalities")
    prediction: Any = _unsupported_field("prediction")


def stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


# --- responses -----------------------------------------------------------------------------------


class RoutingInfo(BaseModel):
    """Which tier answered and why (the `routerllm` field of every response)."""

    strategy: str | None = Field(None, description="strategy that routed; None when a tier was named directly")
    tier: str = Field(..., description="tier whose answer is returned")
    reason: str
    escalated: bool = False
    fallback: bool = Field(False, description="true when the large tier failed and the small tier answered")
    fallback_from: str | None = None
    fallback_reason: str | None = None
    calls: dict[str, int] = Field(default_factory=dict, description="backend calls per tier for this request")
    attempts: int = 1
    timing: Literal["measured", "modelled"] = "measured"
    ttft_s: float | None = None
    generation_s: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    routerllm: RoutingInfo | None = None


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None
    routerllm: RoutingInfo | None = None


class ChoiceDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChoiceDelta
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    routerllm: RoutingInfo | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "routerllm"
    kind: Literal["strategy", "tier"]
    description: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- errors --------------------------------------------------------------------------------------

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "not_found_error",
    "rate_limit_error",
    "timeout_error",
    "service_unavailable_error",
    "server_error",
]


class ErrorDetail(BaseModel):
    message: str
    type: ErrorType
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_body(message: str, type: ErrorType, param: str | None = None, code: str | None = None) -> dict:
    return ErrorResponse(error=ErrorDetail(message=message, type=type, param=param, code=code)).model_dump()


# --- helpers -------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def finish_reason(reason: str) -> Literal["stop", "length"]:
    """Backends report 'stop' | 'length' | 'error'; errors never reach a response as a finish reason."""
    return "length" if reason == "length" else "stop"


def usage_of(gen: "Generation") -> Usage:
    return Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                 total_tokens=gen.prompt_tokens + gen.completion_tokens)


def with_costs(info: RoutingInfo, gen: "Generation", carbon_kg_per_kwh: float) -> RoutingInfo:
    """`info` completed with the answer's timings, energy and CO2 (where the tier reports energy)."""
    info.timing = gen.timing
    info.ttft_s = gen.ttft_s
    info.generation_s = gen.total_s
    info.energy_kwh = gen.energy_kwh
    if gen.energy_kwh is not None:
        info.co2_kg = gen.energy_kwh * carbon_kg_per_kwh
    return info


# Characters of the routing reason sent in the x-routerllm-reason header.
REASON_HEADER_CHARS = 200


def routing_headers(info: RoutingInfo) -> dict[str, str]:
    """The x-routerllm-* headers of an answer (ASCII: the reason is cut and its other characters replaced)."""
    reason = " ".join(info.reason.split())
    reason = reason.encode("ascii", "replace").decode("ascii")[:REASON_HEADER_CHARS]
    return {
        "x-routerllm-tier": info.tier,
        "x-routerllm-strategy": info.strategy or "none",
        "x-routerllm-reason": reason,
        "x-routerllm-fallback": "true" if info.fallback else "false",
    }


# --- health --------------------------------------------------------------------------------------


class TierHealth(BaseModel):
    ready: bool
    role: Literal["large", "small"]
    error: str | None = Field(None, description="why the tier is not ready (its kind, not its message)")


class Health(BaseModel):
    """GET /health: 200 for "ok" and "degraded" (only the large tier is down and a small tier
    answers for it), 503 for "unavailable"."""

    status: Literal["ok", "degraded", "unavailable"]
    tiers: dict[str, TierHealth]
    queue: int = Field(..., description="requests admitted and not finished")
