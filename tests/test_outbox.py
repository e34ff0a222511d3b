"""Outbox: one connection's bounded, conflating queue, taken the way the fan-out takes it.

Rules of this file: no sockets and no database. Changes are built directly
(tests/support.py); a waiting consumer is a :class:`~tests.support.Taker`,
told by ``on_ready`` like the fan-out. Every wait is bounded by
``trio.fail_after``; blocking is made explicit with
``trio.testing.wait_all_tasks_blocked``.
"""

from __future__ import annotations

import gc
import uuid
import weakref

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventd.realtime.changes import Change
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
    make_event,
    updated,
)

TIMEOUT_SECONDS = 5
GOING_AWAY = 1001


def test_outbox_is_fifo() -> None:
    outbox = Outbox(10)
    changes = [
        capacity(EVENT_A, 1),
        updated(EVENT_B, 1),
        Change("newEvent", make_event(EVENT_C), 1, AT),
        capacity(EVENT_B, 2),
        Change("eventDeleted", make_event(EVENT_A), 2, AT),
    ]
    for change in changes:
        outbox.put_nowait(change)
    taken = outbox.take_nowait()
    assert len(taken) == len(changes)
    assert all(got is sent for got, sent in zip(taken, changes, strict=True))


def test_client_that_keeps_up_gets_every_capacity_update() -> None:
    outbox = Outbox(4)
    changes = [capacity(EVENT_A, seq, confirmed=seq) for seq in range(1, 5)]
    for change in changes:  # exactly `size` queued: nothing collapses
        outbox.put_nowait(change)
    assert len(outbox) == 4
    assert [c.seq for c in outbox.take_nowait()] == [1, 2, 3, 4]
    assert not outbox.closed


def test_client_that_keeps_up_at_the_bound_loses_nothing() -> None:
    # The queue fills to its bound before every take, for a long time: still no collapsing.
    outbox = Outbox(3)
    taken: list[Change] = []
    seq = 0
    for _ in range(50):
        for _ in range(3):
            seq += 1
            outbox.put_nowait(capacity(EVENT_A, seq, confirmed=seq % 100))
        assert len(outbox) == 3
        taken += outbox.take_nowait()
    assert [c.seq for c in taken] == list(range(1, seq + 1))


def test_size_one_outbox_read_promptly_gets_everything() -> None:
    outbox = Outbox(1)
    for seq in range(1, 21):
        change = capacity(EVENT_A, seq)
        outbox.put_nowait(change)
        [taken] = outbox.take_nowait()
        assert taken is change


def test_overflow_collapses_capacity_updates_into_the_newest() -> None:
    outbox = Outbox(3)
    a1, a2, a3 = (capacity(EVENT_A, seq, confirmed=seq) for seq in (1, 2, 3))
    b1 = updated(EVENT_B, 1)
    for change in (a1, b1, a2):
        outbox.put_nowait(change)
    assert len(outbox) == 3  # at the bound: nothing collapsed yet
    outbox.put_nowait(a3)  # 4 > 3: A's capacity updates collapse into a3

    assert len(outbox) == 2
    assert not outbox.closed
    taken = outbox.take_nowait()
    assert taken[0] is b1
    assert taken[1] is a3


def test_collapsed_newest_keeps_seq_rising() -> None:
    # The older capacity updates vanish from before the eventUpdated; the newest
    # stays after it, so the client sees 2 then 4 — never 4 then 2.
    outbox = Outbox(3)
    for change in (capacity(EVENT_A, 1), updated(EVENT_A, 2), capacity(EVENT_A, 3)):
        outbox.put_nowait(change)
    outbox.put_nowait(capacity(EVENT_A, 4))
    taken = outbox.take_nowait()
    assert [(c.type, c.seq) for c in taken] == [("eventUpdated", 2), ("eventCapacityUpdate", 4)]


def test_capacity_updates_of_different_events_do_not_collapse_together() -> None:
    outbox = Outbox(3)
    a1, b1, a2 = capacity(EVENT_A, 1), capacity(EVENT_B, 1), capacity(EVENT_A, 2)
    b2 = capacity(EVENT_B, 2, confirmed=7)
    for change in (a1, b1, a2, b2):
        outbox.put_nowait(change)
    assert len(outbox) == 2
    taken = outbox.take_nowait()
    assert [(c.event.id, c.seq) for c in taken] == [(EVENT_A, 2), (EVENT_B, 2)]
    assert taken[1] is b2


