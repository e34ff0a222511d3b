"""Migrations: the numbered files once each, every function's file on every run.

``sql/NNN_name.sql`` are the tables' history; ``sql/functions/`` holds each
function's current definition, one file per function, re-applied on every
migrate (``sql/README.md``). Each test has a database of its own; the tests
that change a function file change a copy of ``sql/`` in a temporary
directory.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from eventd.storage.database import Connection, Database, QueryFailed, open_database
from eventd.storage.migrations import (
    FUNCTIONS_DIR,
    apply_migrations,
    load_functions,
    load_migrations,
    migrations_dir,
)

# Every routine of eventd's schema, by signature, with its full definition
# (CREATE OR REPLACE FUNCTION ..., settings and body), as PostgreSQL has it.
DEFINITIONS = (
    "SELECT p.oid::regprocedure::text AS signature, p.proname AS name,"
    " pg_get_functiondef(p.oid) AS definition"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = 'public' AND NOT EXISTS ("
    "  SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass"
    "  AND d.objid = p.oid AND d.deptype = 'e')"  # not an extension's
)
_DEFINES = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")


async def _definitions(db: Database | Connection) -> dict[str, str]:
    return {row["signature"]: row["definition"] for row in await db.fetch(DEFINITIONS)}


def _defined_in(sql: str) -> set[str]:
    """The functions a file creates (names only; comments are not read)."""
    return set(_DEFINES.findall(_COMMENT.sub("", sql)))


def _copy_of_sql(tmp_path: Path) -> Path:
    copy = tmp_path / "sql"
    shutil.copytree(migrations_dir(), copy)
    return copy


async def test_a_second_migrate_applies_nothing_and_changes_no_function(
    fresh_database_url: str,
) -> None:
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=30) as db:
        first = await apply_migrations(db)
        defined = await _definitions(db)
        second = await apply_migrations(db)
        recorded = await db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert await _definitions(db) == defined
    assert first == [m.name for m in load_migrations()]
    assert second == []
    assert [(r["version"], r["name"]) for r in recorded] == [
        (m.version, m.name) for m in load_migrations()]


async def test_every_function_has_one_file_named_after_it(fresh_database_url: str) -> None:
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=30) as db:
        await apply_migrations(db)
        in_database = {row["name"] for row in await db.fetch(DEFINITIONS)}
    files = {f.name: _defined_in(f.sql) for f in load_functions()}
    assert in_database, "no function in the database"
    for name in sorted(in_database):
        defining = sorted(file for file, names in files.items() if name in names)
        assert defining == [name], f"{name} is defined in {defining or 'no file'}"
    assert {file: names for file, names in files.items() if names != {file}} == {}, (
        "each file defines the one function it is named after")


async def test_the_database_holds_each_file_s_definition(fresh_database_url: str) -> None:
    """Applying any one file again changes nothing: what runs is what the file says."""
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=30) as db:
        await apply_migrations(db)
        async with db.connection() as conn:
            migrated = await _definitions(conn)
            for function in load_functions():
                await conn.execute(function.sql)
                assert await _definitions(conn) == migrated, f"{function.name}.sql differs"


async def test_a_function_changed_by_hand_gets_its_file_s_definition_back(
    fresh_database_url: str,
) -> None:
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=30) as db:
        await apply_migrations(db)
        migrated = await _definitions(db)
        async with db.connection() as conn:
            for signature in migrated:
                await conn.execute(f"ALTER FUNCTION {signature} SET work_mem = '1MB'")
        assert all("work_mem" in d for d in (await _definitions(db)).values())
        assert await apply_migrations(db) == []
        assert await _definitions(db) == migrated


async def test_a_changed_function_file_takes_effect_on_the_next_migrate(
    fresh_database_url: str, tmp_path: Path,
) -> None:
    sql = _copy_of_sql(tmp_path)
    key_file = sql / FUNCTIONS_DIR / "eventd_location_key.sql"
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=30) as db:
        await apply_migrations(db, sql)
        before = await db.fetchval("SELECT eventd_location_key('  Main   Hall ')")
        key_file.write_text(key_file.read_text().replace("RETURN lower(", "RETURN upper("))
        applied = await apply_migrations(db, sql)
        after = await db.fetchval("SELECT eventd_location_key('  Main   Hall ')")
        recorded = await db.fetchval("SELECT count(*) FROM schema_migrations")
    assert (before, after) == ("main hall", "MAIN HALL")
    assert applied == []
    assert recorded == len(load_migrations(sql))


async def test_a_failing_function_file_applies_no_function_and_is_named(
    fresh_database_url: str, tmp_path: Path,
) -> None:
    sql = _copy_of_sql(tmp_path)
    key_file = sql / FUNCTIONS_DIR / "eventd_location_key.sql"
    broken = sql / FUNCTIONS_DIR / "eventd_zz_broken.sql"
    async with open_database(fresh_database_url, pool_size=2, timeout_seconds=30) as db:
        await apply_migrations(db, sql)
        key_file.write_text(key_file.read_text().replace("RETURN lower(", "RETURN upper("))
        broken.write_text(
            "CREATE OR REPLACE FUNCTION eventd_zz_broken() RETURNS integer\n"
            "LANGUAGE sql AS $$ SELECT no_such_column FROM events $$;\n")
        with pytest.raises(QueryFailed) as failure:
            await apply_migrations(db, sql)
        unchanged = await db.fetchval("SELECT eventd_location_key('  Main   Hall ')")
        broken.unlink()
        assert await apply_migrations(db, sql) == []  # the lock was let go
        fixed = await db.fetchval("SELECT eventd_location_key('  Main   Hall ')")
    assert f"while applying sql/{FUNCTIONS_DIR}/eventd_zz_broken.sql" in failure.value.__notes__
    assert (unchanged, fixed) == ("main hall", "MAIN HALL")


async def test_the_registration_flow_keeps_every_registration_and_its_meaning(
    fresh_database_url: str, tmp_path: Path,
) -> None:
    """Migration 009 on a database of version 8: confirmed and waitlisted rows stay what
    they were, the counts hold, and the new rules apply to them."""
    before_flow = tmp_path / "sql"
    before_flow.mkdir()
    for migration in migrations_dir().glob("*.sql"):
        if int(migration.name[:3]) < 9:
            shutil.copy(migration, before_flow / migration.name)
    event = "00000000-0000-0000-0000-0000000000e1"
    people = [f"00000000-0000-0000-0000-0000000000a{n}" for n in range(4)]
    async with open_database(fresh_database_url, pool_size=1, timeout_seconds=30) as db:
        # Version 8, with the functions as its files defined them.
        await apply_migrations(db, before_flow)
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
                " max_attendees) VALUES ($1, 'Old', now() + interval '2 days', 60,"
                " now() + interval '2 days 1 hour', 'Hall', 2)", event)
            await conn.execute(
                "INSERT INTO attendees (id, name, email)"
                " SELECT id::uuid, 'P', id || '@example.org' FROM unnest($1::text[]) AS id",
                people)
            for attendee in people[:3]:
                await conn.execute(
                    "SELECT (eventd_register(gen_random_uuid(), $1, $2::uuid, true)).outcome",
                    event, attendee)
            kept = [tuple(r) for r in await conn.fetch(
                "SELECT id, attendee_id, status, seq, created_at, confirmed_at FROM registrations"
                " ORDER BY seq")]
        assert [row[2] for row in kept] == ["confirmed", "confirmed", "waitlisted"]

        applied = await apply_migrations(db)
        assert applied[0] == "009_registration_flow"
        rows = await db.fetch(
            "SELECT id, attendee_id, status, seq, created_at, confirmed_at, updated_at,"
            " expires_at, token_hashes, checked_in_at FROM registrations ORDER BY seq")
        assert [tuple(r)[:6] for r in rows] == kept
        assert all(r["updated_at"] == (r["confirmed_at"] or r["created_at"]) for r in rows)
        assert all(r["expires_at"] is None and r["checked_in_at"] is None for r in rows)
        assert all(r["token_hashes"] == [] for r in rows)  # only an admin acts on them
        counts = await db.fetchrow(
            "SELECT confirmed_count, held_count, waitlist_count, hold_minutes, offer_minutes,"
            " confirmation FROM events WHERE id = $1", event)
        assert tuple(counts) == (2, 0, 1, 15.0, 0.0, "instant")
        # The new rules hold for the old rows: a cancel keeps the row and promotes.
        cancelled = await db.fetchrow(
            "SELECT outcome, promoted FROM eventd_cancel($1, $2)", kept[0][0], event)
        assert cancelled is not None
        assert (cancelled["outcome"], list(cancelled["promoted"])) == ("cancelled", [kept[2][0]])
        statuses = [r["status"] for r in await db.fetch(
            "SELECT status FROM registrations ORDER BY seq")]
        assert statuses == ["cancelled", "confirmed", "confirmed"]
        # And the one who cancelled may register again.
        again = await db.fetchrow(
            "SELECT outcome FROM eventd_register(gen_random_uuid(), $1, $2, false, false, false)",
            event, kept[0][1])
        assert again is not None
        assert again["outcome"] == "event_full"  # both seats taken: registering is allowed
