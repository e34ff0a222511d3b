"""/registrations: register (or hold, or join the waitlist), read, list, confirm, cancel.

A registration's path: :func:`register` asks the event's actor
(``eventd.actors.event_actor``), which batches it with its neighbours into one
command for the writer (``eventd.storage.writer``); the writer commits, the
actor adopts the counts and publishes the change, and the reply comes back
here as the 201 — with the registration's manage token, once, unless the
token went by email (the event confirms by email, or the attendee was found
by an address the asker has not shown they own).

The gates — sales open (``salesStartAt``), and for a queued event the
``Admission-Token`` of an admitted ticket — are decided by the database in the
statement that registers (``eventd_register_run``), under the event's row
lock: the token's SHA-256 goes down with the request as plain data, one
registration uses it, and a refusal (``eventd.errors.gate_refusal``) writes
nothing, the admission included.

Acting on a registration (confirm, cancel) needs its manage token, as
``?token=`` or the ``Registration-Token`` header, or an admin token: the id
alone, which lists, exports and webhooks show, is no capability. Tokens are
stored as SHA-256 hashes and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime

import trio
from quart import Blueprint, Response, current_app, request

from eventd.actors import messages as m
from eventd.errors import Forbidden, NotFound, gate_refusal
from eventd.http.admission import registration_admission
from eventd.http.context import (
    admin_route,
    json_response,
    no_content,
    parse_id,
    presents_admin_token,
    read_body,
    services,
)
from eventd.http.idempotency import idempotent
from eventd.http.schemas import Query, RegistrationCreate
from eventd.model import ACTIVE_STATUSES, Registration, utc_now
from eventd.storage import commands, queries, queue

blueprint = Blueprint("registrations", __name__)

TOKEN_HEADER = "Registration-Token"
# The statuses a list may ask for.
STATUSES = ("held", "offered", "confirmed", "waitlisted", "cancelled", "expired")


@blueprint.post("/registrations")
@idempotent
async def register() -> Response:
    body = read_body(RegistrationCreate)
    s = services()
    # Plain data for the database, which decides the gates with the registration.
    admission = registration_admission(body.event_id)
    attendee_id, by_email = body.attendee_id, False
    if body.attendee is not None:
        event = await s.supervisor.get_event(body.event_id)  # 404 before anyone is made
        if event.admission_rate_per_minute is not None or (
                event.sales_start_at is not None and event.sales_start_at > utc_now()):
            # ... and the gates' refusals too (a read: nothing is used here).
            refusal = gate_refusal(
                await queue.gate_answer(s.db, body.event_id, admission), body.event_id
            )
            if refusal is not None:
                raise refusal
        attendee, by_email = await s.writer.submit(
            commands.FindOrCreateAttendee(uuid.uuid4(), body.attendee.name, body.attendee.email)
        )
        attendee_id = attendee.id
    assert attendee_id is not None
    # No id yet: the database makes it in the same statement that registers.
    registration: Registration = await s.supervisor.ask(
        body.event_id,
        lambda reply: m.Register(
            None, attendee_id, body.waitlist, reply, trio.current_effective_deadline(),
            body.hold, by_email, admission,
        ),
    )
    answer = registration.to_json()
    if registration.manage_token is not None:
        answer["manageToken"] = registration.manage_token
        if registration.status == "held":
            _recent_holds().add(registration)
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
    status = q.choice("status", STATUSES)
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


@blueprint.post("/registrations/<registration_id>/confirm")
async def confirm_registration(registration_id: str) -> Response:
    """Held or offered → confirmed; confirming a confirmed one again changes nothing (200).

    The token is checked before ``Idempotency-Key`` is looked at: a stored
    answer is replayed only to a request that may act on the registration.
    A hold made through this daemon, confirmed with the token its 201 gave,
    needs no read of the database (see :class:`RecentHolds`).
    """
    rid = parse_id(registration_id, "Registration")
    made = _recent_holds().get(rid)
    if made is not None and (presents_admin_token() or _matches(_presented(), [made[1]])):
        return await _confirm(rid, made[0].event_id, made[0])
    keys = await authorized(rid)
    return await _confirm(rid, keys.event_id, None)


@idempotent
async def _confirm(rid: uuid.UUID, event_id: uuid.UUID, made: Registration | None) -> Response:
    s = services()
    answer: tuple[str, datetime] = await s.supervisor.ask(
        event_id, lambda reply: m.Confirm(rid, reply, trio.current_effective_deadline())
    )
    outcome, confirmed_at = answer
    if made is not None and outcome == "confirmed_hold":
        # What a read would find: the row as made, confirmed in that transaction.
        _recent_holds().discard(rid)
        return json_response(made._replace(status="confirmed", updated_at=confirmed_at,
                                           manage_token=None).to_json())
    registration = await queries.get_registration(s.db, rid)
    if registration is None:  # its event was deleted meanwhile
        raise NotFound(f"Registration {rid} does not exist.")
    return json_response(registration.to_json())


class RecentHolds:
    """The holds this daemon made lately, with their token's hash: a confirm's shortcut.

    A registration never moves to another event, and a token once valid stays
    valid (``token_hashes`` only grows), so what the 201 answered is enough to
    route a confirm that shows that token to the event's actor, and — when the
    actor answers ``confirmed_hold`` — to answer it: without the two reads
    through the pool (its keys, then the row) that otherwise wait behind each
    other under a rush. Anything else (another token, another daemon's hold,
    one evicted) takes the reads. At most :attr:`LIMIT` entries, oldest out.
    """

    LIMIT = 100_000

    def __init__(self) -> None:
        self._made: dict[uuid.UUID, tuple[Registration, bytes]] = {}

    def add(self, registration: Registration) -> None:
        assert registration.manage_token is not None
        if len(self._made) >= self.LIMIT:
            del self._made[next(iter(self._made))]
        self._made[registration.id] = (
            registration._replace(manage_token=None), _hash(registration.manage_token))

    def get(self, rid: uuid.UUID) -> tuple[Registration, bytes] | None:
        return self._made.get(rid)

    def discard(self, rid: uuid.UUID) -> None:
        self._made.pop(rid, None)


def _recent_holds() -> RecentHolds:
    extensions = current_app.extensions
    found: RecentHolds | None = extensions.get("eventd_recent_holds")
    if found is None:
        found = extensions["eventd_recent_holds"] = RecentHolds()
    return found


@blueprint.delete("/registrations/<registration_id>")
async def cancel_registration(registration_id: str) -> Response:
    """Cancel an active registration; a cancelled or expired one stays as it is (204)."""
    rid = parse_id(registration_id, "Registration")
    keys = await authorized(rid)
    if keys.status in ACTIVE_STATUSES:
        await services().supervisor.ask(
            keys.event_id, lambda reply: m.Cancel(rid, reply, trio.current_effective_deadline())
        )
    return no_content()


async def authorized(rid: uuid.UUID) -> queries.RegistrationKeys:
    """The registration's keys, if the request may act on it: its token, or an admin's."""
    keys = await queries.registration_keys(services().db, rid)
    if keys is None:
        raise NotFound(f"Registration {rid} does not exist.")
    if presents_admin_token():
        return keys
    token = _presented()
    if not token or not _matches(token, keys.token_hashes):
        raise Forbidden(
            f"Acting on registration {rid} needs its manage token (?token= or the"
            f" {TOKEN_HEADER} header) or an admin token."
        )
    return keys


def _presented() -> str | None:
    """The manage token the request shows, if any."""
    token: str | None = request.args.get("token") or request.headers.get(TOKEN_HEADER)
    return token


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _matches(token: str | None, hashes: list[bytes]) -> bool:
    """Is ``token`` one of the registration's? Every hash is compared, in constant time."""
    if not token:
        return False
    presented = _hash(token)
    matched = False
    for stored in hashes:
        matched |= hmac.compare_digest(presented, stored)
    return matched
