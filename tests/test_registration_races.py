"""Races of the registration flow: holds at capacity, confirm against expiry, two sweeps.

The database has the last word, so the races are run where they are decided:
concurrent requests to the daemon, concurrent transactions on one database
(as two daemons would run them), and a daemon killed with holds pending.
Each check counts rows — registrations by status and queued emails — so a
seat expired twice, or offered twice, or lost, shows.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

from eventd.storage.database import Database, open_database
from eventd.storage.migrations import apply_migrations
from tests.conftest import assert_problem, create_event
from tests.support import DaemonProcess, run_sql

WAIT_SECONDS = 30


async def _event(db: Database, capacity: int, *, offer_minutes: float = 0.0,
                 hold_minutes: float = 15.0) -> uuid.UUID:
    event_id = uuid.uuid4()
    starts = datetime.now(UTC) + timedelta(days=3)
    await db.fetch(
        "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
        " max_attendees, offer_minutes, hold_minutes) VALUES ($1, 'Race', $2, 60, $3, $4, $5,"
        " $6, $7)",
        event_id, starts, starts + timedelta(hours=1), f"Room {event_id}", capacity,
        offer_minutes, hold_minutes)
    return event_id


async def _people(db: Database, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    await db.fetch(
        "INSERT INTO attendees (id, name, email) SELECT id, 'P', id::text || '@example.org'"
        " FROM unnest($1::uuid[]) AS id", ids)
    return ids


async def _ops(db: Database, ops: list[list[Any]]) -> list[Any]:
    return list(await db.fetch(
        "SELECT outcome, registration_id, token FROM eventd_registration_json($1) ORDER BY idx",
        json.dumps(ops, default=str)))


async def _statuses(db: Database, event_id: uuid.UUID) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM registrations WHERE event_id = $1"
                          " GROUP BY status", event_id)
    return {r["status"]: r["n"] for r in rows}


async def _emails(db: Database, event_id: uuid.UUID) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT kind, count(*) AS n FROM email_outbox WHERE payload #>> '{event,id}' = $1"
        " GROUP BY kind", str(event_id))
    return {r["kind"]: r["n"] for r in rows}


async def _counts(db: Database, event_id: uuid.UUID) -> tuple[int, int, int]:
    row = await db.fetchrow("SELECT confirmed_count, held_count, waitlist_count FROM events"
                            " WHERE id = $1", event_id)
    assert row is not None
    return row["confirmed_count"], row["held_count"], row["waitlist_count"]


async def _holds_due_now(db: Database, event_id: uuid.UUID, holds: int, waiting: int) -> None:
    """``holds`` holds already past their deadline, ``waiting`` waitlisted behind them."""
    people = await _people(db, holds + waiting)
    await _ops(db, [["register", None, event_id, p, True, True] for p in people])
    await db.fetch("UPDATE registrations SET expires_at = now() - interval '1 second'"
                     " WHERE event_id = $1 AND status = 'held'", event_id)


async def test_two_sweeps_at_once_expire_each_hold_once_and_offer_each_seat_once(
    fresh_database_url: str,
):
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=30) as db:
        await apply_migrations(db)
        event_id = await _event(db, 20, offer_minutes=30)
        await _holds_due_now(db, event_id, 20, 20)
        outcomes: list[str] = []

        async def sweep() -> None:
            row = await db.fetchrow("SELECT outcome FROM eventd_expire_due($1)", event_id)
            assert row is not None
            outcomes.append(row["outcome"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sweep)
            nursery.start_soon(sweep)
        assert sorted(outcomes) == ["expired", "unchanged"]
        assert await _statuses(db, event_id) == {"expired": 20, "offered": 20}
        emails = await _emails(db, event_id)
        assert (emails["expired"], emails["offered"]) == (20, 20)
        assert await _counts(db, event_id) == (0, 20, 0)


async def test_a_confirm_racing_its_own_expiry_ends_confirmed_or_expired(
    fresh_database_url: str,
):
    holds = 60
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=30) as db:
        await apply_migrations(db)
        event_id = await _event(db, holds, offer_minutes=30)
        people = await _people(db, holds + 10)
        made = await _ops(db, [["register", None, event_id, p, True, True] for p in people])
        held = [r["registration_id"] for r in made if r["outcome"] == "held"]
        assert len(held) == holds
        # All due at one moment, a little ahead: the confirms run into it.
        await db.fetch("UPDATE registrations SET expires_at = clock_timestamp()"
                         " + interval '150 milliseconds' WHERE event_id = $1"
                         " AND status = 'held'", event_id)
        answers: dict[uuid.UUID, str] = {}

        async def confirm_all() -> None:
            for rid in held:
                row = await db.fetchrow("SELECT outcome FROM eventd_confirm($1, $2)",
                                        rid, event_id)
                assert row is not None
                answers[rid] = row["outcome"]

        async def sweep_until_done() -> None:
            while len(answers) < holds:
                await db.fetchrow("SELECT outcome FROM eventd_expire_due($1)", event_id)
                await trio.sleep(0.005)
            await db.fetchrow("SELECT outcome FROM eventd_expire_due($1)", event_id)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(confirm_all)
            nursery.start_soon(sweep_until_done)
        rows = await db.fetch("SELECT id, status FROM registrations WHERE id = ANY($1)", held)
        final = {r["id"]: r["status"] for r in rows}
        for rid in held:
            expected = "confirmed" if answers[rid] == "confirmed_hold" else "expired"
            assert answers[rid] in ("confirmed_hold", "hold_expired"), answers[rid]
            assert final[rid] == expected, (rid, answers[rid], final[rid])
        confirmed = sum(1 for s in final.values() if s == "confirmed")
        expired = holds - confirmed
        # Each expired seat went to the waitlist once; nothing was lost or doubled.
        statuses = await _statuses(db, event_id)
        offered = statuses.get("offered", 0)
        assert offered == min(expired, 10)
        assert await _counts(db, event_id) == (confirmed, offered, 10 - offered)
        emails = await _emails(db, event_id)
        assert emails.get("registration_confirmed", 0) == confirmed
        assert emails.get("expired", 0) == expired
        assert emails.get("offered", 0) == offered


async def test_300_holds_at_once_on_100_seats_hold_exactly_100(
    client: httpx.AsyncClient, database_url: str
):
    event = await create_event(client, maxAttendees=100)
    people = [uuid.uuid4() for _ in range(300)]
    await trio.to_thread.run_sync(lambda: run_sql(
        database_url, "INSERT INTO attendees (id, name, email) SELECT id, 'P',"
        " id::text || '@example.org' FROM unnest($1::uuid[]) AS id", people))
    answers: list[httpx.Response] = []

    async def hold(person: uuid.UUID) -> None:
        answers.append(await client.post("/registrations", json={
            "eventId": event["id"], "attendeeId": str(person), "hold": True}))

    async with trio.open_nursery() as nursery:
        for person in people:
            nursery.start_soon(hold, person)
    created = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code != 201]
    assert len(created) == 100
    assert {r.json()["status"] for r in created} == {"held"}
    for response in refused:
        assert_problem(response, 409, "event_full")
    after = (await client.get(f"/events/{event['id']}")).json()
    assert (after["registeredCount"], after["heldCount"], after["availableSpots"]) == (0, 100, 0)


async def test_holds_pending_at_a_kill_expire_once_at_the_next_start(
    fresh_database_url: str, tmp_path: Path
):
    daemon = DaemonProcess(fresh_database_url, tmp_path).start()
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
        event = await create_event(client, maxAttendees=20, holdMinutes=0.05, offerMinutes=60)
    async with open_database(fresh_database_url, pool_size=2, timeout_seconds=30) as db:
        people = await _people(db, 40)
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            for n, p in enumerate(people):
                response = await client.post("/registrations", json={
                    "eventId": event["id"], "attendeeId": str(p), "hold": True,
                    "waitlist": True})
                assert response.json()["status"] == ("held" if n < 20 else "waitlisted")
        daemon.kill()
        event_id = uuid.UUID(event["id"])
        # No daemon runs while the holds fall due (by the database's clock).
        with trio.fail_after(WAIT_SECONDS):
            while True:
                if not await db.fetchval("SELECT max(expires_at) > now() FROM registrations"
                                         " WHERE event_id = $1", event_id):
                    break
                await trio.sleep(0.1)
        assert await _statuses(db, event_id) == {"held": 20, "waitlisted": 20}
        daemon.start()
        try:
            with trio.fail_after(WAIT_SECONDS):
                while True:
                    if await _statuses(db, event_id) == {"expired": 20, "offered": 20}:
                        break
                    await trio.sleep(0.1)
            emails = await _emails(db, event_id)
            assert (emails["expired"], emails["offered"]) == (20, 20)
            assert await _counts(db, event_id) == (0, 20, 0)
        finally:
            assert daemon.stop() == 0, daemon.log()
