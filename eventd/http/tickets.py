"""A registration's ticket, and the key set that verifies tickets.

- ``GET /registrations/{id}/ticket`` — a confirmed registration's ticket
  (``eventd.tickets``): ``{"ticket": "<JWS>", "qr": "data:image/svg+xml;base64,…"}``,
  or with ``Accept: image/svg+xml`` the QR code's SVG itself. The QR code
  holds exactly the ticket's string. Its manage token or an admin token gets
  it (:func:`eventd.http.registrations.authorized`); a registration that is
  not confirmed (waitlisted, held, cancelled…) has no ticket:
  ``409 ticket_not_valid``.
- ``GET /.well-known/jwks.json`` — the public key as a JWK Set, for scanners
  that verify tickets offline.

A ticket is a credential (whoever shows it first gets in), so neither answer
of the first route may be stored by a cache.
"""

from __future__ import annotations

import base64
import functools
import io

import segno
import trio
from quart import Blueprint, Response, request

from eventd.errors import NotFound, TicketNotValid
from eventd.http.context import json_response, parse_id, services
from eventd.http.registrations import authorized
from eventd.storage.tickets import ticket_holder
from eventd.tickets import Ticket, TicketKey, issued_at

blueprint = Blueprint("tickets", __name__)

SVG = "image/svg+xml"
# Module size in the SVG's user units; the quiet zone is the standard 4 modules.
QR_SCALE = 4
# QR codes kept, ~6 KiB each.
QR_CACHE_SIZE = 2048


@functools.lru_cache(maxsize=QR_CACHE_SIZE)
def qr_svg(text: str) -> bytes:
    """A QR code (ISO/IEC 18004, never a Micro QR) holding exactly ``text``, as SVG.

    Some 30 ms of pure Python (most of it choosing the mask), so it runs in a
    thread (:func:`get_ticket`) and is kept: a registration's ticket never
    changes, and it is asked for again (the page, the email, a reprint).
    """
    out = io.BytesIO()
    segno.make_qr(text).save(out, kind="svg", scale=QR_SCALE, title="Ticket QR code")
    return out.getvalue()


def ticket_key() -> TicketKey:
    key = services().ticket_key
    if key is None:
        raise NotFound("This daemon issues no tickets.")
    return key


@blueprint.get("/registrations/<registration_id>/ticket")
async def get_ticket(registration_id: str) -> Response:
    rid = parse_id(registration_id, "Registration")
    holder = await ticket_holder(services().db, rid)
    if holder is None:
        raise NotFound(f"Registration {rid} does not exist.")
    registration = holder.registration
    await authorized(rid)  # its manage token, or an admin's: 403 otherwise
    if registration.status != "confirmed":
        raise TicketNotValid(
            f"Registration {rid} is {registration.status}; only a confirmed registration"
            " has a ticket."
        )
    token = ticket_key().sign(
        Ticket(registration.id, registration.event_id, holder.attendee_name,
               issued_at(holder.confirmed_at))
    )
    svg = await trio.to_thread.run_sync(qr_svg, token)  # not on the loop: see qr_svg
    if request.accept_mimetypes.best_match(["application/json", SVG]) == SVG:
        response = Response(svg, content_type=SVG)
    else:
        data_uri = f"data:{SVG};base64,{base64.b64encode(svg).decode('ascii')}"
        response = json_response({"ticket": token, "qr": data_uri})
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Accept")
    return response


@blueprint.get("/.well-known/jwks.json")
async def jwks() -> Response:
    response = json_response(ticket_key().jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


