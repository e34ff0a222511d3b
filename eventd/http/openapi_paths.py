"""The routes of the OpenAPI document: every path, what it takes, what it answers.

Written from the contract (``API.md``); ``tests/test_openapi.py`` checks the
list against the app's URL map and its ``admin_route`` guards.
"""

from __future__ import annotations

from eventd.http import openapi_operations as o
from eventd.http import openapi_schemas as s
from eventd.http.openapi_schemas import JsonSchema, ref
from eventd.http.swagger_ui import ASSETS

DOCUMENT_PATH = "/api/openapi.json"


def paths() -> dict[str, JsonSchema]:
    """Every route of the daemon, with what it takes and what it can answer."""
    event_id, attendee_id = o.param("EventId"), o.param("AttendeeId")
    registration_id, page = o.param("RegistrationId"), o.param("Page")
    return {
        "/events": {
            "post": o.post(
                "createEvent",
                "events",
                "Create an event",
                description="Broadcasts `newEvent`. Refused with `event_overlap` when another"
                " event at the same location (trimmed, inner white space collapsed, ignoring"
                " case) overlaps `[date, endsAt)`; touching intervals do not overlap.",
                body=o.request_body(
                    "EventCreate",
                    conference={
                        "name": "Tech Conference 2030",
                        "description": "Annual tech conference",
                        "date": "2030-06-01T09:00:00+02:00",
                        "durationMinutes": 480,
                        "location": "Convention Center",
                        "maxAttendees": 100,
                    },
                ),
                responses={
                    "201": o.created(
                        "Event",
                        s.EVENT_EXAMPLE,
                        "event",
                        {
                            "getEvent": ("eventId", "id"),
                            "updateEvent": ("eventId", "id"),
                            "listEventRegistrations": ("eventId", "id"),
                            "deleteEvent": ("eventId", "id"),
                        },
                    )
                },
                codes=["event_overlap"],
                admin=True,
            ),
            "get": o.operation(
                "listEvents",
                "events",
                "List events",
                {
                    "200": o.answer(
                        "EventPage",
                        "A page of events, by `date`, then `id`.",
                        o.page_example(s.EVENT_EXAMPLE),
                    ),
                    **o.problem_responses([*o.QUERY, *o.BUSY]),
                },
                parameters=[
                    {
                        "name": "startDate",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "Events starting at or after this moment.",
                    },
                    {
                        "name": "endDate",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "Events starting at or before this moment.",
                    },
                    o.query_text(
                        "location",
                        200,
                        "Exactly this location, normalized as for"
                        " overlaps (trimmed, white space collapsed, ignoring case).",
                    ),
                    o.query_text(
                        "search", 200, "A case-insensitive substring of the name or description."
                    ),
                    page,
                    o.limit_parameter(20, 100),
                ],
            ),
        },
        "/events/stats/most-registrations": {
            "get": o.operation(
                "mostRegisteredEvent",
                "events",
                "The event with the most registrations",
                {
                    "200": o.answer(
                        "Event",
                        "The event with the most confirmed registrations"
                        " (ties: the earliest created).",
                        s.EVENT_EXAMPLE,
                    ),
                    **o.problem_responses(["not_found", *o.BUSY]),
                },
                description="`404` when there are no events.",
            ),
        },
        "/events/{eventId}": {
            "parameters": [event_id],
            "get": o.operation(
                "getEvent",
                "events",
                "Read an event",
                {
                    "200": o.answer("Event", "The event.", s.EVENT_EXAMPLE),
                    **o.problem_responses(["not_found", *o.BUSY]),
                },
            ),
            "patch": o.operation(
                "updateEvent",
                "events",
                "Edit an event",
                {
                    "200": o.answer("Event", "The event as changed.", s.EVENT_EXAMPLE),
                    **o.problem_responses(
                        [
                            *o.BODY,
                            "not_found",
                            "event_overlap",
                            "capacity_below_registrations",
                            *o.BUSY,
                        ]
                    ),
                },
                description="Any non-empty subset of the fields, validated as on create; null"
                " is refused. The overlap is re-checked. Raising `maxAttendees` promotes"
                " waitlisted registrations in order. Broadcasts `eventUpdated`, and"
                " `eventCapacityUpdate` when the counts change.",
                body=o.request_body(
                    "EventPatch",
                    capacity={"maxAttendees": 150},
                    move={"date": "2030-06-02T09:00:00Z", "location": "Main Hall"},
                ),
                admin=True,
            ),
            "delete": o.operation(
                "deleteEvent",
                "events",
                "Delete an event",
                {"204": o.NO_CONTENT, **o.problem_responses(["not_found", *o.BUSY])},
                description="Its registrations go with it; every confirmed or waitlisted"
                " attendee is emailed that it is cancelled. Broadcasts `eventDeleted`.",
                admin=True,
            ),
        },
        "/attendees": {
            "post": o.post(
                "createAttendee",
                "attendees",
                "Create an attendee",
                body=o.request_body(
                    "AttendeeCreate", john={"name": "John Doe", "email": "john.doe@example.com"}
                ),
                responses={
                    "201": o.created(
                        "Attendee",
                        s.ATTENDEE_EXAMPLE,
                        "attendee",
                        {
                            "getAttendee": ("attendeeId", "id"),
                            "listAttendeeRegistrations": ("attendeeId", "id"),
                            "deleteAttendee": ("attendeeId", "id"),
                        },
                    )
                },
                codes=["email_taken"],
            ),
            "get": o.operation(
                "listAttendees",
                "attendees",
                "List attendees",
                {
                    "200": o.answer(
                        "AttendeePage",
                        "A page of attendees, by `createdAt`, then `id`.",
                        o.page_example(s.ATTENDEE_EXAMPLE),
                    ),
                    **o.problem_responses([*o.QUERY, *o.BUSY]),
                },
                parameters=[
                    o.query_text(
                        "search", 254, "A case-insensitive substring of the name or email."
                    ),
                    page,
                    o.limit_parameter(20, 100),
                ],
                admin=True,
            ),
        },
        "/attendees/{attendeeId}": {
            "parameters": [attendee_id],
            "get": o.operation(
                "getAttendee",
                "attendees",
                "Read an attendee",
                {
                    "200": o.answer("Attendee", "The attendee.", s.ATTENDEE_EXAMPLE),
                    **o.problem_responses(["not_found", *o.BUSY]),
                },
            ),
            "delete": o.operation(
                "deleteAttendee",
                "attendees",
                "Delete an attendee",
                {"204": o.NO_CONTENT, **o.problem_responses(["not_found", *o.BUSY])},
                description="Their registrations are cancelled, which frees spots (capacity"
                " updates, waitlist promotion).",
                admin=True,
            ),
        },
        "/attendees/{attendeeId}/registrations": {
            "parameters": [attendee_id],
            "get": o.operation(
                "listAttendeeRegistrations",
                "attendees",
                "An attendee's registrations",
                {
                    "200": o.answer(
                        "AttendeeRegistrationPage",
                        "A page of the attendee's registrations, each with a summary of its event.",
                        o.page_example(
                            {
                                **s.REGISTRATION_EXAMPLE,
                                "event": {
                                    k: s.EVENT_EXAMPLE[k]
                                    for k in ("id", "name", "date", "location")
                                },
                            }
                        ),
                    ),
                    **o.problem_responses([*o.QUERY, "not_found", *o.BUSY]),
                },
                parameters=[page, o.limit_parameter(20, 100)],
            ),
        },
        "/registrations": {
            "post": o.post(
                "register",
                "registrations",
                "Register for an event",
                description="`201` with a `confirmed` registration while spots remain. When"
                ' the event is full: `409 event_full`, or with `"waitlist": true` a'
                " `waitlisted` registration at the end of the queue. Sent only once the"
                " registration is committed. Emails the attendee; broadcasts"
                " `eventCapacityUpdate`.",
                body=o.request_body(
                    "RegistrationCreate",
                    register={"eventId": s.EVENT_ID, "attendeeId": s.ATTENDEE_ID, "waitlist": True},
                ),
                responses={
                    "201": {
                        **o.created(
                            "Registration",
                            s.REGISTRATION_EXAMPLE,
                            "registration",
                            {
                                "getRegistration": ("registrationId", "id"),
                                "getEvent": ("eventId", "eventId"),
                                "getAttendee": ("attendeeId", "attendeeId"),
                                "cancelRegistration": ("registrationId", "id"),
                            },
                        ),
                        "content": {
                            "application/json": {
                                "schema": ref("Registration"),
                                "examples": {
                                    "confirmed": {"value": s.REGISTRATION_EXAMPLE},
                                    "waitlisted": {"value": s.WAITLISTED_EXAMPLE},
                                },
                            }
                        },
                    }
                },
                codes=["not_found", "event_full", "already_registered", "event_started"],
            ),
        },
        "/registrations/{registrationId}": {
            "parameters": [registration_id],
            "get": o.operation(
                "getRegistration",
                "registrations",
                "Read a registration",
                {
                    "200": o.answer(
                        "Registration",
                        "The registration.",
                        s.REGISTRATION_EXAMPLE,
                        s.WAITLISTED_EXAMPLE,
                    ),
                    **o.problem_responses(["not_found", *o.BUSY]),
                },
            ),
            "delete": o.operation(
                "cancelRegistration",
                "registrations",
                "Cancel a registration",
                {"204": o.NO_CONTENT, **o.problem_responses(["not_found", *o.BUSY])},
                description="A freed spot goes to the first waitlisted registration, which"
                " is confirmed and emailed. Broadcasts `eventCapacityUpdate`.",
            ),
        },
        "/registrations/event/{eventId}": {
            "parameters": [event_id],
            "get": o.operation(
                "listEventRegistrations",
                "registrations",
                "An event's registrations",
                {
                    "200": o.answer(
                        "EventRegistrationPage",
                        "Confirmed first in registration"
                        " order, then the waitlist in queue order; each with its"
                        " attendee. An event with none gives an empty page.",
                        o.page_example(
                            {
                                **s.REGISTRATION_EXAMPLE,
                                "attendee": {
                                    k: s.ATTENDEE_EXAMPLE[k] for k in ("id", "name", "email")
                                },
                            },
                            page_limit=100,
                        ),
                    ),
                    **o.problem_responses([*o.QUERY, "not_found", *o.BUSY]),
                },
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "schema": s.REGISTRATION_STATUS,
                        "description": "Only registrations with this status.",
                    },
                    page,
                    o.limit_parameter(100, 1000),
                ],
                admin=True,
            ),
        },
        "/health": {
            "get": o.operation(
                "health",
                "operations",
                "Is the daemon able to serve?",
                {
                    "200": o.answer(
                        "Health",
                        "`ok`, or `degraded` when Redis or email is in trouble.",
                        s.HEALTH_OK_EXAMPLE,
                    ),
                    "503": {
                        **o.answer(
                            "Health", "`down`: the database is unreachable.", s.HEALTH_DOWN_EXAMPLE
                        ),
                        "headers": {"Retry-After": o.header("RetryAfter")},
                    },
                },
                description="Never rate limited.",
            ),
        },
        "/metrics": {
            "get": o.operation(
                "metrics",
                "operations",
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format: requests by route and status"
                        " with latency histograms, registrations by outcome, websocket"
                        " connections and dropped clients, outbox depth, writer batch sizes"
                        " and commit latency, live actors.",
                        "content": {"text/plain": {"schema": o.TEXT, "example": s.METRICS_EXAMPLE}},
                    },
                    **o.problem_responses(["unavailable"]),
                },
                description="Never rate limited.",
                admin=True,
            ),
        },
        "/ws": {
            "get": o.stream_operation(
                "streamEvents",
                "Every event's changes",
                "Every message for every event: `newEvent`, `eventUpdated`, `eventDeleted`,"
                " `eventCapacityUpdate`.",
                ["bad_request", "rate_limited"],
            ),
        },
        "/ws/events/{eventId}": {
            "parameters": [event_id],
            "get": o.stream_operation(
                "streamEvent",
                "One event's changes",
                "The first message is a `snapshot` of the whole event. `?since=SEQ` resumes:"
                " every message with `seq` > SEQ still in the event's replay buffer (at"
                " least the last 256) comes first, or a fresh `snapshot` if the gap is older."
                " After `eventDeleted` the stream closes with 1000. An unknown event (or an"
                " id that is not a UUID) refuses the handshake with `404`; a bad `since`"
                " with `400 validation_failed`.",
                ["bad_request", "validation_failed", "not_found", "rate_limited"],
                parameters=[
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                        "description": "Resume after this `seq`.",
                    }
                ],
            ),
        },
        "/": {
            "get": o.operation(
                "dashboard",
                "pages",
                "The live dashboard (and the `/ws` stream)",
                {
                    "200": o.html("The dashboard page."),
                    "101": {"description": "A WebSocket handshake here opens the `/ws` stream."},
                    **o.problem_responses(o.STATIC),
                },
                description="A plain `GET` answers the dashboard; a WebSocket handshake gets"
                " the same stream as `/ws`.",
            ),
        },
        "/dashboard/{name}": {
            "get": o.operation(
                "dashboardFile",
                "pages",
                "A file of the dashboard",
                {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/javascript": {"schema": o.TEXT},
                            "text/css": {"schema": o.TEXT},
                        },
                    },
                    **o.problem_responses(["not_found", *o.STATIC]),
                },
                parameters=[
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            ),
        },
        "/api": {
            "get": o.operation(
                "swaggerUi",
                "pages",
                "Swagger UI for this document",
                {
                    "200": o.html("Swagger UI; every file it loads comes from this daemon."),
                    "304": o.NOT_MODIFIED,
                    **o.problem_responses(o.STATIC),
                },
            ),
        },
        "/api/assets/{name}": {
            "get": o.operation(
                "swaggerUiFile",
                "pages",
                "A file of Swagger UI",
                {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/javascript": {"schema": o.TEXT},
                            "text/css": {"schema": o.TEXT},
                        },
                    },
                    "304": o.NOT_MODIFIED,
                    **o.problem_responses(["not_found", *o.STATIC]),
                },
                parameters=[
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(ASSETS)},
                    }
                ],
            ),
        },
        DOCUMENT_PATH: {
            "get": o.operation(
                "openapiDocument",
                "pages",
                "This document",
                {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **o.problem_responses(o.STATIC),
                },
            ),
        },
    }
