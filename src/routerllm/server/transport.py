"""Connections: what uvicorn must enforce before a request reaches the app, and the one place the
uvicorn config of `routerllm serve` is built (`uvicorn_config`).

uvicorn 0.54 (httptools protocol) leaves four holes that a hostile client can use, closed here by
`guarded_protocol`, a subclass of uvicorn's HttpToolsProtocol:
* no header timeout: a connection that sends nothing, or its headers one byte at a time
  (slowloris), is kept open forever (uvicorn's keep-alive timer starts only after a response, and
  any byte cancels it). Here a connection must complete a request's headers within
  server.header_timeout_s of opening or of its previous answer; else it is answered 408 (if it
  sent something) and closed.
* no header size limit with httptools (a 200 KB header was accepted): here the request line
  and headers together may have server.max_header_bytes; beyond: 431 and the connection closed.
* no connection limit: `limit_concurrency` answers a request with 503 only once it has arrived and
  keeps idle connections open. Here a connection beyond server.max_connections is answered 503
  (Retry-After) and closed at once; uvicorn's limit_concurrency (one above it) still bounds tasks.
* no write timeout: a client that stops reading (its socket full) holds its response, and what a
  streamed answer holds (a queue slot, a tier's connection), forever. Here a connection whose
  writes stay paused for server.write_timeout_s is aborted; the app sees it as a disconnect.
* its access log prints the query string, where a careless client may have put its key: the
  access log here shows a query string as `?[redacted]` (the guard refuses keys in URLs anyway).
Keep-alive idle connections are closed after server.keep_alive_timeout_s (uvicorn's timeout_keep_alive);
WebSocket upgrades are off (the API has none), and the `server` header is not sent.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from routerllm.exceptions import require

if TYPE_CHECKING:
    from routerllm.config import ServerSection

logger = logging.getLogger(__name__)

# Seconds of graceful shutdown before uvicorn cancels requests still running.
GRACEFUL_SHUTDOWN_S = 5


def _raw_response(status: int, reason: str, message: str, code: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 error response with an OpenAI-style body, for a connection the app never sees."""
    kind = "service_unavailable_error" if status == 503 else "invalid_request_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n")
    return head.encode("latin-1") + body


def guarded_protocol(server: "ServerSection") -> type:
    """uvicorn's httptools protocol with the limits of `server` (see the module docstring)."""
    require("httptools", extra="server", purpose="`routerllm serve` (its HTTP parser)")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    max_connections, header_timeout_s, max_header_bytes, write_timeout_s = (
        server.max_connections, server.header_timeout_s, server.max_header_bytes, server.write_timeout_s)

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        # Depends on uvicorn's HttpToolsProtocol internals (0.54): connection_made, on_message_begin,
        # on_url, on_header, on_headers_complete, on_response_complete, send_400_response,
        # pause_writing, resume_writing.

        def connection_made(self, transport: Any) -> None:
            self._parsed = self._answered = self._head_bytes = 0
            self._head_timer: Any = None
            self._write_timer: Any = None
            self._head_overflow = False
            self._got_bytes = False
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                logger.warning("refused a connection from %s: %d open (server.max_connections)",
                               self.client, len(self.connections) - 1)
                transport.write(_raw_response(
                    503, "Service Unavailable", f"The server has its limit of {max_connections} open connections "
                    "(server.max_connections); retry shortly.", "too_many_connections", "retry-after: 1\r\n"))
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._got_bytes = False
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timeout)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._parsed != self._answered or self.transport.is_closing():
                return  # a request is being answered: its headers came in time
            if self._got_bytes:
                self.transport.write(_raw_response(
                    408, "Request Timeout", f"The request headers did not arrive within {header_timeout_s:g} s "
                    "(server.header_timeout_s).", "request_timeout"))
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            self._got_bytes = True
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._head_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            self._head_timer = self._write_timer = None
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(write_timeout_s, self._write_stalled)

        def resume_writing(self) -> None:
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None
            super().resume_writing()

        def _write_stalled(self) -> None:
            self._write_timer = None
            logger.warning("dropped a connection from %s: it took no data for %g s (server.write_timeout_s)",
                           self.client, write_timeout_s)
            self.transport.abort()

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            super().on_message_begin()

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > max_header_bytes:
                self._head_overflow = True
                raise ValueError("request headers too large")  # httptools stops parsing: send_400_response

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._parsed += 1
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._answered += 1
            super().on_response_complete()
            if self._parsed == self._answered and not self.transport.is_closing():
                self._arm()  # the next request's headers are due within header_timeout_s

        def send_400_response(self, msg: str) -> None:
            if not self._head_overflow:
                super().send_400_response(msg)
                return
            logger.warning("refused a request from %s: headers over %d bytes (server.max_header_bytes)",
                           self.client, max_header_bytes)
            self.transport.write(_raw_response(
                431, "Request Header Fields Too Large", f"The request line and headers exceed {max_header_bytes} "
                "bytes (server.max_header_bytes).", "headers_too_large"))
            self.transport.close()

    return GuardedHttpToolsProtocol


class RedactQuery(logging.Filter):
    """Shows an access-log line's query string as `?[redacted]` (uvicorn's format: the third argument
    is the path with its query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?[redacted]", *args[3:])
        return True


def uvicorn_config(app: Any, server: "ServerSection", host: str, port: int, log_level: str = "info") -> Any:
    """The uvicorn.Config that serves `app` with every limit of `server`."""
    uvicorn = require("uvicorn", extra="server", purpose="`routerllm serve`")
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level.lower(), http=guarded_protocol(server),
        limit_concurrency=server.max_connections + 1, timeout_keep_alive=server.keep_alive_timeout_s,
        h11_max_incomplete_event_size=server.max_header_bytes, access_log=server.access_log,
        server_header=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ws="none",  # the API has no WebSocket route: an upgrade request is answered as plain HTTP
    )
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn.Config above
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())
    return config
