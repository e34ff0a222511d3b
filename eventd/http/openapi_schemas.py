"""The shapes of eventd's bodies and stream messages, as JSON Schema for the OpenAPI document.

Request bodies are derived from the pydantic models that validate them
(:mod:`eventd.http.schemas`), so the document cannot drift from validation.
Responses are written out here to match what the daemon sends — the
``to_json`` of :mod:`eventd.model`, the pages of the routes, ``/health``,
problem+json, the WebSocket frames — field for field: every object is closed
(``additionalProperties: false``) and every field it always carries is
required. ``tests/test_openapi.py`` validates real ``to_json`` output and
stream frames against these, and schemathesis validates live answers.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from eventd.http import schemas

JsonSchema = dict[str, Any]


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, JsonSchema], *, optional: tuple[str, ...] = (), description: str = ""
) -> JsonSchema:
    """A closed object: no field beyond ``properties``; all required but ``optional``."""
    schema: JsonSchema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


UUID: JsonSchema = {"type": "string", "format": "uuid"}
COUNT: JsonSchema = {"type": "integer", "minimum": 0}
TIMESTAMP: JsonSchema = {
    "type": "string",
    "format": "date-time",
    # eventd.model.format_time: UTC, a trailing Z, milliseconds only when not zero.
    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$",
    "description": "RFC 3339 in UTC with a trailing `Z`; milliseconds only when not zero.",
}
REGISTRATION_STATUS: JsonSchema = {"type": "string", "enum": ["confirmed", "waitlisted"]}

# --- examples (one world: the event, attendee and registration refer to each other) ---

EVENT_ID = "7c1e2b9a-4f0e-4a53-9a55-0c6f1f1f3a01"
OTHER_EVENT_ID = "0b5d3e61-8c1a-4f7e-b0a2-93c4d5e6f708"
ATTENDEE_ID = "3f2a9c4e-1b7d-4e8a-9f60-5d4c3b2a1908"
REGISTRATION_ID = "a4b1c2d3-e5f6-4789-8abc-def012345678"

EVENT_EXAMPLE: JsonSchema = {
    "id": EVENT_ID,
    "name": "Tech Conference 2030",
    "description": "Annual tech conference",
    "date": "2030-06-01T07:00:00Z",
    "durationMinutes": 480,
    "endsAt": "2030-06-01T15:00:00Z",
    "location": "Convention Center",
    "maxAttendees": 100,
    "registeredCount": 98,
    "availableSpots": 2,
    "waitlistCount": 0,
    "version": 17,
    "createdAt": "2029-11-02T10:15:00Z",
    "updatedAt": "2030-02-14T08:01:12.250Z",
}
ATTENDEE_EXAMPLE: JsonSchema = {
    "id": ATTENDEE_ID,
    "name": "John Doe",
    "email": "john.doe@example.com",
    "createdAt": "2029-12-01T12:00:00Z",
}
REGISTRATION_EXAMPLE: JsonSchema = {
    "id": REGISTRATION_ID,
    "eventId": EVENT_ID,
    "attendeeId": ATTENDEE_ID,
    "status": "confirmed",
    "waitlistPosition": None,
    "createdAt": "2030-01-05T09:30:00.125Z",
}
WAITLISTED_EXAMPLE: JsonSchema = {
    **REGISTRATION_EXAMPLE,
    "status": "waitlisted",
    "waitlistPosition": 3,
}

HEALTH_OK_EXAMPLE: JsonSchema = {
    "status": "ok",
    "checks": {
        "database": {"status": "up", "latencyMs": 0.42},
        "email": {
            "status": "up",
            "transport": "file",
            "pending": 0,
            "failing": 0,
            "oldestPendingSeconds": None,
        },
        "redis": {"status": "disabled"},
        "actors": {"live": 12},
        "websocket": {"connections": 3},
    },
}
HEALTH_DOWN_EXAMPLE: JsonSchema = {
    "status": "down",
    "checks": {
        "database": {"status": "down"},
        "email": {"status": "unknown", "transport": "file"},
        "redis": {"status": "disabled"},
        "actors": {"live": 0},
        "websocket": {"connections": 3},
    },
}
METRICS_EXAMPLE = """\
# HELP eventd_http_requests_total HTTP requests answered, by route, method and status.
# TYPE eventd_http_requests_total counter
eventd_http_requests_total{method="POST",route="/registrations",status="201"} 1042.0
"""

# --- responses ------------------------------------------------------------------

EVENT: JsonSchema = _object(
    {
        "id": UUID,
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 5000},
        "date": {**TIMESTAMP, "description": "The start."},
        "durationMinutes": {"type": "integer", "minimum": 1, "maximum": 10080},
        "endsAt": {**TIMESTAMP, "description": "`date` + `durationMinutes`."},
        "location": {"type": "string", "minLength": 1, "maxLength": 200},
        "maxAttendees": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "registeredCount": {**COUNT, "description": "Confirmed registrations."},
        "availableSpots": {**COUNT, "description": "`maxAttendees` − `registeredCount`."},
        "waitlistCount": COUNT,
        "version": {
            "type": "integer",
            "minimum": 1,
            "description": "Rises by one on every change; the `seq` of its stream.",
        },
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
    },
    description="An event. `endsAt`, the counts and `version` are read-only.",
)
EVENT_SUMMARY: JsonSchema = _object(
    {
        "id": UUID,
        "name": EVENT["properties"]["name"],
        "date": TIMESTAMP,
        "location": EVENT["properties"]["location"],
    }
)
ATTENDEE: JsonSchema = _object(
    {
        "id": UUID,
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "email": {"type": "string", "maxLength": 254, "description": "Stored as given."},
        "createdAt": TIMESTAMP,
    }
)
ATTENDEE_SUMMARY: JsonSchema = _object(
    {name: ATTENDEE["properties"][name] for name in ("id", "name", "email")}
)
_REGISTRATION_PROPERTIES: dict[str, JsonSchema] = {
    "id": UUID,
    "eventId": UUID,
    "attendeeId": UUID,
    "status": REGISTRATION_STATUS,
    "waitlistPosition": {
        "type": ["integer", "null"],
        "minimum": 1,
        "description": "1-based place in the queue while `waitlisted`, else null.",
    },
    "createdAt": TIMESTAMP,
}
REGISTRATION: JsonSchema = _object(_REGISTRATION_PROPERTIES)
ATTENDEE_REGISTRATION: JsonSchema = _object(
    {**_REGISTRATION_PROPERTIES, "event": ref("EventSummary")},
    description="One of an attendee's registrations, with a summary of its event.",
)
EVENT_REGISTRATION: JsonSchema = _object(
    {**_REGISTRATION_PROPERTIES, "attendee": ref("AttendeeSummary")},
    description="One of an event's registrations, with its attendee.",
)


def page(item: str) -> JsonSchema:
    return _object(
        {
            "items": {"type": "array", "items": ref(item)},
            "total": {**COUNT, "description": "Items on every page together."},
            "page": {"type": "integer", "minimum": 1},
            "limit": {"type": "integer", "minimum": 1},
        },
        description=f"A page of {item} items.",
    )


FIELD_PROBLEM: JsonSchema = _object(
    {
        "field": {
            "type": "string",
            "description": "The body field (camelCase, dotted when nested), query parameter"
            " or header at fault; empty for the body as a whole.",
        },
        "message": {"type": "string"},
    }
)
PROBLEM: JsonSchema = {
    **_object(
        {
            "type": {"type": "string", "description": "Always `about:blank`."},
            "title": {"type": "string", "minLength": 1},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "string", "minLength": 1, "description": "The stable key."},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": ref("FieldProblem"),
                "description": "With `validation_failed`: one entry per problem.",
            },
            "conflictingEventId": {**UUID, "description": "With `event_overlap`."},
        },
        optional=("errors", "conflictingEventId"),
        description="An RFC 9457 problem (`application/problem+json`).",
    ),
    "allOf": [
        {
            "if": {"properties": {"code": {"const": "validation_failed"}}},
            "then": {"required": ["errors"]},
        },
        {
            "if": {"properties": {"code": {"const": "event_overlap"}}},
            "then": {"required": ["conflictingEventId"]},
        },
    ],
}

_UP_DOWN = {"type": "string", "enum": ["up", "down"]}
_LATENCY_MS: JsonSchema = {"type": "number", "minimum": 0}
HEALTH: JsonSchema = _object(
    {
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "checks": _object(
            {
                "database": _object(
                    {"status": _UP_DOWN, "latencyMs": _LATENCY_MS}, optional=("latencyMs",)
                ),
                "redis": _object(
                    {
                        "status": {"type": "string", "enum": ["up", "down", "disabled"]},
                        "latencyMs": _LATENCY_MS,
                    },
                    optional=("latencyMs",),
                ),
                "email": _object(
                    {
                        "status": {"type": "string", "enum": ["up", "degraded", "unknown"]},
                        "transport": {"type": "string", "description": "`email.transport`."},
                        "pending": COUNT,
                        "failing": {**COUNT, "description": "Pending; last attempt failed."},
                        "oldestPendingSeconds": {"type": ["number", "null"]},
                    },
                    optional=("pending", "failing", "oldestPendingSeconds"),
                    description="The outbox; `unknown` (transport only) while the"
                    " database is down.",
                ),
                "actors": _object({"live": COUNT}),
                "websocket": _object({"connections": COUNT}),
            }
        ),
    }
)

# --- WebSocket frames -------------------------------------------------------------


def _message(types: list[str], data: JsonSchema, description: str) -> JsonSchema:
    return _object(
        {
            "type": {"type": "string", "enum": types},
            "eventId": UUID,
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "The event's `version` after the change; per event,"
                " strictly increasing.",
            },
            "at": TIMESTAMP,
            "data": data,
        },
        description=description,
    )


STREAM_MESSAGES: dict[str, JsonSchema] = {
    "EventMessage": _message(
        ["newEvent", "eventUpdated", "snapshot"],
        ref("Event"),
        "The whole event: created, edited, or (`snapshot`) as a per-event stream starts.",
    ),
    "EventDeletedMessage": _message(
        ["eventDeleted"],
        _object({"id": UUID}),
        "The event is gone; a per-event stream then closes with 1000.",
    ),
    "EventCapacityUpdateMessage": _message(
        ["eventCapacityUpdate"],
        _object(
            {
                "maxAttendees": EVENT["properties"]["maxAttendees"],
                "registeredCount": COUNT,
                "availableSpots": COUNT,
                "waitlistCount": COUNT,
                "warning": {
                    "enum": ["almostFull", "full", None],
                    "description": "`full` at 0 spots; `almostFull` at or under"
                    " `websocket.almost_full_ratio` × `maxAttendees` (at least 1 spot).",
                },
            }
        ),
        "The counts changed. Queued ones for an event may collapse into the newest.",
    ),
}
STREAM_MESSAGE: JsonSchema = {
    "oneOf": [ref(name) for name in STREAM_MESSAGES],
    "discriminator": {
        "propertyName": "type",
        "mapping": {
            "newEvent": "#/components/schemas/EventMessage",
            "eventUpdated": "#/components/schemas/EventMessage",
            "snapshot": "#/components/schemas/EventMessage",
            "eventDeleted": "#/components/schemas/EventDeletedMessage",
            "eventCapacityUpdate": "#/components/schemas/EventCapacityUpdateMessage",
        },
    },
    "description": "One JSON text frame of a stream.",
}

# --- requests, derived from the models that validate them -----------------------

# Text PostgreSQL can store: no NUL characters.
NO_NUL = r"^[^\u0000]*$"
_INTEGER_LITERAL = " A JSON integer (`60`, not `60.0`)."

# What the validators check beyond the models' own JSON Schema, per body field.
_FIELD_NOTES: dict[str, JsonSchema] = {
    "name": {"pattern": NO_NUL, "description": "Not blank."},
    "description": {"pattern": NO_NUL},
    "date": {
        "description": "The start: in the future (before 9999-12-01), RFC 3339 with any UTC"
        " offset; answered in UTC."
    },
    "durationMinutes": {"description": "The length." + _INTEGER_LITERAL},
    "location": {
        "pattern": NO_NUL,
        "description": "Not blank. Compared for overlaps trimmed, with inner white space"
        " collapsed, ignoring case.",
    },
    "maxAttendees": {"description": "The capacity." + _INTEGER_LITERAL},
    "email": {
        "format": "email",
        "pattern": NO_NUL,
        "description": "A valid address, unique ignoring case; stored as given.",
    },
    "waitlist": {"description": "Join the waitlist when the event is full (else 409)."},
}


def request_schema(model: type[BaseModel]) -> JsonSchema:
    """The JSON Schema of a request body, as its pydantic model validates it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    if "$defs" in schema:  # every body is flat today; nested models would need hoisting
        raise ValueError(f"{model.__name__} has nested models; hoist its $defs")
    schema.pop("title", None)
    for name, field in schema["properties"].items():
        field.pop("title", None)
        field.update(copy.deepcopy(_FIELD_NOTES.get(name, {})))
    return schema