def test_single_capacity_updates_of_many_events_survive_a_collapse() -> None:
    outbox = Outbox(4)
    singles = [capacity(EVENT_B, 1), capacity(EVENT_C, 1)]
    for change in (capacity(EVENT_A, 1), *singles, capacity(EVENT_A, 2), capacity(EVENT_A, 3)):
        outbox.put_nowait(change)
    taken = outbox.take_nowait()
    assert [(c.event.id, c.seq) for c in taken] == [(EVENT_B, 1), (EVENT_C, 1), (EVENT_A, 3)]


@pytest.mark.parametrize("kind", ["eventUpdated", "newEvent", "snapshot", "eventDeleted"])
def test_other_messages_are_never_collapsed(kind: str) -> None:
    outbox = Outbox(4)
    others = [Change(kind, make_event(version=seq), seq, AT) for seq in (1, 3, 5)]  # type: ignore[arg-type]
    sequence = [others[0], capacity(EVENT_A, 2), others[1], capacity(EVENT_A, 4), others[2]]
    for change in sequence:
        outbox.put_nowait(change)
    # 5 > 4: only the capacity update at seq 2 may go.
    assert len(outbox) == 4
    taken = outbox.take_nowait()
    assert [c.seq for c in taken] == [1, 3, 4, 5]
    assert [c for c in taken if c.type == kind] == others
    assert all(
        got is sent for got, sent in zip([t for t in taken if t.type == kind], others, strict=True)
    )


def test_every_put_past_the_bound_collapses_one_older_update() -> None:
    outbox = Outbox(2)
    outbox.put_nowait(updated(EVENT_B, 1))
    for seq in range(1, 11):
        outbox.put_nowait(capacity(EVENT_A, seq))
        assert len(outbox) <= 2
    # A1 and B1 fill the queue; each of A2..A10 then pushes it past the bound
    # and collapses exactly one older update of A: 9 of the 11 are gone.
    assert [c.seq for c in outbox.take_nowait()] == [1, 10]


def test_overflow_that_cannot_collapse_closes_with_try_again_later() -> None:
    outbox = Outbox(2)
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(capacity(EVENT_A, 2))
    assert not outbox.closed
    outbox.put_nowait(updated(EVENT_A, 3))  # 3 > 2 and nothing to collapse

    assert outbox.closed
    assert len(outbox) == 0
    assert TRY_AGAIN_LATER == 1013
    assert close_code_taken(outbox) == TRY_AGAIN_LATER
    # Nothing queued before the close comes out, and later puts are ignored.
    outbox.put_nowait(updated(EVENT_A, 4))
    outbox.put_nowait(capacity(EVENT_A, 5))
    assert len(outbox) == 0
    assert outbox.closed
    assert close_code_taken(outbox) == TRY_AGAIN_LATER
    # The first close wins: a later 1001 does not rewrite the 1013.
    outbox.close_nowait(GOING_AWAY)
    assert close_code_taken(outbox) == TRY_AGAIN_LATER


def test_overflow_after_partial_collapse_still_closes() -> None:
    outbox = Outbox(3)
    for change in (updated(EVENT_A, 1), capacity(EVENT_A, 2), updated(EVENT_B, 1)):
        outbox.put_nowait(change)
    outbox.put_nowait(capacity(EVENT_A, 3))  # collapses A's seq 2: back to 3
    assert not outbox.closed
    assert len(outbox) == 3
    outbox.put_nowait(updated(EVENT_B, 2))  # 4 non-collapsible: too slow
    assert outbox.closed
    assert len(outbox) == 0
    assert close_code_taken(outbox) == TRY_AGAIN_LATER


def test_close_nowait_drops_queue_and_take_raises() -> None:
    outbox = Outbox(10)
    queued = [updated(EVENT_A, 1), capacity(EVENT_A, 2)]
    for change in queued:
        outbox.put_nowait(change)
    references = [weakref.ref(change) for change in queued]
    del queued, change
    outbox.close_nowait(GOING_AWAY)
    assert outbox.closed
    assert len(outbox) == 0
    gc.collect()
    assert [ref() for ref in references] == [None, None]  # dropped, not merely hidden
    assert close_code_taken(outbox) == GOING_AWAY
    assert close_code_taken(outbox) == GOING_AWAY


async def test_close_nowait_wakes_a_waiting_taker() -> None:
    taker = Taker(10)
    codes: list[int] = []

    async def take() -> None:
        try:
            await taker.take()
        except Closing as closing:
            codes.append(closing.code)

    with trio.fail_after(TIMEOUT_SECONDS):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take)
            await trio.testing.wait_all_tasks_blocked()
            assert codes == []
            taker.outbox.close_nowait(GOING_AWAY)
    assert codes == [GOING_AWAY]


def test_overflow_at_size_one() -> None:
    outbox = Outbox(1)
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_A, 2))
    assert outbox.closed
    assert close_code_taken(outbox) == TRY_AGAIN_LATER


