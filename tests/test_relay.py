"""The relay: changes shared between daemons over Redis, and its statistics.

Rules of this file: the Redis at 127.0.0.1:6379 (no daemon, no database); two
relays in one process stand for two daemons. Changes are built directly
(tests/support.py) for an event of this test's own. Every wait is bounded by
``trio.fail_after``; blocking is made explicit with
``trio.testing.wait_all_tasks_blocked``.
"""

from __future__ import annotations

import uuid

import trio
import trio.testing

from eventd.realtime.changes import Change
from eventd.realtime.relay import CHANNEL, Relay, RelayStatistics
from eventd.storage.redis import open_redis
from tests.support import capacity, free_port, updated

REDIS_URL = "redis://127.0.0.1:6379/0"
TIMEOUT_SECONDS = 10


class Heard:
    """What one relay hands its daemon's actors, of one event."""

    def __init__(self, event_id: uuid.UUID) -> None:
        self._event_id = event_id
        self.changes: list[Change] = []
        self._arrived = trio.Event()

    def deliver(self, change: Change) -> None:
        if change.event.id == self._event_id:
            self.changes.append(change)
            self._arrived.set()

    async def next(self) -> Change:
        with trio.fail_after(TIMEOUT_SECONDS):
            await self._arrived.wait()
        self._arrived = trio.Event()
        return self.changes[-1]


async def no_resync() -> None:
    raise AssertionError("nothing was missed: no reload")


def as_sent(change: Change) -> tuple[object, ...]:
    """What of a change crosses to another daemon (its time to the millisecond)."""
    return (change.type, change.seq, change.event, change.at.isoformat(timespec="milliseconds"))


async def test_a_change_shared_by_one_daemon_reaches_the_other_once_and_is_counted() -> None:
    event_id = uuid.uuid4()
    heard_a, heard_b = Heard(event_id), Heard(event_id)
    mine, theirs = updated(event_id, 1), capacity(event_id, 2, confirmed=1)
    async with open_redis(REDIS_URL) as redis_a, open_redis(REDIS_URL) as redis_b:
        a = Relay(redis_a, heard_a.deliver, no_resync)
        b = Relay(redis_b, heard_b.deliver, no_resync)
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            assert await redis_a.publish_many(CHANNEL, [b"{not a change"])  # ignored by b
            a.share(mine)
            assert as_sent(await heard_b.next()) == as_sent(mine)
            b.share(theirs)  # after mine on the channel: a has seen its own by then
            assert as_sent(await heard_a.next()) == as_sent(theirs)
            with trio.fail_after(TIMEOUT_SECONDS):
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert [as_sent(c) for c in heard_a.changes] == [as_sent(theirs)]  # never its own
    assert [as_sent(c) for c in heard_b.changes] == [as_sent(mine)]
    assert a.statistics() == RelayStatistics(published=1, received=1, dropped=0)
    assert b.statistics() == RelayStatistics(published=1, received=1, dropped=0)


async def test_changes_shared_while_redis_is_down_are_dropped_and_counted() -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with open_redis(nobody) as redis:
        relay = Relay(redis, Heard(uuid.uuid4()).deliver, no_resync)
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            for seq in (1, 2, 3):
                relay.share(updated(uuid.uuid4(), seq))
            with trio.fail_after(TIMEOUT_SECONDS):
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert relay.statistics() == RelayStatistics(published=0, received=0, dropped=3)


async def test_the_relay_is_in_touch_only_while_subscribed_to_a_redis_that_answers() -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    for url, in_touch in ((REDIS_URL, True), (nobody, False)):
        async with open_redis(url) as redis:
            relay = Relay(redis, Heard(uuid.uuid4()).deliver, no_resync)
            assert not relay.in_touch  # not subscribed yet: other daemons' changes are missed
            async with trio.open_nursery() as nursery:
                await nursery.start(relay.run)
                assert relay.in_touch is in_touch, url
                nursery.cancel_scope.cancel()
            assert not relay.in_touch
