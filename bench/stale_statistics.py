"""A rush on a new deployment: the database's cost per registration as the tables grow.

    python -m bench.stale_statistics [--registrations 30000] [--without 7]

Autovacuum analyzes a new deployment's tables after its first few dozen
registrations, and PL/pgSQL keeps the plans it makes from those statistics for
the life of its session. This plays that out with no daemon in the way: a
scratch database migrated (all of ``sql/``, or all but migration ``--without``),
100 events, the attendees, 60 registrations, ``ANALYZE``; then on one
connection, as the writer's, batches of 30 registrations across the events
through ``eventd_registration_json``, the writer's statement. Printed for each
tenth of the run: wall time per registration, the database's and the client's
together on this machine's loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import datetime

import asyncpg
import orjson

from bench.harness import FAR_FUTURE, insert_attendees, postgres_admin
from eventd.storage.migrations import migrations_dir
from tests.support import scratch_database

EVENTS = 100
BATCH = 30
ANALYZED_AT = 60  # registrations when autovacuum first looks (50 rows changed, and then some)
STARTS = datetime.fromisoformat(FAR_FUTURE)  # no registration is refused as too late
STATEMENT = "SELECT outcome FROM eventd_registration_json($1)"


async def migrate(db: str, without: int | None) -> None:
    """Every migration of ``sql/`` but ``without``, in order."""
    conn = await asyncpg.connect(db)
    try:
        for path in sorted(migrations_dir().glob("*.sql")):
            if int(path.name[:3]) != without:
                await conn.execute(path.read_text(encoding="utf-8"))
    finally:
        await conn.close()


async def rush(db: str, attendees: list[uuid.UUID]) -> list[tuple[int, float]]:
    """(registrations so far, µs per registration since the last figure), about ten times."""
    conn = await asyncpg.connect(db)
    try:
        events = [uuid.uuid4() for _ in range(EVENTS)]
        await conn.executemany(
            "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
            " max_attendees) VALUES ($1, 'Rush', $2::timestamptz, 60,"
            " $2::timestamptz + interval '1 hour', 'Hall ' || $3, 1000000)",
            [(event, STARTS, str(n)) for n, event in enumerate(events)])
        ops: list[tuple[str, None, str, str, bool]] = [
            ("register", None, str(events[n % EVENTS]), str(attendee), False)
            for n, attendee in enumerate(attendees)]
        await conn.fetch(STATEMENT, orjson.dumps(ops[:ANALYZED_AT]).decode())
        await conn.execute("ANALYZE")
        rest = ops[ANALYZED_AT:]
        batches = [sorted(rest[n:n + BATCH], key=lambda op: op[2])
                   for n, _ in enumerate(rest) if n % BATCH == 0]
        tenth = max(1, len(batches) // 10)
        figures: list[tuple[int, float]] = []
        done = since = 0
        started = time.perf_counter()
        for n, batch in enumerate(batches, 1):
            await conn.fetch(STATEMENT, orjson.dumps(batch).decode())
            done += len(batch)
            since += len(batch)
            if n % tenth == 0 or n == len(batches):
                now = time.perf_counter()
                figures.append((done, 1e6 * (now - started) / since))
                started, since = now, 0
        return figures
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stale_statistics",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--registrations", type=int, default=30_000)
    parser.add_argument("--without", type=int, metavar="N",
                        help="leave migration N out (7: the plans that ignore statistics)")
    args = parser.parse_args()
    with postgres_admin() as admin, scratch_database(admin) as db:
        asyncio.run(migrate(db, args.without))
        attendees = insert_attendees(db, ANALYZED_AT + args.registrations)
        left_out = f", without migration {args.without}" if args.without else ""
        print(f"batches of {BATCH} across {EVENTS} events, analyzed at {ANALYZED_AT}"
              f" registrations{left_out}:")
        for done, micros in asyncio.run(rush(db, attendees)):
            print(f"  {done:7,d} registered: {micros:7,.0f} µs per registration")


if __name__ == "__main__":
    main()