async def test_a_waiting_taker_wakes_on_put() -> None:
    taker = Taker(10)
    received: list[Change] = []

    async def take() -> None:
        received.extend(await taker.take())
        received.extend(await taker.take())

    first, second = updated(EVENT_A, 1), capacity(EVENT_A, 2)
    with trio.fail_after(TIMEOUT_SECONDS):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take)
            await trio.testing.wait_all_tasks_blocked()
            assert received == []
            taker.outbox.put_nowait(first)
            await trio.testing.wait_all_tasks_blocked()
            assert received == [first]
            assert len(taker.outbox) == 0
            taker.outbox.put_nowait(second)
    assert received == [first, second]
    assert received[0] is first
    assert received[1] is second


def test_len_is_the_live_count() -> None:
    outbox = Outbox(3)
    assert len(outbox) == 0
    outbox.put_nowait(capacity(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_B, 1))
    outbox.put_nowait(capacity(EVENT_A, 2))
    assert len(outbox) == 3
    outbox.put_nowait(capacity(EVENT_A, 3))  # collapse: A1, A2 go, A3 stays
    assert len(outbox) == 2
    taken = outbox.take_nowait()
    assert taken[0].event.id == EVENT_B
    assert taken[1].seq == 3
    assert len(outbox) == 0


# --- property: random puts and takes against a bound ---------------------------

