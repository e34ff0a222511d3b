"""Plans made while a new deployment's tables were small do not outlive their growth.

Planned while the statistics said a table was tiny, a lookup by key reads the
whole table for as long as the plan is kept: a rush on a new deployment then
slows with every registration (``sql/007_index_plans.sql`` has the figures).
The writer's SQL functions keep their plans, made with sequential scans off;
every other statement eventd sends is planned when it runs
(``eventd.storage.database``). Each test takes the statistics while the
tables are small, and PostgreSQL's counters must show no sequential scan of
any table afterwards.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from eventd.storage.database import Connection, open_database
from eventd.storage.migrations import apply_migrations

TABLES = ["events", "attendees", "registrations", "email_outbox", "idempotency_keys",
          "webhook_endpoints", "webhook_deliveries"]


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
            await conn.execute(  # every change also queues its webhook
                "INSERT INTO webhook_endpoints (id, url, types, secret)"
                " VALUES ($1, 'https://hooks.example.com', '{*}', 'whsec_c2VjcmV0')",
                uuid.uuid4())
            await _ops(conn, ["register", None, big, dan, False])
            await conn.execute("ANALYZE")  # what autovacuum does after the first few rows
            dans = await conn.fetchval("SELECT id FROM registrations WHERE attendee_id = $1", dan)

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
                entered = await conn.fetch(
                    "SELECT outcome FROM eventd_check_in_json($1)",
                    orjson.dumps([[big, [dans, uuid.uuid4()]]], default=str).decode())
                after = await _seq_scans(conn)
    assert [outcome for outcome, _ in first] == [
        "confirmed", "already_registered", "confirmed", "waitlisted", "event_full"]
    assert [outcome for outcome, _ in second] == ["cancelled"]  # and cat is promoted
    assert reminded == 1  # dan's: ann's registration went with her
    assert [row["outcome"] for row in entered] == ["checked_in", "not_valid"]
    assert after == before, "sequential scans: " + ", ".join(
        f"{table} {after[table] - before[table]}" for table in TABLES)


async def test_a_statement_is_planned_for_the_table_as_it_is_when_it_runs(
    fresh_database_url: str,
) -> None:
    """asyncpg prepares a statement once; eventd's sessions still plan it at every run.

    Run a few times while the statistics say the table is tiny, PostgreSQL
    would keep one plan for the statement, a whole-table read, however large
    the table grew in the connection's life.
    """
    look = "SELECT status FROM idempotency_keys WHERE key = $1"
    add_keys = (
        "INSERT INTO idempotency_keys (key, request_hash, owner)"
        " SELECT 'key-' || n, sha256(n::text::bytea), gen_random_uuid()"
        " FROM generate_series($1::int, $2::int) n"
    )
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=10) as db:
        await apply_migrations(db)
        async with db.connection() as conn:
            await conn.execute(add_keys, 1, 50)
            await conn.execute("ANALYZE idempotency_keys")
            async with conn.transaction():
                for n in range(1, 11):  # enough runs for a plan of its own
                    await conn.fetchval(look, f"key-{n}")
                await conn.execute(add_keys, 51, 20000)
                before = await _seq_scans(conn)
                await conn.fetchval(look, "key-19999")
                after = await _seq_scans(conn)
    assert after["idempotency_keys"] == before["idempotency_keys"]


async def test_the_writer_s_functions_keep_their_plans(fresh_database_url: str) -> None:
    """Their settings are in place: sessions plan every statement as it runs, and these
    functions would otherwise plan their half-dozen statements at every registration. A later
    CREATE OR REPLACE that drops the settings fails here."""
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=10) as db:
        await apply_migrations(db)
        rows = await db.fetch(
            "SELECT proname, proconfig FROM pg_proc"
            " WHERE proname LIKE 'eventd\\_%' AND prolang = (SELECT oid FROM pg_language"
            " WHERE lanname = 'plpgsql')")
    settings = {row["proname"]: set(row["proconfig"] or ()) for row in rows}
    assert settings == {
        **dict.fromkeys(
            ["eventd_registration_batch", "eventd_register", "eventd_register_run",
             "eventd_cancel", "eventd_fill_seats", "eventd_confirm", "eventd_expire_due",
             "eventd_enqueue_email", "eventd_enqueue_emails", "eventd_delete_attendee",
             "eventd_enqueue_webhooks", "eventd_enqueue_webhook",
             "eventd_check_in", "eventd_check_in_json",
             # the admission queue's (sql/013_admission_queue.sql)
             "eventd_queue_admitted_through", "eventd_queue_open", "eventd_queue_open_due",
             "eventd_queue_configure", "eventd_queue_join", "eventd_queue_states",
             "eventd_queue_metrics"],
            {"enable_seqscan=off", "plan_cache_mode=auto"}),
    }


def _registrations(event_id: uuid.UUID, attendees: list[uuid.UUID]) -> list[list[object]]:
    return [["register", None, event_id, attendee, False] for attendee in attendees]


async def _rows_read(conn: Connection, table: str) -> int:
    """Rows of ``table`` this session's transaction read so far, by any scan."""
    read: int = await conn.fetchval(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
        " FROM pg_stat_xact_user_tables WHERE relname = $1", table)
    return read


async def test_a_registration_reads_only_its_own_rows_however_many_others_there_are(
    fresh_database_url: str,
) -> None:
    """The plan a session keeps for a run of registrations, made while ``registrations`` was
    small, still finds "already registered?" by its key once the table has grown.

    Sequential scans are off in the writer's functions, but a partial index whose predicate
    the query repeats can be read whole instead: the same failure as a sequential scan
    under another name, and one no sequential-scan counter sees.
    """
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=10) as db:
        await apply_migrations(db)
        starts = datetime.now(UTC) + timedelta(days=3)
        rush, other = uuid.uuid4(), uuid.uuid4()
        people = [uuid.uuid4() for _ in range(5_100)]
        async with db.connection() as conn:
            for event_id in (rush, other):
                await conn.execute(
                    "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
                    " max_attendees) VALUES ($1, 'E', $2, 60, $3, 'Hall', 100000)",
                    event_id, starts, starts + timedelta(hours=1))
            await conn.execute(
                "INSERT INTO attendees (id, name, email)"
                " SELECT id, 'A', id || '@x.org' FROM unnest($1::uuid[]) id", people)
            await _ops(conn, ["register", None, rush, people[0], False])
            await conn.execute("ANALYZE")  # what autovacuum does after the first few rows
            for n in range(1, 31, 3):  # enough runs for the session to keep a generic plan
                await _ops(conn, *_registrations(rush, people[n:n + 3]))
            await conn.execute(  # the table grows; the statistics still say it is tiny
                "INSERT INTO registrations (id, event_id, attendee_id, status, seq)"
                " SELECT gen_random_uuid(), $1, a, 'confirmed', n"
                " FROM unnest($2::uuid[]) WITH ORDINALITY AS t(a, n)",
                other, people[100:])
            async with conn.transaction():
                before = await _rows_read(conn, "registrations")
                made = await _ops(conn, *_registrations(rush, people[40:43]))
                after = await _rows_read(conn, "registrations")
    assert [outcome for outcome, _ in made] == ["confirmed"] * 3
    assert after - before < 100, f"{after - before} registrations read for 3 registrations"
