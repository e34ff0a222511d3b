"""/attendees: create, list, read, their registrations, delete."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, request

from eventd.errors import NotFound
from eventd.http.context import (
    admin_route,
    json_response,
    no_content,
    parse_id,
    read_body,
    services,
)
from eventd.http.idempotency import idempotent
from eventd.http.schemas import AttendeeCreate, Query
from eventd.model import Attendee
from eventd.storage import commands, queries

blueprint = Blueprint("attendees", __name__)


@blueprint.post("/attendees")
@idempotent
async def create_attendee() -> Response:
    body = read_body(AttendeeCreate)
    attendee: Attendee = await services().writer.submit(
        commands.CreateAttendee(uuid.uuid4(), body.name, body.email)
    )
    return json_response(attendee.to_json(), 201, location=f"/attendees/{attendee.id}")


@blueprint.get("/attendees")
@admin_route
async def list_attendees() -> Response:
    q = Query(request.args, {"search", "page", "limit"})
    search = q.text("search", max_length=254)
    page, limit = q.page()
    q.check()
    found = await queries.list_attendees(services().db, search, page, limit)
    return json_response(
        {"items": [a.to_json() for a in found.items], "total": found.total,
         "page": page, "limit": limit}
    )


async def _attendee(attendee_id: str) -> Attendee:
    aid = parse_id(attendee_id, "Attendee")
    attendee = await queries.get_attendee(services().db, aid)
    if attendee is None:
        raise NotFound(f"Attendee {aid} does not exist.")
    return attendee


@blueprint.get("/attendees/<attendee_id>")
async def get_attendee(attendee_id: str) -> Response:
    return json_response((await _attendee(attendee_id)).to_json())


@blueprint.get("/attendees/<attendee_id>/registrations")
async def attendee_registrations(attendee_id: str) -> Response:
    q = Query(request.args, {"page", "limit"})
    page, limit = q.page()
    q.check()
    attendee = await _attendee(attendee_id)
    found = await queries.list_attendee_registrations(services().db, attendee.id, page, limit)
    return json_response(
        {
            "items": [
                {**item.registration.to_json(), "event": item.event.summary_json()}
                for item in found.items
            ],
            "total": found.total,
            "page": page,
            "limit": limit,
        }
    )


@blueprint.delete("/attendees/<attendee_id>")
@admin_route
async def delete_attendee(attendee_id: str) -> Response:
    aid = parse_id(attendee_id, "Attendee")
    # The database cancels the registrations; each event's actor adopts the counts.
    await services().supervisor.delete_attendee(aid)
    return no_content()
