"""Tickets and check-in in the database: whom a ticket is for, and letting them in once.

:func:`ticket_holder` reads what a ticket says (``GET
/registrations/{id}/ticket``). :class:`CheckIns` is the writer's command for
one event actor's check-ins: one call of ``eventd_check_in``
(``sql/functions/eventd_check_in.sql``), whose guarded UPDATE is the proof
that each ticket is let in once across every door and daemon.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

import outcome

from eventd.model import EventCounts, Registration
from eventd.storage.database import Connection, Database
from eventd.storage.writer import WriteCommand


class TicketHolder(NamedTuple):
    registration: Registration
    attendee_name: str
    confirmed_at: datetime  # the ticket's iat


async def ticket_holder(db: Database, registration_id: uuid.UUID) -> TicketHolder | None:
    """The registration and its attendee's name; None when there is no such registration."""
    row = await db.fetchrow(
        "SELECT r.id, r.event_id, r.attendee_id, r.status, r.created_at,"
        " coalesce(r.confirmed_at, r.created_at) AS confirmed_at, a.name"
        " FROM registrations r JOIN attendees a ON a.id = r.attendee_id WHERE r.id = $1",
        registration_id,
    )
    if row is None:
        return None
    registration = Registration(
        row["id"], row["event_id"], row["attendee_id"], row["status"], None, row["created_at"]
    )
    return TicketHolder(registration, row["name"], row["confirmed_at"])


CheckInOutcome = Literal["checked_in", "already_checked_in", "not_valid"]


class CheckInResult(NamedTuple):
    registration_id: uuid.UUID
    outcome: CheckInOutcome
    registration: Registration | None  # None for not_valid
    checked_in_at: datetime | None  # when it was (first) checked in


class CheckedIn(NamedTuple):
    """The answers to a :class:`CheckIns`, in its order, and the event after them."""

    results: list[CheckInResult]
    counts: EventCounts | None  # None when the event is gone
    checked_in_count: int


class CheckIns(WriteCommand[CheckedIn]):
    """Check in registrations of one event; ids may repeat (the later ones were late)."""

    def __init__(self, event_id: uuid.UUID, registration_ids: Sequence[uuid.UUID]) -> None:
        super().__init__()
        if not registration_ids:
            raise ValueError("CheckIns needs at least one registration")
        self.event_id = event_id
        self.registration_ids = list(registration_ids)

    @classmethod
    async def run_batch(
        cls, conn: Connection, commands: Sequence[WriteCommand[Any]]
    ) -> list[outcome.Outcome[Any]]:
        # Event rows are locked in id order, as registrations lock them.
        order = sorted(range(len(commands)), key=lambda i: _event_of(commands[i]).int)
        results: list[outcome.Outcome[Any] | None] = [None] * len(commands)
        for i in order:
            [results[i]] = await super().run_batch(conn, [commands[i]])
        return [r for r in results if r is not None]

    async def run(self, conn: Connection) -> CheckedIn:
        distinct = list(dict.fromkeys(self.registration_ids))
        rows = await conn.fetch(
            "SELECT registration_id, outcome, attendee_id, created_at, checked_in_at,"
            " event_id, max_attendees, confirmed_count, waitlist_count, version, updated_at,"
            " edited_version, checked_in_count FROM eventd_check_in($1, $2)",
            self.event_id,
            distinct,
        )
        by_id = {row["registration_id"]: row for row in rows}
        first = rows[0] if rows else None
        counts = (
            EventCounts.from_row(first)
            if first is not None and first["event_id"] is not None else None
        )
        answered: set[uuid.UUID] = set()
        results = []
        for registration_id in self.registration_ids:
            row = by_id[registration_id]
            verdict: CheckInOutcome = row["outcome"]
            if verdict == "checked_in" and registration_id in answered:
                verdict = "already_checked_in"  # the same ticket twice in one batch
            answered.add(registration_id)
            registration = None
            if verdict != "not_valid":
                registration = Registration(registration_id, self.event_id, row["attendee_id"],
                                            "confirmed", None, row["created_at"])
            results.append(
                CheckInResult(registration_id, verdict, registration, row["checked_in_at"])
            )
        return CheckedIn(results, counts, first["checked_in_count"] or 0 if first else 0)


def _event_of(command: WriteCommand[Any]) -> uuid.UUID:
    assert isinstance(command, CheckIns)
    return command.event_id
