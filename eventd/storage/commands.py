"""The writes eventd makes, as commands for the :class:`~eventd.storage.writer.Writer`.

Each command is one change a client asked for. Registration operations of all
actors in a batch go to PostgreSQL in one call of ``eventd_registration_json``
(``sql/006_registration_json.sql``: one JSON document, unpacked for
``eventd_registration_batch``, which registers each run of registrations
set-wise, ``sql/008``), which re-checks capacity and uniqueness under the
events' row locks: the database's word is final.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, NamedTuple

import orjson
import outcome

from eventd.errors import (
    CapacityBelowRegistrations,
    EmailTaken,
    EventOverlap,
    NotFound,
)
from eventd.model import Attendee, Event, EventCounts
from eventd.storage import webhooks
from eventd.storage.database import Connection, Row
from eventd.storage.queue import configure_queue
from eventd.storage.writer import WriteCommand

# --- registrations -----------------------------------------------------------

OpOutcome = Literal[
    "confirmed",
    "held",
    "waitlisted",
    "event_full",
    "already_registered",
    "event_not_found",
    "attendee_not_found",
    "event_started",
    # The gates (eventd_register_run): before salesStartAt, and the admission queue's.
    "sales_not_open",
    "admission_required",
    "admission_used",
    "admission_expired",
    "cancelled",
    "confirmed_hold",  # a confirm: the hold is confirmed now
    "confirmed_offer",  # a confirm: the offer is claimed
    "already_confirmed",
    "hold_expired",  # a confirm after expiresAt: the due holds were expired now
    "not_held",  # a confirm of a waitlisted or cancelled registration
    "expired",  # an expire: due holds and offers were expired
    "unchanged",  # a cancel of a cancelled or expired one, an expire with nothing due
    "not_found",
    "busy",  # the event was locked by another transaction: nothing was done, send it again
]


OpKind = Literal["register", "cancel", "confirm", "expire"]


class RegistrationOp(NamedTuple):
    kind: OpKind
    # The registration to cancel or confirm; for a new one, None: the database
    # makes its id; for an expire (the event's due holds), None.
    registration_id: uuid.UUID | None
    attendee_id: uuid.UUID | None = None
    waitlist: bool = False
    hold: bool = False  # start held even under "instant" confirmation
    # The attendee was found by an email address the asker has not proved: the
    # registration starts held and its token goes only to that address.
    by_email: bool = False
    # The SHA-256 of the Admission-Token sent with it (None: none). A queued
    # event's registration is made only with an admitted ticket's, which it
    # uses, in the same statement; an event without a queue ignores it.
    admission: bytes | None = None


class OpResult(NamedTuple):
    registration_id: uuid.UUID  # the one registered (its id made now), cancelled, confirmed
    outcome: OpOutcome
    created_at: datetime | None
    promoted: tuple[uuid.UUID, ...]  # offered or confirmed from the waitlist
    counts: EventCounts | None  # None when the event is gone
    token: str | None = None  # a new registration's manage token, unless it went by email
    expires_at: datetime | None = None  # a new hold's deadline
    # After a cancel, confirm or expire: the event's next pending expiry (None: none).
    next_expiry: datetime | None = None
    expired_holds: int = 0  # held and offered registrations an expire (or late confirm)
    expired_offers: int = 0  # expired


class EventOps(NamedTuple):
    """One event actor's pending registrations and cancellations, in order."""

    event_id: uuid.UUID
    ops: list[RegistrationOp]


class RegistrationOps(WriteCommand[list[list[OpResult]]]):
    """Registrations and cancellations of one or more events; answered part by part.

    A round of event actors (``eventd.actors.rounds``) sends one, with a part
    per actor, and gets back each part's results in the order of its ops.
    """

    batch_order: ClassVar[int] = 10
    single_statement: ClassVar[bool] = True  # every actor's ops in one call

    def __init__(self, parts: list[EventOps]) -> None:
        super().__init__()
        self.parts = parts

    @classmethod
    async def run_batch(
        cls, conn: Connection, commands: Sequence[WriteCommand[Any]]
    ) -> list[outcome.Outcome[Any]]:
        # Registration locks are taken event by event, in id order, in every
        # daemon; a deadlock with other kinds of command is retried by the writer.
        each = [c.parts for c in commands if isinstance(c, RegistrationOps)]
        ordered = sorted((part for parts in each for part in parts), key=_event_order)
        batch = [
            # The flags only when set: a plain registration's entry stays short.
            (op.kind, op.registration_id, event_id, op.attendee_id, op.waitlist, op.hold,
             op.by_email, op.admission.hex())
            if op.admission is not None
            else (op.kind, op.registration_id, event_id, op.attendee_id, op.waitlist, op.hold,
                  op.by_email)
            if op.hold or op.by_email
            else (op.kind, op.registration_id, event_id, op.attendee_id, op.waitlist)
            for event_id, ops in ordered
            for op in ops
        ]
        rows = await conn.fetch(
            # A registration made now was made at the event's new updated_at (the
            # transaction's now()): that timestamp is sent, and decoded, once.
            "SELECT registration_id, outcome, NULLIF(created_at, updated_at), promoted, event_id,"
            " max_attendees, confirmed_count, waitlist_count, version, updated_at, edited_version,"
            " held_count, token, expires_at, next_expiry, expired_holds, expired_offers"
            " FROM eventd_registration_json($1) ORDER BY idx",  # the order of the ops
            # default=str: ids read from the database are asyncpg's own UUID type.
            orjson.dumps(batch, default=str).decode(),
        ) if batch else []
        results = iter(rows)
        answers: dict[int, list[OpResult]] = {}
        for part in ordered:
            answers[id(part)] = [_op_result(next(results)) for _ in part.ops]
        return [outcome.Value([answers[id(part)] for part in parts]) for parts in each]


