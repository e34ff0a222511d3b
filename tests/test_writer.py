"""The Writer against a real PostgreSQL, in-process: what it promises about COMMIT.

No HTTP here; the database is this test's own.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import trio

from eventd.errors import Unavailable
from eventd.storage import commands
from eventd.storage.database import _translate_errors, open_database
from eventd.storage.migrations import apply_migrations
from eventd.storage.writer import Writer


async def test_a_batch_that_fails_inside_never_reports_a_commit(fresh_database_url: str):
    """A statement timing out aborts the transaction: nobody in it may hear "committed"."""
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=1) as db:
        await apply_migrations(db)
        event_id, attendee_id = uuid.uuid4(), uuid.uuid4()
        starts = datetime.now(UTC) + timedelta(days=3)
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
                " max_attendees) VALUES ($1, 'E', $2, 60, $3, 'Elsewhere', 5)",
                event_id, starts, starts + timedelta(hours=1))
            await conn.execute(
                "INSERT INTO attendees (id, name, email) VALUES ($1, 'A', 'a@x.org')", attendee_id)
        writer = Writer(db)
        register = commands.RegistrationOps(
            event_id, [commands.RegistrationOp("register", uuid.uuid4(), attendee_id)])
        blocked = commands.CreateEvent(uuid.uuid4(), commands.EventFields(
            "Blocked", "", starts, 60, "Hall", 5))
        answers: dict[str, object] = {}
        both_answered = trio.Event()

        async def submit(name: str, command: commands.WriteCommand) -> None:  # type: ignore[type-arg]
            try:
                answers[name] = await writer.submit(command)
            except Unavailable as exc:
                answers[name] = exc
            if len(answers) == 2:
                both_answered.set()

        async with db.connection() as holder:
            # Another daemon holds the location lock: CreateEvent waits, then times out.
            await holder.execute("BEGIN")
            await holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(eventd_location_key('Hall'), 0))")
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(submit, "register", register)
                    nursery.start_soon(submit, "blocked", blocked)
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.start_soon(writer.run)  # both are in its first batch
                    await both_answered.wait()
                    await writer.close()
            await holder.execute("ROLLBACK")
        rows = await db.fetchval("SELECT count(*) FROM registrations WHERE event_id = $1",
                                 event_id)
        confirmed = await db.fetchval("SELECT confirmed_count FROM events WHERE id = $1",
                                      event_id)
    assert isinstance(answers["blocked"], Unavailable)
    said_committed = not isinstance(answers["register"], Unavailable)
    assert said_committed == (rows == 1), (answers, rows)
    assert confirmed == rows


@pytest.mark.parametrize("kind", ["register", "cancel"])
async def test_each_command_of_a_batch_gets_its_own_answer(fresh_database_url: str, kind: str):
    """A missing event is one command's answer, not its neighbours' trouble."""
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=5) as db:
        await apply_migrations(db)
        writer = Writer(db)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            missing = commands.RegistrationOps(
                uuid.uuid4(), [commands.RegistrationOp(kind, uuid.uuid4(), uuid.uuid4())])
            made = commands.CreateAttendee(uuid.uuid4(), "Ann", f"{uuid.uuid4().hex}@x.org")
            results = {}

            async def submit(name: str, command: commands.WriteCommand) -> None:  # type: ignore[type-arg]
                results[name] = await writer.submit(command)

            async with trio.open_nursery() as inner:
                inner.start_soon(submit, "missing", missing)
                inner.start_soon(submit, "made", made)
            await writer.close()
    [op] = results["missing"]
    assert op.outcome == ("event_not_found" if kind == "register" else "not_found")
    assert results["made"].name == "Ann"


async def test_registrations_of_many_events_commit_as_one_statement(fresh_database_url: str):
    """Every actor's ops in a batch: one statement, its own transaction, all committed."""
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=5) as db:
        await apply_migrations(db)
        starts = datetime.now(UTC) + timedelta(days=3)
        events = [uuid.uuid4() for _ in range(3)]
        attendees = [uuid.uuid4() for _ in range(6)]
        async with db.connection() as conn:
            for n, event_id in enumerate(events):
                await conn.execute(
                    "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
                    " max_attendees) VALUES ($1, 'E', $2, 60, $3, $4, 1)",
                    event_id, starts, starts + timedelta(hours=1), f"Room {n}")
            await conn.execute(
                "INSERT INTO attendees (id, name, email)"
                " SELECT id, 'A', id || '@x.org' FROM unnest($1::uuid[]) id", attendees)
        writer = Writer(db)
        batch = [
            commands.RegistrationOps(event_id, [
                commands.RegistrationOp("register", uuid.uuid4(), attendees[2 * n]),
                commands.RegistrationOp("register", uuid.uuid4(), attendees[2 * n + 1], True),
            ])
            for n, event_id in enumerate(events)
        ]
        results = {}

        async def submit(command: commands.RegistrationOps) -> None:
            results[command.event_id] = await writer.submit(command)

        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as submitters:
                for command in batch:
                    submitters.start_soon(submit, command)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(writer.run)  # all three are in its first batch
            await writer.close()
        assert writer.statistics().transactions == 1
        rows = await db.fetch("SELECT xmin::text AS tx, status FROM registrations")
    assert sorted(r["status"] for r in rows) == ["confirmed"] * 3 + ["waitlisted"] * 3
    assert len({r["tx"] for r in rows}) == 1  # one transaction wrote them all
    for event_id in events:
        assert [op.outcome for op in results[event_id]] == ["confirmed", "waitlisted"]


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(),
        asyncpg.InterfaceError("the connection is closed"),
        # Seen after an outage: a pooled connection left mid-operation.
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
)
def test_a_broken_connection_is_unavailable_not_a_crash(error: Exception) -> None:
    with pytest.raises(Unavailable), _translate_errors():
        raise error



