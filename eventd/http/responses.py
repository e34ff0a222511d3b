"""Response schemas: the JSON the daemon answers with, as typed dicts pydantic reads.

They mirror what the code sends — the ``to_json`` of :mod:`eventd.model`, the
pages of the routes, ``/health``, problem+json, the WebSocket frames — field
for field: every object is closed and every field it always carries is
required. The handlers do not build their answers through them (an event's
JSON is encoded once per version); they are the source of the OpenAPI
document's response schemas (``eventd.http.openapi``), and
``tests/test_openapi.py`` holds real ``to_json`` output and stream frames to
them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, with_config
from pydantic.config import JsonDict
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

# Closed objects; a field's docstring is its description.
CLOSED = ConfigDict(extra="forbid", use_attribute_docstrings=True)

Count = Annotated[int, Field(ge=0)]
Timestamp = Annotated[
    str,
    Field(
        # eventd.model.format_time: UTC, a trailing Z, milliseconds only when not zero.
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$",
        description="RFC 3339 in UTC with a trailing `Z`; milliseconds only when not zero.",
        json_schema_extra={"format": "date-time"},
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Capacity = Annotated[int, Field(ge=1, le=1_000_000)]
RegistrationStatus = Literal[
    "held", "offered", "confirmed", "waitlisted", "cancelled", "expired"
]
Seq = Annotated[
    int,
    Field(
        ge=1,
        description="The event's `version` after the change; per event, strictly increasing.",
    ),
]


@with_config(CLOSED)
class Event(TypedDict):
    """An event. `endsAt`, the counts and `version` are read-only."""

    id: uuid.UUID
    name: Name
    description: Annotated[str, Field(max_length=5000)]
    date: Annotated[Timestamp, Field(description="The start.")]
    durationMinutes: Annotated[int, Field(ge=1, le=10080)]
    endsAt: Annotated[Timestamp, Field(description="`date` + `durationMinutes`.")]
    location: Name
    maxAttendees: Capacity
    registeredCount: Count
    """Confirmed registrations."""
    availableSpots: Count
    """`maxAttendees` − `registeredCount` − `heldCount`."""
    waitlistCount: Count
    version: Annotated[int, Field(ge=1)]
    """Rises by one on every change; the `seq` of its stream."""
    createdAt: Timestamp
    updatedAt: Timestamp
    timezone: Annotated[str, Field(min_length=1, max_length=64)]
    """The IANA time zone people read its times in (emails, pages, calendars)."""
    heldCount: Count
    """Held and offered registrations: seats taken until confirmed or expired."""
    holdMinutes: Annotated[float, Field(ge=0.05, le=1440)]
    """How long a hold lasts."""
    offerMinutes: Annotated[float, Field(ge=0, le=10080)]
    """The claim window of a waitlist offer; 0: a freed seat is confirmed at once."""
    confirmation: Literal["instant", "email"]
    """`email`: every registration starts `held`; only the emailed link confirms it."""


@with_config(CLOSED)
class EventSummary(TypedDict):
    id: uuid.UUID
    name: Name
    date: Timestamp
    location: Name


@with_config(CLOSED)
class AttendeeSummary(TypedDict):
    id: uuid.UUID
    name: Name
    email: Annotated[str, Field(max_length=254)]
    """Stored as given."""


@with_config(CLOSED)
class Attendee(AttendeeSummary):
    createdAt: Timestamp


@with_config(CLOSED)
class Registration(TypedDict):
    id: uuid.UUID
    eventId: uuid.UUID
    attendeeId: uuid.UUID
    status: RegistrationStatus
    waitlistPosition: Annotated[int, Field(ge=1)] | None
    """1-based place in the queue while `waitlisted`, else null."""
    expiresAt: Timestamp | None
    """While `held` or `offered`: when the seat is released; else null."""
    checkedInAt: Timestamp | None
    createdAt: Timestamp
    updatedAt: Timestamp


@with_config(CLOSED)
class NewRegistration(Registration):
    """The registration just made, with its manage token — shown this once, and not
    when it went by email (the event confirms by email, or the attendee was found by
    an address)."""

    manageToken: NotRequired[Annotated[str, Field(min_length=22)]]


@with_config(CLOSED)
class AttendeeRegistration(Registration):
    """One of an attendee's registrations, with a summary of its event."""

    event: EventSummary


@with_config(CLOSED)
class EventRegistration(Registration):
    """One of an event's registrations, with its attendee."""

    attendee: AttendeeSummary


@with_config(CLOSED)
class _Page(TypedDict):
    total: Annotated[Count, Field(description="Items on every page together.")]
    page: Annotated[int, Field(ge=1)]
    limit: Annotated[int, Field(ge=1)]


@with_config(CLOSED)
class EventPage(_Page):
    """A page of events."""

    items: list[Event]


@with_config(CLOSED)
class AttendeePage(_Page):
    """A page of attendees."""

    items: list[Attendee]


