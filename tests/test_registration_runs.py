"""A batch registers its runs set-wise, and answers exactly as one registration at a time would.

``eventd_registration_batch`` (``sql/008_registration_runs.sql``) hands each
run of registrations to ``eventd_register_run``, which decides a whole run in
one statement. ``eventd_register``, ``eventd_cancel``, ``eventd_confirm`` and
``eventd_expire_due`` are the rules one operation at a time. hypothesis makes
batches of registrations (plain, holds, by email), cancellations,
confirmations and expiries over events that fill up (one of them offers freed
seats, one confirms by email, one admits through a queue, one whose sales
have not opened), one that has started and one that does not exist, with
attendees who register twice and one who does not exist, sending admission
tokens (admitted, used, expired, waiting, unknown, none) to any of them; each
case runs once through the batch and once operation by operation, each in a
transaction rolled back afterwards, and every answer, every count and every
row written — registrations, queued emails, admissions used — must be the same. Manage
tokens are random: only whether one was answered is compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from eventd.storage.database import Connection, open_database
from eventd.storage.migrations import apply_migrations

# The open events' capacities; then the started one, then a missing one.
CAPACITIES = (1, 2, 3, 2, 2)
OFFERING = 1  # the open event whose freed seats are offered (offerMinutes > 0)
BY_EMAIL = 2  # the open event that confirms by email
QUEUED = 3  # the open event with an admission queue
PRESALE = 4  # the event whose sales open tomorrow
# The queue's tickets' tokens' hashes: two admitted, one admitted and used, one whose
# admission expired, one not ranked yet; then one that is no ticket's.
TICKETS = ("admitted", "admitted", "used", "expired", "waiting")
HASHES = [hashlib.sha256(f"token {n}".encode()).digest() for n in range(len(TICKETS) + 1)]
PEOPLE = 5  # attendees; index PEOPLE is one who does not exist

EVENTS = [uuid.UUID(int=0xE0 + n) for n in range(len(CAPACITIES) + 2)]
STARTED = EVENTS[-2]  # and EVENTS[-1] is never made
ATTENDEES = [uuid.UUID(int=0xA0 + n) for n in range(PEOPLE + 1)]


@dataclasses.dataclass(frozen=True)
class Register:
    event: int
    person: int
    waitlist: bool
    hold: bool = False
    by_email: bool = False
    admission: int | None = None  # an index of HASHES: the Admission-Token sent


@dataclasses.dataclass(frozen=True)
class Cancel:
    nth: int  # the nth registration asked for so far, modulo their count


@dataclasses.dataclass(frozen=True)
class Confirm:
    nth: int


@dataclasses.dataclass(frozen=True)
class Expire:
    event: int


Op = Register | Cancel | Confirm | Expire

OPERATIONS = st.lists(
    st.lists(
        st.one_of(
            st.builds(Register, st.integers(0, len(EVENTS) - 1), st.integers(0, PEOPLE),
                      st.booleans()),
            st.builds(Register, st.integers(0, len(CAPACITIES) - 1), st.integers(0, PEOPLE - 1),
                      st.booleans(), st.booleans(), st.booleans(),  # more of the ones that count
                      st.none() | st.integers(0, len(HASHES) - 1)),
            st.builds(Register, st.just(QUEUED), st.integers(0, PEOPLE - 1),  # and the gates
                      st.booleans(), st.booleans(), st.booleans(),
                      st.integers(0, len(HASHES) - 1)),
            st.builds(Cancel, st.integers(0, 50)),
            st.builds(Confirm, st.integers(0, 50)),
            st.builds(Expire, st.integers(0, len(EVENTS) - 1)),
        ),
        min_size=1, max_size=14,
    ),
    min_size=1, max_size=4,
)


def _batches(cases: list[list[Op]]) -> list[list[list[Any]]]:
    """The operations as eventd_registration_json takes them, ids made up front."""
    registered: list[tuple[uuid.UUID, uuid.UUID]] = []  # (registration, event) asked for
    batches = []
    for batch in cases:
        ops: list[list[Any]] = []
        for op in batch:
            if isinstance(op, Register):
                rid = uuid.UUID(int=len(registered) + 1)
                registered.append((rid, EVENTS[op.event]))
                ops.append(["register", rid, EVENTS[op.event], ATTENDEES[op.person], op.waitlist,
                            op.hold, op.by_email,
                            None if op.admission is None else HASHES[op.admission].hex()])
            elif isinstance(op, Expire):
                ops.append(["expire", None, EVENTS[op.event], None, False])
            elif registered:
                rid, event = registered[op.nth % len(registered)]
                kind = "cancel" if isinstance(op, Cancel) else "confirm"
                ops.append([kind, rid, event, None, False])
        if ops:
            batches.append(ops)
    return batches


ANSWER = ("outcome, registration_id, created_at, promoted, token IS NOT NULL, expires_at,"
          " next_expiry, event_id, max_attendees, confirmed_count, waitlist_count, version,"
          " updated_at, edited_version, held_count")


async def _in_batches(conn: Connection, batches: list[list[list[Any]]]) -> list[tuple[Any, ...]]:
    answers = []
    for ops in batches:
        rows = await conn.fetch(
            f"SELECT {ANSWER} FROM eventd_registration_json($1) ORDER BY idx",
            orjson.dumps(ops, default=str).decode())
        answers += [tuple(row) for row in rows]
    return answers


async def _one_by_one(conn: Connection, batches: list[list[list[Any]]]) -> list[tuple[Any, ...]]:
    answers = []
    for kind, rid, event, attendee, waitlist, *flags in (op for ops in batches for op in ops):
        if kind == "register":
            hold, by_email, admission = flags
            row = await conn.fetchrow(
                "SELECT outcome, created_at, NULL::uuid[] AS promoted, token IS NOT NULL,"
                " expires_at, NULL::timestamptz, (counts).*"
                " FROM eventd_register($1, $2, $3, $4, $5, $6, $7)",
                rid, event, attendee, waitlist, hold, by_email,
                None if admission is None else bytes.fromhex(admission))
        else:
            function, args = {
                "cancel": ("eventd_cancel($1, $2)", (rid, event)),
                "confirm": ("eventd_confirm($1, $2)", (rid, event)),
                "expire": ("eventd_expire_due($1)", (event,)),
            }[kind]
            row = await conn.fetchrow(
                "SELECT outcome, NULL::timestamptz AS created_at,"
                " nullif(promoted, '{}') AS promoted, false, NULL::timestamptz, next_expiry,"
                f" (counts).* FROM {function}", *args)
        assert row is not None
        answers.append((row[0], rid, *row[1:]))
    return answers


def _plain(row: Any, now: datetime) -> tuple[Any, ...]:
    """The row with its transaction's timestamps shown relative to "now": each run has its
    own (a hold's deadline is now + its minutes)."""
    return tuple(
        f"now+{value - now}" if isinstance(value, datetime) and now <= value < now + DAY
        else value
        for value in row
    )


DAY = timedelta(days=1)


async def _state(conn: Connection, now: datetime) -> dict[str, Any]:
    """Everything the operations wrote."""

    def plain(row: Any) -> tuple[Any, ...]:
        return _plain(row, now)

    return {
        "events": [plain(r) for r in await conn.fetch(
            "SELECT id, confirmed_count, held_count, waitlist_count, registration_seq, version,"
            " updated_at FROM events ORDER BY id")],
        "registrations": [plain(r) for r in await conn.fetch(
            "SELECT id, event_id, attendee_id, status, seq, created_at, confirmed_at,"
            " expires_at, updated_at, cardinality(token_hashes)"
            " FROM registrations ORDER BY id")],
        # Without the tokens (random) and deadlines (each run has its own now).
        "emails": sorted(plain(r) for r in await conn.fetch(
            "SELECT kind, recipient, (payload #- '{registration,token}'"
            " #- '{registration,expiresAt}')::text,"
            " payload #> '{registration,token}' IS NOT NULL FROM email_outbox")),
        "admissions": [plain(r) for r in await conn.fetch(
            "SELECT id, used_at, used_by FROM queue_tickets ORDER BY id")],
    }


async def _both_ways(url: str, batches: list[list[list[Any]]]) -> None:
    async with open_database(url, pool_size=1, timeout_seconds=30) as db:
        async with db.connection() as conn:
            seen = []
            for run in (_in_batches, _one_by_one):
                await conn.execute("BEGIN")
                try:
                    answers = await run(conn, batches)
                    now = await conn.fetchval("SELECT now()")
                    seen.append(([_plain(answer, now) for answer in answers],
                                 await _state(conn, now)))
                finally:
                    await conn.execute("ROLLBACK")
    (batch_answers, batch_state), (single_answers, single_state) = seen
    assert batch_answers == single_answers
    assert batch_state == single_state


async def _set_up(url: str) -> None:
    async with open_database(url, pool_size=1, timeout_seconds=30) as db:
        await apply_migrations(db)
        soon = datetime.now(UTC) + timedelta(days=2)
        past = datetime.now(UTC) - timedelta(hours=1)
        async with db.transaction() as conn:
            for n, (event, capacity) in enumerate(zip(EVENTS[:-1], (*CAPACITIES, 5),
                                                      strict=True)):
                starts = past if event == STARTED else soon
                await conn.execute(
                    "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at,"
                    " location, max_attendees, offer_minutes, confirmation)"
                    " VALUES ($1, $2, $3, 60, $4, $5, $6, $7, $8)",
                    event, f"Event {n}", starts, starts + timedelta(hours=1), f"Room {n}",
                    capacity, 30.0 if n == OFFERING else 0.0,
                    "email" if n == BY_EMAIL else "instant")
            await _queue(conn, EVENTS[QUEUED])
            await conn.execute("UPDATE events SET sales_start_at = now() + interval '1 day'"
                               " WHERE id = $1", EVENTS[PRESALE])
            await conn.execute(
                "INSERT INTO attendees (id, name, email)"
                " SELECT id, 'Person ' || n, 'person' || n || '@example.org'"
                " FROM unnest($1::uuid[]) WITH ORDINALITY AS a(id, n)", ATTENDEES[:-1])


async def _queue(conn: Connection, event: uuid.UUID) -> None:
    """The event's queue, opened an hour ago, with a ticket of each kind in TICKETS."""
    await conn.execute(
        "UPDATE events SET admission_rate_per_minute = 100000, admission_token_minutes = 30"
        " WHERE id = $1", event)
    await conn.execute(
        "INSERT INTO admission_queues (event_id, opens_at, opened_at, joined, ranked)"
        " VALUES ($1, now() - interval '1 hour', now() - interval '1 hour', $2, $3)",
        event, len(TICKETS), len(TICKETS) - 1)
    await conn.execute(
        "INSERT INTO admission_rates (event_id, since, base, rate_per_minute)"
        " VALUES ($1, now() - interval '1 hour', 0, 100000)", event)
    for n, kind in enumerate(TICKETS):
        # Admitted when ranked (the rate is far ahead): a minute ago, or 50 (expired).
        ranked_at = {"waiting": None, "expired": timedelta(minutes=50)}.get(
            kind, timedelta(minutes=1))
        await conn.execute(
            "INSERT INTO queue_tickets (id, event_id, token_hash, seq, rank, joined_at,"
            " ranked_at, used_at, used_by)"
            " VALUES ($1, $2, $3, $4::bigint,"
            " CASE WHEN $5::interval IS NOT NULL THEN $4::bigint END,"
            " now() - interval '1 hour', now() - $5::interval,"
            " CASE WHEN $6 THEN now() - interval '30 seconds' END,"
            " CASE WHEN $6 THEN gen_random_uuid() END)",
            uuid.UUID(int=0xC0 + n), event, HASHES[n], n + 1, ranked_at, kind == "used")


def test_a_batch_answers_as_registering_one_at_a_time(fresh_database_url: str) -> None:
    trio.run(_set_up, fresh_database_url)

    @settings(max_examples=80, deadline=None, derandomize=bool(os.environ.get("CI")))
    @given(cases=OPERATIONS)
    def answers_the_same(cases: list[list[Op]]) -> None:
        batches = _batches(cases)
        if batches:
            trio.run(_both_ways, fresh_database_url, batches)

    answers_the_same()
