"""Domain errors as RFC 9457 problem responses: the one table that maps them."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from quart import Response
from werkzeug.exceptions import HTTPException

from eventd import errors as e

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# code -> (status, title)
_TABLE: dict[type[e.EventdError], tuple[int, str]] = {
    e.MalformedJson: (400, "Malformed JSON"),
    e.ValidationFailed: (400, "Validation failed"),
    e.Unauthorized: (401, "Unauthorized"),
    e.NotFound: (404, "Not found"),
    e.EventFull: (409, "Event is full"),
    e.AlreadyRegistered: (409, "Already registered"),
    e.EmailTaken: (409, "Email taken"),
    e.EventOverlap: (409, "Event overlaps another"),
    e.CapacityBelowRegistrations: (409, "Capacity below registrations"),
    e.EventStarted: (409, "Event has started"),
    e.IdempotencyKeyReused: (409, "Idempotency key reused"),
    e.PayloadTooLarge: (413, "Payload too large"),
    e.UnsupportedMediaType: (415, "Unsupported media type"),
    e.RateLimited: (429, "Too many requests"),
    e.Unavailable: (503, "Service unavailable"),
    e.InternalError: (500, "Internal server error"),
}

# werkzeug's own HTTP errors (routing, limits) -> code
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "code": code,
            "detail": detail, **extra}
    return Response(orjson.dumps(body), status=status, content_type=PROBLEM_JSON,
                    headers=headers)


def from_error(error: e.EventdError) -> Response:
    for cls in type(error).__mro__:
        if cls in _TABLE:
            status, title = _TABLE[cls]
            break
    else:
        log.error("unmapped domain error %s: %s", type(error).__name__, error.detail)
        return internal_error()
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(error, e.ValidationFailed):
        extra["errors"] = [{"field": f.field, "message": f.message} for f in error.errors]
    if isinstance(error, e.EventOverlap):
        extra["conflictingEventId"] = str(error.conflicting_event_id)
    if isinstance(error, e.RateLimited | e.Unavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, e.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="eventd"'
    if isinstance(error, e.PayloadTooLarge):
        headers["Connection"] = "close"  # the rest of the body is never read
    return problem(status, error.code, title, error.detail, headers, **extra)


def from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    detail = {
        404: "No such resource.",
        405: "This method is not allowed on this resource.",
        413: "The request body is over the size limit.",
    }.get(status, exc.description or "")
    headers = {}
    if status == 405 and exc.get_headers():
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    return problem(status, code, exc.name, detail, headers)


def internal_error() -> Response:
    return problem(500, "internal_error", "Internal server error",
                   "The server could not complete the request.")
