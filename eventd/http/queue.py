"""/events/{id}/queue: join an event's admission queue, and read a ticket.

A join goes to the writer (``eventd.storage.queue.JoinQueue``), which batches
the joins it holds into one statement; the answer comes after COMMIT, with
the token, which is shown this once and stored only as a hash. A ticket is
read with its token (``?token=``), compared in constant time.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from eventd.errors import AdmissionRequired, FieldError, NotFound
from eventd.http.admission import new_token, token_hash, token_matches
from eventd.http.context import json_response, parse_id, services
from eventd.http.schemas import Query
from eventd.model import format_time
from eventd.storage.queue import JoinQueue, QueueTicket, find_ticket

blueprint = Blueprint("queue", __name__)


def ticket_json(ticket: QueueTicket) -> dict[str, Any]:
    return {
        "ticketId": str(ticket.ticket_id),
        "rank": ticket.rank,
        "status": ticket.status,
        "admittedThrough": ticket.admitted_through,
        "opensAt": format_time(ticket.opens_at) if ticket.opens_at else None,
        "expiresAt": format_time(ticket.expires_at) if ticket.expires_at else None,
    }


@blueprint.post("/events/<event_id>/queue")
async def join_queue(event_id: str) -> Response:
    eid = parse_id(event_id, "Event")
    token = new_token()
    ticket = await services().writer.submit(JoinQueue(eid, token_hash(token)))
    answer = {"ticketId": str(ticket.ticket_id), "token": token, **ticket_json(ticket)}
    return json_response(answer, 201, location=f"/events/{eid}/queue/{ticket.ticket_id}")


@blueprint.get("/events/<event_id>/queue/<ticket_id>")
async def get_ticket(event_id: str, ticket_id: str) -> Response:
    eid = parse_id(event_id, "Event")
    tid = parse_id(ticket_id, "Ticket")
    q = Query(request.args, {"token"})
    token = q.text("token", max_length=100)
    if token is None:
        q.errors.append(FieldError("token", "is required: the ticket's token from its join"))
    q.check()
    assert token is not None
    found = await find_ticket(services().db, tid)
    if found is None or found.ticket.event_id != eid:
        raise NotFound(f"Ticket {tid} is not in the queue of event {eid}.")
    if not token_matches(token, found.token_hash):
        raise AdmissionRequired(f"The token is not ticket {tid}'s.")
    return json_response(ticket_json(found.ticket))
