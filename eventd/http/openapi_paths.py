"""The routes of the OpenAPI document: what each takes and answers, in the contract's words.

Each route names its schemas (``eventd.http.schemas`` for requests,
``eventd.http.responses`` for answers), its examples and the problems only it
can meet; :func:`eventd.http.openapi_operations.operation` adds the rest.
``tests/test_openapi.py`` checks the list against the app's URL map and its
``admin_route`` guards.
"""

from __future__ import annotations

from eventd.http import openapi_examples as x
from eventd.http.exports import STATUSES
from eventd.http.openapi_operations import (
    NO_CONTENT,
    NOT_MODIFIED,
    PAGES,
    SWITCHING_PROTOCOLS,
    TEXT,
    JsonSchema,
    answer,
    created,
    files,
    header,
    limit,
    operation,
    page,
    param,
    paths,
    query,
    query_text,
    ref,
)
from eventd.http.swagger_ui import ASSETS

DOCUMENT_PATH = "/api/openapi.json"

_PAGE = param("Page")
_HTML: JsonSchema = {"content": {"text/html": {"schema": TEXT}}}
_PAGE_ID: JsonSchema = {
    "name": "id", "in": "path", "required": True, "schema": TEXT,
    "description": "The id the page shows; its script asks the API about it.",
}
_EVENT_LINKS = {
    "getEvent": ("eventId", "id"),
    "updateEvent": ("eventId", "id"),
    "listEventRegistrations": ("eventId", "id"),
    "deleteEvent": ("eventId", "id"),
}
_ATTENDEE_LINKS = {
    "getAttendee": ("attendeeId", "id"),
    "listAttendeeRegistrations": ("attendeeId", "id"),
    "deleteAttendee": ("attendeeId", "id"),
}
_REGISTRATION_LINKS = {
    "getRegistration": ("registrationId", "id"),
    "getEvent": ("eventId", "eventId"),
    "getAttendee": ("attendeeId", "attendeeId"),
    "cancelRegistration": ("registrationId", "id"),
}
_WEBHOOK_LINKS = {
    "getWebhook": ("webhookId", "id"),
    "updateWebhook": ("webhookId", "id"),
    "deleteWebhook": ("webhookId", "id"),
    "listWebhookDeliveries": ("webhookId", "id"),
}
_BOUND: JsonSchema = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]
}
_STREAM = " A plain `GET` (not a WebSocket handshake) is `400 bad_request`."
_FORMAT = query(
    "format",
    {"type": "string", "enum": ["csv", "ndjson"], "default": "csv"},
    "`csv`: RFC 4180 with a header row; `ndjson`: one JSON object per line.",
)
_EXPORTED = (
    " Streamed from one snapshot of the rows, a page at a time, so any number of rows"
    " can be exported. CSV is RFC 4180 (CRLF, a header row); a text field that starts"
    " with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'` so that"
    " no spreadsheet runs it as a"
    " formula. NDJSON has one object per line with the same keys and the values as they"
    " are. Times are RFC 3339 UTC; a missing one is empty (CSV) or null (NDJSON)."
)


def _export(description: str, csv_example: str, ndjson_example: str) -> JsonSchema:
    return {
        "description": description,
        "headers": {"Content-Disposition": header("ContentDisposition")},
        "content": {
            "text/csv": {"schema": TEXT, "example": csv_example},
            "application/x-ndjson": {"schema": TEXT, "example": ndjson_example},
        },
    }