EVENTS = (EVENT_A, EVENT_B, EVENT_C)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("cap"), st.integers(0, len(EVENTS) - 1), st.integers(0, 100)),
        st.tuples(st.just("upd"), st.integers(0, len(EVENTS) - 1), st.just(0)),
        st.tuples(st.just("take"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


class ReferenceOutbox:
    """The documented behaviour, written plainly."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: list[Change] = []
        self.closed = False
        self.collapsed = 0

    def put(self, change: Change) -> None:
        if self.closed:
            return
        self.queue.append(change)
        if len(self.queue) > self.size:
            newest: dict[uuid.UUID, Change] = {}
            for queued in self.queue:
                if queued.type == "eventCapacityUpdate":
                    newest[queued.event.id] = queued
            kept = [
                q for q in self.queue if q.type != "eventCapacityUpdate" or newest[q.event.id] is q
            ]
            self.collapsed += len(self.queue) - len(kept)
            self.queue = kept
            if len(self.queue) > self.size:
                self.closed = True
                self.queue = []

    def take(self) -> list[Change]:
        taken, self.queue = self.queue, []
        return taken


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(size=st.integers(1, 6), ops=operations)
def test_outbox_property(size: int, ops: list[tuple[str, int, int]]) -> None:
    outbox = Outbox(size)
    reference = ReferenceOutbox(size)
    seqs = dict.fromkeys(EVENTS, 0)
    put: list[Change] = []
    delivered: list[Change] = []
    ever_above_size = False

    def take() -> None:
        if reference.closed:
            assert close_code_taken(outbox) == TRY_AGAIN_LATER
            return
        got = outbox.take_nowait()
        expected = reference.take()
        assert len(got) == len(expected)
        assert all(g is e for g, e in zip(got, expected, strict=True))
        delivered.extend(got)

    for kind, index, confirmed in ops:
        if kind == "take":
            take()
        else:
            event_id = EVENTS[index]
            seqs[event_id] += 1
            change = (
                capacity(event_id, seqs[event_id], confirmed=confirmed)
                if kind == "cap"
                else updated(event_id, seqs[event_id])
            )
            if not reference.closed:
                put.append(change)
                if len(reference.queue) + 1 > size:
                    ever_above_size = True
            reference.put(change)
            outbox.put_nowait(change)
        assert len(outbox) == len(reference.queue)
        assert outbox.closed == reference.closed

    # Take what is left.
    take()
    assert len(outbox) == 0

    # Per event, the seqs a client sees strictly increase.
    for event_id in EVENTS:
        event_seqs = [c.seq for c in delivered if c.event.id == event_id]
        assert event_seqs == sorted(set(event_seqs))

    if not ever_above_size:
        # Never past the bound: every message, in order, nothing collapsed.
        assert not outbox.closed
        assert len(delivered) == len(put)
        assert all(got is sent for got, sent in zip(delivered, put, strict=True))

    if outbox.closed:
        assert close_code_taken(outbox) == TRY_AGAIN_LATER
    else:
        # Taken whole: the last state per event is the last one put, and only
        # capacity updates ever went missing, each one collapsed.
        for event_id in EVENTS:
            sent = [c for c in put if c.event.id == event_id]
            got = [c for c in delivered if c.event.id == event_id]
            if sent:
                assert got[-1] is sent[-1]
            assert [c for c in got if c.type != "eventCapacityUpdate"] == [
                c for c in sent if c.type != "eventCapacityUpdate"
            ]
        assert len(delivered) + reference.collapsed == len(put)


def test_take_nowait_takes_everything_in_order_and_empties() -> None:
    outbox = Outbox(10)
    changes = [updated(EVENT_A, 1), capacity(EVENT_A, 2), capacity(EVENT_B, 1)]
    for change in changes:
        outbox.put_nowait(change)
    assert outbox.take_nowait() == changes
    assert len(outbox) == 0
    assert outbox.take_nowait() == []
    outbox.put_nowait(later := capacity(EVENT_A, 3))
    assert outbox.take_nowait() == [later]


def test_take_nowait_after_a_collapse_gets_the_survivors() -> None:
    outbox = Outbox(3)
    for change in (capacity(EVENT_A, 1), updated(EVENT_B, 1), capacity(EVENT_A, 2)):
        outbox.put_nowait(change)
    outbox.put_nowait(capacity(EVENT_A, 3))  # over the bound: A's collapse into the newest
    assert len(outbox) == 2
    assert [(c.event.id, c.seq) for c in outbox.take_nowait()] == [(EVENT_B, 1), (EVENT_A, 3)]


def test_take_nowait_raises_closing_once_closed() -> None:
    outbox = Outbox(10)
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.close_nowait(GOING_AWAY)
    with pytest.raises(Closing) as info:
        outbox.take_nowait()
    assert info.value.code == GOING_AWAY
    assert outbox.close_code == GOING_AWAY


def test_on_ready_fires_when_something_arrives_in_an_empty_outbox_and_on_close() -> None:
    calls: list[int] = []
    outbox = Outbox(10, on_ready=lambda: calls.append(len(outbox)))
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_A, 2))  # not empty before: whoever was told will take it
    assert calls == [1]
    outbox.take_nowait()
    outbox.put_nowait(updated(EVENT_A, 3))
    assert calls == [1, 1]
    outbox.close_nowait(GOING_AWAY)
    assert calls == [1, 1, 0]
    outbox.close_nowait(TRY_AGAIN_LATER)  # closing twice tells nobody twice
    outbox.put_nowait(updated(EVENT_A, 4))  # nor does a put after the close
    assert calls == [1, 1, 0]
    assert outbox.close_code == GOING_AWAY


def test_on_ready_fires_on_the_overflow_that_closes_with_try_again_later() -> None:
    closed_codes: list[int | None] = []
    outbox = Outbox(1, on_ready=lambda: closed_codes.append(outbox.close_code))
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_A, 2))
    assert closed_codes == [None, TRY_AGAIN_LATER]


def test_an_outbox_drops_what_its_snapshot_already_covered() -> None:
    outbox = Outbox(8)
    outbox.put_nowait(Change.snapshot(make_event(version=5)))
    outbox.floor = 5
    for seq in (4, 5, 6):  # 4 and 5 published late (held for another daemon's change)
        outbox.put_nowait(capacity(EVENT_A, seq))
    assert [change.seq for change in outbox.take_nowait()] == [5, 6]


def test_a_queue_update_replaces_the_queued_one_and_keeps_the_changes() -> None:
    outbox = Outbox(4)
    first, second, third = (QueueUpdate(EVENT_A, AT, n, 10 - n, 10) for n in (1, 2, 3))
    outbox.put_state_nowait(first)
    outbox.put_nowait(capacity(EVENT_A, 1))
    outbox.put_state_nowait(second)  # the slow client still holds the first: replaced
    outbox.put_nowait(capacity(EVENT_A, 2))
    outbox.put_state_nowait(third)
    taken = outbox.take_nowait()
    assert [c.type for c in taken] == ["eventCapacityUpdate", "eventCapacityUpdate",
                                       "queueUpdate"]
    assert taken[-1] is third
    outbox.put_state_nowait(first)  # after a take: queued again, once
    assert outbox.take_nowait() == [first]


def test_queue_updates_never_overflow_an_outbox() -> None:
    outbox = Outbox(2)
    for n in range(1000):
        outbox.put_state_nowait(QueueUpdate(EVENT_A, AT, n, 0, n))
    assert len(outbox) == 1
    assert not outbox.closed


def test_a_queue_update_wakes_the_taker_when_the_outbox_was_empty() -> None:
    woken: list[int] = []
    outbox = Outbox(2, on_ready=lambda: woken.append(1))
    outbox.put_state_nowait(QueueUpdate(EVENT_A, AT, 1, 1, 2))
    assert woken == [1]
    outbox.close_nowait(GOING_AWAY)
    outbox.put_state_nowait(QueueUpdate(EVENT_A, AT, 2, 0, 2))  # closing: dropped
    with pytest.raises(Closing):
        outbox.take_nowait()
