"""/events: create, list, read, edit, delete, and the most-registered stat."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, request

from eventd.actors import messages as m
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
from eventd.http.schemas import EventCreate, EventPatch, Query
from eventd.model import Event
from eventd.storage import commands, queries

blueprint = Blueprint("events", __name__)


@blueprint.post("/events")
@admin_route
@idempotent
async def create_event() -> Response:
    body = read_body(EventCreate)
    s = services()
    fields = commands.EventFields(
        name=body.name,
        description=body.description,
        starts_at=body.date,
        duration_minutes=body.duration_minutes,
        location=body.location,
        max_attendees=body.max_attendees,
        timezone=body.timezone or s.config.events.default_timezone,
        hold_minutes=(
            body.hold_minutes if body.hold_minutes is not None
            else s.config.registrations.hold_minutes
        ),
        offer_minutes=body.offer_minutes,
        confirmation=body.confirmation,
    )
    event = await s.supervisor.create_event(uuid.uuid4(), fields)
    return json_response(event.json_bytes, 201, location=f"/events/{event.id}")


@blueprint.get("/events")
async def list_events() -> Response:
    q = Query(request.args, {"startDate", "endDate", "location", "search", "page", "limit"})
    where = queries.EventFilter(
        start_date=q.timestamp("startDate"),
        end_date=q.timestamp("endDate", end_of_day=True),
        location=q.text("location"),
        search=q.text("search"),
    )
    page, limit = q.page()
    q.check()
    found = await queries.list_events(services().db, where, page, limit)
    return json_response(
        {
            "items": [e.to_json() for e in found.items],
            "total": found.total,
            "page": page,
            "limit": limit,
        }
    )


@blueprint.get("/events/stats/most-registrations")
async def most_registrations() -> Response:
    s = services()
    event_id = await queries.most_registered_event_id(s.db)
    if event_id is None:
        raise NotFound("There are no events yet.")
    return json_response(await s.reads.event_json(event_id))


@blueprint.get("/events/<event_id>")
async def get_event(event_id: str) -> Response:
    return json_response(await services().reads.event_json(parse_id(event_id, "Event")))


@blueprint.patch("/events/<event_id>")
@admin_route
async def update_event(event_id: str) -> Response:
    eid = parse_id(event_id, "Event")
    changes = (read_body(EventPatch)).changes()
    event: Event = await services().supervisor.ask(
        eid, lambda reply: m.UpdateEvent(changes, reply)
    )
    return json_response(event.json_bytes)


@blueprint.delete("/events/<event_id>")
@admin_route
async def delete_event(event_id: str) -> Response:
    eid = parse_id(event_id, "Event")
    await services().supervisor.ask(eid, lambda reply: m.DeleteEvent(reply))
    return no_content()
