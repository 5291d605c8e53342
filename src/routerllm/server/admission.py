"""Admission and the queue: how many requests the server takes on, and the threads they run in.

* `Admission` counts requests admitted and not finished; beyond server.max_queue a request is
  refused at once with 429 and Retry-After (server.retry_after_s), before any tier is called.
* A request holds its `Slot` until its answer is sent AND every thread it started has finished: a
  generation abandoned after a time-out still occupies a worker thread, so it still counts.
* Generation is blocking (torch, HTTP clients), so it runs in `WorkQueue.pool`, a thread pool of
  server.max_concurrency threads; the event loop only parses, admits, waits and writes. Fallbacks
  run in a pool of their own so that they never queue behind a hung large tier.
* `WorkQueue.run` waits at most the request's time limit (server.request_timeout_s); past it, it
  raises RequestTimeout (a BackendTimeout) naming the tier the request was in (from its Trace), and the thread is
  left to finish in the background (Python threads cannot be killed; its slot stays held).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from routerllm.exceptions import BackendTimeout
from routerllm.server.errors import ApiError
from routerllm.server.tiers import Trace, traced

if TYPE_CHECKING:
    from routerllm.config import ServerSection
    from routerllm.server.metrics import ServerMetrics


class RequestTimeout(BackendTimeout):
    """server.request_timeout_s passed while the request was still generating (in `tier`, or
    between tiers when `tier` is None). Its message is fit for clients: it names only the limit."""


class Admission:
    """The bounded queue: counts requests admitted and not finished, refuses beyond `limit`."""

    def __init__(self, limit: int, retry_after_s: int, metrics: "ServerMetrics") -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.count = 0
        self._lock = threading.Lock()
        self._metrics = metrics

    def admit(self) -> "Slot":
        """A slot, or ApiError 429 when `limit` requests are already admitted."""
        with self._lock:
            if self.count < self.limit:
                self.count += 1
                self._metrics.queue_depth.set(self.count)
                return Slot(self)
        raise ApiError(
            429, f"The server is at its limit of {self.limit} queued requests; retry after {self.retry_after_s} s.",
            "rate_limit_error", code="queue_full", headers={"Retry-After": str(self.retry_after_s)},
        )

    def _leave(self) -> None:
        with self._lock:
            self.count -= 1
            self._metrics.queue_depth.set(self.count)


class Slot:
    """One admitted request: released when its holders (the request, its threads) are all done."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._holders = 1
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self, *_: Any) -> None:
        with self._lock:
            self._holders -= 1
            done = self._holders == 0
        if done:
            self._admission._leave()


class WorkQueue:
    """The generation threads and the request time limit (see the module docstring)."""

    def __init__(self, server: "ServerSection") -> None:
        self.timeout_s = server.request_timeout_s
        self.pool = ThreadPoolExecutor(server.max_concurrency, thread_name_prefix="routerllm-gen")
        self.fallback_pool = ThreadPoolExecutor(server.max_concurrency, thread_name_prefix="routerllm-fallback")

    async def run(self, slot: Slot, fn: Any, *args: Any, trace: tuple[Trace, contextvars.Context] | None = None,
                  timeout_s: float | None = None, fallback: bool = False) -> Any:
        """fn(*args) in a pool thread, in the trace's context, within the time limit (`timeout_s`,
        default server.request_timeout_s). Raises fn's exception, or BackendTimeout."""
        state, ctx = trace or traced()
        loop = asyncio.get_running_loop()
        slot.hold()
        future = loop.run_in_executor(self.fallback_pool if fallback else self.pool, ctx.run, fn, *args)
        future.add_done_callback(slot.release)
        timeout = self.timeout_s if timeout_s is None else max(0.0, timeout_s)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            # the thread runs on; retrieve its result later so nothing logs "exception never retrieved"
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise RequestTimeout(f"no answer within server.request_timeout_s={self.timeout_s:g} s",
                                 tier=state.active) from None

    def submit(self, fn: Any, *args: Any) -> None:
        """Background work (closing a stream) on the generation pool; dropped once it is shut down."""
        try:
            self.pool.submit(fn, *args)
        except RuntimeError:  # the pool is shut down at exit
            pass

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.fallback_pool.shutdown(wait=False, cancel_futures=True)
