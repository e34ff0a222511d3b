"""``POST /checkins``: let a ticket's holder in at the door, once.

Who may: an admin, or a scanner with one of ``auth.checkin_tokens`` (a bearer
token good for this route only); anyone else gets ``401`` as on the admin
routes. The ticket's signature is checked here (``eventd.tickets``); a ticket
that does not verify never reaches the event. A ticket that does goes to its
event's actor as an :class:`~eventd.actors.messages.CheckIn`, and the
database decides with one guarded update (``eventd.storage.tickets``) — so
the registration's state *now* counts, not the ticket's: a cancelled
registration's ticket stops working at once.

- ``201`` with the registration and ``checkedInAt``, the first time;
- ``409 already_checked_in`` with the first ``checkedInAt``, every time after;
- ``409 ticket_not_valid`` for a ticket that does not verify, or whose
  registration is unknown, gone with its event, or not confirmed.

Outcomes are counted for ``/metrics`` (:data:`OUTCOMES`, in the app's extensions).
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import trio
from quart import Blueprint, Quart, Response, current_app

from eventd.actors import messages as m
from eventd.errors import AlreadyCheckedIn, NotFound, TicketNotValid
from eventd.http.context import admin_route, bearer_matches, json_response, read_body, services
from eventd.http.idempotency import idempotent
from eventd.http.schemas import CheckInCreate
from eventd.http.tickets import ticket_key
from eventd.model import format_time
from eventd.storage.tickets import CheckInResult

P = ParamSpec("P")
R = TypeVar("R")

blueprint = Blueprint("checkins", __name__)

# app.extensions key: check-ins answered, by outcome (checked_in, already_checked_in,
# not_valid: the registration's state; bad_ticket: the ticket itself).
OUTCOMES = "eventd.checkins"


def install(app: Quart) -> None:
    app.extensions[OUTCOMES] = collections.Counter()
    app.register_blueprint(blueprint)


def checkin_route(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """An admin route that also takes one of ``auth.checkin_tokens``."""
    as_admin = admin_route(handler)

    @functools.wraps(as_admin)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        tokens = services().config.auth.checkin_tokens
        if tokens and bearer_matches(tokens):
            return await handler(*args, **kwargs)
        return await as_admin(*args, **kwargs)

    return guarded


@blueprint.post("/checkins")
@checkin_route
@idempotent
async def check_in() -> Response:
    body = read_body(CheckInCreate)
    outcomes: collections.Counter[str] = current_app.extensions[OUTCOMES]
    try:
        ticket = ticket_key().verify(body.ticket)
    except TicketNotValid:
        outcomes["bad_ticket"] += 1
        raise
    try:
        result: CheckInResult = await services().supervisor.ask(
            ticket.event_id,
            lambda reply: m.CheckIn(ticket.registration_id, reply,
                                    trio.current_effective_deadline()),
        )
    except NotFound:  # the event was deleted, and its registrations with it
        outcomes["not_valid"] += 1
        raise TicketNotValid(
            f"Registration {ticket.registration_id} no longer exists; its event"
            f" {ticket.event_id} was deleted."
        ) from None
    outcomes[result.outcome] += 1
    if result.outcome == "not_valid":
        raise TicketNotValid(
            f"Registration {ticket.registration_id} does not exist or is not confirmed"
            " (cancelled, expired or waitlisted)."
        )
    assert result.checked_in_at is not None
    assert result.registration is not None
    if result.outcome == "already_checked_in":
        raise AlreadyCheckedIn(
            f"Registration {ticket.registration_id} was checked in at"
            f" {format_time(result.checked_in_at)}.",
            result.checked_in_at,
        )
    answer = {**result.registration.to_json(), "checkedInAt": format_time(result.checked_in_at)}
    return json_response(answer, 201, location=f"/registrations/{ticket.registration_id}")