@with_config(CLOSED)
class AttendeeRegistrationPage(_Page):
    """A page of an attendee's registrations."""

    items: list[AttendeeRegistration]


@with_config(CLOSED)
class EventRegistrationPage(_Page):
    """A page of an event's registrations."""

    items: list[EventRegistration]


# --- problems ----------------------------------------------------------------------


@with_config(CLOSED)
class FieldProblem(TypedDict):
    field: str
    """The body field (camelCase, dotted when nested), query parameter or header at
    fault; empty for the body as a whole."""
    message: str


def _problem_extras(code: str, field: str) -> JsonDict:
    return {"if": {"properties": {"code": {"const": code}}}, "then": {"required": [field]}}


@with_config(
    ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra={
            "allOf": [
                _problem_extras("validation_failed", "errors"),
                _problem_extras("event_overlap", "conflictingEventId"),
            ]
        },
    )
)
class Problem(TypedDict):
    """An RFC 9457 problem (`application/problem+json`)."""

    type: str
    """Always `about:blank`."""
    title: Annotated[str, Field(min_length=1)]
    status: Annotated[int, Field(ge=400, le=599)]
    code: Annotated[str, Field(min_length=1)]
    """The stable key."""
    detail: str
    errors: NotRequired[list[FieldProblem]]
    """With `validation_failed`: one entry per problem."""
    conflictingEventId: NotRequired[uuid.UUID]
    """With `event_overlap`."""


# --- /health -----------------------------------------------------------------------

LatencyMs = Annotated[float, Field(ge=0)]


@with_config(CLOSED)
class DatabaseCheck(TypedDict):
    status: Literal["up", "down"]
    latencyMs: NotRequired[LatencyMs]


@with_config(CLOSED)
class RedisCheck(TypedDict):
    status: Literal["up", "down", "disabled"]
    latencyMs: NotRequired[LatencyMs]


@with_config(CLOSED)
class EmailCheck(TypedDict):
    """The outbox; `unknown` (transport only) while the database is down."""

    status: Literal["up", "degraded", "unknown"]
    transport: str
    """`email.transport`."""
    pending: NotRequired[Count]
    failing: NotRequired[Count]
    """Pending; last attempt failed."""
    oldestPendingSeconds: NotRequired[float | None]


@with_config(CLOSED)
class ActorsCheck(TypedDict):
    live: Count


@with_config(CLOSED)
class WebsocketCheck(TypedDict):
    connections: Count


@with_config(CLOSED)
class ConnectionsCheck(TypedDict):
    """Open HTTP connections of this daemon process, against `server.max_connections`
    and `server.max_connections_per_client` (0: no cap), and those refused."""

    open: Count
    clients: Count
    max: Count
    maxPerClient: Count
    refused: Count
    refusedPerClient: Count


@with_config(CLOSED)
class HealthChecks(TypedDict):
    database: DatabaseCheck
    redis: RedisCheck
    email: EmailCheck
    actors: ActorsCheck
    websocket: WebsocketCheck
    connections: NotRequired[ConnectionsCheck]


@with_config(CLOSED)
class Health(TypedDict):
    status: Literal["ok", "degraded", "down"]
    checks: HealthChecks


# --- WebSocket frames --------------------------------------------------------------


@with_config(CLOSED)
class EventMessage(TypedDict):
    """The whole event: created, edited, or (`snapshot`) as a per-event stream starts."""

    type: Literal["newEvent", "eventUpdated", "snapshot"]
    eventId: uuid.UUID
    seq: Seq
    at: Timestamp
    data: Event


@with_config(CLOSED)
class DeletedEvent(TypedDict):
    id: uuid.UUID


@with_config(CLOSED)
class EventDeletedMessage(TypedDict):
    """The event is gone; a per-event stream then closes with 1000."""

    type: Literal["eventDeleted"]
    eventId: uuid.UUID
    seq: Seq
    at: Timestamp
    data: DeletedEvent


@with_config(CLOSED)
class CapacityCounts(TypedDict):
    maxAttendees: Capacity
    registeredCount: Count
    availableSpots: Count
    waitlistCount: Count
    warning: Literal["almostFull", "full"] | None
    """`full` at 0 spots; `almostFull` at or under `websocket.almost_full_ratio`
    × `maxAttendees` (at least 1 spot)."""
    heldCount: Count
    """Held and offered registrations."""


@with_config(CLOSED)
class EventCapacityUpdateMessage(TypedDict):
    """The counts changed. Queued ones for an event may collapse into the newest."""

    type: Literal["eventCapacityUpdate"]
    eventId: uuid.UUID
    seq: Seq
    at: Timestamp
    data: CapacityCounts


StreamMessage = Annotated[
    EventMessage | EventDeletedMessage | EventCapacityUpdateMessage,
    Field(discriminator="type", description="One JSON text frame of a stream."),
]
