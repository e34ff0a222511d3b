"""How one operation of the OpenAPI document is described: its problems, parameters,
headers, bodies and answers.

The building blocks of :mod:`eventd.http.openapi_paths`. Error answers come
from one table, :data:`PROBLEMS` (the contract's, checked against
:mod:`eventd.http.problems` by the tests): an operation names the codes it can
answer and gets one ``application/problem+json`` response per status, whose
schema allows exactly those codes.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventd.http import openapi_schemas as s
from eventd.http.openapi_schemas import JsonSchema, ref
from eventd.http.problems import PROBLEM_JSON

ADMIN = "adminToken"  # the security scheme's name

# The contract's error table, and werkzeug's own routing errors:
# code -> (status, title as problems.py gives it, when, an example detail).
PROBLEMS: dict[str, tuple[int, str, str, str]] = {
    "malformed_json": (
        400,
        "Malformed JSON",
        "the body is not valid JSON",
        "The request body is not valid JSON.",
    ),
    "validation_failed": (
        400,
        "Validation failed",
        "the body, query or a header fails its schema; `errors` says where",
        "The request is not valid: maxAttendees: must be ≥ 1.",
    ),
    "bad_request": (
        400,
        "Bad request",
        "not a WebSocket handshake",
        "The browser (or proxy) sent a request that this server could not understand.",
    ),
    "unauthorized": (
        401,
        "Unauthorized",
        "no valid `Authorization: Bearer` token (only when tokens are configured)",
        "This route needs a valid admin bearer token.",
    ),
    "not_found": (
        404,
        "Not found",
        "no such resource (also for ids that are not UUIDs)",
        f"Event {s.EVENT_ID} does not exist.",
    ),
    "event_full": (
        409,
        "Event is full",
        "no spot left and no waitlist requested",
        f"Event {s.EVENT_ID} has no spots left (100/100).",
    ),
    "already_registered": (
        409,
        "Already registered",
        "the attendee already holds a registration for this event",
        f"Attendee {s.ATTENDEE_ID} is already registered for event {s.EVENT_ID}.",
    ),
    "email_taken": (
        409,
        "Email taken",
        "another attendee has this email (ignoring case)",
        "Another attendee already has the email john.doe@example.com.",
    ),
    "event_overlap": (
        409,
        "Event overlaps another",
        "same location and overlapping time as another event; `conflictingEventId` names it",
        f"Event {s.OTHER_EVENT_ID} is at Convention Center at the same time.",
    ),
    "capacity_below_registrations": (
        409,
        "Capacity below registrations",
        "`maxAttendees` lowered under the confirmed count",
        "98 registrations are confirmed; maxAttendees cannot be 50.",
    ),
    "event_started": (
        409,
        "Event has started",
        "the event's start time has passed",
        f"Event {s.EVENT_ID} has already started.",
    ),
    "idempotency_key_reused": (
        409,
        "Idempotency key reused",
        "this `Idempotency-Key` was sent with a different request",
        "The Idempotency-Key 'k-1' was already used with a different"
        " request; use a new key for a new request.",
    ),
    "payload_too_large": (
        413,
        "Payload too large",
        "the body is over `limits.max_body_bytes`",
        "The body is over the limit of 65536 bytes.",
    ),
    "unsupported_media_type": (
        415,
        "Unsupported media type",
        "the body is not `application/json`",
        "Send the body as application/json, not text/plain.",
    ),
    "rate_limited": (
        429,
        "Too many requests",
        "over the per-client rate; see `Retry-After`",
        "More than 50 requests per second from this address; retry in 1 s.",
    ),
    "unavailable": (
        503,
        "Service unavailable",
        "the database cannot be reached, or the answer did not come in time; see `Retry-After`",
        "The request could not be completed in time; please retry.",
    ),
}

# What every request can meet, by the kind of route.
BUSY = ("rate_limited", "unavailable")
BODY = ("malformed_json", "validation_failed", "payload_too_large", "unsupported_media_type")
POST_CODES = (*BODY, "idempotency_key_reused")  # validation_failed also covers a bad key
QUERY = ("validation_failed",)  # unknown parameters, bad values
STATIC = ("rate_limited",)


def param(name: str) -> JsonSchema:
    return {"$ref": f"#/components/parameters/{name}"}


def header(name: str) -> JsonSchema:
    return {"$ref": f"#/components/headers/{name}"}


def path_id(name: str, what: str) -> JsonSchema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": s.UUID,
        "description": f"The {what}'s id. One that is not a UUID names nothing: `404`.",
    }


def limit_parameter(default: int, maximum: int) -> JsonSchema:
    return {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        "description": f"Items per page, 1–{maximum}.",
    }


def query_text(name: str, max_length: int, description: str) -> JsonSchema:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "string", "maxLength": max_length, "pattern": s.NO_NUL},
        "description": description,
    }


PARAMETERS: dict[str, JsonSchema] = {
    "EventId": path_id("eventId", "event"),
    "AttendeeId": path_id("attendeeId", "attendee"),
    "RegistrationId": path_id("registrationId", "registration"),
    "Page": {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            # Printable ASCII; HTTP trims white space around a header value.
            "pattern": "^[!-~]([ -~]*[!-~])?$",
        },
        "description": "Makes a retry safe: the same key and body within 24 hours gets the"
        " first answer again (with `Idempotent-Replayed: true`) and does nothing twice."
        " Send a new random key (a UUID) per operation.",
        "example": "4b0a3c1e-6f1d-4a8e-9c3b-2d7e5f6a8b90",
    },
}

HEADERS: dict[str, JsonSchema] = {
    "Location": {
        "schema": {"type": "string"},
        "required": True,
        "description": "The new resource's path.",
    },
    "IdempotentReplayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present when this is the stored answer to an earlier request with"
        " the same `Idempotency-Key`.",
    },
    "RetryAfter": {
        "schema": {"type": "integer", "minimum": 1},
        "required": True,
        "description": "Seconds to wait before retrying.",
    },
    "WWWAuthenticate": {"schema": {"type": "string"}, "required": True},
}


def problem_example(code: str) -> JsonSchema:
    status, title, _when, detail = PROBLEMS[code]
    example: JsonSchema = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if code == "validation_failed":
        example["errors"] = [{"field": "maxAttendees", "message": "must be ≥ 1"}]
    if code == "event_overlap":
        example["conflictingEventId"] = s.OTHER_EVENT_ID
    return example


def problem_responses(codes: Iterable[str], *, replayable: bool = False) -> dict[str, JsonSchema]:
    """The problem responses for ``codes``, one per status, each listing its codes."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(PROBLEMS[code][0], []).append(code)
    responses: dict[str, JsonSchema] = {}
    for status, group in sorted(by_status.items()):
        schema = {
            "allOf": [
                ref("Problem"),
                {"properties": {"status": {"const": status}, "code": {"enum": group}}},
            ]
        }
        examples = {code: {"value": problem_example(code)} for code in group}
        response: JsonSchema = {
            "description": "; ".join(f"`{code}`: {PROBLEMS[code][2]}" for code in group) + ".",
            "content": {PROBLEM_JSON: {"schema": schema, "examples": examples}},
        }
        headers: dict[str, JsonSchema] = {}
        if status in (429, 503):
            headers["Retry-After"] = header("RetryAfter")
        if status == 401:
            headers["WWW-Authenticate"] = header("WWWAuthenticate")
        if replayable and status in (404, 409):  # the refusals an idempotent POST stores
            headers["Idempotent-Replayed"] = header("IdempotentReplayed")
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses


