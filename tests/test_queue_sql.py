"""The admission queue's SQL functions, called directly (``sql/functions/eventd_queue_*``).

Time is passed in (``p_at``) where a function takes it, so the formula is
checked at exact instants. The registration's gates, which read the same
rows, are decided by ``eventd_register_run`` on ``now()``: here at their
exact instants, in a transaction whose times are moved to meet them; through
the daemon in ``tests/test_admission_gate.py``.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import trio

from eventd.storage.database import Connection, Database, open_database
from eventd.storage.migrations import apply_migrations

RATE = 120  # per minute: two a second


def token() -> tuple[str, bytes]:
    text = secrets.token_urlsafe(32)
    return text, hashlib.sha256(text.encode()).digest()


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    async with open_database(fresh_database_url, pool_size=60, timeout_seconds=30) as opened:
        await apply_migrations(opened)
        yield opened


async def make_event(
    db: Database, *, sales: datetime | None, rate: int | None = RATE, minutes: float = 1.0
) -> uuid.UUID:
    """An event as CreateEvent makes one: the row, then its queue configured."""
    event_id = uuid.uuid4()
    starts = datetime.now(UTC) + timedelta(days=30)
    async with db.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
            " max_attendees, sales_start_at, admission_rate_per_minute, admission_token_minutes)"
            " VALUES ($1, 'E', $2, 60, $3, $4, 100, $5, $6, $7)",
            event_id, starts, starts + timedelta(hours=1), f"Room {event_id}", sales, rate,
            minutes if rate is not None else None,
        )
        await conn.execute("SELECT eventd_queue_configure($1)", event_id)
    return event_id


async def join(db: Database, event_id: uuid.UUID, hashes: list[bytes]) -> list[dict]:
    rows = await db.fetch(
        "SELECT * FROM eventd_queue_join($1::uuid[], $2::bytea[]) ORDER BY idx",
        [event_id] * len(hashes), hashes,
    )
    return [dict(row) for row in rows]


async def states(db: Database, event_id: uuid.UUID, at: datetime) -> dict:
    row = await db.fetchrow("SELECT * FROM eventd_queue_states($1::uuid[], $2)", [event_id], at)
    assert row is not None
    return dict(row)


async def opens_at(db: Database, event_id: uuid.UUID) -> datetime:
    found: datetime = await db.fetchval(
        "SELECT opens_at FROM admission_queues WHERE event_id = $1", event_id)
    return found


async def ranks_by_seq(db: Database, event_id: uuid.UUID) -> list[int | None]:
    rows = await db.fetch(
        "SELECT rank FROM queue_tickets WHERE event_id = $1 ORDER BY seq", event_id)
    return [row["rank"] for row in rows]


# --- the frontier ---------------------------------------------------------------


async def test_the_frontier_follows_the_formula_from_the_databases_clock(db: Database):
    sales = datetime.now(UTC) + timedelta(hours=1)
    event_id = await make_event(db, sales=sales)
    await join(db, event_id, [token()[1] for _ in range(50)])
    opening = await opens_at(db, event_id)
    assert opening == sales
    before = await states(db, event_id, opening - timedelta(seconds=1))
    assert (before["opened"], before["admitted_through"], before["waiting"]) == (False, 0, 50)
    for second in range(0, 31):
        state = await states(db, event_id, opening + timedelta(seconds=second))
        assert state["opened"]
        assert state["ranked"] == 50
        assert state["admitted_through"] == min(50, second * RATE // 60)
        assert state["waiting"] == 50 - state["admitted_through"]
    # Between the seconds too: floor(minutes × rate), exactly.
    state = await states(db, event_id, opening + timedelta(seconds=7, microseconds=499_999))
    assert state["admitted_through"] == 14
    state = await states(db, event_id, opening + timedelta(seconds=7, microseconds=500_000))
    assert state["admitted_through"] == 15


async def test_a_rate_change_applies_from_its_moment_and_moves_nobody_back(db: Database):
    sales = datetime.now(UTC) + timedelta(hours=1)
    event_id = await make_event(db, sales=sales)
    await join(db, event_id, [token()[1] for _ in range(500)])
    await states(db, event_id, sales)  # opens it
    change = sales + timedelta(seconds=10, milliseconds=250)  # 20.5 allowed: 20 admitted
    async with db.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE events SET admission_rate_per_minute = 30 WHERE id = $1", event_id)
        await conn.execute("SELECT eventd_queue_configure($1, $2)", event_id, change)
    at_change = (await states(db, event_id, change))["admitted_through"]
    assert at_change == 20
    previous = at_change
    for tenth in range(1, 400):
        at = change + timedelta(seconds=tenth / 10)
        through = (await states(db, event_id, at))["admitted_through"]
        assert through == 20 + tenth * 30 // 600
        assert through >= previous
        previous = through
    # Before the change, the old rate still holds: the past is not rewritten.
    assert (await states(db, event_id, sales + timedelta(seconds=5)))["admitted_through"] == 10
    # Faster again: from 20 + 20 (at 40.25 s), 600 a minute.
    faster = change + timedelta(seconds=40)
    async with db.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE events SET admission_rate_per_minute = 600 WHERE id = $1", event_id)
        await conn.execute("SELECT eventd_queue_configure($1, $2)", event_id, faster)
    assert (await states(db, event_id, faster))["admitted_through"] == 40
    later = faster + timedelta(seconds=3)
    assert (await states(db, event_id, later))["admitted_through"] == 70


async def test_admission_times_agree_with_the_frontier(db: Database):
    sales = datetime.now(UTC) + timedelta(hours=1)
    event_id = await make_event(db, sales=sales, rate=7)
    await join(db, event_id, [token()[1] for _ in range(30)])
    await states(db, event_id, sales)
    async with db.connection() as conn, conn.transaction():
        await conn.execute("UPDATE events SET admission_rate_per_minute = 13 WHERE id = $1",
                           event_id)
        await conn.execute("SELECT eventd_queue_configure($1, $2)", event_id,
                           sales + timedelta(seconds=61, microseconds=3))
    rows = await db.fetch(
        "SELECT rank, eventd_queue_admitted_at(event_id, rank, ranked_at) AS at"
        " FROM queue_tickets WHERE event_id = $1 ORDER BY rank", event_id)
    for row in rows:
        rank, at = row["rank"], row["at"]
        through = await db.fetchval("SELECT eventd_queue_admitted_through($1, $2)", event_id, at)
        before = await db.fetchval("SELECT eventd_queue_admitted_through($1, $2)", event_id,
                                   at - timedelta(microseconds=1))
        assert through >= rank > before, rank


# --- fairness -------------------------------------------------------------------


async def test_pre_sale_joiners_are_ranked_in_a_uniformly_random_order(db: Database):
    """10,000 joiners before the opening: their ranks are a permutation of 1..10,000,
    unrelated to the order they joined in.

    Spearman's rank correlation between join order and rank, rho, has mean 0 and
    variance exactly 1/(n − 1) under a uniformly random permutation, and is
    asymptotically normal (a U-statistic; at n = 10,000 the normal approximation is
    tight). Its standard deviation here is 1/sqrt(9,999) = 0.0100. The threshold
    |rho| < 0.04 is 4.0 standard deviations: a fair shuffle fails it with probability
    2·(1 − Φ(4.0)) ≈ 6.3e-5, so it passes with probability ≥ 0.9999 (≥ 0.999 asked).
    A ranking that kept any sizeable part of the join order would fail: ranks in join
    order give rho = 1; half of them in order, half random, about 0.25. Kendall's tau
    between join order and rank over the first 2,000 joiners (variance
    2(2m + 5)/(9m(m − 1)), sd 0.0149 at m = 2,000; also asymptotically normal) is held
    to 4.0 standard deviations as well. Both pass together with probability
    ≥ 1 − 2 × 6.3e-5 ≥ 0.9998.
    """
    n = 10_000
    event_id = await make_event(db, sales=datetime.now(UTC) + timedelta(hours=1))
    for _ in range(0, n, 1000):  # joins in batches, as the writer sends them
        joined = await join(db, event_id, [token()[1] for _ in range(1000)])
        assert all(row["rank"] is None for row in joined)
    await states(db, event_id, await opens_at(db, event_id))  # the opening
    ranks = await ranks_by_seq(db, event_id)
    assert sorted(ranks) == list(range(1, n + 1))  # type: ignore[type-var]
    d2 = sum((seq - rank) ** 2 for seq, rank in enumerate(ranks, 1))  # type: ignore[operator]
    rho = 1 - 6 * d2 / (n * (n * n - 1))
    assert abs(rho) < 0.04, rho
    tau = kendall_tau([r for r in ranks if r is not None][:2000])
    sd_tau = math.sqrt(2 * (2 * 2000 + 5) / (9 * 2000 * 1999))
    assert abs(tau) < 4.0 * sd_tau, tau


def kendall_tau(values: list[int]) -> float:
    """Kendall's tau between position and value (no ties), counted in O(n²)."""
    n = len(values)
    concordant = sum(
        1 for i in range(n) for j in range(i + 1, n) if values[i] < values[j]
    )
    pairs = n * (n - 1) // 2
    return (2 * concordant - pairs) / pairs


