"""The Writer against a real PostgreSQL, in-process: what it promises about COMMIT.

No HTTP here; the database is this test's own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import trio

from eventd.errors import Unavailable
from eventd.storage import commands
from eventd.storage.database import _translate_errors, open_database
from eventd.storage.migrations import apply_migrations
from eventd.storage.queue import QueueTick
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
        register = commands.RegistrationOps([commands.EventOps(
            event_id, [commands.RegistrationOp("register", uuid.uuid4(), attendee_id)])])
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
            missing = commands.RegistrationOps([commands.EventOps(
                uuid.uuid4(), [commands.RegistrationOp(kind, uuid.uuid4(), uuid.uuid4())])])
            made = commands.CreateAttendee(uuid.uuid4(), "Ann", f"{uuid.uuid4().hex}@x.org")
            results = {}

            async def submit(name: str, command: commands.WriteCommand) -> None:  # type: ignore[type-arg]
                results[name] = await writer.submit(command)

            async with trio.open_nursery() as inner:
                inner.start_soon(submit, "missing", missing)
                inner.start_soon(submit, "made", made)
            await writer.close()
    [[op]] = results["missing"]
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
            commands.RegistrationOps([commands.EventOps(event_id, [
                commands.RegistrationOp("register", uuid.uuid4(), attendees[2 * n]),
                commands.RegistrationOp("register", uuid.uuid4(), attendees[2 * n + 1], True),
            ])])
            for n, event_id in enumerate(events)
        ]
        results = {}

        async def submit(command: commands.RegistrationOps) -> None:
            [part] = command.parts
            [results[part.event_id]] = await writer.submit(command)

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


async def test_only_a_commit_that_may_queue_messages_wakes_the_outbox_drains(
    fresh_database_url: str,
):
    """The queue's second commits through the writer: it must not make the mailer
    think the daemon is busy. A change that may queue an email wakes it."""
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=5) as db:
        await apply_migrations(db)
        woken: list[int] = []
        writer = Writer(db, on_commit=lambda: woken.append(1))
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.submit(QueueTick([uuid.uuid4()]))
            assert woken == []
            starts = datetime.now(UTC) + timedelta(days=3)
            await writer.submit(commands.CreateEvent(uuid.uuid4(), commands.EventFields(
                "Woken", "", starts, 60, "Hall", 5)))
            assert woken == [1]
            await writer.close()
