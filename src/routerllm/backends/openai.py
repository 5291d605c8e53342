"""A tier served by any OpenAI-compatible endpoint: vLLM, SGLang, TGI, a llama.cpp server, or
another routerllm. This is how a large model served by vLLM across several GPUs or nodes joins
the system (`routerllm plan --engine vllm` prints the command that starts such an endpoint).

    large_llm:
      name: llama3_405b
      backend: openai
      base_url: http://10.0.0.5:8000/v1
      model_id: meta-llama/Llama-3.1-405B-Instruct   # the served model name; omitted: the endpoint's first model
      api_key_env: VLLM_API_KEY                       # omitted: no key ("EMPTY", as vLLM expects)
      request_timeout_s: 120
      max_retries: 2
      stream: true                                    # measure time to first token

Prompts go to `/v1/completions`, chat messages to `/v1/chat/completions`. With `stream: true`
(default) the answer is streamed and the time to the first token is measured; otherwise only the
total time is known (`ttft_s` is None). Token counts come from the endpoint's `usage`
(`stream_options.include_usage` when streaming; endpoints that do not report usage get counts
estimated from the streamed chunks, flagged in `Generation.extra["usage"]`).

Failures: connection errors, 429 and 5xx are retried `max_retries` times with exponential
backoff (a 429's Retry-After is honoured); timeouts are not retried (a hung endpoint would
otherwise cost (retries + 1) x the timeout). What still fails raises a BackendError naming the
endpoint and the fix: BackendTimeout, BackendUnavailable, or BackendRejected for a 400/413/422
(the request is at fault; the server passes the endpoint's message on to its client as a 400). The official `openai` client is used with its own retries switched off, so
that one loop, which also covers a stream broken mid-answer, owns retrying.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.exceptions import BackendError, BackendRejected, BackendTimeout, BackendUnavailable, require

if TYPE_CHECKING:
    from routerllm.config import ModelConfig

logger = logging.getLogger(__name__)

# Backoff between retries, s: BASE x 2^attempt, capped, with +-25% jitter (as the openai client does).
RETRY_BASE_S = 0.25
RETRY_MAX_S = 4.0
# Largest Retry-After honoured, s; beyond it the endpoint is treated as down.
MAX_RETRY_AFTER_S = 10.0
# Endpoint statuses that mean "this request is invalid" (the client's error, passed on as a 400), not
# "the tier is failing": 400 Bad Request, 413 Content Too Large, 422 Unprocessable (FastAPI-based servers).
REJECTED_STATUSES = (400, 413, 422)
# Parallel requests one generate() call sends for a batch (the endpoint batches them itself).
MAX_BATCH_PARALLEL = 8


class _Retryable(Exception):
    def __init__(self, cause: Exception, wait_s: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.wait_s = wait_s


class OpenAIBackend:
    """Backend over an OpenAI-compatible HTTP endpoint. Thread-safe: the server calls it from many threads."""

    def __init__(self, model: "ModelConfig", **_: Any) -> None:
        if not model.base_url:
            raise BackendError(
                f"tier {model.name!r} uses backend 'openai' without base_url",
                fix=f"set models.{model.name}.base_url, e.g. http://127.0.0.1:8001/v1",
            )
        self.config = model
        self.name = model.name
        self.base_url = model.base_url.rstrip("/")
        self.served_model: str | None = model.model_id
        self._client: Any = None
        self._lock = threading.Lock()
        self._include_usage = True  # cleared once if the endpoint rejects stream_options

    # --- lifecycle -------------------------------------------------------------------------------

    def _api_key(self) -> str:
        env = self.config.api_key_env
        if not env:
            return "EMPTY"
        key = os.environ.get(env)
        if not key:
            raise BackendUnavailable(
                f"tier {self.name!r}: the endpoint's API key is read from ${env}, which is not set",
                fix=f"export {env}=<key>, or remove models.{self.name}.api_key_env if {self.base_url} needs no key",
                tier=self.name,
            )
        return key

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                openai = require("openai", extra="server", purpose="the 'openai' backend")
                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key(),
                    timeout=self.config.request_timeout_s,
                    max_retries=0,  # retries are ours (see module docstring)
                )
            return self._client

    def load(self) -> None:
        """Create the client and check that the endpoint answers and serves the model."""
        client = self._get_client()
        try:
            models = client.with_options(timeout=self.config.health_timeout_s).models.list()
            served = [m.id for m in models.data]
        except Exception as exc:  # noqa: BLE001 - turned into a BackendError with the fix
            raise self._error(exc, "listing models") from exc
        if self.served_model is None:
            if not served:
                raise BackendUnavailable(
                    f"tier {self.name!r}: {self.base_url}/models lists no model",
                    fix=f"start the endpoint with a model, or set models.{self.name}.model_id", tier=self.name,
                )
            self.served_model = served[0]
            logger.info("tier %s: using the endpoint's model %r", self.name, self.served_model)
        elif served and self.served_model not in served:
            raise BackendUnavailable(
                f"tier {self.name!r}: {self.base_url} does not serve {self.served_model!r} (it serves: {', '.join(served)})",
                fix=f"set models.{self.name}.model_id to one of those names (vLLM: --served-model-name)", tier=self.name,
            )

    def health(self) -> bool:
        """Probe /v1/models (then /health) with the short `health_timeout_s`; never raises."""
        try:
            client = self._get_client()
            client.with_options(timeout=self.config.health_timeout_s).models.list()
            return True
        except Exception as exc:  # noqa: BLE001
            logger.debug("tier %s: /models probe failed: %s", self.name, exc)
        try:
            import httpx

            root = self.base_url.removesuffix("/v1")
            return httpx.get(f"{root}/health", timeout=self.config.health_timeout_s).status_code == 200
        except Exception as exc:  # noqa: BLE001
            logger.debug("tier %s: /health probe failed: %s", self.name, exc)
            return False

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # --- generation ------------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        if len(requests) <= 1:
            return [self._with_retries(req) for req in requests]
        with ThreadPoolExecutor(max_workers=min(len(requests), MAX_BATCH_PARALLEL)) as pool:
            return list(pool.map(self._with_retries, requests))

    def stream(self, request: GenerationRequest) -> Iterator[str | Generation]:
        """Yield the answer's text as it arrives, then the finished Generation (last item).
        Retries only before the first text arrives; a stream broken later raises BackendError."""
        attempt = 0
        while True:
            produced = False
            try:
                for item in self._call(request):
                    if isinstance(item, str):
                        produced = True
                    yield item
                return
            except _Retryable as exc:
                if produced or attempt >= self.config.max_retries:
                    raise self._error(exc.cause, "streaming", attempts=attempt + 1) from exc.cause
                self._sleep(attempt, exc)
                attempt += 1

    def _with_retries(self, request: GenerationRequest) -> Generation:
        attempt = 0
        while True:
            try:
                final: Generation | None = None
                for item in self._call(request):
                    if isinstance(item, Generation):
                        final = item
                assert final is not None
                final.extra["attempts"] = attempt + 1
                return final
            except _Retryable as exc:
                if attempt >= self.config.max_retries:
                    raise self._error(exc.cause, "generating", attempts=attempt + 1) from exc.cause
                self._sleep(attempt, exc)
                attempt += 1

    def _sleep(self, attempt: int, exc: _Retryable) -> None:
        wait = exc.wait_s if exc.wait_s is not None else min(RETRY_MAX_S, RETRY_BASE_S * 2**attempt)
        wait *= random.uniform(0.75, 1.25)
        logger.warning("tier %s: %s; retry %d/%d in %.2f s", self.name, exc.cause, attempt + 1, self.config.max_retries, wait)
        time.sleep(wait)

    def _params(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        if self.served_model is None:
            self.load()
        params: dict[str, Any] = {
            "model": self.served_model,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
        }
        stop = [*request.stop, *self.config.stop]
        if stop:
            params["stop"] = stop[:4]  # the OpenAI API accepts at most 4 stop sequences
        if request.seed is not None:
            params["seed"] = request.seed
        if request.task_id is not None:
            # lets a downstream routerllm with replay tiers answer this task; other servers ignore it
            params["extra_body"] = {"routerllm": {"task_id": request.task_id, "sample": request.sample}}
        if request.messages:
            return "chat", {**params, "messages": request.messages}
        return "completion", {**params, "prompt": request.prompt}

    def _call(self, request: GenerationRequest) -> Iterator[str | Generation]:
        """One attempt. Yields text deltas (streaming only) and finally the Generation.
        Raises _Retryable for what a retry may fix, BackendError for the rest."""
        openai = require("openai", extra="server", purpose="the 'openai' backend")
        client = self._get_client()
        kind, params = self._params(request)
        create = client.chat.completions.create if kind == "chat" else client.completions.create
        start = time.perf_counter()
        try:
            if not self.config.stream:
                response = create(**params)
                choice = response.choices[0]
                text = (choice.message.content or "") if kind == "chat" else choice.text
                usage = response.usage
                yield Generation(
                    text=text,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    ttft_s=None,
                    total_s=time.perf_counter() - start,
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                    extra={"endpoint": self.base_url, "usage": "reported" if usage else "missing"},
                )
                return
            extra_stream = {"stream_options": {"include_usage": True}} if self._include_usage else {}
            try:
                stream = create(**params, stream=True, **extra_stream)
            except openai.BadRequestError as exc:
                if extra_stream and "stream_options" in str(exc):
                    logger.info("tier %s: endpoint rejects stream_options; counting tokens from chunks", self.name)
                    self._include_usage = False
                    stream = create(**params, stream=True)
                else:
                    raise
            ttft: float | None = None
            parts: list[str] = []
            chunks = 0
            finish = "stop"
            usage = None
            with stream:
                for chunk in stream:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        delta = (choice.delta.content or "") if kind == "chat" else (choice.text or "")
                        if delta:
                            if ttft is None:
                                ttft = time.perf_counter() - start
                            parts.append(delta)
                            chunks += 1
                            yield delta
                        if choice.finish_reason:
                            finish = choice.finish_reason
            yield Generation(
                text="".join(parts),
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else chunks,
                ttft_s=ttft,
                total_s=time.perf_counter() - start,
                finish_reason="length" if finish == "length" else "stop",
                extra={"endpoint": self.base_url, "usage": "reported" if usage else "estimated from chunks"},
            )
        except openai.APITimeoutError as exc:
            raise self._error(exc, "generating") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(exc) from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                retry_after = _retry_after(exc)
                if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                    raise self._error(exc, "generating") from exc
                raise _Retryable(exc, retry_after) from exc
            raise self._error(exc, "generating") from exc
        except (GeneratorExit, _Retryable, BackendError):
            raise
        except Exception as exc:  # a malformed answer (no choices, bad JSON): the endpoint's fault
            raise BackendUnavailable(
                f"tier {self.name!r} at {self.base_url}: unexpected response ({type(exc).__name__}: {exc})",
                fix="check that base_url points at an OpenAI-compatible /v1 endpoint (vLLM, SGLang, TGI, llama.cpp)",
                tier=self.name,
            ) from exc

    # --- errors ----------------------------------------------------------------------------------

    def _error(self, exc: Exception, doing: str, attempts: int = 1) -> BackendError:
        """The BackendError subclass for what went wrong: BackendTimeout (no answer in time),
        BackendRejected (the endpoint refused this request as invalid: 400/413/422, shown to the
        client), BackendUnavailable (everything else: down, 5xx, a key or model the endpoint refuses)."""
        try:
            import openai
        except ImportError:  # pragma: no cover
            openai = None  # type: ignore[assignment]
        where = f"tier {self.name!r} at {self.base_url}"
        tries = f" after {attempts} attempt(s)" if attempts > 1 else ""
        if isinstance(exc, BackendError):
            return exc.for_tier(self.name)
        if openai is not None and isinstance(exc, openai.APITimeoutError):
            return BackendTimeout(
                f"{where}: no answer within {self.config.request_timeout_s:g} s while {doing}",
                fix=f"check the endpoint's load, or raise models.{self.name}.request_timeout_s", tier=self.name,
            )
        if openai is not None and isinstance(exc, openai.APIConnectionError):
            return BackendUnavailable(
                f"{where}: cannot connect while {doing}{tries} ({exc.__cause__ or exc})",
                fix=f"start the endpoint (e.g. the `vllm serve` line from `routerllm plan --engine vllm`) "
                f"or fix models.{self.name}.base_url", tier=self.name,
            )
        if openai is not None and isinstance(exc, openai.AuthenticationError):
            return BackendUnavailable(
                f"{where}: the endpoint refused the API key (401)",
                fix=f"put the right key in ${self.config.api_key_env or '<env var>'} and set models.{self.name}.api_key_env",
                tier=self.name,
            )
        if openai is not None and isinstance(exc, openai.NotFoundError):
            return BackendUnavailable(
                f"{where}: 404 while {doing}: {exc.message}",
                fix=f"check models.{self.name}.model_id (the served model name) and that base_url ends in /v1",
                tier=self.name,
            )
        if openai is not None and isinstance(exc, openai.APIStatusError) and exc.status_code in REJECTED_STATUSES:
            body = exc.body if isinstance(exc.body, dict) else {}
            said = str(body.get("message") or exc.message)
            return BackendRejected(
                f"the tier {self.name!r} refused the request: {said}",
                fix="a 4xx means the request does not fit the endpoint (e.g. max_tokens beyond its context: "
                f"lower max_tokens or models.{self.name}.max_new_tokens); see the endpoint's log",
                tier=self.name, param=body.get("param") if isinstance(body.get("param"), str) else None,
                code=body.get("code") if isinstance(body.get("code"), str) else "rejected_by_tier",
            )
        if openai is not None and isinstance(exc, openai.APIStatusError):
            return BackendUnavailable(
                f"{where}: HTTP {exc.status_code} while {doing}{tries}: {exc.message}",
                fix="see the endpoint's log", tier=self.name,
            )
        return BackendUnavailable(f"{where}: {type(exc).__name__} while {doing}: {exc}", fix="see the endpoint's log",
                                  tier=self.name)


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None
