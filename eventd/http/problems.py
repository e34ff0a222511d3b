"""Domain errors as RFC 9457 problem responses, from the one table of problem codes.

:data:`PROBLEMS` gives every ``code`` the daemon can answer its status, its
title and, for the OpenAPI document (``eventd.http.openapi``), when it is
sent. Both the responses here and the document's error answers read it, so
the two cannot disagree.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import orjson
from quart import Response
from werkzeug.exceptions import HTTPException

from eventd import errors as e

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemType(NamedTuple):
    status: int
    title: str
    when: str  # for the document; empty for codes it does not list


PROBLEMS: dict[str, ProblemType] = {
    "malformed_json": ProblemType(400, "Malformed JSON", "the body is not valid JSON"),
    "validation_failed": ProblemType(
        400,
        "Validation failed",
        "the body, query or a header fails its schema; `errors` says where",
    ),
    "bad_request": ProblemType(400, "Bad request", "not a WebSocket handshake"),
    "unauthorized": ProblemType(
        401,
        "Unauthorized",
        "no valid `Authorization: Bearer` token (only when tokens are configured)",
    ),
    "forbidden": ProblemType(
        403,
        "Forbidden",
        "an owner action without the registration's manage token (`?token=` or"
        " `Registration-Token`) or an admin token",
    ),
    "not_found": ProblemType(
        404, "Not found", "no such resource (also for ids that are not UUIDs)"
    ),
    "method_not_allowed": ProblemType(405, "Method not allowed", ""),
    "event_full": ProblemType(409, "Event is full", "no spot left and no waitlist requested"),
    "already_registered": ProblemType(
        409,
        "Already registered",
        "the attendee already holds a registration for this event",
    ),
    "email_taken": ProblemType(
        409, "Email taken", "another attendee has this email (ignoring case)"
    ),
    "event_overlap": ProblemType(
        409,
        "Event overlaps another",
        "same location and overlapping time as another event; `conflictingEventId` names it",
    ),
    "capacity_below_registrations": ProblemType(
        409, "Capacity below registrations", "`maxAttendees` lowered under the confirmed count"
    ),
    "event_started": ProblemType(409, "Event has started", "the event's start time has passed"),
    "idempotency_key_reused": ProblemType(
        409,
        "Idempotency key reused",
        "this `Idempotency-Key` was sent with a different request",
    ),
    "hold_expired": ProblemType(
        409, "Hold expired", "confirm after the hold's or offer's `expiresAt`"
    ),
    "not_held": ProblemType(
        409,
        "Not held",
        "confirm of a registration that is waitlisted or cancelled: only a held seat or an"
        " offer can be confirmed",
    ),
    "payload_too_large": ProblemType(
        413, "Payload too large", "the body is over `limits.max_body_bytes`"
    ),
    "unsupported_media_type": ProblemType(
        415, "Unsupported media type", "the body is not `application/json`"
    ),
    "rate_limited": ProblemType(
        429, "Too many requests", "over the per-client rate; see `Retry-After`"
    ),
    "unavailable": ProblemType(
        503,
        "Service unavailable",
        "the database cannot be reached, or the answer did not come in time;"
        " see `Retry-After`",
    ),
    # A bug, never documented: details only in the log.
    "internal_error": ProblemType(500, "Internal server error", ""),
}

# werkzeug's own HTTP errors (routing, limits), by status.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_HTTP_DETAILS = {
    404: "No such resource.",
    405: "This method is not allowed on this resource.",
    413: "The request body is over the size limit.",
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
    found = PROBLEMS.get(error.code)
    # Only InternalError means a 500 on purpose; a class that forgot its code is a bug.
    if found is None or (error.code == "internal_error" and not isinstance(error, e.InternalError)):
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
    return problem(found.status, error.code, found.title, error.detail, headers, **extra)


def from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    title = PROBLEMS[code].title if code in PROBLEMS else exc.name
    detail = _HTTP_DETAILS.get(status, exc.description or "")
    headers = {}
    if status == 405 and exc.get_headers():
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    return problem(status, code, title, detail, headers)


def internal_error() -> Response:
    found = PROBLEMS["internal_error"]
    return problem(found.status, "internal_error", found.title,
                   "The server could not complete the request.")
