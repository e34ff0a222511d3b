"""The queue ticker against a real PostgreSQL, its seconds driven by trio's MockClock.

The MockClock stands still unless jumped. The database computes the frontier
from the instant it is given: here the queue's opening plus the MockClock's
seconds, so each tick's ``queueUpdate`` can be held to
``min(ranked, floor(minutes since opening × rate))`` exactly.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import trio
import trio.testing

from eventd.realtime.hub import Hub, Subscriber
from eventd.realtime.queue_ticker import QueueTicker
from eventd.realtime.queue_updates import QueueUpdate
from eventd.storage.database import Database, open_database
from eventd.storage.migrations import apply_migrations
from eventd.storage.queue import QueueState, QueueTick
from eventd.storage.writer import Writer

RATE = 120  # per minute


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=30) as opened:
        await apply_migrations(opened)
        yield opened


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[Writer]:
    writer = Writer(db)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        nursery.cancel_scope.cancel()


class Follower(Subscriber):
    """A stream's subscriber that hands each queueUpdate to the test."""

    def __init__(self) -> None:
        self.send, self.updates = trio.open_memory_channel[QueueUpdate](100)

    def put_nowait(self, change: object) -> None:
        pass

    def put_state_nowait(self, update: QueueUpdate) -> None:
        self.send.send_nowait(update)

    @property
    def closed(self) -> bool:
        return False

    def close_nowait(self, code: int) -> None:
        pass


async def queued_event(db: Database, joiners: int) -> tuple[uuid.UUID, datetime]:
    """An event whose queue opens in an hour, with ``joiners`` joined before; its opening."""
    event_id = uuid.uuid4()
    starts = datetime.now(UTC) + timedelta(days=30)
    sales = datetime.now(UTC) + timedelta(hours=1)
    async with db.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
            " max_attendees, sales_start_at, admission_rate_per_minute, admission_token_minutes)"
            " VALUES ($1, 'E', $2, 60, $3, $4, 100, $5, $6, 1)",
            event_id, starts, starts + timedelta(hours=1), f"Room {event_id}", sales, RATE)
        await conn.execute("SELECT eventd_queue_configure($1)", event_id)
        await conn.execute(
            "SELECT * FROM eventd_queue_join($1::uuid[], $2::bytea[])",
            [event_id] * joiners,
            [hashlib.sha256(secrets.token_bytes(16)).digest() for _ in range(joiners)])
    return event_id, sales


def ticker_at(writer: Writer, hub: Hub, opening: datetime) -> QueueTicker:
    """A ticker whose database instant is the opening plus the MockClock's seconds."""

    async def read_states(events: list[uuid.UUID]) -> list[QueueState]:
        at = opening + timedelta(seconds=trio.current_time())
        return await writer.submit(QueueTick(events, at))

    return QueueTicker(read_states, hub)


async def test_each_second_the_frontier_is_the_formula_and_a_rate_change_moves_nobody_back(
    db: Database, writer: Writer, mock_clock: trio.testing.MockClock
):
    event_id, opening = await queued_event(db, 300)
    hub, follower = Hub(), Follower()
    hub.add_subscriber(follower, event_id)
    ticker = ticker_at(writer, hub, opening)
    seen: list[QueueUpdate] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        for second in range(0, 61):
            update = await follower.updates.receive()
            seen.append(update)
            assert update.at == opening + timedelta(seconds=second)
            if second < 30:
                expected = second * RATE // 60
            else:  # from second 30 on, 50 a minute, from the 60 admitted then
                expected = 60 + (second - 30) * 50 // 60
            assert update.admitted_through == min(300, expected), second
            assert (update.ranked, update.waiting) == (300, 300 - update.admitted_through)
            if second == 30:  # the rate changes at this instant (what a PATCH does)
                async with db.connection() as conn, conn.transaction():
                    await conn.execute(
                        "UPDATE events SET admission_rate_per_minute = 50 WHERE id = $1",
                        event_id)
                    await conn.execute("SELECT eventd_queue_configure($1, $2)", event_id,
                                       opening + timedelta(seconds=30))
            mock_clock.jump(1)
        nursery.cancel_scope.cancel()
    throughs = [u.admitted_through for u in seen]
    assert throughs == sorted(throughs)
    assert ticker.ticks == 61
    message = orjson.loads(seen[-1].encode())
    assert message.keys() == {"type", "eventId", "at", "data"}  # no seq: a state
    assert (message["type"], message["eventId"]) == ("queueUpdate", str(event_id))
    assert message["data"] == {"admittedThrough": 85, "waiting": 215, "ranked": 300}
    assert message["at"].endswith("Z")
    assert seen[-1].frame() is seen[-1].frame()  # framed once for every client


async def test_a_ticker_started_late_sends_the_frontier_where_it_stands_at_once(
    db: Database, writer: Writer, mock_clock: trio.testing.MockClock
):
    event_id, opening = await queued_event(db, 500)
    hub, follower = Hub(), Follower()
    hub.add_subscriber(follower, event_id)
    mock_clock.jump(100)  # the daemon starts 100 s after the opening; nobody opened the queue
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker_at(writer, hub, opening).run)
        first = await follower.updates.receive()
        assert (first.admitted_through, first.ranked) == (200, 500)
        mock_clock.jump(1)
        assert (await follower.updates.receive()).admitted_through == 202
        nursery.cancel_scope.cancel()
    assert hub.current_state(event_id) is not None


async def test_a_queue_that_stopped_moving_is_not_sent_again(
    db: Database, writer: Writer, mock_clock: trio.testing.MockClock
):
    event_id, opening = await queued_event(db, 3)
    hub, follower = Hub(), Follower()
    hub.add_subscriber(follower, event_id)
    ticker = ticker_at(writer, hub, opening)
    mock_clock.jump(60)  # all three admitted
    [sent] = await ticker.tick()
    assert (sent.admitted_through, sent.waiting) == (3, 0)
    mock_clock.jump(1)
    assert await ticker.tick() == []  # nothing moved: nothing to say
    hub.unsubscribe(follower)
    assert await ticker.tick() == []  # nobody here follows it


async def test_the_ticker_opens_queues_nobody_follows(
    db: Database, writer: Writer, mock_clock: trio.testing.MockClock
):
    event_id, opening = await queued_event(db, 10)
    ticker = ticker_at(writer, Hub(), opening)
    assert await ticker.tick() == []
    ranks = await db.fetch("SELECT rank FROM queue_tickets WHERE event_id = $1", event_id)
    assert sorted(r["rank"] for r in ranks) == list(range(1, 11))
