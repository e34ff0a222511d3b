"""The examples of the OpenAPI document: one small world of an event, an attendee and
a registration that refer to each other, and the words of each problem.

``tests/test_openapi.py`` checks every example against its schema, and the
request examples against the validating models.
"""

from __future__ import annotations

from typing import Any

Example = dict[str, Any]

EVENT_ID = "7c1e2b9a-4f0e-4a53-9a55-0c6f1f1f3a01"
OTHER_EVENT_ID = "0b5d3e61-8c1a-4f7e-b0a2-93c4d5e6f708"
ATTENDEE_ID = "3f2a9c4e-1b7d-4e8a-9f60-5d4c3b2a1908"
REGISTRATION_ID = "a4b1c2d3-e5f6-4789-8abc-def012345678"

EVENT: Example = {
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
    "timezone": "Europe/Berlin",
    "heldCount": 0,
    "holdMinutes": 15.0,
    "offerMinutes": 0.0,
    "confirmation": "instant",
}
ATTENDEE: Example = {
    "id": ATTENDEE_ID,
    "name": "John Doe",
    "email": "john.doe@example.com",
    "createdAt": "2029-12-01T12:00:00Z",
}
REGISTRATION: Example = {
    "id": REGISTRATION_ID,
    "eventId": EVENT_ID,
    "attendeeId": ATTENDEE_ID,
    "status": "confirmed",
    "waitlistPosition": None,
    "expiresAt": None,
    "checkedInAt": None,
    "createdAt": "2030-01-05T09:30:00.125Z",
    "updatedAt": "2030-01-05T09:30:00.125Z",
}
WAITLISTED: Example = {**REGISTRATION, "status": "waitlisted", "waitlistPosition": 3}
HELD: Example = {**REGISTRATION, "status": "held", "expiresAt": "2030-01-05T09:45:00.125Z"}
MANAGE_TOKEN = "q3Jx0vN6bS1dQ2k9wYtL4m8ZpR7cE5hUaGfVn0oKxI8"
NEW_REGISTRATION: Example = {**REGISTRATION, "manageToken": MANAGE_TOKEN}
NEW_HOLD: Example = {**HELD, "manageToken": MANAGE_TOKEN}
ATTENDEE_REGISTRATION: Example = {
    **REGISTRATION,
    "event": {key: EVENT[key] for key in ("id", "name", "date", "location")},
}
EVENT_REGISTRATION: Example = {
    **REGISTRATION,
    "attendee": {key: ATTENDEE[key] for key in ("id", "name", "email")},
}

# --- exports -----------------------------------------------------------------------

REGISTRATIONS_CSV = (
    "id,status,attendeeName,attendeeEmail,createdAt,updatedAt,expiresAt,checkedInAt\r\n"
    f"{REGISTRATION_ID},confirmed,John Doe,john.doe@example.com,2030-01-05T09:30:00.125Z,,,\r\n"
)
REGISTRATIONS_NDJSON = (
    f'{{"id":"{REGISTRATION_ID}","status":"confirmed","attendeeName":"John Doe",'
    '"attendeeEmail":"john.doe@example.com","createdAt":"2030-01-05T09:30:00.125Z",'
    '"updatedAt":null,"expiresAt":null,"checkedInAt":null}\n'
)
ATTENDEES_CSV = (
    "id,name,email,createdAt\r\n"
    f"{ATTENDEE_ID},John Doe,john.doe@example.com,2029-12-01T12:00:00Z\r\n"
)
ATTENDEES_NDJSON = (
    f'{{"id":"{ATTENDEE_ID}","name":"John Doe","email":"john.doe@example.com",'
    '"createdAt":"2029-12-01T12:00:00Z"}\n'
)

# --- request bodies ----------------------------------------------------------------

CREATE_EVENT: Example = {
    "name": "Tech Conference 2030",
    "description": "Annual tech conference",
    "date": "2030-06-01T09:00:00+02:00",
    "durationMinutes": 480,
    "location": "Convention Center",
    "maxAttendees": 100,
    "timezone": "Europe/Berlin",
}
PATCH_CAPACITY: Example = {"maxAttendees": 150}
PATCH_MOVE: Example = {"date": "2030-06-02T09:00:00Z", "location": "Main Hall"}
CREATE_ATTENDEE: Example = {"name": "John Doe", "email": "john.doe@example.com"}
REGISTER: Example = {"eventId": EVENT_ID, "attendeeId": ATTENDEE_ID, "waitlist": True}
HOLD: Example = {
    "eventId": EVENT_ID,
    "attendee": {"name": "John Doe", "email": "john.doe@example.com"},
    "hold": True,
}

# --- operations --------------------------------------------------------------------

HEALTH_OK: Example = {
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
HEALTH_DOWN: Example = {
    "status": "down",
    "checks": {
        "database": {"status": "down"},
        "email": {"status": "unknown", "transport": "file"},
        "redis": {"status": "disabled"},
        "actors": {"live": 0},
        "websocket": {"connections": 3},
    },
}
METRICS = """\
# HELP eventd_http_requests_total HTTP requests answered, by route, method and status.
# TYPE eventd_http_requests_total counter
eventd_http_requests_total{method="POST",route="/registrations",status="201"} 1042.0
"""

# --- problems: a detail for each code the document lists ---------------------------

PROBLEM_DETAILS = {
    "malformed_json": "The request body is not valid JSON.",
    "validation_failed": "The request is not valid: maxAttendees: must be ≥ 1.",
    "bad_request": "The browser (or proxy) sent a request that this server could not"
    " understand.",
    "unauthorized": "This route needs a valid admin bearer token.",
    "not_found": f"Event {EVENT_ID} does not exist.",
    "event_full": f"Event {EVENT_ID} has no spots left (100/100).",
    "already_registered": f"Attendee {ATTENDEE_ID} is already registered for event {EVENT_ID}.",
    "email_taken": "Another attendee already has the email john.doe@example.com.",
    "event_overlap": f"Event {OTHER_EVENT_ID} is at Convention Center at the same time.",
    "capacity_below_registrations": "98 registrations are confirmed; maxAttendees cannot"
    " be 50.",
    "event_started": f"Event {EVENT_ID} has already started.",
    "forbidden": f"Acting on registration {REGISTRATION_ID} needs its manage token (?token="
    " or the Registration-Token header) or an admin token.",
    "hold_expired": f"Registration {REGISTRATION_ID} was not confirmed before it expired;"
    " its seat is released.",
    "not_held": f"Registration {REGISTRATION_ID} is not held or offered: only a held seat or"
    " an offer can be confirmed.",
    "idempotency_key_reused": "The Idempotency-Key 'k-1' was already used with a different"
    " request; use a new key for a new request.",
    "payload_too_large": "The body is over the limit of 65536 bytes.",
    "unsupported_media_type": "Send the body as application/json, not text/plain.",
    "rate_limited": "More than 50 requests per second from this address; retry in 1 s.",
    "unavailable": "The request could not be completed in time; please retry.",
}
PROBLEM_EXTRAS: dict[str, Example] = {
    "validation_failed": {"errors": [{"field": "maxAttendees", "message": "must be ≥ 1"}]},
    "event_overlap": {"conflictingEventId": OTHER_EVENT_ID},
}