async def test_the_opening_ranks_once_whoever_races_to_it(db: Database):
    event_id = await make_event(db, sales=datetime.now(UTC) + timedelta(hours=1))
    await join(db, event_id, [token()[1] for _ in range(300)])
    opening = await opens_at(db, event_id)

    async def open_it() -> None:
        await db.fetch("SELECT * FROM eventd_queue_states($1::uuid[], $2)", [event_id], opening)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(open_it)
    first = await ranks_by_seq(db, event_id)
    assert sorted(first) == list(range(1, 301))  # type: ignore[type-var]
    await open_it()
    await db.fetchval("SELECT eventd_queue_configure($1, $2)", event_id,
                      opening + timedelta(seconds=5))
    assert await ranks_by_seq(db, event_id) == first
    assert await db.fetchval(
        "SELECT count(*) FROM admission_rates WHERE event_id = $1", event_id) == 1


async def test_joiners_after_the_opening_are_ranked_in_arrival_order_after_everyone(
    db: Database,
):
    sales = datetime.now(UTC) + timedelta(milliseconds=300)
    event_id = await make_event(db, sales=sales)
    early = await join(db, event_id, [token()[1] for _ in range(20)])
    assert {row["rank"] for row in early} == {None}
    assert {row["opens_at"] for row in early} == {sales}
    await trio.sleep(0.4)  # the database's clock passes salesStartAt (no ticker here)
    late = await join(db, event_id, [token()[1] for _ in range(5)])  # opens it, then joins
    assert [row["rank"] for row in late] == [21, 22, 23, 24, 25]
    more = await join(db, event_id, [token()[1] for _ in range(3)])
    assert [row["rank"] for row in more] == [26, 27, 28]
    ranks = await ranks_by_seq(db, event_id)
    assert sorted(ranks[:20]) == list(range(1, 21))  # type: ignore[type-var]
    assert ranks[20:] == list(range(21, 29))


