"""/registrations: register (or join the waitlist), read, list an event's, cancel.

A registration's path: :func:`register` asks the event's actor
(``eventd.actors.event_actor``), which batches it with its neighbours into one
command for the writer (``eventd.storage.writer``); the writer commits, the
actor adopts the counts and publishes the change, and the reply comes back
here as the 201.
"""

from __future__ import annotations

import trio
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
from eventd.http.schemas import Query, RegistrationCreate
from eventd.model import Registration
from eventd.storage import queries

blueprint = Blueprint("registrations", __name__)


@blueprint.post("/registrations")
@idempotent
async def register() -> Response:
    body = read_body(RegistrationCreate)
    # No id yet: the database makes it in the same statement that registers.
    registration: Registration = await services().supervisor.ask(
        body.event_id,
        lambda reply: m.Register(
            None, body.attendee_id, body.waitlist, reply, trio.current_effective_deadline()
        ),
    )
    answer = registration.to_json()
    return json_response(answer, 201, location=f"/registrations/{answer['id']}")


@blueprint.get("/registrations/<registration_id>")
async def get_registration(registration_id: str) -> Response:
    rid = parse_id(registration_id, "Registration")
    registration = await queries.get_registration(services().db, rid)
    if registration is None:
        raise NotFound(f"Registration {rid} does not exist.")
    return json_response(registration.to_json())


@blueprint.get("/registrations/event/<event_id>")
@admin_route
async def event_registrations(event_id: str) -> Response:
    q = Query(request.args, {"status", "page", "limit"})
    status = q.choice("status", ("confirmed", "waitlisted"))
    page, limit = q.page(default_limit=100, max_limit=1000)
    q.check()
    s = services()
    event = await s.supervisor.get_event(parse_id(event_id, "Event"))
    found = await queries.list_event_registrations(s.db, event.id, status, page, limit)
    return json_response(
        {
            "items": [
                {
                    **item.registration.to_json(),
                    "attendee": {
                        "id": str(item.attendee.id),
                        "name": item.attendee.name,
                        "email": item.attendee.email,
                    },
                }
                for item in found.items
            ],
            "total": found.total,
            "page": page,
            "limit": limit,
        }
    )


@blueprint.delete("/registrations/<registration_id>")
async def cancel_registration(registration_id: str) -> Response:
    rid = parse_id(registration_id, "Registration")
    s = services()
    event_id = await queries.registration_event_id(s.db, rid)
    if event_id is None:
        raise NotFound(f"Registration {rid} does not exist.")
    await s.supervisor.ask(
        event_id, lambda reply: m.Cancel(rid, reply, trio.current_effective_deadline())
    )
    return no_content()