def patch_schema(model: type[BaseModel]) -> JsonSchema:
    """A partial update: the model types its fields ``X | None`` only to tell which were
    sent; null is refused (``EventPatch.changes``), and so is an empty object."""
    schema = request_schema(model)
    for field in schema["properties"].values():
        field.pop("default")
        (kept,) = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(kept)
    schema["minProperties"] = 1
    return schema


def component_schemas() -> dict[str, JsonSchema]:
    """``components.schemas`` of the document."""
    return {
        "Event": EVENT,
        "EventSummary": EVENT_SUMMARY,
        "Attendee": ATTENDEE,
        "AttendeeSummary": ATTENDEE_SUMMARY,
        "Registration": REGISTRATION,
        "AttendeeRegistration": ATTENDEE_REGISTRATION,
        "EventRegistration": EVENT_REGISTRATION,
        "EventPage": page("Event"),
        "AttendeePage": page("Attendee"),
        "AttendeeRegistrationPage": page("AttendeeRegistration"),
        "EventRegistrationPage": page("EventRegistration"),
        "EventCreate": request_schema(schemas.EventCreate),
        "EventPatch": patch_schema(schemas.EventPatch),
        "AttendeeCreate": request_schema(schemas.AttendeeCreate),
        "RegistrationCreate": request_schema(schemas.RegistrationCreate),
        "Problem": PROBLEM,
        "FieldProblem": FIELD_PROBLEM,
        "Health": HEALTH,
        "StreamMessage": STREAM_MESSAGE,
        **STREAM_MESSAGES,
    }
