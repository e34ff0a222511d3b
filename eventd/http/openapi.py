"""``GET /api/openapi.json``: the OpenAPI 3.1 document of every route, built once.

Generated, not kept by hand: the body and answer schemas are pydantic's JSON
Schema of the models that validate the requests (:mod:`eventd.http.schemas`)
and of the shapes of the answers (:mod:`eventd.http.responses`); the error
answers come from the daemon's problem table (:mod:`eventd.http.problems`).
Written by hand are only the prose, the examples and the routes' list
(:mod:`eventd.http.openapi_paths`). The document never changes while the
daemon runs, so its bytes are kept. ``tests/test_openapi.py`` checks it
against the app's URL map, and ``tests/test_schemathesis.py`` against a live
daemon.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema
from quart import Blueprint, Response

from eventd import __version__
from eventd.http import openapi_operations as o
from eventd.http import responses, schemas
from eventd.http.openapi_paths import DOCUMENT_PATH, document_paths

blueprint = Blueprint("openapi", __name__)

# The named schemas of the document; what they refer to is hoisted beside them.
COMPONENTS: dict[str, Any] = {
    "EventCreate": schemas.EventCreate,
    "EventPatch": schemas.EventPatch,
    "AttendeeCreate": schemas.AttendeeCreate,
    "RegistrationCreate": schemas.RegistrationCreate,
    "CheckInCreate": schemas.CheckInCreate,
    "Event": responses.Event,
    "EventSummary": responses.EventSummary,
    "Attendee": responses.Attendee,
    "AttendeeSummary": responses.AttendeeSummary,
    "Registration": responses.Registration,
    "NewRegistration": responses.NewRegistration,
    "AttendeeRegistration": responses.AttendeeRegistration,
    "EventRegistration": responses.EventRegistration,
    "CheckIn": responses.CheckIn,
    "Ticket": responses.Ticket,
    "JwkSet": responses.JwkSet,
    "EventPage": responses.EventPage,
    "AttendeePage": responses.AttendeePage,
    "AttendeeRegistrationPage": responses.AttendeeRegistrationPage,
    "EventRegistrationPage": responses.EventRegistrationPage,
    "WebhookCreate": schemas.WebhookCreate,
    "WebhookPatch": schemas.WebhookPatch,
    "Webhook": responses.Webhook,
    "WebhookCreated": responses.WebhookCreated,
    "WebhookPage": responses.WebhookPage,
    "WebhookDelivery": responses.WebhookDelivery,
    "WebhookDeliveryPage": responses.WebhookDeliveryPage,
    "Problem": responses.Problem,
    "Health": responses.Health,
    "StreamMessage": responses.StreamMessage,
    "QueueTicket": responses.QueueTicket,
    "JoinedQueueTicket": responses.JoinedQueueTicket,
}

DESCRIPTION = """\
A real-time event-registration daemon: events with a capacity, attendees,
registrations with a waitlist, and a WebSocket stream of every change.

**Conventions.** JSON over HTTP, UTF-8, field names in camelCase, ids are UUIDs.
Timestamps are RFC 3339: input with any offset, output always UTC with a trailing `Z`.
Request bodies must be `application/json` (else `415`) and at most
`limits.max_body_bytes` (default 64 KiB, else `413`). Unknown JSON fields, and unknown
query parameters of list routes, are refused (`400 validation_failed`).

**Errors** are RFC 9457 `application/problem+json` with a stable `code`; each
operation lists the codes it can answer. `429 rate_limited` and
`503 unavailable` carry `Retry-After`.

**Pages.** List routes take `page` (≥ 1) and `limit`, and answer
`{"items": [...], "total", "page", "limit"}`.

**Idempotency.** Every `POST` takes an optional `Idempotency-Key` (1–255 printable
ASCII characters). A retry with the same key and body within 24 hours gets the first
answer again with `Idempotent-Replayed: true`, and does nothing twice; the same key
with another body is `409 idempotency_key_reused`. In "Try it out", leave it empty or
type a new key for each new request.

**Auth.** With `auth.admin_tokens` configured, admin routes (marked with a lock)
need `Authorization: Bearer <token>`, else `401`; with none configured they are open
(loopback only). Every other route is public: an attendee or registration id is the
capability to read or cancel it. `POST /checkins` also takes one of
`auth.checkin_tokens`, bearer tokens for the scanners at the door that open nothing else.

**WebSocket.** OpenAPI has no notion of WebSocket: `/ws`, `/ws/events/{eventId}`
and `/` are described as the `GET` of their handshake (`101 Switching Protocols`),
and their frames as the `StreamMessage` schema in components.
"""


@blueprint.get(DOCUMENT_PATH)
async def openapi_document() -> Response:
    return Response(document_bytes(), content_type="application/json")


@functools.cache
def document_bytes() -> bytes:
    return orjson.dumps(build_document())


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventd",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "events"},
            {"name": "attendees"},
            {"name": "registrations"},
            {"name": "webhooks", "description": "Signed messages about every change, sent to"
             " endpoints (Standard Webhooks)."},
            {"name": "tickets", "description": "Signed tickets, their keys, and check-in at"
             " the door."},
            {"name": "queue", "description": "Admission queues (waiting rooms)."},
            {"name": "streams", "description": "WebSocket streams of changes."},
            {"name": "operations", "description": "Health and metrics."},
            {"name": "pages", "description": "This document, Swagger UI, the dashboard,"
             " the signup and manage pages."},
        ],
        "paths": document_paths(),
        "components": {
            "schemas": component_schemas(),
            "parameters": o.PARAMETERS,
            "headers": o.HEADERS,
            "securitySchemes": {
                o.ADMIN: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of `auth.admin_tokens` (for `POST /checkins`, also"
                    " one of `auth.checkin_tokens`). Needed only when admin tokens are"
                    " configured.",
                }
            },
        },
    }


class _Untitled(GenerateJsonSchema):
    """pydantic's JSON Schema without the titles it makes up from Python names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> dict[str, Any]:
        generated = super().typed_dict_schema(schema)
        generated.pop("title", None)
        return generated

    def model_schema(self, schema: core_schema.ModelSchema) -> dict[str, Any]:
        generated = super().model_schema(schema)
        generated.pop("title", None)
        return generated


def component_schemas() -> dict[str, Any]:
    """``components.schemas``: :data:`COMPONENTS` and every schema they refer to."""
    named, definitions = TypeAdapter.json_schemas(
        [(name, "validation", TypeAdapter(shape)) for name, shape in COMPONENTS.items()],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Untitled,
    )
    found: dict[str, Any] = definitions.get("$defs", {})
    for (name, _mode), schema in named.items():
        if schema != o.ref(name):  # an alias (a union) is not a definition of its own
            found[name] = schema
    return dict(sorted(found.items()))