async def test_runs_of_registrations_decide_as_one_by_one(fresh_database_url: str):
    """sql/005: a run of one event's registrations in one pass — outcomes, counts, rows, emails.

    Each case runs a random sequence of registrations and cancellations on two
    twin events: on the first in one call (consecutive registrations form a
    run), on the second one op per call (each through eventd_register or
    eventd_cancel). Everything must come out the same.
    """
    rng = random.Random(7)
    runs = 0  # cases with five or more registrations in a row: one pass
    async with (open_database(fresh_database_url, pool_size=2, timeout_seconds=10) as database,
                database.connection() as db):
        await apply_migrations(database)
        people = [uuid.uuid4() for _ in range(6)]
        await db.execute(
            "INSERT INTO attendees (id, name, email)"
            " SELECT id, 'A ' || id, id || '@x.org' FROM unnest($1::uuid[]) id", people)
        for case in range(60):
            capacity = rng.randint(1, 4)
            ghost = uuid.uuid4()  # no such attendee
            ops: list[tuple[str, int, uuid.UUID, bool]] = []  # kind, registration no., attendee
            for _ in range(rng.randint(1, 14)):
                if ops and rng.random() < 0.15:
                    ops.append(("cancel", rng.randrange(len(ops)), ghost, False))
                else:
                    ops.append(("register", len(ops), rng.choice([*people, ghost]),
                                rng.random() < 0.5))
            runs += "rrrrr" in "".join(op[0][0] for op in ops)
            together = await _TwinEvent.make(db, capacity, ops, f"Room {case}.0")
            one_by_one = await _TwinEvent.make(db, capacity, ops, f"Room {case}.1")
            context = f"case {case}: capacity {capacity}, ops {ops}"
            assert (await together.run([list(range(len(ops)))])
                    == await one_by_one.run([[i] for i in range(len(ops))])), context
            assert await together.stored() == await one_by_one.stored(), context
    assert runs >= 20  # and the rest exercise the one-by-one path inside a batch


@dataclasses.dataclass
class _TwinEvent:
    """One event of a twin case, with its own registration ids for the case's ops."""

    db: Any
    event_id: uuid.UUID
    ops: list[tuple[str, int, uuid.UUID, bool]]
    ids: list[uuid.UUID]

    @classmethod
    async def make(cls, db: Any, capacity: int, ops: list[Any], location: str) -> _TwinEvent:
        event_id = uuid.uuid4()
        starts = datetime.now(UTC) + timedelta(days=3)
        await db.execute(
            "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
            " max_attendees) VALUES ($1, 'E', $2, 60, $3, $4, $5)",
            event_id, starts, starts + timedelta(hours=1), location, capacity)
        return cls(db, event_id, ops, [uuid.uuid4() for _ in ops])

    def _number(self, registration_id: Any) -> int:
        return [str(i) for i in self.ids].index(str(registration_id))

    async def run(self, calls: list[list[int]]) -> list[tuple[Any, ...]]:
        """The ops, split into these calls of eventd_registration_ops; what each op returned."""
        seen = []
        for part in calls:
            rows = await self.db.fetch(
                "SELECT idx, outcome, created_at IS NULL AS no_time, promoted, counts"
                " FROM eventd_registration_ops($1, $2, $3, $4, $5) ORDER BY idx",
                [self.ops[i][0] for i in part], [self.ids[self.ops[i][1]] for i in part],
                [self.event_id] * len(part), [self.ops[i][2] for i in part],
                [self.ops[i][3] for i in part])
            seen += [(r["outcome"], r["no_time"], [self._number(p) for p in r["promoted"]],
                      r["counts"] and (r["counts"]["confirmed_count"],
                                       r["counts"]["waitlist_count"], r["counts"]["version"]))
                     for r in rows]
        return seen

    async def stored(self) -> tuple[Any, ...]:
        """The event's counts, registrations and queued emails, ids as op numbers."""
        registrations = await self.db.fetch(
            "SELECT id, attendee_id, status, seq, confirmed_at IS NULL AS waiting"
            " FROM registrations WHERE event_id = $1 ORDER BY seq", self.event_id)
        emails = await self.db.fetch(
            "SELECT kind, recipient, payload->'attendee' AS attendee,"
            " payload->'registration'->>'id' AS registration,"
            " payload->'registration'->>'status' AS status"
            " FROM email_outbox WHERE payload->'event'->>'id' = $1 ORDER BY created_at",
            str(self.event_id))
        event = await self.db.fetchrow(
            "SELECT confirmed_count, waitlist_count, registration_seq, version"
            " FROM events WHERE id = $1", self.event_id)
        return (
            [(self._number(r["id"]), r["attendee_id"], r["status"], r["seq"], r["waiting"])
             for r in registrations],
            [(e["kind"], e["recipient"], e["attendee"], self._number(e["registration"]),
              e["status"]) for e in emails],
            tuple(event),
        )
