"""How one operation of the OpenAPI document is written: its problems, parameters,
headers, bodies and answers.

The building blocks of :mod:`eventd.http.openapi_paths`. Error answers come
from the daemon's own problem table (:data:`eventd.http.problems.PROBLEMS`):
an operation names the codes it can answer beyond those its shape implies (a
body, a query, an id in the path, an admin lock) and gets one
``application/problem+json`` response per status, whose schema allows exactly
those codes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from eventd.http import openapi_examples as x
from eventd.http.admission import TOKEN_PATTERN
from eventd.http.idempotency import MAX_KEY_CHARS
from eventd.http.problems import PROBLEM_JSON, PROBLEMS
from eventd.http.schemas import NO_NUL

JsonSchema = dict[str, Any]

ADMIN = "adminToken"  # the security scheme's name

# What requests meet, by the kind of route.
BUSY = ("rate_limited", "unavailable")
PAGES = ("rate_limited",)  # pages and stream handshakes
BODY = ("malformed_json", "validation_failed", "payload_too_large", "unsupported_media_type")

UUID: JsonSchema = {"type": "string", "format": "uuid"}
TEXT: JsonSchema = {"type": "string"}
# The ids a path can hold -> their parameters in components.
_PATH_IDS = {"eventId": "EventId", "attendeeId": "AttendeeId", "registrationId": "RegistrationId",
             "webhookId": "WebhookId",
             "ticketId": "TicketId"}


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def param(name: str) -> JsonSchema:
    return {"$ref": f"#/components/parameters/{name}"}


def header(name: str) -> JsonSchema:
    return {"$ref": f"#/components/headers/{name}"}


def _path_id(name: str, what: str) -> JsonSchema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": UUID,
        "description": f"The {what}'s id. One that is not a UUID names nothing: `404`.",
    }


PARAMETERS: dict[str, JsonSchema] = {
    "EventId": _path_id("eventId", "event"),
    "AttendeeId": _path_id("attendeeId", "attendee"),
    "RegistrationId": _path_id("registrationId", "registration"),
    "WebhookId": _path_id("webhookId", "webhook endpoint"),
    "TicketId": _path_id("ticketId", "queue ticket"),
    "Page": {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
    },
    "ManageToken": {
        "name": "token",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": "The registration's manage token (the `manageToken` of its `201`, or"
        " the one in its email's link); or send it as `Registration-Token`, or an admin"
        " token as `Authorization: Bearer`. Without any: `403 forbidden`.",
    },
    "RegistrationToken": {
        "name": "Registration-Token",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": "The registration's manage token, as a header instead of `?token=`.",
    },
    "AdmissionToken": {
        "name": "Admission-Token",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": TOKEN_PATTERN},
        "description": "For an event with `admission`: the `token` of its queue ticket"
        " (`POST /events/{eventId}/queue`), once the ticket is `admitted`. It makes one"
        " registration, before its `expiresAt`; a registration refused for another reason"
        " (`already_registered`, `event_full`, …) leaves it unused. Without it, or not an"
        " admitted ticket's of this event: `403 admission_required`; used already:"
        " `409 admission_used`; expired: `410 admission_expired`. An event without"
        " `admission` ignores it.",
    },
    # No example: Swagger UI would send it with every "Try it out", and every POST after
    # the first would be refused as the key reused.
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_CHARS,
            # Printable ASCII; HTTP trims white space around a header value.
            "pattern": "^[!-~]([ -~]*[!-~])?$",
        },
        "description": "Makes a retry safe: the same key and body within 24 hours gets the"
        " first answer again (with `Idempotent-Replayed: true`) and does nothing twice."
        " Make a new random key (a UUID) for each new operation, and send that same key"
        " again only to retry it; a key sent before with another body is refused"
        " (`409 idempotency_key_reused`). Leave it out when no retry is planned.",
    },
}

HEADERS: dict[str, JsonSchema] = {
    "Location": {
        "schema": TEXT,
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
    "WWWAuthenticate": {"schema": TEXT, "required": True},
    "ContentDisposition": {
        "schema": {"type": "string", "pattern": "^attachment; filename="},
        "required": True,
        "description": "`attachment`, with the file's name.",
    },
}


def query(name: str, schema: JsonSchema, description: str) -> JsonSchema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def query_text(name: str, max_length: int, description: str) -> JsonSchema:
    schema = {"type": "string", "maxLength": max_length, "pattern": NO_NUL}
    return query(name, schema, description)


def limit(default: int, maximum: int) -> JsonSchema:
    schema = {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}
    return query("limit", schema, f"Items per page, 1–{maximum}.")


# --- problems -----------------------------------------------------------------------


def _problem_example(code: str) -> JsonSchema:
    status, title, _when = PROBLEMS[code]
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "code": code,
        "detail": x.PROBLEM_DETAILS[code],
        **x.PROBLEM_EXTRAS.get(code, {}),
    }


def problem_responses(codes: Iterable[str], *, replayable: bool = False) -> dict[str, JsonSchema]:
    """The problem responses for ``codes``, one per status, each listing its codes."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(PROBLEMS[code].status, []).append(code)
    responses: dict[str, JsonSchema] = {}
    for status, group in sorted(by_status.items()):
        schema = {
            "allOf": [
                ref("Problem"),
                {"properties": {"status": {"const": status}, "code": {"enum": group}}},
            ]
        }
        examples = {code: {"value": _problem_example(code)} for code in group}
        response: JsonSchema = {
            "description": "; ".join(f"`{code}`: {PROBLEMS[code].when}" for code in group) + ".",
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


# --- answers ------------------------------------------------------------------------


def answer(schema: str, description: str, *examples: JsonSchema) -> JsonSchema:
    content: JsonSchema = {"schema": ref(schema)}
    if len(examples) == 1:
        content["example"] = examples[0]
    elif examples:
        content["examples"] = {f"example{i}": {"value": e} for i, e in enumerate(examples, 1)}
    return {"description": description, "content": {"application/json": content}}


def page(schema: str, description: str, item: JsonSchema, page_limit: int = 20) -> JsonSchema:
    example = {"items": [item], "total": 1, "page": 1, "limit": page_limit}
    return answer(schema, description, example)


def created(
    schema: str, what: str, links: dict[str, tuple[str, str]], **examples: JsonSchema
) -> JsonSchema:
    """A 201; ``links``: operationId -> (its path parameter, the field of this body)."""
    named = {name: {"value": value} for name, value in examples.items()}
    return {
        "description": f"Created: the {what}.",
        "headers": {
            "Location": header("Location"),
            "Idempotent-Replayed": header("IdempotentReplayed"),
        },
        "content": {"application/json": {"schema": ref(schema), "examples": named}},
        "links": {
            operation_id[0].upper() + operation_id[1:]: {
                "operationId": operation_id,
                "parameters": {parameter: f"$response.body#/{field}"},
            }
            for operation_id, (parameter, field) in links.items()
        },
    }


def files(*media_types: str, description: str = "The file.") -> JsonSchema:
    return {"description": description, "content": {t: {"schema": TEXT} for t in media_types}}


NO_CONTENT: JsonSchema = {"description": "Done; no body."}
NOT_MODIFIED: JsonSchema = {"description": "The copy named by `If-None-Match` is current."}
SWITCHING_PROTOCOLS: JsonSchema = {
    "description": "Switching Protocols: the stream is open. Each message is one JSON text"
    " frame, a `StreamMessage` (see components). The server pings idle connections; a"
    " client that cannot keep up is closed with 1013 and can resume with `?since=`;"
    " shutdown closes with 1001."
}


# --- operations ---------------------------------------------------------------------


def operation(
    method: str,
    path: str,
    operation_id: str,
    tag: str,
    summary: str,
    answers: dict[int, JsonSchema],
    *,
    codes: Iterable[str] = (),
    busy: Iterable[str] = BUSY,
    description: str = "",
    parameters: Iterable[JsonSchema] = (),
    body: tuple[str, dict[str, JsonSchema]] | None = None,
    admin: bool = False,
    idempotent: bool = True,
) -> tuple[str, str, JsonSchema]:
    """One operation, as (path, method, its description).

    The problems its shape implies are added to ``codes``: a body's
    (and, for a ``POST``, an idempotency key's), a query's, a path id's
    ``not_found`` and an admin lock's ``unauthorized``; ``busy`` are those
    of a loaded daemon. ``body`` is (its schema, its examples by name).
    ``idempotent`` False: a ``POST`` that takes no idempotency key.
    """
    parameters = list(parameters)
    implied: list[str] = []
    if body is not None:
        implied += BODY
    if method == "POST" and idempotent:
        implied.append("idempotency_key_reused")
        parameters.insert(0, param("IdempotencyKey"))
    if any(p.get("in") == "query" or p == param("Page") for p in parameters):
        implied.append("validation_failed")
    if any(name in _PATH_IDS for name in re.findall(r"\{(\w+)\}", path)):
        implied.append("not_found")
    if admin:
        implied.append("unauthorized")
    problems = problem_responses([*implied, *codes, *busy],
                                 replayable=method == "POST" and idempotent)
    responses = {**{str(status): a for status, a in answers.items()}, **problems}
    described: JsonSchema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        described["description"] = description
    if admin:
        described["security"] = [{ADMIN: []}]
    if parameters:
        described["parameters"] = parameters
    if body is not None:
        schema, examples = body
        named = {name: {"value": value} for name, value in examples.items()}
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(schema), "examples": named}},
        }
    described["responses"] = dict(sorted(responses.items()))
    return path, method.lower(), described


def paths(operations: Iterable[tuple[str, str, JsonSchema]]) -> dict[str, JsonSchema]:
    """The path items of ``operations``; a path's id parameter is said once, on its item."""
    items: dict[str, JsonSchema] = {}
    for path, method, described in operations:
        item = items.setdefault(path, {})
        ids = [_PATH_IDS[name] for name in re.findall(r"\{(\w+)\}", path) if name in _PATH_IDS]
        if ids:
            item["parameters"] = [param(name) for name in ids]
        item[method] = described
    return items
