"""The reads eventd makes: lookups and the pages of the list endpoints.

A live event is read from its actor, not from here; these serve hydration,
lists, searches and the records actors do not own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Generic, TypeVar

from eventd.model import Attendee, Event, Registration
from eventd.storage.database import Cursor, Database, Row

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    limit: int


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- events ------------------------------------------------------------------


async def load_event(db: Database, event_id: uuid.UUID) -> Event | None:
    """The event, with when its next hold or offer expires (for its actor's timer)."""
    row = await db.fetchrow(
        f"SELECT {Event.COLUMNS}, eventd_next_expiry(id) AS next_expiry FROM events"
        " WHERE id = $1",
        event_id,
    )
    return Event.from_row(row) if row else None


async def pending_expiries(db: Database) -> list[tuple[uuid.UUID, datetime]]:
    """Every event with a hold or offer pending, and when its first one expires.

    Read at start (holds overdue while no daemon ran are expired at once)
    and now and then after, for holds made through another daemon.
    """
    rows = await db.fetch(
        "SELECT event_id, min(expires_at) AS next_expiry FROM registrations"
        " WHERE status IN ('held', 'offered') GROUP BY event_id"
    )
    return [(r["event_id"], r["next_expiry"]) for r in rows]


@dataclasses.dataclass(frozen=True)
class EventFilter:
    start_date: datetime | None = None
    end_date: datetime | None = None
    location: str | None = None
    search: str | None = None


async def list_events(db: Database, where: EventFilter, page: int, limit: int) -> Page[Event]:
    clauses, args = [], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if where.start_date is not None:
        clauses.append(f"starts_at >= {arg(where.start_date)}")
    if where.end_date is not None:
        clauses.append(f"starts_at <= {arg(where.end_date)}")
    if where.location is not None:
        clauses.append(f"location_key = eventd_location_key({arg(where.location)})")
    if where.search:
        pattern = arg(_like_pattern(where.search))
        clauses.append(f"(name ILIKE {pattern} OR description ILIKE {pattern})")
    condition = " AND ".join(clauses) or "TRUE"
    async with db.connection() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM events WHERE {condition}", *args)
        rows = await conn.fetch(
            f"SELECT {Event.COLUMNS} FROM events WHERE {condition}"
            f" ORDER BY starts_at, id LIMIT {arg(limit)} OFFSET {arg((page - 1) * limit)}",
            *args,
        )
    return Page([Event.from_row(r) for r in rows], total, page, limit)


async def events_owing_reminders(db: Database) -> list[tuple[uuid.UUID, datetime]]:
    """Events not begun with a confirmed registration not yet reminded: (id, start)."""
    rows = await db.fetch(
        "SELECT e.id, e.starts_at FROM events e WHERE e.starts_at > now() AND EXISTS ("
        " SELECT 1 FROM registrations r WHERE r.event_id = e.id"
        " AND r.status = 'confirmed' AND r.reminded_at IS NULL)"
    )
    return [(r["id"], r["starts_at"]) for r in rows]


async def most_registered_event_id(db: Database) -> uuid.UUID | None:
    event_id: uuid.UUID | None = await db.fetchval(
        "SELECT id FROM events ORDER BY confirmed_count DESC, created_at, id LIMIT 1"
    )
    return event_id


# --- attendees ---------------------------------------------------------------


async def get_attendee(db: Database, attendee_id: uuid.UUID) -> Attendee | None:
    row = await db.fetchrow(
        f"SELECT {Attendee.COLUMNS} FROM attendees WHERE id = $1", attendee_id
    )
    return Attendee.from_row(row) if row else None


async def list_attendees(
    db: Database, search: str | None, page: int, limit: int
) -> Page[Attendee]:
    condition, args = "TRUE", []
    if search:
        condition, args = "(name ILIKE $1 OR email ILIKE $1)", [_like_pattern(search)]
    n = len(args)
    async with db.connection() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM attendees WHERE {condition}", *args)
        rows = await conn.fetch(
            f"SELECT {Attendee.COLUMNS} FROM attendees WHERE {condition}"
            f" ORDER BY created_at, id LIMIT ${n + 1} OFFSET ${n + 2}",
            *args,
            limit,
            (page - 1) * limit,
        )
    return Page([Attendee.from_row(r) for r in rows], total, page, limit)


# --- registrations -----------------------------------------------------------

# A waitlisted registration's position: how many of its event's waitlist are
# queued at or before it.
_POSITION = (
    "CASE WHEN r.status = 'waitlisted' THEN (SELECT count(*) FROM registrations w"
    " WHERE w.event_id = r.event_id AND w.status = 'waitlisted' AND w.seq <= r.seq) END"
)


# Which statuses a list shows when none is asked for.
_ACTIVE = "('held', 'offered', 'confirmed', 'waitlisted')"
_REGISTRATION_COLUMNS = (
    "r.id, r.event_id, r.attendee_id, r.status, r.created_at, r.expires_at, r.updated_at,"
    " r.checked_in_at"
)


def _registration(row: Row) -> Registration:
    return Registration(
        id=row["id"],
        event_id=row["event_id"],
        attendee_id=row["attendee_id"],
        status=row["status"],
        waitlist_position=row["position"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
        checked_in_at=row["checked_in_at"],
    )


async def get_registration(db: Database, registration_id: uuid.UUID) -> Registration | None:
    row = await db.fetchrow(
        f"SELECT {_REGISTRATION_COLUMNS}, {_POSITION} AS position"
        " FROM registrations r WHERE r.id = $1",
        registration_id,
    )
    return _registration(row) if row else None


@dataclasses.dataclass(frozen=True)
class RegistrationKeys:
    """What deciding who may act on a registration needs: its event and token hashes."""

    event_id: uuid.UUID
    status: str
    token_hashes: list[bytes]


async def registration_keys(db: Database, registration_id: uuid.UUID) -> RegistrationKeys | None:
    row = await db.fetchrow(
        "SELECT event_id, status, token_hashes FROM registrations WHERE id = $1",
        registration_id,
    )
    if row is None:
        return None
    return RegistrationKeys(row["event_id"], row["status"], list(row["token_hashes"]))


async def registration_event_id(db: Database, registration_id: uuid.UUID) -> uuid.UUID | None:
    event_id: uuid.UUID | None = await db.fetchval(
        "SELECT event_id FROM registrations WHERE id = $1", registration_id
    )
    return event_id


@dataclasses.dataclass(frozen=True)
class EventRegistration:
    registration: Registration
    attendee: Attendee


async def list_event_registrations(
    db: Database, event_id: uuid.UUID, status: str | None, page: int, limit: int
) -> Page[EventRegistration]:
    condition = "event_id = $1" + (" AND status = $2" if status else f" AND status IN {_ACTIVE}")
    args: list[Any] = [event_id] + ([status] if status else [])
    n = len(args)
    async with db.connection() as conn:
        total = await conn.fetchval(
            f"SELECT count(*) FROM registrations WHERE {condition}", *args
        )
        # Confirmed first in registration order, then the waitlist in queue order;
        # positions are counted over the whole waitlist, before paging.
        rows = await conn.fetch(
            "SELECT r.*, a.name AS attendee_name, a.email AS attendee_email,"
            " a.created_at AS attendee_created_at FROM ("
            "  SELECT id, event_id, attendee_id, status, created_at, seq, expires_at,"
            "   updated_at, checked_in_at,"
            "   CASE WHEN status = 'waitlisted' THEN row_number() OVER ("
            "    PARTITION BY status ORDER BY seq) END AS position"
            f"  FROM registrations WHERE {condition}"
            " ) r JOIN attendees a ON a.id = r.attendee_id"
            # Seats first (confirmed, held, offered) in registration order, then the
            # waitlist in queue order, then the history.
            " ORDER BY CASE r.status WHEN 'waitlisted' THEN 1 WHEN 'cancelled' THEN 2"
            " WHEN 'expired' THEN 2 ELSE 0 END, r.seq"
            f" LIMIT ${n + 1} OFFSET ${n + 2}",
            *args,
            limit,
            (page - 1) * limit,
        )
    items = [
        EventRegistration(
            _registration(r),
            Attendee(r["attendee_id"], r["attendee_name"], r["attendee_email"],
                     r["attendee_created_at"]),
        )
        for r in rows
    ]
    return Page(items, total, page, limit)


@dataclasses.dataclass(frozen=True)
class AttendeeRegistration:
    registration: Registration
    event: Event


async def list_attendee_registrations(
    db: Database, attendee_id: uuid.UUID, page: int, limit: int
) -> Page[AttendeeRegistration]:
    event_columns = ", ".join(f"e.{c.strip()} AS e_{c.strip()}" for c in Event.COLUMNS.split(","))
    async with db.connection() as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM registrations WHERE attendee_id = $1"
            f" AND status IN {_ACTIVE}",
            attendee_id,
        )
        rows = await conn.fetch(
            f"SELECT {_REGISTRATION_COLUMNS},"
            f" {_POSITION} AS position, {event_columns}"
            " FROM registrations r JOIN events e ON e.id = r.event_id"
            f" WHERE r.attendee_id = $1 AND r.status IN {_ACTIVE}"
            " ORDER BY r.created_at, r.id LIMIT $2 OFFSET $3",
            attendee_id,
            limit,
            (page - 1) * limit,
        )
    items = [
        AttendeeRegistration(
            _registration(r),
            Event.from_row({k[2:]: v for k, v in r.items() if k.startswith("e_")}),
        )
        for r in rows
    ]
    return Page(items, total, page, limit)


# --- exports -----------------------------------------------------------------
#
# Each export is a list of columns — (the name in the file, its SQL) — read
# through a server-side cursor, so the rows never sit in memory together.

REGISTRATION_EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "r.id"),
    ("status", "r.status"),
    ("attendeeName", "a.name"),
    ("attendeeEmail", "a.email"),
    ("createdAt", "r.created_at"),
    ("updatedAt", "r.updated_at"),
    ("expiresAt", "CASE WHEN r.status IN ('held', 'offered') THEN r.expires_at END"),
    ("checkedInAt", "r.checked_in_at"),
)
ATTENDEE_EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("name", "name"),
    ("email", "email"),
    ("createdAt", "created_at"),
)


