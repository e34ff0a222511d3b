"""A rush on a new deployment: the database's time per request as the tables grow.

    python -m bench.stale_statistics [--registrations 30000] [--before]

Autovacuum analyzes a new deployment's tables after their first few dozen
rows, and a session keeps the plans it makes from those statistics. This plays
that out with no daemon in the way, on a scratch database, 100 events and the
attendees: 60 registrations and 60 ``Idempotency-Key`` claims, ``ANALYZE``,
then on one session with eventd's settings

- registrations in batches of 30 across the events, through the writer's
  statement (``eventd_registration_json``);
- as many keyed requests' statements: the key's claim and its stored answer
  (``eventd.storage.idempotency``), a batch's worth between two figures.

Printed about ten times: wall time per registration and per keyed request on
this machine's loopback, the database's and the client's together.
``--before`` runs it as eventd did before ``sql/007_index_plans.sql``: that
migration left out, and sessions that keep their plans.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
import uuid
from datetime import datetime

import asyncpg
import orjson

from bench.harness import FAR_FUTURE, insert_attendees, postgres_admin
from eventd.storage import idempotency
from eventd.storage.database import _session_settings
from eventd.storage.migrations import load_functions, load_migrations
from tests.support import scratch_database

EVENTS = 100
BATCH = 30
ANALYZED_AT = 60  # rows when autovacuum first looks (50 changed, and then some)
STARTS = datetime.fromisoformat(FAR_FUTURE)  # no registration is refused as too late
REGISTER = "SELECT outcome FROM eventd_registration_json($1)"
INDEX_PLANS = 7  # the migration --before leaves out

Op = tuple[str, None, str, str, bool]


async def migrate(db: str, before: bool) -> None:
    """This tree's schema and functions; ``before``: the numbered files' functions, no 007."""
    conn = await asyncpg.connect(db)
    try:
        for migration in load_migrations():
            if not (before and migration.version == INDEX_PLANS):
                await conn.execute(migration.sql)
        if not before:  # each function's current definition, as eventd migrate applies them
            for function in load_functions():
                await conn.execute(function.sql)
    finally:
        await conn.close()


async def keyed_request(conn: asyncpg.Connection, n: int) -> None:
    """A keyed POST's two statements: the claim, then its answer stored."""
    key, owner = f"rush-{n}", uuid.uuid4()
    await conn.fetchval(idempotency._CLAIM, key, hashlib.sha256(key.encode()).digest(), owner,
                        86400.0, 60.0)
    await conn.fetchval(idempotency._STORE, key, owner, 201, "{}", b'{"id": "x"}')


async def rush(
    db: str, attendees: list[uuid.UUID], before: bool
) -> list[tuple[int, float, float]]:
    """(registrations so far, µs per registration, µs per keyed request), about ten times."""
    settings = _session_settings(10.0)
    if before:
        del settings["plan_cache_mode"]
    conn = await asyncpg.connect(db, server_settings=settings)
    try:
        events = [uuid.uuid4() for _ in range(EVENTS)]
        await conn.executemany(
            "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
            " max_attendees) VALUES ($1, 'Rush', $2::timestamptz, 60,"
            " $2::timestamptz + interval '1 hour', 'Hall ' || $3, 1000000)",
            [(event, STARTS, str(n)) for n, event in enumerate(events)])
        ops: list[Op] = [("register", None, str(events[n % EVENTS]), str(attendee), False)
                         for n, attendee in enumerate(attendees)]
        await conn.fetch(REGISTER, orjson.dumps(ops[:ANALYZED_AT]).decode())
        for n in range(ANALYZED_AT):
            await keyed_request(conn, -n)
        await conn.execute("ANALYZE")
        rest = ops[ANALYZED_AT:]
        batches = [sorted(rest[n:n + BATCH], key=lambda op: op[2])
                   for n in range(0, len(rest), BATCH)]
        every = max(1, len(batches) // 10)
        figures: list[tuple[int, float, float]] = []
        done = since = 0
        registering = keyed = 0.0
        for n, batch in enumerate(batches, 1):
            started = time.perf_counter()
            await conn.fetch(REGISTER, orjson.dumps(batch).decode())
            between = time.perf_counter()
            for _ in batch:
                await keyed_request(conn, done)
                done += 1
            registering += between - started
            keyed += time.perf_counter() - between
            since += len(batch)
            if n % every == 0 or n == len(batches):
                figures.append((done, 1e6 * registering / since, 1e6 * keyed / since))
                since, registering, keyed = 0, 0.0, 0.0
        return figures
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stale_statistics",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--registrations", type=int, default=30_000)
    parser.add_argument("--before", action="store_true",
                        help="without sql/007, sessions keeping their plans: eventd until then")
    args = parser.parse_args()
    with postgres_admin() as admin, scratch_database(admin) as db:
        asyncio.run(migrate(db, args.before))
        attendees = insert_attendees(db, ANALYZED_AT + args.registrations)
        print(f"{'before sql/007' if args.before else 'this tree'}: registrations in batches"
              f" of {BATCH} across {EVENTS} events, and as many keyed requests; analyzed at"
              f" {ANALYZED_AT} rows of each")
        for done, registration, keyed in asyncio.run(rush(db, attendees, args.before)):
            print(f"  {done:7,d} registered: {registration:7,.0f} µs per registration,"
                  f" {keyed:7,.0f} µs per keyed request")


if __name__ == "__main__":
    main()