def _event_order(part: EventOps) -> int:
    # UUID's own ordering is the same, through a Python-level __lt__ per comparison.
    return part.event_id.int


# Outcomes that made a registration: it has a created_at.
_MADE = frozenset({"confirmed", "held", "waitlisted"})


def _op_result(row: Any) -> OpResult:  # an asyncpg Record, read by position
    """A row of eventd_registration_batch: the result's fields, then the counts', in order."""
    op_outcome, created_at, promoted = row[1], row[2], row[3]
    if created_at is None and op_outcome in _MADE:
        created_at = row[9]  # the same moment as the event's updated_at (see run_batch)
    return OpResult(
        row[0],
        op_outcome,
        created_at,
        tuple(promoted) if promoted else (),
        EventCounts._make(row[4:12]) if row[4] is not None else None,
        row[12],
        row[13],
        row[14],
        row[15] or 0,
        row[16] or 0,
    )


# --- events ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EventFields:
    name: str
    description: str
    starts_at: datetime
    duration_minutes: int
    location: str
    max_attendees: int
    timezone: str = "UTC"
    hold_minutes: float = 15.0
    offer_minutes: float = 0.0
    confirmation: str = "instant"
    # Sales and admission (eventd.storage.queue): both admission fields or neither.
    sales_start_at: datetime | None = None
    admission_rate_per_minute: int | None = None
    admission_token_minutes: float | None = None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)