def document_paths() -> dict[str, JsonSchema]:
    """Every route of the daemon, with what it takes and what it can answer."""
    return paths([
        # --- events ---
        operation(
            "POST", "/events", "createEvent", "events", "Create an event",
            {201: created("Event", "event", _EVENT_LINKS, conference=x.EVENT)},
            body=("EventCreate", {"conference": x.CREATE_EVENT}),
            codes=["event_overlap"],
            admin=True,
            description="Broadcasts `newEvent`. Refused with `event_overlap` when another"
            " event at the same location (trimmed, inner white space collapsed, ignoring"
            " case) overlaps `[date, endsAt)`; touching intervals do not overlap.",
        ),
        operation(
            "GET", "/events", "listEvents", "events", "List events",
            {200: page("EventPage", "A page of events, by `date`, then `id`.", x.EVENT)},
            parameters=[
                query("startDate", _BOUND, "Events starting at or after this moment; a plain"
                      " date (`2027-03-01`) means the start of that day, UTC."),
                query("endDate", _BOUND, "Events starting at or before this moment; a plain"
                      " date means the end of that day, UTC (the whole day is included)."),
                query_text("location", 200, "Exactly this location, normalized as for"
                           " overlaps (trimmed, white space collapsed, ignoring case)."),
                query_text("search", 200, "A case-insensitive substring of the name or"
                           " description."),
                _PAGE,
                limit(20, 100),
            ],
        ),
        operation(
            "GET", "/events/stats/most-registrations", "mostRegisteredEvent", "events",
            "The event with the most registrations",
            {200: answer("Event", "The event with the most confirmed registrations (ties:"
                         " the earliest created).", x.EVENT)},
            codes=["not_found"],
            description="`404` when there are no events.",
        ),
        operation(
            "GET", "/events/{eventId}", "getEvent", "events", "Read an event",
            {200: answer("Event", "The event.", x.EVENT)},
        ),
        operation(
            "PATCH", "/events/{eventId}", "updateEvent", "events", "Edit an event",
            {200: answer("Event", "The event as changed.", x.EVENT)},
            body=("EventPatch", {"capacity": x.PATCH_CAPACITY, "move": x.PATCH_MOVE,
                                 "queue": x.PATCH_ADMISSION}),
            codes=["event_overlap", "capacity_below_registrations"],
            admin=True,
            description="Any non-empty subset of the fields, validated as on create; null"
            " is refused, except for `salesStartAt` and `admission`, where it removes the"
            " setting. A new `admission.ratePerMinute` applies from this moment: nobody"
            " admitted is moved back, and ranks never change. The overlap is re-checked."
            " Raising `maxAttendees` promotes waitlisted registrations in order. Broadcasts"
            " `eventUpdated`, and `eventCapacityUpdate` when the counts change.",
        ),
        operation(
            "DELETE", "/events/{eventId}", "deleteEvent", "events", "Delete an event",
            {204: NO_CONTENT},
            admin=True,
            description="Its registrations go with it; every confirmed or waitlisted"
            " attendee is emailed that it is cancelled. Broadcasts `eventDeleted`.",
        ),
        # --- attendees ---
        operation(
            "POST", "/attendees", "createAttendee", "attendees", "Create an attendee",
            {201: created("Attendee", "attendee", _ATTENDEE_LINKS, john=x.ATTENDEE)},
            body=("AttendeeCreate", {"john": x.CREATE_ATTENDEE}),
            codes=["email_taken"],
        ),
        operation(
            "GET", "/attendees", "listAttendees", "attendees", "List attendees",
            {200: page("AttendeePage", "A page of attendees, by `createdAt`, then `id`.",
                       x.ATTENDEE)},
            parameters=[
                query_text("search", 254, "A case-insensitive substring of the name or email."),
                _PAGE,
                limit(20, 100),
            ],
            admin=True,
        ),
        operation(
            "GET", "/attendees/{attendeeId}", "getAttendee", "attendees", "Read an attendee",
            {200: answer("Attendee", "The attendee.", x.ATTENDEE)},
        ),
        operation(
            "DELETE", "/attendees/{attendeeId}", "deleteAttendee", "attendees",
            "Delete an attendee",
            {204: NO_CONTENT},
            admin=True,
            description="Their registrations are cancelled, which frees spots (capacity"
            " updates, waitlist promotion).",
        ),
        operation(
            "GET", "/attendees/{attendeeId}/registrations", "listAttendeeRegistrations",
            "attendees", "An attendee's registrations",
            {200: page("AttendeeRegistrationPage", "A page of the attendee's registrations,"
                       " each with a summary of its event.", x.ATTENDEE_REGISTRATION)},
            parameters=[_PAGE, limit(20, 100)],
        ),
        operation(
            "GET", "/attendees/export", "exportAttendees", "attendees", "Export every attendee",
            {200: _export("Every attendee (`id`, `name`, `email`, `createdAt`), by"
                          " `createdAt`.", x.ATTENDEES_CSV, x.ATTENDEES_NDJSON)},
            parameters=[_FORMAT],
            admin=True,
            description="A file to download." + _EXPORTED,
        ),
        # --- registrations ---
        operation(
            "POST", "/registrations", "register", "registrations", "Register for an event",
            {201: created("NewRegistration", "registration", _REGISTRATION_LINKS,
                          confirmed=x.NEW_REGISTRATION, held=x.NEW_HOLD,
                          waitlisted=x.WAITLISTED)},
            body=("RegistrationCreate", {"register": x.REGISTER, "hold": x.HOLD}),
            codes=["not_found", "event_full", "already_registered", "event_started",
                   "sales_not_open", "admission_required", "admission_used",
                   "admission_expired"],
            parameters=[param("AdmissionToken")],
            description="`201` with a `confirmed` registration while seats remain — or"
            ' `held` until `expiresAt`, with `"hold": true`, under `"confirmation":'
            ' "email"`, or when `attendee` names an email that already has an attendee.'
            ' When the event is full: `409 event_full`, or with `"waitlist": true` a'
            " `waitlisted` registration at the end of the queue. The body carries"
            " `manageToken`, this once, unless the token went by email. Sent only once"
            " the registration is committed. Emails the attendee; broadcasts"
            " `eventCapacityUpdate`. Before the event's `salesStartAt`: `409"
            " sales_not_open`. An event with `admission` needs `Admission-Token` (an"
            " admitted ticket's, once): these gates answer before the attendee is looked"
            " at, and a refusal writes nothing.",
        ),
        operation(
            "POST", "/registrations/{registrationId}/confirm", "confirmRegistration",
            "registrations", "Confirm a hold or an offer",
            {200: {**answer("Registration", "The registration, confirmed.", x.REGISTRATION),
                   "headers": {"Idempotent-Replayed": header("IdempotentReplayed")}}},
            parameters=[param("ManageToken"), param("RegistrationToken")],
            codes=["forbidden", "not_found", "hold_expired", "not_held"],
            description="`held` or `offered` → `confirmed`, before `expiresAt` (after it:"
            " `409 hold_expired`, even if the seat has not been released yet). Confirming"
            " a confirmed registration again is `200`. Needs the manage token or an admin"
            " token. Broadcasts `eventCapacityUpdate`.",
        ),
        operation(
            "GET", "/registrations/{registrationId}", "getRegistration", "registrations",
            "Read a registration",
            {200: answer("Registration", "The registration.", x.REGISTRATION, x.WAITLISTED)},
        ),
        operation(
            "DELETE", "/registrations/{registrationId}", "cancelRegistration",
            "registrations", "Cancel a registration",
            {204: NO_CONTENT},
            parameters=[param("ManageToken"), param("RegistrationToken")],
            codes=["forbidden", "not_found"],
            description="Any active registration; it stays as history (`cancelled`). A"
            " freed seat goes to the first waitlisted registration: offered for"
            " `offerMinutes`, or confirmed at once when that is 0, and emailed. A"
            " cancelled or expired registration: `204`, nothing changes. Needs the manage"
            " token or an admin token. Broadcasts `eventCapacityUpdate`.",
        ),
        operation(
            "GET", "/registrations/event/{eventId}", "listEventRegistrations",
            "registrations", "An event's registrations",
            {200: page("EventRegistrationPage", "Seats first (confirmed, held, offered) in"
                       " registration order, then the waitlist in queue order; each with its"
                       " attendee. Without `status`, the active ones only (not cancelled or"
                       " expired). An event with none gives an empty page.",
                       x.EVENT_REGISTRATION, page_limit=100)},
            parameters=[
                query("status", {"type": "string", "enum": list(STATUSES)},
                      "Only registrations with this status."),
                _PAGE,
                limit(100, 1000),
            ],
            admin=True,
        ),
        operation(
            "GET", "/events/{eventId}/registrations/export", "exportEventRegistrations",
            "registrations", "Export an event's registrations",
            {200: _export("The event's registrations with their attendees (`id`, `status`,"
                          " `attendeeName`, `attendeeEmail`, `createdAt`, `updatedAt`,"
                          " `expiresAt`, `checkedInAt`), by status, each status in arrival"
                          " order.", x.REGISTRATIONS_CSV, x.REGISTRATIONS_NDJSON)},
            parameters=[
                _FORMAT,
                query("status", {"type": "string", "enum": list(STATUSES)},
                      "Only registrations with this status."),
            ],
            admin=True,
            description="A file to download." + _EXPORTED,
        ),
        # --- webhooks ---
        operation(
            "POST", "/webhooks", "createWebhook", "webhooks", "Add a webhook endpoint",
            {201: created("WebhookCreated", "endpoint, with its secret (shown this once)",
                          _WEBHOOK_LINKS, crm=x.WEBHOOK_CREATED)},
            body=("WebhookCreate", {"crm": x.CREATE_WEBHOOK}),
            admin=True,
            description="From the next committed change on, each change of a subscribed"
            " type is sent to `url` as `{\"type\", \"timestamp\", \"data\"}`, `data` the"
            " event or registration as this API shows it, signed per Standard Webhooks"
            " (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with `secret`."
            " Delivered at least once, in the order of the changes; a 2xx is delivered,"
            " `410 Gone` disables the endpoint, anything else is retried with backoff for"
            " `webhooks.retry_hours`. Redirects are not followed. A URL whose host"
            " resolves to a loopback, private, link-local, multicast or reserved address"
            " (any of its addresses) is refused with `400` unless"
            " `webhooks.allow_private_targets` is set.",
        ),
        operation(
            "GET", "/webhooks", "listWebhooks", "webhooks", "List webhook endpoints",
            {200: page("WebhookPage", "A page of endpoints, by `createdAt`, without their"
                       " secrets.", x.WEBHOOK)},
            parameters=[_PAGE, limit(20, 100)],
            admin=True,
        ),
        operation(
            "GET", "/webhooks/{webhookId}", "getWebhook", "webhooks", "Read a webhook endpoint",
            {200: answer("Webhook", "The endpoint, without its secret.", x.WEBHOOK)},
            admin=True,
        ),
        operation(
            "PATCH", "/webhooks/{webhookId}", "updateWebhook", "webhooks",
            "Edit a webhook endpoint",
            {200: answer("Webhook", "The endpoint as changed.", x.WEBHOOK)},
            body=("WebhookPatch", {"enable": x.PATCH_WEBHOOK}),
            admin=True,
            description="Any non-empty subset of `url`, `types`, `description`, `enabled`;"
            " null is refused. A new URL is checked as on create. Enabling an endpoint"
            " that a `410` disabled sends its waiting messages again.",
        ),
        operation(
            "DELETE", "/webhooks/{webhookId}", "deleteWebhook", "webhooks",
            "Delete a webhook endpoint",
            {204: NO_CONTENT},
            admin=True,
            description="Its deliveries, sent or waiting, go with it.",
        ),
        operation(
            "GET", "/webhooks/{webhookId}/deliveries", "listWebhookDeliveries", "webhooks",
            "An endpoint's deliveries",
            {200: page("WebhookDeliveryPage", "A page of the endpoint's messages, newest"
                       " first, each with what became of it.", x.WEBHOOK_DELIVERY)},
            parameters=[_PAGE, limit(20, 100)],
            admin=True,
        ),
        # --- tickets ---
        operation(
            "GET", "/registrations/{registrationId}/ticket", "getTicket", "tickets",
            "A registration's ticket",
            {200: {
                "description": "The ticket and its QR code; with `Accept: image/svg+xml`, the"
                " QR code's SVG itself. Not to be cached (`Cache-Control: no-store`).",
                "content": {
                    "application/json": {"schema": ref("Ticket"), "example": x.TICKET},
                    "image/svg+xml": {"schema": TEXT},
                },
            }},
            codes=["forbidden", "ticket_not_valid"],
            parameters=[param("ManageToken"), param("RegistrationToken")],
            description="Only a confirmed registration has a ticket (else `409"
            " ticket_not_valid`). Needs its manage token or an admin token (else `403"
            " forbidden`). The ticket"
            " is a compact JWS signed with the deployment's Ed25519 key; a scanner verifies"
            " it offline against `/.well-known/jwks.json`. The same registration gets the"
            " same ticket every time.",
        ),
        operation(
            "GET", "/.well-known/jwks.json", "ticketKeys", "tickets",
            "The keys that verify tickets",
            {200: answer("JwkSet", "The public ticket key as a JWK Set: give it to any JOSE"
                         " library to verify tickets offline.", x.TICKET_KEYS)},
            busy=PAGES,
        ),
        operation(
            "POST", "/checkins", "checkIn", "tickets", "Check a ticket in at the door",
            {201: created("CheckIn", "registration, checked in",
                          {"getRegistration": ("registrationId", "id")}, first=x.CHECKED_IN)},
            body=("CheckInCreate", {"scan": x.CHECK_IN_BODY}),
            codes=["ticket_not_valid", "already_checked_in"],
            admin=True,
            description="An admin token, or one of `auth.checkin_tokens` (as the bearer"
            " token: good for this route only). `201` the first time a ticket is checked"
            " in, however many doors and daemons scan it at once; `409 already_checked_in`"
            " with the first `checkedInAt` after that; `409 ticket_not_valid` when the"
            " signature does not verify or the registration is not (or no longer)"
            " confirmed. Broadcasts `eventCapacityUpdate` with the event's new"
            " `checkedInCount`.",
        ),
        # --- the admission queue ---
        operation(
            "POST", "/events/{eventId}/queue", "joinQueue", "queue",
            "Join an event's admission queue",
            {201: {
                "description": "Created: the ticket, with its token (shown only here).",
                "headers": {"Location": header("Location")},
                "content": {"application/json": {
                    "schema": ref("JoinedQueueTicket"),
                    "examples": {"waiting": {"value": x.QUEUE_TICKET_WAITING}},
                }},
            }},
            idempotent=False,
            description="Public; rate limits apply. `404` for an event without `admission`."
            " Before the opening (`opensAt`: `salesStartAt`) a ticket gets no rank; at the"
            " opening everyone who joined before is ranked in a uniformly random order"
            " drawn from a CSPRNG, so arriving first buys nothing; later joiners are ranked"
            " in arrival order. From the opening, `floor(minutes × ratePerMinute)` ranks"
            " are admitted (`admittedThrough`), whichever daemons run; an admitted"
            " ticket's token works for `tokenMinutes` for exactly one registration"
            " (`Admission-Token`). Takes no `Idempotency-Key`: the token is never stored.",
        ),
        operation(
            "GET", "/events/{eventId}/queue/{ticketId}", "getQueueTicket", "queue",
            "Read a queue ticket",
            {200: answer("QueueTicket", "The ticket now.", x.QUEUE_TICKET_ADMITTED)},
            parameters=[
                query("token", {"type": "string", "maxLength": 100},
                      "The ticket's token from its join (required)."),
            ],
            codes=["admission_required"],
            description="`403 admission_required` when the token is not the ticket's;"
            " `404` when the ticket is not in this event's queue.",
        ),
        # --- operations ---
        operation(
            "GET", "/health", "health", "operations", "Is the daemon able to serve?",
            {
                200: answer("Health", "`ok`, or `degraded` when Redis, email or a"
                            " webhook endpoint is in trouble.", x.HEALTH_OK),
                503: {
                    **answer("Health", "`down`: the database is unreachable.", x.HEALTH_DOWN),
                    "headers": {"Retry-After": header("RetryAfter")},
                },
            },
            busy=(),
            description="Never rate limited.",
        ),
        operation(
            "GET", "/metrics", "metrics", "operations", "Prometheus metrics",
            {
                200: {
                    "description": "Prometheus text format: requests by route and status"
                    " with latency histograms, registrations and check-ins by outcome,"
                    " websocket connections and dropped clients, outbox depth, writer batch"
                    " sizes and commit latency, live actors, webhook deliveries by outcome"
                    " and their lag, the webhook backlog.",
                    "content": {"text/plain": {"schema": TEXT, "example": x.METRICS}},
                }
            },
            busy=["unavailable"],
            admin=True,
            description="Never rate limited.",
        ),
        # --- streams ---
        operation(
            "GET", "/ws", "streamEvents", "streams", "Every event's changes",
            {101: SWITCHING_PROTOCOLS},
            codes=["bad_request"],
            busy=PAGES,
            description="Every message for every event: `newEvent`, `eventUpdated`,"
            " `eventDeleted`, `eventCapacityUpdate`." + _STREAM,
        ),
        operation(
            "GET", "/ws/events/{eventId}", "streamEvent", "streams", "One event's changes",
            {101: SWITCHING_PROTOCOLS},
            parameters=[
                query("since", {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                      "Resume after this `seq`."),
            ],
            codes=["bad_request"],
            busy=PAGES,
            description="The first message is a `snapshot` of the whole event; for an event"
            " with an admission queue, the latest `queueUpdate` follows it (and comes once"
            " a second while the queue moves). `?since=SEQ`"
            " resumes: every message with `seq` > SEQ still in the event's replay buffer"
            " (at least the last 256) comes first, or a fresh `snapshot` if the gap is"
            " older. After `eventDeleted` the stream closes with 1000. An unknown event"
            " (or an id that is not a UUID) refuses the handshake with `404`; a bad"
            " `since` with `400 validation_failed`." + _STREAM,
        ),
        # --- pages ---
        operation(
            "GET", "/", "dashboard", "pages", "The live dashboard (and the `/ws` stream)",
            {
                200: {"description": "The dashboard page.", **_HTML},
                101: {"description": "A WebSocket handshake here opens the `/ws` stream."},
            },
            busy=PAGES,
            description="A plain `GET` answers the dashboard; a WebSocket handshake gets"
            " the same stream as `/ws`.",
        ),
        operation(
            "GET", "/dashboard/{name}", "dashboardFile", "pages", "A file of the dashboard",
            {200: files("text/javascript", "text/css")},
            parameters=[{"name": "name", "in": "path", "required": True, "schema": TEXT}],
            codes=["not_found"],
            busy=PAGES,
        ),
        operation(
            "GET", "/e/{id}", "signupPage", "pages", "An event's signup page",
            {200: {"description": "The signup page.", **_HTML}},
            parameters=[_PAGE_ID],
            busy=PAGES,
            description="For people, not programs: the event in its own time zone, live"
            " seats, the admission queue when the event has one, a name and email form,"
            " then the result. One page for every id: its script reads the event, so an"
            " unknown id gets the page, which says the event was not found.",
        ),
        operation(
            "GET", "/r/{id}", "managePage", "pages", "A registration's manage page",
            {200: {"description": "The manage page.", **_HTML}},
            parameters=[_PAGE_ID],
            busy=PAGES,
            description="The page every email about a registration links to, as"
            " `/r/{id}?token=…`: its status, the ticket's QR code, confirm (while held or"
            " offered) and cancel. The page's script reads `token` from its own address and"
            " sends it as `Registration-Token`; the daemon never reads it here. Like the"
            " signup page, one page for every id.",
        ),
        operation(
            "GET", "/pages/{name}", "pageFile", "pages", "A file of the signup and manage pages",
            {200: files("text/javascript", "text/css")},
            parameters=[{"name": "name", "in": "path", "required": True, "schema": TEXT}],
            codes=["not_found"],
            busy=PAGES,
        ),
        operation(
            "GET", "/api", "swaggerUi", "pages", "Swagger UI for this document",
            {
                200: {"description": "Swagger UI; every file it loads comes from this"
                      " daemon.", **_HTML},
                304: NOT_MODIFIED,
            },
            busy=PAGES,
        ),
        operation(
            "GET", "/api/assets/{name}", "swaggerUiFile", "pages", "A file of Swagger UI",
            {200: files("text/javascript", "text/css"), 304: NOT_MODIFIED},
            parameters=[
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(ASSETS)},
                }
            ],
            codes=["not_found"],
            busy=PAGES,
        ),
        operation(
            "GET", DOCUMENT_PATH, "openapiDocument", "pages", "This document",
            {
                200: {
                    "description": "The OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
            busy=PAGES,
        ),
    ])