async def test_a_queue_without_a_sales_start_opens_at_once(db: Database):
    event_id = await make_event(db, sales=None, rate=600)
    joined = await join(db, event_id, [token()[1]])
    assert joined[0]["rank"] == 1
    opened = await db.fetchval(
        "SELECT opened_at FROM admission_queues WHERE event_id = $1", event_id)
    assert opened is not None


async def test_joins_of_unknown_or_unqueued_events_are_told_apart(db: Database):
    plain = await make_event(db, sales=None, rate=None)
    rows = await db.fetch(
        "SELECT outcome FROM eventd_queue_join($1::uuid[], $2::bytea[]) ORDER BY idx",
        [plain, uuid.uuid4()], [token()[1], token()[1]])
    assert sorted(row["outcome"] for row in rows) == ["event_not_found", "no_queue"]
    assert await db.fetchval("SELECT count(*) FROM queue_tickets") == 0


# --- the metrics ----------------------------------------------------------------


async def admitted_event(db: Database, n: int) -> tuple[uuid.UUID, list[bytes], datetime]:
    """An open queue at 120 a minute, tokens lasting a minute, with n ≤ 20 tickets; and
    the instant 10 s after its opening, when all n are admitted and none has expired."""
    assert n <= 20
    event_id = await make_event(db, sales=None, rate=RATE, minutes=1.0)
    hashes = [token()[1] for _ in range(n)]
    await join(db, event_id, hashes)
    return event_id, hashes, await opens_at(db, event_id) + timedelta(seconds=10)


