"""Errors as the client sees them: `ApiError` and the handlers that turn every failure into an
OpenAI-style body `{"error": {message, type, param, code}}`.

What a client is told is written for the client: it names the request field at fault and what to
send instead, never a file path, an endpoint address or an operator's "Fix:" hint (those go to the
server log). A tier's failure (BackendTimeout, BackendUnavailable) is described by its kind and
the tier's name only; a BackendRejected (the request is at fault, e.g. a replay tier asked for a
task it has not recorded) is a 400 with the tier's client-facing message.

    400 invalid_request_error   a field is wrong (param names it), unsupported parameter, bad JSON
    401 authentication_error    missing or wrong bearer key
    404 not_found_error         unknown route or model
    405 invalid_request_error   wrong method
    408 invalid_request_error   the body did not arrive within server.body_timeout_s
    413 invalid_request_error   the body is larger than the server reads
    415 invalid_request_error   the body is not application/json
    429 rate_limit_error        the queue is full (Retry-After)
    500 server_error            a bug: the log has the traceback; the client gets no detail
    503 service_unavailable_error   a tier failed and no fallback answered
    504 timeout_error           no answer within server.request_timeout_s
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from routerllm.exceptions import BackendRejected
from routerllm.server import protocol as p

logger = logging.getLogger(__name__)

# Every status an endpoint may answer with besides 200, for the OpenAPI document.
ERROR_STATUSES = {
    400: "Invalid request: a field is wrong (`param` names it), an unsupported parameter, or malformed JSON",
    401: "Missing or wrong API key (send `Authorization: Bearer <key>`)",
    404: "Unknown route or model",
    408: "The request body did not arrive within server.body_timeout_s",
    413: "The request body is larger than this server reads",
    415: "The request body is not `application/json`",
    429: "The queue is full: retry after the `Retry-After` header's seconds",
    500: "Internal error (a bug; the server log has the details)",
    503: "A tier failed and no fallback could answer",
    504: "No answer within server.request_timeout_s",
}


# The detail of FastAPI's HTTPException when a body cannot be decoded (fastapi 0.165, routing.py).
FASTAPI_BODY_ERROR = "There was an error parsing the body"


class ApiError(Exception):
    """An error answered with an OpenAI-style body. `close`: end the connection after it (the
    request's body was not read, so the connection cannot carry another request)."""

    def __init__(
        self,
        status: int,
        message: str,
        type: p.ErrorType,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = dict(headers or {})
        if close:
            self.headers["connection"] = "close"
        # set once the request has been counted in the metrics (so the handler does not count it again)
        self.recorded = False

    def response(self) -> JSONResponse:
        return JSONResponse(
            p.error_body(self.message, self.type, self.param, self.code), status_code=self.status, headers=self.headers
        )


def rejected(exc: BackendRejected) -> ApiError:
    """A tier's refusal of the request itself: a 400 with its client-facing message."""
    logger.info("tier %s rejected a request: %s", exc.tier, exc)  # with the operator's fix
    return ApiError(400, exc.message, "invalid_request_error", param=exc.param, code=exc.code)


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return ApiError(400, f"The request body is not valid JSON ({detail}).", "invalid_request_error",
                        code="invalid_json")
    loc = [x for x in first.get("loc", ()) if x != "body"]
    # drop pydantic's union-member tags ('str', 'list[str]', 'function-after[...]') from the path
    loc = [x for x in loc if not (isinstance(x, str) and ("[" in x or x in ("str", "int", "float", "bool")))]
    param = ".".join(str(x) for x in loc) or None
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "unsupported_parameter":
        return ApiError(400, f"{msg}.", "invalid_request_error", param=param, code="unsupported_parameter")
    if param is None:
        return ApiError(400, f"The request body is invalid: {msg} (send a JSON object).", "invalid_request_error",
                        code="invalid_value")
    return ApiError(400, f"Invalid value for '{param}': {msg}.", "invalid_request_error", param=param,
                    code="invalid_value")


def install_handlers(app: FastAPI, record: Callable[[Request, int], None]) -> None:
    """Make every error an OpenAI-style JSON body; `record(request, status)` counts it."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if not exc.recorded:
            record(request, exc.status)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        record(request, 400)
        return _validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        record(request, exc.status_code)
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:
            # FastAPI's answer when json.loads fails otherwise than with a JSONDecodeError: bytes that are
            # not UTF-8, or nesting deeper than Python's recursion limit
            return ApiError(400, "The request body is not valid JSON (it must be UTF-8, and not nested deeper than "
                            "a few hundred levels).", "invalid_request_error", code="invalid_json").response()
        kind: p.ErrorType = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        return ApiError(exc.status_code, f"{message}: {request.method} {request.url.path}", kind,
                        headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        record(request, 500)
        return ApiError(500, "Internal error; the server log has the details.", "server_error",
                        code="internal_error").response()


def refusal(status: int, message: str, code: str, **kwargs: Any) -> ApiError:
    """An ApiError of the request guard (before the app): the error type follows the status."""
    kind: p.ErrorType = {401: "authentication_error", 404: "not_found_error", 503: "service_unavailable_error"}.get(
        status, "invalid_request_error")
    return ApiError(status, message, kind, code=code, **kwargs)