def answer(schema: str, description: str, *examples: JsonSchema) -> JsonSchema:
    content: JsonSchema = {"schema": ref(schema)}
    if len(examples) == 1:
        content["example"] = examples[0]
    elif examples:
        content["examples"] = {f"example{i}": {"value": e} for i, e in enumerate(examples, 1)}
    return {"description": description, "content": {"application/json": content}}


def page_example(item: JsonSchema, page_limit: int = 20) -> JsonSchema:
    return {"items": [item], "total": 1, "page": 1, "limit": page_limit}


def created(
    schema: str, example: JsonSchema, what: str, links: dict[str, tuple[str, str]]
) -> JsonSchema:
    """A 201; ``links``: operationId -> (its path parameter, the field of this body)."""
    response = answer(schema, f"Created: the {what}.", example)
    response["headers"] = {
        "Location": header("Location"),
        "Idempotent-Replayed": header("IdempotentReplayed"),
    }
    response["links"] = {
        operation_id[0].upper() + operation_id[1:]: {
            "operationId": operation_id,
            "parameters": {parameter: f"$response.body#/{field}"},
        }
        for operation_id, (parameter, field) in links.items()
    }
    return response


def request_body(schema: str, **examples: JsonSchema) -> JsonSchema:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": ref(schema),
                "examples": {name: {"value": value} for name, value in examples.items()},
            }
        },
    }


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, JsonSchema],
    *,
    description: str = "",
    parameters: Iterable[JsonSchema] = (),
    body: JsonSchema | None = None,
    admin: bool = False,
) -> JsonSchema:
    described: JsonSchema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        described["description"] = description
    if admin:
        described["security"] = [{ADMIN: []}]
        responses = {**responses, **problem_responses(["unauthorized"])}
    if parameters:
        described["parameters"] = list(parameters)
    if body is not None:
        described["requestBody"] = body
    described["responses"] = dict(sorted(responses.items()))
    return described


def post(
    operation_id: str,
    tag: str,
    summary: str,
    *,
    body: JsonSchema,
    responses: dict[str, JsonSchema],
    codes: Iterable[str],
    description: str = "",
    admin: bool = False,
) -> JsonSchema:
    """A POST: idempotent, with a JSON body."""
    return operation(
        operation_id,
        tag,
        summary,
        {**responses, **problem_responses([*POST_CODES, *codes, *BUSY], replayable=True)},
        description=description,
        parameters=[param("IdempotencyKey")],
        body=body,
        admin=admin,
    )


NO_CONTENT: JsonSchema = {"description": "Done; no body."}
NOT_MODIFIED: JsonSchema = {"description": "The copy named by `If-None-Match` is current."}
TEXT: JsonSchema = {"type": "string"}


def stream_operation(
    operation_id: str,
    summary: str,
    description: str,
    codes: list[str],
    parameters: Iterable[JsonSchema] = (),
) -> JsonSchema:
    return operation(
        operation_id,
        "streams",
        summary,
        {
            "101": {
                "description": "Switching Protocols: the stream is open. Each message is one"
                " JSON text frame, a `StreamMessage` (see components). The server pings idle"
                " connections; a client that cannot keep up is closed with 1013 and can"
                " resume with `?since=`; shutdown closes with 1001."
            },
            **problem_responses(codes),
        },
        description=description + " A plain `GET` (not a WebSocket handshake) is"
        " `400 bad_request`.",
        parameters=parameters,
    )


def html(description: str) -> JsonSchema:
    return {"description": description, "content": {"text/html": {"schema": TEXT}}}