async def test_metrics_count_joined_ranked_admitted_used_and_expired(db: Database):
    event_id, hashes, at = await admitted_event(db, 4)
    # Its registration marks the first ticket used (eventd_register_run does this).
    async with db.connection() as conn:
        await conn.execute("UPDATE queue_tickets SET used_at = $2 WHERE token_hash = $1",
                           hashes[0], at)

    async def counts(moment: datetime) -> list[tuple[int, ...]]:
        rows = await db.fetch(
            "SELECT * FROM eventd_queue_metrics($1) WHERE event_id = $2", moment, event_id)
        return [(r["joined"], r["ranked"], r["admitted"], r["used"], r["expired"]) for r in rows]

    assert await counts(at - timedelta(seconds=9)) == [(4, 4, 2, 1, 0)]  # ranks 1, 2 by 1 s
    assert await counts(at) == [(4, 4, 4, 1, 0)]
    assert await counts(at + timedelta(minutes=2)) == [(4, 4, 4, 1, 3)]  # the others lapsed


# --- the gates at their instants -----------------------------------------------
# eventd_register_run decides the gates by now(), the transaction's start: each
# test moves the event's times to exact distances from it, in that transaction.


async def register_now(conn: Connection, event_id: uuid.UUID, token_hash: bytes | None) -> str:
    """A new attendee's registration through eventd_register_run; its outcome."""
    attendee = uuid.uuid4()
    await conn.execute("INSERT INTO attendees (id, name, email) VALUES ($1, 'A', $2)",
                       attendee, f"{attendee}@example.com")
    outcome: str = await conn.fetchval(
        "SELECT outcome FROM eventd_register_run(ARRAY[NULL::uuid], ARRAY[$1::uuid],"
        " ARRAY[$2::uuid], ARRAY[false], ARRAY[false], ARRAY[false], ARRAY[$3::bytea])",
        event_id, attendee, token_hash)
    return outcome


async def test_sales_open_at_sales_start_to_the_microsecond(db: Database):
    event_id = await make_event(db, sales=None, rate=None)
    async with db.connection() as conn, conn.transaction():
        await conn.execute("UPDATE events SET sales_start_at = now() + interval '1 microsecond'"
                           " WHERE id = $1", event_id)
        assert await register_now(conn, event_id, None) == "sales_not_open"
        await conn.execute("UPDATE events SET sales_start_at = now() WHERE id = $1", event_id)
        assert await register_now(conn, event_id, None) == "confirmed"


async def moved_back(conn: Connection, event_id: uuid.UUID, microseconds: int) -> None:
    """The queue opened, and its tickets were ranked, ``microseconds`` before now()."""
    await conn.execute(
        "WITH r AS (UPDATE admission_rates SET since = now() - $2 * interval '1 microsecond'"
        " WHERE event_id = $1)"
        " UPDATE queue_tickets SET ranked_at = now() - $2 * interval '1 microsecond',"
        " joined_at = now() - $2 * interval '1 microsecond' WHERE event_id = $1",
        event_id, microseconds)


@pytest.mark.parametrize(("microseconds", "outcomes"), [
    (2_000_000, ["confirmed", "confirmed", "admission_required"]),  # rank 2 admitted at now()
    (1_999_999, ["confirmed", "admission_required", "admission_required"]),
    (62_000_000, ["admission_expired", "admission_expired", "confirmed"]),  # rank 2's ends now
    (61_999_999, ["admission_expired", "confirmed", "confirmed"]),
])
async def test_an_admission_starts_and_ends_at_its_instants(
    db: Database, microseconds: int, outcomes: list[str]
):
    event_id = await make_event(db, sales=None, rate=60, minutes=1.0)  # rank r at r seconds
    hashes = [token()[1] for _ in range(3)]
    await join(db, event_id, hashes)
    assert await ranks_by_seq(db, event_id) == [1, 2, 3]
    async with db.connection() as conn, conn.transaction():
        await moved_back(conn, event_id, microseconds)
        assert [await register_now(conn, event_id, h) for h in hashes] == outcomes
