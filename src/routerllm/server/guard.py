"""The request guard: a pure ASGI middleware, outermost in the app, that every HTTP request passes
before any of its body is read. In order:

1. Credentials in the URL are refused (400 `api_key_in_url`): a query parameter named like a key
   (`api_key`, `key`, `token`, ...) or holding a configured key. URLs end up in logs, proxies and
   browser histories; the access log never shows a query string anyway (transport.py).
2. The bearer key is checked (server.api_keys and the env var server.api_keys_env; none
   configured: no auth). Every path needs it except /health, and /metrics, /docs, /openapi.json
   when server.open_metrics / server.open_docs say so. A wrong key is answered at once, whatever
   the body: a body that never ends still gets its 401 (and the connection is closed).
3. A request with a body must say `Content-Type: application/json` (415 otherwise: a browser's
   cross-site "simple" request cannot, so this also stops CSRF against an open server on localhost).
4. The body is read here, as it streams in, and refused (413) as soon as it passes the limit,
   whether it has a Content-Length (refused before reading) or is chunked; the whole body must
   arrive within server.body_timeout_s (408). The app then gets the body from memory.

Refusals are OpenAI-style errors (errors.py), counted in the request metrics; those sent before the
body was read close the connection (`connection: close`).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from routerllm.server.errors import ApiError, refusal

# Query parameter names that carry credentials in common APIs (lower case; '-' and '_' alike).
CREDENTIAL_PARAMS = frozenset({
    "api_key", "apikey", "key", "token", "access_token", "auth", "authorization", "bearer", "password", "secret",
    "api_token", "x_api_key", "openai_api_key",
})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_TYPES = ("application/json",)


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in JSON_TYPES or (mime.startswith("application/") and mime.endswith("+json"))


class Guard:
    """See the module docstring. `record(path, status)` counts a refusal in the metrics."""

    def __init__(self, app: Any, *, keys: list[str], open_paths: set[str], max_body_bytes: int,
                 body_timeout_s: float, record: Callable[[str, int], None]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.open_paths = frozenset(open_paths)
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.record = record

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        has_body = _declares_body(headers)
        try:
            if scope.get("query_string"):
                self._check_query(scope["query_string"], has_body)
            if self.keys and scope["path"] not in self.open_paths:
                self._check_key(headers, has_body)
            if has_body:
                receive = await self._read_body(scope, headers, receive)
                if receive is None:
                    return  # the client went away while sending
        except ApiError as exc:
            self.record(scope["path"], exc.status)
            await exc.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_query(self, query: bytes, has_body: bool) -> None:
        if any(k in query for k in self.keys):
            raise self._key_in_url(has_body)
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            named = name.strip().lower().replace("-", "_") in CREDENTIAL_PARAMS
            holds = any(k in value.encode("latin-1", "replace") or k in name.encode("latin-1", "replace")
                        for k in self.keys)
            if named or holds:
                raise self._key_in_url(has_body)

    @staticmethod
    def _key_in_url(has_body: bool) -> ApiError:
        return refusal(400, "Do not put an API key in the URL: send it in the header 'Authorization: Bearer <key>'. "
                       "This request was refused and its query string was not logged.", "api_key_in_url",
                       close=has_body)

    def _check_key(self, headers: list[tuple[bytes, bytes]], has_body: bool) -> None:
        value = next((v for n, v in headers if n == b"authorization"), b"")
        scheme, _, key = value.partition(b" ")
        key = key.strip()
        auth_headers = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != b"bearer" or not key:
            raise refusal(401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key",
                          headers=auth_headers, close=has_body)
        matched = False
        for k in self.keys:  # compare with every key, so the time taken does not tell which matched
            matched |= hmac.compare_digest(key, k)
        if not matched:
            raise refusal(401, "Incorrect API key provided.", "invalid_api_key", headers=auth_headers, close=has_body)

    async def _read_body(self, scope: Any, headers: list[tuple[bytes, bytes]], receive: Any) -> Any:
        """The whole body, read within the limits; returns a `receive` that replays it (None: the
        client disconnected)."""
        if scope["method"] in BODY_METHODS:
            content_type = next((v for n, v in headers if n == b"content-type"), b"").decode("latin-1")
            if not _is_json(content_type):
                shown = content_type.split(";", 1)[0][:64] or "none"
                raise refusal(415, f"The request body must be JSON: send 'Content-Type: application/json' "
                              f"(got {shown}).", "unsupported_media_type", close=True)
        length = next((v for n, v in headers if n == b"content-length"), None)
        if length is not None and length.strip().isdigit() and int(length) > self.max_body_bytes:
            raise self._too_large(int(length))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise refusal(408, f"The request body did not arrive within {self.body_timeout_s:g} s "
                              "(server.body_timeout_s).", "request_timeout", close=True) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, for streaming answers

        return replay

    def _too_large(self, size: int | None) -> ApiError:
        has = f"has {size} bytes" if size is not None else "is longer"
        return refusal(413, f"The request body {has}; this server reads at most {self.max_body_bytes} bytes "
                       "(from server.max_prompt_chars). Shorten the prompt.", "request_too_large",
                       param="prompt", close=True)


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any((name == b"content-length" and value.strip() not in (b"0", b"")) or name == b"transfer-encoding"
               for name, value in headers)
