"""Expiries: the hold and offer timers, one heap entry per event, on trio's clock.

MockClock with autojump drives trio's clock; the wall clock is a fixed
``now`` handed to :class:`Expiries`, so a moment "5 s from now" fires 5 s
of trio's clock after it was armed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import trio
import trio.testing

from eventd.actors.expiries import REFIRE_SECONDS, Expiries

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _expiries(fired: list[tuple[float, uuid.UUID]]) -> Expiries:
    return Expiries(lambda event_id: fired.append((trio.current_time(), event_id)),
                    now=lambda: NOW)


async def test_each_event_fires_once_at_its_moment_in_order(
    autojump_clock: trio.testing.MockClock,
):
    fired: list[tuple[float, uuid.UUID]] = []
    expiries = _expiries(fired)
    early, late = uuid.uuid4(), uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(expiries.run)
        start = trio.current_time()
        expiries.arm(late, NOW + timedelta(seconds=9))
        expiries.arm(early, NOW + timedelta(seconds=4))
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert fired == [(start + 4, early), (start + 9, late)]
    assert expiries.armed == {}


async def test_re_arming_moves_the_timer_and_disarming_drops_it(
    autojump_clock: trio.testing.MockClock,
):
    fired: list[tuple[float, uuid.UUID]] = []
    expiries = _expiries(fired)
    moved, dropped = uuid.uuid4(), uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(expiries.run)
        start = trio.current_time()
        expiries.arm(moved, NOW + timedelta(seconds=10))
        expiries.arm(dropped, NOW + timedelta(seconds=3))
        expiries.arm(moved, NOW + timedelta(seconds=2))  # a nearer hold came
        expiries.arm(dropped, None)  # its holds were confirmed
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert fired == [(start + 2, moved)]


async def test_earlier_only_keeps_a_nearer_moment(autojump_clock: trio.testing.MockClock):
    fired: list[tuple[float, uuid.UUID]] = []
    expiries = _expiries(fired)
    event_id = uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(expiries.run)
        start = trio.current_time()
        expiries.arm(event_id, NOW + timedelta(seconds=2))
        expiries.arm(event_id, NOW + timedelta(seconds=8), earlier_only=True)  # stale news
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert fired == [(start + 2, event_id)]


async def test_an_overdue_moment_fires_at_once(autojump_clock: trio.testing.MockClock):
    fired: list[tuple[float, uuid.UUID]] = []
    expiries = _expiries(fired)
    event_id = uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(expiries.run)
        start = trio.current_time()
        expiries.arm(event_id, NOW - timedelta(minutes=5))  # due while no daemon ran
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert fired == [(start, event_id)]


async def test_a_timer_that_fired_waits_before_firing_again(
    autojump_clock: trio.testing.MockClock,
):
    # The database's clock a little behind ours: it names the same moment again.
    fired: list[tuple[float, uuid.UUID]] = []
    expiries = _expiries(fired)
    event_id = uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(expiries.run)
        start = trio.current_time()
        expiries.arm(event_id, NOW)
        await trio.sleep(0.001)
        expiries.arm(event_id, NOW)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert fired == [(start, event_id), (start + REFIRE_SECONDS, event_id)]