def _select(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(sql for _name, sql in columns)


@contextlib.asynccontextmanager
async def export_registrations(
    db: Database, event_id: uuid.UUID, status: str | None
) -> AsyncIterator[Cursor]:
    """The event's registrations with their attendees, as :data:`REGISTRATION_EXPORT_COLUMNS`.

    By status, each status in arrival order: the order of the event's index,
    so the first page comes at once however many rows follow.
    """
    condition = "r.event_id = $1" + (" AND r.status = $2" if status else "")
    args: list[Any] = [event_id] + ([status] if status else [])
    async with db.cursor(
        f"SELECT {_select(REGISTRATION_EXPORT_COLUMNS)}"
        " FROM registrations r JOIN attendees a ON a.id = r.attendee_id"
        f" WHERE {condition} ORDER BY r.status, r.seq",
        *args,
    ) as cursor:
        yield cursor


@contextlib.asynccontextmanager
async def export_attendees(db: Database) -> AsyncIterator[Cursor]:
    """Every attendee, as :data:`ATTENDEE_EXPORT_COLUMNS`, by ``createdAt`` then ``id``."""
    async with db.cursor(
        f"SELECT {_select(ATTENDEE_EXPORT_COLUMNS)} FROM attendees ORDER BY created_at, id"
    ) as cursor:
        yield cursor
