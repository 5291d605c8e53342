"""The OpenAI protocol as the server speaks it: request, response, streaming-chunk and error models.

Only the parts of the OpenAI API that routerllm serves are modelled:
`/v1/completions`, `/v1/chat/completions` (both with `stream: true`) and `/v1/models`.
Requests are validated strictly (a string where a number belongs is an error, as with the OpenAI
API) and unknown fields are ignored (as vLLM does), so clients written for either work.

routerllm adds one optional request field, `routerllm` ({task_id, sample, entry_point}), which the
official client sends through `extra_body`, and one response field, `routerllm`, that says which
tier answered and why. Errors have the OpenAI shape: `{"error": {message, type, param, code}}`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- requests ------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class RouterLLMOptions(_Request):
    """Optional routerllm extension of a request (official client: `extra_body={"routerllm": {...}}`)."""

    task_id: str | None = Field(None, description="HumanEval task id, for replay tiers (e.g. HumanEval/3)")
    sample: int = Field(0, ge=0, description="which recorded sample a replay tier answers with")
    entry_point: str | None = Field(None, description="function name the cascade checks examples against")


class StreamOptions(_Request):
    include_usage: bool = False


class CompletionRequest(_Request):
    model: str = Field(..., min_length=1)
    prompt: str | list[str]
    max_tokens: int | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="routerllm answers with one choice")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    routerllm: RouterLLMOptions | None = None


class TextContentPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Request):
    model: str = Field(..., min_length=1)
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="routerllm answers with one choice")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    routerllm: RouterLLMOptions | None = None


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