async def _lock_locations(conn: Connection, *locations: str) -> None:
    """Serialize schedule changes per normalized location, across daemons.

    Taken before the overlap check, in one order, so a check never misses an
    event another daemon is committing at the same place.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM ("
        " SELECT DISTINCT hashtextextended(eventd_location_key(l), 0) AS k"
        " FROM unnest($1::text[]) AS l ORDER BY k) AS keys",
        list(locations),
    )


async def _check_overlap(
    conn: Connection, fields: EventFields, exclude: uuid.UUID | None = None
) -> None:
    conflict = await conn.fetchval(
        "SELECT id FROM events WHERE location_key = eventd_location_key($1)"
        " AND starts_at < $3 AND ends_at > $2 AND id IS DISTINCT FROM $4"
        " ORDER BY starts_at, id LIMIT 1",
        fields.location,
        fields.starts_at,
        fields.ends_at,
        exclude,
    )
    if conflict is not None:
        raise EventOverlap(
            f"Event {conflict} is at the same location at an overlapping time.",
            conflicting_event_id=conflict,
        )


async def _email_everyone(conn: Connection, kind: str, event_id: uuid.UUID) -> None:
    """Queue a message of ``kind`` to every attendee with an active registration."""
    await conn.execute(
        "SELECT eventd_enqueue_email($1, id) FROM registrations WHERE event_id = $2"
        " AND status IN ('held', 'offered', 'confirmed', 'waitlisted')",
        kind,
        event_id,
    )


class CreateEvent(WriteCommand[Event]):
    def __init__(self, event_id: uuid.UUID, fields: EventFields) -> None:
        super().__init__()
        self.event_id = event_id
        self.fields = fields

    async def run(self, conn: Connection) -> Event:
        f = self.fields
        await _lock_locations(conn, f.location)
        await _check_overlap(conn, f)
        row = await conn.fetchrow(
            "INSERT INTO events (id, name, description, starts_at, duration_minutes, ends_at,"
            " location, max_attendees, timezone, hold_minutes, offer_minutes, confirmation,"
            " sales_start_at, admission_rate_per_minute, admission_token_minutes)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            f" RETURNING {Event.COLUMNS}",
            self.event_id,
            f.name,
            f.description,
            f.starts_at,
            f.duration_minutes,
            f.ends_at,
            f.location,
            f.max_attendees,
            f.timezone,
            f.hold_minutes,
            f.offer_minutes,
            f.confirmation,
            f.sales_start_at,
            f.admission_rate_per_minute,
            f.admission_token_minutes,
        )
        assert row is not None
        await webhooks.enqueue_event_change(conn, "created", Event.from_row(row))
        if f.admission_rate_per_minute is not None:
            await configure_queue(conn, self.event_id)
        return Event.from_row(row)


def _queue_settings(event: Event) -> tuple[Any, ...]:
    return (event.sales_start_at, event.admission_rate_per_minute)


@dataclasses.dataclass(frozen=True)
class EventUpdated:
    updated: Event  # after the edit: what eventUpdated carries
    current: Event  # after promotions, if capacity changed: the event now
    promoted: tuple[uuid.UUID, ...]
    edited: bool = True  # False: every field already had its asked-for value

    @property
    def counts_changed(self) -> bool:
        return self.current.version != self.updated.version


class UpdateEvent(WriteCommand[EventUpdated]):
    """Edit an event: capacity and overlap re-checked, waitlist promoted on a raise."""

    def __init__(self, event_id: uuid.UUID, changes: dict[str, Any]) -> None:
        super().__init__()
        self.event_id = event_id
        self.changes = changes

    async def run(self, conn: Connection) -> EventUpdated:
        row = await conn.fetchrow(
            f"SELECT {Event.COLUMNS} FROM events WHERE id = $1 FOR UPDATE", self.event_id
        )
        if row is None:
            raise NotFound(f"Event {self.event_id} does not exist.")
        old = Event.from_row(row)
        merged = EventFields(
            **{
                f.name: self.changes.get(f.name, getattr(old, f.name))
                for f in dataclasses.fields(EventFields)
            }
        )
        if all(getattr(merged, f.name) == getattr(old, f.name)
               for f in dataclasses.fields(EventFields)):
            return EventUpdated(old, old, (), edited=False)  # no version, no email
        taken = old.confirmed_count + old.held_count
        if merged.max_attendees < taken:
            raise CapacityBelowRegistrations(
                f"maxAttendees {merged.max_attendees} is below the {taken} seats taken"
                f" ({old.confirmed_count} confirmed, {old.held_count} held or offered)"
                " of this event."
            )
        moved = (merged.location, merged.starts_at, merged.ends_at) != (
            old.location,
            old.starts_at,
            old.ends_at,
        )
        if moved:
            await _lock_locations(conn, old.location, merged.location)
            await _check_overlap(conn, merged, exclude=self.event_id)
        row = await conn.fetchrow(
            "UPDATE events SET name = $2, description = $3, starts_at = $4,"
            " duration_minutes = $5, ends_at = $6, location = $7, max_attendees = $8,"
            " version = version + 1, edited_version = version + 1, updated_at = now(),"
            " timezone = $9, calendar_sequence = calendar_sequence + $10::int,"
            " hold_minutes = $11, offer_minutes = $12, confirmation = $13,"
            " sales_start_at = $14, admission_rate_per_minute = $15,"
            " admission_token_minutes = $16"
            f" WHERE id = $1 RETURNING {Event.COLUMNS}",
            self.event_id,
            merged.name,
            merged.description,
            merged.starts_at,
            merged.duration_minutes,
            merged.ends_at,
            merged.location,
            merged.max_attendees,
            merged.timezone,
            int(moved),  # a new time or place: calendars take the next invitation (RFC 5546)
            merged.hold_minutes,
            merged.offer_minutes,
            merged.confirmation,
            merged.sales_start_at,
            merged.admission_rate_per_minute,
            merged.admission_token_minutes,
        )
        assert row is not None
        updated = Event.from_row(row)
        await webhooks.enqueue_event_change(conn, "updated", updated)
        if _queue_settings(updated) != _queue_settings(old):
            await configure_queue(conn, self.event_id)
        if moved:
            await _email_everyone(conn, "event_changed", self.event_id)
        if updated.starts_at != old.starts_at:  # a new date: its reminder is due anew
            await conn.execute(
                "UPDATE registrations SET reminded_at = NULL WHERE event_id = $1", self.event_id
            )
        if updated.max_attendees == old.max_attendees:
            return EventUpdated(updated, updated, ())
        # The capacity changed: a second version, for the eventCapacityUpdate.
        promoted = await conn.fetchval("SELECT eventd_fill_seats($1)", self.event_id)
        row = await conn.fetchrow(
            "UPDATE events SET version = version + 1, updated_at = now()"
            f" WHERE id = $1 RETURNING {Event.COLUMNS}, eventd_next_expiry(id) AS next_expiry",
            self.event_id,
        )
        assert row is not None
        return EventUpdated(updated, Event.from_row(row), tuple(promoted))


@dataclasses.dataclass(frozen=True)
class EventDeleted:
    event: Event
    version: int  # the version the deletion would have had: the eventDeleted seq


class DeleteEvent(WriteCommand[EventDeleted]):
    def __init__(self, event_id: uuid.UUID) -> None:
        super().__init__()
        self.event_id = event_id

    async def run(self, conn: Connection) -> EventDeleted:
        # The row lock keeps every registration change of other daemons out
        # until the cancellation emails and the deletion are committed.
        row = await conn.fetchrow(
            f"SELECT {Event.COLUMNS} FROM events WHERE id = $1 FOR UPDATE", self.event_id
        )
        if row is None:
            raise NotFound(f"Event {self.event_id} does not exist.")
        await _email_everyone(conn, "event_cancelled", self.event_id)
        await webhooks.enqueue_event_change(conn, "deleted", Event.from_row(row))
        # ON DELETE CASCADE takes its registrations with it.
        await conn.execute("DELETE FROM events WHERE id = $1", self.event_id)
        event = Event.from_row(row)
        return EventDeleted(event, event.version + 1)


# --- attendees ---------------------------------------------------------------


async def _insert_attendee(
    conn: Connection, attendee_id: uuid.UUID, name: str, email: str
) -> Row | None:
    """The new attendee's row; None when another has the email (ignoring case)."""
    row: Row | None = await conn.fetchrow(
        "INSERT INTO attendees (id, name, email) VALUES ($1, $2, $3)"
        f" ON CONFLICT ((lower(email))) DO NOTHING RETURNING {Attendee.COLUMNS}",
        attendee_id, name, email,
    )
    return row


