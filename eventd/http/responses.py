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
class AdmissionSettings(TypedDict):
    ratePerMinute: Annotated[int, Field(ge=1, le=100_000)]
    """Ranks admitted per minute from the opening."""
    tokenMinutes: Annotated[float, Field(ge=0.05, le=120)]
    """How long an admission's token works."""


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
    checkedInCount: Count
    """Tickets checked in at the door (`POST /checkins`); a later cancellation does not
    lower it."""
    salesStartAt: Timestamp | None
    """Before it, registrations are refused (`sales_not_open`); null: no such moment."""
    admission: AdmissionSettings | None
    """The admission queue's settings; null: the event has no queue."""


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
class CheckIn(Registration):
    """A registration just checked in at the door."""

    # Narrowed from the base's ``Timestamp | None``: here it is always set.
    checkedInAt: Timestamp  # type: ignore[misc]


# --- tickets -----------------------------------------------------------------------

Base64Url = r"[A-Za-z0-9_-]+"


@with_config(CLOSED)
class Ticket(TypedDict):
    """A confirmed registration's ticket."""

    ticket: Annotated[str, Field(pattern=rf"^{Base64Url}\.{Base64Url}\.{Base64Url}$")]
    """JWS Compact Serialization (RFC 7515), `"alg": "EdDSA"` (RFC 8037) with `kid`;
    claims `sub` (the registration's id), `eid` (the event's id), `name` (the
    attendee's) and `iat` (when it was confirmed). Verify it with
    `/.well-known/jwks.json`."""
    qr: Annotated[str, Field(pattern=r"^data:image/svg\+xml;base64,[A-Za-z0-9+/]+=*$")]
    """A QR code holding exactly `ticket`, as an SVG `data:` URI."""


@with_config(CLOSED)
class Jwk(TypedDict):
    """An Ed25519 public key (RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: Annotated[str, Field(pattern=rf"^{Base64Url}$")]
    kid: Annotated[str, Field(pattern=rf"^{Base64Url}$")]
    """Its RFC 7638 thumbprint; a ticket's header names it."""
    alg: Literal["EdDSA"]
    use: Literal["sig"]


@with_config(CLOSED)
class JwkSet(TypedDict):
    """The keys that verify tickets (RFC 7517 §5)."""

    keys: Annotated[list[Jwk], Field(min_length=1)]


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


# --- webhooks ----------------------------------------------------------------------

WebhookTypeName = Annotated[str, Field(min_length=1, max_length=64)]


@with_config(CLOSED)
class Webhook(TypedDict):
    """A webhook endpoint. Its secret is never shown again after it was created."""

    id: uuid.UUID
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    types: Annotated[list[WebhookTypeName], Field(min_length=1)]
    """The types of change it receives; `["*"]`: every type."""
    description: Annotated[str, Field(max_length=500)]
    enabled: bool
    disabledReason: str | None
    """Why a delivery disabled it (the receiver answered `410 Gone`); null otherwise."""
    createdAt: Timestamp
    updatedAt: Timestamp


@with_config(CLOSED)
class WebhookCreated(Webhook):
    """The new endpoint, with its secret: shown this once."""

    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/]+=*$")]
    """`whsec_` and the base64 of the key: give it to a Standard Webhooks library."""


@with_config(CLOSED)
class WebhookPage(_Page):
    """A page of webhook endpoints."""

    items: list[Webhook]


@with_config(CLOSED)
class WebhookDelivery(TypedDict):
    """One message to one endpoint, and what became of it."""

    messageId: uuid.UUID
    """Its `webhook-id`: the same on every attempt."""
    type: WebhookTypeName
    status: Literal["pending", "delivered", "failed"]
    """`failed`: given up after `webhooks.retry_hours`."""
    createdAt: Timestamp
    """When the change it announces was committed."""
    attempts: Count
    lastStatusCode: Annotated[int, Field(ge=100, le=599)] | None
    """The receiver's answer to the last attempt; null if it did not answer."""
    lastError: str | None
    """Why the last attempt failed; null once delivered."""
    nextAttemptAt: Timestamp | None
    """While pending."""
    deliveredAt: Timestamp | None
    givenUpAt: Timestamp | None


@with_config(CLOSED)
class WebhookDeliveryPage(_Page):
    """A page of an endpoint's deliveries, newest first."""

    items: list[WebhookDelivery]


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
                _problem_extras("already_checked_in", "checkedInAt"),
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
    checkedInAt: NotRequired[Timestamp]
    """With `already_checked_in`: when the ticket was first checked in."""


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
class WebhooksCheck(TypedDict):
    """The webhook outbox; `degraded` while an endpoint's next message is failing,
    `unknown` while the database is down."""

    status: Literal["up", "degraded", "unknown", "disabled"]
    pending: NotRequired[Count]
    """Messages of enabled endpoints not yet delivered or given up."""
    failingEndpoints: NotRequired[Count]
    """Enabled endpoints whose next message failed its last attempt."""
    disabledEndpoints: NotRequired[Count]
    oldestPendingSeconds: NotRequired[float | None]


@with_config(CLOSED)
class HealthChecks(TypedDict):
    database: DatabaseCheck
    redis: RedisCheck
    email: EmailCheck
    actors: ActorsCheck
    websocket: WebsocketCheck
    connections: NotRequired[ConnectionsCheck]
    webhooks: NotRequired[WebhooksCheck]


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
    checkedInCount: Count


@with_config(CLOSED)
class EventCapacityUpdateMessage(TypedDict):
    """The counts changed. Queued ones for an event may collapse into the newest."""

    type: Literal["eventCapacityUpdate"]
    eventId: uuid.UUID
    seq: Seq
    at: Timestamp
    data: CapacityCounts


@with_config(CLOSED)
class QueueCounts(TypedDict):
    admittedThrough: Count
    """Ranks up to this are admitted; a client's position is `rank` − this."""
    waiting: Count
    """Tickets not admitted yet, ranked or not."""
    ranked: Count
    """Ranks given so far."""


@with_config(CLOSED)
class QueueUpdateMessage(TypedDict):
    """An admission queue's state, once a second while it moves, and right after a
    subscriber's snapshot or replay. A state, not a change: no `seq`; a slow client's
    queued ones collapse into the newest."""

    type: Literal["queueUpdate"]
    eventId: uuid.UUID
    at: Annotated[Timestamp, Field(description="The database's clock when computed.")]
    data: QueueCounts


@with_config(CLOSED)
class QueueTicket(TypedDict):
    """A ticket of an event's admission queue."""

    ticketId: uuid.UUID
    rank: Annotated[int, Field(ge=1)] | None
    """Null until ranked: a joiner before the opening is ranked at the opening, in a
    uniformly random order; later joiners in arrival order. Never changes after."""
    status: Literal["waiting", "admitted", "used", "expired"]
    admittedThrough: Count
    """Ranks up to this are admitted."""
    opensAt: Timestamp | None
    """When the queue opens (or opened)."""
    expiresAt: Timestamp | None
    """Once admitted: when its token stops working (admission + `tokenMinutes`)."""


@with_config(CLOSED)
class JoinedQueueTicket(QueueTicket):
    token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
    """The ticket's secret, shown only here: `?token=` to read the ticket, and
    `Admission-Token` to register once admitted. Stored only as a hash."""


StreamMessage = Annotated[
    EventMessage | EventDeletedMessage | EventCapacityUpdateMessage | QueueUpdateMessage,
    Field(discriminator="type", description="One JSON text frame of a stream."),
]
