"""`stream: true`: answers as server-sent events, in the OpenAI API's chunk shapes.

Two ways:
* `stream_answer`: an answer already decided (every strategy decides on whole answers: the cascade
  must check the small answer before it knows which tier answers) is sent as a stream of
  STREAM_CHUNK_CHARS-character pieces, then the finish chunk (and usage, when asked), then [DONE].
* `serve_live`: a tier named directly whose backend streams (`TierProxy.streams`: the openai
  backend, i.e. vLLM and other endpoints) has its tokens forwarded as they arrive. A failure
  before the first token is handled as for any request (fallback to the small tier, or an error
  status); a failure after it ends the stream with an OpenAI-style error event (the status line
  is already sent), counted as 503 (504 for a time-out).

A client that goes away mid-stream (or before the first byte) ends its request: the tier's stream
is closed, the request is counted with status 499, and its queue slot is freed. A client that stops
reading but keeps its connection is dropped after server.write_timeout_s (transport.py), and ends
the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response, StreamingResponse

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.exceptions import BackendError, BackendTimeout, BackendUnavailable
from routerllm.server import protocol as p
from routerllm.server.errors import ApiError
from routerllm.server.fallback import public_reason
from routerllm.server.tiers import Outcome, Target, traced

if TYPE_CHECKING:
    from routerllm.server.serving import Service

logger = logging.getLogger(__name__)

# Characters per server-sent event when an already finished answer is streamed.
STREAM_CHUNK_CHARS = 24
# Status counted for a stream whose client went away before its end (nginx's "client closed request").
CLIENT_GONE = 499
SSE_HEADERS = {"cache-control": "no-cache"}


class Events:
    """Server-sent events of one answer, in the OpenAI API's shapes."""

    def __init__(self, body: Any, chat: bool) -> None:
        self.body, self.chat = body, chat
        self.rid = p.new_id("chatcmpl" if chat else "cmpl")
        self.created = p.now()
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def _chunk(self, **kwargs: Any) -> str:
        cls = p.ChatCompletionChunk if self.chat else p.Completion
        return f"data: {cls(id=self.rid, created=self.created, model=self.body.model, **kwargs).model_dump_json()}\n\n"

    def first(self, info: p.RoutingInfo) -> str:
        """The opening event: the assistant role (chat) and the routing information."""
        if self.chat:
            return self._chunk(routerllm=info, choices=[p.ChatChunkChoice(delta=p.ChoiceDelta(role="assistant", content=""))])
        return self._chunk(routerllm=info, choices=[p.CompletionChoice(text="", finish_reason=None)])

    def text(self, piece: str) -> str:
        if self.chat:
            return self._chunk(choices=[p.ChatChunkChoice(delta=p.ChoiceDelta(content=piece))])
        return self._chunk(choices=[p.CompletionChoice(text=piece, finish_reason=None)])

    def end(self, gen: Generation, info: p.RoutingInfo | None = None) -> list[str]:
        finish = p.finish_reason(gen.finish_reason)
        if self.chat:
            out = [self._chunk(routerllm=info, choices=[p.ChatChunkChoice(delta=p.ChoiceDelta(), finish_reason=finish)])]
        else:
            out = [self._chunk(routerllm=info, choices=[p.CompletionChoice(text="", finish_reason=finish)])]
        if self.include_usage:
            out.append(self._chunk(choices=[], usage=p.usage_of(gen)))
        return [*out, "data: [DONE]\n\n"]


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), STREAM_CHUNK_CHARS):
        yield text[i : i + STREAM_CHUNK_CHARS]


def stream_answer(body: Any, info: p.RoutingInfo, gen: Generation, chat: bool) -> StreamingResponse:
    """A finished answer as server-sent events."""
    events = Events(body, chat)

    async def stream() -> AsyncIterator[str]:
        yield events.first(info)
        for piece in _pieces(gen.text):
            yield events.text(piece)
        for event in events.end(gen):
            yield event

    return StreamingResponse(stream(), media_type="text/event-stream", headers={**p.routing_headers(info), **SSE_HEADERS})


async def serve_live(service: "Service", endpoint: str, body: Any, request: GenerationRequest, chat: bool,
                     target: Target, start: float) -> Response:
    """Forward a streaming tier's tokens as they arrive (see the module docstring)."""
    assert target.tier is not None
    slot = service.admission.admit()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.server.request_timeout_s
    trace = traced()
    iterator = trace[1].run(service.tiers[target.tier].stream, request)
    end = object()

    async def pull() -> Any:
        return await service.queue.run(slot, next, iterator, end, trace=trace, timeout_s=deadline - loop.time())

    def close_iterator() -> None:
        with contextlib.suppress(Exception):
            trace[1].run(iterator.close)

    try:
        first = await pull()
    except ApiError:
        slot.release()
        raise
    except Exception as exc:
        service.queue.submit(close_iterator)
        try:
            outcome = await service.recover(slot, target, request, exc, trace[0])
        finally:
            slot.release()
        service.record(endpoint, body.model, 200, time.perf_counter() - start, outcome)
        info = service.complete_info(outcome)
        return stream_answer(body, info, outcome.generation, chat)

    info = p.RoutingInfo(tier=target.tier, reason=f"model {target.name!r} names this tier directly")
    events = Events(body, chat)
    finished = threading.Event()

    def finish(status: int, outcome: Outcome | None) -> None:
        """Once: record the request, close the tier's stream, free the queue slot. Runs when the
        stream ends, or when the response is dropped unsent (a client gone before the first byte)."""
        if finished.is_set():
            return
        finished.set()
        service.record(endpoint, body.model, status, time.perf_counter() - start, outcome)
        service.queue.submit(close_iterator)
        slot.release()

    async def stream() -> AsyncIterator[str]:
        status, outcome = CLIENT_GONE, None
        try:
            yield events.first(info)
            item = first
            while not isinstance(item, Generation):
                if item is end:
                    raise BackendUnavailable(f"tier {target.tier!r} ended its stream without a result", tier=target.tier)
                yield events.text(item)
                item = await pull()
            outcome = Outcome(item, info)
            info.calls = dict(trace[0].calls)
            status = 200
            for event in events.end(item, service.complete_info(outcome)):
                yield event
        except Exception as exc:  # noqa: BLE001 - the status line is sent: say it in the stream
            timed_out = isinstance(exc, BackendTimeout)
            if isinstance(exc, BackendError):
                status, why = (504 if timed_out else 503), public_reason(exc)
                logger.warning("stream from tier %s broke: %s", target.tier, exc)
            else:
                status, why = 500, "internal error"
                logger.exception("stream from tier %s broke", target.tier)
            error = p.error_body(f"The tier '{target.tier}' failed mid-answer: {why}.",
                                 "timeout_error" if timed_out else "service_unavailable_error",
                                 code="stream_interrupted")
            yield f"data: {json.dumps(error)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            finish(status, outcome)

    body_iterator = stream()
    weakref.finalize(body_iterator, finish, CLIENT_GONE, None)
    return StreamingResponse(body_iterator, media_type="text/event-stream",
                             headers={**p.routing_headers(info), **SSE_HEADERS})