class CreateAttendee(WriteCommand[Attendee]):
    def __init__(self, attendee_id: uuid.UUID, name: str, email: str) -> None:
        super().__init__()
        self.attendee_id = attendee_id
        self.name = name
        self.email = email

    async def run(self, conn: Connection) -> Attendee:
        row = await _insert_attendee(conn, self.attendee_id, self.name, self.email)
        if row is None:
            raise EmailTaken(f"Another attendee already has the email {self.email}.")
        return Attendee.from_row(row)


class FindOrCreateAttendee(WriteCommand[tuple[Attendee, bool]]):
    """The attendee with this email (ignoring case), made now if there is none.

    Answers the attendee and whether it existed already: then the asker has
    not shown they own the address, and what is made for it goes by email.
    """

    def __init__(self, attendee_id: uuid.UUID, name: str, email: str) -> None:
        super().__init__()
        self.attendee_id = attendee_id
        self.name = name
        self.email = email

    async def run(self, conn: Connection) -> tuple[Attendee, bool]:
        while True:
            row = await _insert_attendee(conn, self.attendee_id, self.name, self.email)
            if row is not None:
                return Attendee.from_row(row), False
            row = await conn.fetchrow(
                f"SELECT {Attendee.COLUMNS} FROM attendees WHERE lower(email) = lower($1)",
                self.email,
            )
            if row is not None:  # else deleted in between: make it after all
                return Attendee.from_row(row), True


@dataclasses.dataclass(frozen=True)
class AttendeeDeleted:
    # One entry per event whose registration was cancelled: its counts, the
    # registrations offered or promoted, and its next pending expiry.
    changes: tuple[tuple[EventCounts, tuple[uuid.UUID, ...], datetime | None], ...]


class DeleteAttendee(WriteCommand[AttendeeDeleted]):
    """Remove an attendee; their registrations are cancelled and waitlists promoted."""

    def __init__(self, attendee_id: uuid.UUID) -> None:
        super().__init__()
        self.attendee_id = attendee_id

    async def run(self, conn: Connection) -> AttendeeDeleted:
        rows = await conn.fetch(
            "SELECT existed, promoted, counts, next_expiry FROM eventd_delete_attendee($1)",
            self.attendee_id,
        )
        if rows and not rows[0]["existed"]:
            raise NotFound(f"Attendee {self.attendee_id} does not exist.")
        return AttendeeDeleted(
            tuple(
                (EventCounts.from_row(r["counts"]), tuple(r["promoted"] or ()), r["next_expiry"])
                for r in rows
            )
        )


class SendReminders(WriteCommand[int]):
    """Queue the event's due reminders; returns how many were queued."""

    def __init__(self, event_id: uuid.UUID, before: timedelta) -> None:
        super().__init__()
        self.event_id = event_id
        self.before = before

    async def run(self, conn: Connection) -> int:
        count: int = await conn.fetchval(
            "SELECT eventd_send_reminders($1, $2)", self.event_id, self.before
        )
        return count
