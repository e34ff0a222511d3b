"""Tickets and check-in in the database: whom a ticket is for, and letting them in once.

:func:`ticket_holder` reads what a ticket says (``GET
/registrations/{id}/ticket``). :class:`CheckIns` is the writer's command for
one event actor's check-ins: ``eventd_check_in``
(``sql/functions/eventd_check_in.sql``, called for a whole writer batch by
``eventd_check_in_json``), whose guarded UPDATE is the proof
that each ticket is let in once across every door and daemon.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal, NamedTuple

import orjson
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
    """Check in registrations of one event; ids may repeat (the later ones were late).

    A writer batch of these, from any number of event actors, is one call of
    ``eventd_check_in_json``: one statement, its own transaction.
    """

    single_statement: ClassVar[bool] = True

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
        ordered = sorted((c for c in commands if isinstance(c, CheckIns)),
                         key=lambda c: c.event_id.int)
        parts = [[str(c.event_id), [str(r) for r in dict.fromkeys(c.registration_ids)]]
                 for c in ordered]
        rows = await conn.fetch(
            "SELECT idx, registration_id, outcome, attendee_id, created_at, checked_in_at,"
            " event_id, max_attendees, confirmed_count, waitlist_count, version, updated_at,"
            " edited_version, checked_in_count, held_count FROM eventd_check_in_json($1)",
            orjson.dumps(parts).decode(),
        )
        by_part: dict[int, list[Any]] = {}
        for row in rows:
            by_part.setdefault(row["idx"], []).append(row)
        answers = {id(c): c.answer(by_part.get(n, [])) for n, c in enumerate(ordered, 1)}
        return [outcome.Value(answers[id(c)]) for c in commands]

    def answer(self, rows: list[Any]) -> CheckedIn:
        """This command's answer from its rows of eventd_check_in."""
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
