"""Hub: who follows which event, and handing each change to them without waiting.

Rules of this file: no sockets and no database. Subscribers are real outboxes,
subscribed for a block the way a stream is while it is served
(eventd.http.streams); changes are built directly (tests/support.py). Every
wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import trio
import trio.testing

from eventd.realtime.hub import Hub, HubStatistics, Subscriber
from eventd.realtime.outbox import TRY_AGAIN_LATER, Closing, Outbox
from eventd.realtime.queue_updates import QueueUpdate
from tests.support import (
    AT,
    EVENT_A,
    EVENT_B,
    EVENT_C,
    Taker,
    capacity,
    close_code_taken,
    updated,
)

TIMEOUT_SECONDS = 5
GOING_AWAY = 1001


@contextmanager
def subscribed(hub: Hub, subscriber: Subscriber, event_id: uuid.UUID | None = None
               ) -> Iterator[None]:
    """Subscribed for the block, as a stream is while it is served."""
    hub.add_subscriber(subscriber, event_id)
    try:
        yield
    finally:
        hub.unsubscribe(subscriber)


def test_publish_reaches_global_and_that_events_subscribers_only() -> None:
    hub = Hub()
    everything, watcher_a, watcher_a2, watcher_b = (Outbox(16) for _ in range(4))
    change_a, change_b, change_c = updated(EVENT_A, 1), updated(EVENT_B, 1), updated(EVENT_C, 1)
    with (
        subscribed(hub, everything),
        subscribed(hub, watcher_a, EVENT_A),
        subscribed(hub, watcher_a2, EVENT_A),
        subscribed(hub, watcher_b, EVENT_B),
    ):
        hub.publish(change_a)
        hub.publish(change_b)
        hub.publish(change_c)  # nobody watches C: only the global stream hears it

        assert everything.take_nowait() == [change_a, change_b, change_c]
        assert watcher_a.take_nowait() == [change_a]
        assert watcher_a2.take_nowait() == [change_a]
        assert watcher_b.take_nowait() == [change_b]
    assert hub.statistics().dropped_slow_clients == 0


def test_publish_hands_the_same_change_object_to_everyone() -> None:
    hub = Hub()
    first, second = Outbox(4), Outbox(4)
    change = capacity(EVENT_A, 1)
    with subscribed(hub, first), subscribed(hub, second, EVENT_A):
        hub.publish(change)
        assert first.take_nowait()[0] is change
        assert second.take_nowait()[0] is change


def test_listeners_hear_every_change_watched_or_not() -> None:
    hub = Hub()
    heard: list[object] = []
    hub.add_listener(heard.append)
    changes = [updated(EVENT_A, 1), capacity(EVENT_B, 2)]
    for change in changes:
        hub.publish(change)
    assert heard == changes


def test_add_subscriber_delivers_until_unsubscribe() -> None:
    hub = Hub()
    outbox = Outbox(4)
    hub.add_subscriber(outbox, EVENT_A)
    hub.publish(first := updated(EVENT_A, 1))
    hub.unsubscribe(outbox)
    hub.publish(updated(EVENT_A, 2))
    assert outbox.take_nowait() == [first]
    assert not hub.is_watched(EVENT_A)


def test_add_subscriber_during_shutdown_closes_at_once() -> None:
    hub = Hub()
    hub.close_all(GOING_AWAY)
    outbox = Outbox(4)
    hub.add_subscriber(outbox)
    assert outbox.close_code == GOING_AWAY


def test_unsubscribe_forgets_the_subscriber_and_its_event() -> None:
    hub = Hub()
    outbox = Outbox(4)
    assert not hub.is_watched(EVENT_A)
    with subscribed(hub, outbox, EVENT_A):
        assert hub.is_watched(EVENT_A)
        assert not hub.is_watched(EVENT_B)
        assert hub.statistics().connections == 1
    assert not hub.is_watched(EVENT_A)
    assert hub.statistics().connections == 0
    assert hub.statistics().watched_events == 0
    hub.publish(updated(EVENT_A, 1))
    assert len(outbox) == 0


def test_unsubscribe_forgets_a_global_subscriber() -> None:
    hub = Hub()
    outbox = Outbox(4)
    with subscribed(hub, outbox):
        assert hub.statistics().connections == 1
        assert hub.statistics().watched_events == 0
    assert hub.statistics().connections == 0
    hub.publish(updated(EVENT_A, 1))
    assert len(outbox) == 0


def test_is_followed_by_a_global_subscriber_or_the_events_own() -> None:
    hub = Hub()
    assert not hub.is_followed(EVENT_A)
    with subscribed(hub, Outbox(4), EVENT_A):
        assert hub.is_followed(EVENT_A)
        assert not hub.is_followed(EVENT_B)
    with subscribed(hub, Outbox(4)):
        assert hub.is_followed(EVENT_A)
        assert hub.is_followed(EVENT_B)
        assert not hub.is_watched(EVENT_A)  # followed, but no stream of its own
    assert not hub.is_followed(EVENT_A)


def test_event_stays_watched_while_another_subscriber_remains() -> None:
    hub = Hub()
    first, second = Outbox(4), Outbox(4)
    with subscribed(hub, first, EVENT_A):
        with subscribed(hub, second, EVENT_A):
            pass
        assert hub.is_watched(EVENT_A)
        hub.publish(updated(EVENT_A, 1))
        assert len(first) == 1
        assert len(second) == 0
    assert not hub.is_watched(EVENT_A)


def test_unsubscribe_is_idempotent() -> None:
    hub = Hub()
    outbox, other = Outbox(4), Outbox(4)
    with subscribed(hub, outbox, EVENT_A), subscribed(hub, other, EVENT_B):
        hub.unsubscribe(outbox)
        assert not hub.is_watched(EVENT_A)
        hub.unsubscribe(outbox)  # again, still inside the block
        hub.unsubscribe(Outbox(4))  # never subscribed
        assert hub.is_watched(EVENT_B)
        assert hub.statistics().connections == 1
    # Leaving the block unsubscribes a third time: no error.
    assert hub.statistics().connections == 0
    assert hub.statistics().watched_events == 0


def test_overflowing_subscriber_is_dropped_during_publish() -> None:
    hub = Hub()
    slow = Outbox(2)  # never read
    healthy_all, healthy_a = Outbox(16), Outbox(16)
    changes = [updated(EVENT_A, seq) for seq in range(1, 6)]
    with (
        subscribed(hub, slow, EVENT_A),
        subscribed(hub, healthy_all),
        subscribed(hub, healthy_a, EVENT_A),
    ):
        hub.publish(changes[0])
        hub.publish(changes[1])
        assert not slow.closed
        assert hub.statistics().dropped_slow_clients == 0
        assert hub.statistics().connections == 3

        hub.publish(changes[2])  # the slow one's third eventUpdated: it closes
        assert slow.closed
        stats = hub.statistics()
        assert stats.dropped_slow_clients == 1
        assert stats.connections == 2
        assert stats.watched_events == 1

        hub.publish(changes[3])
        hub.publish(changes[4])
        # Dropped once, counted once; it hears nothing more.
        assert hub.statistics().dropped_slow_clients == 1
        assert len(slow) == 0
        assert close_code_taken(slow) == TRY_AGAIN_LATER
        # Nobody else noticed.
        assert healthy_all.take_nowait() == changes
        assert healthy_a.take_nowait() == changes


def test_overflowing_global_subscriber_is_dropped_and_unwatched() -> None:
    hub = Hub()
    slow = Outbox(1)
    with subscribed(hub, slow):
        hub.publish(updated(EVENT_A, 1))
        hub.publish(updated(EVENT_B, 1))
        assert slow.closed
        assert hub.statistics().connections == 0
        assert hub.statistics().dropped_slow_clients == 1


def test_only_watcher_dropped_unwatches_the_event() -> None:
    hub = Hub()
    slow = Outbox(1)
    with subscribed(hub, slow, EVENT_A):
        hub.publish(updated(EVENT_A, 1))
        assert hub.is_watched(EVENT_A)
        hub.publish(updated(EVENT_A, 2))
        assert not hub.is_watched(EVENT_A)
        assert hub.statistics().watched_events == 0
    assert hub.statistics().dropped_slow_clients == 1


def test_subscriber_closed_for_shutdown_is_not_counted_as_slow() -> None:
    # close_all(1001) asks every connection to close; until its task runs and
    # unsubscribes, actors may still publish (committing what is pending at
    # shutdown). That client was not slow and must not count as dropped.
    hub = Hub()
    outbox = Outbox(16)
    with subscribed(hub, outbox, EVENT_A):
        hub.close_all(GOING_AWAY)
        hub.publish(updated(EVENT_A, 1))
        assert hub.statistics().dropped_slow_clients == 0
        assert close_code_taken(outbox) == GOING_AWAY


def test_close_all_reaches_every_subscriber() -> None:
    hub = Hub()
    outboxes = [Outbox(4) for _ in range(4)]
    outboxes[1].put_nowait(updated(EVENT_A, 1))  # something still queued: dropped
    with (
        subscribed(hub, outboxes[0]),
        subscribed(hub, outboxes[1], EVENT_A),
        subscribed(hub, outboxes[2], EVENT_A),
        subscribed(hub, outboxes[3], EVENT_B),
    ):
        hub.close_all(GOING_AWAY)
        for outbox in outboxes:
            assert outbox.closed
            assert close_code_taken(outbox) == GOING_AWAY


async def test_close_all_wakes_waiting_connections() -> None:
    hub = Hub()
    takers = [Taker(4), Taker(4)]
    codes: list[int] = []

    async def connection(taker: Taker) -> None:
        try:
            await taker.take()
        except Closing as closing:
            codes.append(closing.code)

    with subscribed(hub, takers[0].outbox), subscribed(hub, takers[1].outbox, EVENT_A):
        with trio.fail_after(TIMEOUT_SECONDS):
            async with trio.open_nursery() as nursery:
                for taker in takers:
                    nursery.start_soon(connection, taker)
                await trio.testing.wait_all_tasks_blocked()
                assert codes == []
                hub.close_all(GOING_AWAY)
    assert codes == [GOING_AWAY, GOING_AWAY]


def test_statistics_counts_connections_once() -> None:
    hub = Hub()
    assert hub.statistics() == HubStatistics(connections=0, watched_events=0,
                                             dropped_slow_clients=0)
    both, only_a, only_b, everything = Outbox(4), Outbox(4), Outbox(4), Outbox(4)
    with (
        subscribed(hub, both),
        subscribed(hub, both, EVENT_A),
        subscribed(hub, only_a, EVENT_A),
        subscribed(hub, only_b, EVENT_B),
        subscribed(hub, everything),
    ):
        stats = hub.statistics()
        assert stats.connections == 4
        assert stats.watched_events == 2
        assert stats.dropped_slow_clients == 0
    stats = hub.statistics()
    assert stats.connections == 0
    assert stats.watched_events == 0


def test_a_queue_state_reaches_only_the_events_own_subscribers_and_is_kept() -> None:
    hub = Hub()
    everything, watcher_a, watcher_b = Outbox(16), Outbox(16), Outbox(16)
    state = QueueUpdate(EVENT_A, AT, 3, 7, 10)
    with subscribed(hub, everything), subscribed(hub, watcher_a, EVENT_A), \
            subscribed(hub, watcher_b, EVENT_B):
        hub.publish_state(state)
        assert watcher_a.take_nowait() == [state]
        assert everything.take_nowait() == []  # a queueUpdate is the event's stream's
        assert watcher_b.take_nowait() == []
        assert hub.current_state(EVENT_A) is state
        assert sorted(hub.watched_events()) == sorted([EVENT_A, EVENT_B])
    assert hub.current_state(EVENT_A) is None  # nobody follows it here: forgotten
    hub.publish_state(state)
    assert hub.current_state(EVENT_A) is None
