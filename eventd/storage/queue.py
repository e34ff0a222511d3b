"""The admission queue's writes and reads (``sql/013_admission_queue.sql``).

Joins are write commands: every join the writer holds goes to PostgreSQL in
one call of ``eventd_queue_join``, which takes each event's turn under its
queue row's lock, so arrival order is the database's. The queue ticker's
second (:class:`QueueTick`) opens the queues that are due and reads the
states of the events its daemon's clients follow. Admission itself is never
written: the SQL functions compute it from the ranks, the rate rows and the
database's clock, so every daemon agrees.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

import outcome

from eventd.errors import NotFound
from eventd.storage.database import Connection, Database, Row
from eventd.storage.writer import WriteCommand

TicketStatus = Literal["waiting", "admitted", "used", "expired"]


async def configure_queue(conn: Connection, event_id: uuid.UUID) -> None:
    """Bring the event's queue in line with its settings, just written in this transaction."""
    await conn.execute("SELECT eventd_queue_configure($1)", event_id)


@dataclasses.dataclass(frozen=True)
class QueueTicket:
    """A ticket as the database saw it at ``at``."""

    ticket_id: uuid.UUID
    event_id: uuid.UUID
    rank: int | None
    status: TicketStatus
    admitted_through: int
    opens_at: datetime | None
    admitted_at: datetime | None
    expires_at: datetime | None
    at: datetime


@dataclasses.dataclass(frozen=True)
class QueueState:
    """One event's queue at ``at`` (the database's clock): what a queueUpdate carries."""

    event_id: uuid.UUID
    at: datetime
    opens_at: datetime
    opened: bool
    admitted_through: int
    ranked: int
    joined: int
    waiting: int

    @classmethod
    def from_row(cls, row: Row) -> QueueState:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


class JoinQueue(WriteCommand[QueueTicket]):
    """Join an event's queue with a token's SHA-256; answered with the new ticket."""

    batch_order: ClassVar[int] = 20
    queues_messages: ClassVar[bool] = False
    single_statement: ClassVar[bool] = True  # every join of a batch in one call

    def __init__(self, event_id: uuid.UUID, token_hash: bytes) -> None:
        super().__init__()
        self.event_id = event_id
        self.token_hash = token_hash

    @classmethod
    async def run_batch(
        cls, conn: Connection, commands: Sequence[WriteCommand[Any]]
    ) -> list[outcome.Outcome[Any]]:
        joins = [c for c in commands if isinstance(c, JoinQueue)]
        rows = await conn.fetch(
            "SELECT * FROM eventd_queue_join($1::uuid[], $2::bytea[]) ORDER BY idx",
            [c.event_id for c in joins],
            [c.token_hash for c in joins],
        )
        return [_joined(c, row) for c, row in zip(joins, rows, strict=True)]


def _joined(command: JoinQueue, row: Row) -> outcome.Outcome[QueueTicket]:
    if row["outcome"] == "event_not_found":
        return outcome.Error(NotFound(f"Event {command.event_id} does not exist."))
    if row["outcome"] == "no_queue":
        return outcome.Error(NotFound(f"Event {command.event_id} has no admission queue."))
    return outcome.Value(QueueTicket(
        ticket_id=row["ticket_id"],
        event_id=command.event_id,
        rank=row["rank"],
        status="admitted" if row["admitted_at"] is not None else "waiting",
        admitted_through=row["admitted_through"],
        opens_at=row["opens_at"],
        admitted_at=row["admitted_at"],
        expires_at=row["expires_at"],
        at=row["at"],
    ))


class QueueTick(WriteCommand[list[QueueState]]):
    """Open every queue that is due; the states of ``event_ids``' queues.

    ``at`` None: as of the database's clock (tests pass a moment of their own).
    """

    batch_order: ClassVar[int] = 30
    queues_messages: ClassVar[bool] = False

    def __init__(self, event_ids: Sequence[uuid.UUID], at: datetime | None = None) -> None:
        super().__init__()
        self.event_ids = list(event_ids)
        self.at = at

    async def run(self, conn: Connection) -> list[QueueState]:
        rows = await conn.fetch(
            "SELECT * FROM eventd_queue_states($1::uuid[], $2)", self.event_ids, self.at
        )
        return [QueueState.from_row(row) for row in rows]


@dataclasses.dataclass(frozen=True)
class TicketLookup:
    ticket: QueueTicket
    token_hash: bytes  # compared by the caller, in constant time


async def find_ticket(
    db: Database, ticket_id: uuid.UUID, at: datetime | None = None
) -> TicketLookup | None:
    """The ticket now (or at ``at``), with its token's hash; None if there is none."""
    row = await db.fetchrow(
        "SELECT * FROM eventd_queue_ticket($1, coalesce($2, clock_timestamp()))", ticket_id, at
    )
    if row is None:
        return None
    return TicketLookup(
        QueueTicket(
            ticket_id=ticket_id,
            event_id=row["event_id"],
            rank=row["rank"],
            status=row["status"],
            admitted_through=row["admitted_through"],
            opens_at=row["opens_at"],
            admitted_at=row["admitted_at"],
            expires_at=row["expires_at"],
            at=row["at"],
        ),
        bytes(row["token_hash"]),
    )


@dataclasses.dataclass(frozen=True)
class QueueCounts:
    """One queued event's totals, for the metrics."""

    event_id: uuid.UUID
    joined: int
    ranked: int
    admitted: int
    used: int
    expired: int


async def queue_counts(db: Database) -> list[QueueCounts]:
    """Every queued event's totals that has not ended."""
    rows = await db.fetch("SELECT * FROM eventd_queue_metrics()")
    return [QueueCounts(**{f.name: row[f.name] for f in dataclasses.fields(QueueCounts)})
            for row in rows]


async def gate_answer(db: Database, event_id: uuid.UUID, admission: bytes | None) -> str:
    """What a registration's gates would answer now, as ``eventd_register_run`` words them.

    A read: nothing is used. The registration itself decides again, under the
    event's row lock, in the statement that makes it (``eventd_register_run``);
    this lets a request that would be refused stop before it writes anything
    else (an attendee found or made by email). ``"ok"`` for an unknown event.
    """
    answer: str | None = await db.fetchval(
        "SELECT CASE"
        " WHEN e.sales_start_at > now() THEN 'sales_not_open'"
        " WHEN e.admission_rate_per_minute IS NULL THEN 'ok'"
        " ELSE coalesce((SELECT CASE s.status WHEN 'admitted' THEN 'ok'"
        "   WHEN 'used' THEN 'admission_used' WHEN 'expired' THEN 'admission_expired'"
        "   ELSE 'admission_required' END"
        "  FROM queue_tickets t, eventd_queue_ticket(t.id, now()) AS s"
        "  WHERE t.token_hash = $2 AND t.event_id = e.id), 'admission_required') END"
        " FROM events e WHERE e.id = $1",
        event_id,
        admission,
    )
    return answer or "ok"
