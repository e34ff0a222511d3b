"""The writer's SQL functions find rows through indexes, whatever the statistics say.

Planned while the statistics said a table was tiny, a PL/pgSQL lookup by key
reads the whole table for as long as the session keeps the plan: a rush on a
new deployment then slows with every registration (``sql/007_index_plans.sql``
has the figures). Here the statistics are taken while the tables are that
small; then every kind of operation the writer runs through these functions
goes through them in one transaction, and PostgreSQL's counters must show no
sequential scan of any table in between.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from eventd.storage.database import Connection, open_database
from eventd.storage.migrations import apply_migrations

TABLES = ["events", "attendees", "registrations", "email_outbox"]


async def _seq_scans(conn: Connection) -> dict[str, int]:
    """Sequential scans of each table by this session, not yet reported to the statistics.

    The same transaction reads them twice: nothing is reported in between.
    """
    rows = await conn.fetch(
        "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE relname = ANY($1::text[])",
        TABLES)
    return {table: 0 for table in TABLES} | {row["relname"]: row["seq_scan"] for row in rows}


async def _ops(conn: Connection, *ops: list[object]) -> list[tuple[str, uuid.UUID]]:
    """Run ``ops`` through eventd_registration_json; each one's (outcome, registration id)."""
    rows = await conn.fetch(
        "SELECT outcome, registration_id FROM eventd_registration_json($1) ORDER BY idx",
        orjson.dumps(ops, default=str).decode(),
    )
    return [(row["outcome"], row["registration_id"]) for row in rows]


async def test_no_function_of_the_writer_scans_a_table_planned_while_it_was_small(
    fresh_database_url: str,
) -> None:
    async with open_database(fresh_database_url, pool_size=2, timeout_seconds=10) as db:
        await apply_migrations(db)
        starts = datetime.now(UTC) + timedelta(days=3)
        big, small = uuid.uuid4(), uuid.uuid4()
        ann, bob, cat, dan = (uuid.uuid4() for _ in range(4))
        async with db.connection() as conn:
            for event_id, capacity, room in ((big, 100, "Hall"), (small, 1, "Room")):
                await conn.execute(
                    "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
                    " max_attendees) VALUES ($1, 'E', $2, 60, $3, $4, $5)",
                    event_id, starts, starts + timedelta(hours=1), room, capacity)
            await conn.execute(
                "INSERT INTO attendees (id, name, email)"
                " SELECT id, 'A', id || '@x.org' FROM unnest($1::uuid[]) id", [ann, bob, cat, dan])
            await _ops(conn, ["register", None, big, dan, False])
            await conn.execute("ANALYZE")  # what autovacuum does after the first few rows

            async with conn.transaction():
                before = await _seq_scans(conn)
                first = await _ops(
                    conn,
                    ["register", None, big, ann, False],
                    ["register", None, big, ann, False],
                    ["register", None, small, bob, False],
                    ["register", None, small, cat, True],
                    ["register", None, small, ann, False],
                )
                bobs = first[2][1]
                second = await _ops(conn, ["cancel", bobs, small, None, False])
                await conn.fetch("SELECT * FROM eventd_delete_attendee($1)", ann)
                reminded = await conn.fetchval(
                    "SELECT eventd_send_reminders($1, interval '1 day')", big)
                after = await _seq_scans(conn)
    assert [outcome for outcome, _ in first] == [
        "confirmed", "already_registered", "confirmed", "waitlisted", "event_full"]
    assert [outcome for outcome, _ in second] == ["cancelled"]  # and cat is promoted
    assert reminded == 1  # dan's: ann's registration went with her
    assert after == before, "sequential scans: " + ", ".join(
        f"{table} {after[table] - before[table]}" for table in TABLES)
